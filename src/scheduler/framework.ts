import type { LabelSelector } from '../api/labels.js';
import { compileTerm, termMatches as matchesTerm, type CompiledTerm } from '../api/scheduling.js';
import type { AffinityTermGroup } from './affinity-term-groups.js';
import { type PodAffinityTerms, compileAffinityTerms } from './pod-affinity-terms.js';
import { type Resources, addTo, allowedPodCount, emptyResources, fromResourceList, podRequests } from './resources.js';
import type { Node, Pod, Taint, Toleration } from './types.js';

/**
 * The scheduling framework: what a plugin sees and returns.
 *
 * One scheduling cycle places one pod. It runs in a single synchronous pass, so the cluster it
 * reads cannot change under it:
 *
 *   1. preFilter(pod, state) on every plugin that has it. A Status rejects the pod on every node at
 *      once (its reasons become the FailedScheduling summary); SKIP leaves the plugin's filter out
 *      of this cycle. What the plugin computed over the whole cluster (counts per topology domain,
 *      say) it writes into the CycleState for its filter.
 *   2. filter(pod, node, state) on every plugin not skipped, node by node, starting where the last
 *      cycle stopped, until enough feasible nodes are found (see numFeasibleNodesToFind). The first
 *      plugin to return a Status rules the node out; its reasons are counted for the summary.
 *   3. With more than one feasible node: preScore(pod, feasible, state), where SKIP leaves the
 *      plugin's score out; then score(pod, node, state) on the feasible nodes, 0..MAX_NODE_SCORE per
 *      plugin after normalizeScores over all of them when the plugin has it, times the plugin's
 *      weight, summed.
 *   4. The best total wins (ties broken at random); the pod is assumed onto it and bound.
 *
 * Plugins keep nothing between cycles: what they need of the pod is precomputed once in PodInfo,
 * what they need of the node is kept current in NodeInfo as pods come and go, and what they need
 * of the rest of the cluster they read through state.cluster.
 *
 *   const fit: Plugin = {
 *     name: 'NodeUnschedulable',
 *     filter: (pod, node) => (node.unschedulable ? unresolvable('node(s) were unschedulable') : undefined),
 *   };
 */

export const MAX_NODE_SCORE = 100;

export type StatusCode =
  /** The pod does not fit now, but could once something on the node changes (pods leave). */
  | 'Unschedulable'
  /** No change of the pods on the node would help (labels, taints, node name). */
  | 'UnschedulableAndUnresolvable';

export interface Status {
  code: StatusCode;
  /** Each reason is counted separately in the FailedScheduling summary, e.g. "Insufficient cpu". */
  reasons: string[];
  plugin?: string;
}

export function unschedulable(...reasons: string[]): Status {
  return { code: 'Unschedulable', reasons };
}

export function unresolvable(...reasons: string[]): Status {
  return { code: 'UnschedulableAndUnresolvable', reasons };
}

/** Returned by preFilter or preScore: the plugin has nothing to check or score for this pod. */
export const SKIP = 'Skip';
export type Skip = typeof SKIP;

export interface Plugin {
  readonly name: string;
  preFilter?(pod: PodInfo, state: CycleState): Status | Skip | undefined;
  filter?(pod: PodInfo, node: NodeInfo, state: CycleState): Status | undefined;
  preScore?(pod: PodInfo, nodes: readonly NodeInfo[], state: CycleState): Skip | undefined;
  score?(pod: PodInfo, node: NodeInfo, state: CycleState): number;
  /** Rescales the raw scores of all feasible nodes (`scores[i]` is `nodes[i]`'s), in place, to 0..MAX_NODE_SCORE. */
  normalizeScores?(scores: number[], nodes: readonly NodeInfo[], state: CycleState): void;
}

/** A pod counted on a node. */
export interface PlacedPod {
  readonly info: PodInfo;
  /** Its node; `node.node` is undefined once the Node object is gone. */
  readonly node: NodeInfo;
}

/**
 * The cluster as plugins read it beyond the node they are given: the scheduler cache's nodes and
 * pods (assumed ones included), counted and grouped so that a cycle costs about the number of
 * nodes rather than the number of pods, and the namespaces, Services and ReplicaSets the scheduler
 * watches.
 */
export interface ClusterView {
  /** The nodes that exist as Node objects. */
  nodeList(): readonly NodeInfo[];
  /** The namespaces that have pods counted on nodes. */
  podNamespaces(): Iterable<string>;
  /**
   * How many pods in the namespace match the selector, per node (nodes without one left out, and
   * nodes whose Node object is gone included). Terminating pods count only `withTerminating`.
   */
  matchingPods(namespace: string, selector: LabelSelector, withTerminating: boolean): ReadonlyMap<NodeInfo, number>;
  /** The placed pods' podAffinity and podAntiAffinity terms, grouped by equal term. */
  affinityTermGroups(): Iterable<AffinityTermGroup>;
  /** The same, for required podAntiAffinity terms only. */
  requiredAntiAffinityTermGroups(): Iterable<AffinityTermGroup>;
  /** The namespace's labels; undefined when it is not known. */
  namespaceLabels(namespace: string): Record<string, string> | undefined;
  /** The names of the known namespaces whose labels match. */
  namespacesMatching(selector: LabelSelector): string[];
  /** The selector default topology spreading counts the pod's siblings with; empty when there is none. */
  defaultSpreadSelector(pod: PodInfo): LabelSelector;
}

/** A typed slot in the CycleState, one per thing a plugin keeps for the cycle. */
export class StateKey<T> {
  declare private readonly type: T;
  constructor(readonly name: string) {}
}

/** What one cycle's plugins share: the cluster, and what each plugin computed for its later calls. */
export class CycleState {
  private readonly data = new Map<StateKey<unknown>, unknown>();

  constructor(readonly cluster: ClusterView) {}

  read<T>(key: StateKey<T>): T | undefined {
    return this.data.get(key) as T | undefined;
  }

  write<T>(key: StateKey<T>, value: T): void {
    this.data.set(key, value);
  }
}

/** A plugin in a profile, with the weight its scores count for. */
export interface PluginEntry {
  plugin: Plugin;
  weight: number;
}

// ---- the pod, precomputed once per pod object ----

export interface HostPort {
  ip: string;
  protocol: string;
  port: number;
}

export interface PodInfo {
  pod: Pod;
  /** The pod's uid, or namespace/name for objects without one. */
  key: string;
  namespace: string;
  name: string;
  labels: Record<string, string>;
  /** Deleted and waiting out its grace period: topology spreading no longer counts it. */
  terminating: boolean;
  requests: Resources;
  /** cpu/memory with unset container requests counted as kube's defaults, for scoring. */
  nonZeroRequests: Resources;
  hostPorts: HostPort[];
  tolerations: Toleration[];
  nodeSelector?: LabelSelector;
  requiredTerms?: CompiledTerm[];
  preferredTerms?: { weight: number; term: CompiledTerm }[];
  priority: number;
  /** Undefined when the pod has neither podAffinity nor podAntiAffinity. */
  affinity?: PodAffinityTerms;
  /** Why the pod's affinity terms do not compile; such a pod is not scheduled. */
  affinityError?: string;
}

const podInfos = new WeakMap<Pod, PodInfo>();

export function podKey(pod: Pod): string {
  return pod.metadata.uid ?? `${pod.metadata.namespace ?? ''}/${pod.metadata.name ?? ''}`;
}

export { compileTerm, type CompiledTerm };

/** Whether a node satisfies a compiled node selector term. */
export function termMatches(term: CompiledTerm, node: NodeInfo): boolean {
  return matchesTerm(term, node.labels, node.name);
}

function hostPortsOf(pod: Pod): HostPort[] {
  const ports: HostPort[] = [];
  for (const c of pod.spec?.containers ?? []) {
    for (const p of c.ports ?? []) {
      if (p.hostPort && p.hostPort > 0) ports.push({ ip: p.hostIP || '0.0.0.0', protocol: p.protocol || 'TCP', port: p.hostPort });
    }
  }
  return ports;
}

/** The scheduler's view of a pod, computed once per object and cached. */
export function podInfo(pod: Pod): PodInfo {
  const cached = podInfos.get(pod);
  if (cached) return cached;
  const spec = pod.spec ?? {};
  const affinity = spec.affinity?.nodeAffinity;
  const required = affinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  const preferred = affinity?.preferredDuringSchedulingIgnoredDuringExecution;
  const nodeSelector = spec.nodeSelector && Object.keys(spec.nodeSelector).length > 0 ? spec.nodeSelector : undefined;
  let podAffinity: PodAffinityTerms | undefined;
  let affinityError: string | undefined;
  try {
    podAffinity = compileAffinityTerms(pod);
  } catch (err) {
    affinityError = err instanceof Error ? err.message : String(err);
  }
  const info: PodInfo = {
    pod,
    key: podKey(pod),
    namespace: pod.metadata.namespace ?? '',
    name: pod.metadata.name ?? '',
    labels: pod.metadata.labels ?? {},
    terminating: Boolean(pod.metadata.deletionTimestamp),
    requests: podRequests(pod),
    nonZeroRequests: podRequests(pod, true),
    hostPorts: hostPortsOf(pod),
    tolerations: spec.tolerations ?? [],
    nodeSelector: nodeSelector && { requirements: Object.entries(nodeSelector).map(([key, v]) => ({ key, operator: '=' as const, values: [v] })) },
    // kube: a required affinity without terms matches nothing, and an absent one everything.
    requiredTerms: affinity?.requiredDuringSchedulingIgnoredDuringExecution ? (required ?? []).map(compileTerm) : undefined,
    preferredTerms: preferred?.length ? preferred.map((p) => ({ weight: p.weight, term: compileTerm(p.preference ?? {}) })) : undefined,
    priority: spec.priority ?? 0,
    affinity: podAffinity,
    affinityError,
  };
  podInfos.set(pod, info);
  return info;
}

// ---- the node, with the pods placed on it ----

function portKey(protocol: string, port: number): string {
  return `${protocol}/${port}`;
}

/**
 * One node and the pods the scheduler counts on it: bound pods seen by the informer and pods it
 * assumed there itself while their binding is on the way. Totals are updated per pod, never
 * recomputed from the pod list.
 */
export class NodeInfo {
  node?: Node;
  labels: Record<string, string> = {};
  taints: Taint[] = [];
  unschedulable = false;
  allocatable: Resources = emptyResources();
  allowedPods = 0;
  readonly requested: Resources = emptyResources();
  readonly nonZeroRequested: Resources = emptyResources();
  readonly pods = new Map<string, PodInfo>();
  /** "protocol/port" → the host IPs in use, one entry per pod using it. */
  private readonly usedPorts = new Map<string, string[]>();

  constructor(readonly name: string) {}

  setNode(node: Node | undefined): void {
    this.node = node;
    this.labels = node?.metadata.labels ?? {};
    this.taints = node?.spec?.taints ?? [];
    this.unschedulable = node?.spec?.unschedulable === true;
    this.allocatable = fromResourceList(node?.status?.allocatable);
    this.allowedPods = allowedPodCount(node?.status?.allocatable);
  }

  addPod(p: PodInfo): void {
    if (this.pods.has(p.key)) this.removePod(p.key);
    this.pods.set(p.key, p);
    addTo(this.requested, p.requests);
    addTo(this.nonZeroRequested, p.nonZeroRequests);
    for (const hp of p.hostPorts) {
      const k = portKey(hp.protocol, hp.port);
      const ips = this.usedPorts.get(k);
      if (ips) ips.push(hp.ip);
      else this.usedPorts.set(k, [hp.ip]);
    }
  }

  removePod(key: string): PodInfo | undefined {
    const p = this.pods.get(key);
    if (!p) return undefined;
    this.pods.delete(key);
    addTo(this.requested, p.requests, -1);
    addTo(this.nonZeroRequested, p.nonZeroRequests, -1);
    for (const hp of p.hostPorts) {
      const k = portKey(hp.protocol, hp.port);
      const ips = this.usedPorts.get(k)!;
      ips.splice(ips.indexOf(hp.ip), 1);
      if (ips.length === 0) this.usedPorts.delete(k);
    }
    return p;
  }

  /** HostPortInfo.CheckConflict: the same protocol and port on the same IP, or either on 0.0.0.0. */
  portConflicts(hp: HostPort): boolean {
    const ips = this.usedPorts.get(portKey(hp.protocol, hp.port));
    if (!ips) return false;
    return hp.ip === '0.0.0.0' || ips.some((ip) => ip === '0.0.0.0' || ip === hp.ip);
  }
}

/**
 * helper.DefaultNormalizeScore: scales scores so the highest is MAX_NODE_SCORE (integer division),
 * optionally reversed so that the lowest raw score wins.
 */
export function defaultNormalizeScore(scores: number[], reverse: boolean): void {
  let max = 0;
  for (const s of scores) if (s > max) max = s;
  if (max === 0) {
    if (reverse) scores.fill(MAX_NODE_SCORE);
    return;
  }
  for (let i = 0; i < scores.length; i++) {
    let s = Math.floor((MAX_NODE_SCORE * scores[i]!) / max);
    if (reverse) s = MAX_NODE_SCORE - s;
    scores[i] = s;
  }
}
