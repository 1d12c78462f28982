import { type LabelSelector, fromLabelSelector, matches, selectorToString } from '../api/labels.js';
import type { Pod, PodAffinity, PodAffinityTerm } from './types.js';

/**
 * A pod's podAffinity and podAntiAffinity terms, compiled once per pod object as kube's
 * framework.AffinityTerm. A term selects an existing pod when the pod's namespace is one of
 * `namespaces` or its namespace's labels match `namespaceSelector`, and the pod's labels match
 * `selector`. Both the pod being scheduled and the pods already placed carry these.
 */
export interface AffinityTerm {
  selector: LabelSelector;
  /** The namespaces the term names; the owning pod's own when it names none and has no namespaceSelector. */
  namespaces: ReadonlySet<string>;
  /** NOTHING when the term has no namespaceSelector; the empty selector selects every namespace. */
  namespaceSelector: LabelSelector;
  topologyKey: string;
  /** Equal for equal terms: the replicas of one workload share their terms. */
  key: string;
}

export interface WeightedAffinityTerm {
  term: AffinityTerm;
  weight: number;
}

export interface PodAffinityTerms {
  requiredAffinity: AffinityTerm[];
  requiredAntiAffinity: AffinityTerm[];
  preferredAffinity: WeightedAffinityTerm[];
  preferredAntiAffinity: WeightedAffinityTerm[];
}

function selectorKey(selector: LabelSelector): string {
  return selector.matchesNothing ? '<nothing>' : selectorToString(selector);
}

function compileTerm(pod: Pod, term: PodAffinityTerm): AffinityTerm {
  const named = term.namespaces ?? [];
  const hasSelector = term.namespaceSelector !== undefined && term.namespaceSelector !== null;
  const namespaces = new Set(named.length === 0 && !hasSelector ? [pod.metadata.namespace ?? ''] : named);
  const selector = fromLabelSelector(term.labelSelector);
  const namespaceSelector = fromLabelSelector(term.namespaceSelector);
  const key = [term.topologyKey, [...namespaces].sort().join(','), selectorKey(namespaceSelector), selectorKey(selector)].join('\0');
  return { selector, namespaces, namespaceSelector, topologyKey: term.topologyKey, key };
}

function compileRequired(pod: Pod, affinity: PodAffinity | undefined): AffinityTerm[] {
  return (affinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []).map((t) => compileTerm(pod, t));
}

function compilePreferred(pod: Pod, affinity: PodAffinity | undefined): WeightedAffinityTerm[] {
  return (affinity?.preferredDuringSchedulingIgnoredDuringExecution ?? []).map((w) => ({ term: compileTerm(pod, w.podAffinityTerm), weight: w.weight }));
}

/**
 * The pod's compiled terms, or undefined when it has neither podAffinity nor podAntiAffinity.
 * Throws kube's BadRequest for a label selector that does not parse.
 */
export function compileAffinityTerms(pod: Pod): PodAffinityTerms | undefined {
  const affinity = pod.spec?.affinity;
  if (!affinity?.podAffinity && !affinity?.podAntiAffinity) return undefined;
  return {
    requiredAffinity: compileRequired(pod, affinity.podAffinity),
    requiredAntiAffinity: compileRequired(pod, affinity.podAntiAffinity),
    preferredAffinity: compilePreferred(pod, affinity.podAffinity),
    preferredAntiAffinity: compilePreferred(pod, affinity.podAntiAffinity),
  };
}

/**
 * AffinityTerm.Matches: whether the term selects a pod in `namespace` with `labels`, where
 * `namespaceLabels` are that namespace's labels (undefined when the namespace is not known).
 */
export function affinityTermMatches(term: AffinityTerm, namespace: string, labels: Record<string, string>, namespaceLabels: Record<string, string> | undefined): boolean {
  if (!term.namespaces.has(namespace) && !matches(term.namespaceSelector, namespaceLabels)) return false;
  return matches(term.selector, labels);
}
