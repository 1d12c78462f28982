import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { resource } from '../client/informer.js';
import { startCluster, type Cluster } from '../controllers/workload-testkit.js';
import { waitFor } from '../../test/support/wait.js';
import { NodeHeartbeat, STATUS_CHECK_MS } from './heartbeat.js';
import type { NodeIdentity } from './node-status.js';

const NODES = resource('nodes');
const LEASES = resource('coordination.k8s.io/leases');

describe('NodeHeartbeat', () => {
  let cluster: Cluster;
  let dataDir: string;
  let id: NodeIdentity;

  before(async () => {
    cluster = await startCluster();
    dataDir = await mkdtemp(join(tmpdir(), 'atoll-heartbeat-'));
    id = { nodeName: 'edge-hb', nodeIP: '192.0.2.10', port: 10250, podCidr: '10.244.7.0/24', handlers: ['runc', 'runv'], accelerator: 'tcg', runtimeVersion: 'atoll://0.1.0', dataDir };
  });
  after(async () => {
    await cluster.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('registers the Node with capacity, addresses, node info, handlers and a Ready condition, and creates its Lease', async () => {
    await new NodeHeartbeat(cluster.client, id, () => undefined).register();
    const node = await cluster.client.get(NODES, undefined, 'edge-hb');
    const status = node.status as Record<string, any>;
    assert.equal(node.metadata.labels?.['kubernetes.io/hostname'], 'edge-hb');
    // RuntimeClasses `runc` and `runv` select nodes by these; `atoll.dev/kvm` says what runv's VMs run on.
    assert.equal(node.metadata.labels?.['atoll.io/runtime-runc'], 'true');
    assert.equal(node.metadata.labels?.['atoll.io/runtime-runv'], 'true');
    assert.equal(node.metadata.labels?.['atoll.dev/kvm'], 'false');
    assert.equal((node.spec as { podCIDR: string }).podCIDR, '10.244.7.0/24');
    assert.match(status.capacity.cpu, /^\d+$/);
    assert.match(status.capacity.memory, /^\d+Ki$/);
    assert.equal(status.allocatable.pods, '110');
    assert.deepEqual(status.addresses, [
      { type: 'InternalIP', address: '192.0.2.10' },
      { type: 'Hostname', address: 'edge-hb' },
    ]);
    assert.equal(status.daemonEndpoints.kubeletEndpoint.Port, 10250);
    assert.equal(status.nodeInfo.containerRuntimeVersion, 'atoll://0.1.0');
    assert.deepEqual(status.runtimeHandlers.map((h: { name: string }) => h.name), ['runc', 'runv']);
    const ready = status.conditions.find((c: { type: string }) => c.type === 'Ready');
    assert.equal(ready.status, 'True');
    assert.ok(ready.lastHeartbeatTime && ready.lastTransitionTime);
    const lease = await cluster.client.get(LEASES, 'kube-node-lease', 'edge-hb');
    assert.equal((lease.spec as { holderIdentity: string }).holderIdentity, 'edge-hb');
    assert.equal(lease.metadata.ownerReferences?.[0]?.uid, node.metadata.uid);
  });

  it('re-registering keeps labels and taints others set, and renews the same Lease', async () => {
    await cluster.client.patch(NODES, undefined, 'edge-hb', 'merge', {
      metadata: { labels: { 'node-role.kubernetes.io/edge': '' } },
      spec: { taints: [{ key: 'example.com/dedicated', value: 'x', effect: 'NoSchedule' }] },
    });
    const before = await cluster.client.get(LEASES, 'kube-node-lease', 'edge-hb');
    await new Promise((r) => setTimeout(r, 5));
    await new NodeHeartbeat(cluster.client, { ...id, nodeIP: '192.0.2.11' }, () => undefined).register();
    const node = await cluster.client.get(NODES, undefined, 'edge-hb');
    assert.equal(node.metadata.labels?.['node-role.kubernetes.io/edge'], '');
    assert.equal((node.spec as { taints: unknown[] }).taints.length, 1);
    assert.equal((node.status as { addresses: { address: string }[] }).addresses[0]!.address, '192.0.2.11');
    const lease = await cluster.client.get(LEASES, 'kube-node-lease', 'edge-hb');
    assert.equal(lease.metadata.uid, before.metadata.uid);
    assert.notEqual((lease.spec as { renewTime: string }).renewTime, (before.spec as { renewTime: string }).renewTime);
  });

  it('re-registering without runv (it could not open) drops the runv and kvm labels, so runv pods stop landing here', async () => {
    await new NodeHeartbeat(cluster.client, { ...id, handlers: ['runc'], accelerator: undefined }, () => undefined).register();
    const labels = (await cluster.client.get(NODES, undefined, 'edge-hb')).metadata.labels ?? {};
    assert.equal(labels['atoll.io/runtime-runc'], 'true');
    assert.equal(labels['atoll.io/runtime-runv'], undefined);
    assert.equal(labels['atoll.dev/kvm'], undefined);
    assert.equal(labels['node-role.kubernetes.io/edge'], '', 'labels others set stay');
  });

  it('re-registering while runv is still opening keeps its labels and lists only runc in status; withdrawing runv drops them', async () => {
    await new NodeHeartbeat(cluster.client, id, () => undefined).register();
    const heartbeat = new NodeHeartbeat(cluster.client, { ...id, handlers: ['runc'], pendingHandlers: ['runv'], accelerator: undefined }, () => undefined);
    await heartbeat.register();
    const node = await cluster.client.get(NODES, undefined, 'edge-hb');
    const labels = node.metadata.labels ?? {};
    assert.equal(labels['atoll.io/runtime-runv'], 'true');
    assert.equal(labels['atoll.dev/kvm'], 'false');
    assert.deepEqual((node.status as { runtimeHandlers: { name: string }[] }).runtimeHandlers.map((h) => h.name), ['runc']);
    const stop = new AbortController();
    const running = heartbeat.run(stop.signal);
    try {
      heartbeat.withdrawHandler('runv');
      const after = await waitFor('the runv labels to go', async () => {
        const l = (await cluster.client.get(NODES, undefined, 'edge-hb')).metadata.labels ?? {};
        return l['atoll.io/runtime-runv'] === undefined ? l : undefined;
      }, STATUS_CHECK_MS / 2);
      assert.equal(after['atoll.dev/kvm'], undefined);
      assert.equal(after['atoll.io/runtime-runc'], 'true');
    } finally {
      stop.abort();
      await running;
    }
  });

  it('registers from run() by itself and reports the Autonomous condition from the cloud\'s reachability', async () => {
    let reachable = false;
    const stop = new AbortController();
    const running = new NodeHeartbeat(cluster.client, { ...id, nodeName: 'edge-auto' }, () => undefined, () => reachable).run(stop.signal);
    try {
      const autonomous = async () => {
        const node = await cluster.client.get(NODES, undefined, 'edge-auto');
        return (node.status as { conditions: { type: string; status: string; reason: string }[] }).conditions.find((c) => c.type === 'Autonomous');
      };
      const offline = await waitFor('the node registered with Autonomous', autonomous);
      assert.deepEqual([offline.status, offline.reason], ['True', 'CloudUnreachable']);
      reachable = true;
      const online = await waitFor('Autonomous to turn False', async () => ((await autonomous())?.status === 'False' ? autonomous() : undefined), STATUS_CHECK_MS * 3);
      assert.equal(online!.reason, 'CloudReachable');
    } finally {
      stop.abort();
      await running;
    }
  });

  it('nudge() reports at once what changed, without waiting out the status period', async () => {
    let reachable = false;
    let asked = 0;
    const stop = new AbortController();
    const heartbeat = new NodeHeartbeat(cluster.client, { ...id, nodeName: 'edge-nudge' }, () => undefined, () => {
      asked++;
      return reachable;
    });
    const running = heartbeat.run(stop.signal);
    try {
      // Asked by registration, then by the status loop's first check: from here that loop waits a period.
      await waitFor('the status loop\'s first check', async () => asked >= 2);
      reachable = true;
      heartbeat.nudge();
      const autonomous = async () => {
        const node = await cluster.client.get(NODES, undefined, 'edge-nudge');
        return (node.status as { conditions: { type: string; status: string }[] }).conditions.find((c) => c.type === 'Autonomous')?.status;
      };
      // Well inside one status period: only the nudge can have sent it.
      await waitFor('Autonomous False after the nudge', async () => (await autonomous()) === 'False', STATUS_CHECK_MS / 2);
    } finally {
      stop.abort();
      await running;
    }
  });

  it('offerHandler() puts a handler opened later in status at once, and in the labels once the cloud is reachable', async () => {
    let reachable = false;
    let asked = 0;
    const stop = new AbortController();
    const heartbeat = new NodeHeartbeat(cluster.client, { ...id, nodeName: 'edge-offer', handlers: ['runc'], pendingHandlers: ['runv'], accelerator: undefined }, () => undefined, () => {
      asked++;
      return reachable;
    });
    const running = heartbeat.run(stop.signal);
    const node = () => cluster.client.get(NODES, undefined, 'edge-offer');
    const handlers = async () => ((await node()).status as { runtimeHandlers: { name: string }[] }).runtimeHandlers.map((h) => h.name);
    try {
      await waitFor('the status loop\'s first check', async () => asked >= 2);
      assert.deepEqual(await handlers(), ['runc']);
      heartbeat.offerHandler('runv', 'tcg');
      // Well inside one status period: only the offer's nudge can have sent it.
      await waitFor('runv in status.runtimeHandlers', async () => (await handlers()).includes('runv'), STATUS_CHECK_MS / 2);
      const offline = (await node()).metadata.labels ?? {};
      assert.equal(offline['atoll.io/runtime-runv'], undefined, 'labels wait for the cloud: EdgeHub takes only status writes offline');
      reachable = true;
      heartbeat.nudge();
      const labels = await waitFor('the runv label', async () => {
        const l = (await node()).metadata.labels ?? {};
        return l['atoll.io/runtime-runv'] === 'true' ? l : undefined;
      }, STATUS_CHECK_MS / 2);
      assert.equal(labels['atoll.dev/kvm'], 'false');
      assert.equal(labels['atoll.io/runtime-runc'], 'true');
    } finally {
      stop.abort();
      await running;
    }
  });
});
