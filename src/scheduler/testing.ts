import type { ObjectMeta } from '../api/types.js';
import { SchedulerCache } from './cache.js';
import { type ClusterView, CycleState, NodeInfo, type Plugin, type PodInfo, SKIP, podInfo } from './framework.js';
import type { Container, Namespace, Node, Pod, PodSpec, ReplicaSet, ResourceList, Service, Taint } from './types.js';

let uid = 0;

/** A pod as plain object: one container with `requests`, and any spec fields. */
export function testPod(requests: ResourceList = {}, spec: PodSpec = {}, name = `pod-${++uid}`, meta: ObjectMeta = {}): PodInfo {
  const container: Container = { name: 'c', resources: { requests } };
  const pod: Pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default', uid: `uid-${name}`, ...meta }, spec: { containers: [container], ...spec } };
  return podInfo(pod);
}

/** A pod requesting nothing, with `labels` (and any other metadata, such as a namespace) and `spec`. */
export function labeledPod(labels: Record<string, string>, spec: PodSpec = {}, meta: ObjectMeta = {}): PodInfo {
  return testPod({}, spec, meta.name, { labels, ...meta });
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

export interface TestClusterObjects {
  namespaces?: Namespace[];
  services?: Service[];
  replicaSets?: ReplicaSet[];
}

/**
 * A scheduler cache holding the nodes built by testNode, with their pods placed through the cache
 * so that its indexes know them, and the given namespaces, Services and ReplicaSets. Read the
 * nodes back with `cache.nodeList()` or `cache.node(name)`.
 */
export function testCluster(nodes: NodeInfo[], objects: TestClusterObjects = {}): SchedulerCache {
  const cache = new SchedulerCache();
  for (const n of nodes) {
    cache.addNode(n.node!);
    for (const p of n.pods.values()) cache.addPod(p, n.name);
  }
  for (const ns of objects.namespaces ?? []) cache.listers.setNamespace(ns);
  for (const svc of objects.services ?? []) cache.listers.setService(svc);
  for (const rs of objects.replicaSets ?? []) cache.listers.setReplicaSet(rs);
  return cache;
}

/**
 * One plugin's preFilter and filter over every node of the cluster, as a cycle runs them: each
 * node's name → the reasons it was ruled out, or undefined when it fits. SKIP when preFilter skips;
 * a preFilter Status is returned as it is.
 */
export function runFilter(plugin: Plugin, pod: PodInfo, cluster: ClusterView): Record<string, string[] | undefined> | typeof SKIP | { preFilter: string[] } {
  const state = new CycleState(cluster);
  const pre = plugin.preFilter?.(pod, state);
  if (pre === SKIP) return SKIP;
  if (pre) return { preFilter: pre.reasons };
  return Object.fromEntries(cluster.nodeList().map((n) => [n.name, plugin.filter!(pod, n, state)?.reasons]));
}

/**
 * One plugin's preScore, score and normalizeScores over `nodes` (every node by default): each
 * node's name → its normalized score, or SKIP when preScore skips.
 */
export function runScore(plugin: Plugin, pod: PodInfo, cluster: ClusterView, nodes: readonly NodeInfo[] = cluster.nodeList()): Record<string, number> | typeof SKIP {
  const state = new CycleState(cluster);
  if (plugin.preScore?.(pod, nodes, state) === SKIP) return SKIP;
  const scores = nodes.map((n) => plugin.score!(pod, n, state));
  plugin.normalizeScores?.(scores, nodes, state);
  return Object.fromEntries(nodes.map((n, i) => [n.name, scores[i]!]));
}
