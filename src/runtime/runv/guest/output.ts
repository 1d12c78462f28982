import { randomBytes } from 'node:crypto';
import type { OutputChunk, ReadOutputResult } from '../agent-protocol.js';

/** Output kept per process while nobody reads it; past this the oldest chunks go (and are counted). */
export const OUTPUT_BUFFER_BYTES = 1024 * 1024;
/** Larger writes are split, so that dropping the oldest chunk never drops much more than needed. */
const MAX_CHUNK_BYTES = 64 * 1024;

interface Chunk { seq: number; stream: 'stdout' | 'stderr'; data: Buffer; time: number }

/**
 * One process's stdout and stderr as a bounded, numbered sequence of chunks. The host reads with a
 * cursor (`after`: the last seq it has), so a reader that disconnects and comes back loses nothing
 * that is still held; output produced while no one reads is kept up to `limitBytes`, the oldest
 * dropped first. `close()` marks the end: once a reader has every chunk, it is told `eof`.
 */
export class OutputBuffer {
  /** Distinguishes this buffer's numbering from that of an earlier agent process. */
  readonly epoch = randomBytes(6).toString('hex');
  private readonly chunks: Chunk[] = [];
  private bytes = 0;
  private nextSeq = 1;
  private closed = false;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly limitBytes = OUTPUT_BUFFER_BYTES) {}

  push(stream: 'stdout' | 'stderr', data: Buffer, time = Date.now()): void {
    if (this.closed) return;
    for (let at = 0; at < data.length; at += MAX_CHUNK_BYTES) {
      const part = data.subarray(at, at + MAX_CHUNK_BYTES);
      this.chunks.push({ seq: this.nextSeq++, stream, data: part, time });
      this.bytes += part.length;
    }
    while (this.bytes > this.limitBytes && this.chunks.length > 1) this.bytes -= this.chunks.shift()!.data.length;
    this.wake();
  }

  close(): void {
    this.closed = true;
    this.wake();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * The chunks after seq `after`, up to `maxBytes` of data (at least one chunk when any is held). When
   * there are none yet and the buffer is open, waits up to `timeoutMs` for output, or until `signal`.
   */
  async read(after: number, timeoutMs: number, maxBytes: number, signal?: AbortSignal): Promise<ReadOutputResult> {
    if (!this.hasAfter(after) && !this.closed && timeoutMs > 0) await this.changed(timeoutMs, signal);
    const chunks: OutputChunk[] = [];
    let size = 0;
    let last = after;
    for (const chunk of this.chunks) {
      if (chunk.seq <= after) continue;
      if (chunks.length > 0 && size + chunk.data.length > maxBytes) break;
      chunks.push({ seq: chunk.seq, stream: chunk.stream, data: chunk.data.toString('base64'), time: chunk.time });
      size += chunk.data.length;
      last = chunk.seq;
    }
    const firstHeld = this.chunks[0]?.seq ?? this.nextSeq;
    return {
      epoch: this.epoch,
      chunks,
      dropped: Math.max(0, firstHeld - after - 1),
      eof: this.closed && Math.max(last, after) >= this.nextSeq - 1,
    };
  }

  private hasAfter(after: number): boolean {
    return this.nextSeq - 1 > after;
  }

  private changed(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}
