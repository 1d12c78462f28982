import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AppsV1Api, CoreV1Api, KubeConfig, PatchStrategy, Watch, setHeaderOptions, type V1ConfigMap } from '@kubernetes/client-node';
import { eventually, startServer, type ServerProcess } from './harness.js';

describe('@kubernetes/client-node 1.4 against atoll server', () => {
  let server: ServerProcess;
  let kc: KubeConfig;
  let core: CoreV1Api;

  before(async () => {
    server = await startServer();
    kc = new KubeConfig();
    kc.loadFromFile(server.kubeconfig);
    core = kc.makeApiClient(CoreV1Api);
  });
  after(async () => {
    await server?.stop();
  });

  it('lists namespaces and creates, reads and lists objects', async () => {
    const namespaces = await core.listNamespace();
    const names = namespaces.items.map((n) => n.metadata?.name);
    for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) assert.ok(names.includes(ns), ns);

    const created = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'cfg', labels: { app: 'a' } }, data: { k: 'v' } } });
    assert.ok(created.metadata?.uid);
    assert.ok(created.metadata?.creationTimestamp instanceof Date);
    const read = await core.readNamespacedConfigMap({ name: 'cfg', namespace: 'default' });
    assert.equal(read.data?.k, 'v');
    const listed = await core.listNamespacedConfigMap({ namespace: 'default', labelSelector: 'app=a' });
    assert.deepEqual(listed.items.map((c) => c.metadata?.name), ['cfg']);

    const apps = kc.makeApiClient(AppsV1Api);
    const dep = await apps.createNamespacedDeployment({
      namespace: 'default',
      body: {
        metadata: { name: 'd' },
        spec: { selector: { matchLabels: { app: 'd' } }, template: { metadata: { labels: { app: 'd' } }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } },
      },
    });
    assert.equal(dep.spec?.replicas, 1);
    assert.equal(dep.spec?.strategy?.type, 'RollingUpdate');
  });

  it('patches with merge, JSON and strategic patches', async () => {
    await core.patchNamespacedConfigMap({ name: 'cfg', namespace: 'default', body: { data: { k2: 'v2' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    await core.patchNamespacedConfigMap(
      { name: 'cfg', namespace: 'default', body: [{ op: 'add', path: '/metadata/labels/extra', value: 'yes' }] },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
    const cm = await core.patchNamespacedConfigMap(
      { name: 'cfg', namespace: 'default', body: { metadata: { annotations: { s: 't' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
    );
    assert.deepEqual(cm.data, { k: 'v', k2: 'v2' });
    assert.equal(cm.metadata?.labels?.extra, 'yes');
    assert.equal(cm.metadata?.annotations?.s, 't');
  });

  it('refuses a stale update with 409 Conflict', async () => {
    const cm = await core.readNamespacedConfigMap({ name: 'cfg', namespace: 'default' });
    await core.replaceNamespacedConfigMap({ name: 'cfg', namespace: 'default', body: { ...cm, data: { k: 'fresh' } } });
    await assert.rejects(
      core.replaceNamespacedConfigMap({ name: 'cfg', namespace: 'default', body: { ...cm, data: { k: 'stale' } } }),
      (err: { code?: number; body?: string }) => err.code === 409 && /the object has been modified/.test(String(err.body)),
    );
  });

  it('watches and sees ADDED, MODIFIED and DELETED', async () => {
    const seen: string[] = [];
    const list = await core.listNamespacedConfigMap({ namespace: 'default' });
    const watch = new Watch(kc);
    const req = await watch.watch(
      '/api/v1/namespaces/default/configmaps',
      { resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
      (type: string, obj: V1ConfigMap) => {
        if (obj.metadata?.name === 'w') seen.push(type);
      },
      () => {},
    );
    try {
      await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'w' } } });
      await core.patchNamespacedConfigMap({ name: 'w', namespace: 'default', body: { data: { a: 'b' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
      await core.deleteNamespacedConfigMap({ name: 'w', namespace: 'default' });
      await eventually(async () => seen.length >= 3, 10_000, 'three watch events');
      assert.deepEqual(seen, ['ADDED', 'MODIFIED', 'DELETED']);
    } finally {
      req.abort();
    }
  });

  it('gets Status errors the client can read', async () => {
    await assert.rejects(core.readNamespacedConfigMap({ name: 'missing', namespace: 'default' }), (err: { code?: number; body?: string }) => {
      const status = JSON.parse(String(err.body)) as { kind: string; reason: string; code: number };
      return err.code === 404 && status.kind === 'Status' && status.reason === 'NotFound' && status.code === 404;
    });
    await assert.rejects(core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'Bad_Name' } } }), (err: { code?: number; body?: string }) => {
      const status = JSON.parse(String(err.body)) as { reason: string; details: { causes: { field: string }[] } };
      return err.code === 422 && status.reason === 'Invalid' && status.details.causes[0]!.field === 'metadata.name';
    });
  });
});
