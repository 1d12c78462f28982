import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { ROOT, eventually, kubectl, startServer, type Kubectl, type ServerProcess } from './harness.js';

interface Rs {
  metadata: { name: string; annotations?: Record<string, string>; ownerReferences?: { kind: string }[] };
  spec: { replicas: number; template: { spec: { containers: { image: string }[] } } };
}

/**
 * `atoll server` with its in-process controllers and scheduler, driven by the real kubectl and
 * client-node. No node runs here, so pods stay Pending: what is checked is the controllers' work.
 */
describe('control plane: workloads and garbage collection through real clients', () => {
  let server: ServerProcess;
  let k: Kubectl;
  let apps: AppsV1Api;

  before(async () => {
    server = await startServer();
    k = await kubectl(server.kubeconfig);
    const kc = new KubeConfig();
    kc.loadFromFile(server.kubeconfig);
    apps = kc.makeApiClient(AppsV1Api);
  });
  after(async () => {
    await k?.cleanup();
    await server?.stop();
  });

  const replicaSets = async (app: string) =>
    (JSON.parse(await k('get', 'rs', '-l', `app=${app}`, '-o', 'json')) as { items: Rs[] }).items;

  it('rolls a Deployment forward with client-node and back with kubectl rollout undo', async () => {
    await apps.createNamespacedDeployment({
      namespace: 'default',
      body: {
        metadata: { name: 'roll', labels: { app: 'roll' } },
        spec: {
          replicas: 4,
          selector: { matchLabels: { app: 'roll' } },
          template: { metadata: { labels: { app: 'roll' } }, spec: { containers: [{ name: 'c', image: 'busybox:1' }] } },
        },
      },
    });
    await eventually(async () => (await k('get', 'pods', '-l', 'app=roll', '-o', 'name')).trim().split('\n').length === 4, 20_000, '4 pods');
    await apps.patchNamespacedDeployment(
      { name: 'roll', namespace: 'default', body: { spec: { template: { spec: { containers: [{ name: 'c', image: 'busybox:2' }] } } } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    const second = await eventually(async () => (await replicaSets('roll')).find((rs) => rs.spec.template.spec.containers[0]!.image === 'busybox:2'), 20_000, 'the new ReplicaSet');
    assert.equal(second.metadata.annotations?.['deployment.kubernetes.io/revision'], '2');
    // No pod becomes ready without a node, so the rollout stops where maxUnavailable allows.
    const old = (await replicaSets('roll')).find((rs) => rs.spec.template.spec.containers[0]!.image === 'busybox:1')!;
    assert.ok(old.spec.replicas >= 3, `old ReplicaSet keeps at least 3 of 4 (maxUnavailable 25%), has ${old.spec.replicas}`);

    assert.match(await k('rollout', 'undo', 'deployment/roll'), /rolled back/);
    await eventually(async () => (await k('get', 'deploy', 'roll', '-o', 'jsonpath={.spec.template.spec.containers[0].image}')) === 'busybox:1', 20_000, 'the template rolled back');
    const back = await eventually(async () => {
      const rs = (await replicaSets('roll')).find((r) => r.spec.template.spec.containers[0]!.image === 'busybox:1');
      return rs?.metadata.annotations?.['deployment.kubernetes.io/revision'] === '3' && rs;
    }, 20_000, 'the first ReplicaSet at revision 3');
    assert.equal(back.metadata.name, old.metadata.name, 'rollback reuses the first ReplicaSet');
    assert.equal((await replicaSets('roll')).length, 2);

    assert.match(await k('scale', 'deployment/roll', '--replicas=2'), /scaled/);
    await eventually(async () => (await k('get', 'deploy', 'roll', '-o', 'jsonpath={.spec.replicas}')) === '2', 20_000, 'scaled');
  });

  for (const [cascade, expect] of [
    ['background', 'dependents go after the owner'],
    ['foreground', 'the owner waits for its dependents'],
    ['orphan', 'dependents stay without an owner'],
  ] as const) {
    it(`deletes a Deployment with --cascade=${cascade}: ${expect}`, async () => {
      const app = `gc-${cascade}`;
      await k('create', 'deployment', app, '--image=busybox', '--replicas=2');
      await eventually(async () => (await k('get', 'pods', '-l', `app=${app}`, '-o', 'name')).trim().split('\n').filter(Boolean).length === 2, 20_000, 'pods');
      const rsName = (await replicaSets(app))[0]!.metadata.name;
      const r = await k.result('delete', 'deployment', app, `--cascade=${cascade}`, '--timeout=30s');
      assert.equal(r.code, 0, r.stderr);
      await eventually(async () => (await k.result('get', 'deployment', app)).code !== 0, 20_000, 'the Deployment gone');
      if (cascade === 'orphan') {
        const rs = (await replicaSets(app)).find((x) => x.metadata.name === rsName);
        assert.ok(rs, 'the ReplicaSet survives');
        assert.deepEqual((rs.metadata.ownerReferences ?? []).filter((o) => o.kind === 'Deployment'), []);
        assert.equal((await k('get', 'pods', '-l', `app=${app}`, '-o', 'name')).trim().split('\n').length, 2);
      } else {
        await eventually(async () => (await replicaSets(app)).length === 0, 20_000, 'ReplicaSets collected');
        await eventually(async () => (await k('get', 'pods', '-l', `app=${app}`, '-o', 'name')).trim() === '', 20_000, 'pods collected');
      }
    });
  }
});

describe('atoll controller: the controller manager as its own process', () => {
  let server: ServerProcess;
  let k: Kubectl;
  const children: ReturnType<typeof spawn>[] = [];

  before(async () => {
    server = await startServer(['--disable-controllers', '--disable-scheduler']);
    k = await kubectl(server.kubeconfig);
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await k?.cleanup();
    await server?.stop();
  });

  const atoll = (...args: string[]) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'atoll'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    return { child, output: () => output, exited: new Promise<number>((r) => child.once('exit', (code) => r(code ?? 1))) };
  };

  it('manages workloads of a server that runs no controllers', async () => {
    await k('create', 'deployment', 'remote', '--image=busybox', '--replicas=2');
    // Nothing creates pods yet.
    assert.equal((await k('get', 'rs', '-o', 'name')).trim(), '');
    const proc = atoll('controller', '--kubeconfig', server.kubeconfig, '--controllers', 'deployment,replicaset');
    await eventually(async () => (await k('get', 'pods', '-l', 'app=remote', '-o', 'name')).trim().split('\n').filter(Boolean).length === 2, 30_000, 'pods from the separate controller').catch((err: Error) => {
      throw new Error(`${err.message}; atoll controller said: ${proc.output()}`);
    });
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0, proc.output());
  });

  it('names the flag when the kubeconfig is wrong', async () => {
    const missing = atoll('controller', '--kubeconfig', '/nonexistent/kubeconfig');
    assert.equal(await missing.exited, 2);
    assert.match(missing.output(), /--kubeconfig \/nonexistent\/kubeconfig: .*pass a readable kubeconfig/);
    const bad = atoll('controller', '--kubeconfig', server.kubeconfig, '--controllers', 'replicaset,bogus');
    assert.equal(await bad.exited, 2);
    assert.match(bad.output(), /--controllers: unknown "bogus"; choose from/);
  });
});
