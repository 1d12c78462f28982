import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CriLogWriter } from '../logs/cri-log-writer.js';
import { AgentCallError, outputBatches, type AgentClient } from './agent-client.js';

/** How long the pump waits before reading again after a failure it can outlast (a busy agent, a log write error). */
export const PUMP_RETRY_MS = 1_000;

/** How far a container's output got into its CRI log, saved after every batch written. */
export interface OutputCursor {
  /** The agent's numbering of the output (PROTOCOL.md, readOutput). */
  epoch?: string;
  /** The last chunk in the log. */
  seq: number;
  /** The log file right after that chunk was written: its inode and size. */
  log?: { ino: number; bytes: number };
  /** The output ended and all of it is in the log. */
  done: boolean;
}

/**
 * Copies one container's output from the guest agent into its CRI log file (CriLogWriter, the lines
 * conmon writes for runc containers, stamped with the guest's time of each chunk), and saves how far
 * it got, so that a restarted runtime continues the log with nothing lost or repeated.
 *
 * The cursor (the last chunk written, the agent's epoch, and the log file's inode and size right
 * after that chunk) is saved once a batch is in the file. A crash between the write and the save
 * leaves lines the cursor does not cover; `resume` cuts the file back to the saved size before it
 * reads on after the saved chunk, so those lines are written again, once. A file the kubelet rotated
 * meanwhile (another inode) is left as it is. Output the agent dropped before it was read (its buffer
 * is bounded) is reported through `log`.
 *
 * Lifecycle: start() or resume(), then the pump runs until the output ends (`finished` resolves true)
 * or stop() (false). reopen() follows a log rotation.
 */
export class LogPump {
  private readonly abort = new AbortController();
  private ended = false;
  /** Resolves with true once all output is in the log, false when the pump stopped before that. */
  readonly finished: Promise<boolean>;

  private constructor(
    private readonly client: AgentClient,
    readonly containerId: string,
    private readonly writer: CriLogWriter,
    private readonly cursorFile: string,
    private current: OutputCursor,
    private readonly log: (line: string) => void,
  ) {
    this.finished = this.run().finally(() => {
      this.ended = true;
      return this.writer.close();
    });
  }

  /**
   * Starts copying a new container's output from its beginning. The log file is made first and its
   * size saved, so that even the first batch is cut back after a crash.
   */
  static async start(client: AgentClient, containerId: string, logPath: string, cursorFile: string, log: (line: string) => void): Promise<LogPump> {
    await mkdir(dirname(logPath), { recursive: true });
    await mkdir(dirname(cursorFile), { recursive: true });
    await (await open(logPath, 'a', 0o640)).close();
    const cursor: OutputCursor = { seq: 0, done: false, log: await logPosition(logPath) };
    await saveCursor(cursorFile, cursor);
    return new LogPump(client, containerId, new CriLogWriter(logPath), cursorFile, cursor, log);
  }

  /**
   * Continues the log an earlier runtime process wrote, after the saved cursor (none saved: from the
   * beginning). Null when the cursor says all output is in the log already.
   */
  static async resume(client: AgentClient, containerId: string, logPath: string, cursorFile: string, log: (line: string) => void): Promise<LogPump | null> {
    const cursor = await readCursor(cursorFile);
    if (cursor.done) return null;
    await cutBack(logPath, cursor);
    return new LogPump(client, containerId, new CriLogWriter(logPath), cursorFile, cursor, log);
  }

  get cursor(): Readonly<OutputCursor> {
    return this.current;
  }

  /** Reopens the log file after the kubelet rotated it; false once the pump ended (the log is closed). */
  async reopen(): Promise<boolean> {
    if (this.ended) return false;
    await this.writer.reopen();
    return true;
  }

  /** Stops copying; what was written is saved in the cursor, and the next resume() continues from there. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.finished;
  }

  private async run(): Promise<boolean> {
    const { signal } = this.abort;
    while (!signal.aborted) {
      try {
        for await (const batch of outputBatches(this.client, this.containerId, { after: this.current.seq, epoch: this.current.epoch, signal })) {
          if (batch.restarted) this.log(`runv: container ${this.containerId}: the guest agent restarted; its output is read again from what it still holds`);
          if (batch.dropped > 0) this.log(`runv: container ${this.containerId}: ${batch.dropped} chunks of output were dropped in the guest before they were read`);
          if (batch.chunks.length === 0 && !batch.eof && batch.epoch === this.current.epoch) continue;
          let written = Promise.resolve();
          for (const chunk of batch.chunks) written = this.writer.write(chunk.stream, Buffer.from(chunk.data, 'base64'), new Date(chunk.time));
          await written;
          const seq = batch.chunks.at(-1)?.seq ?? (batch.restarted ? 0 : this.current.seq);
          this.current = { epoch: batch.epoch, seq, done: batch.eof, log: await logPosition(this.writer.path) };
          await saveCursor(this.cursorFile, this.current);
          if (batch.eof) return true;
        }
        return false;
      } catch (err) {
        if (signal.aborted) return false;
        if (err instanceof AgentCallError && err.code !== 'Timeout') {
          // The container is gone from the guest, or the agent cannot be reached: nothing more will come.
          this.log(`runv: container ${this.containerId}: output copy stopped: ${err.message}`);
          return false;
        }
        this.log(`runv: container ${this.containerId}: output copy failed, retrying: ${(err as Error).message}`);
        // Lines of a batch written only in part go, so that the retry writes them once.
        await cutBack(this.writer.path, this.current).catch(() => undefined);
        await this.writer.reopen().catch(() => undefined);
        await sleep(PUMP_RETRY_MS, undefined, { signal }).catch(() => undefined);
      }
    }
    return false;
  }
}

export async function readCursor(file: string): Promise<OutputCursor> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (text === null) return { seq: 0, done: false };
  const v = JSON.parse(text) as Partial<OutputCursor>;
  const valid = Number.isSafeInteger(v.seq) && typeof v.done === 'boolean' && (v.epoch === undefined || typeof v.epoch === 'string') &&
    (v.log === undefined || (Number.isSafeInteger(v.log.ino) && Number.isSafeInteger(v.log.bytes)));
  if (!valid) throw new Error(`output cursor ${file} is malformed`);
  return v as OutputCursor;
}

/**
 * Written with rename, so a crash leaves the old cursor or the new; not fsynced: a power loss that
 * could drop it ends the VM, and the output with it.
 */
async function saveCursor(file: string, cursor: OutputCursor): Promise<void> {
  const temporary = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temporary, 'w', 0o600);
  try {
    await handle.writeFile(JSON.stringify(cursor));
  } finally {
    await handle.close();
  }
  await rename(temporary, file);
}

async function logPosition(path: string): Promise<OutputCursor['log']> {
  const info = await stat(path).catch(() => null);
  return info ? { ino: info.ino, bytes: info.size } : undefined;
}

/** Cuts what follows the cursor's position off the log file, if it is still the file the cursor saw. */
async function cutBack(path: string, cursor: OutputCursor): Promise<void> {
  if (!cursor.log) return;
  const info = await stat(path).catch(() => null);
  if (info && info.ino === cursor.log.ino && info.size > cursor.log.bytes) await truncate(path, cursor.log.bytes);
}
