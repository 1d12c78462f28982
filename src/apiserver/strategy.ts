import type { ResourceDef } from '../api/resources.js';
import { compare, tryParseQuantity } from '../api/quantity.js';
import type { KubeObject, UserInfo } from '../api/types.js';
import { csrStrategy } from './csr-strategy.js';

/**
 * Per-kind rules of the generic storage, as kube-apiserver's RESTCreateStrategy / RESTUpdateStrategy /
 * RESTDeleteStrategy give them: what a create may set, what an update may touch, how deletion waits.
 */
export interface Strategy {
  /** Status a new object starts with (its submitted status is dropped); absent keeps what was sent. */
  initialStatus?(obj: KubeObject): unknown;
  /** Sets what a create takes from the requester rather than the body (a CSR's requesting user). */
  prepareForCreate?(obj: KubeObject, user: UserInfo): void;
  /** Seconds a delete waits for graceful termination; 0 deletes at once. */
  gracePeriod?(obj: KubeObject, requested: number | undefined): number;
  /** Whether PUT of a missing object creates it. */
  createOnUpdate?: boolean;
  /** Whether the main resource carries `metadata.generation`. */
  generation?: boolean;
  /** Undoes changes an update of the main resource may not make (fields owned by a subresource). */
  prepareForUpdate?(next: KubeObject, old: KubeObject): void;
  /**
   * Subresources that write part of the object: copy that part from `next` into `stored`, or throw
   * an ApiError to refuse. An entry for `status` replaces the generic rule (status only).
   */
  subresourceUpdate?: Record<string, (stored: KubeObject, next: KubeObject) => void>;
}

type NamespaceSpec = { finalizers?: string[] } | undefined;

interface ContainerResources {
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
}

function sameQuantity(a: string | number, b: string | number): boolean {
  const qa = tryParseQuantity(a);
  const qb = tryParseQuantity(b);
  return qa !== undefined && qb !== undefined && compare(qa, qb) === 0;
}

/** kube's GetPodQOS: Guaranteed when every container limits cpu and memory at its requests. */
export function podQosClass(pod: KubeObject): string {
  const spec = (pod.spec ?? {}) as { containers?: ContainerResources[]; initContainers?: ContainerResources[] };
  const containers = [...(spec.containers ?? []), ...(spec.initContainers ?? [])];
  let anySet = false;
  let guaranteed = true;
  for (const c of containers) {
    const requests = c.resources?.requests ?? {};
    const limits = c.resources?.limits ?? {};
    if (Object.keys(requests).length || Object.keys(limits).length) anySet = true;
    for (const r of ['cpu', 'memory']) {
      const limit = limits[r];
      const request = requests[r];
      if (limit === undefined || (request !== undefined && !sameQuantity(request, limit))) guaranteed = false;
    }
  }
  if (!anySet) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

const STRATEGIES: Record<string, Strategy> = {
  '/Pod': {
    initialStatus: (pod) => ({ phase: 'Pending', qosClass: podQosClass(pod) }),
    gracePeriod(pod, requested) {
      const spec = pod.spec as { nodeName?: string; terminationGracePeriodSeconds?: number } | undefined;
      const phase = (pod.status as { phase?: string } | undefined)?.phase;
      // An unscheduled or finished pod has no kubelet to wait for.
      if (!spec?.nodeName || phase === 'Succeeded' || phase === 'Failed') return 0;
      return requested ?? spec.terminationGracePeriodSeconds ?? 30;
    },
  },
  '/Namespace': {
    initialStatus: () => ({ phase: 'Active' }),
    // spec.finalizers belong to the namespace controller, which writes them through /finalize.
    prepareForUpdate(next, old) {
      const finalizers = (old.spec as NamespaceSpec)?.finalizers;
      next.spec = { ...(next.spec as object), finalizers };
      if (!finalizers) delete (next.spec as Record<string, unknown>).finalizers;
    },
    subresourceUpdate: {
      finalize(stored, next) {
        stored.spec = { ...(stored.spec as object), finalizers: (next.spec as NamespaceSpec)?.finalizers ?? [] };
      },
    },
  },
  '/Service': { initialStatus: () => ({ loadBalancer: {} }) },
  '/PersistentVolume': { initialStatus: () => ({ phase: 'Pending' }) },
  '/PersistentVolumeClaim': { initialStatus: () => ({ phase: 'Pending' }) },
  '/Endpoints': { createOnUpdate: true },
  '/Event': { createOnUpdate: true },
  'events.k8s.io/Event': { createOnUpdate: true },
  'coordination.k8s.io/Lease': { createOnUpdate: true },
  'apps/Deployment': { initialStatus: () => ({}), generation: true },
  'apps/ReplicaSet': { initialStatus: () => ({ replicas: 0 }), generation: true },
  'apps/DaemonSet': {
    initialStatus: () => ({ currentNumberScheduled: 0, desiredNumberScheduled: 0, numberMisscheduled: 0, numberReady: 0 }),
    generation: true,
  },
  'apiextensions.k8s.io/CustomResourceDefinition': { initialStatus: () => ({}), generation: true },
  'certificates.k8s.io/CertificateSigningRequest': csrStrategy,
};

const DEFAULT: Strategy = {};

export function strategyFor(def: ResourceDef): Strategy {
  if (def.custom) return { generation: true };
  return STRATEGIES[`${def.group}/${def.kind}`] ?? { ...DEFAULT, generation: def.subresources.includes('status') };
}
