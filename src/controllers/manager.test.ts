import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiServer } from '../apiserver/server.js';
import { KubeClient, isNotFound } from '../client/client.js';
import { resource } from '../client/informer.js';
import type { Controller, SharedInformers } from './controller.js';
import { runControllers } from './manager.js';
import { waitFor } from '../../test/support/wait.js';



describe('runControllers', () => {
  let dir: string;
  let server: ApiServer;
  let client: KubeClient;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-manager-'));
    server = await ApiServer.start({ dataDir: dir, port: 0, host: '127.0.0.1' });
    client = KubeClient.fromKubeconfig(server.kubeconfigPath);
  });

  after(async () => {
    client.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs the built-in controllers and extra ones on shared informers until aborted', async () => {
    const abort = new AbortController();
    let given: SharedInformers | undefined;
    let extraRan = false;
    const extra = (informers: SharedInformers): Controller[] => {
      given = informers;
      return [{ name: 'extra', run: async (signal) => {
        extraRan = true;
        await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
      } }];
    };
    const done = runControllers(client, { signal: abort.signal, gcDiscoveryPeriodSeconds: 1 }, extra);

    const cms = resource('configmaps');
    const owner = await client.create(cms, 'default', { metadata: { name: 'owner' } });
    await client.create(cms, 'default', { metadata: { name: 'dep', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata.uid! }] } });
    await client.create(resource('services'), 'default', { metadata: { name: 'svc' }, spec: { selector: { app: 'x' }, ports: [{ port: 80 }] } });
    await waitFor('the endpoints controller', async () => client.get(resource('endpoints'), 'default', 'svc').then(() => true, () => false));
    await client.delete(cms, 'default', 'owner');
    await waitFor('the garbage collector', async () => client.get(cms, 'default', 'dep').then(() => false, (err) => isNotFound(err)));

    assert.ok(extraRan);
    assert.ok(given, 'extra controllers get the shared informers');
    assert.equal(given.get(resource('pods')), given.get(resource('pods')), 'one informer per resource');
    abort.abort();
    await done;
  });
});
