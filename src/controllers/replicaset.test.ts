import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { errors } from '../api/errors.js';
import { resource } from '../client/informer.js';
import { ReplicaSetController, type ReplicaSet } from './replicaset.js';
import { PODS, eventually, listPods, livePods, podSpec, runAllPending, startCluster, type Cluster } from './workload-testkit.js';
import { controllerRefOf } from './workload-util.js';

const RS = resource('apps/replicasets');
const NS = 'default';

function replicaSet(name: string, replicas: number, extra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name, tier: 'web' } }, spec: podSpec() },
      ...extra,
    },
  };
}

describe('ReplicaSet controller', () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster();
    cluster.start(new ReplicaSetController(cluster.client));
  });
  after(async () => {
    await cluster?.close();
  });

  it('creates pods up to replicas, owned by the ReplicaSet, and reports readiness', async () => {
    const { client } = cluster;
    const rs = await client.create<ReplicaSet>(RS, NS, replicaSet('web', 3));
    const pods = await eventually(async () => {
      const p = await livePods(client, NS, 'app=web');
      return p.length === 3 && p;
    }, '3 pods');
    for (const p of pods) {
      const ref = controllerRefOf(p)!;
      assert.deepEqual(ref, { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web', uid: rs.metadata.uid, controller: true, blockOwnerDeletion: true });
      assert.ok(p.metadata.name!.startsWith('web-'));
      assert.equal(p.metadata.labels?.tier, 'web');
    }
    await eventually(async () => {
      const cur = await client.get<ReplicaSet>(RS, NS, 'web');
      return cur.status?.replicas === 3 && cur.status.fullyLabeledReplicas === 3 && cur.status.readyReplicas === 0 && cur.status.observedGeneration === cur.metadata.generation;
    }, 'status replicas 3, ready 0');
    await runAllPending(client, NS, 'app=web');
    await eventually(async () => {
      const cur = await client.get<ReplicaSet>(RS, NS, 'web');
      return cur.status?.readyReplicas === 3 && cur.status.availableReplicas === 3;
    }, 'ready and available 3');
    // No extra pods appear after the dust settles (expectations stop double creates).
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await listPods(client, NS, 'app=web')).length, 3);
  });

  it('scales down deleting not-ready pods first, and scales up through the scale subresource', async () => {
    const { client } = cluster;
    await client.patch(RS, NS, 'web', 'merge', { spec: { replicas: 5 } });
    const five = await eventually(async () => {
      const p = await livePods(client, NS, 'app=web');
      return p.length === 5 && p;
    }, '5 pods');
    const notReady = five.filter((p) => !p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).map((p) => p.metadata.name);
    assert.equal(notReady.length, 2);
    await client.patch(RS, NS, 'web', 'merge', { spec: { replicas: 3 } }, { subresource: 'scale' });
    const three = await eventually(async () => {
      const p = await livePods(client, NS, 'app=web');
      return p.length === 3 && p;
    }, '3 pods after scale down');
    for (const p of three) assert.ok(!notReady.includes(p.metadata.name), `not-ready pod ${p.metadata.name} should have been deleted first`);
    await eventually(async () => (await client.get<ReplicaSet>(RS, NS, 'web')).status?.replicas === 3, 'status replicas 3');
  });

  it('replaces a deleted pod', async () => {
    const { client } = cluster;
    const [victim] = await livePods(client, NS, 'app=web');
    await client.delete(PODS, NS, victim!.metadata.name!);
    await eventually(async () => {
      const p = await livePods(client, NS, 'app=web');
      return p.length === 3 && !p.some((x) => x.metadata.name === victim!.metadata.name);
    }, 'replacement pod');
  });

  it('adopts a matching orphan and releases a pod whose labels stop matching', async () => {
    const { client } = cluster;
    await client.create(RS, NS, replicaSet('adopt', 2));
    await eventually(async () => (await livePods(client, NS, 'app=adopt')).length === 2, '2 pods');
    // An orphan with matching labels: the ReplicaSet adopts it and deletes one to stay at 2.
    await client.create(PODS, NS, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'orphan', labels: { app: 'adopt' } }, spec: podSpec() });
    await eventually(async () => {
      const pods = await livePods(client, NS, 'app=adopt');
      return pods.length === 2 && pods.every((p) => controllerRefOf(p)?.name === 'adopt');
    }, 'orphan adopted and extra deleted');
    // Relabel one pod out of the selector: it is released and replaced.
    const [first] = await livePods(client, NS, 'app=adopt');
    await client.patch(PODS, NS, first!.metadata.name!, 'merge', { metadata: { labels: { app: 'elsewhere' } } });
    await eventually(async () => {
      const released = await client.get(PODS, NS, first!.metadata.name!);
      return !controllerRefOf(released) && (await livePods(client, NS, 'app=adopt')).length === 2;
    }, 'released and replaced');
  });

  it('reports ReplicaFailure when pods cannot be created, and clears it once they can', async () => {
    const { client } = cluster;
    // Pods labelled blocked=true are refused at admission, as a quota would refuse them.
    cluster.server.admission.add({
      name: 'TestRefuseBlocked',
      validate(req) {
        if (req.def.kind === 'Pod' && req.operation === 'CREATE' && req.object?.metadata.labels?.blocked === 'true') {
          throw errors.forbidden({ group: '', resource: 'pods', name: req.name }, 'pods "x" is forbidden: exceeded quota: test');
        }
      },
    });
    const bad = replicaSet('broken', 1);
    (bad.spec.template.metadata.labels as Record<string, string>).blocked = 'true';
    await client.create(RS, NS, bad);
    const failed = await eventually(async () => {
      const rs = await client.get<ReplicaSet>(RS, NS, 'broken');
      return rs.status?.conditions?.find((c) => c.type === 'ReplicaFailure');
    }, 'ReplicaFailure condition');
    assert.equal(failed.status, 'True');
    assert.equal(failed.reason, 'FailedCreate');
    assert.match(failed.message ?? '', /exceeded quota/);
    await client.patch(RS, NS, 'broken', 'merge', { spec: { template: { metadata: { labels: { blocked: 'false' } } } } });
    await eventually(async () => {
      const rs = await client.get<ReplicaSet>(RS, NS, 'broken');
      return !rs.status?.conditions?.some((c) => c.type === 'ReplicaFailure') && rs.status?.replicas === 1;
    }, 'ReplicaFailure cleared');
  });

  it('creates a large ReplicaSet without double creates', async () => {
    const { client } = cluster;
    await client.create(RS, NS, replicaSet('many', 40));
    await eventually(async () => (await client.get<ReplicaSet>(RS, NS, 'many')).status?.replicas === 40, '40 replicas');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await listPods(client, NS, 'app=many')).length, 40);
  });
});
