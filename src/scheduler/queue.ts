import type { PodInfo } from './framework.js';

/** kube's podInitialBackoffDuration and podMaxBackoffDuration. */
export const POD_INITIAL_BACKOFF_MS = 1_000;
export const POD_MAX_BACKOFF_MS = 10_000;
/** An unschedulable pod is retried after this long even if no cluster event moved it. */
export const POD_MAX_IN_UNSCHEDULABLE_MS = 5 * 60_000;
export const UNSCHEDULABLE_FLUSH_PERIOD_MS = 30_000;

/** Back-off after `attempts` scheduling attempts: 1 s, 2 s, 4 s, 8 s, then 10 s. */
export function backoffDuration(attempts: number): number {
  let d = POD_INITIAL_BACKOFF_MS;
  for (let i = 1; i < attempts; i++) {
    d *= 2;
    if (d >= POD_MAX_BACKOFF_MS) return POD_MAX_BACKOFF_MS;
  }
  return d;
}

export type QueueState = 'active' | 'backoff' | 'unschedulable' | 'inFlight';

export interface QueuedPod {
  info: PodInfo;
  /** Scheduling attempts so far, counted when the pod is popped. */
  attempts: number;
  state: QueueState;
  /** When the pod last entered the active queue; earlier goes first among equal priorities. */
  timestamp: number;
  /** When the last attempt failed. */
  failedAt: number;
  /** The plugins that ruled out nodes in the last failed attempt. */
  rejectedBy?: ReadonlySet<string>;
  seq: number;
}

function before(a: QueuedPod, b: QueuedPod): boolean {
  if (a.info.priority !== b.info.priority) return a.info.priority > b.info.priority;
  if (a.timestamp !== b.timestamp) return a.timestamp < b.timestamp;
  return a.seq < b.seq;
}

/** What of a pod can make it schedulable when it changes; status updates (our own) do not. */
function schedulingShape(info: PodInfo): string {
  return JSON.stringify([info.pod.spec, info.pod.metadata.labels]);
}

/**
 * The scheduling queue, as kube's PriorityQueue: an active queue ordered by priority then age; a
 * back-off queue of pods waiting out their back-off; and the unschedulable pods, which wait for a
 * cluster event (a node added or changed, a pod deleted) that may let them fit. Such an event moves
 * them to the active queue, or to back-off if theirs has not run out yet.
 */
export class SchedulingQueue {
  private readonly entries = new Map<string, QueuedPod>();
  /** The entries in state 'unschedulable', so cluster events touch only them. */
  private readonly waiting = new Map<string, QueuedPod>();
  private readonly heap: QueuedPod[] = [];
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private waiters: (() => void)[] = [];
  private seq = 0;
  private closed = false;

  constructor(private readonly now: () => number = Date.now) {}

  /** A new pending pod, or a newer version of a queued one. */
  add(info: PodInfo): void {
    const entry = this.entries.get(info.key);
    if (!entry) {
      const e: QueuedPod = { info, attempts: 0, state: 'inFlight', timestamp: 0, failedAt: 0, seq: this.seq++ };
      this.entries.set(info.key, e);
      this.activate(e);
      return;
    }
    const changed = entry.state === 'unschedulable' && schedulingShape(entry.info) !== schedulingShape(info);
    entry.info = info;
    if (changed) this.moveOne(entry);
  }

  /** The pod was bound, deleted, or is no longer ours. */
  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.waiting.delete(key);
    clearTimeout(this.timers.get(key));
    this.timers.delete(key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  state(key: string): QueueState | undefined {
    return this.entries.get(key)?.state;
  }

  /** The next pod to schedule, now in flight; undefined when the active queue is empty. */
  pop(): QueuedPod | undefined {
    while (this.heap.length > 0) {
      const e = this.popHeap();
      if (e.state !== 'active' || this.entries.get(e.info.key) !== e) continue;
      e.state = 'inFlight';
      e.attempts++;
      return e;
    }
    return undefined;
  }

  /** The in-flight pod found a node; the queue forgets it. */
  done(entry: QueuedPod): void {
    if (this.entries.get(entry.info.key) === entry) this.entries.delete(entry.info.key);
  }

  /** The in-flight pod fits nowhere, for the reasons of `rejectedBy`; it waits for a cluster event. */
  unschedulable(entry: QueuedPod, rejectedBy?: ReadonlySet<string>): void {
    if (this.entries.get(entry.info.key) !== entry) return;
    entry.state = 'unschedulable';
    entry.failedAt = this.now();
    entry.rejectedBy = rejectedBy;
    this.waiting.set(entry.info.key, entry);
  }

  /** The in-flight pod failed for another reason (its binding, say); it is retried after back-off. */
  backoff(entry: QueuedPod): void {
    if (this.entries.get(entry.info.key) !== entry) return;
    entry.failedAt = this.now();
    this.toBackoff(entry, backoffDuration(entry.attempts));
  }

  /** A cluster event that may make unschedulable pods fit: retry them all. */
  moveAllToActiveOrBackoff(): void {
    for (const e of this.waiting.values()) this.moveOne(e);
  }

  /**
   * A cluster event that only some plugins care about (a pod placed, say, for inter-pod affinity):
   * retry the pods one of `plugins` ruled out, as kube's queueing hints do, and leave the others.
   */
  moveRejectedByToActiveOrBackoff(plugins: readonly string[]): void {
    for (const e of this.waiting.values()) if (plugins.some((p) => e.rejectedBy?.has(p))) this.moveOne(e);
  }

  /** Retries pods that have waited POD_MAX_IN_UNSCHEDULABLE_MS without an event. */
  flushUnschedulableLeftover(): void {
    const now = this.now();
    for (const e of this.waiting.values()) if (now - e.failedAt > POD_MAX_IN_UNSCHEDULABLE_MS) this.moveOne(e);
  }

  /** Resolves when a pod is in the active queue or `signal` aborts. */
  wait(signal: AbortSignal): Promise<void> {
    if (this.heap.length > 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.waiters.push(done);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  /** Stops all back-off timers; nothing is timed after this. */
  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const w of this.waiters.splice(0)) w();
  }

  private moveOne(e: QueuedPod): void {
    this.waiting.delete(e.info.key);
    const remaining = e.failedAt + backoffDuration(e.attempts) - this.now();
    if (remaining > 0) this.toBackoff(e, remaining);
    else this.activate(e);
  }

  private toBackoff(e: QueuedPod, ms: number): void {
    e.state = 'backoff';
    const key = e.info.key;
    clearTimeout(this.timers.get(key));
    if (this.closed) return;
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        if (this.entries.get(key) === e && e.state === 'backoff') this.activate(e);
      }, ms),
    );
  }

  private activate(e: QueuedPod): void {
    clearTimeout(this.timers.get(e.info.key));
    this.timers.delete(e.info.key);
    e.state = 'active';
    e.timestamp = this.now();
    this.pushHeap(e);
    for (const w of this.waiters.splice(0)) w();
  }

  private pushHeap(e: QueuedPod): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private popHeap(): QueuedPod {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}
