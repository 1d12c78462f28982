import type { IncomingMessage, ServerResponse } from 'node:http';
import { errors } from '../api/errors.js';
import { groupVersion, keyPrefix, type ResourceDef } from '../api/resources.js';
import type { KubeObject, WatchEventType } from '../api/types.js';
import { StoreError, type StoreEvent } from '../store/store.js';
import type { Storage } from './storage.js';
import { objectJson, type WatchCache } from './watch-cache.js';
import { parseRevision } from './storage.js';

/** How often a watch that allows bookmarks gets one. */
export const BOOKMARK_INTERVAL_MS = 30_000;
/** A watch without timeoutSeconds ends after a random time in [MIN, 2*MIN), as kube-apiserver does. */
export const MIN_WATCH_TIMEOUT_S = 1800;
/** A client that lets this much output pile up is dropped rather than buffered without bound. */
export const MAX_WATCH_BACKLOG_BYTES = 32 * 1024 * 1024;

export interface WatchRequest {
  def: ResourceDef;
  namespace: string;
  filter?: (obj: KubeObject) => boolean;
  resourceVersion?: string;
  timeoutSeconds?: number;
  allowBookmarks: boolean;
  /** Turns each object into what the client asked for (e.g. a one-row Table). */
  render: (obj: KubeObject) => unknown;
  /** The render is the identity, so the cached JSON of the object can be reused. */
  plain: boolean;
}

/** Streams watch events as newline-delimited JSON on a chunked response until timeout or disconnect. */
export async function serveWatch(req: IncomingMessage, res: ServerResponse, w: WatchRequest, storage: Storage, cache: WatchCache): Promise<void> {
  const { def, filter } = w;
  const prefix = keyPrefix(def, def.namespaced ? w.namespace || undefined : undefined);
  const write = (type: WatchEventType, object: KubeObject) => {
    const body = w.plain && type !== 'BOOKMARK' && type !== 'ERROR' ? objectJson(object) : JSON.stringify(type === 'ERROR' ? object : w.render(object));
    res.write(`{"type":"${type}","object":${body}}\n`);
    if (res.writableLength > MAX_WATCH_BACKLOG_BYTES) finish();
  };

  let subscription: { close(): void } | undefined;
  const timers: NodeJS.Timeout[] = [];
  let finished = false;
  function finish() {
    if (finished) return;
    finished = true;
    subscription?.close();
    for (const t of timers) clearTimeout(t);
    res.end();
  }
  req.on('close', finish);
  res.on('error', finish);

  let after: number;
  const initial: KubeObject[] = [];
  const rv = w.resourceVersion;
  if (rv === undefined || rv === '' || rv === '0') {
    // "Start at most recent" / "any": the current state as synthetic ADDED events, then changes.
    const list = await storage.list(def, w.namespace, { filter });
    initial.push(...list.items);
    after = Number(list.metadata.resourceVersion);
  } else {
    after = parseRevision(rv);
  }

  res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
  res.flushHeaders();
  for (const obj of initial) write('ADDED', obj);

  let last = after;
  const onEvent = (event: StoreEvent) => {
    if (finished) return;
    last = event.revision;
    const converted = convert(event, filter);
    if (converted) write(converted.type, converted.object);
  };
  try {
    subscription = await cache.subscribe(prefix, after, onEvent);
  } catch (err) {
    if (err instanceof StoreError && err.code === 'compacted') {
      write('ERROR', errors.expired(`too old resource version: ${after} (${err.revision ?? 0})`).toStatus() as unknown as KubeObject);
      finish();
      return;
    }
    throw err;
  }
  if (finished) {
    subscription.close();
    return;
  }
  const timeout = w.timeoutSeconds !== undefined ? w.timeoutSeconds : MIN_WATCH_TIMEOUT_S * (1 + Math.random());
  timers.push(setTimeout(finish, timeout * 1000));
  if (w.allowBookmarks) {
    const bookmark = () => {
      write('BOOKMARK', { apiVersion: groupVersion(def), kind: def.kind, metadata: { resourceVersion: String(Math.max(last, cache.revision)) } });
      timers.push(setTimeout(bookmark, BOOKMARK_INTERVAL_MS).unref());
    };
    timers.push(setTimeout(bookmark, Math.min(BOOKMARK_INTERVAL_MS, timeout * 500)).unref());
  }
}

/**
 * What a filtered watcher sees for a store event: an object that stops matching the selector is
 * DELETED for that watcher, one that starts matching is ADDED.
 */
function convert(event: StoreEvent, filter: ((o: KubeObject) => boolean) | undefined): { type: WatchEventType; object: KubeObject } | undefined {
  if (!filter) return { type: event.type, object: event.object };
  const now = filter(event.object);
  if (event.type === 'ADDED') return now ? { type: 'ADDED', object: event.object } : undefined;
  if (event.type === 'DELETED') return now ? { type: 'DELETED', object: event.object } : undefined;
  const before = event.prevObject ? filter(event.prevObject) : false;
  if (now && before) return { type: 'MODIFIED', object: event.object };
  if (now) return { type: 'ADDED', object: event.object };
  if (before) return { type: 'DELETED', object: event.object };
  return undefined;
}
