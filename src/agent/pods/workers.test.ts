import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { access, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildTestImage } from '../../../test/support/images.js';
import { startNetnsRelay, type NetnsRelay } from '../../../test/support/netns-relay.js';
import { startTestRuntime, type TestRuntime } from '../../../test/support/node-runtime.js';
import { pushImage, startRegistry, TEST_PASSWORD, TEST_USER, type TestRegistry } from '../../../test/support/registry.js';
import { waitFor } from '../../../test/support/wait.js';
import type { KubeObject } from '../../api/types.js';
import { CONTAINER_NAME_LABEL, ContainerConfigError, POD_UID_LABEL, RESTART_COUNT_ANNOTATION, type CriMount, type NodeFacts, type PodVolumes } from '../contracts.js';
import { MemorySource } from '../volumes/testing.js';
import type { PodWorkerDeps, PodWorkersOptions } from './deps.js';
import { pullSecretsAuth } from './pull-secrets.js';
import type { Container, PodSpec } from './spec.js';
import type { ContainerStatus, PodStatus } from './status.js';
import { PodWorkers } from './workers.js';

const SUBNET = '10.199.0.0/24';
const WAIT_MS = 30_000;
const NODE: NodeFacts = { nodeName: 'node-1', hostIP: '10.199.0.1', allocatable: { cpu: '2', memory: '2Gi' } };
/** Short back-offs so crash loops and pull retries show within a test; the kubelet's are 10 s. */
const OPTIONS: PodWorkersOptions = { crashBackoff: { initialMs: 1_000, maxMs: 4_000 }, imageBackoff: { initialMs: 1_000, maxMs: 4_000 }, resyncPeriodMs: 2_000 };
/** Test hook: pods with this annotation get a ContainerConfigError from env. */
const MISSING_ENV_ANNOTATION = 'test/missing-configmap';
/** Test hook: pods with this annotation get a writable /state bind-mounted from a per-pod dir. */
const STATE_ANNOTATION = 'test/state';

interface Recorded {
  pod: string;
  type: string;
  reason: string;
  message: string;
}

describe('PodWorkers on a real runtime', () => {
  let rt: TestRuntime;
  let relay: NetnsRelay;
  let workers: PodWorkers;
  const statuses = new Map<string, PodStatus[]>();
  const events: Recorded[] = [];
  const terminated: string[] = [];
  const tornDown: string[] = [];
  let podsDir: string;
  let stateDir: string;
  let privateRegistry: TestRegistry | undefined;
  const source = new MemorySource();

  const volumes: PodVolumes = {
    setUp: async () => undefined,
    mountsFor: (pod): CriMount[] => (pod.metadata.annotations?.[STATE_ANNOTATION] ? [{ container_path: '/state', host_path: join(stateDir, pod.metadata.uid!) }] : []),
    refresh: async () => undefined,
    tearDown: async (uid) => {
      tornDown.push(uid);
    },
    list: async () => [],
  };

  function deps(): PodWorkerDeps {
    return {
      cri: rt.cri,
      node: NODE,
      volumes,
      env: async (pod, name) => {
        if (pod.metadata.annotations?.[MISSING_ENV_ANNOTATION]) throw new ContainerConfigError(`configmap "${pod.metadata.annotations[MISSING_ENV_ANNOTATION]}" not found`);
        return [{ key: 'CONTAINER', value: name }];
      },
      pullSecrets: (pod) => pullSecretsAuth(pod, source),
      runtimeHandler: async () => 'runc',
      podStatus: (pod, status) => {
        const list = statuses.get(pod.metadata.uid!) ?? [];
        list.push(structuredClone(status));
        statuses.set(pod.metadata.uid!, list);
      },
      podTerminated: async (pod) => {
        terminated.push(pod.metadata.uid!);
      },
      recorder: {
        record: async (obj, type, reason, message) => {
          assert.equal(obj.kind, 'Pod');
          events.push({ pod: obj.metadata.uid!, type, reason, message });
        },
      },
      logRoot: rt.logRoot,
      podsDir,
      log: () => undefined,
    };
  }

  before(async () => {
    rt = await startTestRuntime({ subnet: SUBNET });
    podsDir = join(rt.tmp, 'agent-pods');
    stateDir = join(rt.tmp, 'state');
    relay = await startNetnsRelay(rt.node.net, rt.tmp);
    workers = new PodWorkers(deps(), { ...OPTIONS, dial: relay.dial });
    await workers.adopt();
  });

  after(async () => {
    await workers?.stop();
    await relay?.close();
    await rt?.close();
    await privateRegistry?.stop();
  });

  function makePod(name: string, spec: Partial<PodSpec>, annotations: Record<string, string> = {}): KubeObject {
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default', uid: randomUUID(), annotations },
      spec: { nodeName: NODE.nodeName, terminationGracePeriodSeconds: 2, containers: [], ...spec },
      status: { phase: 'Pending', qosClass: 'BestEffort' },
    };
  }

  function box(name: string, script: string, extra: Partial<Container> = {}): Container {
    return { name, image: rt.image, command: ['sh', '-c', script], ...extra };
  }

  async function mkState(pod: KubeObject): Promise<void> {
    await mkdir(join(stateDir, pod.metadata.uid!), { recursive: true });
  }

  /** Waits until some status reported for the pod satisfies `check` (transient states count too). */
  function seen(pod: KubeObject, what: string, check: (s: PodStatus) => boolean): Promise<PodStatus> {
    return waitFor(`${pod.metadata.name}: ${what}`, async () => (statuses.get(pod.metadata.uid!) ?? []).find(check), WAIT_MS);
  }

  /** Waits until the newest status reported for the pod satisfies `check`. */
  function now(pod: KubeObject, what: string, check: (s: PodStatus) => boolean): Promise<PodStatus> {
    return waitFor(`${pod.metadata.name}: ${what}`, async () => {
      const last = statuses.get(pod.metadata.uid!)?.at(-1);
      return last && check(last) ? last : undefined;
    }, WAIT_MS);
  }

  function container(s: PodStatus, name: string, init = false): ContainerStatus {
    const c = (init ? s.initContainerStatuses : s.containerStatuses)?.find((x) => x.name === name);
    assert.ok(c, `status of ${name}`);
    return c;
  }

  const ready = (s: PodStatus) => s.conditions.some((c) => c.type === 'Ready' && c.status === 'True');
  const eventsOf = (pod: KubeObject) => events.filter((e) => e.pod === pod.metadata.uid);

  async function deletePod(pod: KubeObject, graceSeconds: number): Promise<void> {
    const deleting = structuredClone(pod);
    deleting.metadata.deletionTimestamp = new Date().toISOString();
    deleting.metadata.deletionGracePeriodSeconds = graceSeconds;
    workers.update(deleting);
    await waitFor(`${pod.metadata.name} terminated`, async () => terminated.includes(pod.metadata.uid!), WAIT_MS);
    workers.remove(deleting);
  }

  it('runs an init container to completion, then two containers, and reports the pod Ready', async () => {
    const pod = makePod('web', {
      initContainers: [box('init', 'echo init done')],
      containers: [
        box('a', 'exec sleep 1000', { lifecycle: { postStart: { exec: { command: ['touch', '/tmp/post-start'] } } } }),
        box('b', 'echo "$CONTAINER"; exec sleep 1000'),
      ],
    });
    workers.update(pod);
    const status = await now(pod, 'Ready', ready);
    assert.equal(status.phase, 'Running');
    assert.match(status.podIP ?? '', /^10\.199\.0\.\d+$/);
    assert.deepEqual(status.podIPs, [{ ip: status.podIP }]);
    assert.equal(status.hostIP, NODE.hostIP);
    const init = container(status, 'init', true);
    assert.equal(init.state.terminated?.exitCode, 0);
    assert.equal(init.state.terminated?.reason, 'Completed');
    assert.equal(init.ready, true);
    for (const name of ['a', 'b']) {
      const c = container(status, name);
      assert.ok(c.state.running, `${name} runs`);
      assert.equal(c.ready, true);
      assert.equal(c.started, true);
      assert.equal(c.restartCount, 0);
      assert.match(c.containerID ?? '', /^atoll:\/\/[0-9a-f]{64}$/);
      assert.match(c.imageID, /@sha256:[0-9a-f]{64}$/);
      assert.equal(c.image, rt.image);
    }
    assert.ok(status.conditions.find((c) => c.type === 'Initialized')?.status === 'True');
    const listed = await rt.cri.ListContainers({ filter: { label_selector: { [POD_UID_LABEL]: pod.metadata.uid! } } });
    assert.deepEqual(listed.containers.map((c) => c.labels[CONTAINER_NAME_LABEL]).sort(), ['a', 'b', 'init']);
    const a = container(status, 'a').containerID!.replace('atoll://', '');
    assert.equal((await rt.cri.ExecSync({ container_id: a, cmd: ['cat', '/tmp/post-start'], timeout: 5 })).exit_code, 0, 'postStart ran');
    const reasons = eventsOf(pod).map((e) => e.reason);
    for (const r of ['Pulled', 'Created', 'Started']) assert.ok(reasons.includes(r), `event ${r}`);
    await deletePod(pod, 2);
  });

  it('backs off a crashing container as CrashLoopBackOff with a growing delay', async () => {
    const pod = makePod('crash', { containers: [box('c', 'echo crashing; exit 3')] });
    workers.update(pod);
    const name = `crash_default(${pod.metadata.uid})`;
    const first = await seen(pod, 'back-off 1s', (s) => container(s, 'c').state.waiting?.message === `back-off 1s restarting failed container=c pod=${name}`);
    const c = container(first, 'c');
    assert.equal(c.state.waiting?.reason, 'CrashLoopBackOff');
    assert.equal(c.lastState.terminated?.exitCode, 3);
    assert.equal(c.lastState.terminated?.reason, 'Error');
    assert.equal(first.phase, 'Running');
    const second = await seen(pod, 'back-off 2s', (s) => container(s, 'c').state.waiting?.message === `back-off 2s restarting failed container=c pod=${name}`);
    assert.ok(container(second, 'c').restartCount > c.restartCount, 'restarts are counted');
    assert.ok(eventsOf(pod).some((e) => e.reason === 'BackOff' && e.message === `Back-off restarting failed container c in pod ${name}`));
    await deletePod(pod, 2);
  });

  it('completes OnFailure and Never pods as Succeeded and Failed, with exit codes and termination messages', async () => {
    const ok = makePod('done', { restartPolicy: 'OnFailure', containers: [box('c', 'echo finished > /dev/termination-log; exit 0')] });
    const bad = makePod('failed', {
      restartPolicy: 'Never',
      containers: [box('c', 'echo from the log; exit 4', { terminationMessagePolicy: 'FallbackToLogsOnError' })],
    });
    workers.update(ok);
    workers.update(bad);
    const succeeded = await now(ok, 'Succeeded', (s) => s.phase === 'Succeeded');
    assert.equal(container(succeeded, 'c').state.terminated?.exitCode, 0);
    assert.equal(container(succeeded, 'c').state.terminated?.reason, 'Completed');
    assert.equal(container(succeeded, 'c').state.terminated?.message, 'finished\n');
    const failed = await now(bad, 'Failed', (s) => s.phase === 'Failed');
    assert.equal(container(failed, 'c').state.terminated?.exitCode, 4);
    assert.equal(container(failed, 'c').state.terminated?.message, 'from the log');
    assert.equal(container(failed, 'c').restartCount, 0, 'Never does not restart');
    for (const pod of [ok, bad]) {
      // The sandbox stops, the exited container stays for logs.
      await waitFor('sandbox stopped', async () => {
        const { items } = await rt.cri.ListPodSandbox({ filter: { label_selector: { [POD_UID_LABEL]: pod.metadata.uid! } } });
        return items.length === 1 && items[0]!.state === 'SANDBOX_NOTREADY';
      });
      const { containers } = await rt.cri.ListContainers({ filter: { label_selector: { [POD_UID_LABEL]: pod.metadata.uid! } } });
      assert.deepEqual(containers.map((c) => c.state), ['CONTAINER_EXITED']);
    }
    await deletePod(ok, 2);
    await deletePod(bad, 2);
  });

  it('restarts a container whose liveness probe fails', async () => {
    const pod = makePod('live', {
      containers: [
        box('c', 'touch /tmp/healthy; exec sleep 1000', {
          livenessProbe: { exec: { command: ['cat', '/tmp/healthy'] }, periodSeconds: 1, failureThreshold: 1, timeoutSeconds: 5 },
        }),
      ],
    });
    workers.update(pod);
    const running = await now(pod, 'running', (s) => Boolean(container(s, 'c').state.running));
    const firstId = container(running, 'c').containerID!;
    await rt.cri.ExecSync({ container_id: firstId.replace('atoll://', ''), cmd: ['rm', '/tmp/healthy'], timeout: 5 });
    const restarted = await now(pod, 'restarted', (s) => container(s, 'c').restartCount === 1 && Boolean(container(s, 'c').state.running));
    assert.notEqual(container(restarted, 'c').containerID, firstId);
    assert.equal(container(restarted, 'c').lastState.terminated?.containerID, firstId);
    const evs = eventsOf(pod);
    assert.ok(evs.some((e) => e.reason === 'Unhealthy' && e.message.startsWith('Liveness probe failed:')), 'Unhealthy event');
    assert.ok(evs.some((e) => e.reason === 'Killing' && e.message === 'Container c failed liveness probe, will be restarted'), 'Killing event');
    await deletePod(pod, 2);
  });

  it('follows a readiness probe: not ready, ready, not ready again', async () => {
    const pod = makePod('ready', {
      containers: [box('c', 'exec sleep 1000', { readinessProbe: { exec: { command: ['cat', '/tmp/ready'] }, periodSeconds: 1, failureThreshold: 1, successThreshold: 1 } })],
    });
    workers.update(pod);
    const notReady = await now(pod, 'running, not ready', (s) => Boolean(container(s, 'c').state.running));
    assert.equal(container(notReady, 'c').ready, false);
    assert.equal(notReady.conditions.find((c) => c.type === 'ContainersReady')?.status, 'False');
    const id = container(notReady, 'c').containerID!.replace('atoll://', '');
    await rt.cri.ExecSync({ container_id: id, cmd: ['touch', '/tmp/ready'], timeout: 5 });
    const isReady = await now(pod, 'ready', ready);
    assert.equal(container(isReady, 'c').ready, true);
    await rt.cri.ExecSync({ container_id: id, cmd: ['rm', '/tmp/ready'], timeout: 5 });
    const again = await now(pod, 'unready again', (s) => !ready(s));
    assert.equal(container(again, 'c').restartCount, 0, 'readiness never restarts');
    await deletePod(pod, 2);
  });

  it('probes over the pod network: httpGet by named port, tcpSocket, and failures of both', async () => {
    const httpd = 'mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www';
    const good = makePod('http', {
      containers: [
        box('web', httpd, {
          ports: [{ name: 'http', containerPort: 8080 }],
          readinessProbe: { httpGet: { port: 'http', path: '/index.html', httpHeaders: [{ name: 'X-Probe', value: '1' }] }, periodSeconds: 1 },
          livenessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
        }),
      ],
    });
    const bad = makePod('http-bad', {
      containers: [
        box('web', httpd, { readinessProbe: { httpGet: { port: 8080, path: '/missing' }, periodSeconds: 1, failureThreshold: 1 } }),
        box('tcp', 'exec sleep 1000', { readinessProbe: { tcpSocket: { port: 9999 }, periodSeconds: 1, failureThreshold: 1 } }),
      ],
    });
    workers.update(good);
    workers.update(bad);
    const up = await now(good, 'ready', ready);
    assert.equal(container(up, 'web').restartCount, 0, 'the tcp liveness probe passes');
    await waitFor('probe failures', async () => {
      const msgs = eventsOf(bad).filter((e) => e.reason === 'Unhealthy').map((e) => e.message);
      return msgs.some((m) => m === 'Readiness probe failed: HTTP probe failed with statuscode: 404') && msgs.some((m) => /^Readiness probe failed: dial tcp .*:9999: connect: connection refused$/.test(m));
    }, WAIT_MS);
    const last = statuses.get(bad.metadata.uid!)!.at(-1)!;
    assert.equal(container(last, 'web').ready, false);
    assert.equal(container(last, 'tcp').ready, false);
    await deletePod(good, 2);
    await deletePod(bad, 2);
  });

  it('reports a missing image as ErrImagePull, then ImagePullBackOff, with the registry message', async () => {
    const missing = rt.image.replace('test/busybox:1', 'test/nothere:1');
    const pod = makePod('noimage', { containers: [{ name: 'c', image: missing }] });
    workers.update(pod);
    const pull = await seen(pod, 'ErrImagePull', (s) => container(s, 'c').state.waiting?.reason === 'ErrImagePull');
    assert.match(container(pull, 'c').state.waiting?.message ?? '', /nothere/);
    const backoff = await seen(pod, 'ImagePullBackOff', (s) => container(s, 'c').state.waiting?.reason === 'ImagePullBackOff');
    assert.match(container(backoff, 'c').state.waiting?.message ?? '', /^Back-off pulling image ".*nothere:1": ErrImagePull: .*nothere/);
    assert.equal(backoff.phase, 'Pending');
    const evs = eventsOf(pod);
    assert.ok(evs.some((e) => e.reason === 'Failed' && e.message.startsWith(`Failed to pull image "${missing}"`)));
    assert.ok(evs.some((e) => e.reason === 'BackOff' && e.message.startsWith(`Back-off pulling image "${missing}"`)));
    await deletePod(pod, 2);
  });

  it('pulls from a registry that wants credentials with the pod imagePullSecrets, and not without', async () => {
    privateRegistry = await startRegistry({ auth: 'basic' });
    // A config of its own, so the image is not the public one under another name.
    await pushImage(privateRegistry, 'private/busybox:1', await buildTestImage({ cmd: ['/bin/sleep', '1000'] }));
    const image = `${privateRegistry.host}/private/busybox:1`;
    source.putSecret('default', 'regcred', {
      '.dockerconfigjson': JSON.stringify({ auths: { [`http://${privateRegistry.host}/`]: { auth: Buffer.from(`${TEST_USER}:${TEST_PASSWORD}`).toString('base64') } } }),
    });
    const anonymous = makePod('anonymous', { containers: [{ name: 'c', image, command: ['sleep', '1000'] }] });
    workers.update(anonymous);
    const refused = await seen(anonymous, 'ErrImagePull', (s) => container(s, 'c').state.waiting?.reason === 'ErrImagePull');
    assert.match(container(refused, 'c').state.waiting?.message ?? '', /private\/busybox/);
    await deletePod(anonymous, 2);
    const authorized = makePod('authorized', { imagePullSecrets: [{ name: 'regcred' }], containers: [{ name: 'c', image, command: ['sleep', '1000'] }] });
    workers.update(authorized);
    const running = await now(authorized, 'Ready', ready);
    assert.match(container(running, 'c').imageID, new RegExp(`^${privateRegistry.host.replace(/\./g, '\\.')}/private/busybox@sha256:`));
    assert.ok(eventsOf(authorized).some((e) => e.reason === 'Pulled' && e.message.startsWith(`Successfully pulled image "${image}" in `)));
    await deletePod(authorized, 2);
  });

  it('reports an unresolvable environment as CreateContainerConfigError', async () => {
    const pod = makePod('noconfig', { containers: [box('c', 'exec sleep 1000')] }, { [MISSING_ENV_ANNOTATION]: 'settings' });
    workers.update(pod);
    const s = await seen(pod, 'CreateContainerConfigError', (x) => container(x, 'c').state.waiting?.reason === 'CreateContainerConfigError');
    assert.equal(container(s, 'c').state.waiting?.message, 'configmap "settings" not found');
    assert.equal(s.phase, 'Pending');
    assert.ok(eventsOf(pod).some((e) => e.reason === 'Failed' && e.message === 'Error: configmap "settings" not found'));
    await deletePod(pod, 2);
  });

  it('deletes a pod gracefully: preStop runs, SIGTERM ends a willing container, SIGKILL one that ignores it', async () => {
    const pod = makePod('bye', {
      terminationGracePeriodSeconds: 30,
      containers: [
        box('polite', 'trap "exit 0" TERM; while true; do sleep 0.1; done', {
          lifecycle: { preStop: { exec: { command: ['sh', '-c', 'echo prestop ran > /dev/termination-log'] } } },
        }),
        box('stubborn', 'trap "" TERM; while true; do sleep 0.1; done'),
      ],
    });
    workers.update(pod);
    await now(pod, 'Ready', ready);
    await deletePod(pod, 3);
    const final = statuses.get(pod.metadata.uid!)!.at(-1)!;
    const polite = container(final, 'polite').state.terminated;
    assert.equal(polite?.exitCode, 0, 'SIGTERM was delivered');
    assert.equal(polite?.message, 'prestop ran\n', 'preStop ran before the stop');
    assert.equal(container(final, 'stubborn').state.terminated?.exitCode, 137, 'SIGKILL after the grace period');
    assert.equal(final.phase, 'Failed');
    assert.ok(eventsOf(pod).some((e) => e.reason === 'Killing' && e.message === 'Stopping container polite'));
    const { items } = await rt.cri.ListPodSandbox({ filter: { label_selector: { [POD_UID_LABEL]: pod.metadata.uid! } } });
    assert.deepEqual(items, [], 'the sandbox is removed');
    assert.ok(tornDown.includes(pod.metadata.uid!), 'volumes torn down');
    await assert.rejects(access(join(rt.logRoot, `default_bye_${pod.metadata.uid}`)), 'log directory removed');
    await assert.rejects(access(join(podsDir, pod.metadata.uid!)), 'pod files removed');
  });

  it('lets a restarted agent adopt running containers without restarting them, keeping restart counts', async () => {
    const pod = makePod(
      'adopt',
      { containers: [box('once', 'if [ -f /state/ran ]; then exec sleep 1000; fi; touch /state/ran; exit 1'), box('steady', 'exec sleep 1000')] },
      { [STATE_ANNOTATION]: 'yes' },
    );
    const orphan = makePod('orphan', { containers: [box('c', 'exec sleep 1000')] });
    await mkState(pod);
    workers.update(pod);
    workers.update(orphan);
    await now(orphan, 'Ready', ready);
    const before = await now(pod, 'Ready after one restart', (s) => ready(s) && container(s, 'once').restartCount === 1);
    const ids = new Map(before.containerStatuses.map((c) => [c.name, c.containerID]));
    const listedBefore = (await rt.cri.ListContainers({ filter: { label_selector: { [POD_UID_LABEL]: pod.metadata.uid! } } })).containers;
    await workers.stop();

    statuses.delete(pod.metadata.uid!);
    const createdBefore = eventsOf(pod).filter((e) => e.reason === 'Created').length;
    workers = new PodWorkers(deps(), { ...OPTIONS, dial: relay.dial });
    const adopted = await workers.adopt();
    for (const p of [pod, orphan]) assert.ok(adopted.includes(p.metadata.uid!), `${p.metadata.name} adopted`);
    workers.update(pod);
    // The orphan's object is gone from the API while no agent ran: nothing claims it.
    await workers.removeOrphans();
    const orphaned = await rt.cri.ListPodSandbox({ filter: { label_selector: { [POD_UID_LABEL]: orphan.metadata.uid! } } });
    assert.deepEqual(orphaned.items, [], 'the orphan is removed');
    assert.ok(tornDown.includes(orphan.metadata.uid!));
    const after = await now(pod, 'Ready again', ready);
    for (const c of after.containerStatuses) assert.equal(c.containerID, ids.get(c.name), `${c.name} kept its container`);
    assert.equal(container(after, 'once').restartCount, 1);
    assert.equal(container(after, 'steady').restartCount, 0);
    await workers.idle();
    const listedAfter = (await rt.cri.ListContainers({ filter: { label_selector: { [POD_UID_LABEL]: pod.metadata.uid! } } })).containers;
    assert.deepEqual(listedAfter.map((c) => c.id).sort(), listedBefore.map((c) => c.id).sort(), 'no container was created');
    assert.equal(eventsOf(pod).filter((e) => e.reason === 'Created').length, createdBefore);
    assert.deepEqual(
      listedAfter.filter((c) => c.state === 'CONTAINER_RUNNING').map((c) => c.annotations[RESTART_COUNT_ANNOTATION]).sort(),
      ['0', '1'],
    );
    await deletePod(pod, 2);
  });
});
