import type { LabelSelector } from '../api/labels.js';
import { compileTerm, termMatches as matchesTerm, type CompiledTerm } from '../api/scheduling.js';
import { type Resources, addTo, allowedPodCount, emptyResources, fromResourceList, podRequests } from './resources.js';
import type { Node, Pod, Taint, Toleration } from './types.js';

/**
 * The scheduling framework: what a plugin sees and returns.
 *
 * One scheduling cycle places one pod. It runs in a single synchronous pass, so the node
 * bookkeeping it reads cannot change under it:
 *
 *   1. preFilter(pod) on every plugin that has it. A Status rejects the pod on every node at once
 *      (its reasons become the FailedScheduling summary).
 *   2. filter(pod, node) on every plugin, node by node, starting where the last cycle stopped, until
 *      enough feasible nodes are found (see numFeasibleNodesToFind). The first plugin to return a
 *      Status rules the node out; its reasons are counted for the summary.
 *   3. score(pod, node) on the feasible nodes, 0..MAX_NODE_SCORE per plugin, then normalizeScores
 *      over all of them when the plugin has it, times the plugin's weight, summed.
 *   4. The best total wins (ties broken at random); the pod is assumed onto it and bound.
 *
 * Plugins are stateless between cycles: what they need of the pod is precomputed once in PodInfo,
 * and what they need of the node is kept current in NodeInfo as pods come and go.
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

export interface Plugin {
  readonly name: string;
  preFilter?(pod: PodInfo): Status | undefined;
  filter?(pod: PodInfo, node: NodeInfo): Status | undefined;
  score?(pod: PodInfo, node: NodeInfo): number;
  /** Rescales the raw scores of all feasible nodes, in place, to 0..MAX_NODE_SCORE. */
  normalizeScores?(scores: number[]): void;
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
  requests: Resources;
  /** cpu/memory with unset container requests counted as kube's defaults, for scoring. */
  nonZeroRequests: Resources;
  hostPorts: HostPort[];
  tolerations: Toleration[];
  nodeSelector?: LabelSelector;
  requiredTerms?: CompiledTerm[];
  preferredTerms?: { weight: number; term: CompiledTerm }[];
  priority: number;
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
  const info: PodInfo = {
    pod,
    key: podKey(pod),
    namespace: pod.metadata.namespace ?? '',
    name: pod.metadata.name ?? '',
    requests: podRequests(pod),
    nonZeroRequests: podRequests(pod, true),
    hostPorts: hostPortsOf(pod),
    tolerations: spec.tolerations ?? [],
    nodeSelector: nodeSelector && { requirements: Object.entries(nodeSelector).map(([key, v]) => ({ key, operator: '=' as const, values: [v] })) },
    // kube: a required affinity without terms matches nothing, and an absent one everything.
    requiredTerms: affinity?.requiredDuringSchedulingIgnoredDuringExecution ? (required ?? []).map(compileTerm) : undefined,
    preferredTerms: preferred?.length ? preferred.map((p) => ({ weight: p.weight, term: compileTerm(p.preference ?? {}) })) : undefined,
    priority: spec.priority ?? 0,
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
