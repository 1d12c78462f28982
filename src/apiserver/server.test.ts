import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiClient } from '../../test/support/api-client.js';
import { SqliteStore } from '../store/sqlite.js';
import { ApiServer } from './server.js';

const cm = (name: string, extra: Record<string, unknown> = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { a: '1' }, ...extra });
const CMS = '/api/v1/namespaces/default/configmaps';

describe('atoll API server', () => {
  let dir: string;
  let server: ApiServer;
  let api: ApiClient;
  let store: SqliteStore;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-apiserver-'));
    store = SqliteStore.open(join(dir, 'state.db'));
    server = await ApiServer.start({ dataDir: dir, port: 0, host: '127.0.0.1', store });
    api = new ApiClient(server.kubeconfigPath);
  });
  after(async () => {
    api?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  describe('authentication and discovery', () => {
    it('refuses a request without credentials with 401 Status', async () => {
      const r = await api.request('GET', '/api/v1/namespaces', { anonymous: true });
      assert.equal(r.status, 401);
      assert.equal(r.json().kind, 'Status');
      assert.equal(r.json().reason, 'Unauthorized');
    });

    it('accepts the static admin token', async () => {
      const r = await api.request('GET', '/api/v1/namespaces', { token: server.admin.token });
      assert.equal(r.status, 200);
      assert.equal(r.json().kind, 'NamespaceList');
    });

    it('answers aggregated discovery with its exact content type, and the legacy form otherwise', async () => {
      const accept = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json';
      const agg = await api.request('GET', '/api', { accept });
      assert.equal(agg.headers['content-type'], 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList');
      const core = agg.json<{ items: { metadata: { name: string }; versions: { resources: { resource: string; scope: string }[] }[] }[] }>().items[0]!;
      assert.equal(core.metadata.name, '');
      assert.ok(core.versions[0]!.resources.some((r) => r.resource === 'pods' && r.scope === 'Namespaced'));
      const legacy = await api.request('GET', '/apis');
      assert.equal(legacy.json().kind, 'APIGroupList');
      const v1 = (await api.request('GET', '/api/v1')).json<{ resources: { name: string; singularName: string; kind: string; verbs: string[] }[] }>();
      const status = v1.resources.find((r) => r.name === 'pods/status')!;
      assert.equal(status.singularName, '');
      assert.deepEqual(status.verbs, ['get', 'patch', 'update']);
    });

    it('reports version 1.32', async () => {
      const v = (await api.request('GET', '/version')).json<{ gitVersion: string; minor: string }>();
      assert.equal(v.gitVersion, 'v1.32.0-atoll');
      assert.equal(v.minor, '32');
    });
  });

  describe('bad input', () => {
    it('400 for malformed JSON and YAML', async () => {
      const r = await api.request('POST', CMS, { raw: '{"metadata": {', contentType: 'application/json' });
      assert.equal(r.status, 400);
      assert.equal(r.json().reason, 'BadRequest');
      const y = await api.request('POST', CMS, { raw: 'metadata: [unclosed', contentType: 'application/yaml' });
      assert.equal(y.status, 400);
    });

    it('413 for a body over 3 MiB', async () => {
      const r = await api.request('POST', CMS, { body: cm('big', { data: { a: 'x'.repeat(3 * 1024 * 1024 + 10) } }) });
      assert.equal(r.status, 413);
      assert.equal(r.json().kind, 'Status');
    });

    it('404 for an unknown resource or group', async () => {
      assert.equal((await api.request('GET', '/api/v1/namespaces/default/widgets')).status, 404);
      assert.equal((await api.request('GET', '/apis/nope.example.com/v1/things')).status, 404);
    });

    it('415 for a patch with the wrong content type', async () => {
      await api.request('POST', CMS, { body: cm('p415') });
      const r = await api.request('PATCH', `${CMS}/p415`, { body: { data: { b: '2' } }, contentType: 'application/json' });
      assert.equal(r.status, 415);
      assert.equal(r.json().reason, 'UnsupportedMediaType');
    });

    it('422 with causes for invalid names and fields', async () => {
      const r = await api.request('POST', CMS, { body: cm('Not_Valid') });
      assert.equal(r.status, 422);
      const status = r.json<{ reason: string; details: { causes: { field: string; reason: string }[] } }>();
      assert.equal(status.reason, 'Invalid');
      assert.equal(status.details.causes[0]!.field, 'metadata.name');
    });

    it('400 when kind or namespace disagree with the URL', async () => {
      const r = await api.request('POST', CMS, { body: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'x' } } });
      assert.equal(r.status, 400);
      const ns = await api.request('POST', CMS, { body: cm('x', { metadata: { name: 'x', namespace: 'kube-system' } }) });
      assert.equal(ns.status, 400);
    });

    it('404 when creating in a namespace that does not exist', async () => {
      const r = await api.request('POST', '/api/v1/namespaces/ghost/configmaps', { body: cm('x') });
      assert.equal(r.status, 404);
      assert.match(r.json<{ message: string }>().message, /namespaces "ghost" not found/);
    });

    it('Strict field validation refuses unknown and duplicate fields; Warn warns', async () => {
      const strict = await api.request('POST', `${CMS}?fieldValidation=Strict`, { body: cm('strict', { bogus: 1 }) });
      assert.equal(strict.status, 400);
      assert.match(strict.body, /unknown field \\"bogus\\"/);
      const dup = await api.request('POST', `${CMS}?fieldValidation=Strict`, { raw: '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d","name":"d"}}' });
      assert.equal(dup.status, 400);
      assert.match(dup.body, /duplicate field/);
      const warn = await api.request('POST', `${CMS}?fieldValidation=Warn`, { body: cm('warned', { bogus: 1 }) });
      assert.equal(warn.status, 201);
      assert.match(String(warn.headers['warning']), /unknown field/);
      assert.equal(warn.json().bogus, undefined, 'unknown fields are dropped');
    });

    it('survives hundreds of malformed and random requests with the store intact', async () => {
      // The fuzzer writes only in its own namespace; everything elsewhere must stay exactly as it was.
      await api.request('POST', '/api/v1/namespaces', { body: { metadata: { name: 'fuzz' } } });
      await api.request('POST', '/api/v1/namespaces/fuzz/configmaps', { body: cm('target') });
      const FZ = '/api/v1/namespaces/fuzz/configmaps';
      const before = (await api.request('GET', CMS)).json<{ items: { metadata: { name: string; resourceVersion: string } }[] }>().items;
      let seed = 42;
      const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
      const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]!;
      const junk = () => {
        const kinds = [
          () => '{'.repeat(Math.floor(rnd() * 50)),
          () => JSON.stringify({ metadata: { name: pick(['', '-', 'a'.repeat(300), 'UPPER', '..', null, 5, {}]) } }),
          () => JSON.stringify({ apiVersion: pick(['v1', 'v2', 7, null]), kind: pick(['ConfigMap', 'Pod', [], '']), metadata: pick([null, [], 'x', { name: 'fuzz' }]), data: pick([null, 5, 'x', { a: 5 }, { 'bad key!': 'v' }]) }),
          () => Buffer.from(Array.from({ length: 64 }, () => Math.floor(rnd() * 256))).toString('latin1'),
          () => 'a: b: c: [',
          () => JSON.stringify([{ op: pick(['add', 'remove', 'bogus']), path: pick(['/data/x', '', '/metadata/name', 5]), value: 1 }]),
          () => JSON.stringify({ metadata: { $patch: pick(['delete', 'bogus']) }, data: { $retainKeys: 5 } }),
        ];
        return pick(kinds)();
      };
      const paths = [FZ, `${FZ}/fuzz`, `${FZ}/target`, '/api/v1/namespaces/fuzz/pods', '/apis/apps/v1/namespaces/fuzz/deployments', `${FZ}/target/status`, '/api/v1/namespaces/%ZZ/configmaps', `${FZ}?labelSelector=a%20in%20(`, `${FZ}?fieldSelector=bogus=1`, `${FZ}?limit=-1`, `${FZ}?watch=true&resourceVersion=abc`];
      const types = ['application/json', 'application/yaml', 'application/merge-patch+json', 'application/json-patch+json', 'application/strategic-merge-patch+json', 'application/apply-patch+yaml', 'text/plain', 'application/vnd.kubernetes.protobuf'];
      for (let i = 0; i < 300; i++) {
        const method = pick(['POST', 'PUT', 'PATCH', 'DELETE', 'GET']);
        const r = await api.request(method, pick(paths), method === 'GET' ? {} : { raw: junk(), contentType: pick(types) });
        assert.ok(r.status >= 200 && r.status < 500, `${method} answered ${r.status}: ${r.body}`);
        if (r.status >= 400 && r.body) assert.equal(r.json().kind, 'Status', r.body);
      }
      assert.equal((await api.request('GET', '/healthz')).status, 200);
      const afterList = (await api.request('GET', CMS)).json<{ items: { metadata: { name: string; resourceVersion: string } }[] }>().items;
      assert.deepEqual(afterList.map((c) => [c.metadata.name, c.metadata.resourceVersion]), before.map((c) => [c.metadata.name, c.metadata.resourceVersion]));
      const fuzzed = await api.request('GET', FZ);
      assert.equal(fuzzed.status, 200);
      for (const item of fuzzed.json<{ items: { metadata: { name: string } }[] }>().items) assert.match(item.metadata.name, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
    });
  });

  describe('storage semantics', () => {
    it('409 AlreadyExists on a duplicate create and Conflict on a stale update', async () => {
      const created = (await api.request('POST', CMS, { body: cm('occ') })).json<{ metadata: { resourceVersion: string; uid: string; creationTimestamp: string } }>();
      assert.ok(created.metadata.uid && created.metadata.creationTimestamp);
      const dup = await api.request('POST', CMS, { body: cm('occ') });
      assert.equal(dup.status, 409);
      assert.equal(dup.json().reason, 'AlreadyExists');
      const ok = await api.request('PUT', `${CMS}/occ`, { body: cm('occ', { metadata: { name: 'occ', resourceVersion: created.metadata.resourceVersion }, data: { a: '2' } }) });
      assert.equal(ok.status, 200);
      const stale = await api.request('PUT', `${CMS}/occ`, { body: cm('occ', { metadata: { name: 'occ', resourceVersion: created.metadata.resourceVersion }, data: { a: '3' } }) });
      assert.equal(stale.status, 409);
      assert.equal(stale.json().reason, 'Conflict');
    });

    it('bumps generation on spec changes only', async () => {
      const dep = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'gen' },
        spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i' }] } } },
      };
      const path = '/apis/apps/v1/namespaces/default/deployments';
      assert.equal((await api.request('POST', path, { body: dep })).json<{ metadata: { generation: number } }>().metadata.generation, 1);
      const labelled = await api.request('PATCH', `${path}/gen`, { body: { metadata: { labels: { x: 'y' } } }, contentType: 'application/merge-patch+json' });
      assert.equal(labelled.json<{ metadata: { generation: number } }>().metadata.generation, 1);
      const scaled = await api.request('PATCH', `${path}/gen`, { body: { spec: { replicas: 3 } }, contentType: 'application/merge-patch+json' });
      assert.equal(scaled.json<{ metadata: { generation: number } }>().metadata.generation, 2);
      const scale = await api.request('GET', `${path}/gen/scale`);
      assert.equal(scale.json<{ kind: string; spec: { replicas: number } }>().spec.replicas, 3);
    });

    it('pages a list with limit and continue', async () => {
      for (let i = 0; i < 5; i++) await api.request('POST', CMS, { body: cm(`page-${i}`, { metadata: { name: `page-${i}`, labels: { paged: 'yes' } } }) });
      const names: string[] = [];
      let token = '';
      let pages = 0;
      do {
        const r = (await api.request('GET', `${CMS}?labelSelector=paged%3Dyes&limit=2${token ? `&continue=${token}` : ''}`)).json<{ items: { metadata: { name: string } }[]; metadata: { continue?: string } }>();
        names.push(...r.items.map((i) => i.metadata.name));
        token = r.metadata.continue ?? '';
        pages++;
      } while (token);
      assert.deepEqual(names, ['page-0', 'page-1', 'page-2', 'page-3', 'page-4']);
      assert.equal(pages, 3);
    });

    it('serves Table output with kubectl columns', async () => {
      const r = await api.request('GET', CMS, { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' });
      const table = r.json<{ kind: string; columnDefinitions: { name: string }[]; rows: { cells: unknown[]; object: { kind: string } }[] }>();
      assert.equal(table.kind, 'Table');
      assert.deepEqual(table.columnDefinitions.map((c) => c.name), ['Name', 'Data', 'Age']);
      assert.equal(table.rows[0]!.object.kind, 'PartialObjectMetadata');
    });

    it('holds a pod bound to a node for its grace period, and deletes an unbound pod at once', async () => {
      const pods = '/api/v1/namespaces/default/pods';
      const pod = (name: string) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: { containers: [{ name: 'c', image: 'i' }] } });
      await api.request('POST', pods, { body: pod('unbound') });
      const gone = await api.request('DELETE', `${pods}/unbound`);
      assert.equal(gone.status, 200);
      assert.equal((await api.request('GET', `${pods}/unbound`)).status, 404);

      await api.request('POST', pods, { body: pod('bound') });
      const bind = await api.request('POST', `${pods}/bound/binding`, { body: { apiVersion: 'v1', kind: 'Binding', metadata: { name: 'bound' }, target: { kind: 'Node', name: 'n1' } } });
      assert.equal(bind.status, 201);
      const again = await api.request('POST', `${pods}/bound/binding`, { body: { apiVersion: 'v1', kind: 'Binding', metadata: { name: 'bound' }, target: { kind: 'Node', name: 'n2' } } });
      assert.equal(again.status, 409);
      const terminating = await api.request('DELETE', `${pods}/bound`, { body: { gracePeriodSeconds: 30 } });
      assert.equal(terminating.status, 200);
      const held = terminating.json<{ metadata: { deletionTimestamp?: string; deletionGracePeriodSeconds?: number } }>();
      assert.ok(held.metadata.deletionTimestamp);
      assert.equal(held.metadata.deletionGracePeriodSeconds, 30);
      assert.equal((await api.request('GET', `${pods}/bound`)).status, 200);
      // What the node agent does once the containers stopped.
      assert.equal((await api.request('DELETE', `${pods}/bound`, { body: { gracePeriodSeconds: 0 } })).status, 200);
      assert.equal((await api.request('GET', `${pods}/bound`)).status, 404);
    });

    it('keeps a deleted namespace Terminating until /finalize empties spec.finalizers', async () => {
      await api.request('POST', '/api/v1/namespaces', { body: { metadata: { name: 'doomed' } } });
      const deleting = await api.request('DELETE', '/api/v1/namespaces/doomed');
      assert.equal(deleting.status, 200);
      const ns = (await api.request('GET', '/api/v1/namespaces/doomed')).json<{ spec: { finalizers: string[] }; status: { phase: string } }>();
      assert.equal(ns.status.phase, 'Terminating');
      assert.deepEqual(ns.spec.finalizers, ['kubernetes']);
      // An ordinary update cannot drop spec.finalizers; only the finalize subresource can.
      const unversioned = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'doomed' }, spec: { finalizers: [] } };
      assert.equal((await api.request('PUT', '/api/v1/namespaces/doomed', { body: unversioned })).status, 200);
      assert.deepEqual((await api.request('GET', '/api/v1/namespaces/doomed')).json<{ spec: { finalizers: string[] } }>().spec.finalizers, ['kubernetes']);
      const created = await api.request('POST', '/api/v1/namespaces/doomed/configmaps', { body: cm('late') });
      assert.equal(created.status, 403);
      const fin = await api.request('PUT', '/api/v1/namespaces/doomed/finalize', { body: unversioned });
      assert.equal(fin.status, 200, fin.body);
      assert.equal((await api.request('GET', '/api/v1/namespaces/doomed')).status, 404);
    });

    it('sets a new pod Pending with its QoS class, comparing quantities by value', async () => {
      const pods = '/api/v1/namespaces/default/pods';
      const pod = (name: string, resources: object) => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: { containers: [{ name: 'c', image: 'i', resources }] } });
      const qos = async (name: string, resources: object) => {
        const r = await api.request('POST', pods, { body: pod(name, resources) });
        return r.json<{ status: { phase: string; qosClass: string } }>().status;
      };
      assert.deepEqual(await qos('q-guaranteed', { requests: { cpu: '1', memory: '1Gi' }, limits: { cpu: '1000m', memory: '1024Mi' } }), { phase: 'Pending', qosClass: 'Guaranteed' });
      assert.equal((await qos('q-burstable', { requests: { cpu: '500m' }, limits: { cpu: '1', memory: '1Gi' } })).qosClass, 'Burstable');
      assert.equal((await qos('q-besteffort', {})).qosClass, 'BestEffort');
    });

    it('checks delete preconditions', async () => {
      const c = (await api.request('POST', CMS, { body: cm('pre') })).json<{ metadata: { uid: string } }>();
      const wrong = await api.request('DELETE', `${CMS}/pre`, { body: { preconditions: { uid: 'nope' } } });
      assert.equal(wrong.status, 409);
      assert.equal((await api.request('DELETE', `${CMS}/pre`, { body: { preconditions: { uid: c.metadata.uid } } })).status, 200);
    });

    it('applies concurrent patches of one object one after the other, without a conflict', async () => {
      await api.request('POST', CMS, { body: cm('concurrent') });
      const results = await Promise.all(
        ['a', 'b', 'c', 'd'].map((k) => api.request('PATCH', `${CMS}/concurrent`, { body: { data: { [k]: k } }, contentType: 'application/merge-patch+json' })),
      );
      assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200]);
      const final = (await api.request('GET', `${CMS}/concurrent`)).json<{ data: Record<string, string> }>();
      assert.deepEqual(Object.keys(final.data).sort(), ['a', 'b', 'c', 'd']);
    });

    it('treats a uid in an update or patch body as a precondition', async () => {
      const c = (await api.request('POST', CMS, { body: cm('uidpre') })).json<{ metadata: { uid: string } }>();
      const patch = (uid: string) =>
        api.request('PATCH', `${CMS}/uidpre`, { body: { metadata: { uid }, data: { k: uid } }, contentType: 'application/merge-patch+json' });
      const wrong = await patch('0b0c5d9e-0000-4000-8000-000000000000');
      assert.equal(wrong.status, 409);
      assert.match(wrong.json<{ message: string }>().message, /Precondition failed: UID in precondition/);
      assert.equal((await patch(c.metadata.uid)).status, 200);
    });

    it('serves custom resources once their CRD is stored', async () => {
      const crd = {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: 'widgets.example.com' },
        spec: {
          group: 'example.com',
          scope: 'Namespaced',
          names: { plural: 'widgets', singular: 'widget', kind: 'Widget' },
          versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { size: { type: 'integer' } } } } } } }],
        },
      };
      assert.equal((await api.request('POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { body: crd })).status, 201);
      const path = '/apis/example.com/v1/namespaces/default/widgets';
      const w = await api.request('POST', path, { body: { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w1' }, spec: { size: 3 } } });
      assert.equal(w.status, 201, w.body);
      const bad = await api.request('POST', `${path}?fieldValidation=Strict`, { body: { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w2' }, spec: { size: 3, colour: 'red' } } });
      assert.equal(bad.status, 400);
      const list = (await api.request('GET', path)).json<{ kind: string; items: unknown[] }>();
      assert.equal(list.kind, 'WidgetList');
      assert.equal(list.items.length, 1);
    });
  });

  describe('watch', () => {
    it('delivers events from a resourceVersion, and 410 Expired as an ERROR event once compacted', async () => {
      const rv = (await api.request('GET', CMS)).json<{ metadata: { resourceVersion: string } }>().metadata.resourceVersion;
      const w = api.watch(`${CMS}?watch=1&resourceVersion=${rv}&timeoutSeconds=5`);
      await api.request('POST', CMS, { body: cm('watched') });
      await api.request('PATCH', `${CMS}/watched`, { body: { data: { b: '2' } }, contentType: 'application/merge-patch+json' });
      await api.request('DELETE', `${CMS}/watched`);
      await w.ended;
      assert.deepEqual(
        w.events.filter((e) => e.object.metadata.name === 'watched').map((e) => e.type),
        ['ADDED', 'MODIFIED', 'DELETED'],
      );

      await store.compact(await store.revision());
      const expired = api.watch(`${CMS}?watch=1&resourceVersion=${rv}`);
      await expired.ended;
      assert.equal(expired.events.length, 1);
      assert.equal(expired.events[0]!.type, 'ERROR');
      assert.equal(expired.events[0]!.object.code, 410);
      assert.equal(expired.events[0]!.object.reason, 'Expired');
      assert.match(expired.events[0]!.object.message, /too old resource version/);
      const list = await api.request('GET', `${CMS}?resourceVersion=${rv}&resourceVersionMatch=Exact`);
      assert.equal(list.status, 410);
    });

    it('sends synthetic ADDED events for resourceVersion 0 and bookmarks when allowed', async () => {
      const w = api.watch(`${CMS}?watch=true&resourceVersion=0&timeoutSeconds=1&allowWatchBookmarks=true`);
      await w.ended;
      assert.ok(w.events.some((e) => e.type === 'ADDED' && e.object.metadata.name === 'occ'));
      const bookmark = w.events.find((e) => e.type === 'BOOKMARK');
      assert.ok(bookmark, 'a bookmark arrives before the timeout');
      assert.match(bookmark.object.metadata.resourceVersion, /^\d+$/);
    });
  });
});
