import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiServer } from '../apiserver/server.js';
import type { Toleration } from '../api/scheduling.js';
import type { KubeObject } from '../api/types.js';
import { KubeClient, isNotFound } from '../client/client.js';
import { resource } from '../client/informer.js';
import { HollowNodes } from '../../test/support/hollow-nodes.js';
import { waitFor } from '../../test/support/wait.js';
import {
  ANNOTATION_AUTONOMY,
  ANNOTATION_AUTONOMY_DURATION,
  ANNOTATION_ORIGINAL_TOLERATIONS,
  autonomousTolerations,
  parseAutonomy,
  parseOriginalTolerations,
  protectsAutonomousNode,
  restoredTolerations,
} from './autonomy.js';
import { runControllers } from './manager.js';
import { TAINT_NOT_READY, TAINT_UNREACHABLE } from './node-lifecycle.js';

const unreachable = (seconds?: number): Toleration => ({ key: TAINT_UNREACHABLE, operator: 'Exists', effect: 'NoExecute', ...(seconds === undefined ? {} : { tolerationSeconds: seconds }) });
const notReady = (seconds?: number): Toleration => ({ key: TAINT_NOT_READY, operator: 'Exists', effect: 'NoExecute', ...(seconds === undefined ? {} : { tolerationSeconds: seconds }) });

describe('autonomy annotations', () => {
  it('parses the opt-in strictly', () => {
    assert.deepEqual(parseAutonomy(undefined), { state: 'off' });
    assert.deepEqual(parseAutonomy({ [ANNOTATION_AUTONOMY]: 'true' }), { state: 'on' });
    assert.deepEqual(parseAutonomy({ [ANNOTATION_AUTONOMY]: 'false' }), { state: 'off' });
    assert.deepEqual(parseAutonomy({ [ANNOTATION_AUTONOMY_DURATION]: '0' }), { state: 'on' });
    assert.deepEqual(parseAutonomy({ [ANNOTATION_AUTONOMY_DURATION]: '3600' }), { state: 'on', seconds: 3600 });
    assert.deepEqual(parseAutonomy({ [ANNOTATION_AUTONOMY]: 'true', [ANNOTATION_AUTONOMY_DURATION]: '60' }), { state: 'on', seconds: 60 });
    assert.deepEqual(parseAutonomy({ [ANNOTATION_AUTONOMY]: 'false', [ANNOTATION_AUTONOMY_DURATION]: '60' }), { state: 'off' });
    for (const [annotation, value] of [[ANNOTATION_AUTONOMY, 'yes'], [ANNOTATION_AUTONOMY, 'True'], [ANNOTATION_AUTONOMY_DURATION, '1h'], [ANNOTATION_AUTONOMY_DURATION, '-5'], [ANNOTATION_AUTONOMY_DURATION, ''], [ANNOTATION_AUTONOMY_DURATION, '1e3'], [ANNOTATION_AUTONOMY_DURATION, '99999999999999999999']] as const) {
      const a = parseAutonomy({ [annotation]: value });
      assert.equal(a.state, 'invalid', `${annotation}=${value}`);
      assert.equal(a.state === 'invalid' && a.annotation, annotation);
      assert.match(a.state === 'invalid' ? a.message : '', new RegExp(annotation.replace(/[./]/g, '\\$&')));
    }
  });

  it('protects for ever, or until the duration has run from the taint', () => {
    const node = (annotations: Record<string, string>, timeAdded?: string): KubeObject => ({
      metadata: { name: 'n', annotations },
      spec: timeAdded ? { taints: [{ key: TAINT_UNREACHABLE, effect: 'NoExecute', timeAdded }] } : {},
    });
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(protectsAutonomousNode(node({ [ANNOTATION_AUTONOMY]: 'true' }, '2026-01-01T00:00:00Z'), t0 + 1e9), true);
    assert.equal(protectsAutonomousNode(node({ [ANNOTATION_AUTONOMY_DURATION]: '60' }), t0), true, 'not yet tainted');
    assert.equal(protectsAutonomousNode(node({ [ANNOTATION_AUTONOMY_DURATION]: '60' }, '2026-01-01T00:00:00Z'), t0 + 59_000), true);
    assert.equal(protectsAutonomousNode(node({ [ANNOTATION_AUTONOMY_DURATION]: '60' }, '2026-01-01T00:00:00Z'), t0 + 60_000), false);
    assert.equal(protectsAutonomousNode(node({ [ANNOTATION_AUTONOMY_DURATION]: 'soon' }), t0), false);
    assert.equal(protectsAutonomousNode(node({}), t0), false);
  });
});

describe('toleration rewriting', () => {
  const other: Toleration = { key: 'dedicated', operator: 'Equal', value: 'edge', effect: 'NoSchedule' };

  it('bounds the existing tolerations and adds missing ones', () => {
    assert.deepEqual(autonomousTolerations([other, unreachable(300)], undefined), [other, unreachable(), notReady()]);
    assert.deepEqual(autonomousTolerations([notReady(300), unreachable(300)], 600), [notReady(600), unreachable(600)]);
    const wildcard: Toleration = { operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 30 };
    assert.deepEqual(autonomousTolerations([wildcard], undefined), [wildcard, unreachable(), notReady()], 'key-less tolerations are not edited');
  });

  it('restores the saved seconds, and neutralises the tolerations it had to add', () => {
    const original = [other, unreachable(300)];
    const changed = autonomousTolerations(original, undefined);
    assert.deepEqual(restoredTolerations(changed, original), [other, unreachable(300), notReady(0)]);
    assert.deepEqual(restoredTolerations(autonomousTolerations([unreachable()], 60), [unreachable()]), [unreachable(), notReady(0)]);
  });

  it('rejects a saved annotation that is not a list of tolerations', () => {
    assert.throws(() => parseOriginalTolerations('{'), /original-tolerations: not JSON/);
    assert.throws(() => parseOriginalTolerations('{"a":1}'), /must be a JSON array/);
    assert.deepEqual(parseOriginalTolerations('[]'), []);
  });
});

const GRACE_S = 2;
const PERIOD_S = 0.5;
/** What the non-autonomous pods tolerate: long past the grace period, well within the test. */
const TOLERATION_S = 2;

describe('autonomy against a real API server', () => {
  let dir: string;
  let server: ApiServer;
  let client: KubeClient;
  let hollow: HollowNodes;
  const abort = new AbortController();
  let running: Promise<void> | undefined;
  const nodes = resource('nodes');
  const pods = resource('pods');
  let lastIp = 0;

  async function pod(name: string, node: string, extra: { labels?: Record<string, string>; tolerations?: Toleration[]; ownerReferences?: object[] } = {}): Promise<void> {
    await client.create(pods, 'default', {
      metadata: { name, labels: extra.labels, ownerReferences: extra.ownerReferences },
      spec: { containers: [{ name: 'c', image: 'busybox', ports: [{ name: 'http', containerPort: 8080 }] }], terminationGracePeriodSeconds: 0, tolerations: extra.tolerations },
    });
    await client.createSubresource(pods, 'default', name, 'binding', { apiVersion: 'v1', kind: 'Binding', metadata: { name }, target: { apiVersion: 'v1', kind: 'Node', name: node } });
    const ip = `10.0.0.${++lastIp}`;
    const status = { phase: 'Running', podIP: ip, conditions: [{ type: 'ContainersReady', status: 'True' }, { type: 'Ready', status: 'True' }] };
    // The server can answer 409 to a patch racing the controller's own pod patch: write again.
    await waitFor(`the status of ${name}`, () => client.patch(pods, 'default', name, 'strategic', { status }, { subresource: 'status' }));
  }

  async function getPod(name: string): Promise<KubeObject | undefined> {
    try {
      return await client.get(pods, 'default', name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
  const tolerationsOf = async (name: string) => (((await getPod(name))?.spec as { tolerations?: Toleration[] }).tolerations ?? []);
  const saved = async (name: string) => (await getPod(name))?.metadata.annotations?.[ANNOTATION_ORIGINAL_TOLERATIONS];
  const evicted = async (name: string) => {
    const p = await getPod(name);
    return !p || !!p.metadata.deletionTimestamp;
  };
  const podReady = async (name: string) => ((await getPod(name))?.status as { conditions?: { type: string; status: string }[] }).conditions?.find((c) => c.type === 'Ready')?.status;
  const annotate = (node: string, annotations: Record<string, string | null>) => client.patch(nodes, undefined, node, 'merge', { metadata: { annotations } });
  const managed = (ts: Toleration[]) => ts.filter((t) => t.key === TAINT_UNREACHABLE || t.key === TAINT_NOT_READY).map((t) => [t.key, t.tolerationSeconds]);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-autonomy-'));
    server = await ApiServer.start({ dataDir: dir, port: 0, host: '127.0.0.1' });
    client = KubeClient.fromKubeconfig(server.kubeconfigPath);
    hollow = new HollowNodes(client, 500);
    for (const n of ['forever', 'bounded', 'plain', 'broken']) await hollow.add(n);
    await annotate('forever', { [ANNOTATION_AUTONOMY]: 'true' });
    await annotate('bounded', { [ANNOTATION_AUTONOMY_DURATION]: '600' });
    await annotate('broken', { [ANNOTATION_AUTONOMY_DURATION]: '10m' });
    running = runControllers(client, {
      signal: abort.signal,
      controllers: ['node-lifecycle', 'endpoints', 'autonomy'],
      nodeMonitorGracePeriodSeconds: GRACE_S,
      nodeMonitorPeriodSeconds: PERIOD_S,
    });
  });

  after(async () => {
    abort.abort();
    await running;
    hollow?.close();
    client?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('tolerates for ever on an autonomous node, keeping the originals', async () => {
    await pod('web-forever', 'forever', { labels: { app: 'web' }, tolerations: [unreachable(TOLERATION_S)] });
    await waitFor('for-ever tolerations', async () => (await saved('web-forever')) !== undefined);
    assert.deepEqual(managed(await tolerationsOf('web-forever')), [[TAINT_UNREACHABLE, undefined], [TAINT_NOT_READY, undefined]]);
    // DefaultTolerationSeconds admission had added not-ready for 300 s.
    assert.deepEqual(managed(JSON.parse((await saved('web-forever'))!)), [[TAINT_UNREACHABLE, TOLERATION_S], [TAINT_NOT_READY, 300]]);
  });

  it('bounds the tolerations by the autonomy duration', async () => {
    await pod('app-bounded', 'bounded');
    await waitFor('bounded tolerations', async () => (await saved('app-bounded')) !== undefined);
    assert.deepEqual(managed(await tolerationsOf('app-bounded')), [[TAINT_NOT_READY, 600], [TAINT_UNREACHABLE, 600]]);
  });

  it('leaves DaemonSet pods alone, and warns about a bad annotation', async () => {
    const owner = { apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: '5b0b5d5c-0000-4000-8000-000000000001', controller: true };
    await pod('agent-forever', 'forever', { ownerReferences: [owner] });
    await pod('app-broken', 'broken');
    const events = await waitFor('a warning on the misconfigured node', async () => {
      const list = await client.list(resource('events'), 'default');
      return list.items.find((e) => (e.involvedObject as { name?: string }).name === 'broken' && e.reason === 'InvalidAutonomy');
    });
    assert.equal(events.type, 'Warning');
    assert.match(String(events.message), /node\.atoll\.dev\/autonomy-duration.*"10m".*whole number of seconds/);
    // The next pod on the autonomous node is handled, so these two have been seen and passed over.
    await pod('sentinel', 'forever');
    await waitFor('the sentinel to be handled', async () => (await saved('sentinel')) !== undefined);
    for (const name of ['agent-forever', 'app-broken']) {
      assert.equal(await saved(name), undefined, name);
      assert.deepEqual(managed(await tolerationsOf(name)), [[TAINT_NOT_READY, 300], [TAINT_UNREACHABLE, 300]], name);
    }
  });

  it('restores the tolerations when autonomy is switched off', async () => {
    await annotate('bounded', { [ANNOTATION_AUTONOMY_DURATION]: null });
    await waitFor('the saved tolerations to be restored', async () => (await saved('app-bounded')) === undefined);
    assert.deepEqual(managed(await tolerationsOf('app-bounded')), [[TAINT_NOT_READY, 300], [TAINT_UNREACHABLE, 300]]);
  });

  it('keeps the pods, their readiness and their endpoints of a lost autonomous node', async () => {
    await pod('web-plain', 'plain', { labels: { app: 'web' }, tolerations: [unreachable(TOLERATION_S)] });
    await client.create(resource('services'), 'default', {
      metadata: { name: 'web' },
      spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'http' }] },
    });
    const ipOf = async (name: string) => ((await getPod(name))!.status as { podIP: string }).podIP;
    const ipForever = await ipOf('web-forever');
    const ipPlain = await ipOf('web-plain');
    const readyIps = async () => {
      const ep = await client.get(resource('endpoints'), 'default', 'web');
      return ((ep.subsets ?? []) as { addresses?: { ip: string }[] }[]).flatMap((s) => (s.addresses ?? []).map((a) => a.ip));
    };
    const sliceReady = async (ip: string) => {
      const slices = await client.list(resource('discovery.k8s.io/endpointslices'), 'default', { labelSelector: 'kubernetes.io/service-name=web' });
      return slices.items.flatMap((s) => (s.endpoints ?? []) as { addresses: string[]; conditions: { ready: boolean } }[]).find((e) => e.addresses.includes(ip))?.conditions.ready;
    };
    await waitFor('both pods in the endpoints', async () => (await readyIps()).length === 2);

    hollow.stop('forever');
    hollow.stop('plain');
    await waitFor('the plain node\'s pod to be evicted', () => evicted('web-plain'), 20_000);
    const taint = await waitFor('the autonomous node to be tainted unreachable', async () => {
      const taints = ((await client.get(nodes, undefined, 'forever')).spec as { taints?: { key: string; effect: string; timeAdded?: string }[] }).taints ?? [];
      return taints.find((t) => t.key === TAINT_UNREACHABLE && t.effect === 'NoExecute' && t.timeAdded);
    });
    // Let the pod's original toleration run out, and a few more check periods pass.
    const due = Date.parse(taint.timeAdded!) + (TOLERATION_S + 1 + 4 * PERIOD_S) * 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
    const node = await client.get(nodes, undefined, 'forever');
    assert.equal((node.status as { conditions: { type: string; status: string }[] }).conditions.find((c) => c.type === 'Ready')?.status, 'Unknown');
    assert.equal(await evicted('web-forever'), false, 'the autonomous node keeps its pod');
    assert.equal(await podReady('web-forever'), 'True', 'its pod stays Ready');
    await waitFor('the evicted pod to leave the endpoints', async () => !(await readyIps()).includes(ipPlain));
    assert.deepEqual(await readyIps(), [ipForever], 'its endpoint stays ready');
    assert.equal(await sliceReady(ipForever), true);

    // kube's node controller (on a managed cluster) would flip Ready; the kubelet's ContainersReady still stands.
    await waitFor('Ready=False on web-forever', () => client.patch(pods, 'default', 'web-forever', 'strategic', { status: { conditions: [{ type: 'Ready', status: 'False' }] } }, { subresource: 'status' }));
    // A pod added after the flip, on a live node: once it shows, the controller has seen the flip.
    await pod('web-marker', 'bounded', { labels: { app: 'web' } });
    const ipMarker = await ipOf('web-marker');
    await waitFor('the marker pod in the endpoints', async () => (await readyIps()).includes(ipMarker));
    assert.deepEqual((await readyIps()).sort(), [ipForever, ipMarker].sort(), 'the endpoint stays ready on the kubelet\'s last word');
    assert.equal(await sliceReady(ipForever), true);
  });
});

describe('autonomy under a node-lifecycle controller that knows nothing of it (managed Kubernetes)', () => {
  let dir: string;
  let server: ApiServer;
  let client: KubeClient;
  let hollow: HollowNodes;
  const abort = new AbortController();
  let running: Promise<void> | undefined;
  const pods = resource('pods');

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-autonomy-managed-'));
    server = await ApiServer.start({ dataDir: dir, port: 0, host: '127.0.0.1' });
    client = KubeClient.fromKubeconfig(server.kubeconfigPath);
    hollow = new HollowNodes(client, 500);
    await hollow.add('edge');
    await hollow.add('cloud');
    await client.patch(resource('nodes'), undefined, 'edge', 'merge', { metadata: { annotations: { [ANNOTATION_AUTONOMY]: 'true' } } });
    running = runControllers(client, {
      signal: abort.signal,
      controllers: ['node-lifecycle', 'autonomy'],
      nodeMonitorGracePeriodSeconds: GRACE_S,
      nodeMonitorPeriodSeconds: PERIOD_S,
      protect: () => false,
    });
  });

  after(async () => {
    abort.abort();
    await running;
    hollow?.close();
    client?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the pods through their tolerations alone', async () => {
    for (const [name, node] of [['on-edge', 'edge'], ['on-cloud', 'cloud']] as const) {
      await client.create(pods, 'default', { metadata: { name }, spec: { containers: [{ name: 'c', image: 'busybox' }], terminationGracePeriodSeconds: 0, tolerations: [unreachable(TOLERATION_S)] } });
      await client.createSubresource(pods, 'default', name, 'binding', { apiVersion: 'v1', kind: 'Binding', metadata: { name }, target: { apiVersion: 'v1', kind: 'Node', name: node } });
    }
    await waitFor('for-ever tolerations on the edge pod', async () => (await client.get(pods, 'default', 'on-edge')).metadata.annotations?.[ANNOTATION_ORIGINAL_TOLERATIONS]);
    hollow.stop('edge');
    hollow.stop('cloud');
    await waitFor('the cloud pod to be evicted', async () => {
      const p = await client.get(pods, 'default', 'on-cloud').catch((err: unknown) => (isNotFound(err) ? undefined : Promise.reject(err)));
      return !p || !!p.metadata.deletionTimestamp;
    }, 20_000);
    const taint = await waitFor('the edge node to be tainted unreachable', async () => {
      const taints = ((await client.get(resource('nodes'), undefined, 'edge')).spec as { taints?: { key: string; effect: string; timeAdded?: string }[] }).taints ?? [];
      return taints.find((t) => t.key === TAINT_UNREACHABLE && t.effect === 'NoExecute' && t.timeAdded);
    });
    const due = Date.parse(taint.timeAdded!) + (TOLERATION_S + 1 + 4 * PERIOD_S) * 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
    const edge = await client.get(pods, 'default', 'on-edge');
    assert.equal(edge.metadata.deletionTimestamp, undefined, 'the autonomous node keeps its pod past its original toleration');
  });
});
