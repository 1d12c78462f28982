import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KubeObject } from '../api/types.js';
import { KubeClient, isNotFound } from '../client/client.js';
import { resource } from '../client/informer.js';
import { SharedInformers } from './controller.js';
import { startCluster, type Cluster } from './workload-testkit.js';
import { ENDPOINTSLICE_CONTROLLER, EndpointsController, LABEL_MANAGED_BY, LABEL_SERVICE_NAME, resolvePort } from './endpoints.js';
import { waitFor } from '../../test/support/wait.js';

const SETTLE_MS = 1000;


interface Address {
  ip: string;
  targetRef?: { name: string };
}
interface Subset {
  addresses?: Address[];
  notReadyAddresses?: Address[];
  ports?: { name?: string; port: number; protocol: string }[];
}
interface SliceEndpoint {
  addresses: string[];
  conditions: { ready: boolean; serving: boolean; terminating: boolean };
  targetRef: { name: string };
}

describe('resolvePort', () => {
  const pod: KubeObject = { metadata: {}, spec: { containers: [{ ports: [{ name: 'http', containerPort: 8080 }, { name: 'dns', containerPort: 53, protocol: 'UDP' }] }] } };
  it('resolves numbers, names with protocol, and defaults to the service port', () => {
    assert.equal(resolvePort(pod, { port: 80, targetPort: 9090 }), 9090);
    assert.equal(resolvePort(pod, { port: 80, targetPort: 'http' }), 8080);
    assert.equal(resolvePort(pod, { port: 53, targetPort: 'dns' }), undefined, 'TCP by default, the port is UDP');
    assert.equal(resolvePort(pod, { port: 53, targetPort: 'dns', protocol: 'UDP' }), 53);
    assert.equal(resolvePort(pod, { port: 80, targetPort: 'missing' }), undefined);
    assert.equal(resolvePort(pod, { port: 80 }), 80);
  });
});

describe('endpoints controller', () => {
  let cluster: Cluster;
  let client: KubeClient;
  const ns = 'default';
  const pods = resource('pods');
  const endpoints = resource('endpoints');
  const slicesR = resource('discovery.k8s.io/endpointslices');

  async function pod(name: string, labels: Record<string, string>, ip: string, ready: boolean, finalizers?: string[]): Promise<void> {
    await client.create(pods, ns, {
      metadata: { name, labels, finalizers },
      spec: { containers: [{ name: 'c', image: 'busybox', ports: [{ name: 'http', containerPort: 8080 }] }] },
    });
    await setStatus(name, ip, ready);
  }
  const setStatus = (name: string, ip: string, ready: boolean) =>
    client.patch(pods, ns, name, 'strategic', { status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }] } }, { subresource: 'status' });

  async function find(name: string): Promise<KubeObject | undefined> {
    try {
      return await client.get(endpoints, ns, name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
  const subsets = async (name: string) => ((await find(name))?.subsets ?? []) as Subset[];
  const ips = (s: Subset[], field: 'addresses' | 'notReadyAddresses') => s.flatMap((x) => x[field] ?? []).map((a) => a.ip).sort();
  const slices = async (service: string) =>
    (await client.list(slicesR, ns, { labelSelector: `${LABEL_SERVICE_NAME}=${service}` })).items;
  const sliceEndpoints = async (service: string) => (await slices(service)).flatMap((s) => (s.endpoints as SliceEndpoint[] | undefined) ?? []);

  before(async () => {
    cluster = await startCluster();
    client = cluster.client;
    const informers = new SharedInformers(client);
    const controller = new EndpointsController(client, informers);
    informers.start(cluster.signal);
    cluster.start(controller);
  });

  after(async () => {
    await cluster?.close();
  });

  it('follows pod readiness in Endpoints and EndpointSlices', async () => {
    await pod('web-1', { app: 'web' }, '10.1.0.1', true);
    await pod('web-2', { app: 'web' }, '10.1.0.2', false);
    await pod('other', { app: 'other' }, '10.1.0.9', true);
    await client.create(pods, ns, { metadata: { name: 'web-no-ip', labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } });
    const svc = await client.create(resource('services'), ns, {
      metadata: { name: 'web', labels: { tier: 'front' } },
      spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }, { name: 'admin', port: 9000, targetPort: 9001 }] },
    });

    const s = await waitFor('endpoints of web', async () => {
      const x = await subsets('web');
      return ips(x, 'addresses').length === 1 && ips(x, 'notReadyAddresses').length === 1 && x;
    });
    assert.deepEqual(ips(s, 'addresses'), ['10.1.0.1']);
    assert.deepEqual(ips(s, 'notReadyAddresses'), ['10.1.0.2']);
    assert.deepEqual(s[0]!.ports?.map((p) => [p.name, p.port, p.protocol]).sort(), [['admin', 9001, 'TCP'], ['http', 8080, 'TCP']]);
    assert.equal(s[0]!.addresses![0]!.targetRef?.name, 'web-1');

    const [slice, ...more] = await waitFor('an endpoint slice of web', async () => {
      const list = await slices('web');
      return list.length > 0 && (list[0]!.endpoints as unknown[] | undefined)?.length === 2 && list;
    });
    assert.equal(more.length, 0);
    assert.equal(slice!.addressType, 'IPv4');
    assert.equal(slice!.metadata.labels?.[LABEL_MANAGED_BY], ENDPOINTSLICE_CONTROLLER);
    assert.equal(slice!.metadata.labels?.tier, 'front');
    assert.equal(slice!.metadata.ownerReferences?.[0]?.uid, svc.metadata.uid);
    const byName = Object.fromEntries((slice!.endpoints as SliceEndpoint[]).map((e) => [e.targetRef.name, e.conditions]));
    assert.deepEqual(byName['web-1'], { ready: true, serving: true, terminating: false });
    assert.deepEqual(byName['web-2'], { ready: false, serving: false, terminating: false });

    await setStatus('web-2', '10.1.0.2', true);
    await setStatus('web-1', '10.1.0.1', false);
    await waitFor('readiness to flip', async () => {
      const x = await subsets('web');
      return ips(x, 'addresses').join() === '10.1.0.2' && ips(x, 'notReadyAddresses').join() === '10.1.0.1';
    });
    await waitFor('slices to follow', async () => {
      const e = await sliceEndpoints('web');
      return e.find((x) => x.targetRef.name === 'web-2')?.conditions.ready === true && e.find((x) => x.targetRef.name === 'web-1')?.conditions.ready === false;
    });

    await client.delete(pods, ns, 'web-1');
    await waitFor('a deleted pod to leave', async () => {
      const x = await subsets('web');
      return ips(x, 'notReadyAddresses').length === 0 && ips(x, 'addresses').join() === '10.1.0.2';
    });
    await waitFor('a deleted pod to leave the slice', async () => (await sliceEndpoints('web')).length === 1);
  });

  it('drops terminating pods from Endpoints but keeps them terminating in slices', async () => {
    await pod('api-1', { app: 'api' }, '10.2.0.1', true, ['atoll.test/hold']);
    await pod('api-2', { app: 'api' }, '10.2.0.2', true);
    await client.create(resource('services'), ns, { metadata: { name: 'api' }, spec: { selector: { app: 'api' }, ports: [{ port: 80, targetPort: 8080 }] } });
    await waitFor('both pods ready', async () => ips(await subsets('api'), 'addresses').length === 2);
    await client.delete(pods, ns, 'api-1');
    await waitFor('the terminating pod to leave Endpoints', async () => ips(await subsets('api'), 'addresses').join() === '10.2.0.2');
    const terminating = await waitFor('the slice to mark it terminating', async () =>
      (await sliceEndpoints('api')).find((e) => e.targetRef.name === 'api-1' && e.conditions.terminating));
    assert.deepEqual(terminating.conditions, { ready: false, serving: true, terminating: true });
    await client.patch(pods, ns, 'api-1', 'merge', { metadata: { finalizers: null } });
  });

  it('leaves services without a selector alone and cleans up after deleted services', async () => {
    await client.create(resource('services'), ns, { metadata: { name: 'manual' }, spec: { ports: [{ port: 80 }] } });
    await client.create(endpoints, ns, { metadata: { name: 'manual' }, subsets: [{ addresses: [{ ip: '192.0.2.1' }], ports: [{ port: 80 }] }] });
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    assert.deepEqual(ips(await subsets('manual'), 'addresses'), ['192.0.2.1']);
    assert.equal((await slices('manual')).length, 0);

    await client.create(resource('services'), ns, { metadata: { name: 'empty' }, spec: { selector: { app: 'none' }, ports: [{ port: 80 }] } });
    await waitFor('an empty Endpoints', async () => !!(await find('empty')));
    // Endpoints and EndpointSlices are written separately; the slice may land a moment later.
    await waitFor('one placeholder slice', async () => (await slices('empty')).length === 1);
    await client.delete(resource('services'), ns, 'empty');
    await waitFor('Endpoints to go with the service', async () => !(await find('empty')));
    await waitFor('slices to go with the service', async () => (await slices('empty')).length === 0);
  });
});
