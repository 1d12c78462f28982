import { type NodeInfo, type Plugin, type PodInfo, unschedulable } from '../framework.js';

export const NODE_PORTS_REASON = "node(s) didn't have free ports for the requested pod ports";

/** NodePorts: a host port (protocol, port, IP) can be held by one pod per node. */
export const nodePorts = {
  name: 'NodePorts',
  filter(pod: PodInfo, node: NodeInfo) {
    for (const hp of pod.hostPorts) if (node.portConflicts(hp)) return unschedulable(NODE_PORTS_REASON);
    return undefined;
  },
} satisfies Plugin;
