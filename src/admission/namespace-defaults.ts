import { ApiError } from '../api/errors.js';
import { keyPrefix, objectKey, type ResourceDef } from '../api/resources.js';
import type { KubeObject, UserInfo } from '../api/types.js';
import type { Storage, WriteOptions } from '../apiserver/storage.js';
import type { WatchCache } from '../apiserver/watch-cache.js';
import type { StoreEvent } from '../store/store.js';
import { DEFAULT_SERVICE_ACCOUNT, ROOT_CA_CONFIGMAP } from './service-account.js';

const ROOT_CA_DESCRIPTION =
  'Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.';
const CONTROLLER: UserInfo = { name: 'system:kube-controller-manager', groups: ['system:masters'] };

export interface NamespaceDefaultsOptions {
  storage: Storage;
  cache: WatchCache;
  /** The served `v1` defs of namespaces, serviceaccounts and configmaps. */
  defs: { namespaces: ResourceDef; serviceAccounts: ResourceDef; configMaps: ResourceDef };
  /** PEM of the cluster CA, published as `ca.crt`. */
  caPem: string;
  /** Failures of background writes (other than the expected races) go here. */
  onError?: (err: unknown) => void;
}

/**
 * What kube-controller-manager's serviceaccounts and root-ca-cert-publisher controllers do, run inside
 * the API server: every active namespace has a `default` ServiceAccount and a `kube-root-ca.crt`
 * ConfigMap holding the cluster CA. They are created when a namespace appears, recreated when deleted,
 * and the ConfigMap's data is put back when someone changes it.
 *
 * Lifecycle: `start` syncs every existing namespace and then follows the watch cache's events until
 * the signal aborts. Writes run in the background; a namespace that is terminating is left alone.
 */
export class NamespaceDefaults {
  private namespaces = new Map<string, KubeObject>();
  private signal?: AbortSignal;

  constructor(private readonly opts: NamespaceDefaultsOptions) {}

  async start(signal: AbortSignal): Promise<void> {
    const { cache, defs } = this.opts;
    this.signal = signal;
    this.namespaces = await cache.index(keyPrefix(defs.namespaces));
    const off = cache.onEvent((event) => this.onEvent(event));
    signal.addEventListener('abort', off, { once: true });
    await Promise.all([...this.namespaces.values()].map((ns) => this.ensure(ns.metadata.name!)));
  }

  private onEvent(event: StoreEvent): void {
    const { defs } = this.opts;
    const nsPrefix = keyPrefix(defs.namespaces);
    if (event.key.startsWith(nsPrefix)) {
      if (event.type === 'ADDED') this.background(this.ensure(event.key.slice(nsPrefix.length)));
      return;
    }
    const ns = event.key.split('/').at(-2) ?? '';
    if (event.key === objectKey(defs.serviceAccounts, ns, DEFAULT_SERVICE_ACCOUNT) && event.type === 'DELETED') {
      this.background(this.ensure(ns));
    } else if (event.key === objectKey(defs.configMaps, ns, ROOT_CA_CONFIGMAP)) {
      if (event.type === 'DELETED' || !this.holdsCa(event.object)) this.background(this.ensure(ns));
    }
  }

  private background(work: Promise<void>): void {
    work.catch((err) => {
      if (!this.signal?.aborted) this.opts.onError?.(err);
    });
  }

  private active(namespace: string): boolean {
    const ns = this.namespaces.get(objectKey(this.opts.defs.namespaces, undefined, namespace));
    return !!ns && !ns.metadata.deletionTimestamp && (ns.status as { phase?: string } | undefined)?.phase !== 'Terminating';
  }

  private holdsCa(cm: KubeObject): boolean {
    return (cm.data as Record<string, string> | undefined)?.['ca.crt'] === this.opts.caPem;
  }

  /** Creates or repairs the namespace's default account and CA ConfigMap. */
  private async ensure(namespace: string): Promise<void> {
    if (this.signal?.aborted || !this.active(namespace)) return;
    const { storage, defs, caPem } = this.opts;
    const opts: WriteOptions = { user: CONTROLLER, fieldManager: 'kube-controller-manager', dryRun: false, fieldValidation: 'Ignore', warnings: [] };
    await ignoreRaces(async () => {
      if (await existing(storage, defs.serviceAccounts, namespace, DEFAULT_SERVICE_ACCOUNT)) return;
      await storage.create(defs.serviceAccounts, namespace, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: DEFAULT_SERVICE_ACCOUNT } }, opts);
    });
    await ignoreRaces(async () => {
      const cm = await existing(storage, defs.configMaps, namespace, ROOT_CA_CONFIGMAP);
      if (cm && this.holdsCa(cm)) return;
      if (cm) {
        await storage.patch(defs.configMaps, namespace, ROOT_CA_CONFIGMAP, 'merge', { data: { 'ca.crt': caPem } }, opts);
        return;
      }
      const body: KubeObject = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: ROOT_CA_CONFIGMAP, annotations: { 'kubernetes.io/description': ROOT_CA_DESCRIPTION } },
        data: { 'ca.crt': caPem },
      };
      await storage.create(defs.configMaps, namespace, body, opts);
    });
  }
}

async function existing(storage: Storage, def: ResourceDef, namespace: string, name: string): Promise<KubeObject | undefined> {
  try {
    return await storage.get(def, namespace, name);
  } catch (err) {
    if (err instanceof ApiError && err.code === 404) return undefined;
    throw err;
  }
}

/**
 * Another writer got there first (409), or the namespace went away or started terminating
 * meanwhile (404, 403): the next event settles it.
 */
async function ignoreRaces(write: () => Promise<void>): Promise<void> {
  try {
    await write();
  } catch (err) {
    if (err instanceof ApiError && [403, 404, 409].includes(err.code)) return;
    throw err;
  }
}
