import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiServer } from '../apiserver/server.js';
import type { KubeObject } from '../api/types.js';
import { KubeClient, isNotFound } from '../client/client.js';
import { resource } from '../client/informer.js';
import { HollowNodes } from '../../test/support/hollow-nodes.js';
import { SharedInformers } from './controller.js';
import { toleratesTaint as tolerates } from '../api/scheduling.js';
import { NodeLifecycleController, TAINT_UNREACHABLE, TokenBucket, evictionTime, type Taint } from './node-lifecycle.js';
import { waitFor } from '../../test/support/wait.js';

describe('toleration arithmetic', () => {
  const unreachable: Taint = { key: TAINT_UNREACHABLE, effect: 'NoExecute' };
  const at = () => 1_000_000;

  it('matches as kube ToleratesTaint does', () => {
    assert.equal(tolerates({ key: TAINT_UNREACHABLE, operator: 'Exists', effect: 'NoExecute' }, unreachable), true);
    assert.equal(tolerates({ operator: 'Exists' }, unreachable), true);
    assert.equal(tolerates({ key: TAINT_UNREACHABLE, operator: 'Exists', effect: 'NoSchedule' }, unreachable), false);
    assert.equal(tolerates({ key: 'other', operator: 'Exists' }, unreachable), false);
    assert.equal(tolerates({ key: 'k', value: 'v' }, { key: 'k', value: 'v', effect: 'NoExecute' }), true);
    assert.equal(tolerates({ key: 'k', operator: 'Equal', value: 'w' }, { key: 'k', value: 'v', effect: 'NoExecute' }), false);
  });

  it('evicts at once, after tolerationSeconds, or never', () => {
    assert.equal(evictionTime([unreachable], [], at), -Infinity);
    assert.equal(evictionTime([unreachable], [{ key: TAINT_UNREACHABLE, operator: 'Exists', tolerationSeconds: 5 }], at), 1_005_000);
    assert.equal(evictionTime([unreachable], [{ key: TAINT_UNREACHABLE, operator: 'Exists' }], at), undefined);
    assert.equal(evictionTime([unreachable], [{ operator: 'Exists', tolerationSeconds: -3 }], at), 1_000_000);
    assert.equal(evictionTime([{ key: 'x', effect: 'NoSchedule' }], [], at), undefined, 'NoSchedule taints never evict');
  });

  it('takes the earliest deadline over several taints, and any untolerated taint wins', () => {
    const other: Taint = { key: 'b', effect: 'NoExecute' };
    const added = (t: Taint) => (t.key === 'b' ? 2_000_000 : 1_000_000);
    const tols = [{ key: TAINT_UNREACHABLE, operator: 'Exists', tolerationSeconds: 300 }, { key: 'b', operator: 'Exists', tolerationSeconds: 10 }];
    assert.equal(evictionTime([unreachable, other], tols, added), 1_300_000);
    assert.equal(evictionTime([unreachable, other], tols.slice(0, 1), added), -Infinity);
  });

  it('limits with a token bucket of burst 1', () => {
    const bucket = new TokenBucket(2, 1, 0);
    assert.equal(bucket.tryTake(0), true);
    assert.equal(bucket.tryTake(100), false);
    assert.equal(bucket.tryTake(500), true);
    assert.equal(new TokenBucket(0, 1, 0).tryTake(0), true);
  });
});

const GRACE_S = 3;


describe('node lifecycle controller', () => {
  let dir: string;
  let server: ApiServer;
  let client: KubeClient;
  let hollow: HollowNodes;
  const abort = new AbortController();
  let running: Promise<void>;
  const nodes = resource('nodes');
  const pods = resource('pods');

  async function pod(name: string, node: string, tolerations?: object[]): Promise<void> {
    await client.create(pods, 'default', {
      metadata: { name },
      spec: { containers: [{ name: 'c', image: 'busybox' }], terminationGracePeriodSeconds: 0, tolerations },
    });
    await client.createSubresource(pods, 'default', name, 'binding', { apiVersion: 'v1', kind: 'Binding', metadata: { name }, target: { apiVersion: 'v1', kind: 'Node', name: node } });
    await client.patch(pods, 'default', name, 'strategic', { status: { phase: 'Running', podIP: '10.0.0.1', conditions: [{ type: 'Ready', status: 'True' }] } }, { subresource: 'status' });
  }

  async function getPod(name: string): Promise<KubeObject | undefined> {
    try {
      return await client.get(pods, 'default', name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  const evicted = async (name: string) => {
    const p = await getPod(name);
    return !p || !!p.metadata.deletionTimestamp;
  };
  const podReady = async (name: string) => ((await getPod(name))?.status as { conditions?: { type: string; status: string }[] }).conditions?.find((c) => c.type === 'Ready')?.status;
  const taintsOf = async (name: string) => ((await client.get(nodes, undefined, name)).spec as { taints?: Taint[] }).taints ?? [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-nodelifecycle-'));
    server = await ApiServer.start({ dataDir: dir, port: 0, host: '127.0.0.1' });
    client = KubeClient.fromKubeconfig(server.kubeconfigPath);
    hollow = new HollowNodes(client, 500);
    await hollow.add('n1');
    await hollow.add('n2', { labels: { 'atoll.io/autonomous': 'true' } });
    await hollow.add('n3');
    const informers = new SharedInformers(client);
    const controller = new NodeLifecycleController(client, informers, {
      nodeMonitorGracePeriodSeconds: GRACE_S,
      nodeMonitorPeriodSeconds: 0.5,
      protect: (node) => node.metadata.labels?.['atoll.io/autonomous'] === 'true',
    });
    informers.start(abort.signal);
    running = controller.run(abort.signal);
  });

  after(async () => {
    abort.abort();
    await running;
    hollow.close();
    client.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('leaves a renewing node alone', async () => {
    await new Promise((r) => setTimeout(r, (GRACE_S + 1) * 1000));
    assert.deepEqual(await taintsOf('n1'), []);
    const node = await client.get(nodes, undefined, 'n1');
    assert.equal((node.status as { conditions: { type: string; status: string }[] }).conditions.find((c) => c.type === 'Ready')?.status, 'True');
  });

  it('taints a silent node, marks it Unknown, and evicts by toleration', async () => {
    const unreachable = (seconds?: number) => ({ key: TAINT_UNREACHABLE, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: seconds });
    // DefaultTolerationSeconds admission gives every pod 300 s for unreachable unless it says otherwise.
    await pod('tolerates-5s', 'n1', [unreachable(5)]);
    await pod('tolerates-0s', 'n1', [unreachable(0)]);
    await pod('tolerates-forever', 'n1', [unreachable()]);
    await pod('protected', 'n2', [unreachable(0)]);
    await pod('untolerated', 'n3');

    hollow.stop('n1');
    hollow.stop('n2');
    const taints = await waitFor('unreachable taints on n1', async () => {
      const t = await taintsOf('n1');
      return t.some((x) => x.key === TAINT_UNREACHABLE && x.effect === 'NoExecute') && t;
    });
    const tainted = Date.now();
    assert.ok(taints.some((t) => t.key === TAINT_UNREACHABLE && t.effect === 'NoSchedule'));
    assert.ok(taints.find((t) => t.effect === 'NoExecute')?.timeAdded);

    const node = await client.get(nodes, undefined, 'n1');
    const conditions = (node.status as { conditions: { type: string; status: string; reason: string; message: string }[] }).conditions;
    for (const type of ['Ready', 'MemoryPressure', 'DiskPressure', 'PIDPressure']) {
      const c = conditions.find((x) => x.type === type);
      assert.equal(c?.status, 'Unknown', type);
      assert.equal(c?.reason, 'NodeStatusUnknown');
      assert.equal(c?.message, 'Kubelet stopped posting node status.');
    }

    await waitFor('the pod tolerating 0 s to be evicted', () => evicted('tolerates-0s'), 3000);
    assert.equal(await evicted('tolerates-5s'), false, 'a pod tolerating for 5 s is not evicted at once');
    await waitFor('pods on n1 to be marked not ready', async () => (await podReady('tolerates-forever')) === 'False');

    await waitFor('the 5 s pod to be evicted', () => evicted('tolerates-5s'), 15_000);
    assert.ok(Date.now() - tainted >= 3000, `evicted ${Date.now() - tainted} ms after the taint, before its toleration ran out`);
    assert.equal(await evicted('tolerates-forever'), false);

    assert.ok((await taintsOf('n2')).some((t) => t.key === TAINT_UNREACHABLE && t.effect === 'NoExecute'), 'a protected node is still tainted');
    assert.equal(await evicted('protected'), false, 'protect keeps pods of the node');
    assert.equal(await podReady('protected'), 'True', 'protect keeps pods Ready');
  });

  it('evicts at once a pod that does not tolerate a NoExecute taint', async () => {
    assert.equal(await evicted('untolerated'), false);
    await client.patch(nodes, undefined, 'n3', 'merge', { spec: { taints: [{ key: 'atoll.test/drain', effect: 'NoExecute' }] } });
    await waitFor('the untolerated pod to be evicted', () => evicted('untolerated'), 3000);
  });

  it('removes the taints when the lease is renewed again', async () => {
    hollow.resume('n1');
    await waitFor('taints on n1 to go', async () => !(await taintsOf('n1')).some((t) => t.key === TAINT_UNREACHABLE));
    assert.ok((await taintsOf('n2')).some((t) => t.key === TAINT_UNREACHABLE), 'the still silent node keeps its taints');
    assert.equal(await evicted('tolerates-forever'), false);
  });
});
