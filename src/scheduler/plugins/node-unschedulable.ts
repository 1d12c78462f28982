import { type NodeInfo, type Plugin, type PodInfo, unresolvable } from '../framework.js';
import type { Taint } from '../types.js';
import { isTolerated } from '../../api/scheduling.js';

export const NODE_UNSCHEDULABLE_REASON = 'node(s) were unschedulable';

/** The taint a cordoned node stands for; a pod tolerating it may still go there (as DaemonSet pods do). */
const UNSCHEDULABLE_TAINT: Taint = { key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' };

/** NodeUnschedulable: cordoned nodes (spec.unschedulable) take no new pods. */
export const nodeUnschedulable = {
  name: 'NodeUnschedulable',
  filter(pod: PodInfo, node: NodeInfo) {
    if (!node.unschedulable || isTolerated(pod.tolerations, UNSCHEDULABLE_TAINT)) return undefined;
    return unresolvable(NODE_UNSCHEDULABLE_REASON);
  },
} satisfies Plugin;
