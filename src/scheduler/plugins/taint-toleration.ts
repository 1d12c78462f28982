import { type NodeInfo, type Plugin, type PodInfo, defaultNormalizeScore, unresolvable } from '../framework.js';
import type { Taint, Toleration } from '../types.js';

/** v1.Toleration.ToleratesTaint: an empty key with Exists tolerates every key; an empty effect every effect. */
export function toleratesTaint(t: Toleration, taint: Taint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.key && t.key !== taint.key) return false;
  switch (t.operator ?? 'Equal') {
    case 'Exists':
      return true;
    case 'Equal':
    case '':
      return (t.value ?? '') === (taint.value ?? '');
    default:
      return false;
  }
}

export function isTolerated(tolerations: readonly Toleration[], taint: Taint): boolean {
  return tolerations.some((t) => toleratesTaint(t, taint));
}

export function untoleratedTaintReason(taint: Taint): string {
  return `node(s) had untolerated taint {${taint.key}: ${taint.value ?? ''}}`;
}

/**
 * TaintToleration: a pod may land only where it tolerates every NoSchedule and NoExecute taint.
 * PreferNoSchedule taints it does not tolerate only lower the node's score.
 */
export const taintToleration: Plugin = {
  name: 'TaintToleration',
  filter(pod: PodInfo, node: NodeInfo) {
    for (const taint of node.taints) {
      if (taint.effect !== 'NoSchedule' && taint.effect !== 'NoExecute') continue;
      if (!isTolerated(pod.tolerations, taint)) return unresolvable(untoleratedTaintReason(taint));
    }
    return undefined;
  },
  /** The count of untolerated PreferNoSchedule taints; normalizeScores turns fewer into higher. */
  score(pod: PodInfo, node: NodeInfo) {
    let count = 0;
    for (const taint of node.taints) {
      if (taint.effect !== 'PreferNoSchedule') continue;
      const prefer = pod.tolerations.filter((t) => !t.effect || t.effect === 'PreferNoSchedule');
      if (!isTolerated(prefer, taint)) count++;
    }
    return count;
  },
  normalizeScores(scores: number[]) {
    defaultNormalizeScore(scores, true);
  },
};
