// One pod's sync, as the kubelet's SyncPod / SyncTerminatingPod: bring the runtime to what the
// spec asks (volumes, sandbox, init containers in order, app containers per restartPolicy) or tear
// it all down, and report the resulting status.
import { chmod, mkdir, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { KubeObject } from '../../api/types.js';
import type { PodSandboxConfig } from '../../runtime/cri/index.js';
import { ContainerConfigError } from '../contracts.js';
import { Backoff, goDuration } from './backoff.js';
import { containerConfig, sandboxConfig } from './cri-config.js';
import { MIN_GRACE_SECONDS, POST_START_TIMEOUT_SECONDS, STOP_CALL_MARGIN_MS, type PodWorkerDeps } from './deps.js';
import { errorMessage, isNotFoundError, StartError } from './errors.js';
import { ImagePuller } from './images.js';
import { containersNamed, RuntimeObserver, type ObservedContainer, type ObservedPod, type ObservedSandbox } from './observed.js';
import { runAction, type Dial, type ProbeManager } from './probes.js';
import {
  asPod,
  containerGraceSeconds,
  containerHash,
  deletionGraceSeconds,
  formatPod,
  isTerminating,
  podLogDirectory,
  podSpec,
  restartPolicy,
  terminationLogFile,
  type Container,
  type Handler,
} from './spec.js';
import { computePodStatus, shouldRestart, type PodStatus, type StartFailure } from './status.js';

/** What the workers keep about one pod between syncs. */
export interface PodRecord {
  uid: string;
  /** The newest object the informer gave; undefined for a pod only found in the runtime. */
  pod?: KubeObject;
  /** Deleted from the API (not merely terminating). */
  removed: boolean;
  /** Start failures by container name: their waiting reasons. */
  failures: Map<string, StartFailure>;
  lastStatus?: PodStatus;
  /** Everything of the pod is gone from the node. */
  finished: boolean;
  /** The next periodic sync should also refresh configMap/secret volumes. */
  refreshDue: boolean;
}

export interface SyncOutcome {
  /** When a back-off this sync hit ends: the pod should be synced again then. */
  wakeAt?: number;
}

/** Shared parts the syncs of all pods use. */
export interface SyncContext {
  deps: PodWorkerDeps;
  observer: RuntimeObserver;
  puller: ImagePuller;
  crashBackoff: Backoff;
  probes: ProbeManager;
  dial: Dial;
  runtimeName: () => Promise<string>;
  seccompProfileRoot?: string;
}

function podKey(pod: KubeObject, name: string): string {
  return `${pod.metadata.uid}/${name}`;
}

function isAborted(err: unknown, signal: AbortSignal): boolean {
  return signal.aborted && (err as Error)?.name !== 'StartError';
}

export class PodSync {
  private wakeAt: number | undefined;

  constructor(
    private readonly ctx: SyncContext,
    private readonly record: PodRecord,
    private readonly pod: KubeObject,
    private readonly signal: AbortSignal,
  ) {}

  private get deps(): PodWorkerDeps {
    return this.ctx.deps;
  }

  private event(type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.deps.recorder.record(asPod(this.pod), type, reason, message).catch((err: Error) => this.deps.log(`pod ${formatPod(this.pod)}: event ${reason}: ${err.message}`));
  }

  private wake(at: number | undefined): void {
    if (at !== undefined && (this.wakeAt === undefined || at < this.wakeAt)) this.wakeAt = at;
  }

  // ---- the running pod -----------------------------------------------------------------------

  async run(): Promise<SyncOutcome> {
    const pod = this.pod;
    const uid = this.record.uid;
    let observed = await this.ctx.observer.observe(uid);
    if (this.isDone(observed)) {
      await this.finishCompleted(observed);
      return {};
    }
    try {
      await this.deps.volumes.setUp(pod);
      if (this.record.refreshDue) {
        this.record.refreshDue = false;
        await this.deps.volumes.refresh(pod);
      }
    } catch (err) {
      if (isAborted(err, this.signal)) throw err;
      this.event('Warning', 'FailedMount', `Unable to attach or mount volumes: ${errorMessage(err)}`);
      await this.publish(observed);
      return {};
    }
    const made = await this.ensureSandbox(observed);
    if (made) {
      const { sandbox } = made;
      observed = made.observed;
      const initialized = await this.syncInitContainers(observed, sandbox);
      if (initialized) await this.syncAppContainers(observed, sandbox);
      observed = await this.ctx.observer.observe(uid);
      if (await this.collectGarbage(observed)) observed = await this.ctx.observer.observe(uid);
    } else {
      observed = await this.ctx.observer.observe(uid);
    }
    if (this.isDone(observed)) {
      await this.finishCompleted(observed);
      return {};
    }
    const current = observed.sandboxes[0];
    await this.ctx.probes.sync(pod, this.podIP(current), current?.ready ? observed.containers.filter((c) => c.state === 'running' && c.sandboxId === current.id) : []);
    await this.publish(observed);
    return { wakeAt: this.wakeAt };
  }

  private podIP(sandbox: ObservedSandbox | undefined): string {
    return podSpec(this.pod).hostNetwork ? this.deps.node.hostIP : (sandbox?.ip ?? '');
  }

  async status(observed: ObservedPod, terminal: boolean): Promise<PodStatus> {
    return computePodStatus({
      pod: this.pod,
      observed,
      node: this.deps.node,
      runtimeName: await this.ctx.runtimeName(),
      failures: this.record.failures,
      probes: this.ctx.probes.states(this.record.uid),
      previous: this.record.lastStatus ?? (this.pod.status as Partial<PodStatus> | undefined),
      terminal,
      now: new Date(),
    });
  }

  private async publish(observed: ObservedPod, terminal = false): Promise<PodStatus> {
    const status = await this.status(observed, terminal);
    this.record.lastStatus = status;
    this.deps.podStatus(this.pod, status);
    return status;
  }

  /** Whether the pod has run to completion under its restartPolicy (phase Succeeded or Failed). */
  private isDone(observed: ObservedPod): boolean {
    const before = this.record.lastStatus?.phase ?? (this.pod.status as { phase?: string } | undefined)?.phase;
    if (before === 'Succeeded' || before === 'Failed') return true;
    const status = computePodStatus({
      pod: this.pod,
      observed,
      node: this.deps.node,
      runtimeName: '',
      failures: new Map(),
      probes: new Map(),
      terminal: false,
      now: new Date(),
    });
    return status.phase === 'Succeeded' || status.phase === 'Failed';
  }

  /** A completed pod keeps its exited containers for logs and status, but not its sandbox. */
  private async finishCompleted(observed: ObservedPod): Promise<void> {
    await this.ctx.probes.removePod(this.record.uid);
    for (const c of observed.containers) if (c.state === 'running') await this.killContainer(c, containerGraceSeconds(this.pod), `Stopping container ${c.name}`);
    let changed = false;
    for (const s of observed.sandboxes) {
      if (!s.ready) continue;
      await this.deps.cri.StopPodSandbox({ pod_sandbox_id: s.id });
      changed = true;
    }
    // With nothing of the pod left on the node (its containers were removed), the status the API
    // holds is the better record of how it ended.
    if (observed.containers.length === 0) return;
    await this.publish(changed ? await this.ctx.observer.observe(this.record.uid) : observed);
  }

  // ---- sandbox -------------------------------------------------------------------------------

  private sandboxConfig(attempt: number): PodSandboxConfig {
    return sandboxConfig({
      pod: this.pod,
      node: this.deps.node,
      logRoot: this.deps.logRoot,
      attempt,
      ...(this.deps.dns ? { dns: this.deps.dns } : {}),
      ...(this.ctx.seccompProfileRoot ? { seccompProfileRoot: this.ctx.seccompProfileRoot } : {}),
    });
  }

  /** The pod's live sandbox, made (again) when there is none or it died, and the pod as it now is. */
  private async ensureSandbox(observed: ObservedPod): Promise<{ sandbox: ObservedSandbox; observed: ObservedPod } | undefined> {
    const latest = observed.sandboxes[0];
    const hostNetwork = podSpec(this.pod).hostNetwork === true;
    if (latest?.ready && (hostNetwork || latest.ip)) return { sandbox: latest, observed };
    if (latest) {
      const hasApp = observed.containers.some((c) => !c.init);
      if (restartPolicy(this.pod) === 'Never' && hasApp) {
        // kubelet: a Never pod whose containers ran is not given a new sandbox; it is done.
        await this.killAll(observed, containerGraceSeconds(this.pod));
        return undefined;
      }
      this.event('Normal', 'SandboxChanged', 'Pod sandbox changed, it will be killed and re-created.');
      await this.killAll(observed, containerGraceSeconds(this.pod));
    }
    const attempt = latest ? Math.max(...observed.sandboxes.map((s) => s.attempt)) + 1 : 0;
    try {
      const handler = await this.deps.runtimeHandler(this.pod);
      const { pod_sandbox_id: id } = await this.deps.cri.RunPodSandbox({ config: this.sandboxConfig(attempt), runtime_handler: handler });
      const fresh = await this.ctx.observer.observe(this.record.uid);
      const sandbox = fresh.sandboxes.find((s) => s.id === id);
      return sandbox ? { sandbox, observed: fresh } : undefined;
    } catch (err) {
      if (isAborted(err, this.signal)) throw err;
      this.event('Warning', 'FailedCreatePodSandBox', `Failed to create pod sandbox: ${errorMessage(err)}`);
      return undefined;
    }
  }

  // ---- containers ----------------------------------------------------------------------------

  /** Runs init containers one at a time; true once every one has exited 0 (or app containers already ran). */
  private async syncInitContainers(observed: ObservedPod, sandbox: ObservedSandbox): Promise<boolean> {
    const inits = podSpec(this.pod).initContainers ?? [];
    if (inits.length === 0) return true;
    if (observed.containers.some((c) => !c.init && c.sandboxId === sandbox.id)) return true;
    for (const container of inits) {
      const all = containersNamed(observed, container.name).filter((c) => c.init);
      const here = all.find((c) => c.sandboxId === sandbox.id);
      if (!here) {
        await this.startContainer(container, true, sandbox, await this.nextRestartCount(container.name, all));
        return false;
      }
      if (here.state === 'running') return false;
      if (here.state === 'created') {
        await this.removeContainer(here);
        await this.startContainer(container, true, sandbox, here.restartCount);
        return false;
      }
      if (here.state === 'exited' && here.exitCode === 0) continue;
      if (here.state === 'unknown') await this.stopContainer(here, 0);
      if (restartPolicy(this.pod) === 'Never') return false;
      await this.restartWithBackoff(container, true, sandbox, here);
      return false;
    }
    return true;
  }

  private async syncAppContainers(observed: ObservedPod, sandbox: ObservedSandbox): Promise<void> {
    await Promise.all(podSpec(this.pod).containers.map((c) => this.syncAppContainer(c, observed, sandbox)));
  }

  private async syncAppContainer(container: Container, observed: ObservedPod, sandbox: ObservedSandbox): Promise<void> {
    const all = containersNamed(observed, container.name).filter((c) => !c.init);
    let here = all.find((c) => c.sandboxId === sandbox.id);
    if (here?.state === 'running') {
      if (here.hash && here.hash !== containerHash(container)) {
        await this.killContainer(here, containerGraceSeconds(this.pod), `Container ${container.name} definition changed, will be restarted`);
        await this.startContainer(container, false, sandbox, here.restartCount + 1);
        return;
      }
      const failed = this.ctx.probes.failed(this.record.uid, here.id);
      if (!failed) return;
      const probe = failed === 'liveness' ? container.livenessProbe : container.startupProbe;
      await this.killContainer(here, containerGraceSeconds(this.pod, probe), `Container ${container.name} failed ${failed} probe, will be restarted`);
      here = (await this.ctx.observer.observe(this.record.uid)).containers.find((c) => c.id === here!.id) ?? { ...here, state: 'exited' };
    }
    if (here?.state === 'created') {
      await this.removeContainer(here);
      await this.startContainer(container, false, sandbox, here.restartCount);
      return;
    }
    if (here?.state === 'unknown') {
      await this.stopContainer(here, 0);
      here = { ...here, state: 'exited' };
    }
    const ref = here ?? all[0];
    if (!ref) {
      await this.startContainer(container, false, sandbox, await this.nextRestartCount(container.name, all));
      return;
    }
    if (!shouldRestart(this.pod, ref)) return;
    await this.restartWithBackoff(container, false, sandbox, ref);
  }

  /** kubelet's doBackOff: a container restarted inside its crash back-off waits as CrashLoopBackOff. */
  private async restartWithBackoff(container: Container, init: boolean, sandbox: ObservedSandbox, exited: ObservedContainer): Promise<void> {
    const key = podKey(this.pod, container.name);
    const finishedAt = exited.finishedAt || Date.now();
    if (this.ctx.crashBackoff.inBackoffSince(key, finishedAt)) {
      const delay = goDuration(this.ctx.crashBackoff.get(key));
      this.event('Warning', 'BackOff', `Back-off restarting failed container ${container.name} in pod ${formatPod(this.pod)}`);
      this.record.failures.set(container.name, {
        reason: 'CrashLoopBackOff',
        message: `back-off ${delay} restarting failed container=${container.name} pod=${formatPod(this.pod)}`,
      });
      this.wake(this.ctx.crashBackoff.endsAt(key, finishedAt));
      return;
    }
    this.ctx.crashBackoff.next(key);
    await this.startContainer(container, init, sandbox, exited.restartCount + 1);
  }

  /** kubelet's calcRestartCountByLogDir: continue after the newest instance, or after the logs of removed ones. */
  private async nextRestartCount(name: string, instances: ObservedContainer[]): Promise<number> {
    if (instances[0]) return instances[0].restartCount + 1;
    const dir = join(podLogDirectory(this.deps.logRoot, { namespace: this.pod.metadata.namespace!, name: this.pod.metadata.name!, uid: this.record.uid }), name);
    const counts = (await readdir(dir).catch(() => [] as string[])).map((f) => /^(\d+)\.log$/.exec(f)?.[1]).filter((n): n is string => n !== undefined).map(Number);
    return counts.length > 0 ? Math.max(...counts) + 1 : 0;
  }

  private async startContainer(container: Container, init: boolean, sandbox: ObservedSandbox, restartCount: number): Promise<void> {
    const pod = this.pod;
    try {
      const imageRef = await this.ctx.puller.ensure(pod, container, () => this.deps.pullSecrets(pod), (t, r, m) => this.event(t, r, m), this.signal);
      let envs: { key: string; value: string }[];
      let mounts;
      try {
        envs = await this.deps.env(pod, container.name);
        mounts = this.deps.volumes.mountsFor(pod, container.name, envs);
      } catch (err) {
        if (err instanceof ContainerConfigError) throw new StartError('CreateContainerConfigError', err.message);
        throw err;
      }
      const logFile = terminationLogFile(this.deps.podsDir, this.record.uid, container.name, restartCount);
      await mkdir(dirname(logFile), { recursive: true });
      await writeFile(logFile, '');
      // Any user in the container may write its termination message.
      await chmod(logFile, 0o666);
      const config = containerConfig({
        pod,
        container,
        init,
        restartCount,
        imageRef,
        envs,
        mounts,
        terminationLogFile: logFile,
        node: this.deps.node,
        ...(this.ctx.seccompProfileRoot ? { seccompProfileRoot: this.ctx.seccompProfileRoot } : {}),
      });
      let id: string;
      try {
        ({ container_id: id } = await this.deps.cri.CreateContainer({ pod_sandbox_id: sandbox.id, config, sandbox_config: this.sandboxConfig(sandbox.attempt) }));
      } catch (err) {
        if (isAborted(err, this.signal)) throw err;
        throw new StartError('CreateContainerError', errorMessage(err));
      }
      this.event('Normal', 'Created', `Created container ${container.name}`);
      try {
        await this.deps.cri.StartContainer({ container_id: id });
      } catch (err) {
        if (isAborted(err, this.signal)) throw err;
        await this.deps.cri.RemoveContainer({ container_id: id }).catch(() => undefined);
        this.ctx.crashBackoff.next(podKey(pod, container.name));
        throw new StartError('RunContainerError', errorMessage(err));
      }
      this.record.failures.delete(container.name);
      this.event('Normal', 'Started', `Started container ${container.name}`);
      const postStart = container.lifecycle?.postStart;
      if (postStart) await this.runPostStart(container, postStart, id, sandbox);
    } catch (err) {
      if (!(err instanceof StartError)) {
        if (isAborted(err, this.signal)) throw err;
        const message = errorMessage(err);
        this.record.failures.set(container.name, { reason: 'CreateContainerError', message });
        this.event('Warning', 'Failed', `Error: ${message}`);
        return;
      }
      this.record.failures.set(container.name, { reason: err.reason, message: err.message });
      const imageReason = ['ErrImagePull', 'ImagePullBackOff', 'ErrImageNeverPull'].includes(err.reason);
      this.event('Warning', 'Failed', `Error: ${imageReason ? err.reason : err.message}`);
      if (imageReason) this.wake(this.ctx.puller.backoffEnds(pod, container.image ?? ''));
      if (err.reason === 'RunContainerError') this.wake(this.ctx.crashBackoff.endsAt(podKey(pod, container.name)));
    }
  }

  private async runPostStart(container: Container, hook: Handler, id: string, sandbox: ObservedSandbox): Promise<void> {
    const outcome = await runAction(hook, { cri: this.deps.cri, dial: this.ctx.dial, containerId: id, container, podIP: this.podIP(sandbox) }, POST_START_TIMEOUT_SECONDS, this.signal);
    if (!outcome || outcome.ok) return;
    const message = `PostStartHook failed: ${outcome.output.trim()}`;
    this.event('Warning', 'FailedPostStartHook', message);
    await this.stopContainer({ id, name: container.name }, containerGraceSeconds(this.pod));
    this.record.failures.set(container.name, { reason: 'PostStartHookError', message });
  }

  // ---- stopping ------------------------------------------------------------------------------

  private async stopContainer(c: Pick<ObservedContainer, 'id' | 'name'>, graceSeconds: number): Promise<void> {
    try {
      await this.deps.cri.StopContainer({ container_id: c.id, timeout: graceSeconds }, { timeoutMs: graceSeconds * 1000 + STOP_CALL_MARGIN_MS });
    } catch (err) {
      if (!isNotFoundError(err)) throw err;
    }
  }

  /** preStop (running containers only), then SIGTERM and SIGKILL after what is left of the grace. */
  async killContainer(c: ObservedContainer, graceSeconds: number, message: string): Promise<void> {
    const started = Date.now();
    const container = [...podSpec(this.pod).containers, ...(podSpec(this.pod).initContainers ?? [])].find((x) => x.name === c.name);
    const preStop = container?.lifecycle?.preStop;
    if (preStop && container && c.state === 'running') {
      const sandbox = (await this.ctx.observer.observe(this.record.uid)).sandboxes.find((s) => s.id === c.sandboxId);
      const outcome = await runAction(preStop, { cri: this.deps.cri, dial: this.ctx.dial, containerId: c.id, container, podIP: this.podIP(sandbox) }, graceSeconds).catch((err: Error) => ({
        ok: false,
        output: err.message,
      }));
      if (outcome && !outcome.ok) this.event('Warning', 'FailedPreStopHook', `PreStopHook failed: ${outcome.output.trim()}`);
    }
    const left = Math.max(MIN_GRACE_SECONDS, Math.ceil(graceSeconds - (Date.now() - started) / 1000));
    this.event('Normal', 'Killing', message);
    await this.stopContainer(c, left);
  }

  /** Stops the running containers gracefully; stopping the sandboxes then ends anything else at once. */
  private async killAll(observed: ObservedPod, graceSeconds: number): Promise<void> {
    const running = observed.containers.filter((c) => c.state === 'running');
    await Promise.all(running.map((c) => this.killContainer(c, graceSeconds, `Stopping container ${c.name}`)));
    for (const s of observed.sandboxes) if (s.ready) await this.deps.cri.StopPodSandbox({ pod_sandbox_id: s.id });
  }

  private async removeContainer(c: ObservedContainer): Promise<void> {
    await this.deps.cri.RemoveContainer({ container_id: c.id });
    this.ctx.observer.forget([c.id]);
  }

  /**
   * Keeps the newest instance of each container and the one before it (for lastState and
   * `logs --previous`), as the kubelet's MaxPerPodContainer=1 GC does, and drops dead sandboxes
   * that hold none of those.
   */
  private async collectGarbage(observed: ObservedPod): Promise<boolean> {
    const keep = new Set<string>();
    let removed = false;
    const names = new Set(observed.containers.map((c) => `${c.init}/${c.name}`));
    for (const key of names) {
      const list = observed.containers.filter((c) => `${c.init}/${c.name}` === key);
      for (const c of list.slice(0, 2)) keep.add(c.id);
      for (const c of list.slice(2)) {
        if (c.state === 'running') {
          keep.add(c.id);
          continue;
        }
        removed = true;
        await this.removeContainer(c).catch((err: unknown) => this.deps.log(`pod ${formatPod(this.pod)}: removing container ${c.id}: ${errorMessage(err)}`));
        await rm(c.logPath, { force: true }).catch(() => undefined);
        await rm(terminationLogFile(this.deps.podsDir, this.record.uid, c.name, c.restartCount), { force: true });
      }
    }
    for (const s of observed.sandboxes.slice(1)) {
      if (s.ready || observed.containers.some((c) => c.sandboxId === s.id && keep.has(c.id))) continue;
      removed = true;
      await this.deps.cri.RemovePodSandbox({ pod_sandbox_id: s.id }).catch((err: unknown) => this.deps.log(`pod ${formatPod(this.pod)}: removing sandbox ${s.id}: ${errorMessage(err)}`));
      this.ctx.observer.forget([], [s.id]);
    }
    return removed;
  }

  // ---- termination ---------------------------------------------------------------------------

  /**
   * The pod is being deleted (or is gone from the API): stop every container within the grace
   * period, report the final status, and remove sandboxes, volumes, logs and the pod's files.
   */
  async terminate(): Promise<void> {
    const uid = this.record.uid;
    await this.ctx.probes.removePod(uid);
    const grace = deletionGraceSeconds(this.pod);
    let observed = await this.ctx.observer.observe(uid);
    await this.killAll(observed, grace);
    observed = await this.ctx.observer.observe(uid);
    if (!this.record.removed) await this.publish(observed, true);
    await removePodFromNode(this.ctx, uid, observed, this.pod);
    this.record.failures.clear();
    this.record.finished = true;
    if (!this.record.removed && isTerminating(this.pod)) await this.deps.podTerminated(this.pod);
  }
}

/** Removes what the node holds of a pod whose containers are stopped: sandboxes, volumes, files, logs. */
export async function removePodFromNode(ctx: SyncContext, uid: string, observed: ObservedPod, pod?: KubeObject): Promise<void> {
  for (const s of observed.sandboxes) await ctx.deps.cri.RemovePodSandbox({ pod_sandbox_id: s.id });
  ctx.observer.forget(
    observed.containers.map((c) => c.id),
    observed.sandboxes.map((s) => s.id),
  );
  await ctx.deps.volumes.tearDown(uid);
  await rm(join(ctx.deps.podsDir, uid, 'containers'), { recursive: true, force: true });
  await rmdir(join(ctx.deps.podsDir, uid)).catch(() => undefined);
  const name = pod?.metadata.name ?? observed.name;
  const namespace = pod?.metadata.namespace ?? observed.namespace;
  if (name && namespace) await rm(podLogDirectory(ctx.deps.logRoot, { namespace, name, uid }), { recursive: true, force: true });
  ctx.crashBackoff.resetPrefix(`${uid}/`);
  ctx.puller.forgetPod(uid);
}
