import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ApiError } from '../errors.js';
import { BUILTIN_RESOURCES, type ResourceDef } from '../resources.js';
import { customResourceSchemas } from './documents.js';
import { builtinSchemas, resolver, schemaFor } from './generate.js';
import type { Schema } from './schema.js';
import { fieldValidationError, findDuplicateFields, findDuplicateYamlFields, parseFieldValidation, validateFields } from './validate.js';

const schemas = builtinSchemas();
const resolve = resolver(schemas);

function schemaOf(group: string, kind: string): Schema {
  const def = BUILTIN_RESOURCES.find((d) => d.group === group && d.kind === kind);
  assert.ok(def);
  return schemaFor(def)!;
}

function messages(obj: unknown, schema: Schema): string[] {
  return validateFields(obj, schema, resolve).map((i) => i.message);
}

const deployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: {
    name: 'web',
    namespace: 'default',
    labels: { app: 'web' },
    annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
    finalizers: ['example.com/keep'],
    ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: 'c0ffee', controller: true, blockOwnerDeletion: true }],
    managedFields: [{ manager: 'kubectl', operation: 'Apply', apiVersion: 'apps/v1', time: '2024-01-01T00:00:00Z', fieldsType: 'FieldsV1',
      fieldsV1: { 'f:spec': { 'f:replicas': {}, 'f:template': { 'f:spec': { 'k:{"name":"web"}': { '.': {} } } } } } }],
    creationTimestamp: null,
  },
  spec: {
    replicas: 3,
    revisionHistoryLimit: 10,
    progressDeadlineSeconds: 600,
    selector: { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['front'] }] },
    strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: 0 } },
    template: {
      metadata: { labels: { app: 'web' }, annotations: { 'prometheus.io/scrape': 'true' } },
      spec: {
        serviceAccountName: 'web',
        terminationGracePeriodSeconds: 30,
        nodeSelector: { 'kubernetes.io/os': 'linux' },
        securityContext: { runAsNonRoot: true, runAsUser: 1000, fsGroup: 2000, seccompProfile: { type: 'RuntimeDefault' } },
        affinity: {
          podAntiAffinity: {
            preferredDuringSchedulingIgnoredDuringExecution: [{
              weight: 100,
              podAffinityTerm: { labelSelector: { matchLabels: { app: 'web' } }, topologyKey: 'kubernetes.io/hostname' },
            }],
          },
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [{ matchExpressions: [{ key: 'node-role', operator: 'NotIn', values: ['control-plane'] }] }],
            },
          },
        },
        tolerations: [{ key: 'edge', operator: 'Exists', effect: 'NoSchedule' }, { key: 'x', operator: 'Equal', value: 'y', effect: 'NoExecute', tolerationSeconds: 300 }],
        topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: { app: 'web' } } }],
        initContainers: [{ name: 'init', image: 'busybox:1.36', command: ['sh', '-c', 'true'], restartPolicy: 'Always' }],
        containers: [{
          name: 'web',
          image: 'nginx:1.27',
          imagePullPolicy: 'IfNotPresent',
          args: ['--port', '8080'],
          ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }, { containerPort: 9090 }],
          env: [
            { name: 'MODE', value: 'prod' },
            { name: 'POD_IP', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'status.podIP' } } },
            { name: 'MEM', valueFrom: { resourceFieldRef: { containerName: 'web', resource: 'limits.memory', divisor: '1Mi' } } },
            { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 's', key: 'token', optional: true } } },
          ],
          envFrom: [{ configMapRef: { name: 'web-config' }, prefix: 'CFG_' }],
          resources: { requests: { cpu: '250m', memory: '64Mi' }, limits: { cpu: 1, memory: '128Mi', 'ephemeral-storage': '1Gi' } },
          livenessProbe: { httpGet: { path: '/healthz', port: 'http', scheme: 'HTTP', httpHeaders: [{ name: 'X', value: 'y' }] }, initialDelaySeconds: 5, periodSeconds: 10 },
          readinessProbe: { tcpSocket: { port: 8080 }, failureThreshold: 3 },
          startupProbe: { exec: { command: ['cat', '/tmp/ready'] } },
          lifecycle: { preStop: { exec: { command: ['sleep', '5'] } } },
          securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] } },
          volumeMounts: [{ name: 'data', mountPath: '/data' }, { name: 'cfg', mountPath: '/etc/cfg', readOnly: true, subPath: 'a' }],
        }],
        volumes: [
          { name: 'data', emptyDir: { sizeLimit: '1Gi', medium: 'Memory' } },
          { name: 'cfg', configMap: { name: 'web-config', defaultMode: 420, items: [{ key: 'a', path: 'a' }] } },
          { name: 'pvc', persistentVolumeClaim: { claimName: 'data' } },
          { name: 'proj', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3600 } }, { downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } }] } },
        ],
        hostAliases: [{ ip: '10.0.0.1', hostnames: ['db'] }],
        imagePullSecrets: [{ name: 'regcred' }],
        dnsConfig: { options: [{ name: 'ndots', value: '2' }] },
      },
    },
  },
  status: {
    observedGeneration: 2, replicas: 3, readyReplicas: 3, availableReplicas: 3, updatedReplicas: 3,
    conditions: [{ type: 'Available', status: 'True', lastUpdateTime: '2024-01-01T00:00:00Z', lastTransitionTime: '2024-01-01T00:00:00Z', reason: 'MinimumReplicasAvailable', message: 'ok' }],
  },
};

const pod = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'p', generateName: 'p-', uid: 'u', resourceVersion: '5', generation: 1, deletionGracePeriodSeconds: 30 },
  spec: {
    containers: [{
      name: 'c', image: 'busybox',
      ports: [{ containerPort: 80 }],
      resources: { requests: { cpu: 0.5, memory: 1024 }, limits: { 'nvidia.com/gpu': '1' } },
      livenessProbe: { grpc: { port: 9000 }, timeoutSeconds: 1 },
      readinessProbe: { httpGet: { port: 80 } },
    }],
    overhead: { cpu: '10m' },
    runtimeClassName: 'runv',
  },
  status: {
    phase: 'Running', podIP: '10.1.0.5', podIPs: [{ ip: '10.1.0.5' }], hostIPs: [{ ip: '192.168.1.2' }], startTime: '2024-01-01T00:00:00Z',
    qosClass: 'Burstable',
    conditions: [{ type: 'Ready', status: 'True', lastProbeTime: null, lastTransitionTime: '2024-01-01T00:00:00Z' }],
    containerStatuses: [{ name: 'c', image: 'busybox', imageID: 'sha256:x', ready: true, restartCount: 0, started: true,
      state: { running: { startedAt: '2024-01-01T00:00:01Z' } }, lastState: {}, allocatedResources: { cpu: '500m' } }],
  },
};

describe('validateFields accepts real objects', () => {
  it('a full Deployment', () => {
    assert.deepEqual(messages(deployment, schemaOf('apps', 'Deployment')), []);
  });

  it('a Pod with probes, quantities and int-or-string ports', () => {
    assert.deepEqual(messages(pod, schemaOf('', 'Pod')), []);
  });

  it('a Service, a Node, a Lease, a RuntimeClass, a CRD', () => {
    const service = {
      apiVersion: 'v1', kind: 'Service', metadata: { name: 's' },
      spec: { type: 'NodePort', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http', nodePort: 30080, protocol: 'TCP' }, { port: 443, targetPort: 8443 }],
        sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 10800 } }, ipFamilies: ['IPv4'], clusterIPs: ['10.96.0.10'] },
      status: { loadBalancer: {} },
    };
    assert.deepEqual(messages(service, schemaOf('', 'Service')), []);
    const node = {
      apiVersion: 'v1', kind: 'Node', metadata: { name: 'n', labels: { 'kubernetes.io/hostname': 'n' } },
      spec: { podCIDR: '10.1.0.0/24', podCIDRs: ['10.1.0.0/24'], taints: [{ key: 'k', effect: 'NoSchedule', timeAdded: '2024-01-01T00:00:00Z' }] },
      status: { capacity: { cpu: '4', memory: '8Gi', pods: '110' }, allocatable: { cpu: '3800m', memory: '7Gi' },
        addresses: [{ type: 'InternalIP', address: '192.168.1.2' }], nodeInfo: { machineID: 'm', systemUUID: 's', bootID: 'b', kernelVersion: '6', osImage: 'o',
          containerRuntimeVersion: 'atoll://1', kubeletVersion: 'v1.32.0', kubeProxyVersion: '', operatingSystem: 'linux', architecture: 'arm64' },
        conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: '2024-01-01T00:00:00Z', lastTransitionTime: '2024-01-01T00:00:00Z', reason: 'KubeletReady', message: 'ok' }],
        daemonEndpoints: { kubeletEndpoint: { Port: 10250 } } },
    };
    assert.deepEqual(messages(node, schemaOf('', 'Node')), []);
    const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'n', namespace: 'kube-node-lease' },
      spec: { holderIdentity: 'n', leaseDurationSeconds: 40, renewTime: '2024-01-01T00:00:00.123456Z', acquireTime: '2024-01-01T00:00:00.000000Z', leaseTransitions: 0 } };
    assert.deepEqual(messages(lease, schemaOf('coordination.k8s.io', 'Lease')), []);
    const rc = { apiVersion: 'node.k8s.io/v1', kind: 'RuntimeClass', metadata: { name: 'runv' }, handler: 'runv',
      overhead: { podFixed: { cpu: '250m', memory: '120Mi' } }, scheduling: { nodeSelector: { 'atoll.dev/vm': 'true' }, tolerations: [{ operator: 'Exists' }] } };
    assert.deepEqual(messages(rc, schemaOf('node.k8s.io', 'RuntimeClass')), []);
    const crd = {
      apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'crontabs.stable.example.com' },
      spec: {
        group: 'stable.example.com', scope: 'Namespaced', names: { plural: 'crontabs', singular: 'crontab', kind: 'CronTab', shortNames: ['ct'] },
        versions: [{
          name: 'v1', served: true, storage: true,
          subresources: { status: {}, scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas' } },
          additionalPrinterColumns: [{ name: 'Spec', type: 'string', jsonPath: '.spec.cronSpec' }],
          schema: { openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: { type: 'object', required: ['cronSpec'], properties: {
                cronSpec: { type: 'string', pattern: '^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$' },
                replicas: { type: 'integer', minimum: 1, default: 1 },
                port: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] },
                labels: { type: 'object', additionalProperties: { type: 'string' } },
                extra: { type: 'object', additionalProperties: true },
                items: { type: 'array', items: { type: 'object', properties: { a: { type: 'string', enum: ['x', 'y'] } } }, 'x-kubernetes-list-type': 'atomic' },
                ref: { $ref: '#/definitions/x' },
              }, 'x-kubernetes-validations': [{ rule: 'self.replicas < 10', message: 'too many' }] },
              status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
            },
          } },
        }],
      },
    };
    assert.deepEqual(messages(crd, schemaOf('apiextensions.k8s.io', 'CustomResourceDefinition')), []);
  });

  it('null unsets a field of a built-in kind', () => {
    assert.deepEqual(messages({ metadata: { labels: null }, spec: { replicas: null, template: null } }, schemaOf('apps', 'Deployment')), []);
  });
});

describe('validateFields reports', () => {
  it('unknown fields at any depth, with kube paths and message', () => {
    const bad = structuredClone(deployment) as Record<string, any>;
    bad.spec.template.spec.containers[0].imagePullPolcy = 'Always';
    bad.spec.template.spec.volumes[1].configMap.items[0].mode2 = 1;
    bad.metadata.nmae = 'x';
    bad.spec.extra = true;
    bad.status.conditions[0].bogus = 1;
    assert.deepEqual(messages(bad, schemaOf('apps', 'Deployment')).sort(), [
      'unknown field "metadata.nmae"',
      'unknown field "spec.extra"',
      'unknown field "spec.template.spec.containers[0].imagePullPolcy"',
      'unknown field "spec.template.spec.volumes[1].configMap.items[0].mode2"',
      'unknown field "status.conditions[0].bogus"',
    ]);
    const issues = validateFields({ spec: { containers: [{ name: 'a', foo: 1 }] } }, schemaOf('', 'Pod'), resolve);
    assert.deepEqual(issues, [{ kind: 'unknown', path: 'spec.containers[0].foo', message: 'unknown field "spec.containers[0].foo"' }]);
  });

  it('unknown fields inside a CRD\'s nested schema', () => {
    const crd = { spec: { versions: [{ name: 'v1', schema: { openAPIV3Schema: { properties: { spec: { tpye: 'object', additionalProperties: { tyep: 'string' } } } } } }] } };
    assert.deepEqual(messages(crd, schemaOf('apiextensions.k8s.io', 'CustomResourceDefinition')), [
      'unknown field "spec.versions[0].schema.openAPIV3Schema.properties.spec.tpye"',
      'unknown field "spec.versions[0].schema.openAPIV3Schema.properties.spec.additionalProperties.tyep"',
    ]);
  });

  it('type mismatches as Go decoding errors', () => {
    const issues = validateFields({ metadata: { name: 5 }, spec: { replicas: '3', template: { spec: { containers: { name: 'x' } } } } }, schemaOf('apps', 'Deployment'), resolve);
    assert.deepEqual(issues.map((i) => [i.kind, i.path, i.message]), [
      ['type', 'metadata.name', 'json: cannot unmarshal number into Go struct field ObjectMeta.metadata.name of type string'],
      ['type', 'spec.replicas', 'json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32'],
      ['type', 'spec.template.spec.containers', 'json: cannot unmarshal object into Go struct field PodSpec.spec.template.spec.containers of type []v1.Container'],
    ]);
  });

  it('integers, int-or-string, quantities and maps', () => {
    const paths = (obj: unknown, schema: Schema) => validateFields(obj, schema, resolve).map((i) => `${i.kind} ${i.path} ${i.expected ?? ''}`.trim());
    assert.deepEqual(paths({ spec: { replicas: 1.5 } }, schemaOf('apps', 'Deployment')), ['type spec.replicas integer']);
    assert.deepEqual(paths({ spec: { ports: [{ port: 80, targetPort: true }] } }, schemaOf('', 'Service')), ['type spec.ports[0].targetPort integer|string']);
    assert.deepEqual(paths({ spec: { containers: [{ name: 'a', resources: { limits: { cpu: {} } } }] } }, schemaOf('', 'Pod')), ['type spec.containers[0].resources.limits.cpu string|number']);
    assert.deepEqual(paths({ metadata: { labels: { a: 1 } } }, schemaOf('', 'Pod')), ['type metadata.labels.a string']);
    assert.deepEqual(paths({ spec: { containers: [{ name: 'a', stdin: 'yes' }] } }, schemaOf('', 'Pod')), ['type spec.containers[0].stdin boolean']);
    assert.deepEqual(paths({ data: { a: 'x' }, binaryData: { b: 'eA==' } }, schemaOf('', 'ConfigMap')), []);
  });

  it('custom resources: preserve-unknown-fields, embedded resources, nullable, metadata', () => {
    const def: ResourceDef = { group: 'x.io', version: 'v1', kind: 'Widget', listKind: 'WidgetList', plural: 'widgets', singular: 'widget',
      namespaced: true, subresources: [], verbs: ['get'], schemaName: 'io.x.v1.Widget', custom: true };
    const extra = customResourceSchemas(def, {
      type: 'object',
      properties: {
        spec: { type: 'object', properties: {
          size: { type: 'integer', nullable: true },
          name: { type: 'string' },
          free: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
          template: { type: 'object', 'x-kubernetes-embedded-resource': true, properties: { spec: { type: 'object', properties: { a: { type: 'string' } } } } },
          port: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] },
        } },
      },
    });
    const r = resolver({ ...schemas, ...extra });
    const obj = { apiVersion: 'x.io/v1', kind: 'Widget', metadata: { name: 'w', labels: { a: 'b' } },
      spec: { size: null, name: null, free: { anything: [1, { b: 2 }] }, template: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { a: 'x', b: 1 } }, port: 'http', extra: 1 },
      metadata2: {} };
    const issues = validateFields(obj, extra['io.x.v1.Widget']!, r, { strictNull: true });
    assert.deepEqual(issues.map((i) => `${i.kind} ${i.path}`), [
      'type spec.name',
      'unknown spec.template.spec.b',
      'unknown spec.extra',
      'unknown metadata2',
    ]);
    assert.deepEqual(validateFields({ metadata: { nmae: 'w' } }, extra['io.x.v1.Widget']!, r).map((i) => i.message), ['unknown field "metadata.nmae"']);
  });

  it('stops at the limit', () => {
    const obj = { metadata: Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`f${i}`, 1])) };
    assert.equal(validateFields(obj, schemaOf('', 'Pod'), resolve, { limit: 5 }).length, 5);
  });
});

describe('findDuplicateFields', () => {
  it('reports repeated keys with their paths', () => {
    const raw = '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","labels":{"x":"1","x":"2"},"name":"b"},' +
      '"spec":{"containers":[{"name":"c","image":"i"},{"name":"d","image":"i","name":"e"}]},"kind":"Pod"}';
    assert.deepEqual(findDuplicateFields(raw), [
      'duplicate field "metadata.labels.x"',
      'duplicate field "metadata.name"',
      'duplicate field "spec.containers[1].name"',
      'duplicate field "kind"',
    ]);
  });

  it('does not confuse siblings, strings, escapes or whitespace', () => {
    assert.deepEqual(findDuplicateFields('{"a":{"x":1},"b":{"x":1},"c":[{"x":1},{"x":2}]}'), []);
    assert.deepEqual(findDuplicateFields('{"a":"{\\"a\\":1,\\"a\\":2}","b":"\\\\","c":"}]["}'), []);
    assert.deepEqual(findDuplicateFields('{ "a" : 1 ,\n  "\\u0061" : 2 }'), ['duplicate field "a"']);
    assert.deepEqual(findDuplicateFields('[{"a":1},[{"b":1,"b":2}]]'), ['duplicate field "[1][0].b"']);
    assert.deepEqual(findDuplicateFields('{"a":[1,2,{"k":"\\"","k":3}]}'), ['duplicate field "a[2].k"']);
  });

  it('scans a large body with many sibling objects without false duplicates', () => {
    const big = JSON.stringify({ items: Array.from({ length: 20000 }, (_, i) => ({ name: `n${i}`, labels: { a: 'b', c: 'd' }, data: 'x'.repeat(40) })) });
    assert.ok(big.length > 1_500_000);
    assert.deepEqual(findDuplicateFields(big), []);
    assert.deepEqual(findDuplicateFields(big.replace('"name":"n19999"', '"name":"n19999","name":"again"')), ['duplicate field "items[19999].name"']);
  });

  it('works for YAML bodies', () => {
    const yaml = 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  name: b\nspec:\n  containers:\n  - name: c\n    image: i\n    image: j\n';
    assert.deepEqual(findDuplicateYamlFields(yaml), ['duplicate field "metadata.name"', 'duplicate field "spec.containers[0].image"']);
    assert.deepEqual(findDuplicateYamlFields('a: 1\nb: {a: 1}\n'), []);
  });
});

describe('fieldValidation', () => {
  it('defaults to Warn and accepts the three modes', () => {
    assert.equal(parseFieldValidation(undefined), 'Warn');
    assert.equal(parseFieldValidation(''), 'Warn');
    assert.equal(parseFieldValidation('Strict'), 'Strict');
    assert.equal(parseFieldValidation('Warn'), 'Warn');
    assert.equal(parseFieldValidation('Ignore'), 'Ignore');
  });

  it('rejects anything else with 400 naming the allowed values', () => {
    for (const bad of ['strict', 'Yes', 'true']) {
      assert.throws(() => parseFieldValidation(bad), (err: unknown) => {
        assert.ok(err instanceof ApiError);
        assert.equal(err.code, 400);
        assert.equal(err.message, `fieldValidation: Unsupported value: "${bad}": supported values: "Ignore", "Strict", "Warn"`);
        return true;
      });
    }
  });

  it('builds kube\'s strict decoding error', () => {
    const gvk = { group: 'apps', version: 'v1', kind: 'Deployment' };
    const issues = validateFields({ spec: { foo: 1 } }, schemaOf('apps', 'Deployment'), resolve);
    const all = [...issues, { kind: 'duplicate' as const, path: 'metadata.name', message: 'duplicate field "metadata.name"' }];
    assert.equal(fieldValidationError(gvk, all, 'Warn'), undefined);
    assert.equal(fieldValidationError(gvk, all, 'Strict')!.message,
      'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.foo", duplicate field "metadata.name"');
    const typed = validateFields({ spec: { replicas: 'x' } }, schemaOf('apps', 'Deployment'), resolve);
    assert.equal(fieldValidationError(gvk, typed, 'Ignore')!.code, 400);
  });
});
