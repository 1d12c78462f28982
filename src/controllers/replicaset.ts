import { matches } from '../api/labels.js';
import type { KubeObject } from '../api/types.js';
import type { KubeClient } from '../client/client.js';
import { EventRecorder } from '../client/events.js';
import { type Informer, resource } from '../client/informer.js';
import type { SharedInformers } from './controller.js';
import { WorkQueue } from '../client/workqueue.js';
import {
  BURST_REPLICAS,
  Expectations,
  claimObjects,
  controllerRefOf,
  findCondition,
  isNamespaceTerminating,
  isNotFound,
  isPodActive,
  isPodAvailable,
  isPodReady,
  keyOf,
  newControllerRef,
  podFromTemplate,
  rankPodsForDeletion,
  recheckOwner,
  resolveControllerRef,
  selectorOf,
  semanticEqual,
  slowStartBatch,
  splitKey,
  informerFor,
  startInformers,
  timestamp,
  type Pod,
  type PodTemplate,
  type WorkloadController,
  type WorkloadStatusCondition,
} from './workload-util.js';

/**
 * The ReplicaSet controller (kube's pkg/controller/replicaset): keeps `spec.replicas` active pods
 * that match the selector and are controlled by the ReplicaSet. It adopts matching orphans, releases
 * pods whose labels stop matching, creates missing pods from the template in slow-start batches and
 * deletes extra pods starting with the least useful ones. Expectations hold it back from counting
 * again until the informer has seen its own creates and deletes.
 *
 * Status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (minReadySeconds),
 * observedGeneration, and a ReplicaFailure condition while creates or deletes fail.
 */

export interface ReplicaSetControllerOptions {
  /** Informers shared with the other controllers of the process; absent, the controller runs its own. */
  informers?: SharedInformers;
  workers?: number;
  /** Called when a sync fails (it is retried with back-off). */
  onError?: (key: string, err: unknown) => void;
}

export interface ReplicaSet extends KubeObject {
  spec: { replicas?: number; minReadySeconds?: number; selector?: unknown; template?: PodTemplate };
  status?: ReplicaSetStatus;
}

export interface ReplicaSetStatus {
  replicas: number;
  fullyLabeledReplicas?: number;
  readyReplicas?: number;
  availableReplicas?: number;
  observedGeneration?: number;
  conditions?: WorkloadStatusCondition[];
}

const RS = resource('apps/replicasets');
const PODS = resource('pods');
const KIND = 'ReplicaSet';
const DEFAULT_WORKERS = 5;

export class ReplicaSetController implements WorkloadController {
  readonly name = 'replicaset';
  readonly replicaSets: Informer<ReplicaSet>;
  readonly pods: Informer<Pod>;
  private readonly queue = new WorkQueue();
  private readonly expectations = new Expectations();
  private readonly events: EventRecorder;

  constructor(
    private readonly client: KubeClient,
    private readonly options: ReplicaSetControllerOptions = {},
  ) {
    this.replicaSets = informerFor<ReplicaSet>(client, RS, options.informers);
    this.pods = informerFor<Pod>(client, PODS, options.informers);
    this.events = new EventRecorder(client, 'replicaset-controller');
    this.replicaSets.on({
      add: (rs) => this.enqueue(rs),
      update: (_old, rs) => this.enqueue(rs),
      delete: (rs) => {
        this.expectations.delete(keyOf(rs));
        this.enqueue(rs);
      },
    });
    this.pods.on({
      add: (pod) => this.podAdded(pod),
      update: (old, pod) => this.podUpdated(old, pod),
      delete: (pod) => this.podDeleted(pod),
    });
  }

  async run(signal: AbortSignal): Promise<void> {
    const runs = await startInformers([this.replicaSets, this.pods], signal, Boolean(this.options.informers));
    await Promise.all([...runs, this.queue.run((key) => this.sync(key), signal, this.options.workers ?? DEFAULT_WORKERS, this.options.onError)]);
  }

  private enqueue(rs: KubeObject): void {
    this.queue.add(keyOf(rs));
  }

  private owner(pod: Pod): ReplicaSet | undefined {
    return resolveControllerRef(this.replicaSets, pod, KIND);
  }

  /** ReplicaSets that could adopt an orphan with these labels. */
  private matchingReplicaSets(pod: Pod): ReplicaSet[] {
    return this.replicaSets.list(pod.metadata.namespace).filter((rs) => matches(selectorOf(rs), pod.metadata.labels));
  }

  private podAdded(pod: Pod): void {
    if (pod.metadata.deletionTimestamp) return this.podDeleted(pod);
    if (controllerRefOf(pod)) {
      const rs = this.owner(pod);
      if (!rs) return;
      this.expectations.creationObserved(keyOf(rs));
      this.enqueue(rs);
      return;
    }
    for (const rs of this.matchingReplicaSets(pod)) this.enqueue(rs);
  }

  private podUpdated(old: Pod, pod: Pod): void {
    const labelsChanged = !semanticEqual(old.metadata.labels, pod.metadata.labels);
    if (pod.metadata.deletionTimestamp) {
      // A graceful delete: count it now, as the pod is no longer active.
      this.podDeleted(pod);
      if (labelsChanged) this.podDeleted(old);
      return;
    }
    const oldRef = controllerRefOf(old);
    const ref = controllerRefOf(pod);
    if (oldRef && oldRef.uid !== ref?.uid) {
      const prior = this.owner(old);
      if (prior) this.enqueue(prior);
    }
    if (ref) {
      const rs = this.owner(pod);
      if (!rs) return;
      this.enqueue(rs);
      // A pod that just became ready must be looked at again once minReadySeconds have passed.
      const minReady = rs.spec.minReadySeconds ?? 0;
      if (minReady > 0 && !isPodReady(old) && isPodReady(pod)) this.queue.addAfter(keyOf(rs), minReady * 1000 + 1000);
      return;
    }
    if (labelsChanged || oldRef) for (const rs of this.matchingReplicaSets(pod)) this.enqueue(rs);
  }

  private podDeleted(pod: Pod): void {
    const rs = this.owner(pod);
    if (!rs) return;
    this.expectations.deletionObserved(keyOf(rs), keyOf(pod));
    this.enqueue(rs);
  }

  private async sync(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const rs = this.replicaSets.get(namespace, name);
    if (!rs) {
      this.expectations.delete(key);
      return;
    }
    const selector = selectorOf(rs);
    const needsSync = this.expectations.satisfied(key);
    const active = this.pods.list(namespace).filter(isPodActive);
    const ref = newControllerRef(rs, 'apps/v1', KIND);
    const pods = await claimObjects(this.client, PODS, rs, ref, selector, active, recheckOwner(this.client, RS, rs));

    let manageError: unknown;
    if (needsSync && !rs.metadata.deletionTimestamp) {
      try {
        await this.manageReplicas(rs, pods, key);
      } catch (err) {
        manageError = err;
      }
    }
    const updated = await this.updateStatus(rs, this.calculateStatus(rs, pods, manageError));
    const minReady = rs.spec.minReadySeconds ?? 0;
    const st = updated.status!;
    if (!manageError && minReady > 0 && st.readyReplicas === (rs.spec.replicas ?? 1) && st.availableReplicas !== st.readyReplicas) {
      this.queue.addAfter(key, minReady * 1000);
    }
    if (manageError) throw manageError;
  }

  private async manageReplicas(rs: ReplicaSet, pods: Pod[], key: string): Promise<void> {
    const desired = rs.spec.replicas ?? 1;
    const diff = pods.length - desired;
    if (diff < 0) {
      const count = Math.min(-diff, BURST_REPLICAS);
      this.expectations.expect(key, count);
      const template = rs.spec.template ?? {};
      const ref = newControllerRef(rs, 'apps/v1', KIND);
      const { successes, error } = await slowStartBatch(count, async () => {
        try {
          const pod = await this.client.create<Pod>(PODS, rs.metadata.namespace, podFromTemplate(template, rs, ref));
          void this.events.record(rs, 'Normal', 'SuccessfulCreate', `Created pod: ${pod.metadata.name}`).catch(() => undefined);
        } catch (err) {
          if (isNamespaceTerminating(err)) return;
          void this.events.record(rs, 'Warning', 'FailedCreate', `Error creating: ${(err as Error).message}`).catch(() => undefined);
          throw err;
        }
      });
      // Creates that failed or were never tried will not show up in the informer.
      for (let i = successes; i < count; i++) this.expectations.creationObserved(key);
      if (error) throw error;
      return;
    }
    if (diff > 0) {
      const count = Math.min(diff, BURST_REPLICAS);
      const victims = count < pods.length ? rankPodsForDeletion(pods, this.relatedPods(rs)).slice(0, count) : pods;
      this.expectations.expect(key, 0, victims.map(keyOf));
      const results = await Promise.allSettled(
        victims.map(async (pod) => {
          try {
            await this.client.delete(PODS, pod.metadata.namespace, pod.metadata.name!);
            void this.events.record(rs, 'Normal', 'SuccessfulDelete', `Deleted pod: ${pod.metadata.name}`).catch(() => undefined);
          } catch (err) {
            this.expectations.deletionObserved(key, keyOf(pod));
            if (isNotFound(err)) return;
            void this.events.record(rs, 'Warning', 'FailedDelete', `Error deleting: ${(err as Error).message}`).catch(() => undefined);
            throw err;
          }
        }),
      );
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    }
  }

  /** Active pods of every ReplicaSet with the same controller (a Deployment's other revisions). */
  private relatedPods(rs: ReplicaSet): Pod[] {
    const ownerUid = controllerRefOf(rs)?.uid;
    const siblings = ownerUid
      ? new Set(this.replicaSets.list(rs.metadata.namespace).filter((o) => controllerRefOf(o)?.uid === ownerUid).map((o) => o.metadata.uid))
      : new Set([rs.metadata.uid]);
    return this.pods.list(rs.metadata.namespace).filter((p) => isPodActive(p) && siblings.has(controllerRefOf(p)?.uid));
  }

  private calculateStatus(rs: ReplicaSet, pods: Pod[], manageError: unknown): ReplicaSetStatus {
    const templateLabels = rs.spec.template?.metadata?.labels ?? {};
    const minReady = rs.spec.minReadySeconds ?? 0;
    const now = Date.now();
    let fullyLabeled = 0;
    let ready = 0;
    let available = 0;
    for (const pod of pods) {
      const labels = pod.metadata.labels ?? {};
      if (Object.entries(templateLabels).every(([k, v]) => labels[k] === v)) fullyLabeled++;
      if (isPodReady(pod)) {
        ready++;
        if (isPodAvailable(pod, minReady, now)) available++;
      }
    }
    let conditions = [...(rs.status?.conditions ?? [])];
    const failure = findCondition(conditions, 'ReplicaFailure');
    if (manageError && !failure) {
      const reason = pods.length < (rs.spec.replicas ?? 1) ? 'FailedCreate' : 'FailedDelete';
      const message = manageError instanceof Error ? manageError.message : String(manageError);
      conditions.push({ type: 'ReplicaFailure', status: 'True', reason, message, lastTransitionTime: timestamp() });
    } else if (!manageError && failure) {
      conditions = conditions.filter((c) => c.type !== 'ReplicaFailure');
    }
    const status: ReplicaSetStatus = {
      replicas: pods.length,
      fullyLabeledReplicas: fullyLabeled,
      readyReplicas: ready,
      availableReplicas: available,
      observedGeneration: rs.metadata.generation,
    };
    if (conditions.length) status.conditions = conditions;
    return status;
  }

  private async updateStatus(rs: ReplicaSet, status: ReplicaSetStatus): Promise<ReplicaSet> {
    const cur = rs.status ?? { replicas: 0 };
    if (semanticEqual(normalise(cur), normalise(status))) return rs;
    try {
      return await this.client.patch<ReplicaSet>(RS, rs.metadata.namespace, rs.metadata.name!, 'merge', { status: { ...normalise(status), conditions: status.conditions ?? null } }, { subresource: 'status' });
    } catch (err) {
      if (isNotFound(err)) return { ...rs, status };
      throw err;
    }
  }
}

/** Zero counts are omitted on the wire; compare and write them explicitly. */
function normalise(s: ReplicaSetStatus): ReplicaSetStatus {
  return {
    replicas: s.replicas ?? 0,
    fullyLabeledReplicas: s.fullyLabeledReplicas ?? 0,
    readyReplicas: s.readyReplicas ?? 0,
    availableReplicas: s.availableReplicas ?? 0,
    observedGeneration: s.observedGeneration ?? 0,
    conditions: s.conditions,
  };
}
