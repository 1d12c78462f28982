import { NodeInfo, type PodInfo, podInfo } from './framework.js';
import type { Container, Node, Pod, PodSpec, ResourceList, Taint } from './types.js';

let uid = 0;

/** A pod as plain object: one container with `requests`, and any spec fields. */
export function testPod(requests: ResourceList = {}, spec: PodSpec = {}, name = `pod-${++uid}`): PodInfo {
  const container: Container = { name: 'c', resources: { requests } };
  const pod: Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', uid: `uid-${name}` }, spec: { containers: [container], ...spec } };
  return podInfo(pod);
}

export interface TestNodeSpec {
  allocatable?: ResourceList;
  labels?: Record<string, string>;
  taints?: Taint[];
  unschedulable?: boolean;
  pods?: PodInfo[];
}

/** A NodeInfo for a node with `allocatable` (default 4 cpu, 8Gi, 110 pods) and `pods` on it. */
export function testNode(name: string, spec: TestNodeSpec = {}): NodeInfo {
  const node: Node = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: spec.labels ?? {} },
    spec: { taints: spec.taints, unschedulable: spec.unschedulable },
    status: { allocatable: spec.allocatable ?? { cpu: '4', memory: '8Gi', pods: '110' } },
  };
  const info = new NodeInfo(name);
  info.setNode(node);
  for (const p of spec.pods ?? []) info.addPod(p);
  return info;
}
