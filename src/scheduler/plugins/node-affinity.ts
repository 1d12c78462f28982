import { matches } from '../../api/labels.js';
import { type NodeInfo, type Plugin, type PodInfo, defaultNormalizeScore, termMatches, unresolvable } from '../framework.js';

export const NODE_AFFINITY_REASON = "node(s) didn't match Pod's node affinity/selector";

/**
 * NodeAffinity: spec.nodeSelector (every label must match, including what RuntimeClass admission
 * merged in) and the required node affinity (any one of the nodeSelectorTerms; within a term every
 * matchExpression and matchField). Preferred terms add their weight to the node's score.
 */
export const nodeAffinity: Plugin = {
  name: 'NodeAffinity',
  filter(pod: PodInfo, node: NodeInfo) {
    if (pod.nodeSelector && !matches(pod.nodeSelector, node.labels)) return unresolvable(NODE_AFFINITY_REASON);
    if (pod.requiredTerms && !pod.requiredTerms.some((t) => termMatches(t, node))) return unresolvable(NODE_AFFINITY_REASON);
    return undefined;
  },
  score(pod: PodInfo, node: NodeInfo) {
    let total = 0;
    for (const p of pod.preferredTerms ?? []) if (termMatches(p.term, node)) total += p.weight;
    return total;
  },
  normalizeScores(scores: number[]) {
    defaultNormalizeScore(scores, false);
  },
};
