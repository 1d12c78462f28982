import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { KubeObject } from '../types.js';
import { applyDefaults, validateCreate, validateUpdate } from './index.js';
import { POD_UPDATE_FORBIDDEN } from './pod.js';
import { def } from './testutil.test.js';

const podDef = def('', 'Pod');

function pod(spec: Record<string, unknown>): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', namespace: 'default' }, spec };
}

function defaulted(spec: Record<string, unknown>): KubeObject {
  const p = pod(structuredClone(spec));
  applyDefaults(podDef, p);
  return p;
}

test('a minimal pod gets exactly the fields kube fills', () => {
  const p = defaulted({ containers: [{ name: 'nginx', image: 'nginx' }] });
  assert.deepEqual(p.spec, {
    containers: [
      {
        name: 'nginx',
        image: 'nginx',
        imagePullPolicy: 'Always',
        resources: {},
        terminationMessagePath: '/dev/termination-log',
        terminationMessagePolicy: 'File',
      },
    ],
    dnsPolicy: 'ClusterFirst',
    enableServiceLinks: true,
    preemptionPolicy: 'PreemptLowerPriority',
    priority: 0,
    restartPolicy: 'Always',
    schedulerName: 'default-scheduler',
    securityContext: {},
    serviceAccount: 'default',
    serviceAccountName: 'default',
    terminationGracePeriodSeconds: 30,
  });
  assert.deepEqual(validateCreate(podDef, p), []);
});

test('container, probe, env and volume defaults', () => {
  const p = defaulted({
    containers: [
      {
        name: 'app',
        image: 'registry.local:5000/app:1.2',
        ports: [{ containerPort: 8080 }],
        livenessProbe: { httpGet: { port: 8080 } },
        env: [{ name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }],
        resources: { limits: { cpu: '1' } },
      },
      { name: 'pinned', image: 'busybox@sha256:abc' },
    ],
    volumes: [{ name: 'cfg', configMap: { name: 'c' } }, { name: 'tmp' }, { name: 's', secret: { secretName: 's' } }],
  });
  const spec = p.spec as any;
  const c = spec.containers[0];
  assert.equal(c.imagePullPolicy, 'IfNotPresent');
  assert.equal(spec.containers[1].imagePullPolicy, 'IfNotPresent');
  assert.deepEqual(c.ports, [{ containerPort: 8080, protocol: 'TCP' }]);
  assert.deepEqual(c.livenessProbe, {
    httpGet: { port: 8080, path: '/', scheme: 'HTTP' },
    timeoutSeconds: 1,
    periodSeconds: 10,
    successThreshold: 1,
    failureThreshold: 3,
  });
  assert.deepEqual(c.env[0].valueFrom.fieldRef, { fieldPath: 'metadata.name', apiVersion: 'v1' });
  assert.deepEqual(c.resources, { limits: { cpu: '1' }, requests: { cpu: '1' } });
  assert.deepEqual(spec.volumes, [
    { name: 'cfg', configMap: { name: 'c', defaultMode: 420 } },
    { name: 'tmp', emptyDir: {} },
    { name: 's', secret: { secretName: 's', defaultMode: 420 } },
  ]);
  assert.deepEqual(validateCreate(podDef, p), []);
});

test('each invalid field yields kube cause', () => {
  const cases: Array<[Record<string, unknown>, { field: string; reason: string; message: string }]> = [
    [{ containers: [] }, { field: 'spec.containers', reason: 'FieldValueRequired', message: 'Required value' }],
    [{ containers: [{ name: 'a' }] }, { field: 'spec.containers[0].image', reason: 'FieldValueRequired', message: 'Required value' }],
    [
      { containers: [{ name: 'a', image: 'x' }, { name: 'a', image: 'y' }] },
      { field: 'spec.containers[1].name', reason: 'FieldValueDuplicate', message: 'Duplicate value: "a"' },
    ],
    [
      { containers: [{ name: 'a', image: 'x', ports: [{ containerPort: 70000 }] }] },
      { field: 'spec.containers[0].ports[0].containerPort', reason: 'FieldValueInvalid', message: 'Invalid value: 70000: must be between 1 and 65535, inclusive' },
    ],
    [
      { containers: [{ name: 'a', image: 'x', ports: [{ containerPort: 80, protocol: 'HTTP' }] }] },
      {
        field: 'spec.containers[0].ports[0].protocol',
        reason: 'FieldValueNotSupported',
        message: 'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"',
      },
    ],
    [
      { containers: [{ name: 'a', image: 'x', env: [{ name: 'A=B' }] }] },
      {
        field: 'spec.containers[0].env[0].name',
        reason: 'FieldValueInvalid',
        message: `Invalid value: "A=B": a valid environment variable name must consist only of printable ASCII characters other than '='`,
      },
    ],
    [
      { containers: [{ name: 'a', image: 'x', resources: { limits: { cpu: '500m' }, requests: { cpu: '1' } } }] },
      { field: 'spec.containers[0].resources.requests', reason: 'FieldValueInvalid', message: 'Invalid value: "1": must be less than or equal to cpu limit of 500m' },
    ],
    [
      { containers: [{ name: 'a', image: 'x', resources: { requests: { memory: '1Gb' } } }] },
      {
        field: 'spec.containers[0].resources.requests[memory]',
        reason: 'FieldValueInvalid',
        message: `Invalid value: "1Gb": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'`,
      },
    ],
    [
      { restartPolicy: 'Sometimes', containers: [{ name: 'a', image: 'x' }] },
      { field: 'spec.restartPolicy', reason: 'FieldValueNotSupported', message: 'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"' },
    ],
    [
      { dnsPolicy: 'Cluster', containers: [{ name: 'a', image: 'x' }] },
      {
        field: 'spec.dnsPolicy',
        reason: 'FieldValueNotSupported',
        message: 'Unsupported value: "Cluster": supported values: "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"',
      },
    ],
    [
      { containers: [{ name: 'a', image: 'x', volumeMounts: [{ name: 'missing', mountPath: '/m' }] }] },
      { field: 'spec.containers[0].volumeMounts[0].name', reason: 'FieldValueNotFound', message: 'Not found: "missing"' },
    ],
    [
      { containers: [{ name: 'a', image: 'x' }], volumes: [{ name: 'v', emptyDir: {}, hostPath: { path: '/x' } }] },
      { field: 'spec.volumes[0].hostPath', reason: 'FieldValueForbidden', message: 'Forbidden: may not specify more than 1 volume type' },
    ],
    [
      { containers: [{ name: 'a', image: 'x' }], volumes: [{ name: 'v' }, { name: 'v' }] },
      { field: 'spec.volumes[1].name', reason: 'FieldValueDuplicate', message: 'Duplicate value: "v"' },
    ],
    [
      { containers: [{ name: 'a', image: 'x', readinessProbe: { exec: { command: ['true'] }, tcpSocket: { port: 80 } } }] },
      { field: 'spec.containers[0].readinessProbe.tcpSocket', reason: 'FieldValueForbidden', message: 'Forbidden: may not specify more than 1 handler type' },
    ],
    [
      { containers: [{ name: 'a', image: 'x' }], tolerations: [{ key: 'k', operator: 'Maybe' }] },
      { field: 'spec.tolerations[0].operator', reason: 'FieldValueNotSupported', message: 'Unsupported value: "Maybe": supported values: "Equal", "Exists"' },
    ],
    [
      { containers: [{ name: 'a', image: 'x' }], tolerations: [{ key: 'k', operator: 'Exists', effect: 'NoRun' }] },
      {
        field: 'spec.tolerations[0].effect',
        reason: 'FieldValueNotSupported',
        message: 'Unsupported value: "NoRun": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
      },
    ],
    [
      { containers: [{ name: 'a', image: 'x' }], nodeSelector: { 'bad key': 'v' } },
      {
        field: 'spec.nodeSelector',
        reason: 'FieldValueInvalid',
        message: `Invalid value: "bad key": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
      },
    ],
    [
      { containers: [{ name: 'a', image: 'x' }], runtimeClassName: 'Runv' },
      {
        field: 'spec.runtimeClassName',
        reason: 'FieldValueInvalid',
        message: `Invalid value: "Runv": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
      },
    ],
    [
      { containers: [{ name: 'a', image: 'x' }], overhead: { cpu: '-1' } },
      { field: 'spec.overhead.limits[cpu]', reason: 'FieldValueInvalid', message: 'Invalid value: "-1": must be greater than or equal to 0' },
    ],
  ];
  for (const [spec, want] of cases) {
    assert.deepEqual(validateCreate(podDef, defaulted(spec)), [want], JSON.stringify(spec));
  }
});

test('a realistic pod is valid', () => {
  const p = defaulted({
    runtimeClassName: 'runv',
    nodeSelector: { 'kubernetes.io/os': 'linux' },
    tolerations: [{ key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
    initContainers: [{ name: 'init', image: 'busybox:1.36', command: ['sh', '-c', 'true'] }],
    containers: [
      {
        name: 'web',
        image: 'nginx:1.27',
        ports: [{ name: 'http', containerPort: 80 }],
        env: [{ name: 'MODE', value: 'prod' }, { name: 'CFG', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'mode' } } }],
        resources: { requests: { cpu: '250m', memory: '64Mi' }, limits: { cpu: '1', memory: '128Mi' } },
        readinessProbe: { httpGet: { path: '/healthz', port: 'http' } },
        volumeMounts: [{ name: 'data', mountPath: '/data' }],
      },
    ],
    volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data' } }],
  });
  assert.deepEqual(validateCreate(podDef, p), []);
});

test('pod updates: image and tolerationSeconds may change, nothing else', () => {
  const base = { ...defaulted({ containers: [{ name: 'a', image: 'x:1' }], tolerations: [{ key: 'k', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 10 }] }) };
  base.metadata = { ...base.metadata, uid: 'u', resourceVersion: '5' };
  const imageChange = structuredClone(base);
  (imageChange.spec as any).containers[0].image = 'x:2';
  (imageChange.spec as any).tolerations[0].tolerationSeconds = 20;
  (imageChange.spec as any).tolerations.push({ key: 'other', operator: 'Exists' });
  assert.deepEqual(validateUpdate(podDef, imageChange, base), []);

  const portChange = structuredClone(base);
  (portChange.spec as any).containers[0].ports = [{ containerPort: 80, protocol: 'TCP' }];
  const causes = validateUpdate(podDef, portChange, base);
  assert.equal(causes.length, 1);
  assert.equal(causes[0]!.field, 'spec');
  assert.equal(causes[0]!.reason, 'FieldValueForbidden');
  assert.ok(causes[0]!.message!.startsWith(`Forbidden: ${POD_UPDATE_FORBIDDEN}\n`));
  assert.equal(
    POD_UPDATE_FORBIDDEN,
    'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
  );

  const removed = structuredClone(base);
  (removed.spec as any).tolerations = [];
  assert.deepEqual(validateUpdate(podDef, removed, base), [
    { reason: 'FieldValueForbidden', message: 'Forbidden: existing toleration can not be modified except its tolerationSeconds', field: 'spec.tolerations' },
  ]);

  const added = structuredClone(base);
  (added.spec as any).containers.push({ ...(added.spec as any).containers[0], name: 'b' });
  assert.deepEqual(validateUpdate(podDef, added, base), [
    { reason: 'FieldValueForbidden', message: 'Forbidden: pod updates may not add or remove containers', field: 'spec.containers' },
  ]);
});
