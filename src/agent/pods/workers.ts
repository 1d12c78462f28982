import type { KubeObject } from '../../api/types.js';
import { POD_UID_LABEL } from '../contracts.js';
import { Backoff, CRASH_BACKOFF_INITIAL_MS, CRASH_BACKOFF_MAX_MS, IMAGE_BACKOFF_INITIAL_MS, IMAGE_BACKOFF_MAX_MS } from './backoff.js';
import { RELIST_PERIOD_MS, RESYNC_PERIOD_MS, STOP_CALL_MARGIN_MS, type PodWorkerDeps, type PodWorkersOptions } from './deps.js';
import { errorMessage, isNotFoundError } from './errors.js';
import { ImagePuller } from './images.js';
import { RuntimeObserver } from './observed.js';
import { PodSync, removePodFromNode, type PodRecord, type SyncContext } from './pod-sync.js';
import { directDial, ProbeManager } from './probes.js';
import { asPod, DEFAULT_TERMINATION_GRACE_SECONDS, formatPod, isTerminating } from './spec.js';

interface Worker {
  busy?: Promise<void>;
  again: boolean;
  /** Aborts the sync in flight (a pull, say) when the pod is deleted meanwhile. */
  abort?: AbortController;
  terminating: boolean;
  wake?: NodeJS.Timeout;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * The pods bound to this node, each driven by its own serialized worker.
 *
 * Lifecycle: construct with the agent's parts; `adopt()` once at start, which finds the pods the
 * runtime already runs (a restarted agent carries on with the same containers and restart counts)
 * and starts the loops; then `update(pod)` on every informer add/update and `remove(pod)` on
 * delete. After the informer's first list, `removeOrphans()` tears down adopted pods the API no
 * longer has. `stop()` ends every loop and leaves all containers running.
 *
 * A pod is synced when it changes, when one of its containers changes state (a relist of the
 * runtime every second), when a probe result or back-off changes, and at least every 10 s. Syncs
 * of one pod never overlap; syncs of different pods run concurrently.
 */
export class PodWorkers {
  private readonly records = new Map<string, PodRecord>();
  private readonly workers = new Map<string, Worker>();
  private readonly ctx: SyncContext;
  private readonly loops = new AbortController();
  private readonly loopRuns: Promise<void>[] = [];
  private containerStates = new Map<string, { uid: string; state: string }>();
  private runtimeNameCache: Promise<string> | undefined;
  private started = false;
  private stopped = false;

  constructor(
    private readonly deps: PodWorkerDeps,
    private readonly options: PodWorkersOptions = {},
  ) {
    const crash = options.crashBackoff ?? { initialMs: CRASH_BACKOFF_INITIAL_MS, maxMs: CRASH_BACKOFF_MAX_MS };
    const image = options.imageBackoff ?? { initialMs: IMAGE_BACKOFF_INITIAL_MS, maxMs: IMAGE_BACKOFF_MAX_MS };
    const dial = options.dial ?? directDial;
    this.ctx = {
      deps,
      observer: new RuntimeObserver(deps.cri),
      puller: new ImagePuller(deps.cri, new Backoff(image.initialMs, image.maxMs)),
      crashBackoff: new Backoff(crash.initialMs, crash.maxMs),
      probes: new ProbeManager({
        cri: deps.cri,
        dial,
        changed: (uid) => this.schedule(uid),
        event: (pod, type, reason, message) => {
          deps.recorder.record(asPod(pod), type, reason, message).catch((err: Error) => deps.log(`pod ${formatPod(pod)}: event ${reason}: ${err.message}`));
        },
      }),
      dial,
      runtimeName: () => this.runtimeName(),
      ...(options.seccompProfileRoot ? { seccompProfileRoot: options.seccompProfileRoot } : {}),
    };
  }

  /** A pod was added or changed in the API. */
  update(pod: KubeObject): void {
    if (this.stopped) return;
    this.start();
    const record = this.record(pod.metadata.uid!);
    record.pod = pod;
    if (isTerminating(pod)) this.interrupt(record.uid);
    this.schedule(record.uid);
  }

  /** A pod was deleted from the API: whatever still runs of it is stopped and removed. */
  remove(pod: KubeObject): void {
    if (this.stopped) return;
    this.start();
    const record = this.record(pod.metadata.uid!);
    record.pod = pod;
    record.removed = true;
    this.interrupt(record.uid);
    this.schedule(record.uid);
  }

  /**
   * Finds the pods the runtime already holds (by the contract's labels) and starts the loops.
   * Returns their uids; each waits for its pod to arrive through `update()`.
   */
  async adopt(): Promise<string[]> {
    this.start();
    await this.runtimeName();
    const { items } = await this.deps.cri.ListPodSandbox({});
    const uids = new Set<string>();
    for (const s of items) {
      const uid = s.labels[POD_UID_LABEL];
      if (!uid) continue;
      uids.add(uid);
      this.record(uid);
    }
    await this.relist(false);
    return [...uids];
  }

  /**
   * Tears down pods found by `adopt()` (or on disk) that no pod in the API claims: call once the
   * informer has delivered its first list.
   */
  async removeOrphans(): Promise<void> {
    const orphans = [...this.records.values()].filter((r) => !r.pod && !r.finished);
    for (const record of orphans) {
      await this.terminateOrphan(record).catch((err: unknown) => this.deps.log(`pod ${record.uid}: removing orphaned pod: ${errorMessage(err)}`));
    }
    for (const uid of await this.deps.volumes.list()) {
      if (this.records.get(uid)?.pod) continue;
      await this.deps.volumes.tearDown(uid).catch((err: unknown) => this.deps.log(`pod ${uid}: removing orphaned volumes: ${errorMessage(err)}`));
    }
  }

  /** Ends every loop and sync; containers keep running for the next agent to adopt. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.loops.abort();
    for (const w of this.workers.values()) {
      w.abort?.abort();
      clearTimeout(w.wake);
    }
    await Promise.allSettled([...this.loopRuns, ...[...this.workers.values()].map((w) => w.busy)]);
    await this.ctx.probes.stop();
  }

  /** Resolves once no sync is running or queued; for tests and orderly shutdown. */
  async idle(): Promise<void> {
    for (;;) {
      const busy = [...this.workers.values()].map((w) => w.busy).filter((b): b is Promise<void> => b !== undefined);
      if (busy.length === 0) return;
      await Promise.allSettled(busy);
    }
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    const signal = this.loops.signal;
    const resync = this.options.resyncPeriodMs ?? RESYNC_PERIOD_MS;
    const relist = this.options.relistPeriodMs ?? RELIST_PERIOD_MS;
    this.loopRuns.push(
      (async () => {
        while (!signal.aborted) {
          await sleep(resync, signal);
          if (signal.aborted) return;
          for (const record of this.records.values()) {
            if (record.finished && record.removed) continue;
            record.refreshDue = true;
            this.schedule(record.uid);
          }
        }
      })(),
      (async () => {
        while (!signal.aborted) {
          await sleep(relist, signal);
          if (signal.aborted) return;
          await this.relist(true).catch((err: unknown) => this.deps.log(`pod workers: relist: ${errorMessage(err)}`));
        }
      })(),
    );
  }

  private runtimeName(): Promise<string> {
    this.runtimeNameCache ??= this.deps.cri.Version({}).then(
      (v) => v.runtime_name,
      (err: unknown) => {
        this.runtimeNameCache = undefined;
        throw err;
      },
    );
    return this.runtimeNameCache;
  }

  /** PLEG: notices containers that started, exited or vanished, and syncs their pods. */
  private async relist(notify: boolean): Promise<void> {
    const { containers } = await this.deps.cri.ListContainers({});
    const next = new Map<string, { uid: string; state: string }>();
    for (const c of containers) {
      const uid = c.labels[POD_UID_LABEL];
      if (uid) next.set(c.id, { uid, state: c.state });
    }
    const changed = new Set<string>();
    for (const [id, now] of next) if (this.containerStates.get(id)?.state !== now.state) changed.add(now.uid);
    for (const [id, before] of this.containerStates) if (!next.has(id)) changed.add(before.uid);
    this.containerStates = next;
    if (!notify) return;
    for (const uid of changed) if (this.records.get(uid)?.pod) this.schedule(uid);
  }

  private record(uid: string): PodRecord {
    let record = this.records.get(uid);
    if (!record) {
      record = { uid, removed: false, failures: new Map(), finished: false, refreshDue: false };
      this.records.set(uid, record);
    }
    return record;
  }

  private interrupt(uid: string): void {
    const w = this.workers.get(uid);
    if (w?.busy && !w.terminating) w.abort?.abort();
  }

  private schedule(uid: string): void {
    if (this.stopped) return;
    let w = this.workers.get(uid);
    if (!w) {
      w = { again: false, terminating: false };
      this.workers.set(uid, w);
    }
    if (w.busy) {
      w.again = true;
      return;
    }
    clearTimeout(w.wake);
    const worker = w;
    worker.busy = this.work(uid, worker).finally(() => {
      worker.busy = undefined;
      const record = this.records.get(uid);
      if (record?.finished && record.removed) {
        this.records.delete(uid);
        this.workers.delete(uid);
      } else if (worker.again) {
        this.schedule(uid);
      }
    });
  }

  private async work(uid: string, w: Worker): Promise<void> {
    do {
      w.again = false;
      const record = this.records.get(uid);
      if (!record?.pod || this.stopped) return;
      const pod = record.pod;
      w.abort = new AbortController();
      w.terminating = record.removed || isTerminating(pod);
      try {
        if (w.terminating) {
          await this.terminate(record, pod, w.abort.signal);
        } else {
          const outcome = await new PodSync(this.ctx, record, pod, w.abort.signal).run();
          if (outcome.wakeAt !== undefined) {
            clearTimeout(w.wake);
            w.wake = setTimeout(() => this.schedule(uid), Math.max(0, outcome.wakeAt - Date.now()));
          }
        }
      } catch (err) {
        if (!w.abort.signal.aborted) this.deps.log(`pod ${formatPod(pod)}: sync failed: ${errorMessage(err)}`);
      }
    } while (w.again && !this.stopped);
  }

  private async terminate(record: PodRecord, pod: KubeObject, signal: AbortSignal): Promise<void> {
    if (!record.finished) {
      await new PodSync(this.ctx, record, pod, signal).terminate();
      return;
    }
    // Torn down already; the API object is still there because deleting it failed: try again.
    if (!record.removed && isTerminating(pod)) await this.deps.podTerminated(pod);
  }

  /** A pod only the runtime knows: its containers get the grace they were created with, then everything goes. */
  private async terminateOrphan(record: PodRecord): Promise<void> {
    const observed = await this.ctx.observer.observe(record.uid);
    this.deps.log(`pod ${observed.namespace}/${observed.name} (${record.uid}) is no longer in the API; removing it`);
    await Promise.all(
      observed.containers
        .filter((c) => c.state === 'running')
        .map((c) => {
          const grace = c.graceSeconds ?? DEFAULT_TERMINATION_GRACE_SECONDS;
          return this.deps.cri.StopContainer({ container_id: c.id, timeout: grace }, { timeoutMs: grace * 1000 + STOP_CALL_MARGIN_MS }).catch((err: unknown) => {
            if (!isNotFoundError(err)) throw err;
          });
        }),
    );
    await removePodFromNode(this.ctx, record.uid, observed);
    record.finished = true;
    record.removed = true;
    this.records.delete(record.uid);
  }
}
