import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KubeObject } from '../types.js';
import { applyDefaults, validateCreate, validateUpdate } from './index.js';
import { def } from './testutil.test.js';

const svcDef = def('', 'Service');

function svc(spec: Record<string, unknown>, name = 'web'): KubeObject {
  const s: KubeObject = { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: structuredClone(spec) };
  applyDefaults(svcDef, s);
  return s;
}

test('a minimal service gets kube defaults', () => {
  const s = svc({ selector: { app: 'web' }, ports: [{ port: 80 }] });
  assert.deepEqual(s.spec, {
    selector: { app: 'web' },
    ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }],
    type: 'ClusterIP',
    sessionAffinity: 'None',
    internalTrafficPolicy: 'Cluster',
    ipFamilyPolicy: 'SingleStack',
    ipFamilies: ['IPv4'],
  });
  assert.deepEqual(validateCreate(svcDef, s), []);
  const np = svc({ type: 'NodePort', ports: [{ port: 80, targetPort: 'http' }] });
  assert.equal((np.spec as any).externalTrafficPolicy, 'Cluster');
  assert.deepEqual(validateCreate(svcDef, np), []);
});

test('service causes', () => {
  assert.deepEqual(validateCreate(svcDef, svc({})), [{ reason: 'FieldValueRequired', message: 'Required value', field: 'spec.ports' }]);
  assert.deepEqual(validateCreate(svcDef, svc({ clusterIP: 'None' })), []);
  assert.deepEqual(validateCreate(svcDef, svc({ type: 'Magic', ports: [{ port: 80 }] })).map((c) => [c.field, c.message]), [
    ['spec.type', 'Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'],
  ]);
  assert.deepEqual(validateCreate(svcDef, svc({ ports: [{ port: 0 }] }))[0], {
    reason: 'FieldValueInvalid',
    message: 'Invalid value: 0: must be between 1 and 65535, inclusive',
    field: 'spec.ports[0].port',
  });
  assert.deepEqual(validateCreate(svcDef, svc({ ports: [{ name: 'a', port: 80 }, { port: 81 }] })), [
    { reason: 'FieldValueRequired', message: 'Required value', field: 'spec.ports[1].name' },
  ]);
  assert.deepEqual(validateCreate(svcDef, svc({ ports: [{ name: 'a', port: 80 }, { name: 'a', port: 81 }] })), [
    { reason: 'FieldValueDuplicate', message: 'Duplicate value: "a"', field: 'spec.ports[1].name' },
  ]);
  assert.deepEqual(validateCreate(svcDef, svc({ ports: [{ name: 'a', port: 80 }, { name: 'b', port: 80 }] })), [
    {
      reason: 'FieldValueDuplicate',
      message:
        'Duplicate value: core.ServicePort{Name:"", Protocol:"TCP", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}',
      field: 'spec.ports[1]',
    },
  ]);
  assert.deepEqual(validateCreate(svcDef, svc({ ports: [{ port: 80, nodePort: 30080 }] })), [
    { reason: 'FieldValueForbidden', message: "Forbidden: may not be used when `type` is 'ClusterIP'", field: 'spec.ports[0].nodePort' },
  ]);
  const byName = validateCreate(svcDef, svc({ ports: [{ port: 80 }] }, '1web'));
  assert.deepEqual(byName.map((c) => c.field), ['metadata.name']);
  assert.match(byName[0]!.message!, /a DNS-1035 label must consist/);
});

test('clusterIP may not change once set', () => {
  const old = svc({ clusterIP: '10.0.0.10', ports: [{ port: 80 }] });
  old.metadata.resourceVersion = '1';
  const next = structuredClone(old);
  (next.spec as any).clusterIP = '10.0.0.11';
  (next.spec as any).clusterIPs = ['10.0.0.11'];
  assert.deepEqual(validateUpdate(svcDef, next, old), [
    { reason: 'FieldValueInvalid', message: 'Invalid value: []string{"10.0.0.11"}: may not change once set', field: 'spec.clusterIPs[0]' },
  ]);
  const omitted = structuredClone(old);
  delete (omitted.spec as any).clusterIP;
  delete (omitted.spec as any).clusterIPs;
  assert.deepEqual(validateUpdate(svcDef, omitted, old), []);
});
