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
import type { Pod } from '../scheduler/types.js';
import { startComponentThread, type ComponentThread } from './thread.js';

describe('control-plane components on threads', () => {
  let dir: string;
  let server: ApiServer;
  let client: KubeClient;
  let nodes: HollowNodes;
  const threads: ComponentThread[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-component-thread-'));
    server = await ApiServer.start({ dataDir: dir, port: 0, host: '127.0.0.1' });
    client = KubeClient.fromKubeconfig(server.kubeconfigPath);
    nodes = new HollowNodes(client, 60_000);
  });

  after(async () => {
    await Promise.all(threads.map((t) => t.stop()));
    nodes?.close();
    client?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('runs the scheduler and the controllers, which create and bind pods, and stop when asked', async () => {
    const { caPem, certPem, keyPem } = server.admin;
    const credentials = { server: server.url, caPem, certPem, keyPem };
    const scheduler = startComponentThread(credentials, 'kube-scheduler', { name: 'scheduler' });
    const controllers = startComponentThread(credentials, 'kube-controller-manager', { name: 'controllers', controllers: ['replicaset'] });
    threads.push(scheduler, controllers);
    await nodes.add('w-1');
    await client.create(resource('pods'), 'default', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'threaded' }, spec: { containers: [{ name: 'c', image: 'atoll.local/pause:latest' }] } });
    const node = await eventually(async () => (await client.get<Pod>(resource('pods'), 'default', 'threaded')).spec?.nodeName, 15_000, 'threaded to be bound');
    assert.equal(node, 'w-1');
    await client.create(resource('apps/replicasets'), 'default', {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: { name: 'rs' },
      spec: { replicas: 2, selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i' }] } } },
    });
    await eventually(async () => (await client.list(resource('pods'), 'default', { labelSelector: 'a=b' })).items.length === 2, 15_000, 'the ReplicaSet pods');
    for (const t of threads.splice(0)) {
      await t.stop();
      assert.equal(await t.exited, 0);
    }
  });
});
