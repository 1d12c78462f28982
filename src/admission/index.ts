import { ApiError } from '../api/errors.js';
import { keyPrefix, objectKey, type ResourceDef } from '../api/resources.js';
import type { KubeObject } from '../api/types.js';
import type { AdmissionPlugin } from '../apiserver/admission.js';
import type { Storage } from '../apiserver/storage.js';
import type { WatchCache } from '../apiserver/watch-cache.js';
import { defaultTolerationSeconds } from './default-toleration-seconds.js';
import { podSecurity } from './pod-security.js';
import { runtimeClass } from './runtime-class.js';
import { serviceAccount } from './service-account.js';

export interface PodAdmissionDeps {
  cache: WatchCache;
  storage: Storage;
  /** The served def of a built-in resource. */
  def(group: string, version: string, plural: string): ResourceDef;
  /** tolerationSeconds of the default not-ready/unreachable tolerations (300 when unset). */
  defaultTolerationSeconds?: number;
}

/**
 * Reads an object from a live watch-cache index, falling back to the store for objects written so
 * recently that the index has not seen them yet (kube's plugins do the same live lookup).
 */
export function cachedLookup(index: Map<string, KubeObject>, storage: Storage, def: ResourceDef) {
  return async (namespace: string, name: string): Promise<KubeObject | undefined> => {
    const cached = index.get(objectKey(def, namespace, name));
    if (cached) return cached;
    try {
      return await storage.get(def, namespace, name);
    } catch (err) {
      if (err instanceof ApiError && err.code === 404) return undefined;
      throw err;
    }
  };
}

/**
 * The pod admission plugins after NamespaceLifecycle, in kube's order: ServiceAccount, PodSecurity,
 * DefaultTolerationSeconds, RuntimeClass. (Mutations all run before validations, so PodSecurity sees
 * the pod as the others left it.)
 */
export async function podAdmissionPlugins(deps: PodAdmissionDeps): Promise<AdmissionPlugin[]> {
  const { cache, storage } = deps;
  const saDef = deps.def('', 'v1', 'serviceaccounts');
  const nsDef = deps.def('', 'v1', 'namespaces');
  const rcDef = deps.def('node.k8s.io', 'v1', 'runtimeclasses');
  const serviceAccounts = await cache.index(keyPrefix(saDef));
  const namespaces = await cache.index(keyPrefix(nsDef));
  const runtimeClasses = cachedLookup(await cache.index(keyPrefix(rcDef)), storage, rcDef);
  return [
    serviceAccount(cachedLookup(serviceAccounts, storage, saDef)),
    podSecurity((name) => namespaces.get(objectKey(nsDef, undefined, name))),
    defaultTolerationSeconds(deps.defaultTolerationSeconds),
    runtimeClass((name) => runtimeClasses('', name)),
  ];
}
