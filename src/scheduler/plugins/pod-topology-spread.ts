import { type LabelSelector, fromLabelSelector, isEverything, matches, selectorFromSet } from '../../api/labels.js';
import { type ClusterView, type NodeInfo, type Plugin, type PodInfo, MAX_NODE_SCORE, SKIP, StateKey, unresolvable, unschedulable } from '../framework.js';
import type { TopologySpreadConstraint } from '../types.js';
import { fitsRequiredNodeAffinity } from './node-affinity.js';
import { untoleratedTaint } from './taint-toleration.js';

export const SPREAD_CONSTRAINTS_REASON = "node(s) didn't match pod topology spread constraints";
export const SPREAD_LABEL_REASON = `${SPREAD_CONSTRAINTS_REASON} (missing required label)`;

export const HOSTNAME_LABEL = 'kubernetes.io/hostname';
export const ZONE_LABEL = 'topology.kubernetes.io/zone';

/**
 * kube's systemDefaultConstraints: a pod with no constraints of its own is spread softly over
 * hosts and zones among the pods of its Services and ReplicaSet.
 */
export const SYSTEM_DEFAULT_CONSTRAINTS: readonly TopologySpreadConstraint[] = [
  { topologyKey: HOSTNAME_LABEL, whenUnsatisfiable: 'ScheduleAnyway', maxSkew: 3 },
  { topologyKey: ZONE_LABEL, whenUnsatisfiable: 'ScheduleAnyway', maxSkew: 5 },
];

/** A constraint with its selector compiled and kube's defaults filled in. */
interface Constraint {
  maxSkew: number;
  topologyKey: string;
  selector: LabelSelector;
  /** kube counts no pods for a constraint whose selector selects everything. */
  countsPods: boolean;
  minDomains: number;
  /** nodeAffinityPolicy Honor (the default): only nodes the pod's node affinity admits count. */
  honorAffinity: boolean;
  /** nodeTaintsPolicy Honor: only nodes whose NoSchedule/NoExecute taints the pod tolerates count. */
  honorTaints: boolean;
}

function compile(c: TopologySpreadConstraint, podLabels: Record<string, string>, selector: LabelSelector = fromLabelSelector(c.labelSelector)): Constraint {
  // matchLabelKeys: the pod's own values for those keys are ANDed into the selector.
  const own: Record<string, string> = {};
  for (const key of c.matchLabelKeys ?? []) if (key in podLabels) own[key] = podLabels[key]!;
  if (Object.keys(own).length > 0 && !selector.matchesNothing) selector = { requirements: [...selectorFromSet(own).requirements, ...selector.requirements] };
  return {
    maxSkew: c.maxSkew,
    topologyKey: c.topologyKey,
    selector,
    countsPods: !isEverything(selector),
    minDomains: c.minDomains ?? 1,
    honorAffinity: (c.nodeAffinityPolicy ?? 'Honor') === 'Honor',
    honorTaints: (c.nodeTaintsPolicy ?? 'Ignore') === 'Honor',
  };
}

interface OwnConstraints {
  hard: Constraint[];
  soft: Constraint[];
}

const ownConstraints = new WeakMap<PodInfo, OwnConstraints | string>();
const NONE: OwnConstraints = { hard: [], soft: [] };

/** The pod's own constraints split by whenUnsatisfiable, compiled once; a string when a selector does not parse. */
function constraintsOf(pod: PodInfo): OwnConstraints | string {
  if (!pod.pod.spec?.topologySpreadConstraints?.length) return NONE;
  let own = ownConstraints.get(pod);
  if (own === undefined) {
    try {
      const all = pod.pod.spec!.topologySpreadConstraints!;
      own = {
        hard: all.filter((c) => c.whenUnsatisfiable === 'DoNotSchedule').map((c) => compile(c, pod.labels)),
        soft: all.filter((c) => c.whenUnsatisfiable === 'ScheduleAnyway').map((c) => compile(c, pod.labels)),
      };
    } catch (err) {
      own = `invalid topology spread constraint: ${err instanceof Error ? err.message : String(err)}`;
    }
    ownConstraints.set(pod, own);
  }
  return own;
}

function hasAllKeys(node: NodeInfo, constraints: readonly Constraint[]): boolean {
  return constraints.every((c) => c.topologyKey in node.labels);
}

type Inclusion = (c: Constraint, node: NodeInfo) => boolean;

/**
 * matchNodeInclusionPolicies: whether a node's pods count for a constraint at all. Most pods have
 * no node affinity and no constraint honouring taints; then every node counts and nothing is checked.
 */
function inclusionFor(pod: PodInfo, constraints: readonly Constraint[]): Inclusion {
  const hasAffinity = pod.nodeSelector !== undefined || pod.requiredTerms !== undefined;
  if (constraints.every((c) => !(c.honorAffinity && hasAffinity) && !c.honorTaints)) return () => true;
  return (c, node) => (!c.honorAffinity || fitsRequiredNodeAffinity(pod, node)) && (!c.honorTaints || untoleratedTaint(pod, node) === undefined);
}

/**
 * Calls `counted(node, n, i)` for every node holding n > 0 live pods of the pod's namespace that
 * constraint i selects. The cache keeps these counts per node, so this costs about the number of
 * nodes with such pods, however many pods there are.
 */
function forEachCount(pod: PodInfo, constraints: readonly Constraint[], cluster: ClusterView, counted: (node: NodeInfo, n: number, i: number) => void, skip: readonly boolean[] = []): void {
  constraints.forEach((c, i) => {
    if (!c.countsPods || skip[i]) return;
    for (const [node, n] of cluster.matchingPods(pod.namespace, c.selector, false)) if (node.node) counted(node, n, i);
  });
}

function add<K>(counts: Map<K, number>, key: K, n: number): void {
  counts.set(key, (counts.get(key) ?? 0) + n);
}

// ---- Filter: DoNotSchedule ----

interface FilterState {
  constraints: Constraint[];
  /** Per constraint: matching pods per domain (topology value), every eligible domain present. */
  counts: Map<string, number>[];
  /** Per constraint: the global minimum the skew is measured from. */
  minMatch: number[];
  /** Per constraint: whether the pod counts itself in the domain it lands in. */
  selfMatch: number[];
}

const FILTER_STATE = new StateKey<FilterState>('PreFilterPodTopologySpread');

function filterState(pod: PodInfo, constraints: Constraint[], cluster: ClusterView): FilterState {
  const includes = inclusionFor(pod, constraints);
  // A node lacking any of the topology keys counts for no constraint.
  const counts = constraints.map(() => new Map<string, number>());
  for (const node of cluster.nodeList()) {
    if (!hasAllKeys(node, constraints)) continue;
    for (let i = 0; i < constraints.length; i++) {
      const c = constraints[i]!;
      const domain = node.labels[c.topologyKey]!;
      if (!counts[i]!.has(domain) && includes(c, node)) counts[i]!.set(domain, 0);
    }
  }
  forEachCount(pod, constraints, cluster, (node, n, i) => {
    const c = constraints[i]!;
    if (hasAllKeys(node, constraints) && includes(c, node)) add(counts[i]!, node.labels[c.topologyKey]!, n);
  });
  const minMatch = constraints.map((c, i) => {
    // Fewer eligible domains than minDomains: the missing ones count as empty.
    if (counts[i]!.size < c.minDomains) return 0;
    let min = Number.POSITIVE_INFINITY;
    for (const n of counts[i]!.values()) if (n < min) min = n;
    return min;
  });
  const selfMatch = constraints.map((c) => (matches(c.selector, pod.labels) ? 1 : 0));
  return { constraints, counts, minMatch, selfMatch };
}

// ---- Score: ScheduleAnyway and the system defaults ----

interface ScoreState {
  constraints: Constraint[];
  /** Feasible nodes without every topology key, when the constraints are the pod's own: scored 0. */
  ignored: Set<NodeInfo>;
  /** Per constraint: matching pods per domain of the feasible nodes; undefined for hostname, counted per node. */
  domainCounts: (Map<string, number> | undefined)[];
  /** Per hostname constraint: matching pods per node. */
  nodeCounts: (ReadonlyMap<NodeInfo, number> | undefined)[];
  /** ln(domains + 2), so that spreading over few big domains is not watered down by many small ones. */
  weights: number[];
}

const SCORE_STATE = new StateKey<ScoreState>('PreScorePodTopologySpread');

function scoreState(pod: PodInfo, constraints: Constraint[], requireAllTopologies: boolean, nodes: readonly NodeInfo[], cluster: ClusterView): ScoreState {
  const ignored = new Set<NodeInfo>();
  const isHost = constraints.map((c) => c.topologyKey === HOSTNAME_LABEL);
  const domainCounts = constraints.map((_, i) => (isHost[i] ? undefined : new Map<string, number>()));
  // kube counts a node's own pods for the hostname key whatever the inclusion policies say.
  const nodeCounts = constraints.map((c, i) => (!isHost[i] ? undefined : c.countsPods ? cluster.matchingPods(pod.namespace, c.selector, false) : new Map<NodeInfo, number>()));
  for (const node of nodes) {
    if (requireAllTopologies && !hasAllKeys(node, constraints)) {
      ignored.add(node);
      continue;
    }
    for (let i = 0; i < constraints.length; i++) {
      // A node without the key joins the "" domain, as kube reads a missing label; it scores nothing for it.
      const domain = node.labels[constraints[i]!.topologyKey] ?? '';
      if (domainCounts[i] && !domainCounts[i]!.has(domain)) domainCounts[i]!.set(domain, 0);
    }
  }
  const weights = constraints.map((_, i) => Math.log((isHost[i] ? nodes.length - ignored.size : domainCounts[i]!.size) + 2));
  const includes = inclusionFor(pod, constraints);
  const countDomain = (node: NodeInfo, n: number, i: number) => {
    const c = constraints[i]!;
    if ((requireAllTopologies && !hasAllKeys(node, constraints)) || !includes(c, node)) return;
    const domain = node.labels[c.topologyKey] ?? '';
    // Only domains with a feasible node are scored.
    if (domainCounts[i]!.has(domain)) add(domainCounts[i]!, domain, n);
  };
  forEachCount(pod, constraints, cluster, countDomain, isHost);
  return { constraints, ignored, domainCounts, nodeCounts, weights };
}

/**
 * PodTopologySpread: spreads matching pods evenly over topology domains (hosts, zones, ...).
 *
 * A DoNotSchedule constraint filters: placing the pod in a domain may not make that domain's count
 * of matching pods exceed the smallest domain's by more than maxSkew. A ScheduleAnyway constraint
 * (and, for a pod without constraints, kube's system defaults over its Services' and ReplicaSet's
 * pods) scores: the fewer matching pods in the node's domains, the higher.
 *
 * Counting follows kube: live pods in the pod's namespace, assumed ones included, on nodes that
 * carry every topology key and pass the constraint's node inclusion policies (the pod's node
 * affinity by default, taints only when asked). The counts per domain are built once per cycle
 * from the cache's per-node counts, so filter and score are lookups.
 */
export const podTopologySpread: Plugin = {
  name: 'PodTopologySpread',
  preFilter(pod, state) {
    const own = constraintsOf(pod);
    if (typeof own === 'string') return unresolvable(own);
    // The system defaults are all ScheduleAnyway: a pod without hard constraints of its own has none.
    if (own.hard.length === 0) return SKIP;
    state.write(FILTER_STATE, filterState(pod, own.hard, state.cluster));
    return undefined;
  },
  filter(pod, node, state) {
    const s = state.read(FILTER_STATE)!;
    for (let i = 0; i < s.constraints.length; i++) {
      const c = s.constraints[i]!;
      const domain = node.labels[c.topologyKey];
      if (domain === undefined) return unresolvable(SPREAD_LABEL_REASON);
      const skew = (s.counts[i]!.get(domain) ?? 0) + s.selfMatch[i]! - s.minMatch[i]!;
      if (skew > c.maxSkew) return unschedulable(SPREAD_CONSTRAINTS_REASON);
    }
    return undefined;
  },
  preScore(pod, nodes, state) {
    const own = constraintsOf(pod);
    if (typeof own === 'string') return SKIP;
    let constraints = own.soft;
    const defaulted = !pod.pod.spec?.topologySpreadConstraints?.length;
    if (defaulted) {
      const selector = state.cluster.defaultSpreadSelector(pod);
      if (isEverything(selector)) return SKIP;
      constraints = SYSTEM_DEFAULT_CONSTRAINTS.map((c) => compile(c, pod.labels, selector));
    }
    if (constraints.length === 0) return SKIP;
    // Only the pod's own constraints need every key: a node without a zone still spreads by host.
    state.write(SCORE_STATE, scoreState(pod, constraints, !defaulted, nodes, state.cluster));
    return undefined;
  },
  score(_pod, node, state) {
    const s = state.read(SCORE_STATE)!;
    if (s.ignored.has(node)) return 0;
    let score = 0;
    for (let i = 0; i < s.constraints.length; i++) {
      const c = s.constraints[i]!;
      const domain = node.labels[c.topologyKey];
      if (domain === undefined) continue;
      const count = s.nodeCounts[i] ? (s.nodeCounts[i]!.get(node) ?? 0) : (s.domainCounts[i]!.get(domain) ?? 0);
      // maxSkew - 1 waters down small differences, more so the more skew the constraint tolerates.
      score += count * s.weights[i]! + (c.maxSkew - 1);
    }
    return Math.round(score);
  },
  /** Fewer matching pods score higher: MAX * (max + min - score) / max; ignored nodes score 0. */
  normalizeScores(scores, nodes, state) {
    const s = state.read(SCORE_STATE)!;
    let min = Number.POSITIVE_INFINITY;
    let max = 0;
    for (let i = 0; i < scores.length; i++) {
      if (s.ignored.has(nodes[i]!)) continue;
      min = Math.min(min, scores[i]!);
      max = Math.max(max, scores[i]!);
    }
    for (let i = 0; i < scores.length; i++) {
      if (s.ignored.has(nodes[i]!)) scores[i] = 0;
      else if (max === 0) scores[i] = MAX_NODE_SCORE;
      else scores[i] = Math.floor((MAX_NODE_SCORE * (max + min - scores[i]!)) / max);
    }
  },
};
