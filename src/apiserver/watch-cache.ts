import type { KubeObject } from '../api/types.js';
import { StoreError, type Store, type StoreEvent } from '../store/store.js';

/** How many recent events stay in memory for watches that resume from a recent resourceVersion. */
export const DEFAULT_RING_SIZE = 10_000;

export interface Subscription {
  close(): void;
}

interface Subscriber {
  prefix: string;
  after: number;
  onEvent: (event: StoreEvent) => void;
  /** Live events that arrived while history was still being replayed. */
  buffer?: StoreEvent[];
}

const jsonCache = new WeakMap<KubeObject, string>();

/** JSON of an object, computed once however many watchers receive it. */
export function objectJson(object: KubeObject): string {
  let json = jsonCache.get(object);
  if (json === undefined) {
    json = JSON.stringify(object);
    jsonCache.set(object, json);
  }
  return json;
}

/**
 * The one store watch of the API server, fanned out in memory. A recent window of events is kept
 * so that watches resuming from a recent resourceVersion replay from memory; older ones read the
 * store's history once and then join the live stream without a gap.
 *
 * It also keeps live indexes of a few small prefixes (RBAC objects, bootstrap secrets, CRDs,
 * namespaces) that the server consults synchronously on every request.
 */
export class WatchCache {
  private readonly ring: StoreEvent[] = [];
  /** Every event with a revision above this is in the ring. */
  private floor = 0;
  private last = 0;
  private readonly subscribers = new Set<Subscriber>();
  private readonly indexes = new Map<string, Map<string, KubeObject>>();
  private readonly listeners = new Set<(event: StoreEvent) => void>();

  constructor(
    private readonly store: Store,
    private readonly ringSize = DEFAULT_RING_SIZE,
  ) {}

  async start(signal: AbortSignal): Promise<void> {
    this.floor = this.last = await this.store.revision();
    await this.store.watch('/registry/', this.last, (event) => this.dispatch(event), signal);
  }

  /** The latest revision dispatched to watchers. */
  get revision(): number {
    return this.last;
  }

  /**
   * A live map from key to object for everything under `prefix`, kept current by the watch.
   * Meant for small prefixes only.
   */
  async index(prefix: string): Promise<Map<string, KubeObject>> {
    const existing = this.indexes.get(prefix);
    if (existing) return existing;
    const map = new Map<string, KubeObject>();
    this.indexes.set(prefix, map);
    const since = this.last;
    const listing = await this.store.list(prefix);
    for (const item of listing.items) map.set(item.key, item.object);
    // Writes between `since` and the list are already in the listing; later ones arrive by dispatch.
    if (listing.revision > since) {
      for (const event of await this.store.events(prefix, listing.revision, this.last)) applyToIndex(map, event);
    }
    return map;
  }

  /** Called for every event after watchers saw it; used by in-process controllers of the server. */
  onEvent(listener: (event: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Delivers every event under `prefix` with revision > `after`, in order, until closed. Rejects with
   * StoreError 'compacted' when that history is gone.
   */
  async subscribe(prefix: string, after: number, onEvent: (event: StoreEvent) => void): Promise<Subscription> {
    const sub: Subscriber = { prefix, after, onEvent };
    const close = () => {
      this.subscribers.delete(sub);
    };
    // The store's compaction bounds history for everyone, even where the ring still remembers.
    const compacted = await this.store.compactedRevision();
    if (after < compacted) throw new StoreError('compacted', prefix, `revision ${after} is compacted`, compacted);
    if (after >= this.floor) {
      for (const event of this.ring) {
        if (event.revision > after && event.key.startsWith(prefix)) onEvent(event);
      }
      this.subscribers.add(sub);
      return { close };
    }
    sub.buffer = [];
    this.subscribers.add(sub);
    try {
      const upto = this.last;
      for (const event of await this.store.events(prefix, after, upto)) onEvent(event);
      const buffered = sub.buffer;
      delete sub.buffer;
      for (const event of buffered) if (event.revision > upto) onEvent(event);
    } catch (err) {
      close();
      throw err;
    }
    return { close };
  }

  private dispatch(event: StoreEvent): void {
    this.last = event.revision;
    this.ring.push(event);
    if (this.ring.length > this.ringSize) this.floor = this.ring.shift()!.revision;
    for (const [prefix, map] of this.indexes) if (event.key.startsWith(prefix)) applyToIndex(map, event);
    for (const sub of this.subscribers) {
      if (event.revision <= sub.after || !event.key.startsWith(sub.prefix)) continue;
      if (sub.buffer) sub.buffer.push(event);
      else sub.onEvent(event);
    }
    for (const listener of this.listeners) listener(event);
  }
}

function applyToIndex(map: Map<string, KubeObject>, event: StoreEvent): void {
  if (event.type === 'DELETED') map.delete(event.key);
  else map.set(event.key, event.object);
}
