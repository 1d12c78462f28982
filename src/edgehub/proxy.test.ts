import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiError } from '../api/errors.js';
import type { KubeObject, WatchEvent } from '../api/types.js';
import { issueClientCert, issueServingCert } from '../apiserver/auth/pki.js';
import { KubeClient } from '../client/client.js';
import { resource } from '../client/informer.js';
import { startCluster, type Cluster } from '../controllers/workload-testkit.js';
import { waitFor } from '../../test/support/wait.js';
import { EdgeCache } from './cache.js';
import { Link } from './link-testkit.js';
import { EdgeHub } from './proxy.js';

const PODS = resource('pods');
const CONFIGMAPS = resource('configmaps');
const SECRETS = resource('secrets');
const NODES = resource('nodes');
const LEASES = { group: 'coordination.k8s.io', version: 'v1', resource: 'leases', namespaced: true };
const NODE_LEASES = 'kube-node-lease';
const NS = 'edge';
/** Fast probing so the test sees health transitions quickly; thresholds stay at their defaults. */
const HEALTH = { periodMs: 100, timeoutMs: 500 };
/** Frequent bookmarks so the test sees them soon. */
const BOOKMARK_PERIOD_MS = 100;

function pod(name: string, labels: Record<string, string>, nodeName: string): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS, labels }, spec: { nodeName, terminationGracePeriodSeconds: 0, containers: [{ name: 'app', image: 'registry.local/app:1' }] } };
}

/** A GET over EdgeHub's unix socket, as a local agent without TLS would send it. */
function overSocket(socketPath: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path, headers: { 'User-Agent': 'kubelet/1', Accept: 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString()) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

function names(items: KubeObject[]): string[] {
  return items.map((o) => o.metadata.name!).sort();
}

async function rejectsWith(p: Promise<unknown>, code: number, message: RegExp): Promise<ApiError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ApiError, String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return err;
  }
  assert.fail(`expected a ${code} answer`);
}

describe('EdgeHub', () => {
  let cluster: Cluster;
  let dir: string;
  let link: Link;
  let spare: Link;
  let hub: EdgeHub;
  let kubelet: KubeClient;
  let other: KubeClient;
  const watches = new AbortController();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-edgehub-'));
    cluster = await startCluster();
    const admin = cluster.server.admin;
    const pki = cluster.server.pki!;
    await cluster.client.create(resource('namespaces'), undefined, { metadata: { name: NS } });
    await cluster.client.create(PODS, NS, pod('a', { app: 'web' }, 'node-a'));
    await cluster.client.create(PODS, NS, pod('b', { app: 'web' }, 'node-b'));
    await cluster.client.create(PODS, NS, pod('c', { app: 'db' }, 'node-a'));
    await cluster.client.create(CONFIGMAPS, NS, { metadata: { name: 'settings' }, data: { mode: 'edge' } });
    link = await Link.start(cluster.server.url);
    spare = await Link.start(cluster.server.url);
    const serving = await issueServingCert(pki, { cn: 'edgehub', hosts: ['127.0.0.1'] });
    const token = randomBytes(24).toString('base64url');
    hub = await EdgeHub.start({
      endpoints: [link.url],
      credentials: { caPem: admin.caPem, certPem: admin.certPem, keyPem: admin.keyPem },
      cachePath: join(dir, 'cache.db'),
      listen: { host: '127.0.0.1', port: 0 },
      serving,
      token,
      health: HEALTH,
      nodeName: 'node-a',
      bookmarkPeriodMs: BOOKMARK_PERIOD_MS,
    });
    kubelet = new KubeClient({ server: hub.url, caPem: pki.caCertPem, token }, 'kubelet/v1.30.0 (linux/amd64)');
    other = new KubeClient({ server: hub.url, caPem: pki.caCertPem, token }, 'log-agent/0.1');
  });

  after(async () => {
    watches.abort();
    kubelet?.close();
    other?.close();
    await hub?.close();
    await link?.close();
    await spare?.close();
    await cluster?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a client without the token', async () => {
    const stranger = new KubeClient({ server: hub.url, caPem: cluster.server.pki!.caCertPem }, 'kubelet/1');
    try {
      await rejectsWith(stranger.list(PODS, NS), 401, /Unauthorized/);
    } finally {
      stranger.close();
    }
  });

  let onlineWatch: Promise<void>;
  const watched: WatchEvent[] = [];

  it('passes GET, LIST and WATCH through while online', async () => {
    assert.equal(hub.health.healthy, true);
    const all = await kubelet.list(PODS, NS);
    assert.deepEqual(names(all.items), ['a', 'b', 'c']);
    const mine = await kubelet.list(PODS, NS, { fieldSelector: 'spec.nodeName=node-a' });
    assert.deepEqual(names(mine.items), ['a', 'c']);
    const cm = await kubelet.get(CONFIGMAPS, NS, 'settings');
    assert.equal((cm as { data?: Record<string, string> }).data?.mode, 'edge');
    await kubelet.get(resource('namespaces'), undefined, NS);

    onlineWatch = kubelet.watch(PODS, NS, { resourceVersion: all.metadata.resourceVersion }, (e) => watched.push(e), watches.signal);
    await cluster.client.create(PODS, NS, pod('d', { app: 'web' }, 'node-a'));
    await waitFor('the watch to deliver pod d', async () => watched.some((e) => e.type === 'ADDED' && e.object.metadata.name === 'd'));
  });

  it('serves reads from the cache while the cloud is unreachable', async () => {
    link.cut();
    await waitFor('the cloud to be marked unhealthy', async () => !hub.health.healthy);
    await onlineWatch; // ended by EdgeHub when the cloud went away, so the client can relist

    const a = await kubelet.get(PODS, NS, 'a');
    assert.equal(a.metadata.name, 'a');
    assert.equal(a.kind, 'Pod');
    const cm = await kubelet.get(CONFIGMAPS, NS, 'settings');
    assert.equal((cm as { data?: Record<string, string> }).data?.mode, 'edge');
    await rejectsWith(kubelet.get(PODS, NS, 'missing'), 404, /not found/);
    assert.equal((await kubelet.get(resource('namespaces'), undefined, NS)).metadata.name, NS, 'a Namespace is cached under its own name');

    const web = await kubelet.list(PODS, NS, { labelSelector: 'app=web' });
    assert.deepEqual(names(web.items), ['a', 'b', 'd'], 'pod d came from the watch');
    const mine = await kubelet.list(PODS, NS, { fieldSelector: 'spec.nodeName=node-a', labelSelector: 'app=web' });
    assert.deepEqual(names(mine.items), ['a', 'd']);
    assert.ok(Number(mine.metadata.resourceVersion) > 0, 'a cached list carries a resourceVersion');
  });

  it('answers 503, never an empty list, for what the cache cannot answer', async () => {
    await rejectsWith(kubelet.list(PODS, 'kube-system'), 503, /cloud is unreachable and nothing is cached for list pods in namespace "kube-system"/);
    await rejectsWith(kubelet.list(SECRETS, NS), 503, /nothing is cached/);
    await rejectsWith(other.list(PODS, NS), 503, /client log-agent/);
    await rejectsWith(kubelet.get(SECRETS, NS, 'token'), 503, /nothing is cached/);
    const err = await rejectsWith(kubelet.create(CONFIGMAPS, NS, { metadata: { name: 'new' } }), 503, /node is offline/);
    assert.equal(err.reason, 'ServiceUnavailable');
  });

  it('reports the cloud state in /healthz and /metrics', async () => {
    const health = JSON.parse((await kubelet.raw('GET', '/healthz')).text) as { cloud: { healthy: boolean } };
    assert.equal(health.cloud.healthy, false);
    const metrics = (await kubelet.raw('GET', '/metrics')).text;
    assert.match(metrics, /^edgehub_cloud_healthy 0$/m);
    assert.match(metrics, /^edgehub_cache_requests_total\{resource="pods",result="hit"\} [1-9]/m);
    assert.match(metrics, /^edgehub_cache_requests_total\{resource="secrets",result="miss"\} 2$/m);
    assert.match(metrics, /^edgehub_proxied_bytes_total\{direction="from_cloud"\} [1-9]/m);
  });

  it('holds an offline watch open and ends it when the cloud returns', async () => {
    const events: WatchEvent[] = [];
    const held = kubelet.watch(PODS, NS, { resourceVersion: '0' }, (e) => events.push(e), watches.signal);
    let ended = false;
    void held.then(() => (ended = true));
    await waitFor('the watch to be held', async () => /^edgehub_offline_watches 1$/m.test((await kubelet.raw('GET', '/metrics')).text));
    await cluster.client.delete(PODS, NS, 'b'); // deleted in the cloud while the node is offline
    assert.equal(ended, false);

    link.heal();
    await held;
    assert.equal(hub.health.healthy, true);
    assert.deepEqual(events, []);

    // The client relists against the cloud; the unselected list prunes b from the cache.
    const all = await kubelet.list(PODS, NS);
    assert.deepEqual(names(all.items), ['a', 'c', 'd']);
    const cached = hub.cache.list({ component: 'kubelet', group: '', version: 'v1', resource: 'pods', namespace: NS });
    assert.deepEqual(names(cached!.items), ['a', 'c', 'd']);
  });

  it('fails over to the next healthy endpoint', async () => {
    const dir2 = await mkdtemp(join(tmpdir(), 'atoll-edgehub-failover-'));
    const admin = cluster.server.admin;
    const socketPath = join(dir2, 'edgehub.sock');
    const hub2 = await EdgeHub.start({
      endpoints: [link.url, spare.url],
      credentials: { caPem: admin.caPem, certPem: admin.certPem, keyPem: admin.keyPem },
      cachePath: join(dir2, 'cache.db'),
      listen: { socketPath },
      health: HEALTH,
    });
    try {
      assert.equal(hub2.health.current(), link.url);
      assert.equal(hub2.url, `unix://${socketPath}`);
      assert.deepEqual(names((JSON.parse(await overSocket(socketPath, `/api/v1/namespaces/${NS}/pods`)) as { items: KubeObject[] }).items), ['a', 'c', 'd']);
      link.cut();
      await waitFor('failover to the spare endpoint', async () => hub2.health.current() === spare.url);
      link.heal();
      await waitFor('return to the preferred endpoint', async () => hub2.health.current() === link.url);
    } finally {
      link.heal();
      await hub2.close();
      await rm(dir2, { recursive: true, force: true });
    }
  });
  it('accepts node status, pod status and Lease writes offline and replays them on reconnect', async () => {
    await waitFor('the cloud to be healthy after the failover test', async () => hub.health.healthy);
    await cluster.client.create(NODES, undefined, { metadata: { name: 'node-a' } });
    try {
      await cluster.client.create(resource('namespaces'), undefined, { metadata: { name: NODE_LEASES } });
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 409)) throw err;
    }
    await cluster.client.create(LEASES, NODE_LEASES, { metadata: { name: 'node-a' }, spec: { holderIdentity: 'node-a', leaseDurationSeconds: 40 } });
    await cluster.client.create(PODS, NS, pod('e', { app: 'web' }, 'node-b'));
    // What a kubelet reads before it writes; this fills the cache.
    await kubelet.get(NODES, undefined, 'node-a');
    const lease = await kubelet.get(LEASES, NODE_LEASES, 'node-a');
    const podA = await kubelet.get(PODS, NS, 'a');
    const podE = await kubelet.get(PODS, NS, 'e');

    link.cut();
    await waitFor('the cloud to be marked unhealthy', async () => !hub.health.healthy);
    const events: WatchEvent[] = [];
    const held = kubelet.watch(PODS, NS, { fieldSelector: 'spec.nodeName=node-a' }, (e) => events.push(e), watches.signal);

    const node = await kubelet.patch(NODES, undefined, 'node-a', 'strategic', { status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady' }] } }, { subresource: 'status' });
    assert.equal((node as { status?: { conditions?: { type: string }[] } }).status?.conditions?.[0]?.type, 'Ready');
    const renewTime = '2026-01-01T00:00:00.000000Z';
    await kubelet.update(LEASES, { ...lease, spec: { ...(lease.spec as object), renewTime } });
    // A PUT of status carrying the resourceVersion the node knew, which the cloud will have moved past.
    const running = await kubelet.update(PODS, { ...podA, status: { phase: 'Running', podIP: '10.1.2.3' } }, { subresource: 'status' });
    assert.equal((running as { status?: { phase?: string } }).status?.phase, 'Running');
    assert.equal((await kubelet.get(PODS, NS, 'a') as { status?: { podIP?: string } }).status?.podIP, '10.1.2.3', 'the cache answers with the accepted write');
    await waitFor('the held watch to see the local write', async () => events.some((e) => e.type === 'MODIFIED' && e.object.metadata.name === 'a'));

    const EVENTS = resource('events');
    await kubelet.create(EVENTS, NS, { metadata: { name: 'a.started' }, involvedObject: { kind: 'Pod', namespace: NS, name: 'a' }, reason: 'Started', message: 'offline', type: 'Normal' });
    await rejectsWith(kubelet.patch(PODS, NS, 'a', 'merge', { spec: { activeDeadlineSeconds: 5 } }), 503, /node is offline/);
    await rejectsWith(kubelet.delete(PODS, NS, 'c'), 503, /node is offline/);
    // Only this node's own objects are written offline.
    const stranger = await rejectsWith(kubelet.update(PODS, { ...podE, status: { phase: 'Running' } }, { subresource: 'status' }), 503, /the pod is bound to node "node-b", and only pods bound to this node \("node-a"\)/);
    assert.equal(stranger.reason, 'ServiceUnavailable');
    await rejectsWith(kubelet.patch(NODES, undefined, 'node-b', 'merge', { status: { phase: 'Running' } }, { subresource: 'status' }), 503, /only this node's own status \(node "node-a"\)/);
    await rejectsWith(kubelet.patch(LEASES, NODE_LEASES, 'node-b', 'merge', { spec: { renewTime } }), 503, /only this node's own Lease \(kube-node-lease\/node-a\)/);
    await rejectsWith(kubelet.patch(LEASES, 'kube-system', 'node-a', 'merge', { spec: { renewTime } }), 503, /only this node's own Lease/);
    assert.equal(hub.cache.queueDepth(), 4);

    // Meanwhile the cloud changes pod a; the replay must not clobber that.
    await cluster.client.patch(PODS, NS, 'a', 'merge', { metadata: { labels: { tier: 'front' } } });

    link.heal();
    await held;
    await waitFor('the queue to drain', async () => hub.cache.queueDepth() === 0);
    const cloudNode = await cluster.client.get(NODES, undefined, 'node-a');
    assert.equal((cloudNode as { status?: { conditions?: { type: string; status: string }[] } }).status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
    const cloudLease = await cluster.client.get(LEASES, NODE_LEASES, 'node-a');
    assert.equal((cloudLease.spec as { renewTime?: string }).renewTime, renewTime);
    const cloudPod = await cluster.client.get(PODS, NS, 'a');
    assert.equal((cloudPod as { status?: { podIP?: string } }).status?.podIP, '10.1.2.3');
    assert.equal(cloudPod.metadata.labels?.tier, 'front', 'the cloud-side change survived the replay');
    const event = await cluster.client.get(resource('events'), NS, 'a.started');
    assert.equal((event as { reason?: string }).reason, 'Started');
    const metrics = (await kubelet.raw('GET', '/metrics')).text;
    assert.match(metrics, /^edgehub_replayed_writes_total\{result="resolved_conflict"\} 1$/m);
    assert.match(metrics, /^edgehub_write_queue_depth 0$/m);
  });

  it('serves a KubeClient on its unix socket, and keeps a Lease write\'s answer so the next renewal is accepted offline', async () => {
    await waitFor('the cloud to be healthy after the replay test', async () => hub.health.healthy);
    const dir2 = await mkdtemp(join(tmpdir(), 'atoll-edgehub-socket-'));
    const admin = cluster.server.admin;
    const hub2 = await EdgeHub.start({
      endpoints: [link.url],
      credentials: { caPem: admin.caPem, certPem: admin.certPem, keyPem: admin.keyPem },
      cachePath: join(dir2, 'cache.db'),
      listen: { socketPath: join(dir2, 'edgehub.sock') },
      health: HEALTH,
      nodeName: 'node-b',
    });
    const agent = new KubeClient({ server: hub2.url }, 'atoll-agent/node-b');
    try {
      await cluster.client.create(LEASES, NODE_LEASES, { metadata: { name: 'node-b' }, spec: { holderIdentity: 'node-b', leaseDurationSeconds: 40 } });
      // The node only ever writes its Lease; it never reads it.
      await agent.patch(LEASES, NODE_LEASES, 'node-b', 'merge', { spec: { renewTime: '2026-01-01T00:00:00.000000Z' } });
      link.cut();
      await waitFor('the cloud to be marked unhealthy', async () => !hub2.health.healthy);
      const offline = '2026-01-01T00:00:10.000000Z';
      const renewed = await agent.patch(LEASES, NODE_LEASES, 'node-b', 'merge', { spec: { renewTime: offline } });
      assert.equal((renewed.spec as { renewTime?: string }).renewTime, offline);
      assert.equal(hub2.cache.queueDepth(), 1);
      link.heal();
      await waitFor('the queue to drain', async () => hub2.cache.queueDepth() === 0);
      const cloudLease = await cluster.client.get(LEASES, NODE_LEASES, 'node-b');
      assert.equal((cloudLease.spec as { renewTime?: string }).renewTime, offline);
    } finally {
      agent.close();
      link.heal();
      await hub2.close();
      await rm(dir2, { recursive: true, force: true });
    }
  });
  it('caches only the components, resources and verbs it is told to, and says so offline', async () => {
    await waitFor('the cloud to be healthy after the socket test', async () => hub.health.healthy);
    const admin = cluster.server.admin;
    const credentials = { caPem: admin.caPem, certPem: admin.certPem, keyPem: admin.keyPem };
    const dir2 = await mkdtemp(join(tmpdir(), 'atoll-edgehub-policy-'));
    const listen = { socketPath: join(dir2, 'edgehub.sock') };
    await assert.rejects(
      EdgeHub.start({ endpoints: [link.url], credentials, cachePath: join(dir2, 'bad.db'), listen, cache: { resources: ['Pods'] } }),
      /cache\.resources: "Pods" is not a plural resource name/,
    );
    await assert.rejects(EdgeHub.start({ endpoints: [link.url], credentials, cachePath: join(dir2, 'bad.db'), listen, cache: { verbs: ['create'] } }), /cache\.verbs: "create" is not a cacheable verb/);
    const hub3 = await EdgeHub.start({
      endpoints: [link.url],
      credentials,
      cachePath: join(dir2, 'cache.db'),
      listen,
      health: HEALTH,
      cache: { components: ['kubelet'], resources: ['pods', 'leases'], verbs: ['get', 'list'] },
    });
    const node = new KubeClient({ server: hub3.url }, 'kubelet/v1.30.0');
    const logs = new KubeClient({ server: hub3.url }, 'log-agent/0.1');
    try {
      assert.equal(hub3.nodeName, undefined, 'an admin certificate names no node');
      // Online everything is proxied, cached or not.
      assert.deepEqual(names((await node.list(PODS, NS)).items), ['a', 'c', 'd', 'e']);
      assert.equal(((await node.get(CONFIGMAPS, NS, 'settings')) as { data?: Record<string, string> }).data?.mode, 'edge');
      assert.deepEqual(names((await logs.list(PODS, NS)).items), ['a', 'c', 'd', 'e']);
      await node.get(LEASES, NODE_LEASES, 'node-a');

      link.cut();
      await waitFor('the cloud to be marked unhealthy', async () => !hub3.health.healthy);
      assert.deepEqual(names((await node.list(PODS, NS)).items), ['a', 'c', 'd', 'e'], 'a cached read is served');
      const notCached = await rejectsWith(node.get(CONFIGMAPS, NS, 'settings'), 503, /the node is offline .* was refused: resource "configmaps" is not cached/);
      assert.equal(notCached.reason, 'ServiceUnavailable');
      await rejectsWith(logs.list(PODS, NS), 503, /was refused: reads of client component "log-agent" are not cached/);
      await rejectsWith(node.watch(PODS, NS, {}, () => undefined, watches.signal), 503, /was refused: watch requests are not cached/);
      await rejectsWith(
        node.patch(LEASES, NODE_LEASES, 'node-a', 'merge', { spec: { renewTime: '2026-01-01T00:00:20.000000Z' } }),
        503,
        /cannot be accepted locally: EdgeHub does not know which node it serves/,
      );
      assert.equal(hub3.cache.queueDepth(), 0);
    } finally {
      node.close();
      logs.close();
      link.heal();
      await hub3.close();
      await rm(dir2, { recursive: true, force: true });
    }
  });

  it('takes its node from a system:node client certificate, and keeps the dropped-Event count across restarts', async () => {
    const pki = cluster.server.pki!;
    const nodeCert = await issueClientCert(pki, { cn: 'system:node:node-a', groups: ['system:nodes'] });
    const credentials = { caPem: pki.caCertPem, certPem: nodeCert.certPem, keyPem: nodeCert.keyPem };
    const dir2 = await mkdtemp(join(tmpdir(), 'atoll-edgehub-identity-'));
    const cachePath = join(dir2, 'cache.db');
    const listen = { socketPath: join(dir2, 'edgehub.sock') };
    try {
      await assert.rejects(
        EdgeHub.start({ endpoints: [link.url], credentials, cachePath, listen, nodeName: 'node-z' }),
        /nodeName "node-z" differs from the client certificate's node "node-a"/,
      );
      // A previous run dropped two Events from a buffer of one.
      const earlier = EdgeCache.open(cachePath);
      const event = { component: 'kubelet', group: '', version: 'v1', resource: 'events', namespace: NS, subresource: '', method: 'POST', contentType: 'application/json', body: '{}', userAgent: 'kubelet/1' };
      for (const i of [1, 2, 3]) earlier.bufferEvent({ ...event, name: `e${i}`, path: `/e/${i}` }, 1);
      earlier.close();

      const hub4 = await EdgeHub.start({ endpoints: [link.url], credentials, cachePath, listen, health: HEALTH });
      try {
        assert.equal(hub4.nodeName, 'node-a');
        assert.match(await overSocket(listen.socketPath, '/metrics'), /^edgehub_dropped_events_total 2$/m);
      } finally {
        await hub4.close();
      }
    } finally {
      await rm(dir2, { recursive: true, force: true });
    }
  });

  it('sends BOOKMARKs with the cache\'s resourceVersion on an offline watch that allows them, and the client resumes from it', async () => {
    await waitFor('the cloud to be healthy after the policy test', async () => hub.health.healthy);
    await kubelet.list(PODS, NS); // what a reflector lists before it watches
    link.cut();
    await waitFor('the cloud to be marked unhealthy', async () => !hub.health.healthy);

    const cached = await kubelet.list(PODS, NS);
    const events: WatchEvent[] = [];
    const held = kubelet.watch(PODS, NS, { resourceVersion: cached.metadata.resourceVersion, allowWatchBookmarks: true }, (e) => events.push(e), watches.signal);
    const plain: WatchEvent[] = [];
    const heldPlain = kubelet.watch(PODS, NS, { resourceVersion: cached.metadata.resourceVersion }, (e) => plain.push(e), watches.signal);
    await waitFor('two bookmarks', async () => events.length >= 2);
    for (const e of events) {
      assert.equal(e.type, 'BOOKMARK');
      assert.deepEqual(e.object, { apiVersion: 'v1', kind: 'Pod', metadata: { resourceVersion: cached.metadata.resourceVersion } });
    }
    // Created in the cloud during the partition; the client must see it after resuming.
    await cluster.client.create(PODS, NS, pod('f', { app: 'web' }, 'node-a'));

    link.heal();
    await held;
    await heldPlain;
    assert.deepEqual(plain, [], 'no bookmarks unless the client allows them');
    const resumed: WatchEvent[] = [];
    const resume = new AbortController();
    const watching = kubelet.watch(PODS, NS, { resourceVersion: events.at(-1)!.object.metadata.resourceVersion }, (e) => resumed.push(e), resume.signal);
    try {
      await waitFor('the resumed watch to deliver pod f', async () => resumed.some((e) => e.type === 'ADDED' && e.object.metadata.name === 'f'));
    } finally {
      resume.abort();
      await watching;
    }
  });
});
