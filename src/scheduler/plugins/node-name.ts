import { type NodeInfo, type Plugin, type PodInfo, unresolvable } from '../framework.js';

export const NODE_NAME_REASON = "node(s) didn't match the requested node name";

/** NodeName: a pod that names its node (spec.nodeName) fits only there. */
export const nodeName = {
  name: 'NodeName',
  filter(pod: PodInfo, node: NodeInfo) {
    const wanted = pod.pod.spec?.nodeName;
    return !wanted || wanted === node.name ? undefined : unresolvable(NODE_NAME_REASON);
  },
} satisfies Plugin;
