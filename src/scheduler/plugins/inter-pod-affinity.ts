import { type LabelSelector, isEverything, matches } from '../../api/labels.js';
import { type ClusterView, type NodeInfo, type Plugin, type PodInfo, MAX_NODE_SCORE, SKIP, StateKey, unresolvable, unschedulable } from '../framework.js';
import { type AffinityTerm, type WeightedAffinityTerm, affinityTermMatches } from '../pod-affinity-terms.js';

export const AFFINITY_RULES_REASON = "node(s) didn't match pod affinity rules";
export const ANTI_AFFINITY_RULES_REASON = "node(s) didn't match pod anti-affinity rules";
export const EXISTING_ANTI_AFFINITY_REASON = "node(s) didn't satisfy existing pods anti-affinity rules";

/** kube's InterPodAffinityArgs.hardPodAffinityWeight default: what an existing pod's required affinity adds to the score. */
export const HARD_POD_AFFINITY_WEIGHT = 1;

/**
 * A term of the pod being placed with its namespaceSelector resolved against the known namespaces
 * (kube's mergeAffinityTermNamespacesIfNotEmpty): `namespaces` undefined means every namespace.
 */
interface ResolvedTerm {
  topologyKey: string;
  selector: LabelSelector;
  namespaces?: ReadonlySet<string>;
}

function resolve(term: AffinityTerm, cluster: ClusterView): ResolvedTerm {
  const { topologyKey, selector } = term;
  if (isEverything(term.namespaceSelector)) return { topologyKey, selector };
  if (term.namespaceSelector.matchesNothing) return { topologyKey, selector, namespaces: term.namespaces };
  return { topologyKey, selector, namespaces: new Set([...term.namespaces, ...cluster.namespacesMatching(term.namespaceSelector)]) };
}

function resolvedMatches(term: ResolvedTerm, pod: PodInfo): boolean {
  return (!term.namespaces || term.namespaces.has(pod.namespace)) && matches(term.selector, pod.labels);
}

/**
 * Calls `counted(node, n)` for every existing node holding n > 0 pods (terminating ones included,
 * as kube counts them) that `selector` selects in `namespaces` (undefined: every namespace).
 */
function forEachCount(cluster: ClusterView, namespaces: Iterable<string> | undefined, selector: LabelSelector, counted: (node: NodeInfo, n: number) => void): void {
  if (selector.matchesNothing) return;
  for (const ns of namespaces ?? cluster.podNamespaces()) {
    for (const [node, n] of cluster.matchingPods(ns, selector, true)) if (node.node) counted(node, n);
  }
}

/** The pods matching every one of the terms: in all their namespaces, matching all their selectors. */
function allTerms(terms: readonly ResolvedTerm[]): { namespaces?: Set<string>; selector: LabelSelector } {
  let namespaces: Set<string> | undefined;
  for (const t of terms) {
    if (!t.namespaces) continue;
    namespaces = namespaces ? new Set([...namespaces].filter((ns) => t.namespaces!.has(ns))) : new Set(t.namespaces);
  }
  const selector = { requirements: terms.flatMap((t) => t.selector.requirements), matchesNothing: terms.some((t) => t.selector.matchesNothing) };
  return { namespaces, selector };
}

function isEmpty(items: Iterable<unknown>): boolean {
  for (const _ of items) return false;
  return true;
}

/** topologyKey → topology value → count (or score). */
type TopologyCounts = Map<string, Map<string, number>>;

function add(counts: TopologyCounts, topologyKey: string, node: NodeInfo, value: number): boolean {
  const domain = node.labels[topologyKey];
  if (domain === undefined) return false;
  let byValue = counts.get(topologyKey);
  if (!byValue) {
    byValue = new Map();
    counts.set(topologyKey, byValue);
  }
  byValue.set(domain, (byValue.get(domain) ?? 0) + value);
  return true;
}

function countAt(counts: TopologyCounts, topologyKey: string, node: NodeInfo): number {
  const domain = node.labels[topologyKey];
  return domain === undefined ? 0 : (counts.get(topologyKey)?.get(domain) ?? 0);
}

// ---- Filter: required terms ----

interface FilterState {
  affinity: ResolvedTerm[];
  antiAffinity: ResolvedTerm[];
  /** Per domain: existing pods matching every required affinity term. */
  affinityCounts: TopologyCounts;
  /** Per domain: existing pods matching a required anti-affinity term, once per term. */
  antiAffinityCounts: TopologyCounts;
  /** Per domain: existing pods whose required anti-affinity selects the pod being placed. */
  existingAntiAffinityCounts: TopologyCounts;
  /** The pod matches all its own affinity terms (the first of a group that wants to be together). */
  selfMatchesAll: boolean;
}

const FILTER_STATE = new StateKey<FilterState>('PreFilterInterPodAffinity');

function filterState(pod: PodInfo, cluster: ClusterView): FilterState | undefined {
  const requiredAntiAffinityGroups = cluster.requiredAntiAffinityTermGroups();
  if (!pod.affinity && isEmpty(requiredAntiAffinityGroups)) return undefined;
  const namespaceLabels = cluster.namespaceLabels(pod.namespace);
  const existingAntiAffinityCounts: TopologyCounts = new Map();
  for (const group of requiredAntiAffinityGroups) {
    if (!affinityTermMatches(group.term, pod.namespace, pod.labels, namespaceLabels)) continue;
    for (const [node, n] of group.perNode) if (node.node) add(existingAntiAffinityCounts, group.term.topologyKey, node, n);
  }
  const affinity = (pod.affinity?.requiredAffinity ?? []).map((t) => resolve(t, cluster));
  const antiAffinity = (pod.affinity?.requiredAntiAffinity ?? []).map((t) => resolve(t, cluster));
  if (existingAntiAffinityCounts.size === 0 && affinity.length === 0 && antiAffinity.length === 0) return undefined;
  const affinityCounts: TopologyCounts = new Map();
  if (affinity.length > 0) {
    const all = allTerms(affinity);
    forEachCount(cluster, all.namespaces, all.selector, (node, n) => {
      for (const t of affinity) add(affinityCounts, t.topologyKey, node, n);
    });
  }
  const antiAffinityCounts: TopologyCounts = new Map();
  for (const t of antiAffinity) forEachCount(cluster, t.namespaces, t.selector, (node, n) => add(antiAffinityCounts, t.topologyKey, node, n));
  const selfMatchesAll = affinity.length > 0 && affinity.every((t) => resolvedMatches(t, pod));
  return { affinity, antiAffinity, affinityCounts, antiAffinityCounts, existingAntiAffinityCounts, selfMatchesAll };
}

function satisfiesAffinity(s: FilterState, node: NodeInfo): boolean {
  let podsExist = true;
  for (const t of s.affinity) {
    // Every topology key must be on the node.
    if (!(t.topologyKey in node.labels)) return false;
    if (countAt(s.affinityCounts, t.topologyKey, node) <= 0) podsExist = false;
  }
  // No pod anywhere matches yet: the first pod of a group with affinity to itself may go anywhere.
  return podsExist || (s.affinityCounts.size === 0 && s.selfMatchesAll);
}

function satisfiesAntiAffinity(s: FilterState, node: NodeInfo): boolean {
  return s.antiAffinity.every((t) => countAt(s.antiAffinityCounts, t.topologyKey, node) <= 0);
}

function satisfiesExistingAntiAffinity(s: FilterState, node: NodeInfo): boolean {
  for (const [topologyKey, byValue] of s.existingAntiAffinityCounts) {
    const domain = node.labels[topologyKey];
    if (domain !== undefined && (byValue.get(domain) ?? 0) > 0) return false;
  }
  return true;
}

// ---- Score: preferred terms, and existing pods' terms towards the pod ----

const SCORE_STATE = new StateKey<TopologyCounts>('PreScoreInterPodAffinity');

function scoreState(pod: PodInfo, cluster: ClusterView): TopologyCounts | undefined {
  const groups = cluster.affinityTermGroups();
  if (!pod.affinity && isEmpty(groups)) return undefined;
  const scores: TopologyCounts = new Map();
  let recorded = false;
  const record = (topologyKey: string, node: NodeInfo, value: number) => {
    if (add(scores, topologyKey, node, value)) recorded = true;
  };
  const preferred = (terms: readonly WeightedAffinityTerm[], sign: number) => {
    for (const { term, weight } of terms) {
      const t = resolve(term, cluster);
      forEachCount(cluster, t.namespaces, t.selector, (node, n) => record(t.topologyKey, node, sign * weight * n));
    }
  };
  preferred(pod.affinity?.preferredAffinity ?? [], 1);
  preferred(pod.affinity?.preferredAntiAffinity ?? [], -1);
  const namespaceLabels = cluster.namespaceLabels(pod.namespace);
  for (const group of groups) {
    if (group.kind === 'requiredAntiAffinity' || !affinityTermMatches(group.term, pod.namespace, pod.labels, namespaceLabels)) continue;
    const weight = group.kind === 'requiredAffinity' ? HARD_POD_AFFINITY_WEIGHT : group.kind === 'preferredAffinity' ? group.weight : -group.weight;
    for (const [node, n] of group.perNode) if (node.node) record(group.term.topologyKey, node, weight * n);
  }
  return recorded ? scores : undefined;
}

/**
 * InterPodAffinity: places pods near or away from other pods, by topology domain.
 *
 * Filter, for the required terms: the pod's podAffinity needs, for every term, a pod matching all
 * its terms in the node's domain (unless no such pod exists anywhere and the pod matches its own
 * terms); its podAntiAffinity needs no pod matching a term in the node's domain; and no existing
 * pod's required podAntiAffinity may select the pod within that pod's domain (symmetry).
 *
 * Score: the weights of the pod's preferred terms matched by pods in the node's domains (negative
 * for anti-affinity), plus the existing pods' preferred terms and required affinity that select
 * the pod, rescaled from the lowest to the highest total.
 *
 * Term namespaces are the ones named, or the pod's own; a namespaceSelector reads the namespace
 * labels the scheduler watches. The counts per domain are built once per cycle from the cache's
 * per-node counts and its groups of equal terms, so filter and score are lookups.
 */
export const interPodAffinity: Plugin = {
  name: 'InterPodAffinity',
  preFilter(pod, state) {
    if (pod.affinityError) return unresolvable(pod.affinityError);
    const s = filterState(pod, state.cluster);
    if (!s) return SKIP;
    state.write(FILTER_STATE, s);
    return undefined;
  },
  filter(_pod, node, state) {
    const s = state.read(FILTER_STATE)!;
    if (!satisfiesAffinity(s, node)) return unresolvable(AFFINITY_RULES_REASON);
    if (!satisfiesAntiAffinity(s, node)) return unschedulable(ANTI_AFFINITY_RULES_REASON);
    if (!satisfiesExistingAntiAffinity(s, node)) return unschedulable(EXISTING_ANTI_AFFINITY_REASON);
    return undefined;
  },
  preScore(pod, _nodes, state) {
    const scores = scoreState(pod, state.cluster);
    if (!scores) return SKIP;
    state.write(SCORE_STATE, scores);
    return undefined;
  },
  score(_pod, node, state) {
    const scores = state.read(SCORE_STATE)!;
    let total = 0;
    for (const [topologyKey, byValue] of scores) {
      const domain = node.labels[topologyKey];
      if (domain !== undefined) total += byValue.get(domain) ?? 0;
    }
    return total;
  },
  /** MAX * (score - min) / (max - min); all 0 when every node totals the same. */
  normalizeScores(scores) {
    let min = Number.POSITIVE_INFINITY;
    let max = Number.NEGATIVE_INFINITY;
    for (const s of scores) {
      if (s < min) min = s;
      if (s > max) max = s;
    }
    const diff = max - min;
    for (let i = 0; i < scores.length; i++) scores[i] = diff > 0 ? Math.trunc(MAX_NODE_SCORE * ((scores[i]! - min) / diff)) : 0;
  },
};
