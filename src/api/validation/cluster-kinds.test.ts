import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KubeObject } from '../types.js';
import { applyDefaults, validateCreate, validateUpdate } from './index.js';
import { def } from './testutil.test.js';

test('namespace defaults and name format', () => {
  const nsDef = def('', 'Namespace');
  const ns: KubeObject = { metadata: { name: 'team-a' } };
  applyDefaults(nsDef, ns);
  assert.deepEqual(ns, {
    metadata: { name: 'team-a', labels: { 'kubernetes.io/metadata.name': 'team-a' } },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  });
  assert.deepEqual(validateCreate(nsDef, ns), []);
  const dotted = validateCreate(nsDef, { metadata: { name: 'a.b' } });
  assert.deepEqual(dotted, [{ reason: 'FieldValueInvalid', message: 'Invalid value: "a.b": must not contain dots', field: 'metadata.name' }]);
});

test('node taints and podCIDRs', () => {
  const nodeDef = def('', 'Node');
  const node: KubeObject = {
    metadata: { name: 'edge-1' },
    spec: { podCIDR: '10.244.1.0/24', taints: [{ key: 'dedicated', value: 'edge', effect: 'NoSchedule' }] },
    status: { capacity: { cpu: '4' } },
  };
  applyDefaults(nodeDef, node);
  assert.deepEqual((node.status as any).allocatable, { cpu: '4' });
  assert.deepEqual(validateCreate(nodeDef, node), []);
  const bad: KubeObject = {
    metadata: { name: 'edge-1' },
    spec: { podCIDRs: ['10.244.1.0/33'], taints: [{ key: 'k', effect: 'Never' }, { key: 'k', effect: 'NoSchedule' }, { key: 'k', effect: 'NoSchedule' }] },
  };
  assert.deepEqual(validateCreate(nodeDef, bad), [
    { reason: 'FieldValueNotSupported', message: 'Unsupported value: "Never": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"', field: 'metadata.taints[0].effect' },
    {
      reason: 'FieldValueDuplicate',
      message: 'Duplicate value: core.Taint{Key:"k", Value:"", Effect:"NoSchedule", TimeAdded:<nil>}: taints must be unique by key and effect pair',
      field: 'metadata.taints[2]',
    },
    { reason: 'FieldValueInvalid', message: 'Invalid value: "10.244.1.0/33": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)', field: 'spec.podCIDRs[0]' },
  ]);
  const old = { metadata: { name: 'edge-1' }, spec: { podCIDRs: ['10.244.1.0/24'] } };
  assert.deepEqual(validateUpdate(nodeDef, { metadata: { name: 'edge-1' }, spec: { podCIDRs: ['10.244.2.0/24'] } }, old), [
    { reason: 'FieldValueForbidden', message: 'Forbidden: node updates may not change podCIDR except from "" to valid', field: 'spec.podCIDRs' },
  ]);
});

test('runtimeclass handler is a DNS label and immutable', () => {
  const rcDef = def('node.k8s.io', 'RuntimeClass');
  const rc = { metadata: { name: 'runv' }, handler: 'runv' };
  assert.deepEqual(validateCreate(rcDef, rc), []);
  assert.equal(validateCreate(rcDef, { ...rc, handler: 'Run_V' })[0]!.field, 'handler');
  assert.deepEqual(validateUpdate(rcDef, { ...rc, handler: 'runc' }, rc), [
    { reason: 'FieldValueInvalid', message: 'Invalid value: "runc": field is immutable', field: 'handler' },
  ]);
});

test('lease and pvc', () => {
  const leaseDef = def('coordination.k8s.io', 'Lease');
  const lease = { metadata: { name: 'node-1', namespace: 'kube-node-lease' }, spec: { holderIdentity: 'node-1', leaseDurationSeconds: 40 } };
  assert.deepEqual(validateCreate(leaseDef, lease), []);
  assert.deepEqual(validateCreate(leaseDef, { ...lease, spec: { leaseDurationSeconds: 0 } }), [
    { reason: 'FieldValueInvalid', message: 'Invalid value: 0: must be greater than 0', field: 'spec.leaseDurationSeconds' },
  ]);
  const pvcDef = def('', 'PersistentVolumeClaim');
  const pvc: KubeObject = { metadata: { name: 'data', namespace: 'default' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } };
  applyDefaults(pvcDef, pvc);
  assert.equal((pvc.spec as any).volumeMode, 'Filesystem');
  assert.deepEqual(validateCreate(pvcDef, pvc), []);
});

test('rbac rules, bindings and immutable roleRef', () => {
  const roleDef = def('rbac.authorization.k8s.io', 'Role');
  assert.deepEqual(validateCreate(roleDef, { metadata: { name: 'r', namespace: 'd' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get'] }] }), []);
  assert.deepEqual(validateCreate(roleDef, { metadata: { name: 'r', namespace: 'd' }, rules: [{ apiGroups: [''], resources: ['pods'] }] }), [
    { reason: 'FieldValueRequired', message: 'Required value: verbs must contain at least one value', field: 'rules[0].verbs' },
  ]);
  const rbDef = def('rbac.authorization.k8s.io', 'RoleBinding');
  const rb: KubeObject = {
    metadata: { name: 'rb', namespace: 'd' },
    roleRef: { kind: 'ClusterRole', name: 'view' },
    subjects: [{ kind: 'User', name: 'alice' }, { kind: 'ServiceAccount', name: 'default', namespace: 'd' }],
  };
  applyDefaults(rbDef, rb);
  assert.deepEqual(rb.roleRef, { kind: 'ClusterRole', name: 'view', apiGroup: 'rbac.authorization.k8s.io' });
  assert.deepEqual(validateCreate(rbDef, rb), []);
  const changed = { ...rb, roleRef: { ...(rb.roleRef as object), name: 'edit' } };
  assert.deepEqual(validateUpdate(rbDef, changed, rb), [
    {
      reason: 'FieldValueInvalid',
      message: 'Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef',
      field: 'roleRef',
    },
  ]);
  const crbDef = def('rbac.authorization.k8s.io', 'ClusterRoleBinding');
  const crb: KubeObject = { metadata: { name: 'x' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'r' }, subjects: [{ kind: 'ServiceAccount', name: 'sa' }] };
  assert.deepEqual(validateCreate(crbDef, crb), [
    { reason: 'FieldValueNotSupported', message: 'Unsupported value: "Role": supported values: "ClusterRole"', field: 'roleRef.kind' },
    { reason: 'FieldValueRequired', message: 'Required value', field: 'subjects[0].namespace' },
  ]);
});

test('crd group, names, versions and schema', () => {
  const crdDef = def('apiextensions.k8s.io', 'CustomResourceDefinition');
  const schema = { openAPIV3Schema: { type: 'object' } };
  const crd: KubeObject = {
    metadata: { name: 'widgets.example.com' },
    spec: { group: 'example.com', scope: 'Namespaced', names: { plural: 'widgets', kind: 'Widget' }, versions: [{ name: 'v1', served: true, storage: true, schema }] },
  };
  applyDefaults(crdDef, crd);
  assert.deepEqual((crd.spec as any).names, { plural: 'widgets', kind: 'Widget', singular: 'widget', listKind: 'WidgetList' });
  assert.deepEqual((crd.spec as any).conversion, { strategy: 'None' });
  assert.deepEqual((crd.status as any).storedVersions, ['v1']);
  assert.deepEqual(validateCreate(crdDef, crd), []);

  const bad: KubeObject = {
    metadata: { name: 'widgets.example.com' },
    spec: { group: 'example', scope: 'Global', names: { plural: 'widgets', kind: 'Widget' }, versions: [{ name: 'v1', served: true, storage: false }] },
  };
  applyDefaults(crdDef, bad);
  assert.deepEqual(
    validateCreate(crdDef, bad).map((c) => [c.field, c.reason, c.message]),
    [
      ['metadata.name', 'FieldValueInvalid', 'Invalid value: "widgets.example.com": must be spec.names.plural+"."+spec.group'],
      ['spec.group', 'FieldValueInvalid', 'Invalid value: "example": should be a domain with at least one dot'],
      ['spec.scope', 'FieldValueNotSupported', 'Unsupported value: "Global": supported values: "Cluster", "Namespaced"'],
      ['spec.versions[0].schema.openAPIV3Schema', 'FieldValueRequired', 'Required value: schemas are required'],
      ['spec.versions', 'FieldValueInvalid', 'Invalid value: []apiextensions.CustomResourceDefinitionVersion{...}: must have exactly one version marked as storage version'],
    ],
  );
});

test('kinds without rules get ObjectMeta checks only', () => {
  const saDef = def('', 'ServiceAccount');
  const sa = { metadata: { name: 'builder', namespace: 'ci' } };
  applyDefaults(saDef, sa);
  assert.deepEqual(sa, { metadata: { name: 'builder', namespace: 'ci' } });
  assert.deepEqual(validateCreate(saDef, sa), []);
  assert.equal(validateCreate(saDef, { metadata: { name: 'Builder', namespace: 'ci' } })[0]!.field, 'metadata.name');
});
