import { type LabelSelector, matches, selectorToString } from '../api/labels.js';
import type { NodeInfo, PlacedPod } from './framework.js';

/** Counters kept current at once; the least recently read is dropped beyond this. */
export const MAX_POD_COUNTERS = 256;

interface Counter {
  namespace: string;
  selector: LabelSelector;
  /** Terminating pods count too (inter-pod affinity), or not (topology spreading). */
  withTerminating: boolean;
  perNode: Map<NodeInfo, number>;
}

function counterKey(namespace: string, selector: LabelSelector, withTerminating: boolean): string {
  return `${withTerminating ? 'all' : 'live'}\0${namespace}\0${selector.matchesNothing ? '<nothing>' : selectorToString(selector)}`;
}

/**
 * Per-node counts of the pods in a namespace that match a label selector, the numbers topology
 * spreading and inter-pod affinity add up per domain. A count is built from the namespace's pods
 * the first time a plugin asks for it, then kept current as pods are placed and removed, so that a
 * cycle for the 1,000th replica of a set reads its siblings per node instead of walking them all.
 * Each placed or removed pod is checked against the counters of its namespace only.
 */
export class PodCounters {
  /** By key, in the order last read: the first is the one to drop. */
  private readonly counters = new Map<string, Counter>();
  private readonly byNamespace = new Map<string, Set<Counter>>();

  constructor(private readonly capacity = MAX_POD_COUNTERS) {}

  /** The counts for the selector; `pods` lists the namespace's pods when they must be counted afresh. */
  perNode(namespace: string, selector: LabelSelector, withTerminating: boolean, pods: () => Iterable<PlacedPod>): ReadonlyMap<NodeInfo, number> {
    const key = counterKey(namespace, selector, withTerminating);
    let counter = this.counters.get(key);
    if (counter) {
      this.counters.delete(key);
    } else {
      counter = { namespace, selector, withTerminating, perNode: new Map() };
      for (const placed of pods()) this.update(counter, placed, 1);
      let inNamespace = this.byNamespace.get(namespace);
      if (!inNamespace) {
        inNamespace = new Set();
        this.byNamespace.set(namespace, inNamespace);
      }
      inNamespace.add(counter);
      if (this.counters.size >= this.capacity) this.drop(this.counters.keys().next().value!);
    }
    this.counters.set(key, counter);
    return counter.perNode;
  }

  added(placed: PlacedPod): void {
    for (const counter of this.byNamespace.get(placed.info.namespace) ?? []) this.update(counter, placed, 1);
  }

  removed(placed: PlacedPod): void {
    for (const counter of this.byNamespace.get(placed.info.namespace) ?? []) this.update(counter, placed, -1);
  }

  private update(counter: Counter, placed: PlacedPod, delta: number): void {
    if (placed.info.terminating && !counter.withTerminating) return;
    if (!matches(counter.selector, placed.info.labels)) return;
    const n = (counter.perNode.get(placed.node) ?? 0) + delta;
    if (n === 0) counter.perNode.delete(placed.node);
    else counter.perNode.set(placed.node, n);
  }

  private drop(key: string): void {
    const counter = this.counters.get(key)!;
    this.counters.delete(key);
    const inNamespace = this.byNamespace.get(counter.namespace)!;
    inNamespace.delete(counter);
    if (inNamespace.size === 0) this.byNamespace.delete(counter.namespace);
  }
}
