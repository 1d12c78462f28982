import { matches } from '../../api/labels.js';
import { type NodeInfo, type Plugin, type PodInfo, defaultNormalizeScore, termMatches, unresolvable } from '../framework.js';

export const NODE_AFFINITY_REASON = "node(s) didn't match Pod's node affinity/selector";

/** nodeaffinity.GetRequiredNodeAffinity(pod).Match(node): spec.nodeSelector and the required terms. */
export function fitsRequiredNodeAffinity(pod: PodInfo, node: NodeInfo): boolean {
  if (pod.nodeSelector && !matches(pod.nodeSelector, node.labels)) return false;
  return !pod.requiredTerms || pod.requiredTerms.some((t) => termMatches(t, node));
}

/**
 * NodeAffinity: spec.nodeSelector (every label must match, including what RuntimeClass admission
 * merged in) and the required node affinity (any one of the nodeSelectorTerms; within a term every
 * matchExpression and matchField). Preferred terms add their weight to the node's score.
 */
export const nodeAffinity = {
  name: 'NodeAffinity',
  filter(pod: PodInfo, node: NodeInfo) {
    return fitsRequiredNodeAffinity(pod, node) ? undefined : unresolvable(NODE_AFFINITY_REASON);
  },
  score(pod: PodInfo, node: NodeInfo) {
    let total = 0;
    for (const p of pod.preferredTerms ?? []) if (termMatches(p.term, node)) total += p.weight;
    return total;
  },
  normalizeScores(scores: number[]) {
    defaultNormalizeScore(scores, false);
  },
} satisfies Plugin;
