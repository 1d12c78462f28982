import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateCreate, validateUpdate } from './index.js';
import { def } from './testutil.test.js';

const cm = def('', 'ConfigMap');

test('name or generateName is required', () => {
  assert.deepEqual(validateCreate(cm, { metadata: { namespace: 'default' } }), [
    { reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field: 'metadata.name' },
  ]);
});

test('namespaced kinds need a namespace; cluster kinds forbid one', () => {
  assert.deepEqual(validateCreate(cm, { metadata: { name: 'a' } }), [
    { reason: 'FieldValueRequired', message: 'Required value', field: 'metadata.namespace' },
  ]);
  const causes = validateCreate(def('rbac.authorization.k8s.io', 'ClusterRole'), { metadata: { name: 'a', namespace: 'x' } });
  assert.deepEqual(causes, [{ reason: 'FieldValueForbidden', message: 'Forbidden: not allowed on this type', field: 'metadata.namespace' }]);
});

test('labels, annotations, finalizers and generateName', () => {
  const causes = validateCreate(cm, {
    metadata: {
      generateName: 'Bad_',
      name: 'ok',
      namespace: 'default',
      labels: { 'app/x/y': 'v', good: '-bad' },
      annotations: { big: 'x'.repeat(256 * 1024) },
      finalizers: ['example.com/f', 'custom'],
    },
  });
  assert.deepEqual(
    causes.map((c) => [c.field, c.reason]),
    [
      ['metadata.generateName', 'FieldValueInvalid'],
      ['metadata.labels', 'FieldValueInvalid'],
      ['metadata.labels', 'FieldValueInvalid'],
      ['metadata.annotations', 'FieldValueTooLong'],
      ['metadata.finalizers[1]', 'FieldValueInvalid'],
    ],
  );
  assert.equal(causes[4]!.message, 'Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified');
  assert.equal(causes[3]!.message, 'Too long: must have at most 262144 bytes');
});

test('identity fields are immutable on update', () => {
  const old = { metadata: { name: 'a', namespace: 'default', uid: 'u1', creationTimestamp: '2024-01-02T03:04:05Z', resourceVersion: '1' } };
  const next = { metadata: { name: 'a', namespace: 'default', uid: 'u2', creationTimestamp: '2024-01-02T03:04:06Z', resourceVersion: '1' } };
  assert.deepEqual(validateUpdate(cm, next, old), [
    { reason: 'FieldValueInvalid', message: 'Invalid value: "u2": field is immutable', field: 'metadata.uid' },
    { reason: 'FieldValueInvalid', message: 'Invalid value: 2024-01-02 03:04:06 +0000 UTC: field is immutable', field: 'metadata.creationTimestamp' },
  ]);
  assert.deepEqual(validateUpdate(cm, old, old), []);
});

test('no new finalizers while deleting', () => {
  const old = { metadata: { name: 'a', namespace: 'd', deletionTimestamp: '2024-01-01T00:00:00Z', finalizers: ['kubernetes'] } };
  const next = { metadata: { ...old.metadata, finalizers: ['kubernetes', 'example.com/x'] } };
  assert.deepEqual(validateUpdate(cm, next, old), [
    {
      reason: 'FieldValueForbidden',
      message: 'Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{"example.com/x"}',
      field: 'metadata.finalizers',
    },
  ]);
});
