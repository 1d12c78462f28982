import type { KubeObject } from '../api/types.js';

/**
 * Store is the API server's persistence: a revisioned key-value log, the model etcd and kine use.
 *
 * Lifecycle of a key
 * ------------------
 * Every successful write (create, update, delete) gets the next cluster-wide revision, a positive
 * integer that only grows. A key's value carries two revisions: `createRevision`, the write that
 * created it, and `modRevision`, its latest write. The API server shows `modRevision` to clients as
 * `metadata.resourceVersion`, so the store stamps that field on every object it returns.
 *
 *   create("/registry/core/pods/ns/a", pod)        -> rev 7   (createRevision 7, modRevision 7)
 *   update("/registry/core/pods/ns/a", pod2, 7)    -> rev 8   (compare-and-swap on modRevision)
 *   update("/registry/core/pods/ns/a", pod3, 7)    -> StoreError 'conflict' (8 is current)
 *   delete("/registry/core/pods/ns/a", 8)          -> rev 9   (returns the last value, stamped 9)
 *   get(...)                                       -> undefined
 *
 * History and compaction
 * ----------------------
 * The store keeps every revision until it is compacted. `list` may read the state at a past
 * revision (consistent paging), and `events` replays what happened after a revision. `compact(rev)`
 * forgets history at or below `rev` that a later write superseded; asking for anything older than
 * the compacted revision fails with StoreError 'compacted', which the API server turns into 410.
 *
 * Watch
 * -----
 * `watch` delivers every write after a given revision, in revision order, without gaps or
 * duplicates, until the signal aborts. The API server opens one store watch and fans it out in
 * memory; clients never open store watches of their own.
 *
 * Keys are `/registry/<group or "core">/<resource>/[<namespace>/]<name>`. Prefix reads match keys
 * that start with the prefix; callers end prefixes with "/".
 */
export interface Store {
  /** The latest revision written (0 for an empty store). */
  revision(): Promise<number>;
  /** The revision at or below which history is gone (0 if never compacted). */
  compactedRevision(): Promise<number>;

  get(key: string): Promise<StoredObject | undefined>;
  /**
   * Keys under `prefix` in key order, as of `revision` (default: latest). `startAfter` resumes after
   * a key (paging); `limit` bounds the page. `more` tells whether keys remain after this page.
   */
  list(prefix: string, options?: ListOptions): Promise<ListResult>;
  /** Number of live keys under `prefix` at the latest revision. */
  count(prefix: string): Promise<number>;

  /** Fails with 'exists' if the key is live. */
  create(key: string, object: KubeObject): Promise<StoredObject>;
  /** Compare-and-swap: fails with 'notfound' if absent, 'conflict' if modRevision moved on. */
  update(key: string, object: KubeObject, expectedModRevision: number): Promise<StoredObject>;
  /**
   * Removes the key and returns its last value stamped with the delete's revision. With
   * `expectedModRevision`, fails with 'conflict' if the key moved on.
   */
  delete(key: string, expectedModRevision?: number): Promise<StoredObject>;

  /** Writes under `prefix` with revision in (afterRevision, uptoRevision], in order. */
  events(prefix: string, afterRevision: number, uptoRevision?: number): Promise<StoreEvent[]>;
  /**
   * Calls `onEvent` for every write under `prefix` with revision > `afterRevision` (history first,
   * then live writes) until `signal` aborts. Rejects with 'compacted' if that history is gone.
   */
  watch(prefix: string, afterRevision: number, onEvent: (event: StoreEvent) => void, signal: AbortSignal): Promise<void>;

  compact(revision: number): Promise<void>;
  close(): Promise<void>;
}

export interface StoredObject {
  key: string;
  /** The value, with metadata.resourceVersion set to String(modRevision). */
  object: KubeObject;
  createRevision: number;
  modRevision: number;
}

export interface ListOptions {
  revision?: number;
  startAfter?: string;
  limit?: number;
}

export interface ListResult {
  items: StoredObject[];
  /** The revision the list reflects. */
  revision: number;
  more: boolean;
}

export interface StoreEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  key: string;
  revision: number;
  /** For DELETED, the last value; stamped with `revision` in every case. */
  object: KubeObject;
  /** The value before this write (MODIFIED and DELETED), stamped with its own modRevision. */
  prevObject?: KubeObject;
}

export type StoreErrorCode = 'exists' | 'notfound' | 'conflict' | 'compacted';

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    readonly key: string,
    message: string,
    /** For 'compacted': the compacted revision; for 'conflict': the current modRevision. */
    readonly revision?: number,
  ) {
    super(message);
    this.name = 'StoreError';
  }
}
