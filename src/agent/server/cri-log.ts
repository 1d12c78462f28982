/**
 * The CRI container log format, as conmon writes it and the kubelet reads it:
 *
 *   <RFC3339Nano timestamp> <stdout|stderr> <tags> <text>\n
 *
 * `tags` is `:`-separated and only its first tag is read: `P` marks a partial line (the text had no
 * newline; the next line of the same stream continues it), `F` a full one. `text` excludes the newline.
 */

export type LogStream = 'stdout' | 'stderr';

export interface CriLogLine {
  /** The timestamp as written, which is what `timestamps=true` prints. */
  timestamp: string;
  /** The timestamp in epoch milliseconds, for `sinceSeconds` / `sinceTime`. */
  time: number;
  stream: LogStream;
  partial: boolean;
  text: Buffer;
}

export class CriLogError extends Error {
  override readonly name = 'CriLogError';
}

const SPACE = 0x20;

/** Parses one line (without its trailing newline). */
export function parseCriLogLine(line: Buffer): CriLogLine {
  const first = line.indexOf(SPACE);
  if (first <= 0) throw new CriLogError(`CRI log line has no timestamp: ${preview(line)}`);
  const timestamp = line.subarray(0, first).toString('latin1');
  const time = Date.parse(timestamp);
  if (Number.isNaN(time)) throw new CriLogError(`CRI log line has an invalid timestamp ${JSON.stringify(timestamp)}`);
  const second = line.indexOf(SPACE, first + 1);
  if (second < 0) throw new CriLogError(`CRI log line has no tag: ${preview(line)}`);
  const stream = line.subarray(first + 1, second).toString('latin1');
  if (stream !== 'stdout' && stream !== 'stderr') throw new CriLogError(`CRI log line has an unknown stream ${JSON.stringify(stream)}`);
  // An empty text may be written without the separating space.
  const third = line.indexOf(SPACE, second + 1);
  const tags = line.subarray(second + 1, third < 0 ? line.length : third).toString('latin1');
  const tag = tags.split(':')[0];
  if (tag !== 'P' && tag !== 'F') throw new CriLogError(`CRI log line has an unknown tag ${JSON.stringify(tags)}`);
  return { timestamp, time, stream, partial: tag === 'P', text: third < 0 ? Buffer.alloc(0) : line.subarray(third + 1) };
}

function preview(line: Buffer): string {
  return JSON.stringify(line.subarray(0, 80).toString('utf8'));
}

export interface LogFormatOptions {
  /** Prefix each line with its timestamp and a space. */
  timestamps: boolean;
  /** Only lines stamped at or after this time (epoch ms). */
  since?: number;
  /** Stop after this many bytes of output. */
  limitBytes?: number;
}

/**
 * Turns CRI log lines into the text `kubectl logs` shows: partial lines joined with what completes
 * them (per stream), filtered by `since`, optionally timestamped, cut at `limitBytes`.
 */
export class LogFormatter {
  private readonly pending = new Map<LogStream, { line: CriLogLine; parts: Buffer[] }>();
  private written = 0;

  constructor(private readonly options: LogFormatOptions) {}

  /** True once `limitBytes` is reached: nothing more will be produced. */
  get done(): boolean {
    return this.options.limitBytes !== undefined && this.written >= this.options.limitBytes;
  }

  /** The output a line completes, if any. */
  push(line: CriLogLine): Buffer | undefined {
    const held = this.pending.get(line.stream);
    if (line.partial) {
      if (held) held.parts.push(line.text);
      else this.pending.set(line.stream, { line, parts: [line.text] });
      return undefined;
    }
    this.pending.delete(line.stream);
    const first = held?.line ?? line;
    const parts = held ? [...held.parts, line.text] : [line.text];
    return this.emit(first, Buffer.concat([...parts, NEWLINE]));
  }

  /** Partial lines still waiting for their end, emitted as they are (the stream ended mid-line). */
  flush(): Buffer | undefined {
    const out: Buffer[] = [];
    for (const { line, parts } of this.pending.values()) {
      const chunk = this.emit(line, Buffer.concat(parts));
      if (chunk) out.push(chunk);
    }
    this.pending.clear();
    return out.length ? Buffer.concat(out) : undefined;
  }

  private emit(first: CriLogLine, text: Buffer): Buffer | undefined {
    if (this.done) return undefined;
    if (this.options.since !== undefined && first.time < this.options.since) return undefined;
    let out = this.options.timestamps ? Buffer.concat([Buffer.from(`${first.timestamp} `), text]) : text;
    const limit = this.options.limitBytes;
    if (limit !== undefined && this.written + out.length > limit) out = out.subarray(0, limit - this.written);
    this.written += out.length;
    return out.length ? out : undefined;
  }
}

const NEWLINE = Buffer.from('\n');

/** Whether a complete raw line ends a logical line (an `F` line, or one that cannot be parsed). */
function endsLogicalLine(line: Buffer): boolean {
  try {
    return !parseCriLogLine(line).partial;
  } catch {
    return true;
  }
}

/** How much of a file the tail search reads at a time. */
const TAIL_CHUNK_BYTES = 64 * 1024;

/** Positional reads of a log file, as `FileHandle.read` offers them: bytes read into `buffer`. */
export type ReadAt = (buffer: Buffer, position: number) => Promise<number>;

/**
 * The offset where the last `lines` logical lines of a CRI log of `size` bytes begin, reading
 * backwards from the end. The last complete line always ends a logical line (an unfinished run of
 * partial lines counts as one); bytes after the last newline, a write in progress, are left to the
 * reader that starts at the returned offset.
 */
export async function tailOffset(readAt: ReadAt, size: number, lines: number): Promise<number> {
  // `buf` holds the file's bytes [pos, pos + buf.length).
  let pos = size;
  let buf = Buffer.alloc(0);
  const readBefore = async () => {
    const start = Math.max(0, pos - TAIL_CHUNK_BYTES);
    const chunk = Buffer.alloc(pos - start);
    let got = 0;
    while (got < chunk.length) {
      const n = await readAt(chunk.subarray(got), start + got);
      if (n === 0) break;
      got += n;
    }
    buf = Buffer.concat([chunk.subarray(0, got), buf]);
    pos = start;
  };
  /** The absolute offset of the last newline before absolute offset `before`, or -1. */
  const newlineBefore = async (before: number): Promise<number> => {
    for (;;) {
      const i = before - pos > 0 ? buf.lastIndexOf(0x0a, before - pos - 1) : -1;
      if (i >= 0) return pos + i;
      if (pos === 0) return -1;
      await readBefore();
    }
  };

  const lastNewline = await newlineBefore(size);
  if (lastNewline < 0) return 0;
  let end = lastNewline + 1;
  let count = 0;
  for (;;) {
    const lineStart = (await newlineBefore(end - 1)) + 1;
    const line = buf.subarray(lineStart - pos, end - 1 - pos);
    // `end` is a boundary between logical lines when this line ends one; `count` lines follow it.
    if (count === 0 || endsLogicalLine(line)) {
      if (count === lines) return end;
      count++;
    }
    if (lineStart === 0) return 0;
    end = lineStart;
  }
}
