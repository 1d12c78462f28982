import { isDeepStrictEqual } from 'node:util';
import { ApiError } from '../api/errors.js';
import type { KubeObject } from '../api/types.js';
import type { KubeClient } from '../client/client.js';
import { resource, sleep } from '../client/informer.js';
import { autonomousCondition, mergeConditions, nodeConditions, nodeObject, nodeStatusBody, type NodeIdentity } from './node-status.js';

/** The kubelet's lease renewal period and duration. */
export const LEASE_RENEW_MS = 10_000;
export const LEASE_DURATION_S = 40;
/** Status is measured this often and sent when it changed... */
export const STATUS_CHECK_MS = 10_000;
/** ...and at least this often (the kubelet's nodeStatusReportFrequency). */
export const STATUS_REPORT_MS = 5 * 60_000;
/** After a failed renewal the next try comes sooner, doubling up to the renewal period. */
const RETRY_MIN_MS = 200;
/** Registration is retried in the background, doubling up to this. */
const REGISTER_RETRY_MAX_MS = 10_000;

const NODES = resource('nodes');
const LEASES = resource('coordination.k8s.io/leases');
const LEASE_NAMESPACE = 'kube-node-lease';

function stamp(d = new Date()): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

function microStamp(d = new Date()): string {
  return d.toISOString().replace(/Z$/, '000Z');
}

/**
 * Keeps the agent's Node registered and alive: registers it (or takes over an existing one, keeping
 * others' labels and taints), renews its Lease in `kube-node-lease` every 10 s, and sends node
 * status when it changes and at least every 5 minutes. Failures are retried; they never stop the
 * pods, which is the point of an edge node.
 *
 * With `cloudReachable` (the node's EdgeHub health), the status carries the `Autonomous` condition:
 * True while the node runs on its cache. Those writes are accepted by EdgeHub offline and reach the
 * cloud when it replays them.
 */
export class NodeHeartbeat {
  private node: KubeObject | undefined;
  private lastReport = 0;
  /** Ends the loops' current waits; see `nudge`. */
  private readonly wakers = new Set<() => void>();
  /** Counts nudges, so a loop nudged during a step goes again at once. */
  private nudges = 0;
  /** The Node's labels lag `id` (a handler offered after registration) until the cloud takes an update. */
  private labelsStale = false;

  constructor(
    private readonly client: KubeClient,
    private id: NodeIdentity,
    private readonly log: (line: string) => void,
    private readonly cloudReachable?: () => boolean,
  ) {}

  /** Creates or adopts the Node and sends its first status; throws if the server refuses. */
  async register(): Promise<KubeObject> {
    let existing: KubeObject | undefined;
    try {
      existing = await this.client.get(NODES, undefined, this.id.nodeName);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 404)) throw err;
    }
    if (existing) {
      const wanted = nodeObject(this.id, existing);
      if (!isDeepStrictEqual(wanted.metadata.labels, existing.metadata.labels) || !isDeepStrictEqual(wanted.spec, existing.spec)) {
        existing = await this.client.update(NODES, wanted);
      }
    } else {
      existing = await this.client.create(NODES, undefined, nodeObject(this.id));
    }
    this.node = existing;
    await this.reportStatus(true);
    await this.renewLease();
    return this.node;
  }

  /**
   * Registers first unless `register()` already did, retrying until it succeeds (the agent runs its
   * pods meanwhile), then renews the Lease and reports status until `signal` aborts.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (!this.node) await this.retrying(signal, REGISTER_RETRY_MAX_MS, () => this.register().then(() => undefined));
    await Promise.all([this.loop(signal, LEASE_RENEW_MS, () => this.renewLease()), this.loop(signal, STATUS_CHECK_MS, () => this.reportStatus(false))]);
  }

  /**
   * A pending handler (NodeIdentity.pendingHandlers) has opened: status.runtimeHandlers says so at the
   * next status check, brought forward to now, and the labels that RuntimeClasses select nodes by
   * follow once the cloud is reachable (EdgeHub takes only status writes offline).
   */
  offerHandler(handler: string, accelerator?: NodeIdentity['accelerator']): void {
    this.id = {
      ...this.id,
      handlers: [...this.id.handlers.filter((h) => h !== handler), handler],
      pendingHandlers: (this.id.pendingHandlers ?? []).filter((h) => h !== handler),
      ...(accelerator ? { accelerator } : {}),
    };
    this.labelsStale = true;
    this.nudge();
  }

  /** A pending handler could not open: its labels go once the cloud is reachable, so its pods stop landing here. */
  withdrawHandler(handler: string): void {
    this.id = { ...this.id, pendingHandlers: (this.id.pendingHandlers ?? []).filter((h) => h !== handler) };
    this.labelsStale = true;
    this.nudge();
  }

  /**
   * Renews the Lease and checks the status now instead of at the end of the current period: for when
   * the cloud has just become reachable again, and has marked the node Unknown meanwhile.
   */
  nudge(): void {
    this.nudges++;
    for (const wake of this.wakers) wake();
  }

  private async loop(signal: AbortSignal, periodMs: number, step: () => Promise<void>): Promise<void> {
    while (!signal.aborted) {
      const nudges = this.nudges;
      await this.retrying(signal, periodMs, step);
      if (this.nudges !== nudges) continue;
      const wait = new AbortController();
      const wake = () => wait.abort();
      this.wakers.add(wake);
      signal.addEventListener('abort', wake, { once: true });
      await sleep(periodMs, wait.signal);
      this.wakers.delete(wake);
      signal.removeEventListener('abort', wake);
    }
  }

  /** Runs `step` until it succeeds or `signal` aborts, backing off up to `maxRetryMs` between tries. */
  private async retrying(signal: AbortSignal, maxRetryMs: number, step: () => Promise<void>): Promise<void> {
    let retry = RETRY_MIN_MS;
    while (!signal.aborted) {
      try {
        return await step();
      } catch (err) {
        this.log(`node heartbeat: ${(err as Error).message}`);
        await sleep(retry, signal);
        retry = Math.min(retry * 2, maxRetryMs);
      }
    }
  }

  private async renewLease(): Promise<void> {
    const name = this.id.nodeName;
    const spec = { holderIdentity: name, leaseDurationSeconds: LEASE_DURATION_S, renewTime: microStamp() };
    try {
      await this.client.patch(LEASES, LEASE_NAMESPACE, name, 'merge', { spec });
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 404)) throw err;
      const owner = this.node ? [{ apiVersion: 'v1', kind: 'Node', name, uid: this.node.metadata.uid }] : undefined;
      await this.client.create(LEASES, LEASE_NAMESPACE, {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name, namespace: LEASE_NAMESPACE, ownerReferences: owner },
        spec,
      });
    }
  }

  private async updateLabels(node: KubeObject): Promise<void> {
    const wanted = nodeObject(this.id, node);
    if (!isDeepStrictEqual(wanted.metadata.labels, node.metadata.labels)) this.node = await this.client.update(NODES, wanted);
    this.labelsStale = false;
  }

  private async reportStatus(force: boolean): Promise<void> {
    const body = await nodeStatusBody(this.id);
    const fresh = await nodeConditions(this.id.dataDir);
    if (this.cloudReachable) fresh.push(autonomousCondition(this.cloudReachable()));
    // Compare with the Node as the cloud has it, as the kubelet does: the node-lifecycle controller
    // sets Ready to Unknown while the node is silent, and that must be corrected at once when it returns.
    if (!force) this.node = await this.client.get(NODES, undefined, this.id.nodeName);
    if (this.labelsStale && this.node && this.cloudReachable?.() !== false) await this.updateLabels(this.node);
    const current = (this.node?.status ?? {}) as Record<string, unknown> & { conditions?: Parameters<typeof mergeConditions>[0] };
    const changed =
      Object.entries(body).some(([k, v]) => !isDeepStrictEqual(current[k], v)) ||
      fresh.some((c) => {
        const prior = current.conditions?.find((p) => p.type === c.type);
        return !prior || prior.status !== c.status || prior.reason !== c.reason;
      });
    if (!force && !changed && Date.now() - this.lastReport < STATUS_REPORT_MS) return;
    const status = { ...body, conditions: mergeConditions(current.conditions, fresh, stamp()) };
    this.node = await this.client.patch(NODES, undefined, this.id.nodeName, 'strategic', { status }, { subresource: 'status' });
    this.lastReport = Date.now();
  }
}
