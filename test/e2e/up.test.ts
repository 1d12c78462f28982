import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { eventually, freePort, startUp, type Kubectl, type UpProcess } from './harness.js';

const run = promisify(execFile);
const READY_TIMEOUT_MS = 120_000;

type Json = Record<string, any>;

/**
 * Issue 5's acceptance on the real thing: `atoll up --nodes 2` as its own process (control plane,
 * two agents in their own network namespaces, real runc containers), driven with the real kubectl.
 */
describe('atoll up --nodes 2', { timeout: 900_000 }, () => {
  let up: UpProcess;
  let dir: string;
  let k: Kubectl;

  const json = async (...args: string[]): Promise<Json> => JSON.parse(await k(...args, '-o', 'json')) as Json;
  const podsOf = async (selector: string): Promise<Json[]> => (await json('get', 'pods', '-l', selector)).items as Json[];
  const ready = (pod: Json) => pod.status?.conditions?.some((c: Json) => c.type === 'Ready' && c.status === 'True');

  before(async () => {
    up = await startUp(2);
    ({ dir, k } = up);
  });

  // A failed assertion must not leave the cluster running.
  after(() => up?.cleanup());

  it('runs a 3-replica busybox httpd Deployment spread over both nodes, and every replica becomes Ready', async () => {
    await up.apply([
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web' },
        spec: {
          replicas: 3,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: {
              containers: [
                {
                  name: 'httpd',
                  image: 'atoll.local/busybox:latest',
                  command: ['httpd', '-f', '-p', '8080', '-h', '/etc'],
                  ports: [{ containerPort: 8080 }],
                  readinessProbe: { httpGet: { path: '/hostname', port: 8080 }, periodSeconds: 2 },
                },
              ],
            },
          },
        },
      },
    ]);
    await k('expose', 'deployment', 'web', '--port=80', '--target-port=8080');
    const pods = await eventually(
      async () => {
        const items = (await podsOf('app=web')).filter((p) => !p.metadata.deletionTimestamp);
        return items.length === 3 && items.every(ready) ? items : undefined;
      },
      READY_TIMEOUT_MS,
      '3 ready web replicas',
    );
    assert.equal(new Set(pods.map((p) => p.spec.nodeName)).size, 2, 'replicas run on both nodes');
    for (const pod of pods) {
      assert.match(pod.status.podIP, /^10\.244\.\d+\.\d+$/);
      assert.match(pod.status.containerStatuses[0].containerID, /^\w+:\/\/[0-9a-f]+$/);
    }
  });

  it('a pod on one node reaches a pod on the other node at its IP', async () => {
    const pods = (await podsOf('app=web')).filter(ready);
    const a = pods.find((p) => p.spec.nodeName === 'edge-1')!;
    const b = pods.find((p) => p.spec.nodeName === 'edge-2')!;
    const body = await k('exec', a.metadata.name, '--', 'wget', '-qO-', `http://${b.status.podIP}:8080/hostname`);
    assert.equal(body.trim(), b.metadata.name);
  });

  it('kubectl logs, exec (with its exit code) and port-forward work through the API server', async () => {
    await k('run', 'talker', '--image=atoll.local/busybox:latest', '--restart=Never', '--', 'sh', '-c', 'for i in 1 2 3; do echo line $i; done; sleep 3600');
    await eventually(async () => (await k('logs', 'talker').catch(() => '')).includes('line 3'), READY_TIMEOUT_MS, 'talker logs');
    assert.equal(await k('logs', 'talker', '--tail=1'), 'line 3\n');
    assert.equal((await k('exec', 'talker', '--', 'echo', 'hi')).trim(), 'hi');
    const failed = await k.result('exec', 'talker', '--', 'sh', '-c', 'exit 3');
    assert.equal(failed.code, 3);

    const pod = (await podsOf('app=web')).find(ready)!;
    const local = await freePort();
    const forward = k.spawn('port-forward', `pod/${pod.metadata.name}`, `${local}:8080`);
    try {
      const body = await eventually(() => httpGet(local, '/hostname').catch(() => undefined), 30_000, 'port-forward to answer');
      assert.equal(body.trim(), pod.metadata.name);
    } finally {
      forward.kill('SIGTERM');
    }
  });

  it('rollout restart replaces every replica, and delete removes the Deployment and its pods', async () => {
    const before = new Set((await podsOf('app=web')).map((p) => p.metadata.name));
    await k('rollout', 'restart', 'deployment/web');
    await k('rollout', 'status', 'deployment/web', '--timeout=180s');
    await eventually(
      async () => {
        const now = (await podsOf('app=web')).filter((p) => !p.metadata.deletionTimestamp);
        return now.length === 3 && now.every((p) => !before.has(p.metadata.name) && ready(p));
      },
      READY_TIMEOUT_MS,
      'new replicas after rollout restart',
    );
    await k('delete', 'deployment', 'web', '--wait=true', '--timeout=120s');
    await eventually(async () => (await podsOf('app=web')).length === 0, READY_TIMEOUT_MS, 'web pods gone');
  });

  it('a failing liveness probe restarts the container, and a failing readiness probe drops the pod from its endpoints', async () => {
    await up.apply([
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'flaky', labels: { app: 'flaky' } },
        spec: {
          containers: [
            {
              name: 'main',
              image: 'atoll.local/busybox:latest',
              command: ['sh', '-c', 'touch /tmp/alive /tmp/ready; httpd -p 8080 -h /tmp; sleep 3600'],
              livenessProbe: { exec: { command: ['cat', '/tmp/alive'] }, periodSeconds: 2, failureThreshold: 2 },
              readinessProbe: { httpGet: { path: '/ready', port: 8080 }, periodSeconds: 2, failureThreshold: 1 },
            },
          ],
        },
      },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'flaky' }, spec: { selector: { app: 'flaky' }, ports: [{ port: 80, targetPort: 8080 }] } },
    ]);
    const addresses = async () => ((await json('get', 'endpoints', 'flaky')).subsets ?? []).flatMap((s: Json) => s.addresses ?? []);
    await eventually(async () => (await addresses()).length === 1, READY_TIMEOUT_MS, 'flaky in its endpoints');

    await k('exec', 'flaky', '--', 'rm', '/tmp/ready');
    await eventually(async () => (await addresses()).length === 0, READY_TIMEOUT_MS, 'flaky dropped from endpoints');

    await k('exec', 'flaky', '--', 'rm', '/tmp/alive');
    await eventually(async () => (await json('get', 'pod', 'flaky')).status.containerStatuses[0].restartCount >= 1, READY_TIMEOUT_MS, 'liveness restart');
    const events = await k('get', 'events', '--field-selector', 'involvedObject.name=flaky');
    assert.match(events, /Unhealthy/);
  });

  it('configMap and secret volumes, env from them and the downward API reach the container; volumes follow updates', async () => {
    await k('create', 'configmap', 'settings', '--from-literal=mode=first');
    await k('create', 'secret', 'generic', 'creds', '--from-literal=password=s3cret');
    await up.apply([
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'reader', labels: { app: 'reader' } },
        spec: {
          containers: [
            {
              name: 'main',
              image: 'atoll.local/busybox:latest',
              command: ['sleep', '3600'],
              env: [
                { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'settings', key: 'mode' } } },
                { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
              ],
              envFrom: [{ secretRef: { name: 'creds' } }],
              volumeMounts: [
                { name: 'settings', mountPath: '/etc/settings' },
                { name: 'creds', mountPath: '/etc/creds', readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: 'settings', configMap: { name: 'settings' } },
            { name: 'creds', secret: { secretName: 'creds' } },
          ],
        },
      },
    ]);
    await eventually(async () => ready(await json('get', 'pod', 'reader')), READY_TIMEOUT_MS, 'reader ready');
    const env = await k('exec', 'reader', '--', 'env');
    assert.match(env, /^MODE=first$/m);
    assert.match(env, /^POD_NAME=reader$/m);
    assert.match(env, /^password=s3cret$/m);
    assert.equal(await k('exec', 'reader', '--', 'cat', '/etc/settings/mode'), 'first');
    assert.equal(await k('exec', 'reader', '--', 'cat', '/etc/creds/password'), 's3cret');
    await k('patch', 'configmap', 'settings', '--type=merge', '-p', '{"data":{"mode":"second"}}');
    await eventually(async () => (await k('exec', 'reader', '--', 'cat', '/etc/settings/mode')) === 'second', READY_TIMEOUT_MS, 'the configMap update in the volume');
  });

  it('kill -9 of an agent leaves its containers running; the restarted agent adopts them with the same IDs', async () => {
    await eventually(async () => ready(await json('get', 'pod', 'talker')), READY_TIMEOUT_MS, 'talker ready');
    const node = (await json('get', 'pod', 'talker')).spec.nodeName as string;
    const ids = async () =>
      ((await json('get', 'pods', '--field-selector', `spec.nodeName=${node}`)).items as Json[])
        .flatMap((p) => (p.status.containerStatuses ?? []).map((c: Json) => `${p.metadata.name}/${c.name}=${c.containerID}`))
        .sort();
    const before = await ids();
    const state = JSON.parse(await readFile(join(dir, 'up.json'), 'utf8')) as Json;
    const pid = agentPid(state, node);
    process.kill(pid, 'SIGKILL');
    await eventually(async () => agentPid(JSON.parse(await readFile(join(dir, 'up.json'), 'utf8')) as Json, node) !== pid, READY_TIMEOUT_MS, 'agent restarted by up');
    await eventually(async () => (await k('exec', 'talker', '--', 'echo', 'back').catch(() => '')).trim() === 'back', READY_TIMEOUT_MS, 'exec after agent restart');
    assert.deepEqual(await ids(), before);
    assert.equal((await json('get', 'pod', 'talker')).status.containerStatuses[0].restartCount, 0);
  });

  it('Ctrl-C stops everything and leaves no namespace, link, mount or container process behind', async () => {
    await up.stop('SIGINT');
    assert.equal(up.child.exitCode, 0, up.output());
    const netns = (await run('ip', ['netns', 'list'])).stdout;
    assert.doesNotMatch(netns, /atoll-edge-/);
    const links = (await run('ip', ['-o', 'link'])).stdout;
    assert.doesNotMatch(links, /atl-edge-/);
    const mounts = await readFile('/proc/self/mountinfo', 'utf8');
    assert.ok(!mounts.includes(dir), `mounts left under ${dir}`);
    const procs = (await run('ps', ['-eo', 'args'])).stdout;
    assert.ok(!procs.split('\n').some((line) => line.includes(dir)), 'a process still refers to the data dir');
  });
});

function agentPid(state: Json, node: string): number {
  const entry = (state.nodes as Json[]).find((n) => n.name === node);
  assert.ok(entry?.pid, `up.json has no agent pid for ${node}`);
  return entry.pid as number;
}


function httpGet(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}
