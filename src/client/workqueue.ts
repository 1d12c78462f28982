/** Per-key retry back-off of a work queue: base * 2^failures, capped. */
export const RETRY_BASE_MS = 5;
export const RETRY_MAX_MS = 60_000;

/**
 * A deduplicating work queue of keys, as client-go's workqueue: a key queued several times before a
 * worker takes it is processed once; a key being processed is not handed to a second worker, and is
 * queued again afterwards if it was re-added meanwhile. Failures retry with per-key back-off.
 */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private wake?: () => void;

  add(key: string): void {
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.wake?.();
  }

  addAfter(key: string, ms: number): void {
    if (ms <= 0) return this.add(key);
    const existing = this.timers.get(key);
    if (existing) clearTimeout(existing);
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        this.add(key);
      }, ms),
    );
  }

  /** Re-queues after the key's back-off, which grows with each failure until `forget`. */
  retry(key: string): void {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    this.addAfter(key, Math.min(RETRY_BASE_MS * 2 ** n, RETRY_MAX_MS));
  }

  forget(key: string): void {
    this.failures.delete(key);
  }

  get length(): number {
    return this.queue.length;
  }

  /**
   * Runs `handle` on queued keys with `workers` in parallel until `signal` aborts. A handler that
   * throws has its key retried with back-off; one that resolves has its back-off forgotten.
   */
  async run(handle: (key: string) => Promise<void>, signal: AbortSignal, workers = 1, onError?: (key: string, err: unknown) => void): Promise<void> {
    const stop = () => this.wake?.();
    signal.addEventListener('abort', stop, { once: true });
    const worker = async () => {
      while (!signal.aborted) {
        const key = this.queue.shift();
        if (key === undefined) {
          await new Promise<void>((resolve) => {
            const prev = this.wake;
            this.wake = () => {
              this.wake = prev;
              prev?.();
              resolve();
            };
          });
          continue;
        }
        this.queued.delete(key);
        this.processing.add(key);
        try {
          await handle(key);
          this.forget(key);
        } catch (err) {
          onError?.(key, err);
          this.retry(key);
        } finally {
          this.processing.delete(key);
          if (this.dirty.delete(key)) this.add(key);
        }
      }
    };
    await Promise.all(Array.from({ length: workers }, worker));
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
