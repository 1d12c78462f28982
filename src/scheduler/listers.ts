import { EVERYTHING, type LabelSelector, type Requirement, fromLabelSelector, matches, selectorFromSet } from '../api/labels.js';
import type { PodInfo } from './framework.js';
import type { Namespace, ReplicaSet, Service } from './types.js';

/** The controller kinds whose selector default spreading reads (helper.DefaultSelector). */
const REPLICA_SET = { apiVersion: 'apps/v1', kind: 'ReplicaSet' };

function nsName(namespace: string | undefined, name: string | undefined): string {
  return `${namespace ?? ''}/${name ?? ''}`;
}

/**
 * The objects besides pods and nodes that plugins read, as kube's scheduler reads them through
 * informer listers: namespace labels (for podAffinity namespaceSelector) and the selectors of
 * Services and ReplicaSets (for default topology spreading). Kept as the plugins use them, with
 * selectors compiled once per object version.
 */
export class Listers {
  private readonly namespaces = new Map<string, Record<string, string>>();
  /** namespace → Service name → spec.selector; Services without a selector select nothing and are left out. */
  private readonly services = new Map<string, Map<string, Record<string, string>>>();
  /** namespace/name → spec.selector; undefined when it does not compile, as kube ignores it then. */
  private readonly replicaSets = new Map<string, LabelSelector | undefined>();

  setNamespace(ns: Namespace): void {
    this.namespaces.set(ns.metadata.name ?? '', ns.metadata.labels ?? {});
  }

  deleteNamespace(ns: Namespace): void {
    this.namespaces.delete(ns.metadata.name ?? '');
  }

  setService(svc: Service): void {
    const namespace = svc.metadata.namespace ?? '';
    const selector = svc.spec?.selector;
    if (!selector) {
      this.deleteService(svc);
      return;
    }
    let byName = this.services.get(namespace);
    if (!byName) {
      byName = new Map();
      this.services.set(namespace, byName);
    }
    byName.set(svc.metadata.name ?? '', selector);
  }

  deleteService(svc: Service): void {
    const namespace = svc.metadata.namespace ?? '';
    const byName = this.services.get(namespace);
    byName?.delete(svc.metadata.name ?? '');
    if (byName?.size === 0) this.services.delete(namespace);
  }

  setReplicaSet(rs: ReplicaSet): void {
    let selector: LabelSelector | undefined;
    try {
      selector = fromLabelSelector(rs.spec?.selector);
    } catch {
      selector = undefined;
    }
    this.replicaSets.set(nsName(rs.metadata.namespace, rs.metadata.name), selector);
  }

  deleteReplicaSet(rs: ReplicaSet): void {
    this.replicaSets.delete(nsName(rs.metadata.namespace, rs.metadata.name));
  }

  namespaceLabels(namespace: string): Record<string, string> | undefined {
    return this.namespaces.get(namespace);
  }

  namespacesMatching(selector: LabelSelector): string[] {
    const names: string[] = [];
    for (const [name, labels] of this.namespaces) if (matches(selector, labels)) names.push(name);
    return names;
  }

  /**
   * helper.DefaultSelector: the labels of every Service in the pod's namespace that selects it,
   * merged, plus the requirements of the ReplicaSet that controls it. kube also reads
   * ReplicationControllers and StatefulSets here; Atoll serves neither, so pods they would own have
   * only their Services' selector.
   */
  defaultSpreadSelector(pod: PodInfo): LabelSelector {
    const services = this.services.get(pod.namespace);
    const owner = pod.pod.metadata.ownerReferences?.find((o) => o.controller === true);
    if (!services && !owner) return EVERYTHING;
    const set: Record<string, string> = {};
    for (const selector of services?.values() ?? []) {
      if (Object.entries(selector).every(([k, v]) => pod.labels[k] === v)) Object.assign(set, selector);
    }
    const requirements: Requirement[] = [...selectorFromSet(set).requirements];
    if (owner && owner.apiVersion === REPLICA_SET.apiVersion && owner.kind === REPLICA_SET.kind) {
      const selector = this.replicaSets.get(nsName(pod.namespace, owner.name));
      if (selector && !selector.matchesNothing) requirements.push(...selector.requirements);
    }
    return { requirements };
  }
}
