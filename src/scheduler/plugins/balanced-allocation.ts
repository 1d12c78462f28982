import { type NodeInfo, type Plugin, type PodInfo, MAX_NODE_SCORE } from '../framework.js';

/**
 * NodeResourcesBalancedAllocation: prefers nodes where cpu and memory would be used in equal shares
 * after placing the pod: (1 - standard deviation of the shares) * 100. With two resources the
 * deviation is half their difference; a resource the node has none of is left out.
 */
export const balancedAllocation = {
  name: 'NodeResourcesBalancedAllocation',
  score(pod: PodInfo, node: NodeInfo) {
    const { milliCPU, memory } = node.allocatable;
    if (milliCPU === 0 || memory === 0) return MAX_NODE_SCORE;
    const cpuShare = Math.min(1, (node.nonZeroRequested.milliCPU + pod.nonZeroRequests.milliCPU) / milliCPU);
    const memoryShare = Math.min(1, (node.nonZeroRequested.memory + pod.nonZeroRequests.memory) / memory);
    const std = Math.abs(cpuShare - memoryShare) / 2;
    return Math.floor((1 - std) * MAX_NODE_SCORE);
  },
} satisfies Plugin;
