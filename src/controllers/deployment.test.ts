import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { resource } from '../client/informer.js';
import { kubectl, type Kubectl } from '../../test/e2e/harness.js';
import { SharedInformers } from './controller.js';
import { DeploymentController, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION, type Deployment } from './deployment.js';
import { ReplicaSetController, type ReplicaSet } from './replicaset.js';
import { eventually, isReady, livePods, podSpec, runAllPending, runPod, startCluster, type Cluster } from './workload-testkit.js';
import { controllerRefOf, semanticEqual } from './workload-util.js';

const DEPLOY = resource('apps/deployments');
const RS = resource('apps/replicasets');
const NS = 'default';

function deployment(name: string, replicas: number, spec: Record<string, unknown> = {}, image = 'registry.local/app:1') {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: podSpec(image) },
      ...spec,
    },
  };
}

async function replicaSets(cluster: Cluster, app: string): Promise<ReplicaSet[]> {
  return (await cluster.client.list<ReplicaSet>(RS, NS, { labelSelector: `app=${app}` })).items;
}

async function getDeployment(cluster: Cluster, name: string): Promise<Deployment> {
  return cluster.client.get<Deployment>(DEPLOY, NS, name);
}

const cond = (d: Deployment, type: string) => d.status?.conditions?.find((c) => c.type === type);

/** The Deployment has observed its spec and every ReplicaSet has caught up with its pods. */
async function settled(cluster: Cluster, app: string): Promise<boolean> {
  const d = await getDeployment(cluster, app);
  if ((d.status?.observedGeneration ?? 0) < (d.metadata.generation ?? 0)) return false;
  const sets = await replicaSets(cluster, app);
  const pods = await livePods(cluster.client, NS, `app=${app}`);
  for (const rs of sets) {
    const mine = pods.filter((p) => controllerRefOf(p)?.uid === rs.metadata.uid);
    const st = rs.status;
    if ((st?.observedGeneration ?? 0) < (rs.metadata.generation ?? 0)) return false;
    if (mine.length !== rs.spec.replicas || (st?.replicas ?? 0) !== rs.spec.replicas) return false;
    if ((st?.readyReplicas ?? 0) !== mine.filter(isReady).length) return false;
  }
  return true;
}

/** Runs every pending pod until the Deployment reports a finished rollout. */
async function completeRollout(cluster: Cluster, name: string): Promise<Deployment> {
  return eventually(async () => {
    await runAllPending(cluster.client, NS, `app=${name}`);
    const d = await getDeployment(cluster, name);
    const n = d.spec.replicas ?? 1;
    const done =
      (d.status?.observedGeneration ?? 0) >= (d.metadata.generation ?? 0) &&
      d.status?.updatedReplicas === n &&
      d.status?.replicas === n &&
      d.status?.availableReplicas === n &&
      cond(d, 'Progressing')?.reason === 'NewReplicaSetAvailable';
    return done && d;
  }, `rollout of ${name} to complete`);
}

/** What `kubectl rollout undo` sends: the previous revision's template (minus the hash label) and annotations. */
async function rolloutUndo(cluster: Cluster, name: string): Promise<void> {
  const d = await getDeployment(cluster, name);
  const owned = (await replicaSets(cluster, name)).filter((rs) => controllerRefOf(rs)?.uid === d.metadata.uid);
  const revisions = owned.map((rs) => Number(rs.metadata.annotations?.[REVISION_ANNOTATION] ?? 0)).sort((a, b) => b - a);
  const previous = owned.find((rs) => Number(rs.metadata.annotations?.[REVISION_ANNOTATION]) === revisions[1])!;
  const template = structuredClone(previous.spec.template!);
  delete template.metadata!.labels![POD_TEMPLATE_HASH_LABEL];
  const skip = ['kubectl.kubernetes.io/last-applied-configuration', REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION, 'deployment.kubernetes.io/desired-replicas', 'deployment.kubernetes.io/max-replicas', 'deprecated.deployment.rollback.to'];
  const annotations: Record<string, string> = {};
  for (const k of skip) if (d.metadata.annotations?.[k] !== undefined) annotations[k] = d.metadata.annotations[k]!;
  for (const [k, v] of Object.entries(previous.metadata.annotations ?? {})) if (!skip.includes(k)) annotations[k] = v;
  await cluster.client.patch(DEPLOY, NS, name, 'json', [
    { op: 'replace', path: '/spec/template', value: template },
    { op: 'replace', path: '/metadata/annotations', value: annotations },
  ]);
}

describe('Deployment controller', () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await startCluster();
    // The two controllers share their ReplicaSet and Pod informers, as under the controller manager.
    const informers = new SharedInformers(cluster.client);
    cluster.start(new ReplicaSetController(cluster.client, { informers }));
    cluster.start(new DeploymentController(cluster.client, { informers }));
    informers.start(cluster.signal);
  });
  after(async () => {
    await cluster?.close();
  });

  it('creates a hashed ReplicaSet with revision 1 and reports a finished rollout', async () => {
    const created = await cluster.client.create<Deployment>(DEPLOY, NS, deployment('web', 3));
    const d = await completeRollout(cluster, 'web');
    const [rs, ...others] = await replicaSets(cluster, 'web');
    assert.equal(others.length, 0);
    const hash = rs!.metadata.labels?.[POD_TEMPLATE_HASH_LABEL];
    assert.ok(hash, 'pod-template-hash label');
    assert.equal(rs!.metadata.name, `web-${hash}`);
    assert.equal(rs!.spec.template?.metadata?.labels?.[POD_TEMPLATE_HASH_LABEL], hash);
    assert.deepEqual((rs!.spec.selector as { matchLabels: object }).matchLabels, { app: 'web', [POD_TEMPLATE_HASH_LABEL]: hash });
    assert.equal(rs!.metadata.annotations?.[REVISION_ANNOTATION], '1');
    assert.equal(rs!.metadata.annotations?.['deployment.kubernetes.io/desired-replicas'], '3');
    assert.equal(rs!.metadata.annotations?.['deployment.kubernetes.io/max-replicas'], '4');
    assert.equal(d.metadata.annotations?.[REVISION_ANNOTATION], '1');
    assert.deepEqual(controllerRefOf(rs!), { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: created.metadata.uid, controller: true, blockOwnerDeletion: true });
    const available = cond(d, 'Available')!;
    assert.equal(available.status, 'True');
    assert.equal(available.reason, 'MinimumReplicasAvailable');
    assert.equal(available.message, 'Deployment has minimum availability.');
    const progressing = cond(d, 'Progressing')!;
    assert.equal(progressing.status, 'True');
    assert.equal(progressing.message, `ReplicaSet "web-${hash}" has successfully progressed.`);
    assert.equal(d.status?.readyReplicas, 3);
    assert.equal(d.status?.unavailableReplicas ?? 0, 0);
  });

  it('rolls out a new template within maxSurge and maxUnavailable', async () => {
    const name = 'rolling';
    const replicas = 4;
    await cluster.client.create(DEPLOY, NS, deployment(name, replicas, { strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 1 } } }));
    await completeRollout(cluster, name);
    const [first] = await replicaSets(cluster, name);
    await cluster.client.patch(DEPLOY, NS, name, 'merge', { spec: { template: { spec: { containers: [{ name: 'app', image: 'registry.local/app:2' }] } } } });

    // Sampled throughout: the ReplicaSets never ask for more than replicas + maxSurge pods.
    const violations: string[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const sets = await replicaSets(cluster, name);
        const total = sets.reduce((n, rs) => n + (rs.spec.replicas ?? 0), 0);
        if (total > replicas + 1) violations.push(`replica sets want ${total} pods`);
        await new Promise((r) => setTimeout(r, 25));
      }
    })();

    let observed = 0;
    let d: Deployment | undefined;
    for (let step = 0; step < 40; step++) {
      await eventually(() => settled(cluster, name), `${name} to settle`);
      const pods = await livePods(cluster.client, NS, `app=${name}`);
      const ready = pods.filter(isReady).length;
      observed++;
      assert.ok(pods.length <= replicas + 1, `at most ${replicas + 1} pods, saw ${pods.length}`);
      assert.ok(ready >= replicas - 1, `at least ${replicas - 1} ready pods, saw ${ready}`);
      d = await getDeployment(cluster, name);
      if (cond(d, 'Progressing')?.reason === 'NewReplicaSetAvailable' && d.status?.updatedReplicas === replicas && d.status.availableReplicas === replicas && d.status.replicas === replicas) break;
      // The kubelet stand-in: one more pod becomes ready.
      const pending = pods.filter((p) => !isReady(p)).sort((a, b) => a.metadata.name!.localeCompare(b.metadata.name!));
      if (pending[0]) await runPod(cluster.client, pending[0]);
    }
    sampling = false;
    await sampler;
    assert.deepEqual(violations, []);
    assert.ok(observed > 2, 'the rollout took several steps');
    assert.equal(cond(d!, 'Progressing')?.reason, 'NewReplicaSetAvailable');

    const sets = await replicaSets(cluster, name);
    assert.equal(sets.length, 2);
    const old = sets.find((rs) => rs.metadata.uid === first!.metadata.uid)!;
    const current = sets.find((rs) => rs.metadata.uid !== first!.metadata.uid)!;
    assert.equal(old.spec.replicas, 0);
    assert.equal(current.spec.replicas, replicas);
    assert.equal(current.metadata.annotations?.[REVISION_ANNOTATION], '2');
    assert.equal(d!.metadata.annotations?.[REVISION_ANNOTATION], '2');
    const pods = await livePods(cluster.client, NS, `app=${name}`);
    assert.equal(pods.length, replicas);
    for (const p of pods) {
      assert.equal(p.metadata.labels?.[POD_TEMPLATE_HASH_LABEL], current.metadata.labels?.[POD_TEMPLATE_HASH_LABEL]);
      assert.equal((p.spec as { containers: { image: string }[] }).containers[0]!.image, 'registry.local/app:2');
    }
  });

  it('rolls back as kubectl rollout undo does: the old ReplicaSet scales up and takes the next revision', async () => {
    const name = 'rolling';
    const before = await replicaSets(cluster, name);
    const rev1 = before.find((rs) => rs.metadata.annotations?.[REVISION_ANNOTATION] === '1')!;
    await rolloutUndo(cluster, name);
    const d = await completeRollout(cluster, name);
    const after = await replicaSets(cluster, name);
    assert.equal(after.length, 2, 'no new ReplicaSet for a template that already has one');
    const back = after.find((rs) => rs.metadata.uid === rev1.metadata.uid)!;
    assert.equal(back.spec.replicas, 4);
    assert.equal(back.metadata.annotations?.[REVISION_ANNOTATION], '3');
    assert.equal(back.metadata.annotations?.[REVISION_HISTORY_ANNOTATION], '1');
    assert.equal(d.metadata.annotations?.[REVISION_ANNOTATION], '3');
    const other = after.find((rs) => rs.metadata.uid !== rev1.metadata.uid)!;
    assert.equal(other.spec.replicas, 0);
    for (const p of await livePods(cluster.client, NS, `app=${name}`)) assert.equal((p.spec as { containers: { image: string }[] }).containers[0]!.image, 'registry.local/app:1');
  });

  it('scales proportionally across ReplicaSets during a rollout (scale subresource)', async () => {
    const name = 'proportional';
    await cluster.client.create(DEPLOY, NS, deployment(name, 4, { strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 1 } } }));
    await completeRollout(cluster, name);
    const [first] = await replicaSets(cluster, name);
    // A new template whose pods never become ready: the rollout stops at old 3 / new 2.
    await cluster.client.patch(DEPLOY, NS, name, 'merge', { spec: { template: { spec: { containers: [{ name: 'app', image: 'registry.local/app:broken' }] } } } });
    const sizes = async () => {
      const sets = await replicaSets(cluster, name);
      const old = sets.find((rs) => rs.metadata.uid === first!.metadata.uid)!;
      const cur = sets.find((rs) => rs.metadata.uid !== first!.metadata.uid);
      return { old: old.spec.replicas, cur: cur?.spec.replicas };
    };
    await eventually(async () => semanticEqual(await sizes(), { old: 3, cur: 2 }) && settled(cluster, name), 'rollout stuck at 3 + 2');
    await cluster.client.patch(DEPLOY, NS, name, 'merge', { spec: { replicas: 8 } }, { subresource: 'scale' });
    // 8 + maxSurge 1 = 9 shared in proportion to 3:2 of the previous 5.
    await eventually(async () => semanticEqual(await sizes(), { old: 5, cur: 4 }), 'proportional scale to 5 + 4');
    const rs = await replicaSets(cluster, name);
    for (const r of rs) assert.equal(r.metadata.annotations?.['deployment.kubernetes.io/desired-replicas'], '8');
  });

  it('Recreate removes every old pod before creating new ones', async () => {
    const name = 'recreate';
    await cluster.client.create(DEPLOY, NS, deployment(name, 3, { strategy: { type: 'Recreate' } }));
    await completeRollout(cluster, name);
    const [first] = await replicaSets(cluster, name);
    await cluster.client.patch(DEPLOY, NS, name, 'merge', { spec: { template: { spec: { containers: [{ name: 'app', image: 'registry.local/app:2' }] } } } });
    let mixed = false;
    const d = await eventually(async () => {
      const pods = await livePods(cluster.client, NS, `app=${name}`);
      const owners = new Set(pods.map((p) => controllerRefOf(p)?.uid));
      if (owners.has(first!.metadata.uid) && owners.size > 1) mixed = true;
      await runAllPending(cluster.client, NS, `app=${name}`);
      const dep = await getDeployment(cluster, name);
      return cond(dep, 'Progressing')?.reason === 'NewReplicaSetAvailable' && dep.status?.updatedReplicas === 3 && dep.status.availableReplicas === 3 && dep.status.replicas === 3 && dep;
    }, 'recreate rollout');
    assert.equal(mixed, false, 'old and new pods never run side by side');
    assert.equal(d.metadata.annotations?.[REVISION_ANNOTATION], '2');
    const old = (await replicaSets(cluster, name)).find((rs) => rs.metadata.uid === first!.metadata.uid)!;
    assert.equal(old.spec.replicas, 0);
  });

  it('reports ProgressDeadlineExceeded when a rollout stalls', async () => {
    const name = 'stalled';
    await cluster.client.create(DEPLOY, NS, deployment(name, 2, { progressDeadlineSeconds: 2 }));
    await completeRollout(cluster, name);
    await cluster.client.patch(DEPLOY, NS, name, 'merge', { spec: { template: { spec: { containers: [{ name: 'app', image: 'registry.local/app:broken' }] } } } });
    const d = await eventually(async () => {
      const dep = await getDeployment(cluster, name);
      return cond(dep, 'Progressing')?.reason === 'ProgressDeadlineExceeded' && dep;
    }, 'ProgressDeadlineExceeded');
    const c = cond(d, 'Progressing')!;
    assert.equal(c.status, 'False');
    assert.match(c.message ?? '', /^ReplicaSet "stalled-[a-z0-9]+" has timed out progressing\.$/);
  });

  it('holds a paused Deployment and resumes it', async () => {
    const name = 'paused';
    await cluster.client.create(DEPLOY, NS, deployment(name, 2));
    await completeRollout(cluster, name);
    await cluster.client.patch(DEPLOY, NS, name, 'merge', { spec: { paused: true } });
    await eventually(async () => cond(await getDeployment(cluster, name), 'Progressing')?.reason === 'DeploymentPaused', 'DeploymentPaused');
    await cluster.client.patch(DEPLOY, NS, name, 'merge', { spec: { template: { spec: { containers: [{ name: 'app', image: 'registry.local/app:2' }] } } } });
    await eventually(async () => {
      const d = await getDeployment(cluster, name);
      return d.status?.observedGeneration === d.metadata.generation;
    }, 'paused spec observed');
    assert.equal((await replicaSets(cluster, name)).length, 1, 'no new ReplicaSet while paused');
    await cluster.client.patch(DEPLOY, NS, name, 'merge', { spec: { paused: false } });
    const d = await completeRollout(cluster, name);
    assert.equal(d.metadata.annotations?.[REVISION_ANNOTATION], '2');
    assert.equal((await replicaSets(cluster, name)).length, 2);
  });

  it('keeps only revisionHistoryLimit old ReplicaSets', async () => {
    const name = 'history';
    await cluster.client.create(DEPLOY, NS, deployment(name, 1, { revisionHistoryLimit: 1 }));
    await completeRollout(cluster, name);
    for (const tag of ['2', '3', '4']) {
      await cluster.client.patch(DEPLOY, NS, name, 'merge', { spec: { template: { spec: { containers: [{ name: 'app', image: `registry.local/app:${tag}` }] } } } });
      await completeRollout(cluster, name);
    }
    const sets = await eventually(async () => {
      const s = await replicaSets(cluster, name);
      return s.length === 2 && s;
    }, 'two ReplicaSets left');
    assert.deepEqual(sets.map((rs) => rs.metadata.annotations?.[REVISION_ANNOTATION]).sort(), ['3', '4']);
  });

  describe('with kubectl', () => {
    let k: Kubectl;
    before(async () => {
      k = await kubectl(cluster.server.kubeconfigPath);
    });
    after(async () => {
      await k?.cleanup();
    });

    it('rollout status, restart, undo and scale', async () => {
      const name = 'kube';
      await cluster.client.create(DEPLOY, NS, deployment(name, 2));
      let running = true;
      const kubelet = (async () => {
        while (running) {
          await runAllPending(cluster.client, NS, `app=${name}`).catch(() => 0);
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      try {
        const status = await k('rollout', 'status', `deployment/${name}`, '--timeout=60s');
        assert.match(status, new RegExp(`deployment "${name}" successfully rolled out`));

        assert.match(await k('rollout', 'restart', `deployment/${name}`), /restarted/);
        assert.match(await k('rollout', 'status', `deployment/${name}`, '--timeout=60s'), /successfully rolled out/);
        const restarted = await replicaSets(cluster, name);
        assert.equal(restarted.length, 2);
        const rev2 = restarted.find((rs) => rs.metadata.annotations?.[REVISION_ANNOTATION] === '2')!;
        assert.ok(rev2.spec.template?.metadata?.annotations?.['kubectl.kubernetes.io/restartedAt']);

        assert.match(await k('rollout', 'undo', `deployment/${name}`), /rolled back/);
        assert.match(await k('rollout', 'status', `deployment/${name}`, '--timeout=60s'), /successfully rolled out/);
        const undone = await replicaSets(cluster, name);
        assert.equal(undone.length, 2);
        const back = undone.find((rs) => rs.metadata.uid !== rev2.metadata.uid)!;
        assert.equal(back.metadata.annotations?.[REVISION_ANNOTATION], '3');
        assert.equal(back.spec.replicas, 2);

        assert.match(await k('scale', `deployment/${name}`, '--replicas=5'), /scaled/);
        assert.match(await k('rollout', 'status', `deployment/${name}`, '--timeout=60s'), /successfully rolled out/);
        const scaled = await getDeployment(cluster, name);
        assert.equal(scaled.status?.availableReplicas, 5);
        assert.match(await k('rollout', 'history', `deployment/${name}`), /\b2\b[\s\S]*\b3\b/);
      } finally {
        running = false;
        await kubelet;
      }
    });
  });
});

