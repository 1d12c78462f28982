import { open, stat, type FileHandle } from 'node:fs/promises';
import type { OutputBuffer } from './output.js';

/** Bytes read from the log per read call. */
const READ_BYTES = 64 * 1024;
const NEWLINE = 0x0a;
const SPACE = 0x20;

export interface LogLine { time: number; stream: 'stdout' | 'stderr'; data: Buffer }

/**
 * One line of conmon's k8s-file log, `<RFC3339Nano> <stdout|stderr> <P|F> <text>` without its
 * newline, as the bytes the process wrote: a full line (F) gets its newline back, a partial one (P)
 * does not. Null for a line that is not in that form.
 */
export function parseLogLine(line: Buffer): LogLine | null {
  const first = line.indexOf(SPACE);
  const second = first < 0 ? -1 : line.indexOf(SPACE, first + 1);
  const third = second < 0 ? -1 : line.indexOf(SPACE, second + 1);
  if (third < 0 && !(second > 0 && line.length === second + 2)) return null;
  const time = Date.parse(line.subarray(0, first).toString('latin1'));
  const stream = line.subarray(first + 1, second).toString('latin1');
  const tag = line.subarray(second + 1, third < 0 ? line.length : third).toString('latin1');
  if (Number.isNaN(time) || (stream !== 'stdout' && stream !== 'stderr') || (tag !== 'F' && tag !== 'P')) return null;
  const text = third < 0 ? Buffer.alloc(0) : line.subarray(third + 1);
  return { time, stream, data: tag === 'F' ? Buffer.concat([text, Buffer.from('\n')]) : Buffer.from(text) };
}

/**
 * Follows the log file conmon writes for a container's main process and feeds its lines into an
 * OutputBuffer. conmon owns the process's stdio (so the container outlives the agent), and its log
 * is where the output lands. `poke()` asks for a read (the agent calls it on inotify events);
 * reads never overlap. When conmon replaces the file (its --log-size-max rotation) the old file is
 * read to its end through the descriptor still open, then the new one from its start.
 */
export class LogTail {
  private file: FileHandle | null = null;
  private inode = 0;
  private offset = 0;
  private rest: Buffer = Buffer.alloc(0);
  private reading: Promise<void> | null = null;
  private again = false;
  private closed = false;

  constructor(readonly path: string, private readonly buffer: OutputBuffer) {}

  /** Reads what is new, now or right after the read in progress. */
  poke(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = (async () => {
      try {
        do {
          this.again = false;
          await this.readNew();
        } while (this.again && !this.closed);
      } finally {
        this.reading = null;
      }
    })();
    return this.reading;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.reading?.catch(() => undefined);
    await this.file?.close();
    this.file = null;
  }

  private async readNew(): Promise<void> {
    if (!this.file && !(await this.openCurrent())) return;
    await this.readToEnd();
    const current = await stat(this.path).catch(() => null);
    if (current && current.ino !== this.inode) {
      await this.readToEnd();
      await this.file!.close();
      this.file = null;
      this.rest = Buffer.alloc(0);
      if (await this.openCurrent()) await this.readToEnd();
    }
  }

  private async openCurrent(): Promise<boolean> {
    try {
      this.file = await open(this.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    this.inode = (await this.file.stat()).ino;
    this.offset = 0;
    return true;
  }

  private async readToEnd(): Promise<void> {
    const chunk = Buffer.alloc(READ_BYTES);
    for (;;) {
      const { bytesRead } = await this.file!.read(chunk, 0, READ_BYTES, this.offset);
      if (bytesRead === 0) return;
      this.offset += bytesRead;
      let data = Buffer.concat([this.rest, chunk.subarray(0, bytesRead)]);
      let end: number;
      while ((end = data.indexOf(NEWLINE)) >= 0) {
        const line = parseLogLine(data.subarray(0, end));
        if (line) this.buffer.push(line.stream, line.data, line.time);
        data = data.subarray(end + 1);
      }
      // A line conmon is still writing stays here until its newline arrives.
      this.rest = Buffer.from(data);
    }
  }
}
