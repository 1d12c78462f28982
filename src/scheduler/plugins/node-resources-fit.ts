import { type NodeInfo, type Plugin, type PodInfo, MAX_NODE_SCORE, unschedulable } from '../framework.js';

export const TOO_MANY_PODS_REASON = 'Too many pods';

export function insufficient(resource: string): string {
  return `Insufficient ${resource}`;
}

/** The reasons the pod's requests do not fit what the node has left; empty when they do. */
export function insufficientResources(pod: PodInfo, node: NodeInfo): string[] {
  const reasons: string[] = [];
  if (node.pods.size + 1 > node.allowedPods) reasons.push(TOO_MANY_PODS_REASON);
  const req = pod.requests;
  const alloc = node.allocatable;
  const used = node.requested;
  if (req.milliCPU > 0 && req.milliCPU > alloc.milliCPU - used.milliCPU) reasons.push(insufficient('cpu'));
  if (req.memory > 0 && req.memory > alloc.memory - used.memory) reasons.push(insufficient('memory'));
  if (req.ephemeralStorage > 0 && req.ephemeralStorage > alloc.ephemeralStorage - used.ephemeralStorage) reasons.push(insufficient('ephemeral-storage'));
  for (const name in req.scalar) {
    const n = req.scalar[name]!;
    if (n > 0 && n > (alloc.scalar[name] ?? 0) - (used.scalar[name] ?? 0)) reasons.push(insufficient(name));
  }
  return reasons;
}

/** insufficientResources(...).length === 0 without allocating: the filter runs on hundreds of nodes per pod. */
function fits(pod: PodInfo, node: NodeInfo): boolean {
  if (node.pods.size + 1 > node.allowedPods) return false;
  const req = pod.requests;
  const alloc = node.allocatable;
  const used = node.requested;
  if (req.milliCPU > 0 && req.milliCPU > alloc.milliCPU - used.milliCPU) return false;
  if (req.memory > 0 && req.memory > alloc.memory - used.memory) return false;
  if (req.ephemeralStorage > 0 && req.ephemeralStorage > alloc.ephemeralStorage - used.ephemeralStorage) return false;
  for (const name in req.scalar) {
    const n = req.scalar[name]!;
    if (n > 0 && n > (alloc.scalar[name] ?? 0) - (used.scalar[name] ?? 0)) return false;
  }
  return true;
}

/** leastRequestedScore: the share of the resource left free after placing the pod, 0..100. */
function leastRequested(requested: number, capacity: number): number {
  if (capacity === 0 || requested > capacity) return 0;
  return Math.floor(((capacity - requested) * MAX_NODE_SCORE) / capacity);
}

/**
 * NodeResourcesFit: the pod's requests (containers, init containers and spec.overhead) must fit the
 * node's allocatable minus the requests of the pods already counted there, and the node's pod
 * count must stay within allocatable pods. Scores with LeastAllocated over cpu and memory (weight 1
 * each), counting pods without requests at kube's default request.
 */
export const nodeResourcesFit = {
  name: 'NodeResourcesFit',
  filter(pod: PodInfo, node: NodeInfo) {
    if (fits(pod, node)) return undefined;
    return unschedulable(...insufficientResources(pod, node));
  },
  score(pod: PodInfo, node: NodeInfo) {
    const cpu = leastRequested(node.nonZeroRequested.milliCPU + pod.nonZeroRequests.milliCPU, node.allocatable.milliCPU);
    const memory = leastRequested(node.nonZeroRequested.memory + pod.nonZeroRequests.memory, node.allocatable.memory);
    return Math.floor((cpu + memory) / 2);
  },
} satisfies Plugin;
