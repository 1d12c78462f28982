import { type ClusterView, CycleState, type NodeInfo, type Plugin, type PluginEntry, type PodInfo, SKIP, type Status } from './framework.js';

/** Below this many nodes every node is checked; above it, at least this many feasible ones are looked for. */
export const MIN_FEASIBLE_NODES_TO_FIND = 100;
export const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5;
/** The adaptive percentage starts here and falls by one point per 125 nodes. */
export const BASE_PERCENTAGE_OF_NODES_TO_SCORE = 50;

export const NO_NODES_AVAILABLE = 'no nodes available to schedule pods';

/**
 * kube's numFeasibleNodesToFind: how many feasible nodes are enough to stop filtering. With
 * `percentage` 0 it adapts, 50% at 100 nodes down to 5% at 5,625 nodes and beyond, never fewer than
 * 100 nodes.
 */
export function numFeasibleNodesToFind(numAllNodes: number, percentage = 0): number {
  if (numAllNodes < MIN_FEASIBLE_NODES_TO_FIND) return numAllNodes;
  let adaptive = percentage;
  if (adaptive <= 0) {
    adaptive = BASE_PERCENTAGE_OF_NODES_TO_SCORE - Math.floor(numAllNodes / 125);
    if (adaptive < MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND) adaptive = MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND;
  }
  const n = Math.floor((numAllNodes * adaptive) / 100);
  return n < MIN_FEASIBLE_NODES_TO_FIND ? MIN_FEASIBLE_NODES_TO_FIND : n;
}

/**
 * Why no node fits, as kube's FitError prints it: "0/3 nodes are available: 1 node(s) had
 * untolerated taint {k: v}, 2 Insufficient memory." Each reason of each node is counted; the
 * "<count> <reason>" strings are sorted as strings. A preFilter rejection replaces the histogram.
 * There is no preemption plugin, so, as kube without PostFilter plugins, no "preemption:" part.
 */
export class FitError {
  constructor(
    readonly numAllNodes: number,
    readonly reasons: ReadonlyMap<string, number>,
    readonly preFilter?: Status,
    /** The plugins that rejected the pod on some node, or in preFilter. */
    readonly plugins: ReadonlySet<string> = new Set(preFilter?.plugin ? [preFilter.plugin] : []),
  ) {}

  get message(): string {
    let msg = `0/${this.numAllNodes} nodes are available:`;
    if (this.preFilter) return `${msg} ${this.preFilter.reasons.join(', ')}.`;
    const histogram = [...this.reasons].map(([reason, n]) => `${n} ${reason}`).sort();
    if (histogram.length) msg += ` ${histogram.join(', ')}.`;
    return msg;
  }
}

export type ScheduleResult = { nodeName: string; evaluatedNodes: number; feasibleNodes: number } | { error: FitError | typeof NO_NODES_AVAILABLE };

/**
 * A scheduler profile: plugins and their weights, run over the cluster's nodes to place one pod.
 * Filtering starts where the previous cycle stopped, so a sample that ends early still spreads
 * over all nodes in turn (kube's nextStartNodeIndex).
 */
export class Profile {
  private nextStartNodeIndex = 0;
  private readonly filters: Plugin[];
  private readonly preFilters: Plugin[];
  private readonly scorers: PluginEntry[];

  constructor(
    entries: PluginEntry[],
    /** kube's percentageOfNodesToScore; 0 adapts to the cluster size. */
    private readonly percentageOfNodesToScore = 0,
  ) {
    this.preFilters = entries.filter((e) => e.plugin.preFilter).map((e) => e.plugin);
    this.filters = entries.filter((e) => e.plugin.filter).map((e) => e.plugin);
    this.scorers = entries.filter((e) => e.plugin.score && e.weight > 0);
  }

  schedulePod(pod: PodInfo, cluster: ClusterView): ScheduleResult {
    const nodes = cluster.nodeList();
    const total = nodes.length;
    if (total === 0) return { error: NO_NODES_AVAILABLE };
    const state = new CycleState(cluster);
    let filters = this.filters;
    for (const p of this.preFilters) {
      const status = p.preFilter!(pod, state);
      if (status === SKIP) filters = filters.filter((f) => f !== p);
      else if (status) return { error: new FitError(total, new Map(), { ...status, plugin: p.name }) };
    }
    const want = numFeasibleNodesToFind(total, this.percentageOfNodesToScore);
    const feasible: NodeInfo[] = [];
    const reasons = new Map<string, number>();
    const rejectedBy = new Set<string>();
    const start = this.nextStartNodeIndex % total;
    let processed = 0;
    while (processed < total && feasible.length < want) {
      const node = nodes[(start + processed) % total]!;
      processed++;
      const rejected = firstRejection(filters, pod, node, state);
      if (!rejected) {
        feasible.push(node);
        continue;
      }
      rejectedBy.add(rejected.plugin.name);
      for (const r of rejected.status.reasons) reasons.set(r, (reasons.get(r) ?? 0) + 1);
    }
    this.nextStartNodeIndex = (start + processed) % total;
    if (feasible.length === 0) return { error: new FitError(total, reasons, undefined, rejectedBy) };
    const chosen = feasible.length === 1 ? feasible[0]! : this.selectHost(pod, feasible, state);
    return { nodeName: chosen.name, evaluatedNodes: processed, feasibleNodes: feasible.length };
  }

  /** Weighted sum of the normalized plugin scores per node; plugins whose preScore skips add nothing. */
  score(pod: PodInfo, nodes: readonly NodeInfo[], state: CycleState): number[] {
    const totals = new Array<number>(nodes.length).fill(0);
    const scores = new Array<number>(nodes.length);
    for (const { plugin, weight } of this.scorers) {
      if (plugin.preScore?.(pod, nodes, state) === SKIP) continue;
      for (let i = 0; i < nodes.length; i++) scores[i] = plugin.score!(pod, nodes[i]!, state);
      plugin.normalizeScores?.(scores, nodes, state);
      for (let i = 0; i < nodes.length; i++) totals[i]! += scores[i]! * weight;
    }
    return totals;
  }

  /** The best-scoring node; among equals each is picked with equal probability (reservoir sampling). */
  private selectHost(pod: PodInfo, nodes: readonly NodeInfo[], state: CycleState): NodeInfo {
    const totals = this.score(pod, nodes, state);
    let best = 0;
    let ties = 1;
    for (let i = 1; i < nodes.length; i++) {
      if (totals[i]! > totals[best]!) {
        best = i;
        ties = 1;
      } else if (totals[i] === totals[best]) {
        ties++;
        if (Math.random() * ties < 1) best = i;
      }
    }
    return nodes[best]!;
  }
}

/** The first filter to reject the node decides, as kube runs filters in order and stops. */
function firstRejection(filters: readonly Plugin[], pod: PodInfo, node: NodeInfo, state: CycleState): { plugin: Plugin; status: Status } | undefined {
  for (const plugin of filters) {
    const status = plugin.filter!(pod, node, state);
    if (status) return { plugin, status };
  }
  return undefined;
}
