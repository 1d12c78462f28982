/**
 * Writes container output as a CRI log file (the format conmon writes for runc containers and the
 * kubelet reads; see src/agent/server/cri-log.ts for the reader):
 *
 *   2026-11-27T03:10:00.123000000Z stdout F a whole line
 *   2026-11-27T03:10:00.124000000Z stderr P the start of a line without its newline yet
 *
 * Used for containers whose output reaches the runtime as chunks rather than through conmon (runv:
 * the guest agent streams them). Output is written as it comes: a chunk that ends mid-line is written
 * at once as a partial (`P`) line, as conmon does, so a prompt without a newline is not held back.
 */
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

export type OutputStream = 'stdout' | 'stderr';

/** Longer lines are cut into partial lines of at most this many bytes (conmon's buffer is 8 KiB). */
export const MAX_LINE_BYTES = 16 * 1024;

const NEWLINE = 0x0a;

/** RFC 3339 with nanoseconds, in UTC, as the kubelet's parser expects. */
export function criTimestamp(time: Date): string {
  const iso = time.toISOString(); // 2026-11-27T03:10:00.123Z
  return `${iso.slice(0, -1)}000000Z`;
}

/** The CRI log lines for one chunk of one stream's output. */
export function criLogLines(stream: OutputStream, data: Buffer, time: Date): Buffer {
  const stamp = criTimestamp(time);
  const parts: Buffer[] = [];
  const line = (text: Buffer, full: boolean): void => {
    parts.push(Buffer.from(`${stamp} ${stream} ${full ? 'F' : 'P'} `), text, Buffer.from('\n'));
  };
  let start = 0;
  while (start < data.length) {
    const newline = data.indexOf(NEWLINE, start);
    const end = newline < 0 ? data.length : newline;
    for (let at = start; at < end || at === start; at += MAX_LINE_BYTES) {
      const stop = Math.min(at + MAX_LINE_BYTES, end);
      line(data.subarray(at, stop), stop === end && newline >= 0);
      if (stop === end) break;
    }
    start = end + 1;
  }
  return Buffer.concat(parts);
}

/** Appends chunks to one container's CRI log file, in call order. */
export class CriLogWriter {
  private file: Promise<FileHandle>;
  private tail: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(readonly path: string) {
    this.file = this.openFile();
    // A failed open surfaces on the first write; it must not be an unhandled rejection meanwhile.
    this.file.catch(() => undefined);
  }

  /** Queues `data` from `stream`; resolves once it is in the file. */
  write(stream: OutputStream, data: Buffer, time = new Date()): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`CRI log ${this.path} is closed`));
    if (data.length === 0) return this.tail;
    const lines = criLogLines(stream, data, time);
    this.tail = this.tail.then(async () => {
      await (await this.file).write(lines);
    });
    return this.tail;
  }

  /** Closes the file and opens the path again (the kubelet rotated it); writes queued before go to the old file. */
  reopen(): Promise<void> {
    this.tail = this.tail.catch(() => undefined).then(async () => {
      await (await this.file.catch(() => undefined))?.close();
      this.file = this.openFile();
      await this.file;
    });
    return this.tail;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tail.catch(() => undefined);
    await (await this.file.catch(() => undefined))?.close();
  }

  private async openFile(): Promise<FileHandle> {
    await mkdir(dirname(this.path), { recursive: true });
    return open(this.path, 'a', 0o640);
  }
}
