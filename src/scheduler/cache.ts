import type { LabelSelector } from '../api/labels.js';
import { type AffinityTermGroup, AffinityTermGroups } from './affinity-term-groups.js';
import { type ClusterView, NodeInfo, type PlacedPod, type PodInfo } from './framework.js';
import { Listers } from './listers.js';
import { PodCounters } from './pod-counters.js';
import type { Node } from './types.js';

interface PodState extends PlacedPod {
  /** Placed by this scheduler and not yet seen bound by the informer. */
  assumed: boolean;
}

/**
 * The scheduler's picture of the cluster, as kube's scheduler cache: nodes, and the pods counted on
 * each. A pod the scheduler decides to place is assumed onto its node at once, before the binding
 * is sent, so the next cycle already sees its requests; the informer's view of the bound pod later
 * confirms it, and a failed binding forgets it. Assumed pods never expire: the binding either
 * succeeds (and the informer reports it) or fails (and the scheduler forgets it).
 *
 * For the plugins that read the whole cluster (PodTopologySpread, InterPodAffinity) pods are also
 * indexed by namespace, counted per node for the label selectors those plugins ask about, and
 * their affinity terms grouped; all of it is kept current pod by pod. The other objects plugins
 * read are in `listers`.
 */
export class SchedulerCache implements ClusterView {
  private readonly nodes = new Map<string, NodeInfo>();
  /** The nodes that exist as Node objects, in a stable order for round-robin filtering. */
  private order: NodeInfo[] = [];
  private readonly pods = new Map<string, PodState>();
  private readonly byNamespace = new Map<string, Map<string, PodState>>();
  private readonly counters = new PodCounters();
  private readonly termGroups = new AffinityTermGroups();

  constructor(readonly listers = new Listers()) {}

  /** The schedulable node list; do not modify. */
  nodeList(): readonly NodeInfo[] {
    return this.order;
  }

  node(name: string): NodeInfo | undefined {
    return this.nodes.get(name);
  }

  get podCount(): number {
    return this.pods.size;
  }

  addNode(node: Node): void {
    const name = node.metadata.name!;
    let info = this.nodes.get(name);
    if (!info) {
      info = new NodeInfo(name);
      this.nodes.set(name, info);
    }
    if (!info.node) this.order.push(info);
    info.setNode(node);
  }

  updateNode(node: Node): void {
    this.addNode(node);
  }

  /** The node leaves the list; its NodeInfo stays while pods are still counted there. */
  removeNode(name: string): void {
    const info = this.nodes.get(name);
    if (!info) return;
    this.order = this.order.filter((n) => n !== info);
    info.setNode(undefined);
    if (info.pods.size === 0) this.nodes.delete(name);
  }

  isAssumed(key: string): boolean {
    return this.pods.get(key)?.assumed === true;
  }

  /** Counts the pod on the node before its binding is confirmed. */
  assume(info: PodInfo, nodeName: string): void {
    this.place(info, nodeName, true);
  }

  /** Undoes assume after a failed binding, unless the informer has confirmed the pod meanwhile. */
  forget(key: string): void {
    const state = this.pods.get(key);
    if (state?.assumed) this.removePod(key);
  }

  /** A bound, non-terminal pod seen by the informer (new, or confirming an assumed one). */
  addPod(info: PodInfo, nodeName: string): void {
    this.place(info, nodeName, false);
  }

  /** False when the pod was not counted on any node. */
  removePod(key: string): boolean {
    const state = this.pods.get(key);
    if (!state) return false;
    this.pods.delete(key);
    this.unindex(state);
    const node = state.node;
    node.removePod(key);
    if (!node.node && node.pods.size === 0) this.nodes.delete(node.name);
    return true;
  }

  podNamespaces(): Iterable<string> {
    return this.byNamespace.keys();
  }

  matchingPods(namespace: string, selector: LabelSelector, withTerminating: boolean): ReadonlyMap<NodeInfo, number> {
    return this.counters.perNode(namespace, selector, withTerminating, () => this.byNamespace.get(namespace)?.values() ?? []);
  }

  affinityTermGroups(): Iterable<AffinityTermGroup> {
    return this.termGroups.all();
  }

  requiredAntiAffinityTermGroups(): Iterable<AffinityTermGroup> {
    return this.termGroups.requiredAntiAffinity();
  }

  namespaceLabels(namespace: string): Record<string, string> | undefined {
    return this.listers.namespaceLabels(namespace);
  }

  namespacesMatching(selector: LabelSelector): string[] {
    return this.listers.namespacesMatching(selector);
  }

  defaultSpreadSelector(pod: PodInfo): LabelSelector {
    return this.listers.defaultSpreadSelector(pod);
  }

  private place(info: PodInfo, nodeName: string, assumed: boolean): void {
    const prior = this.pods.get(info.key);
    if (prior && prior.node.name !== nodeName) this.removePod(info.key);
    else if (prior) this.unindex(prior);
    let node = this.nodes.get(nodeName);
    if (!node) {
      node = new NodeInfo(nodeName);
      this.nodes.set(nodeName, node);
    }
    node.addPod(info);
    const state: PodState = { info, node, assumed };
    this.pods.set(info.key, state);
    this.index(state);
  }

  private index(state: PodState): void {
    const { info } = state;
    let inNamespace = this.byNamespace.get(info.namespace);
    if (!inNamespace) {
      inNamespace = new Map();
      this.byNamespace.set(info.namespace, inNamespace);
    }
    inNamespace.set(info.key, state);
    this.counters.added(state);
    this.termGroups.added(state);
  }

  private unindex(state: PodState): void {
    const { info } = state;
    const inNamespace = this.byNamespace.get(info.namespace);
    inNamespace?.delete(info.key);
    if (inNamespace?.size === 0) this.byNamespace.delete(info.namespace);
    this.counters.removed(state);
    this.termGroups.removed(state);
  }
}
