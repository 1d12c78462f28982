import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KubeObject } from '../types.js';
import { applyDefaults, validateCreate, validateUpdate } from './index.js';
import { def } from './testutil.test.js';

const cmDef = def('', 'ConfigMap');
const secretDef = def('', 'Secret');
const meta = () => ({ name: 'c', namespace: 'default', resourceVersion: '1' });

test('configmap keys and total size', () => {
  assert.deepEqual(validateCreate(cmDef, { metadata: meta(), data: { 'app.conf': 'x', 'ok-key_1': '' } }), []);
  assert.deepEqual(validateCreate(cmDef, { metadata: meta(), data: { 'bad key': 'x' } }), [
    {
      reason: 'FieldValueInvalid',
      message: `Invalid value: "bad key": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')`,
      field: 'data[bad key]',
    },
  ]);
  assert.deepEqual(validateCreate(cmDef, { metadata: meta(), data: { a: 'x'.repeat(1024 * 1024 + 1) } }), [
    { reason: 'FieldValueTooLong', message: 'Too long: must have at most 1048576 bytes', field: '' },
  ]);
});

test('secret type default, base64 and size', () => {
  const s: KubeObject = { metadata: meta(), data: { token: Buffer.from('hi').toString('base64') } };
  applyDefaults(secretDef, s);
  assert.equal(s.type, 'Opaque');
  assert.deepEqual(validateCreate(secretDef, s), []);
  assert.deepEqual(validateCreate(secretDef, { metadata: meta(), type: 'Opaque', data: { token: 'not*base64' } }), [
    { reason: 'FieldValueInvalid', message: 'Invalid value: "<secret contents redacted>": illegal base64 data at input byte 3', field: 'data[token]' },
  ]);
  const big = Buffer.alloc(1024 * 1024 + 1).toString('base64');
  assert.deepEqual(validateCreate(secretDef, { metadata: meta(), type: 'Opaque', data: { big } }), [
    { reason: 'FieldValueTooLong', message: 'Too long: must have at most 1048576 bytes', field: 'data' },
  ]);
  assert.deepEqual(validateCreate(secretDef, { metadata: meta(), type: 'kubernetes.io/tls', data: { 'tls.crt': '' } }), [
    { reason: 'FieldValueRequired', message: 'Required value', field: 'data[tls.key]' },
  ]);
});

test('immutable: true freezes data', () => {
  const old = { metadata: meta(), immutable: true, data: { a: 'x' } };
  assert.deepEqual(validateUpdate(cmDef, { ...old, data: { a: 'y' } }, old), [
    { reason: 'FieldValueForbidden', message: 'Forbidden: field is immutable when `immutable` is set', field: 'data' },
  ]);
  assert.deepEqual(validateUpdate(cmDef, { ...old, immutable: false }, old), [
    { reason: 'FieldValueForbidden', message: 'Forbidden: field is immutable when `immutable` is set', field: 'immutable' },
  ]);
  assert.deepEqual(validateUpdate(cmDef, { ...old, metadata: { ...meta(), labels: { a: 'b' } } }, old), []);
  const sOld = { metadata: meta(), type: 'Opaque', immutable: true, data: { a: 'eA==' } };
  assert.deepEqual(validateUpdate(secretDef, { ...sOld, type: 'kubernetes.io/basic-auth', data: { a: 'eQ==', username: '' } }, sOld), [
    { reason: 'FieldValueInvalid', message: 'Invalid value: "kubernetes.io/basic-auth": field is immutable', field: 'type' },
    { reason: 'FieldValueForbidden', message: 'Forbidden: field is immutable when `immutable` is set', field: 'data' },
  ]);
});
