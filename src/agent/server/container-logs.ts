import { watch, type FSWatcher } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { LogFormatter, parseCriLogLine, tailOffset, type LogFormatOptions } from './cri-log.js';

/** How much of the log is read at a time. */
const READ_CHUNK_BYTES = 64 * 1024;
/**
 * While following, how long to wait for a change notice before looking again anyway (file
 * notifications can be missed across a rotation); the kubelet re-checks on a similar period.
 */
export const FOLLOW_RECHECK_MS = 1_000;

export interface ContainerLogOptions extends LogFormatOptions {
  follow: boolean;
  tailLines?: number;
}

export interface ContainerLogSource {
  /** The CRI log file (ContainerStatus.log_path). */
  path: string;
  /** Whether the container still runs; following stops once it does not and the file is drained. */
  running(): Promise<boolean>;
}

/** Where the text goes; resolves when the consumer can take more. */
export type LogSink = (chunk: Buffer) => Promise<void>;

/**
 * Streams a container's CRI log as plain text into `write`, as the kubelet's log reader does:
 * tail, since and limit applied, partial lines joined; with `follow`, keeps reading as the file
 * grows, moves to the new file when the log is rotated (renamed away and reopened by
 * ReopenContainerLog), and ends once the container has exited and everything is read, or when
 * `signal` aborts.
 */
export async function streamContainerLog(source: ContainerLogSource, options: ContainerLogOptions, write: LogSink, signal: AbortSignal): Promise<void> {
  const formatter = new LogFormatter(options);
  const changes = options.follow ? new ChangeNotices(source.path) : undefined;
  let file: FileHandle | undefined = await open(source.path, 'r');
  try {
    let position = 0;
    if (options.tailLines !== undefined) {
      const size = (await file.stat()).size;
      const fh = file;
      position = await tailOffset(async (buffer, at) => (await fh.read(buffer, 0, buffer.length, at)).bytesRead, size, options.tailLines);
    }
    let pending = Buffer.alloc(0);
    const buffer = Buffer.alloc(READ_CHUNK_BYTES);
    /** Reads the file to its current end, writing every complete line. */
    const drain = async (fh: FileHandle) => {
      for (;;) {
        if (signal.aborted || formatter.done) return;
        const { bytesRead } = await fh.read(buffer, 0, buffer.length, position);
        if (bytesRead === 0) return;
        position += bytesRead;
        pending = Buffer.concat([pending, buffer.subarray(0, bytesRead)]);
        let start = 0;
        for (let nl = pending.indexOf(0x0a); nl >= 0; nl = pending.indexOf(0x0a, start)) {
          const line = pending.subarray(start, nl);
          start = nl + 1;
          let parsed;
          try {
            parsed = parseCriLogLine(line);
          } catch {
            continue; // a torn or foreign line is skipped, as the kubelet's reader does after logging it
          }
          const out = formatter.push(parsed);
          if (out) await write(out);
          if (formatter.done || signal.aborted) return;
        }
        pending = Buffer.from(pending.subarray(start));
      }
    };

    for (;;) {
      if (file) await drain(file);
      if (!options.follow || signal.aborted || formatter.done) break;
      if (file && (await replacedFile(source.path, file))) {
        // The runtime may have written to the old file until it reopened the path: read that too.
        await drain(file);
        await file.close();
        file = undefined;
      }
      if (!file) {
        file = await openIfExists(source.path);
        if (file) {
          position = 0;
          pending = Buffer.alloc(0);
          continue;
        }
      }
      if (!(await source.running())) {
        // Lines written between the last read and the exit are still to be shown.
        if (file) await drain(file);
        break;
      }
      await changes!.next(FOLLOW_RECHECK_MS, signal);
    }
    if (!signal.aborted) {
      const rest = formatter.flush();
      if (rest) await write(rest);
    }
  } finally {
    changes?.close();
    await file?.close();
  }
}

/** Whether `path` no longer names the open file (the log was rotated: renamed away, maybe recreated). */
async function replacedFile(path: string, file: FileHandle): Promise<boolean> {
  const [current, opened] = await Promise.all([stat(path).catch(() => undefined), file.stat()]);
  return !current || current.ino !== opened.ino || current.dev !== opened.dev;
}

async function openIfExists(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Change notices for a log file, watched through its directory so that a rotation is seen too. */
class ChangeNotices {
  private readonly watcher: FSWatcher | undefined;
  private wake: (() => void) | undefined;
  private changed = false;

  constructor(path: string) {
    const name = basename(path);
    try {
      this.watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
        if (file !== null && file !== name) return;
        this.changed = true;
        this.wake?.();
      });
      this.watcher.on('error', () => this.close());
    } catch {
      // Without notices the follower still re-checks every FOLLOW_RECHECK_MS.
      this.watcher = undefined;
    }
  }

  /** Resolves on the next change, after `timeoutMs`, or when `signal` aborts. */
  next(timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (this.changed || signal.aborted) {
      this.changed = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.wake = undefined;
        this.changed = false;
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal.addEventListener('abort', done, { once: true });
      this.wake = done;
    });
  }

  close(): void {
    this.watcher?.close();
    this.wake?.();
  }
}
