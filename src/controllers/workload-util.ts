import { ApiError } from '../api/errors.js';
import { fromLabelSelector, matches, type LabelSelector, type LabelSelectorObject } from '../api/labels.js';
import type { KubeObject, OwnerReference } from '../api/types.js';
import { isConflict, isNotFound, type KubeClient, type Resource } from '../client/client.js';
import { Informer } from '../client/informer.js';
import type { SharedInformers } from './controller.js';

/**
 * What the workload controllers (ReplicaSet, Deployment, DaemonSet) share, as kube-controller-manager's
 * pkg/controller/controller_utils.go and controller_ref_manager.go: expectations, controller
 * references and adoption, pod readiness and availability, template hashing, slow-start batches.
 */

// ---- object shapes the workload controllers read ----

export interface PodCondition {
  type: string;
  status: string;
  lastTransitionTime?: string;
}

export interface PodTemplate {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string>; finalizers?: string[]; [k: string]: unknown };
  spec?: Record<string, any>;
}

export interface Pod extends KubeObject {
  spec?: { nodeName?: string; affinity?: Affinity; tolerations?: Toleration[]; [k: string]: unknown };
  status?: {
    phase?: string;
    conditions?: PodCondition[];
    containerStatuses?: { restartCount?: number }[];
    [k: string]: unknown;
  };
}

export type { NodeSelectorRequirement, NodeSelectorTerm, Toleration } from '../api/scheduling.js';
import type { NodeSelectorTerm, Toleration } from '../api/scheduling.js';

export interface Affinity {
  nodeAffinity?: {
    requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms: NodeSelectorTerm[] };
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export interface WorkloadStatusCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  lastUpdateTime?: string;
}

/** The shape every workload controller presents to the controller manager. */
export interface WorkloadController {
  readonly name: string;
  run(signal: AbortSignal): Promise<void>;
}

// ---- time ----

/** RFC 3339 at second precision, as metav1.Time serialises. */
export function timestamp(d = new Date()): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

export function parseTime(t: string | undefined): number {
  return t ? Date.parse(t) : 0;
}

// ---- keys ----

export function keyOf(obj: KubeObject): string {
  return `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
}

export function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

// ---- expectations ----

/** Expectations older than this are treated as satisfied, as kube's ExpectationsTimeout. */
export const EXPECTATIONS_TTL_MS = 5 * 60_000;

interface Expectation {
  adds: number;
  deletes: Set<string>;
  at: number;
}

/**
 * kube's UIDTrackingControllerExpectations: what a controller has asked the API server to create
 * and delete and not yet seen in its informer. While any is outstanding the controller does not
 * count pods again, so an informer lagging behind its own writes cannot cause double creates or
 * deletes. Deletions are tracked by pod key so that a graceful delete (an update carrying
 * deletionTimestamp) and the final delete count once.
 */
export class Expectations {
  private readonly byKey = new Map<string, Expectation>();

  constructor(private readonly ttlMs = EXPECTATIONS_TTL_MS) {}

  satisfied(key: string): boolean {
    const e = this.byKey.get(key);
    if (!e) return true;
    if (e.adds <= 0 && e.deletes.size === 0) return true;
    return Date.now() - e.at > this.ttlMs;
  }

  expect(key: string, adds: number, deletes: string[] = []): void {
    this.byKey.set(key, { adds, deletes: new Set(deletes), at: Date.now() });
  }

  creationObserved(key: string): void {
    const e = this.byKey.get(key);
    if (e) e.adds--;
  }

  deletionObserved(key: string, podKey: string): void {
    this.byKey.get(key)?.deletes.delete(podKey);
  }

  delete(key: string): void {
    this.byKey.delete(key);
  }
}

// ---- controller references ----

export function controllerRefOf(obj: KubeObject): OwnerReference | undefined {
  return obj.metadata.ownerReferences?.find((r) => r.controller === true);
}

export function newControllerRef(owner: KubeObject, apiVersion: string, kind: string): OwnerReference {
  return { apiVersion, kind, name: owner.metadata.name!, uid: owner.metadata.uid!, controller: true, blockOwnerDeletion: true };
}

/** The owner of `obj` among `informer`'s objects, when its controller reference names one of `kind`. */
export function resolveControllerRef<T extends KubeObject>(informer: Informer<T>, obj: KubeObject, kind: string): T | undefined {
  const ref = controllerRefOf(obj);
  if (!ref || ref.kind !== kind) return undefined;
  const owner = informer.get(obj.metadata.namespace, ref.name);
  return owner && owner.metadata.uid === ref.uid ? owner : undefined;
}

export function selectorOf(obj: KubeObject): LabelSelector {
  return fromLabelSelector((obj.spec as { selector?: LabelSelectorObject } | undefined)?.selector);
}

/**
 * kube's BaseControllerRefManager.ClaimObject over a list: keeps what `owner` controls and still
 * matches, adopts orphans that match (unless the owner is being deleted), releases what it controls
 * but no longer matches. Adoption and release are writes guarded by the object's resourceVersion,
 * so a stale cache turns into a conflict and a retry rather than a lost owner.
 */
export async function claimObjects<T extends KubeObject>(
  client: KubeClient,
  r: Resource,
  owner: KubeObject,
  ownerRef: OwnerReference,
  selector: LabelSelector,
  objects: T[],
  canAdopt: () => Promise<void>,
): Promise<T[]> {
  const claimed: T[] = [];
  let adoptable: boolean | undefined;
  for (const obj of objects) {
    const ref = controllerRefOf(obj);
    const match = matches(selector, obj.metadata.labels);
    if (ref) {
      if (ref.uid !== owner.metadata.uid) continue;
      if (match) {
        claimed.push(obj);
        continue;
      }
      if (owner.metadata.deletionTimestamp) continue;
      await writeOwnerRefs(client, r, obj, (obj.metadata.ownerReferences ?? []).filter((o) => o.uid !== owner.metadata.uid));
      continue;
    }
    if (!match || owner.metadata.deletionTimestamp || obj.metadata.deletionTimestamp) continue;
    if (adoptable === undefined) {
      try {
        await canAdopt();
        adoptable = true;
      } catch {
        adoptable = false;
      }
    }
    if (!adoptable) continue;
    const others = (obj.metadata.ownerReferences ?? []).filter((o) => o.uid !== owner.metadata.uid);
    const updated = await writeOwnerRefs(client, r, obj, [...others, ownerRef]);
    if (updated) claimed.push(updated as T);
  }
  return claimed;
}

async function writeOwnerRefs(client: KubeClient, r: Resource, obj: KubeObject, refs: OwnerReference[]): Promise<KubeObject | undefined> {
  try {
    return await client.patch(r, obj.metadata.namespace, obj.metadata.name!, 'merge', {
      metadata: { resourceVersion: obj.metadata.resourceVersion, ownerReferences: refs.length ? refs : null },
    });
  } catch (err) {
    // Gone already: nothing to adopt or release.
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** The check kube makes before adopting: the owner, read fresh, is the same object and not being deleted. */
export function recheckOwner(client: KubeClient, r: Resource, owner: KubeObject): () => Promise<void> {
  return async () => {
    const fresh = await client.get(r, owner.metadata.namespace, owner.metadata.name!);
    if (fresh.metadata.uid !== owner.metadata.uid) throw new Error(`original ${owner.kind} ${keyOf(owner)} is gone`);
    if (fresh.metadata.deletionTimestamp) throw new Error(`${owner.kind} ${keyOf(owner)} has just been deleted`);
  };
}

// ---- pods ----

export function podCondition(pod: Pod, type: string): PodCondition | undefined {
  return pod.status?.conditions?.find((c) => c.type === type);
}

export function isPodReady(pod: Pod): boolean {
  return podCondition(pod, 'Ready')?.status === 'True';
}

/** Ready for at least minReadySeconds (podutil.IsPodAvailable). */
export function isPodAvailable(pod: Pod, minReadySeconds: number, now = Date.now()): boolean {
  const c = podCondition(pod, 'Ready');
  if (c?.status !== 'True') return false;
  if (!minReadySeconds) return true;
  const since = parseTime(c.lastTransitionTime);
  return since > 0 && since + minReadySeconds * 1000 <= now;
}

/** Neither finished nor being deleted (controller.IsPodActive). */
export function isPodActive(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase !== 'Succeeded' && phase !== 'Failed' && !pod.metadata.deletionTimestamp;
}

const PHASE_ORDINAL: Record<string, number> = { Pending: 0, Unknown: 1, Running: 2 };

function readySince(pod: Pod): number {
  return parseTime(podCondition(pod, 'Ready')?.lastTransitionTime);
}

function maxRestarts(pod: Pod): number {
  return Math.max(0, ...(pod.status?.containerStatuses ?? []).map((c) => c.restartCount ?? 0));
}

function deletionCost(pod: Pod): number {
  const v = Number(pod.metadata.annotations?.['controller.kubernetes.io/pod-deletion-cost']);
  return Number.isFinite(v) ? v : 0;
}

/**
 * Orders pods so that the ones to delete first come first, as kube's ActivePodsWithRanks:
 * unscheduled, then pending/unknown before running, not ready before ready, lower deletion cost,
 * doubled up on a node with related pods, ready for less time, more restarts, newer.
 */
export function rankPodsForDeletion(pods: Pod[], related: Pod[]): Pod[] {
  const perNode = new Map<string, number>();
  for (const p of related) {
    const node = p.spec?.nodeName;
    if (node && isPodActive(p)) perNode.set(node, (perNode.get(node) ?? 0) + 1);
  }
  const rank = (p: Pod) => (p.spec?.nodeName ? perNode.get(p.spec.nodeName) ?? 0 : 0);
  return [...pods].sort((a, b) => {
    const na = a.spec?.nodeName ?? '';
    const nb = b.spec?.nodeName ?? '';
    if (na !== nb && (!na || !nb)) return na ? 1 : -1;
    const pa = PHASE_ORDINAL[a.status?.phase ?? ''] ?? 0;
    const pb = PHASE_ORDINAL[b.status?.phase ?? ''] ?? 0;
    if (pa !== pb) return pa - pb;
    const ra = isPodReady(a);
    const rb = isPodReady(b);
    if (ra !== rb) return ra ? 1 : -1;
    if (deletionCost(a) !== deletionCost(b)) return deletionCost(a) - deletionCost(b);
    if (rank(a) !== rank(b)) return rank(b) - rank(a);
    if (ra && rb && readySince(a) !== readySince(b)) return readySince(b) - readySince(a);
    if (maxRestarts(a) !== maxRestarts(b)) return maxRestarts(b) - maxRestarts(a);
    return parseTime(b.metadata.creationTimestamp) - parseTime(a.metadata.creationTimestamp);
  });
}

/** A pod built from a template for `owner` (controller.GetPodFromTemplate). */
export function podFromTemplate(template: PodTemplate, owner: KubeObject, ref: OwnerReference): Pod {
  const meta = template.metadata ?? {};
  const pod: Pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: `${owner.metadata.name}-`,
      namespace: owner.metadata.namespace,
      labels: { ...meta.labels },
      annotations: { ...meta.annotations },
      ownerReferences: [ref],
    },
    spec: structuredClone(template.spec ?? {}),
  };
  if (meta.finalizers?.length) pod.metadata.finalizers = [...meta.finalizers];
  return pod;
}

// ---- batches ----

/** The first batch of creates, doubling after each batch that fully succeeds. */
export const SLOW_START_INITIAL_BATCH = 1;
/** At most this many pods are created or deleted in one sync (kube's BurstReplicas). */
export const BURST_REPLICAS = 500;

/**
 * Runs `fn` `count` times in batches of 1, 2, 4, ... and stops after the first batch with a failure,
 * so a quota or admission error costs one failed call rather than hundreds (kube's slowStartBatch).
 * Returns the number of calls that succeeded and the first error.
 */
export async function slowStartBatch(count: number, fn: () => Promise<void>): Promise<{ successes: number; error?: unknown }> {
  let remaining = count;
  let successes = 0;
  for (let size = Math.min(remaining, SLOW_START_INITIAL_BATCH); size > 0; size = Math.min(2 * size, remaining)) {
    const results = await Promise.allSettled(Array.from({ length: size }, () => fn()));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    successes += size - failed.length;
    if (failed.length) return { successes, error: failed[0]!.reason };
    remaining -= size;
  }
  return { successes };
}

/** Creation rejected because the namespace is going away: not worth a retry (NamespaceTerminatingCause). */
export function isNamespaceTerminating(err: unknown): boolean {
  return err instanceof ApiError && (err.details?.causes ?? []).some((c) => c.reason === 'NamespaceTerminating');
}

export { isConflict, isNotFound };

// ---- int-or-percent ----

/** intstr.GetScaledValueFromIntOrPercent. */
export function scaledValue(v: number | string | undefined, total: number, roundUp: boolean): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') return v;
  const m = /^(\d+)%$/.exec(v);
  if (!m) {
    const n = Number(v);
    if (Number.isInteger(n)) return n;
    throw new Error(`invalid value for IntOrString: ${v}`);
  }
  const scaled = (Number(m[1]) * total) / 100;
  return roundUp ? Math.ceil(scaled) : Math.floor(scaled);
}

// ---- hashing and equality ----

/** JSON with object keys sorted, so equal objects hash equally whatever their key order. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
}

function fnv32a(s: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(s)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** apimachinery's rand.SafeEncodeString alphabet: no vowels, no look-alikes. */
const SAFE_ALPHANUMS = 'bcdfghjklmnpqrstvwxz2456789';

/**
 * The pod-template-hash / controller-revision-hash of a template, as controller.ComputeHash: FNV-32a
 * of the template (here its canonical JSON), with the collision count mixed in, safe-encoded.
 */
export function templateHash(template: unknown, collisionCount?: number): string {
  let input = canonicalJson(template);
  if (collisionCount) input += `\0${collisionCount}`;
  const digits = String(fnv32a(input));
  return [...digits].map((c) => SAFE_ALPHANUMS[c.charCodeAt(0) % SAFE_ALPHANUMS.length]).join('');
}

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && Object.keys(v as object).every((k) => (v as Record<string, unknown>)[k] === undefined);
}

/** apimachinery's Semantic.DeepEqual: absent, null and empty maps/lists are equal. */
export function semanticEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (isEmpty(a) && isEmpty(b)) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => semanticEqual(x, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  for (const k of new Set([...Object.keys(ao), ...Object.keys(bo)])) if (!semanticEqual(ao[k], bo[k])) return false;
  return true;
}

// ---- conditions ----

/** Sets a condition, keeping lastTransitionTime when the status does not change; no-op when status and reason match. */
export function setCondition(conditions: WorkloadStatusCondition[], cond: WorkloadStatusCondition): WorkloadStatusCondition[] {
  const current = conditions.find((c) => c.type === cond.type);
  if (current && current.status === cond.status && current.reason === cond.reason) return conditions;
  const next = { ...cond };
  if (current && current.status === cond.status) next.lastTransitionTime = current.lastTransitionTime;
  return [...conditions.filter((c) => c.type !== cond.type), next];
}

export function findCondition(conditions: WorkloadStatusCondition[] | undefined, type: string): WorkloadStatusCondition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** An informer from the process's shared set, or a private one the controller runs itself. */
export function informerFor<T extends KubeObject>(client: KubeClient, r: Resource, shared?: SharedInformers): Informer<T> {
  return shared ? shared.get<T>(r) : new Informer<T>(client, r);
}

/**
 * Runs private informers until `signal` aborts (shared ones are run by their SharedInformers);
 * resolves once all have synced, with the runs still going.
 */
export async function startInformers(informers: Informer<any>[], signal: AbortSignal, shared = false): Promise<Promise<void>[]> {
  const runs = shared ? [] : informers.map((i) => i.run(signal));
  await Promise.race([Promise.all(informers.map((i) => i.waitForSync())), new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }))]);
  return runs;
}
