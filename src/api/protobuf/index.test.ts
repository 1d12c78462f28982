import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../errors.js';
import { decodeKubernetesProtobuf, isProtobufContentType, MAX_BODY_BYTES } from './index.js';
import { MAGIC, MAX_NESTING } from './decode.js';
import { encodeBody, encodeMessage, type EncodeOptions } from './encode.test.js';
import { KUBECTL_1_32 } from './fixtures/kubectl-1.32.js';

const fromHex = (hex: string) => Buffer.from(hex, 'hex');

/** Encodes `obj` Go-style (zeros written for non-pointer fields), decodes it, and expects `obj` back. */
function roundTrip(obj: Record<string, unknown>, opts: EncodeOptions = {}): void {
  const body = encodeBody(obj['apiVersion'] as string, obj['kind'] as string, obj, { goZeros: true, ...opts });
  assert.deepEqual(decodeKubernetesProtobuf(body), obj);
}

function rejects(body: Buffer, code: number, message: RegExp): void {
  assert.throws(
    () => decodeKubernetesProtobuf(body),
    (e: unknown) => e instanceof ApiError && e.code === code && message.test(e.message),
  );
}

describe('isProtobufContentType', () => {
  test('matches the Kubernetes protobuf media type, ignoring parameters and case', () => {
    assert.equal(isProtobufContentType('application/vnd.kubernetes.protobuf'), true);
    assert.equal(isProtobufContentType('Application/Vnd.Kubernetes.Protobuf; charset=utf-8'), true);
    assert.equal(isProtobufContentType('application/vnd.kubernetes.protobuf;stream=watch'), true);
    assert.equal(isProtobufContentType('application/json'), false);
    assert.equal(isProtobufContentType('application/vnd.kubernetes.protobuf+json'), false);
    assert.equal(isProtobufContentType(''), false);
  });
});

describe('bodies captured from kubectl 1.32', () => {
  const expected: Record<string, Record<string, unknown>> = {
    configMap: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { a: 'b' } },
    deployment: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'd', labels: { app: 'd' } },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: 'd' } },
        template: { metadata: { labels: { app: 'd' } }, spec: { containers: [{ name: 'busybox', image: 'busybox' }] } },
      },
    },
    selfSubjectAccessReview: {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: { resourceAttributes: { namespace: 'x', verb: 'list', resource: 'pods' } },
      status: { allowed: false },
    },
    secret: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, data: { bin: 'AQI=', k: 'dg==' } },
    namespace: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'n1' } },
    role: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'r' },
      rules: [{ verbs: ['get', 'list'], apiGroups: [''], resources: ['pods'] }],
    },
    tokenRequest: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 600 } },
    service: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'svc1', labels: { app: 'svc1' } },
      spec: { ports: [{ name: '80-8080', protocol: 'TCP', port: 80, targetPort: 8080 }], selector: { app: 'svc1' }, type: 'ClusterIP' },
    },
    roleBinding: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'rb' },
      subjects: [
        { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'alice' },
        { kind: 'ServiceAccount', name: 'sa1', namespace: 'default' },
      ],
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
    },
    clusterRole: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'cr' },
      rules: [{ verbs: ['get'], apiGroups: [''], resources: ['pods'], resourceNames: ['p1'] }],
    },
    clusterRoleBinding: {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'crb' },
      subjects: [{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'g1' }],
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cr' },
    },
    serviceAccount: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'sa2' } },
    deleteOptions: { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0 },
  };

  test('every capture has an expectation', () => {
    assert.deepEqual(Object.keys(KUBECTL_1_32).sort(), Object.keys(expected).sort());
  });

  for (const [name, capture] of Object.entries(KUBECTL_1_32)) {
    test(`${capture.command}`, () => {
      assert.deepEqual(decodeKubernetesProtobuf(fromHex(capture.hex)), expected[name]);
    });
  }
});

describe('hand-assembled bytes', () => {
  // Written out by hand rather than by the test encoder, so a mistake shared by encoder and decoder
  // cannot hide. ObjectMeta: name=1 namespace=3 labels=11; ConfigMap: metadata=1 data=2 binaryData=3
  // immutable=4; map entries: key=1 value=2. Creation timestamp: Time{seconds=1}.
  const raw = [
    '0a', '22', // ConfigMap.metadata, 34 bytes
    '0a', '04', '63666731', // name "cfg1"
    '1a', '02', '6e73', // namespace "ns"
    '42', '06', '08', 'a5facdac06', // creationTimestamp {seconds: 1704164645}
    '5a', '0a', '0a', '03', '617070', '12', '03', '776562', // labels {app: web}
    '12', '00', // generateName "" (Go writes non-pointer zeros; must be dropped)
    '38', '00', // generation 0
    '12', '0c', '0a', '04', '6b657931', '12', '04', '76616c31', // data {key1: val1}
    '1a', '08', '0a', '01', '62', '12', '03', '00ff10', // binaryData {b: 00 ff 10}
    '20', '00', // immutable false: a *bool in Go, so it survives
  ].join('');
  const envelope =
    '0a0f' + '0a027631' + '1209' + Buffer.from('ConfigMap').toString('hex') + // typeMeta {apiVersion v1, kind ConfigMap}
    '12' + (raw.length / 2).toString(16).padStart(2, '0') + raw + // raw
    '1a00' + '2200'; // contentEncoding "", contentType ""

  test('a ConfigMap decodes to the JSON kube would produce', () => {
    assert.deepEqual(decodeKubernetesProtobuf(Buffer.concat([Buffer.from(MAGIC), fromHex(envelope)])), {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'cfg1', namespace: 'ns', creationTimestamp: '2024-01-02T03:04:05Z', labels: { app: 'web' } },
      data: { key1: 'val1' },
      binaryData: { b: 'AP8Q' },
      immutable: false,
    });
  });
});

describe('round trips of realistic objects', () => {
  const meta = {
    name: 'web',
    namespace: 'prod',
    uid: '7d3c1c2e-0000-4000-8000-000000000001',
    resourceVersion: '42',
    generation: 3,
    creationTimestamp: '2024-01-02T03:04:05Z',
    labels: { app: 'web', tier: 'frontend' },
    annotations: { 'example.com/note': 'hi' },
    ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-1', uid: 'u-1', controller: true, blockOwnerDeletion: true }],
    finalizers: ['example.com/cleanup'],
    managedFields: [
      {
        manager: 'kubectl-create',
        operation: 'Update',
        apiVersion: 'v1',
        time: '2024-01-02T03:04:05Z',
        fieldsType: 'FieldsV1',
        fieldsV1: { 'f:data': { '.': {}, 'f:a': {} } },
      },
    ],
  };

  test('ConfigMap with binary data, labels, annotations, owner references and managed fields', () => {
    roundTrip({ apiVersion: 'v1', kind: 'ConfigMap', metadata: meta, data: { a: 'b', empty: '' }, binaryData: { bin: 'AAEC/w==' }, immutable: true });
  });

  test('Secret with bytes that are not UTF-8', () => {
    roundTrip({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, type: 'Opaque', data: { key: Buffer.from([0, 255, 254, 10]).toString('base64') } });
  });

  test('Namespace with spec and status', () => {
    roundTrip({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'n', deletionTimestamp: '2030-12-31T23:59:59Z', deletionGracePeriodSeconds: 0 }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } });
  });

  test('Role with several rules', () => {
    roundTrip({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'r', namespace: 'x' },
      rules: [
        { verbs: ['get', 'list', 'watch'], apiGroups: ['', 'apps'], resources: ['pods', 'deployments'], resourceNames: ['a'] },
        { verbs: ['get'], nonResourceURLs: ['/healthz'] },
      ],
    });
  });

  const podSpec = {
    initContainers: [{ name: 'init', image: 'busybox', command: ['sh', '-c', 'true'] }],
    containers: [
      {
        name: 'app',
        image: 'nginx:1.27',
        args: ['--port', '8080'],
        ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
        env: [
          { name: 'PLAIN', value: 'v' },
          { name: 'FROM_CM', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'k', optional: false } } },
          { name: 'FROM_FIELD', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
          { name: 'FROM_RES', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
        ],
        envFrom: [{ prefix: 'S_', secretRef: { name: 'sec' } }],
        resources: { limits: { cpu: '500m', memory: '128Mi' }, requests: { cpu: '100m', memory: '64Mi', 'example.com/gpu': '1' } },
        volumeMounts: [{ name: 'data', mountPath: '/data', readOnly: true }],
        livenessProbe: { httpGet: { path: '/healthz', port: 8080, scheme: 'HTTP', httpHeaders: [{ name: 'X', value: 'y' }] }, initialDelaySeconds: 5, periodSeconds: 10, terminationGracePeriodSeconds: 0 },
        readinessProbe: { httpGet: { path: '/ready', port: 'http' }, failureThreshold: 3 },
        startupProbe: { tcpSocket: { port: 8080 } },
        lifecycle: { preStop: { exec: { command: ['sleep', '5'] } } },
        securityContext: { runAsUser: 0, runAsNonRoot: false, readOnlyRootFilesystem: false, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        imagePullPolicy: 'IfNotPresent',
      },
    ],
    volumes: [
      { name: 'scratch', emptyDir: {} },
      { name: 'data', configMap: { name: 'cfg', defaultMode: 420, items: [{ key: 'k', path: 'p' }] } },
      { name: 'proj', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3600 } }, { secret: { name: 'sec' } }] } },
    ],
    restartPolicy: 'Always',
    terminationGracePeriodSeconds: 0,
    dnsPolicy: 'ClusterFirst',
    nodeSelector: { 'kubernetes.io/os': 'linux' },
    serviceAccountName: 'default',
    automountServiceAccountToken: false,
    securityContext: { runAsUser: 1000, runAsGroup: 0, fsGroup: 2000, supplementalGroups: [1, 2, 3] },
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }] }] },
      },
    },
    tolerations: [
      { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
      { key: 'dedicated', operator: 'Equal', value: 'edge', effect: 'NoSchedule', tolerationSeconds: 0 },
    ],
    hostNetwork: true,
    priority: 0,
    enableServiceLinks: false,
  };

  test('Deployment with replicas 0 and a full pod template', () => {
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'prod', labels: { app: 'web' } },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'Exists' }] },
        template: { metadata: { labels: { app: 'web' } }, spec: podSpec },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: '25%' } },
        revisionHistoryLimit: 0,
        progressDeadlineSeconds: 600,
      },
      status: { observedGeneration: 1, replicas: 2, conditions: [{ type: 'Available', status: 'True', lastUpdateTime: '2024-01-02T03:04:05Z', reason: 'MinimumReplicasAvailable' }] },
    };
    roundTrip(deployment);
    roundTrip(deployment, { packed: true });
  });

  test('Pod with status times and container states', () => {
    roundTrip({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', namespace: 'default' },
      spec: podSpec,
      status: {
        phase: 'Running',
        podIP: '10.0.0.5',
        podIPs: [{ ip: '10.0.0.5' }],
        startTime: '2024-01-02T03:04:05Z',
        containerStatuses: [{ name: 'app', ready: true, restartCount: 2, image: 'nginx', imageID: 'sha', started: true, state: { running: { startedAt: '2024-01-02T03:04:06Z' } } }],
      },
    });
  });

  test('SelfSubjectAccessReview and SubjectAccessReview with extra', () => {
    roundTrip({
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: { resourceAttributes: { namespace: 'x', verb: 'create', group: 'apps', resource: 'deployments', subresource: 'scale' } },
      status: { allowed: false },
    });
    roundTrip({
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: { nonResourceAttributes: { path: '/metrics', verb: 'get' }, user: 'alice', groups: ['dev'], extra: { scopes: ['a', 'b'], empty: [] }, uid: 'u' },
      status: { allowed: true, reason: 'RBAC' },
    });
  });

  test('Eviction keeps deleteOptions.gracePeriodSeconds 0', () => {
    roundTrip({
      apiVersion: 'policy/v1',
      kind: 'Eviction',
      metadata: { name: 'p', namespace: 'default' },
      deleteOptions: { gracePeriodSeconds: 0, preconditions: { uid: 'u-1' }, propagationPolicy: 'Background', dryRun: ['All'] },
    });
  });

  test('Scale keeps spec.replicas 0', () => {
    roundTrip({ apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name: 'web', namespace: 'prod' }, spec: { replicas: 0 }, status: { replicas: 3, selector: 'app=web' } });
  });

  test('Binding and TokenRequest subresource bodies', () => {
    roundTrip({ apiVersion: 'v1', kind: 'Binding', metadata: { name: 'p', namespace: 'default' }, target: { kind: 'Node', name: 'edge-1' } });
    roundTrip({
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      metadata: { name: 'sa' },
      spec: { audiences: ['https://kubernetes.default.svc'], expirationSeconds: 3600, boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'p', uid: 'u-1' } },
    });
  });

  test('Events: core Event with a MicroTime and events.k8s.io Event with a series', () => {
    roundTrip({
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: 'e', namespace: 'default' },
      involvedObject: { kind: 'Pod', name: 'p', namespace: 'default', uid: 'u' },
      reason: 'Started',
      message: 'started',
      source: { component: 'kubelet', host: 'n1' },
      firstTimestamp: '2024-01-02T03:04:05Z',
      count: 1,
      type: 'Normal',
      eventTime: '2024-01-02T03:04:05.123456Z',
      reportingComponent: 'kubelet',
    });
    roundTrip({
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { name: 'e', namespace: 'default' },
      eventTime: '2024-01-02T03:04:05.000001Z',
      series: { count: 2, lastObservedTime: '2024-01-02T03:05:00.500000Z' },
      reportingController: 'atoll/scheduler',
      reportingInstance: 'a',
      action: 'Scheduling',
      reason: 'Scheduled',
      regarding: { kind: 'Pod', name: 'p' },
      note: 'ok',
      type: 'Normal',
    });
  });

  test('CustomResourceDefinition with a recursive schema and raw JSON values', () => {
    roundTrip({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'widgets.example.com' },
      spec: {
        group: 'example.com',
        names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList', shortNames: ['wd'] },
        scope: 'Namespaced',
        versions: [
          {
            name: 'v1',
            served: true,
            storage: true,
            subresources: { status: {}, scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas' } },
            additionalPrinterColumns: [{ name: 'Size', type: 'integer', jsonPath: '.spec.size' }],
            schema: {
              openAPIV3Schema: {
                type: 'object',
                required: ['spec'],
                properties: {
                  spec: {
                    type: 'object',
                    properties: {
                      size: { type: 'integer', minimum: 0, maximum: 10.5, default: 1 },
                      mode: { type: 'string', enum: ['a', 'b', null], pattern: '^[ab]$' },
                      tags: { type: 'array', items: { type: 'string', maxLength: 0 }, 'x-kubernetes-list-type': 'set' },
                      pair: { type: 'array', items: [{ type: 'string' }, { type: 'integer' }] },
                      labels: { type: 'object', additionalProperties: { type: 'string' } },
                      closed: { type: 'object', additionalProperties: false },
                      port: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] },
                      blob: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true, example: { any: ['thing', 1] } },
                      empty: {},
                    },
                    dependencies: { a: ['b'], c: { required: ['d'] } },
                    'x-kubernetes-validations': [{ rule: 'self.size <= 10', message: 'too big', optionalOldSelf: false }],
                  },
                  status: { type: 'object', $ref: '#/definitions/status' },
                },
              },
            },
          },
        ],
        conversion: { strategy: 'None' },
      },
    });
  });

  test('ControllerRevision keeps its raw JSON data', () => {
    roundTrip({ apiVersion: 'apps/v1', kind: 'ControllerRevision', metadata: { name: 'cr' }, data: { spec: { template: { a: [1, 2, { b: null }] } } }, revision: 2 });
  });

  test('CertificateSigningRequest, Lease, RuntimeClass, Node, Endpoints, PVC and PV', () => {
    roundTrip({
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { name: 'csr' },
      spec: { request: Buffer.from('-----BEGIN CERTIFICATE REQUEST-----').toString('base64'), signerName: 'kubernetes.io/kube-apiserver-client', usages: ['client auth'], expirationSeconds: 600, extra: { k: ['v'] } },
      status: { conditions: [{ type: 'Approved', status: 'True', reason: 'KubectlApprove', lastUpdateTime: '2024-01-02T03:04:05Z' }] },
    });
    roundTrip({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'n1', namespace: 'kube-node-lease' }, spec: { holderIdentity: 'n1', leaseDurationSeconds: 40, renewTime: '2024-01-02T03:04:05.000000Z', leaseTransitions: 0 } });
    roundTrip({ apiVersion: 'node.k8s.io/v1', kind: 'RuntimeClass', metadata: { name: 'runv' }, handler: 'runv', overhead: { podFixed: { memory: '64Mi' } }, scheduling: { nodeSelector: { vm: 'yes' } } });
    roundTrip({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'n1' },
      spec: { podCIDR: '10.0.0.0/24', taints: [{ key: 'k', value: 'v', effect: 'NoSchedule', timeAdded: '2024-01-02T03:04:05Z' }], unschedulable: true },
      status: { capacity: { cpu: '4', pods: '110' }, addresses: [{ type: 'InternalIP', address: '192.168.1.2' }], conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: '2024-01-02T03:04:05Z' }], nodeInfo: { kubeletVersion: 'v1.32.0', architecture: 'amd64' } },
    });
    roundTrip({ apiVersion: 'v1', kind: 'Endpoints', metadata: { name: 'svc' }, subsets: [{ addresses: [{ ip: '10.0.0.5', targetRef: { kind: 'Pod', name: 'p' } }], ports: [{ name: 'http', port: 80, protocol: 'TCP' }] }] });
    roundTrip({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'c' }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } }, storageClassName: '' } });
    roundTrip({ apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name: 'pv' }, spec: { capacity: { storage: '1Gi' }, hostPath: { path: '/data', type: '' }, persistentVolumeReclaimPolicy: 'Retain' } });
  });

  test('EndpointSlice', () => {
    roundTrip({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'svc-abc', labels: { 'kubernetes.io/service-name': 'svc' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.0.0.5'], conditions: { ready: true, serving: true, terminating: false }, nodeName: 'n1', targetRef: { kind: 'Pod', name: 'p' } }],
      ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    });
  });

  test('Lists and Status', () => {
    roundTrip({ apiVersion: 'v1', kind: 'ConfigMapList', metadata: { resourceVersion: '7', continue: 'c' }, items: [{ metadata: { name: 'a' }, data: { k: 'v' } }, { metadata: { name: 'b' } }] });
    roundTrip({ apiVersion: 'v1', kind: 'Status', status: 'Failure', message: 'nope', reason: 'NotFound', code: 404, details: { name: 'x', kind: 'pods', causes: [{ reason: 'FieldValueInvalid', field: 'spec' }] } });
  });

  test('a ServiceAccount with automountServiceAccountToken false', () => {
    roundTrip({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'sa' }, automountServiceAccountToken: false, secrets: [{ name: 's' }], imagePullSecrets: [{ name: 'reg' }] });
  });
});

describe('decoding details', () => {
  test('Go zeros of non-pointer fields are dropped; pointer zeros are kept', () => {
    const body = encodeBody('v1', 'Pod', { metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'i' }], terminationGracePeriodSeconds: 0 } }, { goZeros: true });
    assert.deepEqual(decodeKubernetesProtobuf(body), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p' },
      spec: { containers: [{ name: 'c', image: 'i' }], terminationGracePeriodSeconds: 0 },
    });
  });

  test('Service targetPort zero (an unset non-pointer IntOrString) is dropped', () => {
    const body = encodeBody('v1', 'Service', { spec: { ports: [{ port: 80, targetPort: 0 }] } });
    assert.deepEqual(decodeKubernetesProtobuf(body), { apiVersion: 'v1', kind: 'Service', spec: { ports: [{ port: 80 }] } });
  });

  test('fields the schema does not know are skipped, whatever their wire type', () => {
    // Field 127 as varint, length-delimited, fixed32 and fixed64.
    const extra = fromHex('f80701' + 'fa0702abcd' + 'fd0701020304' + 'f9070102030405060708');
    const meta = encodeMessage('meta.v1.ObjectMeta', { name: 'n' });
    const raw = Buffer.concat([fromHex('0a' + meta.length.toString(16).padStart(2, '0')), meta, extra]);
    const envelope = encodeMessage('runtime.Unknown', { typeMeta: { apiVersion: 'v1', kind: 'Namespace' }, raw: raw.toString('base64') });
    assert.deepEqual(decodeKubernetesProtobuf(Buffer.concat([MAGIC, envelope])), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'n' } });
  });

  test('negative int32 and int64 values decode from ten-byte varints', () => {
    roundTrip({ apiVersion: 'v1', kind: 'Event', metadata: { name: 'e' }, count: -2, involvedObject: { kind: 'Pod' } });
    roundTrip({ apiVersion: 'v1', kind: 'Pod', spec: { containers: [{ name: 'c' }], securityContext: { runAsUser: -1 } } });
  });

  test('a map key "__proto__" becomes an ordinary property', () => {
    const body = encodeBody('v1', 'ConfigMap', { data: JSON.parse('{"__proto__": "x", "a": "b"}') as Record<string, string> });
    const data = decodeKubernetesProtobuf(body)['data'] as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(data), Object.prototype);
    assert.deepEqual(Object.entries(data), [['__proto__', 'x'], ['a', 'b']]);
  });

  test('DeleteOptions decodes from any group version', () => {
    const body = encodeBody('apps/v1', 'DeleteOptions', { propagationPolicy: 'Foreground', orphanDependents: false });
    assert.deepEqual(decodeKubernetesProtobuf(body), { apiVersion: 'apps/v1', kind: 'DeleteOptions', orphanDependents: false, propagationPolicy: 'Foreground' });
  });
});

describe('bad input', () => {
  const good = fromHex(KUBECTL_1_32['configMap']!.hex);

  test('no magic prefix', () => {
    rejects(Buffer.from('{"kind":"ConfigMap"}'), 400, /does not start with the Kubernetes prefix/);
    rejects(Buffer.alloc(0), 400, /does not start with the Kubernetes prefix/);
  });

  test('a body cut at any length decodes (if cut between fields) or fails with 400', () => {
    let failures = 0;
    for (let n = 0; n < good.length; n++) {
      try {
        decodeKubernetesProtobuf(good.subarray(0, n));
      } catch (e) {
        assert.ok(e instanceof ApiError && e.code === 400, `length ${n}: ${String(e)}`);
        failures++;
      }
    }
    assert.ok(failures > good.length - 5);
  });

  test('truncated varint', () => {
    rejects(Buffer.concat([MAGIC, fromHex('0aff')]), 400, /truncated varint/);
  });

  test('varint longer than ten bytes', () => {
    rejects(Buffer.concat([MAGIC, fromHex('ffffffffffffffffffff01')]), 400, /varint longer than 10 bytes/);
  });

  test('length past the end', () => {
    rejects(Buffer.concat([MAGIC, fromHex('0a7f0a00')]), 400, /runs past the end/);
  });

  test('wrong wire type names the field path', () => {
    const bad = encodeMessage('runtime.Unknown', { typeMeta: { apiVersion: 'v1', kind: 'ConfigMap' }, raw: fromHex('0a020801').toString('base64') });
    rejects(Buffer.concat([MAGIC, bad]), 400, /at ConfigMap\.metadata\.name: varint value where length-delimited was expected/);
  });

  test('groups and field number zero are refused', () => {
    rejects(Buffer.concat([MAGIC, fromHex('7b7c')]), 400, /unsupported start-group field/);
    rejects(Buffer.concat([MAGIC, fromHex('0000')]), 400, /invalid field number 0/);
  });

  test('unknown kind or no kind', () => {
    rejects(encodeBody('example.com/v1', 'Widget', {}, { type: 'core.v1.ConfigMap' }), 400, /no kind "Widget" is registered for version "example.com\/v1"/);
    rejects(encodeBody('v1', '', {}, { type: 'core.v1.ConfigMap' }), 400, /no kind/);
  });

  test('compressed or non-protobuf envelopes are unsupported media', () => {
    const gz = encodeMessage('runtime.Unknown', { typeMeta: { apiVersion: 'v1', kind: 'ConfigMap' }, contentEncoding: 'gzip' });
    rejects(Buffer.concat([MAGIC, gz]), 415, /content encoding "gzip"/);
    const json = encodeMessage('runtime.Unknown', { typeMeta: { apiVersion: 'v1', kind: 'ConfigMap' }, contentType: 'application/json' });
    rejects(Buffer.concat([MAGIC, json]), 415, /content type "application\/json"/);
  });

  test('bodies over the size limit', () => {
    rejects(Buffer.concat([MAGIC, Buffer.alloc(MAX_BODY_BYTES)]), 413, /exceeds the limit/);
  });

  test('nesting deeper than the limit', () => {
    let schema: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < MAX_NESTING; i++) schema = { not: schema };
    const crd = { spec: { versions: [{ name: 'v1', schema: { openAPIV3Schema: schema } }] } };
    rejects(encodeBody('apiextensions.k8s.io/v1', 'CustomResourceDefinition', crd), 400, /nested deeper than 100/);
  });

  test('integers beyond 2^53 and non-finite doubles have no JSON form', () => {
    rejects(encodeBody('v1', 'ConfigMap', { metadata: { generation: 2 ** 60 } }), 400, /metadata\.generation: integer 1152921504606846976 is outside/);
    const crd = { spec: { versions: [{ name: 'v1', schema: { openAPIV3Schema: { maximum: Infinity } } }] } };
    rejects(encodeBody('apiextensions.k8s.io/v1', 'CustomResourceDefinition', crd), 400, /number Infinity has no JSON form/);
  });

  test('bad embedded JSON, bad IntOrString type, out-of-range timestamps', () => {
    const rev = encodeMessage('apps.v1.ControllerRevision', {});
    const withBadJson = Buffer.concat([rev, fromHex('12050a037b7b7b')]);
    const envelope = encodeMessage('runtime.Unknown', { typeMeta: { apiVersion: 'apps/v1', kind: 'ControllerRevision' }, raw: withBadJson.toString('base64') });
    rejects(Buffer.concat([MAGIC, envelope]), 400, /at ControllerRevision\.data: embedded JSON does not parse/);
    const port = encodeMessage('core.v1.ServicePort', {});
    const badPort = Buffer.concat([port, fromHex('22020807')]);
    const svc = encodeMessage('runtime.Unknown', {
      typeMeta: { apiVersion: 'v1', kind: 'Service' },
      raw: Buffer.concat([fromHex('12'), Buffer.from([badPort.length + 2]), fromHex('0a'), Buffer.from([badPort.length]), badPort]).toString('base64'),
    });
    rejects(Buffer.concat([MAGIC, svc]), 400, /IntOrString type 7/);
    rejects(encodeBody('v1', 'ConfigMap', { metadata: { creationTimestamp: '+010000-01-01T00:00:00Z' } }), 400, /outside years 0-9999/);
  });
});
