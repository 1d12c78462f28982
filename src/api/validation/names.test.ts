import assert from 'node:assert/strict';
import { test } from 'node:test';
import { err, path } from './field.js';
import { isConfigMapKey, isDNS1035Label, isDNS1123Label, isDNS1123Subdomain, isLabelValue, isQualifiedName, nameIsDNSSubdomain } from './names.js';

test('DNS-1123 label message is kube text, double space and all', () => {
  assert.deepEqual(isDNS1123Label('My_Name'), [
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
  ]);
  assert.deepEqual(isDNS1123Label('a.b'), ['must not contain dots']);
  assert.deepEqual(isDNS1123Label('a'.repeat(64)), ['must be no more than 63 characters']);
  assert.deepEqual(isDNS1123Label('ok-1'), []);
});

test('subdomain, 1035 label, qualified names, label values, config keys', () => {
  assert.equal(isDNS1123Subdomain('Bad').length, 1);
  assert.deepEqual(isDNS1123Subdomain('a.b-c.d'), []);
  assert.match(isDNS1035Label('1abc')[0]!, /^a DNS-1035 label must consist/);
  assert.deepEqual(isQualifiedName('example.com/app'), []);
  assert.deepEqual(isQualifiedName('/app'), ['prefix part must be non-empty']);
  assert.deepEqual(isQualifiedName(''), [
    'name part must be non-empty',
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
  ]);
  assert.match(isQualifiedName('a/b/c')[0]!, /^a qualified name must consist of/);
  assert.deepEqual(isLabelValue(''), []);
  assert.equal(isLabelValue('-x').length, 1);
  assert.deepEqual(isConfigMapKey('..x'), ["must not start with '..'"]);
});

test('generateName prefixes may end with a dash', () => {
  assert.deepEqual(nameIsDNSSubdomain('web-', true), []);
  assert.equal(nameIsDNSSubdomain('web-', false).length, 1);
});

test('causes render values the way field.Error does', () => {
  assert.deepEqual(err.invalid(path('spec', 'replicas'), -1, 'must be greater than or equal to 0'), {
    reason: 'FieldValueInvalid',
    message: 'Invalid value: -1: must be greater than or equal to 0',
    field: 'spec.replicas',
  });
  assert.equal(err.notSupported(path('x'), 'Sometimes', ['Always', 'Never']).message, 'Unsupported value: "Sometimes": supported values: "Always", "Never"');
  assert.equal(err.required(path('a').index(0).key('cpu')).field, 'a[0][cpu]');
  assert.equal(err.required(path('a')).message, 'Required value');
  assert.equal(err.tooLong(path('data'), 1048576).message, 'Too long: must have at most 1048576 bytes');
});
