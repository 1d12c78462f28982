import { ApiError } from '../api/errors.js';
import type { KubeObject } from '../api/types.js';
import type { KubeClient, Resource } from '../client/client.js';
import { Informer, type InformerOptions } from '../client/informer.js';

/**
 * A controller watches the API through informers and drives objects toward the state it owns.
 *
 * Lifecycle: construct it (registering informers in a shared `SharedInformers`), then call `run`
 * once. `run` waits for its informers to sync, works until `signal` aborts, and then resolves; it
 * never rejects for API failures, which are retried with back-off. Handlers must not assume the
 * informer they share was empty when they subscribed: a controller seeds itself from `list()`
 * after `waitForSync`.
 */
export interface Controller {
  readonly name: string;
  run(signal: AbortSignal): Promise<void>;
}

/** Reports a failed reconcile; conflicts and vanished objects are normal and not reported. */
export type ErrorSink = (controller: string, key: string, err: unknown) => void;

export const defaultErrorSink: ErrorSink = (controller, key, err) => {
  if (err instanceof ApiError && (err.code === 404 || err.code === 409)) return;
  console.error(`${controller}: ${key}: ${err instanceof Error ? err.message : String(err)}`);
};

/**
 * One informer per (resource, namespace, selectors), shared by every controller of a process so a
 * resource is listed and watched once. Informers obtained before `start` begin with it; those
 * obtained later begin at once.
 */
export class SharedInformers {
  private readonly informers = new Map<string, { informer: Informer; stop: AbortController }>();
  private signal?: AbortSignal;

  constructor(readonly client: KubeClient) {}

  get<T extends KubeObject = KubeObject>(r: Resource, options: InformerOptions = {}): Informer<T> {
    const key = informerKey(r, options);
    let entry = this.informers.get(key);
    if (!entry) {
      entry = { informer: new Informer(this.client, r, options), stop: new AbortController() };
      this.informers.set(key, entry);
      if (this.signal) this.launch(entry);
    }
    return entry.informer as unknown as Informer<T>;
  }

  /** Stops and forgets an informer, e.g. of a custom resource no longer served. */
  release(r: Resource, options: InformerOptions = {}): void {
    const key = informerKey(r, options);
    this.informers.get(key)?.stop.abort();
    this.informers.delete(key);
  }

  /** Starts every informer, now and later, until `signal` aborts. */
  start(signal: AbortSignal): void {
    if (this.signal) return;
    this.signal = signal;
    for (const entry of this.informers.values()) this.launch(entry);
  }

  private launch(entry: { informer: Informer; stop: AbortController }): void {
    void entry.informer.run(AbortSignal.any([this.signal!, entry.stop.signal]));
  }
}

function informerKey(r: Resource, o: InformerOptions): string {
  return [r.group, r.version, r.resource, o.namespace ?? '', o.labelSelector ?? '', o.fieldSelector ?? ''].join('|');
}

/** A served resource as discovery describes it (the preferred version of its group). */
export interface ServedResource extends Resource {
  kind: string;
  verbs: string[];
}

interface APIResourceList {
  groupVersion: string;
  resources: { name: string; kind: string; namespaced: boolean; verbs: string[] }[];
}

/**
 * Every top-level resource the server serves, in the preferred version of each group, from the
 * legacy discovery documents (which Atoll's server and kube-apiserver both answer). Groups whose
 * document fails (an aggregated API that is down) are left out rather than failing the whole.
 */
export async function discoverResources(client: KubeClient): Promise<ServedResource[]> {
  const core = await client.json<{ versions: string[] }>('GET', '/api');
  const groups = await client.json<{ groups: { name: string; preferredVersion?: { groupVersion: string }; versions: { groupVersion: string }[] }[] }>('GET', '/apis');
  const paths = [
    ...core.versions.slice(0, 1).map((v) => `/api/${v}`),
    ...groups.groups.map((g) => `/apis/${g.preferredVersion?.groupVersion ?? g.versions[0]!.groupVersion}`),
  ];
  const lists = await Promise.all(paths.map((p) => client.json<APIResourceList>('GET', p).catch(() => undefined)));
  const out: ServedResource[] = [];
  for (const list of lists) {
    if (!list) continue;
    const slash = list.groupVersion.indexOf('/');
    const group = slash < 0 ? '' : list.groupVersion.slice(0, slash);
    const version = list.groupVersion.slice(slash + 1);
    for (const r of list.resources) {
      if (r.name.includes('/')) continue;
      out.push({ group, version, resource: r.name, namespaced: r.namespaced, kind: r.kind, verbs: r.verbs });
    }
  }
  return out;
}

export function resourceId(r: Pick<Resource, 'group' | 'resource'>): string {
  return r.group ? `${r.resource}.${r.group}` : r.resource;
}

export function objectKey(obj: KubeObject): string {
  return obj.metadata.namespace ? `${obj.metadata.namespace}/${obj.metadata.name}` : obj.metadata.name!;
}

export function splitKey(key: string): { namespace?: string; name: string } {
  const slash = key.indexOf('/');
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** Kubernetes timestamps: seconds precision, UTC. */
export function timestamp(ms = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

/** Resolves true once every informer has synced, or false if `signal` aborts first. */
export function waitForSync(signal: AbortSignal, ...informers: { waitForSync(): Promise<void> }[]): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const abort = () => resolve(false);
    signal.addEventListener('abort', abort, { once: true });
    void Promise.all(informers.map((i) => i.waitForSync())).then(() => {
      signal.removeEventListener('abort', abort);
      resolve(!signal.aborted);
    });
  });
}
