import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FieldPathError, FieldSet, fieldSetOf, goJson, pathString, type FieldPath } from './fieldset.js';
import { deploymentSchema, resolve } from './fixture.test.js';

// Literal fieldsV1 values as kube writes them (key order included).
const KUBE_APPLY_EXAMPLE =
  '{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{"f:containers":{"k:{\\"name\\":\\"web\\"}":{".":{},"f:image":{}}}}}';
const KUBE_CSA_DEPLOYMENT =
  '{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"f:labels":{".":{},"f:app":{}}},' +
  '"f:spec":{"f:progressDeadlineSeconds":{},"f:replicas":{},"f:revisionHistoryLimit":{},"f:selector":{},' +
  '"f:strategy":{"f:rollingUpdate":{".":{},"f:maxSurge":{},"f:maxUnavailable":{}},"f:type":{}},' +
  '"f:template":{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{"f:containers":{"k:{\\"name\\":\\"nginx\\"}":{".":{},"f:image":{},' +
  '"f:imagePullPolicy":{},"f:name":{},"f:ports":{".":{},"k:{\\"containerPort\\":80,\\"protocol\\":\\"TCP\\"}":{".":{},"f:containerPort":{},"f:protocol":{}}},' +
  '"f:resources":{},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:restartPolicy":{},' +
  '"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{}}}}}';
const KUBE_FINALIZERS = '{"f:metadata":{"f:finalizers":{".":{},"v:\\"foregroundDeletion\\"":{}}},"f:status":{"f:conditions":{"k:{\\"type\\":\\"Ready\\"}":{".":{},"f:status":{}}}}}';

const f = (name: string) => ({ field: name });

describe('FieldsV1', () => {
  for (const [name, literal] of [
    ['the apply example', KUBE_APPLY_EXAMPLE],
    ['a client-side-apply Deployment entry', KUBE_CSA_DEPLOYMENT],
    ['set items and keyed conditions', KUBE_FINALIZERS],
  ]) {
    it(`round-trips ${name} byte for byte`, () => {
      const set = FieldSet.fromFieldsV1(JSON.parse(literal));
      assert.equal(JSON.stringify(set.toFieldsV1()), literal);
    });
  }

  it('decodes into paths, with "." marking a node that is itself a member', () => {
    const set = FieldSet.fromFieldsV1(JSON.parse(KUBE_APPLY_EXAMPLE));
    assert.deepEqual(set.paths().map(pathString), [
      '.metadata.labels.app',
      '.spec.containers[name="web"]',
      '.spec.containers[name="web"].image',
    ]);
  });

  it('sorts siblings the way SMD does: fields, then keys by value, then values', () => {
    const set = new FieldSet([
      [f('spec'), { key: [['port', 8080]] }],
      [f('spec'), { key: [['port', 80]] }],
      [f('spec'), f('b')],
      [f('spec'), { value: 'x' }],
      [f('spec'), f('a')],
    ]);
    assert.equal(JSON.stringify(set.toFieldsV1()), '{"f:spec":{"f:a":{},"f:b":{},"k:{\\"port\\":80}":{},"k:{\\"port\\":8080}":{},"v:\\"x\\"":{}}}');
  });

  it('writes key fields sorted by name and escapes HTML like Go', () => {
    const set = FieldSet.fromFieldsV1({ 'k:{"protocol":"TCP","containerPort":80}': {} });
    assert.deepEqual(Object.keys(set.toFieldsV1()), ['k:{"containerPort":80,"protocol":"TCP"}']);
    assert.equal(goJson('a<b>&c'), '"a\\u003cb\\u003e\\u0026c"');
  });

  it('refuses malformed keys', () => {
    assert.throws(() => FieldSet.fromFieldsV1({ 'x:foo': {} }), /unknown path element type/);
    assert.throws(() => FieldSet.fromFieldsV1({ foo: {} }), /missing colon/);
    assert.throws(() => FieldSet.fromFieldsV1({ 'k:{bad': {} }), /invalid JSON/);
  });
});

describe('set operations', () => {
  const a: FieldPath = [f('spec'), f('replicas')];
  const b: FieldPath = [f('metadata'), f('labels'), f('app')];
  const c: FieldPath = [f('spec'), f('paused')];
  const left = new FieldSet([a, b]);
  const right = new FieldSet([b, c]);

  it('unions, differences and intersects by path', () => {
    assert.deepEqual(left.union(right).paths().map(pathString), ['.metadata.labels.app', '.spec.paused', '.spec.replicas']);
    assert.deepEqual(left.difference(right).paths().map(pathString), ['.spec.replicas']);
    assert.deepEqual(left.intersection(right).paths().map(pathString), ['.metadata.labels.app']);
    assert.ok(left.has([f('spec'), f('replicas')]));
    assert.ok(!left.has([f('spec')]));
    assert.ok(left.equals(new FieldSet([b, a])));
  });

  it('prints paths as kube does in conflicts', () => {
    assert.equal(pathString([f('spec'), { key: [['containerPort', 80], ['protocol', 'TCP']] }, f('name')]), '.spec[containerPort=80,protocol="TCP"].name');
    assert.equal(pathString([f('metadata'), f('finalizers'), { value: 'x' }]), '.metadata.finalizers[="x"]');
    assert.equal(pathString([f('args'), { index: 2 }]), '.args[2]');
  });
});

describe('fieldSetOf', () => {
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', labels: { app: 'web' }, finalizers: ['example.com/keep'] },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'web' } },
      strategy: {},
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          nodeSelector: { zone: 'a' },
          containers: [
            {
              name: 'web',
              image: 'nginx',
              args: ['-g', 'daemon off;'],
              ports: [{ containerPort: 80 }],
              env: [{ name: 'MODE', value: 'prod' }],
            },
          ],
        },
      },
    },
  };

  it('walks the schema: keyed lists, sets, atomic values, granular maps, empty structs', () => {
    const fields = fieldSetOf(deployment, deploymentSchema, resolve).toFieldsV1();
    assert.deepEqual(fields, {
      'f:apiVersion': {},
      'f:kind': {},
      'f:metadata': { 'f:finalizers': { 'v:"example.com/keep"': {} }, 'f:labels': { 'f:app': {} }, 'f:name': {} },
      'f:spec': {
        'f:replicas': {},
        'f:selector': {},
        'f:strategy': {},
        'f:template': {
          'f:metadata': { 'f:labels': { 'f:app': {} } },
          'f:spec': {
            'f:containers': {
              'k:{"name":"web"}': {
                '.': {},
                'f:args': {},
                'f:env': { 'k:{"name":"MODE"}': { '.': {}, 'f:name': {}, 'f:value': {} } },
                'f:image': {},
                'f:name': {},
                'f:ports': { 'k:{"containerPort":80,"protocol":"TCP"}': { '.': {}, 'f:containerPort': {} } },
              },
            },
            'f:nodeSelector': {},
          },
        },
      },
    });
  });

  it('rejects duplicate keys and items missing a key without default, naming the list', () => {
    const dup = { spec: { template: { spec: { containers: [{ name: 'a' }, { name: 'a' }] } } } };
    assert.throws(() => fieldSetOf(dup, deploymentSchema, resolve, { rejectDuplicates: true }), (err: unknown) => {
      assert.ok(err instanceof FieldPathError);
      assert.equal(err.message, '.spec.template.spec.containers: duplicate entries for key [name="a"]');
      return true;
    });
    assert.doesNotThrow(() => fieldSetOf(dup, deploymentSchema, resolve));
    const unnamed = { spec: { template: { spec: { containers: [{ image: 'x' }] } } } };
    assert.throws(() => fieldSetOf(unnamed, deploymentSchema, resolve), /omits key field "name"/);
  });

  it('owns every key of an untyped object', () => {
    const set = fieldSetOf({ metadata: { managedFields: [{}] }, extra: { a: { b: 1 } } }, deploymentSchema, resolve);
    assert.deepEqual(set.toFieldsV1(), { 'f:extra': { '.': {}, 'f:a': { '.': {}, 'f:b': {} } }, 'f:metadata': { 'f:managedFields': {} } });
  });
});
