import type { Plugin, PluginEntry } from './framework.js';
import { balancedAllocation } from './plugins/balanced-allocation.js';
import { nodeAffinity } from './plugins/node-affinity.js';
import { nodeName } from './plugins/node-name.js';
import { nodePorts } from './plugins/node-ports.js';
import { nodeResourcesFit } from './plugins/node-resources-fit.js';
import { nodeUnschedulable } from './plugins/node-unschedulable.js';
import { taintToleration } from './plugins/taint-toleration.js';

/** Every plugin the scheduler knows, by the name kube gives it. */
export const PLUGINS: ReadonlyMap<string, Plugin> = new Map(
  [nodeUnschedulable, nodeName, taintToleration, nodeAffinity, nodePorts, nodeResourcesFit, balancedAllocation].map((p) => [p.name, p]),
);

/** How node resource usage is scored: kube's NodeResourcesFit LeastAllocated strategy, or BalancedAllocation. */
export type ResourceScoring = 'LeastAllocated' | 'BalancedAllocation';

/**
 * The default profile: filters in kube's order (cheap and unresolvable ones first), score weights as
 * kube's defaults (TaintToleration 3, NodeAffinity 2, resources 1). Weight 0 means filter only.
 */
export function defaultProfile(resourceScoring: ResourceScoring = 'LeastAllocated'): PluginEntry[] {
  const weights: [string, number][] = [
    ['NodeUnschedulable', 0],
    ['NodeName', 0],
    ['TaintToleration', 3],
    ['NodeAffinity', 2],
    ['NodePorts', 0],
    ['NodeResourcesFit', resourceScoring === 'LeastAllocated' ? 1 : 0],
    ['NodeResourcesBalancedAllocation', resourceScoring === 'BalancedAllocation' ? 1 : 0],
  ];
  return weights.map(([name, weight]) => ({ plugin: PLUGINS.get(name)!, weight }));
}
