// Per-key exponential back-off, as client-go's flowcontrol.Backoff that the kubelet uses for
// crash loops and image pulls.

/** kubelet: back-off for restarting a crashed container starts at 10 s ... */
export const CRASH_BACKOFF_INITIAL_MS = 10_000;
/** ... and doubles up to 5 minutes (MaxContainerBackOff). */
export const CRASH_BACKOFF_MAX_MS = 300_000;
/** kubelet's image pull back-off uses the same bounds. */
export const IMAGE_BACKOFF_INITIAL_MS = 10_000;
export const IMAGE_BACKOFF_MAX_MS = 300_000;

interface Entry {
  backoffMs: number;
  lastUpdate: number;
}

/**
 * `next(key)` records a failure-driven retry and grows the key's delay (initial, then doubling up
 * to max); an entry untouched for twice `max` starts over, which is how a container that ran fine
 * for 10 minutes gets its short back-off back.
 */
export class Backoff {
  private readonly entries = new Map<string, Entry>();

  constructor(
    readonly initialMs: number,
    readonly maxMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The key's current delay, 0 when it has none. */
  get(key: string): number {
    return this.entries.get(key)?.backoffMs ?? 0;
  }

  next(key: string): void {
    const now = this.now();
    const entry = this.entries.get(key);
    if (!entry || this.expired(entry, now)) this.entries.set(key, { backoffMs: this.initialMs, lastUpdate: now });
    else this.entries.set(key, { backoffMs: Math.min(entry.backoffMs * 2, this.maxMs), lastUpdate: now });
  }

  /** Whether an event at `eventTime` (a container's finish) is still inside the key's back-off. */
  inBackoffSince(key: string, eventTime: number): boolean {
    const entry = this.entries.get(key);
    if (!entry || this.expired(entry, eventTime)) return false;
    return this.now() - eventTime < entry.backoffMs;
  }

  /** Whether the last `next` is still inside the key's back-off (image pulls). */
  inBackoffSinceUpdate(key: string): boolean {
    const entry = this.entries.get(key);
    if (!entry) return false;
    return this.now() - entry.lastUpdate < entry.backoffMs;
  }

  /** When a back-off measured from `eventTime` (or the last update) ends, for scheduling a retry. */
  endsAt(key: string, eventTime?: number): number | undefined {
    const entry = this.entries.get(key);
    return entry ? (eventTime ?? entry.lastUpdate) + entry.backoffMs : undefined;
  }

  reset(key: string): void {
    this.entries.delete(key);
  }

  /** Drops every key starting with `prefix` (a pod's keys once it is gone). */
  resetPrefix(prefix: string): void {
    for (const key of this.entries.keys()) if (key.startsWith(prefix)) this.entries.delete(key);
  }

  private expired(entry: Entry, eventTime: number): boolean {
    return eventTime - entry.lastUpdate > this.maxMs * 2;
  }
}

/** A duration as Go's time.Duration prints it (10s, 1m20s, 5m0s, 500ms), which kubelet messages carry. */
export function goDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${ms}ms`;
  const totalSeconds = ms / 1000;
  const hours = Math.floor(totalSeconds / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = +(totalSeconds % 60).toFixed(3);
  if (hours > 0) return `${hours}h${minutes}m${seconds}s`;
  if (minutes > 0) return `${minutes}m${seconds}s`;
  return `${seconds}s`;
}
