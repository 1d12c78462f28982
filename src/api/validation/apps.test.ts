import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KubeObject } from '../types.js';
import { applyDefaults, validateCreate, validateUpdate } from './index.js';
import { def } from './testutil.test.js';

const deployDef = def('apps', 'Deployment');
const rsDef = def('apps', 'ReplicaSet');
const dsDef = def('apps', 'DaemonSet');

function workload(kind: string, spec: Record<string, unknown>): KubeObject {
  return { apiVersion: 'apps/v1', kind, metadata: { name: 'web', namespace: 'default' }, spec: structuredClone(spec) };
}

const minimal = {
  selector: { matchLabels: { app: 'web' } },
  template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'nginx', image: 'nginx:1.27' }] } },
};

test('a minimal deployment gets kube defaults, template included', () => {
  const d = workload('Deployment', minimal);
  applyDefaults(deployDef, d);
  assert.deepEqual(d.spec, {
    replicas: 1,
    selector: { matchLabels: { app: 'web' } },
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } },
    revisionHistoryLimit: 10,
    progressDeadlineSeconds: 600,
    template: {
      metadata: { labels: { app: 'web' } },
      spec: {
        containers: [
          {
            name: 'nginx',
            image: 'nginx:1.27',
            imagePullPolicy: 'IfNotPresent',
            resources: {},
            terminationMessagePath: '/dev/termination-log',
            terminationMessagePolicy: 'File',
          },
        ],
        dnsPolicy: 'ClusterFirst',
        restartPolicy: 'Always',
        schedulerName: 'default-scheduler',
        securityContext: {},
        terminationGracePeriodSeconds: 30,
      },
    },
  });
  assert.deepEqual(validateCreate(deployDef, d), []);
});

test('replicaset and daemonset defaults', () => {
  const rs = workload('ReplicaSet', minimal);
  applyDefaults(rsDef, rs);
  assert.equal((rs.spec as any).replicas, 1);
  assert.deepEqual(validateCreate(rsDef, rs), []);
  const ds = workload('DaemonSet', minimal);
  applyDefaults(dsDef, ds);
  assert.deepEqual((ds.spec as any).updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } });
  assert.equal((ds.spec as any).revisionHistoryLimit, 10);
  assert.deepEqual(validateCreate(dsDef, ds), []);
});

function causesFor(d: typeof deployDef, kind: string, spec: Record<string, unknown>) {
  const obj = workload(kind, spec);
  applyDefaults(d, obj);
  return validateCreate(d, obj);
}

test('selector rules', () => {
  assert.deepEqual(causesFor(deployDef, 'Deployment', { ...minimal, selector: undefined }), [
    { reason: 'FieldValueRequired', message: 'Required value', field: 'spec.selector' },
  ]);
  assert.deepEqual(causesFor(deployDef, 'Deployment', { ...minimal, selector: {} }), [
    {
      reason: 'FieldValueInvalid',
      message: 'Invalid value: &LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{},}: empty selector is invalid for deployment',
      field: 'spec.selector',
    },
  ]);
  assert.deepEqual(causesFor(deployDef, 'Deployment', { ...minimal, selector: { matchLabels: { app: 'other' } } }), [
    {
      reason: 'FieldValueInvalid',
      message: 'Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`',
      field: 'spec.template.metadata.labels',
    },
  ]);
  assert.equal(causesFor(dsDef, 'DaemonSet', { ...minimal, selector: {} })[0]!.message?.endsWith('empty selector is invalid for daemonset'), true);
});

test('replicas, strategy and template restartPolicy', () => {
  assert.deepEqual(causesFor(deployDef, 'Deployment', { ...minimal, replicas: -1 }), [
    { reason: 'FieldValueInvalid', message: 'Invalid value: -1: must be greater than or equal to 0', field: 'spec.replicas' },
  ]);
  assert.deepEqual(causesFor(deployDef, 'Deployment', { ...minimal, strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 0 } } }), [
    { reason: 'FieldValueInvalid', message: 'Invalid value: 0: may not be 0 when `maxSurge` is 0', field: 'spec.strategy.rollingUpdate.maxUnavailable' },
  ]);
  assert.deepEqual(causesFor(deployDef, 'Deployment', { ...minimal, strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '150%' } } }), [
    { reason: 'FieldValueInvalid', message: 'Invalid value: 150%: must not be greater than 100%', field: 'spec.strategy.rollingUpdate.maxUnavailable' },
  ]);
  assert.deepEqual(causesFor(deployDef, 'Deployment', { ...minimal, strategy: { type: 'Recreate', rollingUpdate: {} } }), [
    { reason: 'FieldValueForbidden', message: "Forbidden: may not be specified when strategy `type` is 'Recreate'", field: 'spec.strategy.rollingUpdate' },
  ]);
  const never = { ...minimal, template: { ...minimal.template, spec: { ...minimal.template.spec, restartPolicy: 'Never' } } };
  assert.deepEqual(causesFor(deployDef, 'Deployment', never), [
    { reason: 'FieldValueNotSupported', message: 'Unsupported value: "Never": supported values: "Always"', field: 'spec.template.spec.restartPolicy' },
  ]);
  assert.deepEqual(causesFor(dsDef, 'DaemonSet', { ...minimal, updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1, maxSurge: 1 } } }), [
    { reason: 'FieldValueInvalid', message: 'Invalid value: 1: may not be set when maxUnavailable is non-zero', field: 'spec.updateStrategy.rollingUpdate.maxSurge' },
  ]);
});

test('template container errors carry the template path', () => {
  const bad = { ...minimal, template: { ...minimal.template, spec: { containers: [{ name: 'Web', image: 'x' }] } } };
  const causes = causesFor(deployDef, 'Deployment', bad);
  assert.deepEqual(causes.map((c) => c.field), ['spec.template.spec.containers[0].name']);
});

test('selector is immutable in apps/v1', () => {
  const old = workload('Deployment', minimal);
  applyDefaults(deployDef, old);
  const next = structuredClone(old);
  (next.spec as any).selector = { matchLabels: { app: 'web', tier: 'x' } };
  (next.spec as any).template.metadata.labels.tier = 'x';
  assert.deepEqual(validateUpdate(deployDef, next, old), [
    {
      reason: 'FieldValueInvalid',
      message: 'Invalid value: &LabelSelector{MatchLabels:map[string]string{app: web,tier: x,},MatchExpressions:[]LabelSelectorRequirement{},}: field is immutable',
      field: 'spec.selector',
    },
  ]);
  const scaled = structuredClone(old);
  (scaled.spec as any).replicas = 5;
  assert.deepEqual(validateUpdate(deployDef, scaled, old), []);
});
