// Sends computed pod statuses to the API server: only changes, newest wins, one request per pod
// in flight, retried with back-off.
import { isDeepStrictEqual } from 'node:util';
import { ApiError } from '../../api/errors.js';
import type { KubeObject } from '../../api/types.js';
import type { KubeClient } from '../../client/client.js';
import { resource } from '../../client/informer.js';
import type { PodStatus } from './status.js';

export const STATUS_RETRY_INITIAL_MS = 500;
export const STATUS_RETRY_MAX_MS = 30_000;
/** How many pods whose object is gone are remembered, so late statuses for them are dropped. */
const MAX_GONE = 4096;
const PODS = resource('pods');

/** Top-level status fields the node owns: the ones compared with the API object's before a first patch. */
const NODE_OWNED_FIELDS = [
  'phase',
  'conditions',
  'message',
  'reason',
  'hostIP',
  'hostIPs',
  'podIP',
  'podIPs',
  'startTime',
  'qosClass',
  'initContainerStatuses',
  'containerStatuses',
  'ephemeralContainerStatuses',
];

interface Entry {
  namespace: string;
  name: string;
  uid: string;
  desired: PodStatus;
  sent?: PodStatus;
  inFlight?: Promise<void>;
  retry?: NodeJS.Timeout;
  retryMs: number;
}

/**
 * Lifecycle: `set(pod, status)` after every sync (cheap when nothing changed); `forget(uid)` once
 * the pod is gone from the node; `stop()` at shutdown.
 *
 * Each update is a JSON patch of `pods/<name>/status` that first tests `/metadata/uid` (the
 * precondition the kubelet puts in its patches as `metadata.uid`; a `test` operation is refused by
 * every server, where a changed uid in a status merge patch may be ignored), then sets each field
 * the node owns, leaving fields others own (nominatedNodeName, say) alone. A pod that took the
 * same name, or one that is gone (404), gets no further patches.
 */
export class StatusManager {
  private readonly entries = new Map<string, Entry>();
  private readonly gone = new Set<string>();
  private stopped = false;

  constructor(
    private readonly client: KubeClient,
    private readonly log: (line: string) => void = () => undefined,
    private readonly options: { retryInitialMs?: number; retryMaxMs?: number } = {},
  ) {}

  set(pod: KubeObject, status: PodStatus): void {
    const uid = pod.metadata.uid!;
    if (this.stopped || this.gone.has(uid)) return;
    let entry = this.entries.get(uid);
    if (!entry) {
      const current = (pod.status ?? {}) as Record<string, unknown>;
      if (isDeepStrictEqual(pick(current), pick(status as Record<string, unknown>))) return;
      entry = {
        namespace: pod.metadata.namespace!,
        name: pod.metadata.name!,
        uid,
        desired: status,
        retryMs: this.options.retryInitialMs ?? STATUS_RETRY_INITIAL_MS,
      };
      this.entries.set(uid, entry);
    }
    entry.desired = status;
    this.kick(entry);
  }

  /** Drops what is kept for a pod (gone from the node and the API). */
  forget(uid: string): void {
    const entry = this.entries.get(uid);
    if (entry) clearTimeout(entry.retry);
    this.entries.delete(uid);
    this.gone.delete(uid);
  }

  /** Resolves once every status set so far was sent or given up; for tests. */
  async flush(): Promise<void> {
    for (;;) {
      const pending = [...this.entries.values()].filter((e) => e.inFlight || e.retry || !isDeepStrictEqual(e.sent, e.desired));
      if (pending.length === 0 || this.stopped) return;
      for (const e of pending) if (!e.inFlight && !e.retry) this.kick(e);
      await Promise.allSettled(pending.map((e) => e.inFlight ?? new Promise((r) => setTimeout(r, this.options.retryInitialMs ?? STATUS_RETRY_INITIAL_MS))));
    }
  }

  stop(): void {
    this.stopped = true;
    for (const e of this.entries.values()) clearTimeout(e.retry);
  }

  private kick(entry: Entry): void {
    if (entry.inFlight || entry.retry || this.stopped) return;
    entry.inFlight = this.send(entry).finally(() => {
      entry.inFlight = undefined;
    });
  }

  private async send(entry: Entry): Promise<void> {
    while (!this.stopped && this.entries.get(entry.uid) === entry && !isDeepStrictEqual(entry.sent, entry.desired)) {
      const status = entry.desired;
      const ops: object[] = [{ op: 'test', path: '/metadata/uid', value: entry.uid }];
      for (const [key, value] of Object.entries(status)) ops.push({ op: 'add', path: `/status/${key}`, value });
      try {
        await this.client.patch(PODS, entry.namespace, entry.name, 'json', ops, { subresource: 'status' });
        entry.sent = status;
        entry.retryMs = this.options.retryInitialMs ?? STATUS_RETRY_INITIAL_MS;
      } catch (err) {
        if (err instanceof ApiError && (err.code === 404 || err.code === 409 || err.code === 422)) {
          // Gone, or the name now belongs to another pod (uid mismatch): this pod's status has nowhere to go.
          if (err.code !== 404) this.log(`pod ${entry.namespace}/${entry.name}: status not accepted: ${err.message}`);
          this.entries.delete(entry.uid);
          this.gone.add(entry.uid);
          if (this.gone.size > MAX_GONE) this.gone.delete(this.gone.values().next().value!);
          return;
        }
        this.log(`pod ${entry.namespace}/${entry.name}: updating status: ${(err as Error).message}; retrying in ${entry.retryMs} ms`);
        entry.retry = setTimeout(() => {
          entry.retry = undefined;
          this.kick(entry);
        }, entry.retryMs);
        entry.retryMs = Math.min(entry.retryMs * 2, this.options.retryMaxMs ?? STATUS_RETRY_MAX_MS);
        return;
      }
    }
  }
}

function pick(status: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(NODE_OWNED_FIELDS.filter((k) => status[k] !== undefined).map((k) => [k, status[k]]));
}
