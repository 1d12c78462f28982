import { deepEqual } from '../api/validation/field.js';
import { toleratesTaint, type Taint, type Toleration } from '../api/scheduling.js';
import type { KubeObject } from '../api/types.js';

export type { Taint, Toleration };
import type { KubeClient } from '../client/client.js';
import { EventRecorder } from '../client/events.js';
import { resource, sleep, type Informer } from '../client/informer.js';
import { WorkQueue } from '../client/workqueue.js';
import { defaultErrorSink, objectKey, splitKey, timestamp, waitForSync, type Controller, type ErrorSink, type SharedInformers } from './controller.js';

/**
 * The node lifecycle controller: node health from Leases and heartbeats, node taints, and
 * taint-based eviction of pods.
 *
 * Health. A node is alive while its Lease (`kube-node-lease/<node>`) `renewTime` or its Ready
 * condition's `lastHeartbeatTime` keeps changing. The controller stamps each change with its own
 * clock (so skew between node and control plane does not matter, as in kube), and a node first
 * seen counts as just heard from: a restarted controller gives every node a full grace period.
 *
 * Each check period, for a node silent for longer than the grace period:
 * 1. Ready, MemoryPressure, DiskPressure and PIDPressure become Unknown (`NodeStatusUnknown`,
 *    "Kubelet stopped posting node status."), through the status subresource;
 * 2. the node gets `node.kubernetes.io/unreachable` NoSchedule and NoExecute taints (the NoExecute
 *    one with `timeAdded`); a live node whose kubelet reports Ready=False gets `not-ready` instead;
 * 3. the Ready condition of its pods turns False (kube's MarkPodsNotReady).
 * When the Lease or heartbeat moves again, the two taints go; restoring conditions is the kubelet's.
 *
 * NoExecute taints are added at most `nodeEvictionRate` nodes per second per zone (a token bucket
 * with burst 1, zone = region + zone labels). kube-controller-manager's `--node-eviction-rate` is
 * 0.1; Atoll's default is 10, because an edge site is usually its own zone and a partition that
 * loses one node should not wait on others. Zone disruption modes (kube stops evicting when a
 * whole zone is down) are not modelled: that is what `protect` is for.
 *
 * Eviction. A pod bound to a node with NoExecute taints is deleted (gracefully, after a
 * DisruptionTarget condition, as kube's taint-eviction controller does):
 * - at once if some taint is not tolerated;
 * - when the matching toleration's `tolerationSeconds` has elapsed since that taint's `timeAdded`
 *   (the earliest such deadline over all taints);
 * - never if every taint is tolerated without `tolerationSeconds`.
 *
 * Seam for edge autonomy: `protect(node)`. While it returns true for a node, the controller still
 * marks the node Unknown and taints it (the scheduler must avoid it), but neither marks its pods
 * NotReady nor evicts them. The predicate is asked again every check period and on every pod or
 * node change, so an autonomy controller may flip it at any time (an annotation, a deadline). When
 * protection ends, pods whose toleration deadline (counted from the taint's `timeAdded`) has
 * already passed are evicted at once. The controller manager passes `protectsAutonomousNode`
 * (autonomy.ts), which reads the node's `node.atoll.dev/autonomy` annotations.
 */

export const NODE_MONITOR_GRACE_PERIOD_S = 50;
export const NODE_MONITOR_PERIOD_S = 5;
/** NoExecute taints added per second per zone (kube's --node-eviction-rate is 0.1). */
export const NODE_EVICTION_RATE = 10;
export const TAINT_UNREACHABLE = 'node.kubernetes.io/unreachable';
export const TAINT_NOT_READY = 'node.kubernetes.io/not-ready';
export const NODE_LEASE_NAMESPACE = 'kube-node-lease';
const EVICTION_WORKERS = 4;
const NODE_CONDITIONS = ['Ready', 'MemoryPressure', 'DiskPressure', 'PIDPressure'];
const LABEL_REGION = 'topology.kubernetes.io/region';
const LABEL_ZONE = 'topology.kubernetes.io/zone';

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastHeartbeatTime?: string;
  lastTransitionTime?: string;
}

export interface NodeLifecycleOptions {
  nodeMonitorGracePeriodSeconds?: number;
  nodeMonitorPeriodSeconds?: number;
  nodeEvictionRate?: number;
  /** Edge autonomy: true keeps the node's pods Ready and unevicted while it is unreachable. */
  protect?: (node: KubeObject) => boolean;
  onError?: ErrorSink;
}

/**
 * When a pod with `tolerations` must leave a node with `taints` (only NoExecute ones count), in
 * ms since the epoch; undefined for never. `addedAt` gives the time each taint appeared.
 */
export function evictionTime(taints: Taint[], tolerations: Toleration[], addedAt: (t: Taint) => number): number | undefined {
  let at = Infinity;
  for (const taint of taints) {
    if (taint.effect !== 'NoExecute') continue;
    const toleration = tolerations.find((t) => toleratesTaint(t, taint));
    if (!toleration) return -Infinity;
    if (toleration.tolerationSeconds === undefined || toleration.tolerationSeconds === null) continue;
    at = Math.min(at, addedAt(taint) + Math.max(0, toleration.tolerationSeconds) * 1000);
  }
  return at === Infinity ? undefined : at;
}

/** A token bucket: `rate` tokens per second, holding at most `burst`. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst = 1,
    now = Date.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  tryTake(now = Date.now()): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

interface Health {
  /** Our clock when the Lease or heartbeat last moved (or when the node was first seen). */
  probeMs: number;
  renew?: string;
  heartbeat?: string;
  /** Whether we have seen it move since first seeing the node. */
  renewed: boolean;
}

export class NodeLifecycleController implements Controller {
  readonly name = 'node-lifecycle';
  private readonly nodes: Informer;
  private readonly leases: Informer;
  private readonly pods: Informer;
  private readonly health = new Map<string, Health>();
  private readonly podsByNode = new Map<string, Set<string>>();
  /** First sight of NoExecute taints that carry no timeAdded: node \0 key \0 value. */
  private readonly taintSeen = new Map<string, number>();
  private readonly zones = new Map<string, TokenBucket>();
  private readonly evictions = new WorkQueue();
  private readonly events: EventRecorder;
  private readonly graceMs: number;
  private readonly periodMs: number;
  private readonly rate: number;
  private readonly protect: (node: KubeObject) => boolean;
  private readonly onError: ErrorSink;

  constructor(
    private readonly client: KubeClient,
    informers: SharedInformers,
    options: NodeLifecycleOptions = {},
  ) {
    this.graceMs = (options.nodeMonitorGracePeriodSeconds ?? NODE_MONITOR_GRACE_PERIOD_S) * 1000;
    this.periodMs = (options.nodeMonitorPeriodSeconds ?? NODE_MONITOR_PERIOD_S) * 1000;
    this.rate = options.nodeEvictionRate ?? NODE_EVICTION_RATE;
    this.protect = options.protect ?? (() => false);
    this.onError = options.onError ?? defaultErrorSink;
    this.events = new EventRecorder(client, 'node-controller');
    this.nodes = informers.get(resource('nodes'));
    this.leases = informers.get(resource('coordination.k8s.io/leases'), { namespace: NODE_LEASE_NAMESPACE });
    this.pods = informers.get(resource('pods'));

    this.nodes.on({
      add: (node) => this.observe(node.metadata.name!),
      update: (old, node) => {
        this.observe(node.metadata.name!);
        if (noExecute(old).length || noExecute(node).length) this.enqueuePodsOf(node.metadata.name!);
      },
      delete: (node) => {
        this.health.delete(node.metadata.name!);
        for (const k of this.taintSeen.keys()) if (k.startsWith(`${node.metadata.name}\0`)) this.taintSeen.delete(k);
      },
    });
    this.leases.on({ add: (l) => this.observe(l.metadata.name!), update: (_, l) => this.observe(l.metadata.name!) });
    this.pods.on({
      add: (pod) => this.indexPod(undefined, pod),
      update: (old, pod) => this.indexPod(old, pod),
      delete: (pod) => this.indexPod(pod, undefined),
    });
  }

  async run(signal: AbortSignal): Promise<void> {
    if (!(await waitForSync(signal, this.nodes, this.leases, this.pods))) return;
    for (const pod of this.pods.list()) this.indexPod(undefined, pod);
    const worker = this.evictions.run((key) => this.evictIfDue(key), signal, EVICTION_WORKERS, (key, err) => this.onError(this.name, key, err));
    while (!signal.aborted) {
      await this.monitor();
      await sleep(this.periodMs, signal);
    }
    await worker;
  }

  /** One check of every node; exposed for tests. */
  async monitor(now = Date.now()): Promise<void> {
    for (const node of this.nodes.list()) {
      try {
        await this.checkNode(node, now);
      } catch (err) {
        this.onError(this.name, node.metadata.name!, err);
      }
    }
  }

  private observe(name: string, now = Date.now()): void {
    const node = this.nodes.get(undefined, name);
    if (!node) return;
    const lease = this.leases.get(NODE_LEASE_NAMESPACE, name);
    const renew = (lease?.spec as { renewTime?: string } | undefined)?.renewTime;
    const heartbeat = condition(node, 'Ready')?.lastHeartbeatTime;
    const h = this.health.get(name);
    if (!h) this.health.set(name, { probeMs: now, renew, heartbeat, renewed: false });
    else if (h.renew !== renew || h.heartbeat !== heartbeat) Object.assign(h, { probeMs: now, renew, heartbeat, renewed: true });
  }

  private async checkNode(node: KubeObject, now: number): Promise<void> {
    const name = node.metadata.name!;
    this.observe(name, now);
    const h = this.health.get(name)!;
    const timedOut = now - h.probeMs > this.graceMs;
    const isProtected = this.protect(node);
    if (timedOut) {
      const wasReady = condition(node, 'Ready')?.status === 'True';
      if (NODE_CONDITIONS.some((t) => condition(node, t)?.status !== 'Unknown')) {
        node = await this.markUnknown(node, now);
        if (wasReady) void this.events.record(node, 'Normal', 'NodeNotReady', `Node ${name} status is now: NodeNotReady`).catch(() => undefined);
      }
      if (!isProtected) await this.markPodsNotReady(name, now);
    }
    const ready = condition(node, 'Ready')?.status;
    let want: string | undefined | null;
    if (timedOut) want = TAINT_UNREACHABLE;
    // Unknown since before we started, and not heard from since: leave the taints as they are.
    else if (!h.renewed && ready === 'Unknown') want = null;
    else if (ready === 'False') want = TAINT_NOT_READY;
    if (want !== null) await this.reconcileTaints(node, want, now);
    if (noExecute(node).length) this.enqueuePodsOf(name);
  }

  private async markUnknown(node: KubeObject, now: number): Promise<KubeObject> {
    const at = timestamp(now);
    const conditions = NODE_CONDITIONS.flatMap((type) => {
      const c = condition(node, type);
      if (c?.status === 'Unknown') return [];
      return c
        ? [{ type, status: 'Unknown', reason: 'NodeStatusUnknown', message: 'Kubelet stopped posting node status.', lastTransitionTime: at }]
        : [{ type, status: 'Unknown', reason: 'NodeStatusNeverUpdated', message: 'Kubelet never posted node status.', lastHeartbeatTime: node.metadata.creationTimestamp, lastTransitionTime: at }];
    });
    return this.client.patch(resource('nodes'), undefined, node.metadata.name!, 'strategic', { status: { conditions } }, { subresource: 'status' });
  }

  private async markPodsNotReady(nodeName: string, now: number): Promise<void> {
    for (const key of this.podsByNode.get(nodeName) ?? []) {
      const { namespace, name } = splitKey(key);
      const pod = this.pods.get(namespace, name);
      if (!pod || pod.metadata.deletionTimestamp) continue;
      const ready = ((pod.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).find((c) => c.type === 'Ready');
      if (!ready || ready.status === 'False') continue;
      try {
        await this.client.patch(resource('pods'), namespace, name, 'strategic', { status: { conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: timestamp(now) }] } }, { subresource: 'status' });
        void this.events.record(pod, 'Warning', 'NodeNotReady', 'Node is not ready').catch(() => undefined);
      } catch (err) {
        this.onError(this.name, key, err);
      }
    }
  }

  /** Leaves exactly `want`'s NoSchedule and NoExecute taints of the two this controller owns. */
  private async reconcileTaints(node: KubeObject, want: string | undefined, now: number): Promise<void> {
    const taints = ((node.spec as { taints?: Taint[] } | undefined)?.taints ?? []);
    const owned = (t: Taint) => (t.key === TAINT_UNREACHABLE || t.key === TAINT_NOT_READY) && (t.effect === 'NoSchedule' || t.effect === 'NoExecute');
    const next = taints.filter((t) => !owned(t) || t.key === want);
    if (want) {
      if (!next.some((t) => t.key === want && t.effect === 'NoSchedule')) next.push({ key: want, effect: 'NoSchedule' });
      if (!next.some((t) => t.key === want && t.effect === 'NoExecute') && this.zoneBucket(node).tryTake(now)) {
        next.push({ key: want, effect: 'NoExecute', timeAdded: timestamp(now) });
      }
    }
    if (deepEqual(next, taints)) return;
    await this.client.patch(resource('nodes'), undefined, node.metadata.name!, 'merge', {
      metadata: { resourceVersion: node.metadata.resourceVersion },
      spec: { taints: next.length ? next : null },
    });
  }

  private zoneBucket(node: KubeObject): TokenBucket {
    const labels = node.metadata.labels ?? {};
    const zone = `${labels[LABEL_REGION] ?? ''}:\0:${labels[LABEL_ZONE] ?? ''}`;
    let bucket = this.zones.get(zone);
    if (!bucket) this.zones.set(zone, (bucket = new TokenBucket(this.rate)));
    return bucket;
  }

  private indexPod(old: KubeObject | undefined, pod: KubeObject | undefined): void {
    const key = objectKey((pod ?? old)!);
    const before = nodeNameOf(old);
    const after = nodeNameOf(pod);
    if (before && before !== after) {
      const set = this.podsByNode.get(before);
      set?.delete(key);
      if (set?.size === 0) this.podsByNode.delete(before);
    }
    if (!after) return;
    let set = this.podsByNode.get(after);
    if (!set) this.podsByNode.set(after, (set = new Set()));
    set.add(key);
    const node = this.nodes.get(undefined, after);
    if (node && noExecute(node).length) this.evictions.add(key);
  }

  private enqueuePodsOf(nodeName: string): void {
    for (const key of this.podsByNode.get(nodeName) ?? []) this.evictions.add(key);
  }

  private async evictIfDue(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const pod = this.pods.get(namespace, name);
    if (!pod || pod.metadata.deletionTimestamp) return;
    const nodeName = nodeNameOf(pod);
    const node = nodeName ? this.nodes.get(undefined, nodeName) : undefined;
    if (!node || this.protect(node)) return;
    const taints = noExecute(node);
    if (!taints.length) return;
    const tolerations = (pod.spec as { tolerations?: Toleration[] } | undefined)?.tolerations ?? [];
    const at = evictionTime(taints, tolerations, (t) => this.taintAddedAt(node.metadata.name!, t));
    if (at === undefined) return;
    const wait = at - Date.now();
    if (wait > 0) {
      this.evictions.addAfter(key, wait);
      return;
    }
    void this.events.record(pod, 'Normal', 'TaintManagerEviction', `Marking for deletion Pod ${key}`).catch(() => undefined);
    await this.client.patch(resource('pods'), namespace, name, 'strategic', {
      status: { conditions: [{ type: 'DisruptionTarget', status: 'True', reason: 'DeletionByTaintManager', message: 'Taint manager: deleting due to NoExecute taint', lastTransitionTime: timestamp() }] },
    }, { subresource: 'status' });
    await this.client.delete(resource('pods'), namespace, name, { preconditions: { uid: pod.metadata.uid } });
  }

  private taintAddedAt(nodeName: string, taint: Taint): number {
    const parsed = taint.timeAdded ? Date.parse(taint.timeAdded) : NaN;
    if (!Number.isNaN(parsed)) return parsed;
    const key = `${nodeName}\0${taint.key}\0${taint.value ?? ''}`;
    let seen = this.taintSeen.get(key);
    if (seen === undefined) this.taintSeen.set(key, (seen = Date.now()));
    return seen;
  }
}

function condition(node: KubeObject, type: string): Condition | undefined {
  return ((node.status as { conditions?: Condition[] } | undefined)?.conditions ?? []).find((c) => c.type === type);
}

function noExecute(node: KubeObject): Taint[] {
  return ((node.spec as { taints?: Taint[] } | undefined)?.taints ?? []).filter((t) => t.effect === 'NoExecute');
}

function nodeNameOf(pod: KubeObject | undefined): string | undefined {
  return (pod?.spec as { nodeName?: string } | undefined)?.nodeName || undefined;
}
