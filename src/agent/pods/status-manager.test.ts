import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KubeObject } from '../../api/types.js';
import { PODS, startCluster, type Cluster } from '../../controllers/workload-testkit.js';
import type { NodeFacts } from '../contracts.js';
import { computePodStatus, type PodStatus } from './status.js';
import { StatusManager } from './status-manager.js';

const NODE: NodeFacts = { nodeName: 'n1', hostIP: '10.0.0.2', allocatable: { cpu: '2', memory: '2Gi' } };

function statusOf(pod: KubeObject, restartCount: number): PodStatus {
  return computePodStatus({
    pod,
    observed: {
      uid: pod.metadata.uid!,
      name: pod.metadata.name!,
      namespace: 'default',
      sandboxes: [{ id: 'sb', attempt: 0, createdAt: 1, ready: true, ip: '10.1.0.9', additionalIps: [] }],
      containers: [
        {
          id: `c${restartCount}`,
          name: 'c',
          sandboxId: 'sb',
          init: false,
          restartCount,
          hash: '',
          graceSeconds: 30,
          state: 'running',
          createdAt: 2,
          startedAt: Date.parse('2025-01-01T00:00:00Z'),
          finishedAt: 0,
          exitCode: 0,
          reason: '',
          message: '',
          imageRef: 'img@sha256:00',
          logPath: '',
        },
      ],
    },
    node: NODE,
    runtimeName: 'atoll',
    failures: new Map(),
    probes: new Map(),
    terminal: false,
    now: new Date('2025-01-01T00:00:01Z'),
  });
}

describe('StatusManager against the API server', () => {
  let cluster: Cluster;
  let manager: StatusManager;
  const logs: string[] = [];

  before(async () => {
    cluster = await startCluster();
    manager = new StatusManager(cluster.client, (l) => logs.push(l), { retryInitialMs: 50 });
  });

  after(async () => {
    manager?.stop();
    await cluster?.close();
  });

  async function createPod(name: string): Promise<KubeObject> {
    return cluster.client.create(PODS, 'default', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name },
      spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'img:1' }] },
    });
  }

  it('patches the status subresource, newest status last, and nothing when unchanged', async () => {
    const pod = await createPod('one');
    for (let i = 0; i < 5; i++) manager.set(pod, statusOf(pod, i));
    await manager.flush();
    const stored = await cluster.client.get(PODS, 'default', 'one');
    const status = stored.status as PodStatus;
    assert.equal(status.phase, 'Running');
    assert.equal(status.podIP, '10.1.0.9');
    assert.equal(status.containerStatuses[0]?.restartCount, 4, 'the newest status won');
    assert.equal(status.containerStatuses[0]?.containerID, 'atoll://c4');
    manager.set(stored, statusOf(stored, 4));
    await manager.flush();
    const again = await cluster.client.get(PODS, 'default', 'one');
    assert.equal(again.metadata.resourceVersion, stored.metadata.resourceVersion, 'an unchanged status sends nothing');
  });

  it('does not touch a new pod that took the name of the one the status was for', async () => {
    const old = await createPod('two');
    await cluster.client.delete(PODS, 'default', 'two', { gracePeriodSeconds: 0 });
    const replacement = await createPod('two');
    manager.set(old, statusOf(old, 7));
    await manager.flush();
    const stored = await cluster.client.get(PODS, 'default', 'two');
    assert.equal(stored.metadata.uid, replacement.metadata.uid);
    assert.equal((stored.status as PodStatus).phase, 'Pending', 'the replacement keeps its own status');
    manager.set(old, statusOf(old, 8));
    await manager.flush();
    assert.equal((await cluster.client.get(PODS, 'default', 'two')).metadata.resourceVersion, stored.metadata.resourceVersion, 'later statuses for the old uid are dropped');
  });

  it('gives up quietly on a pod that is gone', async () => {
    const pod = await createPod('three');
    await cluster.client.delete(PODS, 'default', 'three', { gracePeriodSeconds: 0 });
    manager.set(pod, statusOf(pod, 1));
    await manager.flush();
    assert.ok(!logs.some((l) => l.includes('default/three')), logs.join('\n'));
  });
});
