// What the runtime holds for one pod, read over CRI: its sandboxes and containers, newest first.
// Pod workers act on it and status.ts turns it into the API's PodStatus.
import { readFile } from 'node:fs/promises';
import type { ContainerStatus__Output, CriClient } from '../../runtime/cri/index.js';
import { parseCriLogLine } from '../server/cri-log.js';
import {
  CONTAINER_NAME_LABEL,
  POD_NAME_LABEL,
  POD_NAMESPACE_LABEL,
  POD_UID_LABEL,
  RESTART_COUNT_ANNOTATION,
  TERMINATION_GRACE_ANNOTATION,
} from '../contracts.js';

/** Container annotations the pod workers set besides the contract's. */
export const CONTAINER_HASH_ANNOTATION = 'io.kubernetes.container.hash';
export const TERMINATION_MESSAGE_PATH_ANNOTATION = 'io.kubernetes.container.terminationMessagePath';
export const TERMINATION_MESSAGE_POLICY_ANNOTATION = 'io.kubernetes.container.terminationMessagePolicy';
/** The host file bound at the container's terminationMessagePath. */
export const TERMINATION_LOG_FILE_ANNOTATION = 'atoll.io/termination-log-file';
export const INIT_CONTAINER_ANNOTATION = 'atoll.io/init-container';

/** kubelet: MaxContainerTerminationMessageLength. */
export const MAX_TERMINATION_MESSAGE_BYTES = 4096;
/** kubelet: FallbackToLogsOnError reads at most this many lines and bytes of the log's tail. */
export const MAX_TERMINATION_LOG_LINES = 80;
export const MAX_TERMINATION_LOG_BYTES = 2048;

export type ContainerRunState = 'created' | 'running' | 'exited' | 'unknown';

export interface ObservedSandbox {
  id: string;
  attempt: number;
  /** Epoch milliseconds. */
  createdAt: number;
  ready: boolean;
  /** The pod IP ('' for host network or no network); more IPs in `additionalIps`. */
  ip: string;
  additionalIps: string[];
}

export interface ObservedContainer {
  id: string;
  name: string;
  sandboxId: string;
  init: boolean;
  restartCount: number;
  hash: string;
  /** The pod's grace period when the container was created. */
  graceSeconds: number | undefined;
  state: ContainerRunState;
  /** Epoch milliseconds; 0 when not (yet) known. */
  createdAt: number;
  startedAt: number;
  finishedAt: number;
  exitCode: number;
  /** The runtime's reason for an exit: Completed, Error, OOMKilled. */
  reason: string;
  /** The termination message (file or log tail), else the runtime's message. */
  message: string;
  /** Image reference with digest, which the API calls imageID. */
  imageRef: string;
  logPath: string;
}

export interface ObservedPod {
  uid: string;
  name: string;
  namespace: string;
  sandboxes: ObservedSandbox[];
  containers: ObservedContainer[];
}

const STATE: Record<string, ContainerRunState> = {
  CONTAINER_CREATED: 'created',
  CONTAINER_RUNNING: 'running',
  CONTAINER_EXITED: 'exited',
  CONTAINER_UNKNOWN: 'unknown',
};

const nsToMs = (ns: number): number => Math.floor(ns / 1e6);

/** The containers of one name, newest first. */
export function containersNamed(pod: ObservedPod, name: string): ObservedContainer[] {
  return pod.containers.filter((c) => c.name === name);
}

function byNewest<T extends { createdAt: number }>(a: T, b: T): number {
  return b.createdAt - a.createdAt;
}

async function readTerminationFile(path: string): Promise<string> {
  const data = await readFile(path).catch(() => Buffer.alloc(0));
  return data.subarray(0, MAX_TERMINATION_MESSAGE_BYTES).toString('utf8');
}

/** The last lines of a CRI log file as plain text, for FallbackToLogsOnError. */
export async function logTail(path: string, maxLines = MAX_TERMINATION_LOG_LINES, maxBytes = MAX_TERMINATION_LOG_BYTES): Promise<string> {
  const data = await readFile(path).catch(() => undefined);
  if (!data) return '';
  const texts: string[] = [];
  let partial = '';
  for (const raw of data.toString('utf8').split('\n')) {
    if (!raw) continue;
    try {
      const line = parseCriLogLine(Buffer.from(raw));
      partial += line.text.toString('utf8');
      if (!line.partial) {
        texts.push(partial);
        partial = '';
      }
    } catch {
      // a torn last line while the writer was killed: skip it
    }
  }
  if (partial) texts.push(partial);
  const tail = texts.slice(-maxLines).join('\n');
  const bytes = Buffer.from(tail);
  return bytes.length > maxBytes ? bytes.subarray(bytes.length - maxBytes).toString('utf8') : tail;
}

/**
 * Reads pods' state over CRI. ContainerStatus answers of exited containers never change, so they
 * are kept and not asked again; everything else is read fresh on each call.
 */
export class RuntimeObserver {
  private readonly finished = new Map<string, ObservedContainer>();
  private readonly sandboxIps = new Map<string, { ip: string; additionalIps: string[] }>();

  constructor(private readonly cri: CriClient) {}

  async observe(uid: string): Promise<ObservedPod> {
    const selector = { [POD_UID_LABEL]: uid };
    const [sandboxList, containerList] = await Promise.all([
      this.cri.ListPodSandbox({ filter: { label_selector: selector } }),
      this.cri.ListContainers({ filter: { label_selector: selector } }),
    ]);
    const sandboxes: ObservedSandbox[] = [];
    let name = '';
    let namespace = '';
    for (const s of sandboxList.items) {
      name ||= s.labels[POD_NAME_LABEL] ?? s.metadata?.name ?? '';
      namespace ||= s.labels[POD_NAMESPACE_LABEL] ?? s.metadata?.namespace ?? '';
      const ready = s.state === 'SANDBOX_READY';
      let net = ready ? this.sandboxIps.get(s.id) : undefined;
      if (ready && !net) {
        const status = (await this.cri.PodSandboxStatus({ pod_sandbox_id: s.id })).status;
        net = { ip: status?.network?.ip ?? '', additionalIps: (status?.network?.additional_ips ?? []).map((a) => a.ip) };
        this.sandboxIps.set(s.id, net);
      }
      if (!ready) this.sandboxIps.delete(s.id);
      sandboxes.push({ id: s.id, attempt: s.metadata?.attempt ?? 0, createdAt: nsToMs(s.created_at), ready, ip: net?.ip ?? '', additionalIps: net?.additionalIps ?? [] });
    }
    const containers: ObservedContainer[] = [];
    for (const c of containerList.containers) {
      const known = this.finished.get(c.id);
      if (known) {
        containers.push(known);
        continue;
      }
      const status = await this.cri.ContainerStatus({ container_id: c.id }).then((r) => r.status).catch(() => null);
      if (!status) continue;
      const observed = await toObserved(status, c.pod_sandbox_id);
      if (observed.state === 'exited') this.finished.set(c.id, observed);
      containers.push(observed);
    }
    sandboxes.sort((a, b) => byNewest(a, b) || b.attempt - a.attempt);
    containers.sort((a, b) => byNewest(a, b) || b.restartCount - a.restartCount);
    return { uid, name, namespace, sandboxes, containers };
  }

  /** Forgets what was kept about containers and sandboxes that are gone. */
  forget(containerIds: Iterable<string>, sandboxIds: Iterable<string> = []): void {
    for (const id of containerIds) this.finished.delete(id);
    for (const id of sandboxIds) this.sandboxIps.delete(id);
  }
}

async function toObserved(status: ContainerStatus__Output, sandboxId: string): Promise<ObservedContainer> {
  const a = status.annotations;
  const state = STATE[status.state] ?? 'unknown';
  let message = '';
  if (state === 'exited') {
    const file = a[TERMINATION_LOG_FILE_ANNOTATION];
    if (file) message = await readTerminationFile(file);
    if (!message && status.exit_code !== 0 && a[TERMINATION_MESSAGE_POLICY_ANNOTATION] === 'FallbackToLogsOnError') {
      message = await logTail(status.log_path);
    }
    message ||= status.message;
  }
  const grace = Number(a[TERMINATION_GRACE_ANNOTATION]);
  return {
    id: status.id,
    name: status.labels[CONTAINER_NAME_LABEL] ?? status.metadata?.name ?? '',
    sandboxId,
    init: a[INIT_CONTAINER_ANNOTATION] === 'true',
    restartCount: Number(a[RESTART_COUNT_ANNOTATION] ?? status.metadata?.attempt ?? 0) || 0,
    hash: a[CONTAINER_HASH_ANNOTATION] ?? '',
    graceSeconds: Number.isFinite(grace) && a[TERMINATION_GRACE_ANNOTATION] !== undefined ? grace : undefined,
    state,
    createdAt: nsToMs(status.created_at),
    startedAt: nsToMs(status.started_at),
    finishedAt: nsToMs(status.finished_at),
    exitCode: status.exit_code,
    reason: status.reason,
    message,
    imageRef: status.image_ref,
    logPath: status.log_path,
  };
}
