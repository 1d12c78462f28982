import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KubeObject } from '../api/types.js';
import { KubeClient, isNotFound, type Resource } from '../client/client.js';
import { resource } from '../client/informer.js';
import { SharedInformers } from './controller.js';
import { startCluster, type Cluster } from './workload-testkit.js';
import { NamespaceController } from './namespace.js';
import { waitFor } from '../../test/support/wait.js';

const SETTLE_MS = 1500;


describe('namespace controller', () => {
  let cluster: Cluster;
  let client: KubeClient;
  const namespaces = resource('namespaces');

  async function find(r: Resource, namespace: string | undefined, name: string): Promise<KubeObject | undefined> {
    try {
      return await client.get(r, namespace, name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  before(async () => {
    cluster = await startCluster();
    client = cluster.client;
    const informers = new SharedInformers(client);
    const controller = new NamespaceController(client, informers);
    informers.start(cluster.signal);
    cluster.start(controller);
  });

  after(async () => {
    await cluster?.close();
  });

  it('empties a deleted namespace of every kind, waits for finalizers, then lets it go', async () => {
    await client.create(namespaces, undefined, { metadata: { name: 'doomed' } });
    await client.create(resource('configmaps'), 'doomed', { metadata: { name: 'cm' } });
    await client.create(resource('configmaps'), 'doomed', { metadata: { name: 'held', finalizers: ['atoll.test/hold'] } });
    await client.create(resource('secrets'), 'doomed', { metadata: { name: 's' } });
    await client.create(resource('services'), 'doomed', { metadata: { name: 'svc' }, spec: { ports: [{ port: 80 }] } });
    await client.create(resource('pods'), 'doomed', { metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } });
    await client.create(resource('apps/deployments'), 'doomed', {
      metadata: { name: 'd' },
      spec: { selector: { matchLabels: { app: 'd' } }, template: { metadata: { labels: { app: 'd' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
    });
    await client.create(resource('configmaps'), 'default', { metadata: { name: 'bystander' } });

    await client.delete(namespaces, undefined, 'doomed');
    const terminating = await find(namespaces, undefined, 'doomed');
    assert.equal((terminating?.status as { phase?: string }).phase, 'Terminating');

    for (const [r, name] of [['configmaps', 'cm'], ['secrets', 's'], ['services', 'svc'], ['pods', 'p'], ['apps/deployments', 'd']] as const) {
      await waitFor(`${r} ${name} to be deleted`, async () => !(await find(resource(r), 'doomed', name)));
    }
    await waitFor('the held config map to be marked for deletion', async () => !!(await find(resource('configmaps'), 'doomed', 'held'))?.metadata.deletionTimestamp);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const waiting = await find(namespaces, undefined, 'doomed');
    assert.ok(waiting, 'the namespace waits for content with finalizers');
    assert.ok((waiting.spec as { finalizers?: string[] }).finalizers?.includes('kubernetes'));

    await client.patch(resource('configmaps'), 'doomed', 'held', 'merge', { metadata: { finalizers: null } });
    await waitFor('the namespace to be deleted', async () => !(await find(namespaces, undefined, 'doomed')));
    assert.ok(await find(resource('configmaps'), 'default', 'bystander'), 'other namespaces are untouched');
  });

  it('leaves namespaces that are not being deleted alone', async () => {
    await client.create(namespaces, undefined, { metadata: { name: 'alive' } });
    await client.create(resource('configmaps'), 'alive', { metadata: { name: 'cm' } });
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    assert.ok(await find(resource('configmaps'), 'alive', 'cm'));
  });
});
