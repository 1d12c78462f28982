import { ApiError } from '../api/errors.js';
import { parseApiVersion, type KubeObject, type OwnerReference } from '../api/types.js';
import type { KubeClient } from '../client/client.js';
import { sleep, type Informer } from '../client/informer.js';
import { WorkQueue } from '../client/workqueue.js';
import {
  defaultErrorSink,
  discoverResources,
  resourceId,
  waitForSync,
  type Controller,
  type ErrorSink,
  type ServedResource,
  type SharedInformers,
} from './controller.js';

/**
 * The garbage collector: deletes objects whose owners are gone, and carries out the Foreground and
 * Orphan propagation policies, for every kind the server serves.
 *
 * It keeps a graph of every object with its ownerReferences, keyed by uid, fed by one informer per
 * listable, watchable and deletable resource found through discovery (re-run every
 * `discoveryPeriodSeconds`, so custom resources join when their CRD is served). Events are left
 * out, as in kube. Each object to look at is a uid in one work queue:
 *
 * - Background (a dependent whose owner is gone). Each owner is *solid* (exists), *dangling*
 *   (absent: not in the graph and 404 or another uid on a live GET) or *waiting* (being deleted
 *   with the `foregroundDeletion` finalizer). With a solid owner left, the dangling and waiting
 *   references are removed; with none, the dependent is deleted (Foreground if a waiting owner
 *   needs its own dependents gone first, otherwise the policy its own finalizers ask for).
 * - Foreground (an owner being deleted with `foregroundDeletion`). Its dependents are deleted; once
 *   none with `blockOwnerDeletion` is left in the graph, the finalizer is removed and the server
 *   finishes the owner.
 * - Orphan (an owner being deleted with `orphan`). The references to it are removed from its
 *   dependents, then the finalizer.
 *
 * A namespaced owner must be in its dependent's namespace (otherwise it counts as absent); a
 * cluster-scoped dependent naming a namespaced owner kind is left alone, as kube does. Writes are
 * guarded by the resourceVersion (patches) or uid (deletes) the decision was made on.
 */

export const GC_DISCOVERY_PERIOD_S = 30;
const GC_WORKERS = 4;
/** The longest discovery waits for new informers to sync before work goes on without them. */
const GC_SYNC_TIMEOUT_MS = 30_000;
/** Owner uids known to be gone, kept to spare live lookups; uids are never reused. */
const ABSENT_OWNER_CACHE_SIZE = 10_000;
const IGNORED_RESOURCES = new Set(['events', 'events.events.k8s.io']);

export interface GarbageCollectorOptions {
  discoveryPeriodSeconds?: number;
  onError?: ErrorSink;
}

interface GraphNode {
  uid: string;
  resource: ServedResource;
  namespace?: string;
  name: string;
  resourceVersion?: string;
  owners: OwnerReference[];
  deleting: boolean;
  finalizers: string[];
}

type OwnerState = 'solid' | 'dangling' | 'waiting' | 'unresolvable';

export class GarbageCollector implements Controller {
  readonly name = 'garbage-collector';
  private readonly graph = new Map<string, GraphNode>();
  /** owner uid → uids of objects naming it, whether or not the owner is in the graph */
  private readonly dependents = new Map<string, Set<string>>();
  private readonly monitored = new Map<string, { resource: ServedResource; informer: Informer }>();
  /** "group/Kind" → resource */
  private kinds = new Map<string, ServedResource>();
  private readonly absent = new Set<string>();
  private readonly queue = new WorkQueue();
  private readonly periodMs: number;
  private readonly onError: ErrorSink;
  /** Aborted to run discovery before the period is up (an owner of a kind not yet known). */
  private rediscover = new AbortController();

  constructor(
    private readonly client: KubeClient,
    private readonly informers: SharedInformers,
    options: GarbageCollectorOptions = {},
  ) {
    this.periodMs = (options.discoveryPeriodSeconds ?? GC_DISCOVERY_PERIOD_S) * 1000;
    this.onError = options.onError ?? defaultErrorSink;
  }

  async run(signal: AbortSignal): Promise<void> {
    let worker: Promise<void> | undefined;
    while (!signal.aborted) {
      try {
        await this.refresh(signal);
        // Decisions need the whole graph: work starts once the first informers have synced.
        worker ??= this.queue.run((uid) => this.process(uid), signal, GC_WORKERS, (uid, err) => {
          if (!(err instanceof UnknownOwnerKind)) this.onError(this.name, this.describe(uid), err);
        });
      } catch (err) {
        this.onError(this.name, 'discovery', err);
      }
      await sleep(this.periodMs, AbortSignal.any([signal, this.rediscover.signal]));
      if (this.rediscover.signal.aborted) this.rediscover = new AbortController();
    }
    await worker;
  }

  /** Monitors newly served resources and drops those no longer served. */
  private async refresh(signal: AbortSignal): Promise<void> {
    const served = await discoverResources(this.client);
    this.kinds = new Map(served.map((r) => [`${r.group}/${r.kind}`, r]));
    const wanted = new Map(
      served.filter((r) => ['list', 'watch', 'delete'].every((v) => r.verbs.includes(v)) && !IGNORED_RESOURCES.has(resourceId(r))).map((r) => [resourceId(r), r]),
    );
    const added: Informer[] = [];
    for (const [id, r] of wanted) {
      if (this.monitored.has(id)) continue;
      const informer = this.informers.get(r);
      informer.on({
        add: (obj) => this.upsert(r, obj),
        update: (_, obj) => this.upsert(r, obj),
        delete: (obj) => this.remove(obj),
      });
      for (const obj of informer.list()) this.upsert(r, obj);
      this.monitored.set(id, { resource: r, informer });
      added.push(informer);
    }
    for (const [id, m] of this.monitored) {
      if (wanted.has(id)) continue;
      this.informers.release(m.resource);
      this.monitored.delete(id);
      // Not served is not proof of absence (a group's discovery may just have failed): drop quietly.
      for (const node of [...this.graph.values()]) if (resourceId(node.resource) === id) this.forget(node.uid, false);
    }
    // A resource that cannot be listed (forbidden, broken) must not hold the collector up forever.
    await waitForSync(AbortSignal.any([signal, AbortSignal.timeout(GC_SYNC_TIMEOUT_MS)]), ...added);
  }

  private upsert(r: ServedResource, obj: KubeObject): void {
    const meta = obj.metadata;
    const uid = meta.uid;
    if (!uid) return;
    const prev = this.graph.get(uid);
    const node: GraphNode = {
      uid,
      resource: r,
      namespace: meta.namespace,
      name: meta.name!,
      resourceVersion: meta.resourceVersion,
      owners: meta.ownerReferences ?? [],
      deleting: !!meta.deletionTimestamp,
      finalizers: meta.finalizers ?? [],
    };
    this.graph.set(uid, node);
    for (const ref of prev?.owners ?? []) {
      if (node.owners.some((o) => o.uid === ref.uid)) continue;
      this.unlink(ref.uid, uid);
      if (this.graph.get(ref.uid)?.deleting) this.queue.add(ref.uid);
    }
    for (const ref of node.owners) {
      let set = this.dependents.get(ref.uid);
      if (!set) this.dependents.set(ref.uid, (set = new Set()));
      set.add(uid);
    }
    const ownersChanged = !prev || prev.owners.length !== node.owners.length || prev.owners.some((o, i) => o.uid !== node.owners[i]!.uid);
    if (node.owners.length && ownersChanged) this.queue.add(uid);
    if (node.deleting && (node.finalizers.includes('orphan') || node.finalizers.includes('foregroundDeletion'))) this.queue.add(uid);
  }

  private remove(obj: KubeObject): void {
    if (obj.metadata.uid) this.forget(obj.metadata.uid, true);
  }

  /** Drops a node; `deleted` when the server said it is gone, which its dependents must hear. */
  private forget(uid: string, deleted: boolean): void {
    const node = this.graph.get(uid);
    if (!node) return;
    this.graph.delete(uid);
    for (const ref of node.owners) {
      this.unlink(ref.uid, uid);
      if (deleted && this.graph.get(ref.uid)?.deleting) this.queue.add(ref.uid);
    }
    if (!deleted) return;
    this.rememberAbsent(uid);
    for (const dep of this.dependents.get(uid) ?? []) this.queue.add(dep);
  }

  private unlink(ownerUid: string, dependentUid: string): void {
    const set = this.dependents.get(ownerUid);
    set?.delete(dependentUid);
    if (set?.size === 0) this.dependents.delete(ownerUid);
  }

  private rememberAbsent(uid: string): void {
    this.absent.add(uid);
    if (this.absent.size > ABSENT_OWNER_CACHE_SIZE) this.absent.delete(this.absent.values().next().value!);
  }

  private async process(uid: string): Promise<void> {
    const node = this.graph.get(uid);
    if (!node) return;
    if (node.deleting) {
      if (node.finalizers.includes('orphan')) return this.orphanDependents(node);
      if (node.finalizers.includes('foregroundDeletion')) return this.deleteDependents(node);
      return;
    }
    if (node.owners.length) await this.attemptToDelete(node);
  }

  private async attemptToDelete(node: GraphNode): Promise<void> {
    const states = await Promise.all(node.owners.map((ref) => this.ownerState(node, ref)));
    const refs = (state: OwnerState) => node.owners.filter((_, i) => states[i] === state).map((r) => r.uid);
    const solid = refs('solid').length + refs('unresolvable').length;
    const dangling = refs('dangling');
    const waiting = refs('waiting');
    if (solid) {
      if (dangling.length || waiting.length) await this.removeOwnerReferences(node, [...dangling, ...waiting]);
      return;
    }
    let policy: 'Background' | 'Foreground' | 'Orphan' = 'Background';
    if (waiting.length && this.dependents.get(node.uid)?.size) policy = 'Foreground';
    else if (node.finalizers.includes('orphan')) policy = 'Orphan';
    else if (node.finalizers.includes('foregroundDeletion')) policy = 'Foreground';
    try {
      await this.client.delete(node.resource, node.namespace, node.name, { propagationPolicy: policy, preconditions: { uid: node.uid } });
    } catch (err) {
      // Gone already, or the name now belongs to another object.
      if (!(err instanceof ApiError && (err.code === 404 || err.code === 409))) throw err;
    }
  }

  private async ownerState(dependent: GraphNode, ref: OwnerReference): Promise<OwnerState> {
    const cached = this.graph.get(ref.uid);
    if (cached) {
      if (!cached.resource.namespaced) return stateOf(cached);
      if (!dependent.namespace) return 'unresolvable';
      return cached.namespace === dependent.namespace ? stateOf(cached) : 'dangling';
    }
    if (this.absent.has(ref.uid)) return 'dangling';
    const r = this.kinds.get(`${parseApiVersion(ref.apiVersion).group}/${ref.kind}`);
    if (!r) {
      // Perhaps a custom resource not yet discovered: look again, and retry with back-off.
      this.rediscover.abort();
      throw new UnknownOwnerKind(ref);
    }
    if (r.namespaced && !dependent.namespace) return 'unresolvable';
    try {
      const owner = await this.client.get(r, r.namespaced ? dependent.namespace : undefined, ref.name);
      if (owner.metadata.uid === ref.uid) {
        return owner.metadata.deletionTimestamp && owner.metadata.finalizers?.includes('foregroundDeletion') ? 'waiting' : 'solid';
      }
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 404)) throw err;
    }
    this.rememberAbsent(ref.uid);
    return 'dangling';
  }

  private async orphanDependents(owner: GraphNode): Promise<void> {
    for (const uid of [...(this.dependents.get(owner.uid) ?? [])]) {
      const dep = this.graph.get(uid);
      if (dep) await this.removeOwnerReferences(dep, [owner.uid]);
    }
    await this.removeFinalizer(owner, 'orphan');
  }

  private async deleteDependents(owner: GraphNode): Promise<void> {
    const deps = [...(this.dependents.get(owner.uid) ?? [])].map((uid) => this.graph.get(uid)).filter((d): d is GraphNode => !!d);
    for (const dep of deps) if (!dep.deleting) this.queue.add(dep.uid);
    const blocking = deps.some((d) => d.owners.some((r) => r.uid === owner.uid && r.blockOwnerDeletion));
    if (!blocking) await this.removeFinalizer(owner, 'foregroundDeletion');
  }

  private async removeOwnerReferences(node: GraphNode, uids: string[]): Promise<void> {
    const owners = node.owners.filter((r) => !uids.includes(r.uid));
    if (owners.length === node.owners.length) return;
    await this.patchMetadata(node, { ownerReferences: owners.length ? owners : null });
  }

  private async removeFinalizer(node: GraphNode, finalizer: string): Promise<void> {
    const finalizers = node.finalizers.filter((f) => f !== finalizer);
    if (finalizers.length === node.finalizers.length) return;
    await this.patchMetadata(node, { finalizers: finalizers.length ? finalizers : null });
  }

  /** A merge patch guarded by the resourceVersion the graph saw; a conflict retries after the informer catches up. */
  private async patchMetadata(node: GraphNode, metadata: Record<string, unknown>): Promise<void> {
    try {
      await this.client.patch(node.resource, node.namespace, node.name, 'merge', { metadata: { ...metadata, resourceVersion: node.resourceVersion } });
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 404)) throw err;
    }
  }

  private describe(uid: string): string {
    const n = this.graph.get(uid);
    return n ? `${resourceId(n.resource)} ${n.namespace ? `${n.namespace}/` : ''}${n.name}` : uid;
  }
}

class UnknownOwnerKind extends Error {
  constructor(ref: OwnerReference) {
    super(`owner kind ${ref.kind} (${ref.apiVersion}) is not served`);
  }
}

function stateOf(owner: GraphNode): OwnerState {
  return owner.deleting && owner.finalizers.includes('foregroundDeletion') ? 'waiting' : 'solid';
}
