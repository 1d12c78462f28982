import { setImmediate as yieldToIo } from 'node:timers/promises';
import { type KubeClient, isConflict, isNotFound } from '../client/client.js';
import { EventRecorder } from '../client/events.js';
import { Informer, resource } from '../client/informer.js';
import { SchedulerCache } from './cache.js';
import { type PluginEntry, type PodInfo, podInfo, podKey } from './framework.js';
import { NO_NODES_AVAILABLE, Profile } from './profile.js';
import { SchedulingQueue, type QueuedPod, UNSCHEDULABLE_FLUSH_PERIOD_MS } from './queue.js';
import { interPodAffinity } from './plugins/inter-pod-affinity.js';
import { podTopologySpread } from './plugins/pod-topology-spread.js';
import { type ResourceScoring, defaultProfile } from './registry.js';
import type { Namespace, Node, Pod, PodCondition, ReplicaSet, Service } from './types.js';

export const DEFAULT_SCHEDULER_NAME = 'default-scheduler';
/** Bindings sent at once; the client's keep-alive agent holds 32 sockets. */
export const DEFAULT_PARALLEL_BINDINGS = 24;
/**
 * Events go out one at a time from a backlog of at most this many; more are dropped, as kube's
 * event broadcaster does, so that a burst of pods is bound first and reported as it can be.
 */
export const EVENTS_IN_FLIGHT = 1;
export const EVENTS_MAX_QUEUED = 1000;
/** PodScheduled=False patches sent at once (they are few: one per failing pod and message). */
export const STATUS_PATCHES_IN_FLIGHT = 4;

/** Counters a caller may pass in to watch the scheduler work. */
export interface SchedulerStats {
  /** Scheduling cycles run (each pops one pod). */
  attempts: number;
  /** Pods found unschedulable. */
  unschedulable: number;
  bound: number;
  bindErrors: number;
  bindsInFlight: number;
  eventsDropped: number;
}

export function newSchedulerStats(): SchedulerStats {
  return { attempts: 0, unschedulable: 0, bound: 0, bindErrors: 0, bindsInFlight: 0, eventsDropped: 0 };
}

export interface SchedulerOptions {
  signal: AbortSignal;
  /** Pods whose spec.schedulerName is this are ours (default "default-scheduler"). */
  schedulerName?: string;
  /** Ignored when `plugins` is given. */
  resourceScoring?: ResourceScoring;
  plugins?: PluginEntry[];
  /** kube's percentageOfNodesToScore; 0 (the default) adapts to the cluster size. */
  percentageOfNodesToScore?: number;
  parallelBindings?: number;
  stats?: SchedulerStats;
  /** Called once the informers (pods, nodes, namespaces, Services, ReplicaSets) have loaded their first lists. */
  onSynced?: () => void;
  /** Where unexpected failures are reported; stderr by default. */
  log?: (line: string) => void;
}

function sameLabels(a: Pod, b: Pod): boolean {
  return JSON.stringify(a.metadata.labels ?? {}) === JSON.stringify(b.metadata.labels ?? {});
}

function isTerminal(pod: Pod): boolean {
  const phase = pod.status?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

/** What of a node the plugins read; a change of anything else (heartbeats, conditions) retries nobody. */
function nodeSchedulingProperties(node: Node): string {
  return JSON.stringify([node.spec?.unschedulable, node.spec?.taints, node.metadata.labels, node.status?.allocatable]);
}

/** The plugins a pod placed somewhere (or relabelled there) may satisfy: kube's AssignedPodAdd and UpdatePodLabel events. */
const PLACED_POD_PLUGINS = [interPodAffinity.name, podTopologySpread.name];

function isConnectionReset(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}

function stamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

/**
 * Best-effort writes (Events, PodScheduled=False patches): a few in flight and a bounded backlog,
 * so that they never hold up binding. Returns false when the write was dropped.
 */
class BackgroundWrites {
  private readonly backlog: (() => Promise<unknown>)[] = [];
  private running = 0;

  constructor(
    private readonly inFlight: number,
    private readonly maxQueued: number,
    private readonly log: (line: string) => void,
  ) {}

  push(write: () => Promise<unknown>): boolean {
    if (this.backlog.length >= this.maxQueued) return false;
    this.backlog.push(write);
    this.pump();
    return true;
  }

  private pump(): void {
    while (this.running < this.inFlight && this.backlog.length > 0) {
      const write = this.backlog.shift()!;
      this.running++;
      write()
        .catch((err: unknown) => this.log(`scheduler: ${String(err)}`))
        .finally(() => {
          this.running--;
          this.pump();
        });
    }
  }
}

/**
 * Runs the scheduler until `opts.signal` aborts: watches pods and nodes, places every pending pod
 * whose spec.schedulerName is ours on a node through the plugins of the profile, and binds it.
 *
 * Each pod is decided in one synchronous pass over the cache; the decision is assumed into the
 * cache at once and the binding sent in the background, several at a time, so decisions never wait
 * on the API server. A pod that fits nowhere gets a FailedScheduling event and PodScheduled=False,
 * and waits in the queue until a node is added or changes, or a pod goes away.
 */
export async function runScheduler(client: KubeClient, opts: SchedulerOptions): Promise<void> {
  const { signal } = opts;
  const schedulerName = opts.schedulerName ?? DEFAULT_SCHEDULER_NAME;
  const sink = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  // Writes cut short by stopping are expected, not worth a line.
  const log = (line: string) => {
    if (!signal.aborted) sink(line);
  };
  const profile = new Profile(opts.plugins ?? defaultProfile(opts.resourceScoring), opts.percentageOfNodesToScore ?? 0);
  const parallelBindings = opts.parallelBindings ?? DEFAULT_PARALLEL_BINDINGS;
  const cache = new SchedulerCache();
  const queue = new SchedulingQueue();
  const recorder = new EventRecorder(client, schedulerName);
  const stats = opts.stats ?? newSchedulerStats();
  const events = new BackgroundWrites(EVENTS_IN_FLIGHT, EVENTS_MAX_QUEUED, log);
  const statusPatches = new BackgroundWrites(STATUS_PATCHES_IN_FLIGHT, Number.POSITIVE_INFINITY, log);
  const record = (pod: Pod, type: 'Normal' | 'Warning', reason: string, message: string) => {
    const target = { apiVersion: 'v1', kind: 'Pod', metadata: pod.metadata };
    if (!events.push(() => recorder.record(target, type, reason, message))) stats.eventsDropped++;
  };
  const podsResource = resource('pods');

  const pods = new Informer<Pod>(client, podsResource);
  const nodes = new Informer<Node>(client, resource('nodes'));
  // What PodTopologySpread and InterPodAffinity read besides pods and nodes.
  const namespaces = new Informer<Namespace>(client, resource('namespaces'));
  const services = new Informer<Service>(client, resource('services'));
  const replicaSets = new Informer<ReplicaSet>(client, resource('apps/replicasets'));
  const { listers } = cache;
  namespaces.on({ add: (ns) => listers.setNamespace(ns), update: (_old, ns) => listers.setNamespace(ns), delete: (ns) => listers.deleteNamespace(ns) });
  services.on({ add: (svc) => listers.setService(svc), update: (_old, svc) => listers.setService(svc), delete: (svc) => listers.deleteService(svc) });
  replicaSets.on({ add: (rs) => listers.setReplicaSet(rs), update: (_old, rs) => listers.setReplicaSet(rs), delete: (rs) => listers.deleteReplicaSet(rs) });
  const informers = [pods, nodes, namespaces, services, replicaSets];

  const ours = (pod: Pod) => (pod.spec?.schedulerName ?? DEFAULT_SCHEDULER_NAME) === schedulerName;

  const onPod = (pod: Pod, old?: Pod) => {
    const info = podInfo(pod);
    const nodeName = pod.spec?.nodeName;
    if (nodeName) {
      queue.delete(info.key);
      if (isTerminal(pod)) {
        removePod(info.key);
        return;
      }
      // Our own placements were announced when assumed; others' are news, as are new labels.
      const placedByOthers = !old?.spec?.nodeName && !cache.isAssumed(info.key);
      const relabelled = old?.spec?.nodeName !== undefined && !sameLabels(old, pod);
      cache.addPod(info, nodeName);
      if (placedByOthers || relabelled) queue.moveRejectedByToActiveOrBackoff(PLACED_POD_PLUGINS);
    } else if (ours(pod) && !isTerminal(pod) && !pod.metadata.deletionTimestamp) {
      if (!cache.isAssumed(info.key)) queue.add(info);
    } else {
      queue.delete(info.key);
    }
  };
  const removePod = (key: string) => {
    queue.delete(key);
    // Only a pod that held resources frees room for others.
    if (cache.removePod(key)) queue.moveAllToActiveOrBackoff();
  };
  pods.on({ add: (pod) => onPod(pod), update: (old, pod) => onPod(pod, old), delete: (pod) => removePod(podKey(pod)) });
  nodes.on({
    add: (node) => {
      cache.addNode(node);
      queue.moveAllToActiveOrBackoff();
    },
    update: (old, node) => {
      cache.updateNode(node);
      if (nodeSchedulingProperties(old) !== nodeSchedulingProperties(node)) queue.moveAllToActiveOrBackoff();
    },
    delete: (node) => cache.removeNode(node.metadata.name!),
  });

  let bindsInFlight = 0;
  let bindSlotFreed: (() => void) | undefined;
  const bindings = new Set<Promise<void>>();

  const fail = (entry: QueuedPod, message: string) => {
    const pod = entry.info.pod;
    record(pod, 'Warning', 'FailedScheduling', message);
    const current = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
    if (current?.status === 'False' && current.reason === 'Unschedulable' && current.message === message) return;
    const condition: PodCondition = { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message, lastProbeTime: null, lastTransitionTime: current?.status === 'False' ? current.lastTransitionTime : stamp() };
    statusPatches.push(() =>
      client.patch(podsResource, entry.info.namespace, entry.info.name, 'strategic', { status: { conditions: [condition] } }, { subresource: 'status' }).catch((err: unknown) => {
        // The pod may be gone or bound by now; its next attempt will tell.
        if (!isNotFound(err) && !isConflict(err)) throw err;
      }),
    );
  };

  const bind = async (entry: QueuedPod, info: PodInfo, nodeName: string) => {
    const body = {
      apiVersion: 'v1',
      kind: 'Binding',
      metadata: { name: info.name, namespace: info.namespace, uid: info.pod.metadata.uid },
      target: { apiVersion: 'v1', kind: 'Node', name: nodeName },
    };
    const post = () => client.createSubresource(podsResource, info.namespace, info.name, 'binding', body);
    try {
      await post().catch((err: unknown) => {
        // A kept-alive socket the server closed while idle fails before the request reached it.
        if (isConnectionReset(err)) return post();
        throw err;
      });
      queue.done(entry);
      stats.bound++;
      record(info.pod, 'Normal', 'Scheduled', `Successfully assigned ${info.namespace}/${info.name} to ${nodeName}`);
    } catch (err) {
      stats.bindErrors++;
      cache.forget(info.key);
      if (!queue.has(info.key)) return;
      const message = `Binding rejected: ${err instanceof Error ? err.message : String(err)}`;
      log(`scheduler: ${info.namespace}/${info.name}: ${message}`);
      record(info.pod, 'Warning', 'FailedScheduling', message);
      queue.backoff(entry);
    }
  };

  const scheduleOne = (entry: QueuedPod) => {
    const info = entry.info;
    stats.attempts++;
    const result = profile.schedulePod(info, cache);
    if ('error' in result) {
      stats.unschedulable++;
      queue.unschedulable(entry, result.error === NO_NODES_AVAILABLE ? undefined : result.error.plugins);
      fail(entry, result.error === NO_NODES_AVAILABLE ? NO_NODES_AVAILABLE : result.error.message);
      return;
    }
    cache.assume(info, result.nodeName);
    queue.moveRejectedByToActiveOrBackoff(PLACED_POD_PLUGINS);
    stats.bindsInFlight = ++bindsInFlight;
    const p = bind(entry, info, result.nodeName).finally(() => {
      stats.bindsInFlight = --bindsInFlight;
      bindings.delete(p);
      bindSlotFreed?.();
    });
    bindings.add(p);
  };

  const runs = informers.map((i) => i.run(signal));
  const flush = setInterval(() => queue.flushUnschedulableLeftover(), UNSCHEDULABLE_FLUSH_PERIOD_MS);
  const stop = () => queue.close();
  signal.addEventListener('abort', stop, { once: true });
  try {
    await Promise.race([Promise.all(informers.map((i) => i.waitForSync())), new Promise((r) => signal.addEventListener('abort', r, { once: true }))]);
    if (!signal.aborted) opts.onSynced?.();
    while (!signal.aborted) {
      if (bindsInFlight >= parallelBindings) {
        await new Promise<void>((resolve) => (bindSlotFreed = resolve));
        bindSlotFreed = undefined;
        continue;
      }
      const entry = queue.pop();
      if (!entry) {
        await queue.wait(signal);
        continue;
      }
      scheduleOne(entry);
      // Let watch events and binding answers in between decisions.
      await yieldToIo();
    }
  } finally {
    clearInterval(flush);
    signal.removeEventListener('abort', stop);
    queue.close();
    await Promise.all(bindings);
    await Promise.all(runs);
  }
}
