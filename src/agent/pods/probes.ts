// Liveness, readiness and startup probes (exec, httpGet, tcpSocket) and the lifecycle hooks that
// share their actions, with the kubelet's prober semantics: initial delay, period, timeout, success
// and failure thresholds, startup gating the other two, a failed liveness held until the container
// is replaced.
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { KubeObject } from '../../api/types.js';
import { CriCode, isGrpcError, type CriClient } from '../../runtime/cri/index.js';
import type { ObservedContainer } from './observed.js';
import { resolvePort, type Container, type Handler, type HTTPGetAction, type Probe } from './spec.js';
import type { ProbeState } from './status.js';

/** kube's probe defaults (SetDefaults_Probe), for a probe read before the API server defaulted it. */
export const PROBE_DEFAULTS = { timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 } as const;
/** The User-Agent kubelet 1.32 probes with. */
export const PROBE_USER_AGENT = 'kube-probe/1.32';
/** kubelet reads at most this much of an HTTP probe's body. */
const MAX_PROBE_BODY_BYTES = 10 * 1024;

/** Opens a TCP connection for httpGet and tcpSocket actions; the agent's own network by default. */
export type Dial = (host: string, port: number, signal: AbortSignal) => Promise<net.Socket>;

export const directDial: Dial = (host, port, signal) =>
  new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const abort = () => {
      socket.destroy();
      reject(new Error(`dial tcp ${host}:${port}: i/o timeout`));
    };
    signal.addEventListener('abort', abort, { once: true });
    socket.once('connect', () => {
      signal.removeEventListener('abort', abort);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      signal.removeEventListener('abort', abort);
      reject(new Error(`dial tcp ${host}:${port}: connect: ${err.code === 'ECONNREFUSED' ? 'connection refused' : err.message}`));
    });
  });

export interface ActionTarget {
  cri: CriClient;
  dial: Dial;
  containerId: string;
  container: Container;
  /** Where httpGet and tcpSocket go when the action names no host. */
  podIP: string;
}

export interface ActionOutcome {
  ok: boolean;
  output: string;
}

function hostPort(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

async function httpGet(action: HTTPGetAction, target: ActionTarget, timeoutMs: number): Promise<ActionOutcome> {
  const host = action.host || target.podIP;
  const port = resolvePort(action.port, target.container);
  const path = action.path || '/';
  const signal = AbortSignal.timeout(timeoutMs);
  const url = `${(action.scheme ?? 'HTTP').toLowerCase()}://${hostPort(host, port)}${path}`;
  let socket: net.Socket;
  try {
    socket = await target.dial(host, port, signal);
  } catch (err) {
    return { ok: false, output: `Get "${url}": ${(err as Error).message}` };
  }
  const stream: net.Socket = action.scheme === 'HTTPS' ? tls.connect({ socket, rejectUnauthorized: false, ...(net.isIP(host) ? {} : { servername: host }) }) : socket;
  const headers: Record<string, string> = { Host: hostPort(host, port), 'User-Agent': PROBE_USER_AGENT, Accept: '*/*' };
  for (const h of action.httpHeaders ?? []) {
    const existing = Object.keys(headers).find((k) => k.toLowerCase() === h.name.toLowerCase());
    if (existing) delete headers[existing];
    headers[h.name] = h.value;
  }
  return new Promise((resolve) => {
    const finish = (outcome: ActionOutcome) => {
      signal.removeEventListener('abort', onAbort);
      stream.destroy();
      resolve(outcome);
    };
    const onAbort = () => finish({ ok: false, output: `Get "${url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)` });
    signal.addEventListener('abort', onAbort, { once: true });
    const req = http.request({ method: 'GET', path, headers, createConnection: () => stream }, (res) => {
      const code = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        if (size < MAX_PROBE_BODY_BYTES) chunks.push(chunk);
        size += chunk.length;
      });
      res.on('end', () => {
        const body = Buffer.concat(chunks).subarray(0, MAX_PROBE_BODY_BYTES).toString('utf8');
        finish(code >= 200 && code < 400 ? { ok: true, output: body } : { ok: false, output: `HTTP probe failed with statuscode: ${code}` });
      });
      res.on('error', (err) => finish({ ok: false, output: `Get "${url}": ${err.message}` }));
    });
    req.on('error', (err) => finish({ ok: false, output: `Get "${url}": ${err.message}` }));
    req.end();
  });
}

async function tcpSocket(host: string, port: number, target: ActionTarget, timeoutMs: number): Promise<ActionOutcome> {
  try {
    const socket = await target.dial(host, port, AbortSignal.timeout(timeoutMs));
    socket.destroy();
    return { ok: true, output: '' };
  } catch (err) {
    return { ok: false, output: (err as Error).message };
  }
}

async function execAction(command: string[], target: ActionTarget, timeoutSeconds: number): Promise<ActionOutcome | undefined> {
  try {
    const r = await target.cri.ExecSync({ container_id: target.containerId, cmd: command, timeout: timeoutSeconds });
    const output = Buffer.concat([Buffer.from(r.stdout), Buffer.from(r.stderr)]).toString('utf8');
    return { ok: r.exit_code === 0, output: r.exit_code === 0 ? output : output || `command ${JSON.stringify(command.join(' '))} exited with ${r.exit_code}` };
  } catch (err) {
    if (isGrpcError(err) && err.code === CriCode.DEADLINE_EXCEEDED) {
      return { ok: false, output: `command ${JSON.stringify(command.join(' '))} timed out` };
    }
    // The runtime could not run the command at all (the container is going away): no verdict.
    return undefined;
  }
}

/**
 * Runs one probe or hook action. `undefined` means the action could not be carried out at all
 * (kubelet's probe error), which leaves a probe's result as it was.
 */
export async function runAction(handler: Handler, target: ActionTarget, timeoutSeconds: number, signal?: AbortSignal): Promise<ActionOutcome | undefined> {
  const timeoutMs = Math.max(1, timeoutSeconds) * 1000;
  if (handler.exec) return execAction(handler.exec.command ?? [], target, timeoutSeconds);
  if (handler.httpGet) return httpGet(handler.httpGet, target, timeoutMs);
  if (handler.tcpSocket) {
    const port = resolvePort(handler.tcpSocket.port, target.container);
    return tcpSocket(handler.tcpSocket.host || target.podIP, port, target, timeoutMs);
  }
  if (handler.sleep) {
    await sleep(Math.min(handler.sleep.seconds, timeoutSeconds) * 1000, signal);
    return { ok: true, output: '' };
  }
  return { ok: false, output: 'the handler has no action' };
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export type ProbeKind = 'liveness' | 'readiness' | 'startup';
type Result = 'success' | 'failure' | 'unknown';

const KIND_TITLE: Record<ProbeKind, string> = { liveness: 'Liveness', readiness: 'Readiness', startup: 'Startup' };
const INITIAL_RESULT: Record<ProbeKind, Result> = { liveness: 'success', readiness: 'failure', startup: 'unknown' };

export interface ProbeHost {
  cri: CriClient;
  dial: Dial;
  /** A probe result changed: the pod should be synced. */
  changed(uid: string): void;
  event(pod: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): void;
}

/** The probes of one container instance: one loop per configured probe, until the instance goes. */
class ContainerProbes {
  readonly results = new Map<ProbeKind, Result>();
  private readonly abort = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private readonly wakers = new Set<() => void>();

  constructor(
    private readonly host: ProbeHost,
    private readonly pod: KubeObject,
    readonly target: ActionTarget,
    private readonly startedAt: number,
  ) {
    for (const kind of ['startup', 'liveness', 'readiness'] as const) {
      const probe = target.container[`${kind}Probe`];
      if (!probe) continue;
      this.results.set(kind, INITIAL_RESULT[kind]);
      this.loops.push(this.run(kind, probe));
    }
  }

  get started(): boolean {
    return !this.results.has('startup') || this.results.get('startup') === 'success';
  }

  state(): ProbeState {
    const started = this.started;
    return { started, ready: started && (this.results.get('readiness') ?? 'success') === 'success' };
  }

  /** The probe whose failure means the container must be restarted, if any. */
  failed(): ProbeKind | undefined {
    if (this.results.get('startup') === 'failure') return 'startup';
    if (this.results.get('liveness') === 'failure') return 'liveness';
    return undefined;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled(this.loops);
  }

  private async run(kind: ProbeKind, probe: Probe): Promise<void> {
    const signal = this.abort.signal;
    const period = (probe.periodSeconds || PROBE_DEFAULTS.periodSeconds) * 1000;
    const counts = { success: 0, failure: 0 };
    let onHold = false;
    while (!signal.aborted) {
      if (!onHold && (kind === 'startup' ? !this.started : this.started) && Date.now() - this.startedAt >= (probe.initialDelaySeconds ?? 0) * 1000) {
        const outcome = await runAction(probe, this.target, probe.timeoutSeconds || PROBE_DEFAULTS.timeoutSeconds, signal).catch((err: Error) => ({ ok: false, output: err.message }));
        if (signal.aborted) return;
        if (outcome) onHold = this.record(kind, probe, outcome, counts);
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.wakers.delete(wake);
          clearTimeout(timer);
          signal.removeEventListener('abort', wake);
          resolve();
        };
        const timer = setTimeout(wake, period);
        this.wakers.add(wake);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
  }

  /** Counts one outcome; returns whether the probe holds from now on (a liveness or startup failure). */
  private record(kind: ProbeKind, probe: Probe, outcome: ActionOutcome, counts: { success: number; failure: number }): boolean {
    if (outcome.ok) {
      counts.success++;
      counts.failure = 0;
    } else {
      counts.failure++;
      counts.success = 0;
      this.host.event(this.pod, 'Warning', 'Unhealthy', `${KIND_TITLE[kind]} probe failed: ${outcome.output.trim()}`);
    }
    const threshold = outcome.ok ? probe.successThreshold || PROBE_DEFAULTS.successThreshold : probe.failureThreshold || PROBE_DEFAULTS.failureThreshold;
    if ((outcome.ok ? counts.success : counts.failure) < threshold) return false;
    const result: Result = outcome.ok ? 'success' : 'failure';
    if (this.results.get(kind) !== result) {
      this.results.set(kind, result);
      // Startup passing lets liveness and readiness begin now rather than a period later.
      if (kind === 'startup' && result === 'success') for (const wake of [...this.wakers]) wake();
      this.host.changed(this.pod.metadata.uid!);
    }
    return result === 'failure' && kind !== 'readiness';
  }
}

/** The probe loops of every running container of every pod, keyed by container id. */
export class ProbeManager {
  private readonly pods = new Map<string, Map<string, ContainerProbes>>();

  constructor(private readonly host: ProbeHost) {}

  /** Starts probes for the pod's running app containers and stops those of containers that are gone. */
  async sync(pod: KubeObject, podIP: string, running: readonly ObservedContainer[]): Promise<void> {
    const uid = pod.metadata.uid!;
    const current = this.pods.get(uid) ?? new Map<string, ContainerProbes>();
    this.pods.set(uid, current);
    const containers = (pod.spec as { containers: Container[] }).containers;
    const wanted = new Set<string>();
    for (const c of running) {
      const container = containers.find((x) => x.name === c.name);
      if (!container || c.init || !(container.livenessProbe || container.readinessProbe || container.startupProbe)) continue;
      wanted.add(c.id);
      if (!current.has(c.id)) {
        current.set(c.id, new ContainerProbes(this.host, pod, { cri: this.host.cri, dial: this.host.dial, containerId: c.id, container, podIP }, c.startedAt));
      }
    }
    const stale = [...current.entries()].filter(([id]) => !wanted.has(id));
    for (const [id] of stale) current.delete(id);
    await Promise.all(stale.map(([, p]) => p.stop()));
  }

  /** Probe results of the pod's containers by container id. */
  states(uid: string): Map<string, ProbeState> {
    return new Map([...(this.pods.get(uid) ?? new Map<string, ContainerProbes>()).entries()].map(([id, p]) => [id, p.state()]));
  }

  failed(uid: string, containerId: string): ProbeKind | undefined {
    return this.pods.get(uid)?.get(containerId)?.failed();
  }

  async removePod(uid: string): Promise<void> {
    const probes = this.pods.get(uid);
    this.pods.delete(uid);
    await Promise.all([...(probes?.values() ?? [])].map((p) => p.stop()));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.pods.keys()].map((uid) => this.removePod(uid)));
  }
}
