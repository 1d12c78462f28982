/**
 * Progress of a long CLI task. On a terminal the current step is one line rewritten in place, and
 * lasting messages print above it; otherwise every new step is a plain line of its own.
 */
export class Progress {
  private live = '';

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number } = process.stdout,
    private readonly prefix = 'atoll up: ',
  ) {}

  private get tty(): boolean {
    return this.out.isTTY === true;
  }

  /** The step now under way; repeating the same step prints nothing. */
  step(text: string): void {
    if (text === this.live) return;
    this.live = text;
    if (!this.tty) {
      this.out.write(`${this.prefix}${text}\n`);
      return;
    }
    this.draw();
  }

  private draw(): void {
    const width = Math.max((this.out.columns ?? 80) - 1, 20);
    this.out.write(`\r\x1b[2K${`${this.prefix}${this.live}`.slice(0, width)}`);
  }

  /** A message that stays; on a terminal it goes above the live step. */
  line(text: string): void {
    if (!this.tty) {
      this.out.write(`${text}\n`);
      return;
    }
    this.out.write(`\r\x1b[2K${text}\n`);
    if (this.live) this.draw();
  }

  /** Ends the live step (the next `line` starts at column 0). */
  clear(): void {
    if (this.tty && this.live) this.out.write('\r\x1b[2K');
    this.live = '';
  }
}
