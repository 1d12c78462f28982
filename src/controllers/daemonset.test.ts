import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { resource } from '../client/informer.js';
import { HollowNodes } from '../../test/support/hollow-nodes.js';
import { CONTROLLER_REVISION_HASH_LABEL, DaemonSetController, nodeShouldRunDaemonPod, targetNode, type ControllerRevision, type DaemonSet, type Node } from './daemonset.js';
import { eventually, isReady, livePods, podSpec, runPod, startCluster, PODS, type Cluster } from './workload-testkit.js';
import { controllerRefOf, type Pod } from './workload-util.js';

const DS = resource('apps/daemonsets');
const NODES = resource('nodes');
const REVISIONS = resource('apps/controllerrevisions');
const NS = 'default';

function daemonSet(name: string, spec: Record<string, unknown> = {}, podExtra: Record<string, unknown> = {}) {
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name },
    spec: {
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { ...podSpec(), ...podExtra } },
      ...spec,
    },
  };
}

/** node name → live pods pinned to it. */
async function placement(cluster: Cluster, app: string): Promise<Map<string, Pod[]>> {
  const out = new Map<string, Pod[]>();
  for (const p of await livePods(cluster.client, NS, `app=${app}`)) {
    const n = targetNode(p) ?? '?';
    out.set(n, [...(out.get(n) ?? []), p]);
  }
  return out;
}

async function nodesOf(cluster: Cluster, app: string): Promise<string[]> {
  return [...(await placement(cluster, app)).keys()].sort();
}

async function waitForNodes(cluster: Cluster, app: string, want: string[]): Promise<void> {
  await eventually(async () => JSON.stringify(await nodesOf(cluster, app)) === JSON.stringify(want), `${app} pods on ${want.join(',')}`);
}

/** The scheduler's part for a pinned daemon pod: bind it to its node. */
async function bind(cluster: Cluster, pod: Pod): Promise<void> {
  await cluster.client.createSubresource(PODS, NS, pod.metadata.name!, 'binding', {
    apiVersion: 'v1',
    kind: 'Binding',
    metadata: { name: pod.metadata.name },
    target: { apiVersion: 'v1', kind: 'Node', name: targetNode(pod) },
  });
}

describe('DaemonSet controller', () => {
  let cluster: Cluster;
  let nodes: HollowNodes;

  before(async () => {
    cluster = await startCluster();
    nodes = new HollowNodes(cluster.client);
    await nodes.add('edge-1', { labels: { role: 'edge' } });
    await nodes.add('edge-2', { labels: { role: 'edge' }, taints: [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }] });
    await nodes.add('core-1', { labels: { role: 'core' } });
    await nodes.add('edge-3', { labels: { role: 'edge' }, unschedulable: true });
    cluster.start(new DaemonSetController(cluster.client));
  });
  after(async () => {
    nodes?.close();
    await cluster?.close();
  });

  it('decides eligibility from nodeSelector, affinity and taints', () => {
    const node = (labels: Record<string, string>, taints: Node['spec'] = {}): Node => ({ metadata: { name: 'n', labels }, spec: taints });
    const ds = (spec: Record<string, unknown>): DaemonSet => ({ metadata: { name: 'd' }, spec: { template: { spec } } });
    assert.deepEqual(nodeShouldRunDaemonPod(node({ a: '1' }), ds({ nodeSelector: { a: '1' } })), { shouldRun: true, shouldContinueRunning: true });
    assert.deepEqual(nodeShouldRunDaemonPod(node({ a: '2' }), ds({ nodeSelector: { a: '1' } })), { shouldRun: false, shouldContinueRunning: false });
    const affinity = { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['x', 'y'] }] }] } } };
    assert.equal(nodeShouldRunDaemonPod(node({ zone: 'y' }), ds({ affinity })).shouldRun, true);
    assert.equal(nodeShouldRunDaemonPod(node({ zone: 'z' }), ds({ affinity })).shouldRun, false);
    // An untolerated NoSchedule taint keeps new pods off but lets a running one stay; NoExecute evicts.
    assert.deepEqual(nodeShouldRunDaemonPod(node({}, { taints: [{ key: 'k', effect: 'NoSchedule' }] }), ds({})), { shouldRun: false, shouldContinueRunning: true });
    assert.deepEqual(nodeShouldRunDaemonPod(node({}, { taints: [{ key: 'k', effect: 'NoExecute' }] }), ds({})), { shouldRun: false, shouldContinueRunning: false });
    // The default daemon tolerations cover unschedulable, pressure and not-ready/unreachable.
    const defaults = ['node.kubernetes.io/unschedulable', 'node.kubernetes.io/disk-pressure', 'node.kubernetes.io/memory-pressure', 'node.kubernetes.io/pid-pressure'].map((key) => ({ key, effect: 'NoSchedule' }));
    defaults.push({ key: 'node.kubernetes.io/not-ready', effect: 'NoExecute' }, { key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' });
    assert.equal(nodeShouldRunDaemonPod(node({}, { taints: defaults }), ds({})).shouldRun, true);
    assert.equal(nodeShouldRunDaemonPod(node({}, { taints: [{ key: 'k', value: 'v', effect: 'NoSchedule' }] }), ds({ tolerations: [{ key: 'k', operator: 'Equal', value: 'v', effect: 'NoSchedule' }] })).shouldRun, true);
  });

  it('runs one pod on each eligible node, pinned by node affinity, with the daemon tolerations', async () => {
    const created = await cluster.client.create<DaemonSet>(DS, NS, daemonSet('agent', {}, { nodeSelector: { role: 'edge' } }));
    await waitForNodes(cluster, 'agent', ['edge-1', 'edge-3']);
    const pods = [...(await placement(cluster, 'agent')).values()].flat();
    for (const p of pods) {
      assert.deepEqual(controllerRefOf(p), { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: created.metadata.uid, controller: true, blockOwnerDeletion: true });
      const terms = p.spec?.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
      assert.deepEqual(terms, [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [targetNode(p)] }] }]);
      const keys = (p.spec?.tolerations ?? []).map((t) => `${t.key}:${t.effect}`);
      for (const k of ['not-ready:NoExecute', 'unreachable:NoExecute', 'disk-pressure:NoSchedule', 'memory-pressure:NoSchedule', 'pid-pressure:NoSchedule', 'unschedulable:NoSchedule']) {
        assert.ok(keys.includes(`node.kubernetes.io/${k}`), `toleration ${k}`);
      }
      const notReady = p.spec!.tolerations!.find((t) => t.key === 'node.kubernetes.io/not-ready')!;
      assert.equal(notReady.tolerationSeconds, undefined);
      assert.ok(p.metadata.labels?.[CONTROLLER_REVISION_HASH_LABEL]);
    }
    await eventually(async () => {
      const ds = await cluster.client.get<DaemonSet>(DS, NS, 'agent');
      const st = ds.status!;
      return st.desiredNumberScheduled === 2 && st.currentNumberScheduled === 2 && st.numberMisscheduled === 0 && st.numberReady === 0 && st.updatedNumberScheduled === 2 && st.observedGeneration === ds.metadata.generation;
    }, 'status desired 2, current 2');
    // The scheduler binds, the kubelet runs: the DaemonSet reports them ready and available.
    for (const p of pods) {
      await bind(cluster, p);
      await runPod(cluster.client, p);
    }
    await eventually(async () => {
      const st = (await cluster.client.get<DaemonSet>(DS, NS, 'agent')).status!;
      return st.numberReady === 2 && st.numberAvailable === 2 && (st.numberUnavailable ?? 0) === 0;
    }, 'ready 2');
  });

  it('follows nodes as they come, go and change labels', async () => {
    await nodes.add('edge-4', { labels: { role: 'edge' } });
    await waitForNodes(cluster, 'agent', ['edge-1', 'edge-3', 'edge-4']);
    // edge-4's pod is never bound; deleting the node deletes it.
    await cluster.client.delete(NODES, undefined, 'edge-4');
    nodes.stop('edge-4');
    await waitForNodes(cluster, 'agent', ['edge-1', 'edge-3']);
    // Relabelled out of the selector: the (bound) pod is removed.
    await cluster.client.patch(NODES, undefined, 'edge-1', 'merge', { metadata: { labels: { role: 'core' } } });
    await waitForNodes(cluster, 'agent', ['edge-3']);
    // Relabelled into it: core-1 gets one.
    await cluster.client.patch(NODES, undefined, 'core-1', 'merge', { metadata: { labels: { role: 'edge' } } });
    await waitForNodes(cluster, 'agent', ['core-1', 'edge-3']);
    await eventually(async () => (await cluster.client.get<DaemonSet>(DS, NS, 'agent')).status?.desiredNumberScheduled === 2, 'desired 2');
  });

  it('places pods on tainted nodes only when tolerated, and leaves on an untolerated NoExecute taint', async () => {
    await cluster.client.create(DS, NS, daemonSet('gpu', {}, { tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'gpu', effect: 'NoSchedule' }] }));
    await waitForNodes(cluster, 'gpu', ['core-1', 'edge-1', 'edge-2', 'edge-3']);
    await cluster.client.patch(NODES, undefined, 'edge-3', 'merge', { spec: { taints: [{ key: 'drain', value: 'now', effect: 'NoExecute' }] } });
    await waitForNodes(cluster, 'gpu', ['core-1', 'edge-1', 'edge-2']);
    await cluster.client.patch(NODES, undefined, 'edge-3', 'merge', { spec: { taints: null } });
    await waitForNodes(cluster, 'gpu', ['core-1', 'edge-1', 'edge-2', 'edge-3']);
  });

  it('rolls out a new template node by node within maxUnavailable, recording ControllerRevisions', async () => {
    const name = 'roll';
    await cluster.client.create(DS, NS, daemonSet(name, { updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } } }));
    const all = ['core-1', 'edge-1', 'edge-2', 'edge-3'];
    // edge-2's NoSchedule taint is not tolerated here.
    const eligible = all.filter((n) => n !== 'edge-2');
    await waitForNodes(cluster, name, eligible);
    const runAll = async () => {
      for (const p of await livePods(cluster.client, NS, `app=${name}`)) if (!isReady(p)) await runPod(cluster.client, p);
    };
    await runAll();
    await eventually(async () => (await cluster.client.get<DaemonSet>(DS, NS, name)).status?.numberAvailable === eligible.length, 'all available');
    const firstHash = (await livePods(cluster.client, NS, `app=${name}`))[0]!.metadata.labels![CONTROLLER_REVISION_HASH_LABEL];

    await cluster.client.patch(DS, NS, name, 'merge', { spec: { template: { spec: { containers: [{ name: 'app', image: 'registry.local/app:2' }] } } } });
    let steps = 0;
    for (;;) {
      const pods = await livePods(cluster.client, NS, `app=${name}`);
      // At any observed point at most one eligible node lacks an available pod.
      const availableNodes = new Set(pods.filter(isReady).map(targetNode));
      const missing = eligible.filter((n) => !availableNodes.has(n)).length;
      assert.ok(missing <= 1, `at most 1 node without an available pod, saw ${missing}`);
      const ds = await cluster.client.get<DaemonSet>(DS, NS, name);
      if (ds.status?.updatedNumberScheduled === eligible.length && ds.status.numberAvailable === eligible.length && ds.status.observedGeneration === ds.metadata.generation) break;
      const pending = pods.find((p) => !isReady(p));
      if (pending) {
        steps++;
        await runPod(cluster.client, pending);
      }
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(steps < 50, 'rollout finishes');
    }
    assert.ok(steps >= eligible.length, 'each node was replaced in turn');
    const pods = await livePods(cluster.client, NS, `app=${name}`);
    assert.equal(pods.length, eligible.length);
    const newHash = pods[0]!.metadata.labels![CONTROLLER_REVISION_HASH_LABEL];
    assert.notEqual(newHash, firstHash);
    for (const p of pods) {
      assert.equal(p.metadata.labels![CONTROLLER_REVISION_HASH_LABEL], newHash);
      assert.equal((p.spec as { containers: { image: string }[] }).containers[0]!.image, 'registry.local/app:2');
    }
    const revisions = (await cluster.client.list<ControllerRevision>(REVISIONS, NS, { labelSelector: `app=${name}` })).items;
    assert.deepEqual(revisions.map((r) => [r.revision, r.metadata.labels?.[CONTROLLER_REVISION_HASH_LABEL]]).sort(), [
      [1, firstHash],
      [2, newHash],
    ]);
  });
});
