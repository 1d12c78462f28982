import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isDeepStrictEqual, promisify } from 'node:util';
import { POD_UID_LABEL } from '../../src/agent/contracts.js';
import { sleep } from '../../src/client/informer.js';
import { criClient, type CriClient } from '../../src/runtime/cri/client.js';
import { cleanupNode } from '../../src/up/cleanup.js';
import { ROOT, eventually, startUp, type Kubectl, type UpProcess } from './harness.js';

const run = promisify(execFile);
const ATOLL = join(ROOT, 'bin', 'atoll');
const READY_TIMEOUT_MS = 120_000;
/** Shortened by flag so evictions happen within the test; the example values. */
const GRACE_SECONDS = 10;
const TOLERATION_SECONDS = 15;
/** How long the partition lasts before A's pods are checked: well past grace plus toleration. */
const PARTITION_HOLD_MS = 45_000;
/** How long a restarted agent runs offline before its containers are checked for restarts. */
const OFFLINE_RUN_MS = 15_000;
const IMAGE = 'atoll.local/busybox:latest';
const A = 'edge-1';
const B = 'edge-2';
const C = 'edge-3';
const GROUP_LABEL = 'e2e.atoll.dev/group';

type Json = Record<string, any>;

/**
 * Issue 6's acceptance on `atoll up --nodes 3`: node A (edge-1) is autonomous, B (edge-2) is not, C
 * (edge-3) stays connected. Both A and B lose their cloud link (`atoll net partition`): B's pods are
 * evicted and recreated on C; A's pods are never evicted and keep their containers, across a
 * `kill -9` of A's agent while offline; after a full stop of A (agent and runtime, as a reboot) A
 * starts its pods again from the cached specs, and A is Ready again once healed.
 */
describe('edge autonomy on atoll up --nodes 3', { timeout: 1_500_000 }, () => {
  let up: UpProcess;
  let dir: string;
  let k: Kubectl;
  let cri: CriClient | undefined;
  /** A's pods as the API saw them before the partition: name → uid and container IDs. */
  let aPods: Map<string, { uid: string; containers: string[] }>;

  const json = async (...args: string[]): Promise<Json> => JSON.parse(await k(...args, '-o', 'json')) as Json;
  const podsOf = async (selector: string): Promise<Json[]> => (await json('get', 'pods', '-l', selector)).items as Json[];
  const ready = (obj: Json) => obj.status?.conditions?.some((c: Json) => c.type === 'Ready' && c.status === 'True');
  const condition = (node: Json, type: string): Json | undefined => node.status?.conditions?.find((c: Json) => c.type === type);
  const net = (verb: 'partition' | 'heal', node: string) => run(process.execPath, [ATOLL, 'net', verb, node, '--data-dir', dir]);
  const upState = async (): Promise<Json> => JSON.parse(await readFile(join(dir, 'up.json'), 'utf8')) as Json;
  const agentLog = (node: string) => readFile(join(dir, 'nodes', node, 'agent.log'), 'utf8').catch(() => '');
  const containerIds = (pod: Json): string[] => (pod.status.containerStatuses ?? []).map((c: Json) => String(c.containerID).replace(/^\w+:\/\//, '')).sort();

  const servingCount = async (node: string) => (await agentLog(node)).split('\n').filter((l) => l.includes('is serving on')).length;

  /** Kills A's agent and waits until `up` has restarted it and it serves again (A still cut off). */
  async function restartAgentOfA(stopNode: () => Promise<void>): Promise<void> {
    const served = await servingCount(A);
    const pid = agentPidOf(await upState(), A);
    process.kill(pid, 'SIGKILL');
    await stopNode();
    await eventually(async () => agentPidOf(await upState(), A) !== pid, READY_TIMEOUT_MS, 'A\'s agent restarted by up');
    await eventually(async () => (await servingCount(A)) > served, READY_TIMEOUT_MS, 'the restarted agent to come up while A is still cut off');
  }

  /** Running containers of `uid` according to A's runtime itself, over its CRI socket. */
  async function runningContainers(uid: string): Promise<{ id: string; attempt: number }[]> {
    const { containers } = await cri!.ListContainers({ filter: { label_selector: { [POD_UID_LABEL]: uid } } });
    return containers.filter((c) => c.state === 'CONTAINER_RUNNING').map((c) => ({ id: c.id, attempt: c.metadata?.attempt ?? 0 }));
  }

  before(async () => {
    up = await startUp(3, ['--node-monitor-grace-period', String(GRACE_SECONDS), '--default-toleration-seconds', String(TOLERATION_SECONDS)]);
    ({ dir, k } = up);
    cri = criClient(join(dir, 'nodes', A, 'run', 'cri.sock'));
  });

  after(async () => {
    cri?.close();
    // Ctrl-C is `up`'s own cleanup path: agents, containers, mounts, links (cut or not) and netns go.
    await up?.cleanup();
  });

  it('an autonomous node reports a cloud-reachable Autonomous condition, and its pods get forever NoExecute tolerations', async () => {
    await k('annotate', 'node', A, 'node.atoll.dev/autonomy=true');
    await k('label', 'node', B, `${GROUP_LABEL}=b`);
    await k('create', 'configmap', 'settings', '--from-literal=mode=first');
    const deployment = (name: string, replicas: number, nodeSelector: Record<string, string>, withConfig: boolean) => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name },
      spec: {
        replicas,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: {
            nodeSelector,
            terminationGracePeriodSeconds: 1,
            containers: [
              {
                name: 'main',
                image: IMAGE,
                command: ['sleep', '36000'],
                ...(withConfig ? { volumeMounts: [{ name: 'settings', mountPath: '/etc/settings' }] } : {}),
              },
            ],
            ...(withConfig ? { volumes: [{ name: 'settings', configMap: { name: 'settings' } }] } : {}),
          },
        },
      },
    });
    await up.apply([deployment('on-a', 2, { 'kubernetes.io/hostname': A }, true), deployment('on-b', 2, { [GROUP_LABEL]: 'b' }, false)]);
    for (const app of ['on-a', 'on-b']) {
      await eventually(
        async () => {
          const pods = (await podsOf(`app=${app}`)).filter((p) => !p.metadata.deletionTimestamp);
          return pods.length === 2 && pods.every(ready);
        },
        READY_TIMEOUT_MS,
        `2 ready ${app} pods`,
      );
    }
    // The autonomy controller drops tolerationSeconds from A's pods' unreachable/not-ready tolerations.
    const forever = (pod: Json) =>
      ['node.kubernetes.io/unreachable', 'node.kubernetes.io/not-ready'].every((key) =>
        (pod.spec.tolerations ?? []).some((t: Json) => t.key === key && t.effect === 'NoExecute' && t.tolerationSeconds === undefined),
      );
    const onA = await eventually(async () => {
      const pods = await podsOf('app=on-a');
      return pods.every(forever) ? pods : undefined;
    }, READY_TIMEOUT_MS, 'forever tolerations on A\'s pods');
    for (const pod of await podsOf('app=on-b')) {
      assert.equal(pod.spec.nodeName, B);
      assert.ok(!forever(pod), `B's pod ${pod.metadata.name} must keep its ${TOLERATION_SECONDS} s tolerations`);
    }
    aPods = new Map(onA.map((p) => [p.metadata.name as string, { uid: p.metadata.uid as string, containers: containerIds(p) }]));
    for (const { uid, containers } of aPods.values()) assert.deepEqual((await runningContainers(uid)).map((c) => c.id).sort(), containers);
    const node = await eventually(async () => {
      const n = await json('get', 'node', A);
      return condition(n, 'Autonomous') ? n : undefined;
    }, READY_TIMEOUT_MS, 'the Autonomous condition on A');
    assert.deepEqual([condition(node, 'Autonomous')!.status, condition(node, 'Autonomous')!.reason], ['False', 'CloudReachable']);
  });

  it('partitioned past grace and toleration: B\'s pods are recreated on C, A\'s pods are never evicted', async () => {
    const bBefore = new Set((await podsOf('app=on-b')).map((p) => p.metadata.name as string));
    const cutAt = Date.now();
    await net('partition', A);
    await net('partition', B);
    // Only now may B's pods go to C: the replacements can land nowhere else.
    await k('label', 'node', C, `${GROUP_LABEL}=b`);

    const moved = await eventually(
      async () => {
        const pods = (await podsOf('app=on-b')).filter((p) => !p.metadata.deletionTimestamp && !bBefore.has(p.metadata.name));
        return pods.length === 2 && pods.every(ready) ? pods : undefined;
      },
      READY_TIMEOUT_MS + PARTITION_HOLD_MS,
      'B\'s pods recreated and ready elsewhere',
    );
    for (const pod of moved) assert.equal(pod.spec.nodeName, C);
    for (const pod of await podsOf('app=on-b')) {
      if (bBefore.has(pod.metadata.name)) assert.ok(pod.metadata.deletionTimestamp, `B's pod ${pod.metadata.name} was evicted`);
    }

    await sleep(Math.max(0, cutAt + PARTITION_HOLD_MS - Date.now()));
    const nodeA = await json('get', 'node', A);
    assert.notEqual(condition(nodeA, 'Ready')?.status, 'True', 'the cloud sees A as not ready while it is cut off');
    const onA = await podsOf('app=on-a');
    assert.deepEqual(onA.map((p) => p.metadata.name).sort(), [...aPods.keys()].sort(), 'A keeps the same pods');
    for (const pod of onA) {
      assert.equal(pod.metadata.deletionTimestamp, undefined, `A's pod ${pod.metadata.name} was never evicted`);
      assert.equal(pod.metadata.uid, aPods.get(pod.metadata.name)!.uid);
    }
    for (const { uid, containers } of aPods.values()) {
      const running = await runningContainers(uid);
      assert.deepEqual(running.map((c) => c.id).sort(), containers, 'A\'s containers run on with the same IDs');
      assert.ok(running.every((c) => c.attempt === 0), 'and were never restarted');
    }
  });

  it('offline, A reports itself Autonomous to its EdgeHub, and a kill -9 of its agent restarts nothing', async () => {
    const socket = join(dir, 'nodes', A, 'run', 'edgehub.sock');
    const cached = await eventually(async () => {
      const node = JSON.parse(await overSocket(socket, `/api/v1/nodes/${A}`, `atoll-agent/${A}`)) as Json;
      return condition(node, 'Autonomous')?.status === 'True' ? node : undefined;
    }, READY_TIMEOUT_MS, 'A\'s offline status write of Autonomous=True');
    assert.equal(condition(cached, 'Autonomous')!.reason, 'CloudUnreachable');

    await restartAgentOfA(async () => undefined);
    assert.match(await agentLog(A), /unreachable; running on the EdgeHub cache/);
    await sleep(OFFLINE_RUN_MS);
    for (const { uid, containers } of aPods.values()) {
      const running = await runningContainers(uid);
      assert.deepEqual(running.map((c) => c.id).sort(), containers, 'the restarted agent adopted A\'s containers');
      assert.ok(running.every((c) => c.attempt === 0), 'and restarted none');
      const read = await cri!.ExecSync({ container_id: running[0]!.id, cmd: ['cat', '/etc/settings/mode'], timeout: 10 });
      assert.equal(read.exit_code, 0);
      assert.equal(Buffer.from(read.stdout).toString(), 'first', 'the configMap volume still reads');
    }
    const health = JSON.parse(await overSocket(socket, '/healthz', 'e2e')) as Json;
    assert.equal(health.cloud.healthy, false);
  });

  it('after a full stop of A while offline (agent, containers and mounts gone, as a reboot), A starts its pods again from the cache', async () => {
    const { dataDir: nodeDir, netnsPath } = ((await upState()).nodes as Json[]).find((n) => n.name === A)!;
    await restartAgentOfA(async () => {
      // What a reboot takes: every process and mount of the node; its disk (certificates, runtime
      // records, EdgeHub cache) stays. An agent `up` restarts meanwhile is killed with the rest.
      const report = await cleanupNode(nodeDir, { netnsPath });
      assert.ok(report.containers >= aPods.size, `the stop killed A's containers (${JSON.stringify(report)})`);
    });
    for (const [name, before] of aPods) {
      const running = await eventually(
        async () => {
          const now = await runningContainers(before.uid);
          return now.length === before.containers.length ? now : undefined;
        },
        READY_TIMEOUT_MS,
        `pod ${name} running again on A`,
      );
      assert.ok(running.every((c) => !before.containers.includes(c.id)), 'its containers were started anew');
      const read = await cri!.ExecSync({ container_id: running[0]!.id, cmd: ['cat', '/etc/settings/mode'], timeout: 10 });
      assert.equal(Buffer.from(read.stdout).toString(), 'first', 'the configMap volume is served from the cache');
      before.containers = running.map((c) => c.id).sort();
    }
  });

  it('healed, A is Ready again with its pods Running and their statuses matching what A runs', async () => {
    await net('heal', A);
    const node = await eventually(
      async () => {
        const n = await json('get', 'node', A);
        return ready(n) && condition(n, 'Autonomous')?.status === 'False' ? n : undefined;
      },
      READY_TIMEOUT_MS,
      'A Ready and no longer autonomous',
    );
    assert.equal(condition(node, 'Autonomous')!.reason, 'CloudReachable');
    const onA = await eventually(
      async () => {
        const pods = await podsOf('app=on-a');
        const current = (p: Json) => p.status.phase === 'Running' && ready(p) && isDeepStrictEqual(containerIds(p), aPods.get(p.metadata.name)?.containers);
        return pods.length === aPods.size && pods.every(current) ? pods : undefined;
      },
      READY_TIMEOUT_MS,
      'A\'s pods Running and Ready in the API with the containers A runs',
    );
    for (const pod of onA) {
      const before = aPods.get(pod.metadata.name);
      assert.ok(before, `unexpected pod ${pod.metadata.name} on A`);
      assert.equal(pod.metadata.uid, before.uid);
      assert.deepEqual(containerIds(pod), before.containers);
      assert.deepEqual((await runningContainers(before.uid)).map((c) => c.id).sort(), before.containers, 'and A still runs exactly those');
    }
    const name = onA[0]!.metadata.name as string;
    assert.equal(await k('exec', name, '--', 'cat', '/etc/settings/mode'), 'first');
  });
});

function agentPidOf(state: Json, node: string): number {
  const entry = (state.nodes as Json[]).find((n) => n.name === node);
  assert.ok(entry?.pid, `up.json has no agent pid for ${node}`);
  return entry.pid as number;
}

/** A GET over a node's EdgeHub socket, as the node's own components send it. */
function overSocket(socketPath: string, path: string, userAgent: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path, headers: { 'User-Agent': userAgent, Accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString()) : reject(new Error(`HTTP ${res.statusCode}: ${Buffer.concat(chunks)}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

