import type { Plugin, PluginEntry } from './framework.js';
import { balancedAllocation } from './plugins/balanced-allocation.js';
import { interPodAffinity } from './plugins/inter-pod-affinity.js';
import { nodeAffinity } from './plugins/node-affinity.js';
import { nodeName } from './plugins/node-name.js';
import { nodePorts } from './plugins/node-ports.js';
import { nodeResourcesFit } from './plugins/node-resources-fit.js';
import { nodeUnschedulable } from './plugins/node-unschedulable.js';
import { podTopologySpread } from './plugins/pod-topology-spread.js';
import { taintToleration } from './plugins/taint-toleration.js';

const ALL: Plugin[] = [nodeUnschedulable, nodeName, taintToleration, nodeAffinity, nodePorts, nodeResourcesFit, podTopologySpread, interPodAffinity, balancedAllocation];

/** Every plugin the scheduler knows, by the name kube gives it. */
export const PLUGINS: ReadonlyMap<string, Plugin> = new Map(ALL.map((p) => [p.name, p]));

/** How node resource usage is scored: kube's NodeResourcesFit LeastAllocated strategy, or BalancedAllocation. */
export type ResourceScoring = 'LeastAllocated' | 'BalancedAllocation';

/**
 * The default profile: filters in kube's order (cheap and unresolvable ones first), score weights as
 * kube's defaults (TaintToleration 3, NodeAffinity 2, PodTopologySpread 2, InterPodAffinity 2,
 * resources 1). Weight 0 means filter only.
 */
export function defaultProfile(resourceScoring: ResourceScoring = 'LeastAllocated'): PluginEntry[] {
  const weights: [string, number][] = [
    ['NodeUnschedulable', 0],
    ['NodeName', 0],
    ['TaintToleration', 3],
    ['NodeAffinity', 2],
    ['NodePorts', 0],
    ['NodeResourcesFit', resourceScoring === 'LeastAllocated' ? 1 : 0],
    ['PodTopologySpread', 2],
    ['InterPodAffinity', 2],
    ['NodeResourcesBalancedAllocation', resourceScoring === 'BalancedAllocation' ? 1 : 0],
  ];
  return weights.map(([name, weight]) => ({ plugin: PLUGINS.get(name)!, weight }));
}
