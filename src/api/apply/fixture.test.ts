// A hand-written schema tree shaped like apps/v1 Deployment, shared by this folder's tests. It uses
// $ref and the allOf wrapper the way Kubernetes' published OpenAPI does.
import type { Schema, SchemaResolver } from '../openapi/schema.js';

const str: Schema = { type: 'string' };
const int: Schema = { type: 'integer', format: 'int32' };

const definitions: Record<string, Schema> = {
  ObjectMeta: {
    type: 'object',
    properties: {
      name: str,
      namespace: str,
      uid: str,
      resourceVersion: str,
      generation: { type: 'integer', format: 'int64' },
      creationTimestamp: str,
      labels: { type: 'object', additionalProperties: str },
      annotations: { type: 'object', additionalProperties: str },
      finalizers: { type: 'array', items: str, 'x-kubernetes-list-type': 'set', 'x-kubernetes-patch-strategy': 'merge' },
      managedFields: { type: 'array', items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true }, 'x-kubernetes-list-type': 'atomic' },
    },
  },
  LabelSelector: {
    type: 'object',
    'x-kubernetes-map-type': 'atomic',
    properties: {
      matchLabels: { type: 'object', additionalProperties: str },
      matchExpressions: { type: 'array', items: { type: 'object' }, 'x-kubernetes-list-type': 'atomic' },
    },
  },
  ContainerPort: {
    type: 'object',
    required: ['containerPort'],
    properties: { containerPort: int, protocol: { type: 'string', default: 'TCP' }, name: str },
  },
  EnvVar: { type: 'object', required: ['name'], properties: { name: str, value: str } },
  Container: {
    type: 'object',
    required: ['name'],
    properties: {
      name: str,
      image: str,
      args: { type: 'array', items: str, 'x-kubernetes-list-type': 'atomic' },
      ports: {
        type: 'array',
        items: { allOf: [{ $ref: '#/components/schemas/ContainerPort' }], default: {} },
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['containerPort', 'protocol'],
      },
      // A built-in list with only strategic-merge tags: the merge key acts as the map key.
      env: { type: 'array', items: { $ref: '#/components/schemas/EnvVar' }, 'x-kubernetes-patch-strategy': 'merge', 'x-kubernetes-patch-merge-key': 'name' },
      resources: { type: 'object', properties: { limits: { type: 'object', additionalProperties: str } } },
    },
  },
  PodSpec: {
    type: 'object',
    required: ['containers'],
    properties: {
      containers: {
        type: 'array',
        items: { allOf: [{ $ref: '#/components/schemas/Container' }], default: {} },
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
        'x-kubernetes-patch-strategy': 'merge',
        'x-kubernetes-patch-merge-key': 'name',
      },
      nodeSelector: { type: 'object', additionalProperties: str, 'x-kubernetes-map-type': 'atomic' },
      restartPolicy: str,
    },
  },
  PodTemplateSpec: {
    type: 'object',
    properties: {
      metadata: { allOf: [{ $ref: '#/components/schemas/ObjectMeta' }], default: {} },
      spec: { allOf: [{ $ref: '#/components/schemas/PodSpec' }], default: {} },
    },
  },
  DeploymentSpec: {
    type: 'object',
    required: ['selector', 'template'],
    properties: {
      replicas: int,
      paused: { type: 'boolean' },
      selector: { allOf: [{ $ref: '#/components/schemas/LabelSelector' }] },
      template: { allOf: [{ $ref: '#/components/schemas/PodTemplateSpec' }], default: {} },
      strategy: {
        type: 'object',
        properties: { type: str, rollingUpdate: { type: 'object', properties: { maxSurge: { 'x-kubernetes-int-or-string': true }, maxUnavailable: { 'x-kubernetes-int-or-string': true } } } },
      },
    },
  },
  Deployment: {
    type: 'object',
    'x-kubernetes-group-version-kind': [{ group: 'apps', version: 'v1', kind: 'Deployment' }],
    properties: {
      apiVersion: str,
      kind: str,
      metadata: { allOf: [{ $ref: '#/components/schemas/ObjectMeta' }], default: {} },
      spec: { allOf: [{ $ref: '#/components/schemas/DeploymentSpec' }], default: {} },
      status: { type: 'object', properties: { replicas: int, readyReplicas: int } },
    },
  },
};

export const resolve: SchemaResolver = (schema) => {
  if (schema.$ref) return definitions[schema.$ref.split('/').pop()!] ?? schema;
  if (schema.allOf?.length === 1 && schema.allOf[0].$ref) return resolve(schema.allOf[0]);
  return schema;
};

export const deploymentSchema: Schema = definitions.Deployment;
