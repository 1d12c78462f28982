import { type NodeInfo, type Plugin, type PodInfo, defaultNormalizeScore, unresolvable } from '../framework.js';
import { isTolerated, type Taint } from '../../api/scheduling.js';

export function untoleratedTaintReason(taint: Taint): string {
  return `node(s) had untolerated taint {${taint.key}: ${taint.value ?? ''}}`;
}

/** The first NoSchedule or NoExecute taint of the node the pod does not tolerate. */
export function untoleratedTaint(pod: PodInfo, node: NodeInfo): Taint | undefined {
  for (const taint of node.taints) {
    if (taint.effect !== 'NoSchedule' && taint.effect !== 'NoExecute') continue;
    if (!isTolerated(pod.tolerations, taint)) return taint;
  }
  return undefined;
}

/**
 * TaintToleration: a pod may land only where it tolerates every NoSchedule and NoExecute taint.
 * PreferNoSchedule taints it does not tolerate only lower the node's score.
 */
export const taintToleration = {
  name: 'TaintToleration',
  filter(pod: PodInfo, node: NodeInfo) {
    const taint = untoleratedTaint(pod, node);
    return taint ? unresolvable(untoleratedTaintReason(taint)) : undefined;
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
} satisfies Plugin;
