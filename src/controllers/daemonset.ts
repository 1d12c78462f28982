import { ApiError } from '../api/errors.js';
import { matches } from '../api/labels.js';
import { compileTerm, termMatches, toleratesTaint, type Taint } from '../api/scheduling.js';
import type { KubeObject } from '../api/types.js';
import type { KubeClient } from '../client/client.js';
import { EventRecorder } from '../client/events.js';
import { type Informer, resource } from '../client/informer.js';
import type { SharedInformers } from './controller.js';
import { WorkQueue } from '../client/workqueue.js';
import {
  BURST_REPLICAS,
  Expectations,
  claimObjects,
  controllerRefOf,
  isNamespaceTerminating,
  isNotFound,
  isPodAvailable,
  isPodReady,
  keyOf,
  newControllerRef,
  parseTime,
  podFromTemplate,
  recheckOwner,
  resolveControllerRef,
  scaledValue,
  selectorOf,
  semanticEqual,
  slowStartBatch,
  splitKey,
  informerFor,
  startInformers,
  templateHash,
  type Affinity,
  type NodeSelectorTerm,
  type Pod,
  type PodTemplate,
  type Toleration,
  type WorkloadController,
  type WorkloadStatusCondition,
} from './workload-util.js';

/**
 * The DaemonSet controller (kube's pkg/controller/daemon): one pod per eligible node. A node is
 * eligible when the template's nodeName, nodeSelector and required node affinity admit it and its
 * NoSchedule/NoExecute taints are tolerated (with the tolerations kube adds to every daemon pod). A
 * pod already on a node with only NoSchedule taints it does not tolerate stays; an untolerated
 * NoExecute taint removes it.
 *
 * Pods are pinned to their node the way kube does it: the template's required node affinity is
 * replaced by one term `matchFields metadata.name In [<node>]`, which the scheduler then honours.
 * The template's revisions are ControllerRevisions; pods carry their `controller-revision-hash`,
 * and RollingUpdate replaces out-of-date pods within maxUnavailable (or surges within maxSurge).
 */

export const CONTROLLER_REVISION_HASH_LABEL = 'controller-revision-hash';

export interface DaemonSetSpec {
  selector?: unknown;
  template?: PodTemplate;
  updateStrategy?: { type?: string; rollingUpdate?: { maxUnavailable?: number | string; maxSurge?: number | string } };
  minReadySeconds?: number;
  revisionHistoryLimit?: number;
}

export interface DaemonSetStatus {
  currentNumberScheduled: number;
  numberMisscheduled: number;
  desiredNumberScheduled: number;
  numberReady: number;
  updatedNumberScheduled?: number;
  numberAvailable?: number;
  numberUnavailable?: number;
  observedGeneration?: number;
  collisionCount?: number;
  conditions?: WorkloadStatusCondition[];
}

export interface DaemonSet extends KubeObject {
  spec: DaemonSetSpec;
  status?: DaemonSetStatus;
}

export interface Node extends KubeObject {
  spec?: { taints?: Taint[]; unschedulable?: boolean };
}

export interface ControllerRevision extends KubeObject {
  data?: unknown;
  revision: number;
}

export interface DaemonSetControllerOptions {
  /** Informers shared with the other controllers of the process; absent, the controller runs its own. */
  informers?: SharedInformers;
  workers?: number;
  onError?: (key: string, err: unknown) => void;
}

const DAEMONSETS = resource('apps/daemonsets');
const REVISIONS = resource('apps/controllerrevisions');
const PODS = resource('pods');
const NODES = resource('nodes');
const KIND = 'DaemonSet';
const DEFAULT_WORKERS = 2;
/** A failed daemon pod is replaced no sooner than this after the previous replacement on its node. */
export const FAILED_POD_BACKOFF_MS = 1000;

/** Tolerations every daemon pod gets (util.AddOrUpdateDaemonPodTolerations). */
const DAEMON_TOLERATIONS: Toleration[] = [
  { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute' },
  { key: 'node.kubernetes.io/disk-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/memory-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/pid-pressure', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' },
];
const NETWORK_UNAVAILABLE: Toleration = { key: 'node.kubernetes.io/network-unavailable', operator: 'Exists', effect: 'NoSchedule' };

// ---- scheduling predicates ----

export function withDaemonTolerations(spec: Record<string, any>): Toleration[] {
  const tolerations: Toleration[] = [...(spec.tolerations ?? [])];
  const extra = spec.hostNetwork ? [...DAEMON_TOLERATIONS, NETWORK_UNAVAILABLE] : DAEMON_TOLERATIONS;
  for (const t of extra) {
    const same = (o: Toleration) => (o.key ?? '') === t.key && (o.operator ?? 'Equal') === t.operator && (o.value ?? '') === '' && (o.effect ?? '') === t.effect;
    if (!tolerations.some(same)) tolerations.push({ ...t });
  }
  return tolerations;
}

function untolerated(taints: Taint[], tolerations: Toleration[], effects: string[]): Taint | undefined {
  return taints.find((taint) => effects.includes(taint.effect) && !tolerations.some((t) => toleratesTaint(t, taint)));
}

/** A NodeSelectorTerm: all its expressions and fields hold; an empty term matches nothing. */
export function nodeMatchesTerm(term: NodeSelectorTerm, node: Node): boolean {
  return termMatches(compileTerm(term), node.metadata.labels, node.metadata.name ?? '');
}

function fitsNodeAffinity(spec: Record<string, any>, node: Node): boolean {
  const selector = (spec.nodeSelector ?? {}) as Record<string, string>;
  const labels = node.metadata.labels ?? {};
  if (!Object.entries(selector).every(([k, v]) => labels[k] === v)) return false;
  const required = (spec.affinity as Affinity | undefined)?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (!required) return true;
  return (required.nodeSelectorTerms ?? []).some((t) => nodeMatchesTerm(t, node));
}

/**
 * NodeShouldRunDaemonPod: whether a daemon pod should be placed on the node, and whether one
 * already there may stay.
 */
export function nodeShouldRunDaemonPod(node: Node, ds: DaemonSet): { shouldRun: boolean; shouldContinueRunning: boolean } {
  const spec = ds.spec.template?.spec ?? {};
  if (spec.nodeName && spec.nodeName !== node.metadata.name) return { shouldRun: false, shouldContinueRunning: false };
  if (!fitsNodeAffinity(spec, node)) return { shouldRun: false, shouldContinueRunning: false };
  const taints = node.spec?.taints ?? [];
  const tolerations = withDaemonTolerations(spec);
  if (untolerated(taints, tolerations, ['NoSchedule', 'NoExecute'])) {
    return { shouldRun: false, shouldContinueRunning: !untolerated(taints, tolerations, ['NoExecute']) };
  }
  return { shouldRun: true, shouldContinueRunning: true };
}

/** The affinity of a daemon pod for one node (ReplaceDaemonSetPodNodeNameNodeAffinity). */
export function pinToNode(affinity: Affinity | undefined, nodeName: string): Affinity {
  const required = { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [nodeName] }] }] };
  const out = structuredClone(affinity ?? {});
  out.nodeAffinity = { ...out.nodeAffinity, requiredDuringSchedulingIgnoredDuringExecution: required };
  return out;
}

/** The node a daemon pod is on or pinned to (GetTargetNodeName). */
export function targetNode(pod: Pod): string | undefined {
  if (pod.spec?.nodeName) return pod.spec.nodeName;
  for (const term of pod.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? []) {
    for (const f of term.matchFields ?? []) if (f.key === 'metadata.name' && f.operator === 'In' && f.values?.length === 1) return f.values[0];
  }
  return undefined;
}

function byCreationAndPhase(a: Pod, b: Pod): number {
  const na = a.spec?.nodeName ?? '';
  const nb = b.spec?.nodeName ?? '';
  if (Boolean(na) !== Boolean(nb)) return na ? -1 : 1;
  const d = parseTime(a.metadata.creationTimestamp) - parseTime(b.metadata.creationTimestamp);
  return d !== 0 ? d : (a.metadata.name ?? '').localeCompare(b.metadata.name ?? '');
}

const isUpdated = (pod: Pod, hash: string) => pod.metadata.labels?.[CONTROLLER_REVISION_HASH_LABEL] === hash;

/** The up-to-date and the old pod on a node; `ok` false when there are two of either. */
function updatedPodsOnNode(pods: Pod[], hash: string): { newPod?: Pod; oldPod?: Pod; ok: boolean } {
  let newPod: Pod | undefined;
  let oldPod: Pod | undefined;
  for (const pod of pods) {
    if (pod.metadata.deletionTimestamp) continue;
    if (isUpdated(pod, hash)) {
      if (newPod) return { ok: false };
      newPod = pod;
    } else {
      if (oldPod) return { ok: false };
      oldPod = pod;
    }
  }
  return { newPod, oldPod, ok: true };
}

// ---- the controller ----

export class DaemonSetController implements WorkloadController {
  readonly name = 'daemonset';
  readonly daemonSets: Informer<DaemonSet>;
  readonly pods: Informer<Pod>;
  readonly nodes: Informer<Node>;
  readonly revisions: Informer<ControllerRevision>;
  private readonly queue = new WorkQueue();
  private readonly expectations = new Expectations();
  private readonly failedBackoff = new Map<string, number>();
  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    private readonly options: DaemonSetControllerOptions = {},
  ) {
    this.daemonSets = informerFor<DaemonSet>(client, DAEMONSETS, options.informers);
    this.pods = informerFor<Pod>(client, PODS, options.informers);
    this.nodes = informerFor<Node>(client, NODES, options.informers);
    this.revisions = informerFor<ControllerRevision>(client, REVISIONS, options.informers);
    this.events = new EventRecorder(client, 'daemonset-controller');
    this.daemonSets.on({
      add: (ds) => this.enqueue(ds),
      update: (_o, ds) => this.enqueue(ds),
      delete: (ds) => {
        this.expectations.delete(keyOf(ds));
        this.enqueue(ds);
      },
    });
    this.pods.on({ add: (p) => this.podAdded(p), update: (o, p) => this.podUpdated(o, p), delete: (p) => this.podDeleted(p) });
    this.nodes.on({
      add: () => this.enqueueAll(),
      update: (old, node) => {
        const relevant = (n: Node) => [n.metadata.labels, n.spec?.taints, n.spec?.unschedulable];
        if (!semanticEqual(relevant(old), relevant(node))) this.enqueueAll();
      },
      delete: () => this.enqueueAll(),
    });
    const revisionChanged = (rev: ControllerRevision) => {
      const ds = resolveControllerRef(this.daemonSets, rev, KIND);
      if (ds) this.enqueue(ds);
    };
    this.revisions.on({ add: revisionChanged, update: (_o, r) => revisionChanged(r), delete: revisionChanged });
  }

  async run(signal: AbortSignal): Promise<void> {
    const runs = await startInformers([this.daemonSets, this.pods, this.nodes, this.revisions], signal, Boolean(this.options.informers));
    await Promise.all([...runs, this.queue.run((key) => this.sync(key), signal, this.options.workers ?? DEFAULT_WORKERS, this.options.onError)]);
  }

  private enqueue(ds: KubeObject): void {
    this.queue.add(keyOf(ds));
  }

  private enqueueAll(): void {
    for (const ds of this.daemonSets.list()) this.enqueue(ds);
  }

  private owner(pod: Pod): DaemonSet | undefined {
    return resolveControllerRef(this.daemonSets, pod, KIND);
  }

  private podAdded(pod: Pod): void {
    if (pod.metadata.deletionTimestamp) return this.podDeleted(pod);
    if (controllerRefOf(pod)) {
      const ds = this.owner(pod);
      if (!ds) return;
      this.expectations.creationObserved(keyOf(ds));
      this.enqueue(ds);
      return;
    }
    for (const ds of this.daemonSets.list(pod.metadata.namespace)) if (matches(selectorOf(ds), pod.metadata.labels)) this.enqueue(ds);
  }

  private podUpdated(old: Pod, pod: Pod): void {
    if (pod.metadata.deletionTimestamp) return this.podDeleted(pod);
    const oldRef = controllerRefOf(old);
    if (oldRef && oldRef.uid !== controllerRefOf(pod)?.uid) {
      const prior = this.owner(old);
      if (prior) this.enqueue(prior);
    }
    const ds = this.owner(pod);
    if (ds) {
      this.enqueue(ds);
      const minReady = ds.spec.minReadySeconds ?? 0;
      if (minReady > 0 && !isPodReady(old) && isPodReady(pod)) this.queue.addAfter(keyOf(ds), minReady * 1000 + 1000);
      return;
    }
    if (!controllerRefOf(pod)) for (const d of this.daemonSets.list(pod.metadata.namespace)) if (matches(selectorOf(d), pod.metadata.labels)) this.enqueue(d);
  }

  private podDeleted(pod: Pod): void {
    const ds = this.owner(pod);
    if (!ds) return;
    this.expectations.deletionObserved(keyOf(ds), keyOf(pod));
    this.enqueue(ds);
  }

  private async sync(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const cached = this.daemonSets.get(namespace, name);
    if (!cached) {
      this.expectations.delete(key);
      return;
    }
    if (cached.metadata.deletionTimestamp) return;
    const ds = structuredClone(cached);
    const nodes = this.nodes.list();
    const { current, old } = await this.constructHistory(ds);
    const hash = current.metadata.labels?.[CONTROLLER_REVISION_HASH_LABEL] ?? '';
    if (!this.expectations.satisfied(key)) return this.updateStatus(ds, nodes, hash, false);

    const byNode = await this.podsByNode(ds);
    await this.manage(ds, nodes, byNode, hash);
    if (this.expectations.satisfied(key) && (ds.spec.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate') {
      await this.rollingUpdate(ds, nodes, await this.podsByNode(ds), hash);
    }
    await this.cleanupHistory(ds, old);
    await this.updateStatus(ds, nodes, hash, true);
  }

  /** The DaemonSet's pods (claimed: adopted or released as needed) by the node they are on or pinned to. */
  private async podsByNode(ds: DaemonSet): Promise<Map<string, Pod[]>> {
    const ref = newControllerRef(ds, 'apps/v1', KIND);
    const pods = await claimObjects(this.client, PODS, ds, ref, selectorOf(ds), this.pods.list(ds.metadata.namespace), recheckOwner(this.client, DAEMONSETS, ds));
    const out = new Map<string, Pod[]>();
    for (const pod of pods) {
      const node = targetNode(pod);
      if (node) out.set(node, [...(out.get(node) ?? []), pod]);
    }
    return out;
  }

  // ---- history ----

  private revisionData(ds: DaemonSet): unknown {
    return { spec: { template: { ...structuredClone(ds.spec.template ?? {}), $patch: 'replace' } } };
  }

  /** The ControllerRevision of the current template (created, or renumbered as newest) and the others. */
  private async constructHistory(ds: DaemonSet): Promise<{ current: ControllerRevision; old: ControllerRevision[] }> {
    const ref = newControllerRef(ds, 'apps/v1', KIND);
    const histories = await claimObjects(this.client, REVISIONS, ds, ref, selectorOf(ds), this.revisions.list(ds.metadata.namespace), recheckOwner(this.client, DAEMONSETS, ds));
    const data = this.revisionData(ds);
    const matching = histories.filter((h) => semanticEqual(h.data, data)).sort((a, b) => b.revision - a.revision);
    const maxRevision = Math.max(0, ...histories.map((h) => h.revision));
    let current = matching[0];
    for (const dup of matching.slice(1)) await this.deleteRevision(dup);
    if (current) {
      if (current.revision < maxRevision) current = await this.client.update<ControllerRevision>(REVISIONS, { ...current, revision: maxRevision + 1 });
    } else {
      current = await this.createRevision(ds, data, maxRevision + 1);
    }
    const old = histories.filter((h) => !matching.includes(h));
    return { current, old };
  }

  private async createRevision(ds: DaemonSet, data: unknown, revision: number): Promise<ControllerRevision> {
    const hash = templateHash(ds.spec.template, ds.status?.collisionCount);
    const rev: ControllerRevision = {
      apiVersion: 'apps/v1',
      kind: 'ControllerRevision',
      metadata: {
        name: `${ds.metadata.name}-${hash}`,
        namespace: ds.metadata.namespace,
        labels: { ...ds.spec.template?.metadata?.labels, [CONTROLLER_REVISION_HASH_LABEL]: hash },
        ownerReferences: [newControllerRef(ds, 'apps/v1', KIND)],
      },
      data,
      revision,
    };
    try {
      return await this.client.create<ControllerRevision>(REVISIONS, ds.metadata.namespace, rev);
    } catch (err) {
      if (!(err instanceof ApiError && err.reason === 'AlreadyExists')) throw err;
      const found = await this.client.get<ControllerRevision>(REVISIONS, ds.metadata.namespace, rev.metadata.name!);
      if (controllerRefOf(found)?.uid === ds.metadata.uid && semanticEqual(found.data, data)) return found;
      // Another template hashed to this name: count the collision so the next hash differs.
      await this.client.patch(DAEMONSETS, ds.metadata.namespace, ds.metadata.name!, 'merge', { status: { collisionCount: (ds.status?.collisionCount ?? 0) + 1 } }, { subresource: 'status' });
      throw err;
    }
  }

  private async deleteRevision(rev: ControllerRevision): Promise<void> {
    try {
      await this.client.delete(REVISIONS, rev.metadata.namespace, rev.metadata.name!);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Deletes the oldest revisions beyond revisionHistoryLimit that no live pod still runs. */
  private async cleanupHistory(ds: DaemonSet, old: ControllerRevision[]): Promise<void> {
    const limit = ds.spec.revisionHistoryLimit ?? 10;
    let toKill = old.length - limit;
    if (toKill <= 0) return;
    const live = new Set<string>();
    for (const pods of (await this.podsByNode(ds)).values()) for (const p of pods) live.add(p.metadata.labels?.[CONTROLLER_REVISION_HASH_LABEL] ?? '');
    for (const rev of [...old].sort((a, b) => a.revision - b.revision)) {
      if (toKill <= 0) break;
      if (live.has(rev.metadata.labels?.[CONTROLLER_REVISION_HASH_LABEL] ?? '')) continue;
      await this.deleteRevision(rev);
      toKill--;
    }
  }

  // ---- placing pods ----

  private allowsSurge(ds: DaemonSet): boolean {
    const ru = ds.spec.updateStrategy;
    return (ru?.type ?? 'RollingUpdate') === 'RollingUpdate' && scaledValue(ru?.rollingUpdate?.maxSurge ?? 0, 1, true) > 0;
  }

  private async manage(ds: DaemonSet, nodes: Node[], byNode: Map<string, Pod[]>, hash: string): Promise<void> {
    const needPods: string[] = [];
    const toDelete: Pod[] = [];
    const surge = this.allowsSurge(ds);
    const now = Date.now();
    for (const node of nodes) {
      const name = node.metadata.name!;
      const { shouldRun, shouldContinueRunning } = nodeShouldRunDaemonPod(node, ds);
      const pods = byNode.get(name) ?? [];
      if (shouldRun && pods.length === 0) {
        needPods.push(name);
      } else if (shouldContinueRunning) {
        const running: Pod[] = [];
        for (const pod of pods) {
          if (pod.metadata.deletionTimestamp) continue;
          const phase = pod.status?.phase;
          if (phase === 'Failed') {
            // Replacing a pod the node keeps failing must not become a hot loop.
            const backoffKey = `${keyOf(ds)}/${name}`;
            const until = this.failedBackoff.get(backoffKey) ?? 0;
            if (now < until) {
              this.queue.addAfter(keyOf(ds), until - now);
              continue;
            }
            this.failedBackoff.set(backoffKey, now + FAILED_POD_BACKOFF_MS);
            toDelete.push(pod);
          } else if (phase === 'Succeeded') {
            toDelete.push(pod);
          } else {
            running.push(pod);
          }
        }
        running.sort(byCreationAndPhase);
        if (!surge) {
          toDelete.push(...running.slice(1));
          continue;
        }
        // With surge, an old and a new pod may overlap while the new one is not ready yet.
        let oldestNew: Pod | undefined;
        let oldestOld: Pod | undefined;
        for (const pod of running) {
          if (isUpdated(pod, hash) && !oldestNew) oldestNew = pod;
          else if (!isUpdated(pod, hash) && !oldestOld) oldestOld = pod;
          else toDelete.push(pod);
        }
        if (oldestNew && oldestOld && (!isPodReady(oldestOld) || isPodReady(oldestNew))) toDelete.push(oldestOld);
      } else {
        toDelete.push(...pods.filter((p) => !p.metadata.deletionTimestamp));
      }
    }
    // Pods pinned to nodes that no longer exist and never got scheduled have nowhere to go.
    const known = new Set(nodes.map((n) => n.metadata.name));
    for (const [node, pods] of byNode) {
      if (!known.has(node)) toDelete.push(...pods.filter((p) => !p.spec?.nodeName && !p.metadata.deletionTimestamp));
    }
    await this.syncNodes(ds, toDelete, needPods, hash);
  }

  private async syncNodes(ds: DaemonSet, toDelete: Pod[], nodesNeeding: string[], hash: string): Promise<void> {
    const key = keyOf(ds);
    const creates = nodesNeeding.slice(0, BURST_REPLICAS);
    const deletes = toDelete.slice(0, BURST_REPLICAS);
    this.expectations.expect(key, creates.length, deletes.map(keyOf));
    const template = structuredClone(ds.spec.template ?? {});
    template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, [CONTROLLER_REVISION_HASH_LABEL]: hash } };
    template.spec = { ...template.spec, tolerations: withDaemonTolerations(template.spec ?? {}) };
    const ref = newControllerRef(ds, 'apps/v1', KIND);
    let next = 0;
    const errors: unknown[] = [];
    const { successes, error } = await slowStartBatch(creates.length, async () => {
      const node = creates[next++]!;
      const pod = podFromTemplate(template, ds, ref);
      pod.spec!.affinity = pinToNode(template.spec?.affinity as Affinity | undefined, node);
      try {
        const created = await this.client.create<Pod>(PODS, ds.metadata.namespace, pod);
        void this.events.record(ds, 'Normal', 'SuccessfulCreate', `Created pod: ${created.metadata.name}`).catch(() => undefined);
      } catch (err) {
        if (isNamespaceTerminating(err)) return;
        void this.events.record(ds, 'Warning', 'FailedCreate', `Error creating: ${(err as Error).message}`).catch(() => undefined);
        throw err;
      }
    });
    for (let i = successes; i < creates.length; i++) this.expectations.creationObserved(key);
    if (error) errors.push(error);
    await Promise.all(
      deletes.map(async (pod) => {
        try {
          await this.client.delete(PODS, pod.metadata.namespace, pod.metadata.name!);
          void this.events.record(ds, 'Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name}`).catch(() => undefined);
        } catch (err) {
          this.expectations.deletionObserved(key, keyOf(pod));
          if (!isNotFound(err)) errors.push(err);
        }
      }),
    );
    if (errors.length) throw errors[0];
  }

  // ---- rolling update ----

  private async rollingUpdate(ds: DaemonSet, nodes: Node[], byNode: Map<string, Pod[]>, hash: string): Promise<void> {
    const minReady = ds.spec.minReadySeconds ?? 0;
    const now = Date.now();
    const ru = ds.spec.updateStrategy?.rollingUpdate;
    let desired = 0;
    const nodeByName = new Map(nodes.map((n) => [n.metadata.name!, n]));
    for (const node of nodes) {
      if (!nodeShouldRunDaemonPod(node, ds).shouldRun) continue;
      desired++;
      if (!byNode.has(node.metadata.name!)) byNode.set(node.metadata.name!, []);
    }
    const maxSurge = scaledValue(ru?.maxSurge ?? 0, desired, true);
    let maxUnavailable = scaledValue(ru?.maxUnavailable ?? 1, desired, true);
    if (desired > 0 && maxUnavailable === 0 && maxSurge === 0) maxUnavailable = 1;
    const available = (p: Pod) => isPodAvailable(p, minReady, now);

    if (maxSurge === 0) {
      // Delete just enough old pods to stay within maxUnavailable; manage() recreates them.
      let unavailable = 0;
      const replaceNow: Pod[] = [];
      const candidates: Pod[] = [];
      for (const pods of byNode.values()) {
        const { newPod, oldPod, ok } = updatedPodsOnNode(pods, hash);
        if (!ok || (!oldPod && !newPod) || (oldPod && newPod)) {
          unavailable++;
        } else if (newPod) {
          if (!available(newPod)) unavailable++;
        } else if (!available(oldPod!)) {
          replaceNow.push(oldPod!);
        } else if (unavailable < maxUnavailable) {
          candidates.push(oldPod!);
        }
      }
      const room = Math.min(Math.max(0, maxUnavailable - unavailable), candidates.length);
      return this.syncNodes(ds, [...replaceNow, ...candidates.slice(0, room)], [], hash);
    }

    // Surge: start a new pod beside an old one, delete the old one once the new one is available.
    const oldToDelete: Pod[] = [];
    const notRunToDelete: Pod[] = [];
    const allowedNew: string[] = [];
    const candidateNew: string[] = [];
    let surging = 0;
    let numAvailable = 0;
    for (const [nodeName, pods] of byNode) {
      const { newPod, oldPod, ok } = updatedPodsOnNode(pods, hash);
      if (!ok) {
        surging++;
        continue;
      }
      if (oldPod ? available(oldPod) : newPod && available(newPod)) numAvailable++;
      if (!oldPod) continue;
      const node = nodeByName.get(nodeName);
      const shouldRun = node ? nodeShouldRunDaemonPod(node, ds).shouldRun : false;
      if (!newPod) {
        if (!available(oldPod)) {
          if (!shouldRun) oldToDelete.push(oldPod);
          else allowedNew.push(nodeName);
        } else if (!shouldRun) {
          notRunToDelete.push(oldPod);
        } else if (surging < maxSurge) {
          candidateNew.push(nodeName);
        }
        continue;
      }
      if (!available(newPod)) {
        surging++;
        continue;
      }
      oldToDelete.push(oldPod);
    }
    const deletable = Math.min(Math.max(0, numAvailable - desired), notRunToDelete.length);
    oldToDelete.push(...notRunToDelete.slice(0, deletable).filter((p) => !p.metadata.deletionTimestamp));
    const room = Math.min(Math.max(0, maxSurge - surging), candidateNew.length);
    return this.syncNodes(ds, oldToDelete, [...allowedNew, ...candidateNew.slice(0, room)], hash);
  }

  // ---- status ----

  private async updateStatus(ds: DaemonSet, nodes: Node[], hash: string, observed: boolean): Promise<void> {
    const byNode = await this.podsByNode(ds);
    const minReady = ds.spec.minReadySeconds ?? 0;
    const now = Date.now();
    let desired = 0;
    let current = 0;
    let misscheduled = 0;
    let ready = 0;
    let availableCount = 0;
    let updated = 0;
    for (const node of nodes) {
      const { shouldRun } = nodeShouldRunDaemonPod(node, ds);
      const pods = (byNode.get(node.metadata.name!) ?? []).filter((p) => !p.metadata.deletionTimestamp);
      const scheduled = pods.length > 0;
      if (shouldRun) {
        desired++;
        if (!scheduled) continue;
        current++;
        const pod = [...pods].sort(byCreationAndPhase)[0]!;
        if (isPodReady(pod)) {
          ready++;
          if (isPodAvailable(pod, minReady, now)) availableCount++;
        }
        if (isUpdated(pod, hash)) updated++;
      } else if (scheduled) {
        misscheduled++;
      }
    }
    const status: DaemonSetStatus = {
      currentNumberScheduled: current,
      numberMisscheduled: misscheduled,
      desiredNumberScheduled: desired,
      numberReady: ready,
      updatedNumberScheduled: updated,
      numberAvailable: availableCount,
      numberUnavailable: desired - availableCount,
      observedGeneration: observed ? ds.metadata.generation : ds.status?.observedGeneration,
    };
    if (ds.status?.collisionCount !== undefined) status.collisionCount = ds.status.collisionCount;
    if (ds.status?.conditions) status.conditions = ds.status.conditions;
    const norm = (s: Partial<DaemonSetStatus> | undefined) => ({ updatedNumberScheduled: 0, numberAvailable: 0, numberUnavailable: 0, ...s });
    if (!semanticEqual(norm(ds.status), norm(status))) {
      try {
        await this.client.patch(DAEMONSETS, ds.metadata.namespace, ds.metadata.name!, 'merge', { status }, { subresource: 'status' });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    if (minReady > 0 && ready !== availableCount) this.queue.addAfter(keyOf(ds), minReady * 1000);
  }
}
