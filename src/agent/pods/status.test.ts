import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject } from '../../api/types.js';
import type { NodeFacts } from '../contracts.js';
import type { ObservedContainer, ObservedPod, ObservedSandbox } from './observed.js';
import type { Container, PodSpec } from './spec.js';
import { apiTime, computePodStatus, type ContainerStatus, type PodStatus, type ProbeState, type StartFailure, type StatusInput } from './status.js';

const NODE: NodeFacts = { nodeName: 'n1', hostIP: '192.168.5.2', allocatable: { cpu: '2', memory: '4Gi' } };
const NOW = new Date('2025-03-01T10:00:00.500Z');
const T0 = Date.parse('2025-03-01T09:00:00Z');

function pod(spec: Partial<PodSpec>, status?: object): KubeObject {
  return {
    metadata: { name: 'p', namespace: 'ns', uid: 'u1' },
    spec: { containers: [{ name: 'a', image: 'img:1' }], ...spec },
    ...(status ? { status } : {}),
  };
}

function sandbox(extra: Partial<ObservedSandbox> = {}): ObservedSandbox {
  return { id: 'sb1', attempt: 0, createdAt: T0, ready: true, ip: '10.1.0.5', additionalIps: [], ...extra };
}

let seq = 0;
function ctr(name: string, extra: Partial<ObservedContainer> = {}): ObservedContainer {
  seq++;
  return {
    id: `c${seq}`,
    name,
    sandboxId: 'sb1',
    init: false,
    restartCount: 0,
    hash: '',
    graceSeconds: 30,
    state: 'running',
    createdAt: T0 + seq * 1000,
    startedAt: T0 + seq * 1000,
    finishedAt: 0,
    exitCode: 0,
    reason: '',
    message: '',
    imageRef: `reg/img@sha256:${'a'.repeat(64)}`,
    logPath: `/logs/${name}/0.log`,
    ...extra,
  };
}

function exited(name: string, exitCode: number, extra: Partial<ObservedContainer> = {}): ObservedContainer {
  return ctr(name, { state: 'exited', exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', finishedAt: T0 + 5000, ...extra });
}

function observed(containers: ObservedContainer[], sandboxes: ObservedSandbox[] = [sandbox()]): ObservedPod {
  return {
    uid: 'u1',
    name: 'p',
    namespace: 'ns',
    sandboxes,
    containers: [...containers].sort((a, b) => b.createdAt - a.createdAt),
  };
}

function compute(p: KubeObject, o: ObservedPod, extra: Partial<StatusInput> = {}): PodStatus {
  return computePodStatus({
    pod: p,
    observed: o,
    node: NODE,
    runtimeName: 'atoll',
    failures: new Map<string, StartFailure>(),
    probes: new Map<string, ProbeState>(),
    terminal: false,
    now: NOW,
    ...extra,
  });
}

function cond(s: PodStatus, type: string) {
  const c = s.conditions.find((x) => x.type === type);
  assert.ok(c, `condition ${type}`);
  return c;
}

function named(s: PodStatus, name: string, init = false): ContainerStatus {
  const c = (init ? s.initContainerStatuses : s.containerStatuses)?.find((x) => x.name === name);
  assert.ok(c, `status of ${name}`);
  return c;
}

/** What python-kubernetes' models refuse to deserialize without. */
function assertClientRequiredFields(s: PodStatus): void {
  for (const c of [...s.containerStatuses, ...(s.initContainerStatuses ?? [])]) {
    for (const field of ['name', 'image', 'imageID', 'ready', 'restartCount'] as const) {
      assert.notEqual(c[field], undefined, `containerStatuses[${c.name}].${field}`);
      assert.notEqual(c[field], null, `containerStatuses[${c.name}].${field}`);
    }
    assert.equal(typeof c.ready, 'boolean');
    assert.equal(typeof c.started, 'boolean');
    assert.equal(typeof c.restartCount, 'number');
    for (const state of [c.state, c.lastState]) {
      assert.ok(Object.keys(state).length <= 1, 'at most one state');
      if (state.terminated) assert.equal(typeof state.terminated.exitCode, 'number', 'terminated.exitCode');
    }
    assert.equal(Object.keys(c.state).length, 1, `${c.name} has a state`);
  }
  for (const c of s.conditions) {
    assert.ok(c.type && c.status, 'condition type and status');
    assert.ok(['True', 'False', 'Unknown'].includes(c.status));
    assert.match(c.lastTransitionTime ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  }
  for (const ip of [...(s.podIPs ?? []), ...s.hostIPs]) assert.ok(ip.ip, 'ip');
  assert.ok(s.phase && s.qosClass && s.startTime && s.hostIP);
}

describe('computePodStatus', () => {
  it('reports a pod with nothing running yet as Pending, ContainerCreating, every required field present', () => {
    const s = compute(pod({ containers: [{ name: 'a', image: 'img:1' }, { name: 'b', image: 'img:2' }] }), observed([], []));
    assertClientRequiredFields(s);
    assert.equal(s.phase, 'Pending');
    assert.equal(s.qosClass, 'BestEffort');
    assert.equal(s.hostIP, NODE.hostIP);
    assert.deepEqual(s.hostIPs, [{ ip: NODE.hostIP }]);
    assert.equal(s.podIP, undefined);
    assert.equal(s.startTime, '2025-03-01T10:00:00Z');
    assert.equal(s.initContainerStatuses, undefined);
    assert.deepEqual(named(s, 'a'), {
      name: 'a',
      state: { waiting: { reason: 'ContainerCreating' } },
      lastState: {},
      ready: false,
      restartCount: 0,
      image: 'img:1',
      imageID: '',
      started: false,
    });
    assert.deepEqual(
      s.conditions.map((c) => [c.type, c.status, c.reason ?? '']),
      [
        ['PodReadyToStartContainers', 'False', ''],
        ['Initialized', 'True', ''],
        ['Ready', 'False', 'ContainersNotReady'],
        ['ContainersReady', 'False', 'ContainersNotReady'],
        ['PodScheduled', 'True', ''],
      ],
    );
    assert.equal(cond(s, 'ContainersReady').message, 'containers with unready status: [a b]');
    assert.equal(cond(s, 'Ready').message, 'containers with unready status: [a b]');
    assert.equal(cond(s, 'Ready').lastProbeTime, null);
  });

  it('reports running ready containers as Running and Ready with IDs, IPs and restart counts', () => {
    const a = ctr('a', { restartCount: 2 });
    const s = compute(pod({}), observed([a], [sandbox({ additionalIps: ['fd00::5'] })]));
    assertClientRequiredFields(s);
    assert.equal(s.phase, 'Running');
    assert.equal(s.podIP, '10.1.0.5');
    assert.deepEqual(s.podIPs, [{ ip: '10.1.0.5' }, { ip: 'fd00::5' }]);
    const st = named(s, 'a');
    assert.deepEqual(st.state, { running: { startedAt: apiTime(a.startedAt) } });
    assert.equal(st.containerID, `atoll://${a.id}`);
    assert.equal(st.imageID, a.imageRef);
    assert.equal(st.image, 'img:1');
    assert.equal(st.restartCount, 2);
    assert.equal(st.ready, true);
    assert.equal(st.started, true);
    for (const type of ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled']) assert.equal(cond(s, type).status, 'True', type);
  });

  it('shows the previous instance as lastState', () => {
    const old = exited('a', 2, { createdAt: T0, message: 'bye' });
    const now = ctr('a', { restartCount: 1 });
    const st = named(compute(pod({}), observed([old, now])), 'a');
    assert.deepEqual(st.lastState, {
      terminated: { exitCode: 2, reason: 'Error', message: 'bye', startedAt: apiTime(old.startedAt), finishedAt: apiTime(old.finishedAt), containerID: `atoll://${old.id}` },
    });
    assert.ok(st.state.running);
  });

  it('waits on init containers in order: Pending, Initialized False, PodInitializing', () => {
    const spec = { initContainers: [{ name: 'i1', image: 'img:1' }, { name: 'i2', image: 'img:1' }] as Container[] };
    const s = compute(pod(spec), observed([exited('i1', 0, { init: true }), ctr('i2', { init: true })]));
    assertClientRequiredFields(s);
    assert.equal(s.phase, 'Pending');
    assert.equal(cond(s, 'Initialized').status, 'False');
    assert.equal(cond(s, 'Initialized').reason, 'ContainersNotInitialized');
    assert.equal(cond(s, 'Initialized').message, 'containers with incomplete status: [i2]');
    assert.equal(named(s, 'i1', true).ready, true);
    assert.ok(named(s, 'i1', true).state.terminated);
    assert.equal(named(s, 'i2', true).started, true);
    assert.deepEqual(named(s, 'a').state, { waiting: { reason: 'PodInitializing' } });
  });

  it('is Initialized once every init container succeeded', () => {
    const spec = { initContainers: [{ name: 'i1', image: 'img:1' }] as Container[] };
    const s = compute(pod(spec), observed([exited('i1', 0, { init: true }), ctr('a')]));
    assert.equal(cond(s, 'Initialized').status, 'True');
    assert.equal(s.phase, 'Running');
  });

  it('fails a Never pod whose init container failed', () => {
    const spec = { restartPolicy: 'Never' as const, initContainers: [{ name: 'i1', image: 'img:1' }] as Container[] };
    const s = compute(pod(spec), observed([exited('i1', 3, { init: true })]));
    assert.equal(s.phase, 'Failed');
    assert.equal(named(s, 'i1', true).state.terminated?.exitCode, 3);
  });

  it('keeps an Always pod with a crash-looping init container Pending, waiting CrashLoopBackOff', () => {
    const spec = { initContainers: [{ name: 'i1', image: 'img:1' }] as Container[] };
    const failures = new Map([['i1', { reason: 'CrashLoopBackOff', message: 'back-off 10s restarting failed container=i1 pod=p_ns(u1)' }]]);
    const s = compute(pod(spec), observed([exited('i1', 1, { init: true })]), { failures });
    assert.equal(s.phase, 'Pending');
    const i1 = named(s, 'i1', true);
    assert.equal(i1.state.waiting?.reason, 'CrashLoopBackOff');
    assert.equal(i1.lastState.terminated?.exitCode, 1);
  });

  it('shows a crash-looping container as waiting CrashLoopBackOff with its last termination, pod Running', () => {
    const failures = new Map([['a', { reason: 'CrashLoopBackOff', message: 'back-off 20s restarting failed container=a pod=p_ns(u1)' }]]);
    const s = compute(pod({}), observed([exited('a', 1, { restartCount: 1 })]), { failures });
    assertClientRequiredFields(s);
    assert.equal(s.phase, 'Running');
    const a = named(s, 'a');
    assert.deepEqual(a.state, { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 20s restarting failed container=a pod=p_ns(u1)' } });
    assert.equal(a.lastState.terminated?.reason, 'Error');
    assert.equal(a.restartCount, 1);
    assert.equal(a.ready, false);
    assert.equal(cond(s, 'Ready').status, 'False');
  });

  it('completes an OnFailure pod whose containers exited 0 as Succeeded', () => {
    const s = compute(pod({ restartPolicy: 'OnFailure' }), observed([exited('a', 0)]));
    assert.equal(s.phase, 'Succeeded');
    assert.equal(cond(s, 'ContainersReady').reason, 'PodCompleted');
    assert.equal(cond(s, 'Ready').reason, 'PodCompleted');
    assert.equal(cond(s, 'Initialized').reason, 'PodCompleted');
    assert.deepEqual(named(s, 'a').state.terminated?.reason, 'Completed');
  });

  it('keeps an OnFailure pod with a failed container Running (it restarts) and fails a Never one', () => {
    assert.equal(compute(pod({ restartPolicy: 'OnFailure' }), observed([exited('a', 1)])).phase, 'Running');
    const never = compute(pod({ restartPolicy: 'Never' }), observed([exited('a', 1)]));
    assert.equal(never.phase, 'Failed');
    assert.equal(named(never, 'a').state.terminated?.exitCode, 1);
  });

  it('keeps a Never pod Running while one container still runs', () => {
    const spec = { restartPolicy: 'Never' as const, containers: [{ name: 'a', image: 'i' }, { name: 'b', image: 'i' }] };
    assert.equal(compute(pod(spec), observed([exited('a', 1), ctr('b')])).phase, 'Running');
  });

  it('reports start failures as waiting reasons: ErrImagePull, ImagePullBackOff, CreateContainerConfigError', () => {
    for (const reason of ['ErrImagePull', 'ImagePullBackOff', 'CreateContainerConfigError']) {
      const failures = new Map([['a', { reason, message: `why ${reason}` }]]);
      const s = compute(pod({}), observed([]), { failures });
      assertClientRequiredFields(s);
      assert.equal(s.phase, 'Pending');
      assert.deepEqual(named(s, 'a').state, { waiting: { reason, message: `why ${reason}` } });
    }
  });

  it('ignores a stale failure of a container that runs now', () => {
    const failures = new Map([['a', { reason: 'ErrImagePull', message: 'old' }]]);
    assert.ok(named(compute(pod({}), observed([ctr('a')]), { failures }), 'a').state.running);
  });

  it('takes ready and started from the probes', () => {
    const spec = { containers: [{ name: 'a', image: 'i', readinessProbe: { exec: { command: ['true'] } }, startupProbe: { exec: { command: ['true'] } } }] };
    const a = ctr('a');
    const before = compute(pod(spec), observed([a]));
    assert.equal(named(before, 'a').started, false, 'a startup probe that has not passed');
    assert.equal(named(before, 'a').ready, false);
    const notReady = compute(pod(spec), observed([a]), { probes: new Map([[a.id, { started: true, ready: false }]]) });
    assert.equal(named(notReady, 'a').started, true);
    assert.equal(named(notReady, 'a').ready, false);
    assert.equal(cond(notReady, 'ContainersReady').status, 'False');
    const ready = compute(pod(spec), observed([a]), { probes: new Map([[a.id, { started: true, ready: true }]]) });
    assert.equal(named(ready, 'a').ready, true);
    assert.equal(cond(ready, 'Ready').status, 'True');
  });

  it('keeps lastTransitionTime while a condition holds and moves it when it flips', () => {
    const first = compute(pod({}), observed([ctr('a')]));
    const earlier = { ...first, conditions: first.conditions.map((c) => ({ ...c, lastTransitionTime: '2025-01-01T00:00:00Z' })) };
    const same = compute(pod({}), observed([ctr('a')]), { previous: earlier, now: new Date('2025-03-01T11:00:00Z') });
    assert.ok(same.conditions.every((c) => c.lastTransitionTime === '2025-01-01T00:00:00Z'));
    assert.equal(same.startTime, earlier.startTime);
    const flipped = compute(pod({}), observed([exited('a', 1)]), { previous: earlier, now: new Date('2025-03-01T11:00:00Z') });
    assert.equal(cond(flipped, 'Ready').lastTransitionTime, '2025-03-01T11:00:00Z');
    assert.equal(cond(flipped, 'PodScheduled').lastTransitionTime, '2025-01-01T00:00:00Z');
  });

  it('never leaves Succeeded or Failed once reached', () => {
    const s = compute(pod({}, { phase: 'Failed' }), observed([ctr('a')]));
    assert.equal(s.phase, 'Failed');
    assert.equal(compute(pod({}), observed([ctr('a')]), { previous: { phase: 'Succeeded' } }).phase, 'Succeeded');
  });

  it('ends a deleted pod by its containers exit codes, whatever its restartPolicy', () => {
    assert.equal(compute(pod({}), observed([exited('a', 143)]), { terminal: true }).phase, 'Failed');
    assert.equal(compute(pod({}), observed([exited('a', 0)]), { terminal: true }).phase, 'Succeeded');
    const failures = new Map([['a', { reason: 'CrashLoopBackOff', message: 'x' }]]);
    assert.ok(named(compute(pod({}), observed([exited('a', 1)]), { terminal: true, failures }), 'a').state.terminated, 'no waiting once terminal');
  });

  it('carries the runtime reason and termination message, and reports lost containers as ContainerStatusUnknown', () => {
    const oom = named(compute(pod({}), observed([exited('a', 137, { reason: 'OOMKilled', message: 'out of memory' })])), 'a');
    assert.equal(oom.state.terminated?.reason, 'OOMKilled');
    assert.equal(oom.state.terminated?.message, 'out of memory');
    const lost = named(compute(pod({}), observed([ctr('a', { state: 'unknown' })])), 'a');
    assert.equal(lost.state.terminated?.reason, 'ContainerStatusUnknown');
    assert.equal(lost.state.terminated?.exitCode, 137);
  });

  it('gates Ready on the pod readiness gates', () => {
    const spec = { readinessGates: [{ conditionType: 'example.com/lb' }] };
    const missing = compute(pod(spec), observed([ctr('a')]));
    assert.equal(cond(missing, 'Ready').status, 'False');
    assert.equal(cond(missing, 'Ready').reason, 'ReadinessGatesNotReady');
    assert.equal(cond(missing, 'ContainersReady').status, 'True');
    const gateTrue = { conditions: [{ type: 'example.com/lb', status: 'True', lastProbeTime: null, lastTransitionTime: '2025-01-01T00:00:00Z' }] };
    const passed = compute(pod(spec, gateTrue), observed([ctr('a')]));
    assert.equal(cond(passed, 'Ready').status, 'True');
    assert.deepEqual(cond(passed, 'example.com/lb'), gateTrue.conditions[0], 'conditions others own are carried over');
  });

  it('uses the node IP for host-network pods and keeps the last pod IP while the sandbox is down', () => {
    const host = compute(pod({ hostNetwork: true }), observed([ctr('a')], [sandbox({ ip: '' })]));
    assert.equal(host.podIP, NODE.hostIP);
    assert.equal(cond(host, 'PodReadyToStartContainers').status, 'True');
    const down = compute(pod({}), observed([exited('a', 137)], [sandbox({ ready: false, ip: '' })]), { previous: { podIP: '10.1.0.5', podIPs: [{ ip: '10.1.0.5' }] } });
    assert.equal(down.podIP, '10.1.0.5');
    assert.equal(cond(down, 'PodReadyToStartContainers').status, 'False');
  });

  it('takes qosClass from the API object, or computes it', () => {
    assert.equal(compute(pod({}, { qosClass: 'Burstable' }), observed([])).qosClass, 'Burstable');
    const guaranteed = { containers: [{ name: 'a', image: 'i', resources: { limits: { cpu: '1', memory: '1Gi' } } }] };
    assert.equal(compute(pod(guaranteed), observed([])).qosClass, 'Guaranteed');
  });
});
