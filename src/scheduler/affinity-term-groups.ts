import type { NodeInfo, PlacedPod } from './framework.js';
import type { AffinityTerm } from './pod-affinity-terms.js';

export type AffinityTermKind = 'requiredAffinity' | 'requiredAntiAffinity' | 'preferredAffinity' | 'preferredAntiAffinity';

/** One distinct (anti-)affinity term and the placed pods that carry it. */
export interface AffinityTermGroup {
  readonly kind: AffinityTermKind;
  readonly term: AffinityTerm;
  /** A preferred term's weight; 0 for a required one. */
  readonly weight: number;
  /** How many times placed pods carry the term, per node. */
  readonly perNode: ReadonlyMap<NodeInfo, number>;
}

interface Group extends AffinityTermGroup {
  readonly perNode: Map<NodeInfo, number>;
  total: number;
}

/**
 * The podAffinity and podAntiAffinity terms of the placed pods, grouped by equal term, as the pod
 * being placed must be checked against them (the symmetric half of inter-pod affinity). The
 * replicas of one workload share their terms, so a cycle checks each distinct term once and adds
 * up its pods per node, instead of walking every pod with affinity.
 */
export class AffinityTermGroups {
  private readonly groups = new Map<string, Group>();
  private readonly requiredAnti = new Set<Group>();

  all(): Iterable<AffinityTermGroup> {
    return this.groups.values();
  }

  /** The groups of required anti-affinity terms, the only ones that filter. */
  requiredAntiAffinity(): Iterable<AffinityTermGroup> {
    return this.requiredAnti;
  }

  added(placed: PlacedPod): void {
    this.update(placed, 1);
  }

  removed(placed: PlacedPod): void {
    this.update(placed, -1);
  }

  private update(placed: PlacedPod, delta: number): void {
    const a = placed.info.affinity;
    if (!a) return;
    for (const term of a.requiredAffinity) this.count('requiredAffinity', term, 0, placed.node, delta);
    for (const term of a.requiredAntiAffinity) this.count('requiredAntiAffinity', term, 0, placed.node, delta);
    for (const { term, weight } of a.preferredAffinity) this.count('preferredAffinity', term, weight, placed.node, delta);
    for (const { term, weight } of a.preferredAntiAffinity) this.count('preferredAntiAffinity', term, weight, placed.node, delta);
  }

  private count(kind: AffinityTermKind, term: AffinityTerm, weight: number, node: NodeInfo, delta: number): void {
    const key = `${kind}\0${weight}\0${term.key}`;
    let group = this.groups.get(key);
    if (!group) {
      group = { kind, term, weight, perNode: new Map(), total: 0 };
      this.groups.set(key, group);
      if (kind === 'requiredAntiAffinity') this.requiredAnti.add(group);
    }
    const n = (group.perNode.get(node) ?? 0) + delta;
    if (n === 0) group.perNode.delete(node);
    else group.perNode.set(node, n);
    group.total += delta;
    if (group.total === 0) {
      this.groups.delete(key);
      this.requiredAnti.delete(group);
    }
  }
}
