import { BUILTIN_RESOURCES } from '../api/resources.js';
import type { KubeObject, Status } from '../api/types.js';
import type { KubeClient, Resource } from './client.js';

/** Back-off after a failed list or watch, doubling up to the maximum. */
export const RELIST_BACKOFF_MIN_MS = 200;
export const RELIST_BACKOFF_MAX_MS = 10_000;
/** Watches are renewed this often even when nothing breaks them. */
export const WATCH_TIMEOUT_S = 300;

/** The built-in resources by plural (and "group/plural" for named groups), for clients. */
export const RESOURCES: Record<string, Resource> = Object.fromEntries(
  BUILTIN_RESOURCES.map((d) => [d.group ? `${d.group}/${d.plural}` : d.plural, { group: d.group, version: d.version, resource: d.plural, namespaced: d.namespaced }]),
);

export function resource(name: string): Resource {
  const r = RESOURCES[name];
  if (!r) throw new Error(`unknown resource ${name}`);
  return r;
}

export interface InformerHandlers<T extends KubeObject> {
  add?(obj: T): void;
  update?(oldObj: T, newObj: T): void;
  delete?(obj: T): void;
}

export interface InformerOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/**
 * A local cache of one resource kept current by list + watch, as client-go's shared informer: it
 * lists, watches from the list's resourceVersion, and relists when the watch expires (410) or
 * breaks. Handlers see adds, updates and deletes; a relist reconciles what changed while away.
 */
export class Informer<T extends KubeObject = KubeObject> {
  private readonly items = new Map<string, T>();
  private readonly handlers: InformerHandlers<T>[] = [];
  private synced = false;
  private syncWaiters: (() => void)[] = [];

  constructor(
    private readonly client: KubeClient,
    readonly resource: Resource,
    private readonly options: InformerOptions = {},
  ) {}

  on(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list has been loaded. */
  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  list(namespace?: string): T[] {
    const all = [...this.items.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace);
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.items.get(keyOf(namespace, name));
  }

  /** Runs until `signal` aborts; never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    let backoff = RELIST_BACKOFF_MIN_MS;
    while (!signal.aborted) {
      try {
        let rv = await this.relist();
        backoff = RELIST_BACKOFF_MIN_MS;
        for (;;) {
          if (signal.aborted) return;
          let expired = false;
          await this.client.watch(
            this.resource,
            this.options.namespace,
            { ...this.selectors(), resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds: WATCH_TIMEOUT_S },
            (event) => {
              if (event.type === 'ERROR') {
                expired = (event.object as unknown as Status).code === 410;
                return;
              }
              rv = event.object.metadata.resourceVersion ?? rv;
              if (event.type === 'BOOKMARK') return;
              this.apply(event.type, event.object as T);
            },
            signal,
          );
          if (expired) break;
        }
      } catch {
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, RELIST_BACKOFF_MAX_MS);
      }
    }
  }

  private selectors() {
    return { labelSelector: this.options.labelSelector, fieldSelector: this.options.fieldSelector };
  }

  /** Lists everything and reconciles the cache with it; returns the list's resourceVersion. */
  private async relist(): Promise<string> {
    const seen = new Set<string>();
    let rv = '';
    let token: string | undefined;
    do {
      const page = await this.client.list<T>(this.resource, this.options.namespace, { ...this.selectors(), limit: 500, continue: token });
      for (const obj of page.items) {
        const key = keyOf(obj.metadata.namespace, obj.metadata.name!);
        seen.add(key);
        this.apply(this.items.has(key) ? 'MODIFIED' : 'ADDED', obj);
      }
      rv = page.metadata.resourceVersion ?? rv;
      token = page.metadata.continue;
    } while (token);
    for (const [key, obj] of this.items) if (!seen.has(key)) this.apply('DELETED', obj);
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    return rv;
  }

  private apply(type: 'ADDED' | 'MODIFIED' | 'DELETED', obj: T): void {
    const key = keyOf(obj.metadata.namespace, obj.metadata.name!);
    const old = this.items.get(key);
    if (type === 'DELETED') {
      this.items.delete(key);
      for (const h of this.handlers) h.delete?.(obj);
      return;
    }
    if (old && old.metadata.resourceVersion === obj.metadata.resourceVersion) return;
    this.items.set(key, obj);
    for (const h of this.handlers) {
      if (old) h.update?.(old, obj);
      else h.add?.(obj);
    }
  }
}

function keyOf(namespace: string | undefined, name: string): string {
  return namespace ? `${namespace}/${name}` : name;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
