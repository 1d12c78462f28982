// The API's PodStatus, computed from the pod's spec and what the runtime holds, as the kubelet's
// generateAPIPodStatus does. Pure: the same inputs give the same status, so it is tested as such.
import type { KubeObject } from '../../api/types.js';
import { podQosClass } from '../../apiserver/strategy.js';
import type { NodeFacts } from '../contracts.js';
import { containersNamed, type ObservedContainer, type ObservedPod } from './observed.js';
import { podSpec, restartPolicy, type Container, type Phase } from './spec.js';

export interface ContainerStateWaiting {
  reason: string;
  message?: string;
}

export interface ContainerStateTerminated {
  exitCode: number;
  reason: string;
  message?: string;
  startedAt: string | null;
  finishedAt: string | null;
  containerID?: string;
}

export interface ContainerState {
  waiting?: ContainerStateWaiting;
  running?: { startedAt: string | null };
  terminated?: ContainerStateTerminated;
}

export interface ContainerStatus {
  name: string;
  state: ContainerState;
  lastState: ContainerState;
  ready: boolean;
  restartCount: number;
  image: string;
  imageID: string;
  containerID?: string;
  started: boolean;
}

export interface PodCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  lastProbeTime: string | null;
  lastTransitionTime: string | null;
  reason?: string;
  message?: string;
}

export interface PodStatus {
  phase: Phase;
  conditions: PodCondition[];
  hostIP: string;
  hostIPs: { ip: string }[];
  podIP?: string;
  podIPs?: { ip: string }[];
  startTime: string;
  qosClass: string;
  initContainerStatuses?: ContainerStatus[];
  containerStatuses: ContainerStatus[];
  [other: string]: unknown;
}

/** Why a container could not be (re)started on the last sync: its waiting reason until it starts. */
export interface StartFailure {
  reason: string;
  message: string;
}

/** What the probes say about one running container. */
export interface ProbeState {
  started: boolean;
  ready: boolean;
}

export interface StatusInput {
  pod: KubeObject;
  observed: ObservedPod;
  node: NodeFacts;
  /** CRI Version's runtime_name: containerIDs read `<runtimeName>://<id>`. */
  runtimeName: string;
  /** Start failures by container name (the kubelet's reason cache). */
  failures: ReadonlyMap<string, StartFailure>;
  /** Probe results by container id; a container without an entry counts as its spec says before any probe ran. */
  probes: ReadonlyMap<string, ProbeState>;
  /** The status last computed or seen for this pod: keeps startTime, IPs and transition times stable. */
  previous?: Partial<PodStatus>;
  /** The pod is going away: no container will be started again. */
  terminal: boolean;
  now: Date;
}

/** Condition types the pod workers own; others (set by controllers) are carried over untouched. */
export const KUBELET_CONDITIONS = ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'];

/** metav1.Time: RFC 3339 in whole seconds. */
export function apiTime(ms: number | Date): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

function apiTimeOrNull(ms: number): string | null {
  return ms > 0 ? apiTime(ms) : null;
}

/** kubelet's ShouldContainerBeRestarted for a container whose newest instance is `latest`. */
export function shouldRestart(pod: KubeObject, latest: ObservedContainer | undefined): boolean {
  if (!latest) return true;
  if (latest.state === 'running' || latest.state === 'created') return false;
  const policy = restartPolicy(pod);
  if (policy === 'Never') return false;
  if (policy === 'OnFailure') return !(latest.state === 'exited' && latest.exitCode === 0);
  return true;
}

function terminatedOf(c: ObservedContainer, containerID: string): ContainerStateTerminated {
  if (c.state === 'unknown') {
    // kubelet's answer for a container the runtime lost track of.
    return {
      exitCode: 137,
      reason: 'ContainerStatusUnknown',
      message: 'The container could not be located when the pod was terminated',
      startedAt: apiTimeOrNull(c.startedAt),
      finishedAt: apiTimeOrNull(c.finishedAt),
      containerID,
    };
  }
  const t: ContainerStateTerminated = {
    exitCode: c.exitCode,
    reason: c.reason || (c.exitCode === 0 ? 'Completed' : 'Error'),
    startedAt: apiTimeOrNull(c.startedAt),
    finishedAt: apiTimeOrNull(c.finishedAt),
    containerID,
  };
  if (c.message) t.message = c.message;
  return t;
}

function stateOf(c: ObservedContainer, containerID: string): ContainerState {
  switch (c.state) {
    case 'running':
      return { running: { startedAt: apiTimeOrNull(c.startedAt) } };
    case 'created':
      return { waiting: { reason: 'ContainerCreating' } };
    default:
      return { terminated: terminatedOf(c, containerID) };
  }
}

function containerStatus(input: StatusInput, container: Container, init: boolean, defaultWaiting: string): ContainerStatus {
  const { pod, observed } = input;
  const [latest, previous] = containersNamed(observed, container.name).filter((c) => c.init === init);
  const status: ContainerStatus = {
    name: container.name,
    state: { waiting: { reason: defaultWaiting } },
    lastState: {},
    ready: false,
    restartCount: latest?.restartCount ?? 0,
    image: container.image ?? '',
    imageID: latest?.imageRef ?? '',
    started: false,
  };
  if (latest) {
    status.containerID = `${input.runtimeName}://${latest.id}`;
    status.state = stateOf(latest, status.containerID);
    if (previous && previous.state !== 'running' && previous.state !== 'created') {
      status.lastState = { terminated: terminatedOf(previous, `${input.runtimeName}://${previous.id}`) };
    }
  }
  const failure = input.failures.get(container.name);
  if (failure && !input.terminal && shouldRestart(pod, latest)) {
    if (status.state.terminated) status.lastState = status.state;
    status.state = { waiting: { reason: failure.reason, message: failure.message } };
  }
  if (init) {
    status.ready = Boolean(status.state.terminated && status.state.terminated.exitCode === 0);
    status.started = Boolean(status.state.running);
  } else if (latest?.state === 'running') {
    const probe = input.probes.get(latest.id) ?? { started: !container.startupProbe, ready: !container.startupProbe && !container.readinessProbe };
    status.started = probe.started;
    status.ready = probe.started && probe.ready;
  }
  return status;
}

/** kubelet's getPhase, over the computed container statuses. */
export function podPhase(pod: KubeObject, init: readonly ContainerStatus[], app: readonly ContainerStatus[], podIsTerminal: boolean): Phase {
  const policy = restartPolicy(pod);
  let pendingInitialization = 0;
  let failedInitialization = 0;
  for (const s of init) {
    if (s.state.running) pendingInitialization++;
    else if (s.state.terminated) {
      if (s.state.terminated.exitCode !== 0) failedInitialization++;
    } else if (s.lastState.terminated) {
      if (s.lastState.terminated.exitCode !== 0) failedInitialization++;
    } else pendingInitialization++;
  }
  let running = 0;
  let waiting = 0;
  let stopped = 0;
  let succeeded = 0;
  for (const s of app) {
    if (s.state.running) running++;
    else if (s.state.terminated) {
      stopped++;
      if (s.state.terminated.exitCode === 0) succeeded++;
    } else if (s.lastState.terminated) stopped++;
    else waiting++;
  }
  if (failedInitialization > 0 && policy === 'Never') return 'Failed';
  const anyStarted = app.some((s) => s.state.running || s.state.terminated || s.lastState.terminated);
  if ((pendingInitialization > 0 && !anyStarted) || waiting > 0) return 'Pending';
  if (running > 0) return 'Running';
  if (stopped > 0) {
    if (podIsTerminal) return stopped === succeeded ? 'Succeeded' : 'Failed';
    if (policy === 'Always') return 'Running';
    if (stopped === succeeded) return 'Succeeded';
    if (policy === 'Never') return 'Failed';
    return 'Running';
  }
  return 'Pending';
}

function condition(type: string, ok: boolean, reason?: string, message?: string): PodCondition {
  const c: PodCondition = { type, status: ok ? 'True' : 'False', lastProbeTime: null, lastTransitionTime: null };
  if (reason) c.reason = reason;
  if (message) c.message = message;
  return c;
}

function podConditions(input: StatusInput, phase: Phase, init: ContainerStatus[], app: ContainerStatus[], sandboxReady: boolean): PodCondition[] {
  const spec = podSpec(input.pod);
  const previous = input.previous?.conditions ?? [];
  // Conditions others own (readiness gates, DisruptionTarget) and PodScheduled come from the API object.
  const fromApi = (input.pod.status as { conditions?: PodCondition[] } | undefined)?.conditions ?? [];
  const completed = phase === 'Succeeded';
  const started = app.some((s) => s.state.running || s.state.terminated || s.lastState.terminated);
  const incomplete = init.filter((s) => !(s.state.terminated && s.state.terminated.exitCode === 0)).map((s) => s.name);
  const initialized =
    incomplete.length === 0 || started
      ? condition('Initialized', true, completed ? 'PodCompleted' : undefined)
      : condition('Initialized', false, 'ContainersNotInitialized', `containers with incomplete status: [${incomplete.join(' ')}]`);
  const unready = app.filter((s) => !s.ready).map((s) => s.name);
  const containersReady = completed
    ? condition('ContainersReady', false, 'PodCompleted')
    : unready.length === 0
      ? condition('ContainersReady', true)
      : condition('ContainersReady', false, 'ContainersNotReady', `containers with unready status: [${unready.join(' ')}]`);
  let ready = { ...containersReady, type: 'Ready' };
  if (containersReady.status === 'True') {
    for (const gate of spec.readinessGates ?? []) {
      const found = fromApi.find((c) => c.type === gate.conditionType);
      if (!found) {
        ready = condition('Ready', false, 'ReadinessGatesNotReady', `corresponding condition of pod readiness gate "${gate.conditionType}" does not exist.`);
        break;
      }
      if (found.status !== 'True') {
        ready = condition('Ready', false, 'ReadinessGatesNotReady', `the status of pod readiness gate "${gate.conditionType}" is not "True", but ${found.status}`);
        break;
      }
    }
  }
  const scheduled = fromApi.find((c) => c.type === 'PodScheduled') ?? previous.find((c) => c.type === 'PodScheduled') ?? condition('PodScheduled', true);
  const owned = [condition('PodReadyToStartContainers', sandboxReady), initialized, ready, containersReady, scheduled];
  const now = apiTime(input.now);
  const out: PodCondition[] = owned.map((c) => {
    const before = previous.find((p) => p.type === c.type);
    return { ...c, lastTransitionTime: before && before.status === c.status ? before.lastTransitionTime : now };
  });
  for (const c of fromApi) if (!KUBELET_CONDITIONS.includes(c.type)) out.push(c);
  return out;
}

export function computePodStatus(input: StatusInput): PodStatus {
  const { pod, observed, node } = input;
  const spec = podSpec(pod);
  const initContainers = spec.initContainers ?? [];
  const init = initContainers.map((c) => containerStatus(input, c, true, 'PodInitializing'));
  const app = spec.containers.map((c) => containerStatus(input, c, false, initContainers.length > 0 ? 'PodInitializing' : 'ContainerCreating'));

  // A pod that reached Succeeded or Failed never leaves it (the API server refuses it too).
  const terminalBefore = [input.previous?.phase, (pod.status as { phase?: Phase } | undefined)?.phase].find((p) => p === 'Succeeded' || p === 'Failed');
  const phase: Phase = terminalBefore ?? podPhase(pod, init, app, input.terminal && !app.some((s) => s.state.running));

  const sandbox = observed.sandboxes[0];
  const sandboxReady = Boolean(sandbox?.ready && (spec.hostNetwork || sandbox.ip));
  const status: PodStatus = {
    phase,
    conditions: [],
    hostIP: node.hostIP,
    hostIPs: [{ ip: node.hostIP }],
    startTime: input.previous?.startTime ?? apiTime(input.now),
    qosClass: (pod.status as { qosClass?: string } | undefined)?.qosClass || podQosClass(pod),
    containerStatuses: app,
  };
  if (initContainers.length > 0) status.initContainerStatuses = init;
  const ips = spec.hostNetwork ? (sandbox?.ready ? [node.hostIP] : []) : sandbox?.ready && sandbox.ip ? [sandbox.ip, ...sandbox.additionalIps] : [];
  if (ips.length > 0) {
    status.podIP = ips[0];
    status.podIPs = ips.map((ip) => ({ ip }));
  } else if (input.previous?.podIP) {
    status.podIP = input.previous.podIP;
    status.podIPs = input.previous.podIPs ?? [{ ip: input.previous.podIP }];
  }
  status.conditions = podConditions(input, phase, init, app, sandboxReady);
  return status;
}
