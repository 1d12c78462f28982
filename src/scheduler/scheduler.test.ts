import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { eventually } from '../../test/e2e/harness.js';
import { HollowNodes } from '../../test/support/hollow-nodes.js';
import { ApiServer } from '../apiserver/server.js';
import { KubeClient } from '../client/client.js';
import { resource } from '../client/informer.js';
import { runScheduler } from './scheduler.js';
import type { KubeObject } from '../api/types.js';
import type { Pod } from './types.js';

const PODS = resource('pods');
const NS = 'default';
/** Hollow nodes renew their Lease this rarely here: the scheduler does not read Leases. */
const LEASE_RENEW_MS = 60_000;

interface EventObject extends KubeObject {
  reason: string;
  message: string;
  involvedObject: { name: string };
}

function pod(name: string, spec: Record<string, unknown> = {}, requests: Record<string, string> = { cpu: '100m', memory: '64Mi' }): object {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name },
    spec: { containers: [{ name: 'c', image: 'atoll.local/pause:latest', resources: { requests } }], ...spec },
  };
}

describe('scheduler against a real API server', () => {
  let dir: string;
  let server: ApiServer;
  let client: KubeClient;
  let nodes: HollowNodes;
  const stop = new AbortController();
  let running: Promise<void>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-scheduler-'));
    server = await ApiServer.start({ dataDir: dir, port: 0, host: '127.0.0.1' });
    client = KubeClient.fromKubeconfig(server.kubeconfigPath);
    nodes = new HollowNodes(client, LEASE_RENEW_MS);
    running = runScheduler(client, { signal: stop.signal, log: () => undefined });
  });

  after(async () => {
    stop.abort();
    await running;
    nodes?.close();
    client?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const getPod = (name: string) => client.get<Pod>(PODS, NS, name);
  const boundNode = (name: string) => eventually(async () => (await getPod(name)).spec?.nodeName, 15_000, `${name} to be bound`);
  const failedScheduling = (name: string) =>
    eventually(async () => {
      const events = (await client.list<EventObject>(resource('events'), NS)).items;
      return events.find((e) => e.involvedObject.name === name && e.reason === 'FailedScheduling');
    }, 15_000, `FailedScheduling for ${name}`);

  it('leaves a pod Pending when it fits only without its overhead, naming the insufficient resource', async () => {
    await nodes.add('overhead-1', { cpu: '1', memory: '1Gi', labels: { suite: 'overhead' } });
    await client.create(resource('node.k8s.io/runtimeclasses'), undefined, {
      apiVersion: 'node.k8s.io/v1',
      kind: 'RuntimeClass',
      metadata: { name: 'vm' },
      handler: 'runv',
      overhead: { podFixed: { cpu: '300m' } },
    });
    const selector = { nodeSelector: { suite: 'overhead' } };
    // The overhead RuntimeClass admission copies from the class, written out as admission leaves it.
    const created = await client.create<Pod>(PODS, NS, pod('with-overhead', { ...selector, runtimeClassName: 'vm', overhead: { cpu: '300m' } }, { cpu: '800m', memory: '64Mi' }));
    assert.deepEqual(created.spec?.overhead, { cpu: '300m' });
    const event = await failedScheduling('with-overhead');
    assert.match(event.message, /^0\/\d+ nodes are available: (.*, )?1 Insufficient cpu[,.]/);
    assert.doesNotMatch(event.message, /preemption/);
    const pending = await getPod('with-overhead');
    assert.equal(pending.spec?.nodeName, undefined);
    const condition = await eventually(async () => (await getPod('with-overhead')).status?.conditions?.find((c) => c.type === 'PodScheduled'));
    assert.equal(condition.status, 'False');
    assert.equal(condition.reason, 'Unschedulable');
    assert.equal(condition.message, event.message);

    // The same requests without the overhead fit the same node.
    await client.create(PODS, NS, pod('without-overhead', selector, { cpu: '800m', memory: '64Mi' }));
    assert.equal(await boundNode('without-overhead'), 'overhead-1');
    assert.equal((await getPod('with-overhead')).spec?.nodeName, undefined);
  });

  it('places pods only on nodes matching a nodeSelector merged from their RuntimeClass', async () => {
    await client.create(resource('node.k8s.io/runtimeclasses'), undefined, {
      apiVersion: 'node.k8s.io/v1',
      kind: 'RuntimeClass',
      metadata: { name: 'runv' },
      handler: 'runv',
      scheduling: { nodeSelector: { 'atoll.dev/runtime': 'runv' } },
    });
    await nodes.add('rc-plain', { labels: { suite: 'runtimeclass' } });
    await nodes.add('rc-runv', { labels: { suite: 'runtimeclass', 'atoll.dev/runtime': 'runv' } });
    const names = ['rc-0', 'rc-1', 'rc-2', 'rc-3', 'rc-4', 'rc-5'];
    for (const name of names) {
      await client.create(PODS, NS, pod(name, { runtimeClassName: 'runv', nodeSelector: { suite: 'runtimeclass', 'atoll.dev/runtime': 'runv' } }));
    }
    for (const name of names) assert.equal(await boundNode(name), 'rc-runv');
    const scheduled = await eventually(async () => {
      const events = (await client.list<EventObject>(resource('events'), NS)).items;
      return events.find((e) => e.involvedObject.name === 'rc-0' && e.reason === 'Scheduled');
    }, 15_000, 'Scheduled event for rc-0');
    assert.equal(scheduled.message, 'Successfully assigned default/rc-0 to rc-runv');
  });

  it('keeps pods off nodes with an untolerated NoSchedule taint, and places them when tolerated', async () => {
    await nodes.add('tainted-1', { labels: { suite: 'taints' }, taints: [{ key: 'dedicated', value: 'edge', effect: 'NoSchedule' }] });
    const selector = { nodeSelector: { suite: 'taints' } };
    await client.create(PODS, NS, pod('untolerating', selector));
    const event = await failedScheduling('untolerating');
    assert.match(event.message, /1 node\(s\) had untolerated taint \{dedicated: edge\}/);
    assert.equal((await getPod('untolerating')).spec?.nodeName, undefined);

    await client.create(PODS, NS, pod('tolerating', { ...selector, tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'edge', effect: 'NoSchedule' }] }));
    assert.equal(await boundNode('tolerating'), 'tainted-1');
    assert.equal((await getPod('untolerating')).spec?.nodeName, undefined);
  });

  it('schedules an unschedulable pod once a suitable node is added', async () => {
    await client.create(PODS, NS, pod('waits-for-node', { nodeSelector: { suite: 'late' } }));
    await failedScheduling('waits-for-node');
    await nodes.add('late-1', { labels: { suite: 'late' } });
    assert.equal(await boundNode('waits-for-node'), 'late-1');
  });

  it('does not overcommit a node when many pods are bound at once, and fills the room a deleted pod leaves', async () => {
    await nodes.add('small-1', { cpu: '1', memory: '8Gi', labels: { suite: 'burst' } });
    const names = Array.from({ length: 14 }, (_, i) => `burst-${i}`);
    await Promise.all(names.map((name) => client.create(PODS, NS, pod(name, { nodeSelector: { suite: 'burst' } }, { cpu: '100m', memory: '16Mi' }))));
    const bound = await eventually(async () => {
      const pods = (await client.list<Pod>(PODS, NS)).items.filter((p) => p.metadata.name!.startsWith('burst-'));
      const events = (await client.list<EventObject>(resource('events'), NS)).items;
      const failed = new Set(events.filter((e) => e.reason === 'FailedScheduling' && e.involvedObject.name.startsWith('burst-')).map((e) => e.involvedObject.name));
      const placed = pods.filter((p) => p.spec?.nodeName);
      // Settled: every pod is either bound or reported unschedulable.
      return placed.length + failed.size === names.length && placed;
    }, 15_000, 'burst pods to settle');
    assert.equal(bound.length, 10);

    const victim = bound[0]!.metadata.name!;
    await client.delete(PODS, NS, victim, { gracePeriodSeconds: 0 });
    const refilled = await eventually(async () => {
      const pods = (await client.list<Pod>(PODS, NS)).items.filter((p) => p.metadata.name!.startsWith('burst-'));
      return pods.length === names.length - 1 && pods.filter((p) => p.spec?.nodeName).length === 10 && pods;
    }, 15_000, 'a pending burst pod to take the freed room');
    assert.equal(refilled.filter((p) => !p.spec?.nodeName).length, 3);
  });

  it("spreads a ReplicaSet's replicas over nodes that resource scoring alone would not use", async () => {
    const labels = { app: 'spread-web' };
    const rs = await client.create<KubeObject>(resource('apps/replicasets'), NS, {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'spread-web' },
      spec: { replicas: 3, selector: { matchLabels: labels }, template: { metadata: { labels }, spec: { containers: [{ name: 'c', image: 'atoll.local/pause:latest' }] } } },
    });
    // LeastAllocated alone puts every pod on the big node; default spreading outweighs it.
    await nodes.add('spread-big', { cpu: '64', memory: '256Gi', labels: { suite: 'spread' } });
    await nodes.add('spread-small', { cpu: '2', memory: '4Gi', labels: { suite: 'spread' } });
    const ownerReferences = [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'spread-web', uid: rs.metadata.uid, controller: true }];
    const names = ['spread-web-0', 'spread-web-1', 'spread-web-2'];
    await Promise.all(names.map((name) => client.create(PODS, NS, { ...pod(name, { nodeSelector: { suite: 'spread' } }), metadata: { name, labels, ownerReferences } })));
    const placed = await Promise.all(names.map(boundNode));
    assert.deepEqual(new Set(placed), new Set(['spread-big', 'spread-small']));
    assert.equal(placed.filter((n) => n === 'spread-big').length, 2);

    // The same pods without an owner are not spread: all land on the big node.
    const loose = ['loose-0', 'loose-1', 'loose-2'];
    await Promise.all(loose.map((name) => client.create(PODS, NS, { ...pod(name, { nodeSelector: { suite: 'spread' } }), metadata: { name, labels: { app: 'loose' } } })));
    assert.deepEqual(await Promise.all(loose.map(boundNode)), ['spread-big', 'spread-big', 'spread-big']);
  });

  it('keeps pods with required anti-affinity apart, reports FailedScheduling when it cannot, and places the pod once a node is added', async () => {
    await nodes.add('anti-1', { labels: { suite: 'anti' } });
    await nodes.add('anti-2', { labels: { suite: 'anti' } });
    const labels = { app: 'anti' };
    const spec = {
      nodeSelector: { suite: 'anti' },
      affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: labels }, topologyKey: 'kubernetes.io/hostname' }] } },
    };
    const create = (name: string) => client.create(PODS, NS, { ...pod(name, spec), metadata: { name, labels } });
    await create('anti-0');
    await create('anti-1');
    const placed = [await boundNode('anti-0'), await boundNode('anti-1')];
    assert.deepEqual(placed.sort(), ['anti-1', 'anti-2']);

    await create('anti-2');
    const event = await failedScheduling('anti-2');
    assert.match(event.message, /^0\/\d+ nodes are available: .*2 node\(s\) didn't match pod anti-affinity rules[,.]/);
    assert.equal((await getPod('anti-2')).spec?.nodeName, undefined);

    await nodes.add('anti-3', { labels: { suite: 'anti' } });
    assert.equal(await boundNode('anti-2'), 'anti-3');
  });
});
