import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { BUILTIN_RESOURCES, type ResourceDef } from '../resources.js';
import type { GroupVersionKind } from '../types.js';
import { byGroupVersion, customResourceSchemas, groupVersionDocument, groupVersionPath, openapiIndex, renderGroupVersion } from './documents.js';
import { refName, resolver } from './generate.js';
import type { Schema } from './schema.js';

interface Doc {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, unknown>>;
  components: { schemas: Record<string, Schema> };
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

interface Op {
  parameters?: { name: string; in: string }[];
  requestBody?: { content: Record<string, unknown> };
  responses: Record<string, unknown>;
  'x-kubernetes-action'?: string;
  'x-kubernetes-group-version-kind'?: unknown;
}

function documentFor(path: string, extra: Record<string, Schema> = {}, defs: readonly ResourceDef[] = BUILTIN_RESOURCES): Doc {
  const group = byGroupVersion(defs).get(path);
  assert.ok(group, path);
  return JSON.parse(renderGroupVersion(group, extra).body) as Doc;
}

/**
 * kubectl's QueryParamVerifierV3.supportsQueryParamV3: the first patch operation carrying the GVK (an
 * object, not a list) decides by its parameters. Go's map order is random, so every such operation must
 * agree.
 */
function kubectlSupportsFieldValidation(doc: Doc, gvk: GroupVersionKind): boolean {
  const verdicts: boolean[] = [];
  for (const item of Object.values(doc.paths)) {
    const op = item.patch as Op | undefined;
    if (!op) continue;
    const ext = op['x-kubernetes-group-version-kind'] as Record<string, string> | undefined;
    if (!ext || typeof ext !== 'object' || Array.isArray(ext)) continue;
    if (ext.group !== gvk.group || ext.version !== gvk.version || ext.kind !== gvk.kind) continue;
    verdicts.push((op.parameters ?? []).some((p) => p.name === 'fieldValidation'));
  }
  return verdicts.length > 0 && verdicts.every(Boolean);
}

/** What `kubectl explain` does: find the kind's schema by its GVK, then walk the field path. */
function explain(doc: Doc, gvk: GroupVersionKind, fieldPath: string[]): Schema {
  const schemas = doc.components.schemas;
  const found = Object.values(schemas).find((s) =>
    (s['x-kubernetes-group-version-kind'] ?? []).some((g) => g.group === gvk.group && g.version === gvk.version && g.kind === gvk.kind));
  assert.ok(found, `schema for ${gvk.kind}`);
  const resolve = resolver(schemas);
  let cur = found;
  for (const f of fieldPath) {
    let s = resolve(cur);
    if (s.type === 'array' && s.items) s = resolve(s.items);
    const next = s.properties?.[f];
    assert.ok(next, `field ${f} of ${gvk.kind}`);
    assert.ok(next.description, `${f} has a description`);
    cur = next;
  }
  const last = resolve(cur);
  return last.type === 'array' && last.items ? resolve(last.items) : last;
}

function refsIn(node: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(node)) node.forEach((n) => refsIn(n, into));
  else if (node && typeof node === 'object') {
    const n = refName(node as Schema);
    if (n) into.add(n);
    for (const v of Object.values(node)) refsIn(v, into);
  }
  return into;
}

const crdDef: ResourceDef = {
  group: 'stable.example.com', version: 'v1', kind: 'CronTab', listKind: 'CronTabList', plural: 'crontabs', singular: 'crontab',
  namespaced: true, subresources: ['status', 'scale'], verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
  schemaName: 'com.example.stable.v1.CronTab', custom: true,
};
const crdSchema: Schema = {
  type: 'object',
  description: 'A CronTab runs a command on a schedule.',
  properties: {
    spec: { type: 'object', description: 'The schedule.', properties: { cronSpec: { type: 'string', description: 'cron' }, replicas: { type: 'integer' } } },
    status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
  },
};

describe('openapiIndex', () => {
  const index = openapiIndex(BUILTIN_RESOURCES);

  it('lists one document per served group-version, with a hash', () => {
    const expected = [...new Set(BUILTIN_RESOURCES.map(groupVersionPath))].sort();
    assert.deepEqual(Object.keys(index.paths), expected);
    assert.ok(index.paths['api/v1']);
    assert.ok(index.paths['apis/apps/v1']);
    for (const [key, entry] of Object.entries(index.paths)) {
      assert.match(entry.serverRelativeURL, new RegExp(`^/openapi/v3/${key.replace(/\./g, '\\.')}\\?hash=[0-9A-F]{128}$`));
    }
  });

  it('hashes the document actually served, stably', () => {
    const again = openapiIndex([...BUILTIN_RESOURCES]);
    assert.deepEqual(again, index);
    const core = BUILTIN_RESOURCES.filter((d) => d.group === '');
    assert.ok(index.paths['api/v1']!.serverRelativeURL.endsWith(renderGroupVersion(core).hash));
  });

  it('changes a hash only when that document changes', () => {
    const withCrd = openapiIndex([...BUILTIN_RESOURCES, crdDef], customResourceSchemas(crdDef, crdSchema));
    assert.ok(withCrd.paths['apis/stable.example.com/v1']);
    assert.equal(withCrd.paths['api/v1']!.serverRelativeURL, index.paths['api/v1']!.serverRelativeURL);
    const changed = structuredClone(crdSchema);
    changed.properties!.spec!.properties!.image = { type: 'string' };
    const withChanged = openapiIndex([...BUILTIN_RESOURCES, crdDef], customResourceSchemas(crdDef, changed));
    assert.notEqual(withChanged.paths['apis/stable.example.com/v1']!.serverRelativeURL, withCrd.paths['apis/stable.example.com/v1']!.serverRelativeURL);
    assert.equal(withChanged.paths['apis/apps/v1']!.serverRelativeURL, index.paths['apis/apps/v1']!.serverRelativeURL);
  });
});

describe('groupVersionDocument', () => {
  const docs = Object.keys(openapiIndex(BUILTIN_RESOURCES).paths).map((key) => [key, documentFor(key)] as const);

  it('is an OpenAPI 3.0 document whose references all resolve', () => {
    for (const [key, doc] of docs) {
      assert.equal(doc.openapi, '3.0.0');
      assert.equal(doc.info.title, 'Kubernetes');
      assert.ok(Object.keys(doc.paths).length > 0, key);
      const missing = [...refsIn(doc)].filter((n) => !doc.components.schemas[n]);
      assert.deepEqual(missing, [], key);
      for (const [path, item] of Object.entries(doc.paths)) {
        assert.match(path, /^\/apis?\//);
        for (const m of METHODS) {
          const op = item[m] as Op | undefined;
          if (!op) continue;
          assert.ok(op['x-kubernetes-action'], `${m} ${path} action`);
          const gvk = op['x-kubernetes-group-version-kind'] as Record<string, string>;
          assert.equal(typeof gvk.kind, 'string', `${m} ${path} gvk`);
          assert.ok(op.responses['200'] || op.responses['201'], `${m} ${path} responses`);
        }
      }
    }
  });

  it('lets kubectl find server-side field validation for every served kind', () => {
    for (const def of BUILTIN_RESOURCES) {
      const doc = documentFor(groupVersionPath(def));
      assert.ok(kubectlSupportsFieldValidation(doc, { group: def.group, version: def.version, kind: def.kind }), `${def.group}/${def.kind}`);
    }
  });

  it('publishes kube paths and operations for pods', () => {
    const doc = documentFor('api/v1');
    const item = doc.paths['/api/v1/namespaces/{namespace}/pods/{name}']!;
    for (const m of ['get', 'put', 'patch', 'delete']) assert.ok(item[m], m);
    const patch = item.patch as Op;
    assert.equal(patch['x-kubernetes-action'], 'patch');
    assert.deepEqual(patch['x-kubernetes-group-version-kind'], { group: '', version: 'v1', kind: 'Pod' });
    assert.deepEqual(Object.keys(patch.requestBody!.content).sort(), [
      'application/apply-patch+yaml', 'application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json',
    ]);
    for (const p of ['dryRun', 'fieldManager', 'fieldValidation', 'force']) {
      assert.ok(patch.parameters!.some((q) => q.name === p && q.in === 'query'), p);
    }
    const coll = doc.paths['/api/v1/namespaces/{namespace}/pods']!;
    assert.equal((coll.get as Op)['x-kubernetes-action'], 'list');
    assert.equal((coll.post as Op)['x-kubernetes-action'], 'post');
    assert.ok((coll.post as Op).parameters!.some((q) => q.name === 'fieldValidation'));
    assert.equal((coll.delete as Op)['x-kubernetes-action'], 'deletecollection');
    assert.ok(doc.paths['/api/v1/pods']!.get);
    assert.ok(doc.paths['/api/v1/namespaces/{namespace}/pods/{name}/status']!.patch);
    assert.equal((doc.paths['/api/v1/namespaces/{namespace}/pods/{name}/exec']!.get as Op)['x-kubernetes-action'], 'connect');
    assert.ok(doc.paths['/api/v1/nodes/{name}']);
    assert.ok(!doc.paths['/api/v1/namespaces/{namespace}/nodes']);
    const scale = documentFor('apis/apps/v1').paths['/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale']!.patch as Op;
    assert.deepEqual(scale['x-kubernetes-group-version-kind'], { group: 'autoscaling', version: 'v1', kind: 'Scale' });
  });

  it('carries what kubectl explain walks', () => {
    const core = documentFor('api/v1');
    const containers = explain(core, { group: '', version: 'v1', kind: 'Pod' }, ['spec', 'containers']);
    assert.ok(containers.properties?.image?.description);
    const port = explain(core, { group: '', version: 'v1', kind: 'Pod' }, ['spec', 'containers', 'ports', 'containerPort']);
    assert.equal(port.type, 'integer');
    explain(documentFor('apis/apps/v1'), { group: 'apps', version: 'v1', kind: 'Deployment' }, ['spec', 'template', 'spec', 'containers', 'livenessProbe', 'httpGet', 'port']);
    explain(documentFor('apis/coordination.k8s.io/v1'), { group: 'coordination.k8s.io', version: 'v1', kind: 'Lease' }, ['spec', 'holderIdentity']);
  });

  it('serves custom resources from the components the caller passes', () => {
    const extra = customResourceSchemas(crdDef, crdSchema);
    const doc = groupVersionDocument([crdDef], extra) as unknown as Doc;
    assert.ok(kubectlSupportsFieldValidation(doc, { group: 'stable.example.com', version: 'v1', kind: 'CronTab' }));
    const schema = doc.components.schemas['com.example.stable.v1.CronTab']!;
    assert.deepEqual(schema['x-kubernetes-group-version-kind'], [{ group: 'stable.example.com', version: 'v1', kind: 'CronTab' }]);
    assert.ok(doc.components.schemas['io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta'], 'metadata schema included');
    assert.ok(doc.components.schemas['com.example.stable.v1.CronTabList']);
    assert.ok(doc.paths['/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/scale']);
    explain(doc, { group: 'stable.example.com', version: 'v1', kind: 'CronTab' }, ['spec', 'cronSpec']);
    explain(doc, { group: 'stable.example.com', version: 'v1', kind: 'CronTab' }, ['metadata', 'labels']);
    assert.equal(crdSchema.properties!.metadata, undefined, 'the CRD schema is not modified');
  });
});
