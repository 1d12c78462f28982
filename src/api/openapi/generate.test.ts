import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { BUILTIN_RESOURCES, type ResourceDef } from '../resources.js';
import { builtinSchemas, componentName, INT_OR_STRING, MICRO_TIME, QUANTITY, refName, resolver, schemaFor, TIME } from './generate.js';
import type { Schema } from './schema.js';

const schemas = builtinSchemas();
const resolve = resolver(schemas);

function def(group: string, kind: string): ResourceDef {
  const found = BUILTIN_RESOURCES.find((d) => d.group === group && d.kind === kind);
  assert.ok(found, `${group}/${kind} is served`);
  return found;
}

function component(name: string): Schema {
  const s = schemas[name];
  assert.ok(s, `component ${name} exists`);
  return s;
}

function prop(name: string, field: string): Schema {
  const p = component(name).properties?.[field];
  assert.ok(p, `${name}.${field} exists`);
  return p;
}

/** The component a property refers to, through kube's `allOf: [{$ref}]` wrapper. */
function target(s: Schema): string | undefined {
  return refName(s) ?? (s.allOf ? refName(s.allOf[0]!) : undefined);
}

function mergeKey(s: Schema): [unknown, unknown, unknown, unknown] {
  return [s['x-kubernetes-patch-merge-key'], s['x-kubernetes-patch-strategy'], s['x-kubernetes-list-type'], s['x-kubernetes-list-map-keys']];
}

function allRefs(node: unknown, into: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => allRefs(n, into));
  else if (node && typeof node === 'object') {
    const name = refName(node as Schema);
    if (name) into.push(name);
    for (const v of Object.values(node)) allRefs(v, into);
  }
  return into;
}

describe('builtinSchemas', () => {
  it('is memoized', () => {
    assert.equal(builtinSchemas(), schemas);
  });

  it('has a schema under schemaName with the GVK extension for every served kind', () => {
    for (const d of BUILTIN_RESOURCES) {
      const s = schemaFor(d);
      assert.ok(s, `${d.schemaName} generated`);
      assert.deepEqual(s['x-kubernetes-group-version-kind'], [{ group: d.group, version: d.version, kind: d.kind }], d.schemaName);
      assert.equal(s.type, 'object');
      assert.ok(s.description && s.description.length > 20, `${d.schemaName} has a description`);
      for (const f of ['apiVersion', 'kind', 'metadata']) assert.ok(s.properties?.[f], `${d.schemaName}.${f}`);
    }
  });

  it('gives list kinds their GVK', () => {
    assert.deepEqual(component('io.k8s.api.core.v1.PodList')['x-kubernetes-group-version-kind'], [{ group: '', version: 'v1', kind: 'PodList' }]);
    assert.deepEqual(component('io.k8s.api.apps.v1.DeploymentList').required, ['items']);
  });

  it('leaves no dangling references', () => {
    const missing = [...new Set(allRefs(schemas))].filter((n) => !schemas[n]);
    assert.deepEqual(missing, []);
  });

  it('names components by their Go package', () => {
    assert.equal(componentName('V1PodSpec'), 'io.k8s.api.core.v1.PodSpec');
    assert.equal(componentName('V1PodTemplateSpec'), 'io.k8s.api.core.v1.PodTemplateSpec');
    assert.equal(componentName('V1DeploymentSpec'), 'io.k8s.api.apps.v1.DeploymentSpec');
    assert.equal(componentName('V1ObjectMeta'), 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta');
    assert.equal(componentName('V1LabelSelectorRequirement'), 'io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement');
    assert.equal(componentName('CoreV1Event'), 'io.k8s.api.core.v1.Event');
    assert.equal(componentName('EventsV1Event'), 'io.k8s.api.events.v1.Event');
    assert.equal(componentName('RbacV1Subject'), 'io.k8s.api.rbac.v1.Subject');
    assert.equal(componentName('V1Scale'), 'io.k8s.api.autoscaling.v1.Scale');
    assert.equal(componentName('V1Overhead'), 'io.k8s.api.node.v1.Overhead');
    assert.equal(componentName('V1JSONSchemaProps'), 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps');
    assert.equal(componentName('V1LeaseSpec'), 'io.k8s.api.coordination.v1.LeaseSpec');
  });
});

describe('Pod', () => {
  const pod = schemaFor(def('', 'Pod'))!;

  it('wraps described references in allOf, as kube does', () => {
    const spec = pod.properties!.spec!;
    assert.deepEqual(spec.allOf, [{ $ref: '#/components/schemas/io.k8s.api.core.v1.PodSpec' }]);
    // client-node keeps no field description for references; the referenced type's stands in.
    assert.match(spec.description!, /PodSpec is a description of a pod/);
    assert.equal(resolve(spec), schemas['io.k8s.api.core.v1.PodSpec']);
  });

  it('marks non-optional fields required', () => {
    assert.deepEqual(component('io.k8s.api.core.v1.PodSpec').required, ['containers']);
    assert.deepEqual(component('io.k8s.api.core.v1.Container').required, ['name']);
    assert.deepEqual(component('io.k8s.api.core.v1.ContainerPort').required, ['containerPort']);
    assert.equal(component('io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta').required, undefined);
  });

  it('carries descriptions, unescaped', () => {
    assert.match(prop('io.k8s.api.core.v1.ContainerPort', 'containerPort').description!, /pod's IP address/);
    assert.match(prop('io.k8s.api.core.v1.ContainerPort', 'protocol').description!, /Defaults to "TCP"/);
    let described = 0;
    let total = 0;
    for (const s of Object.values(schemas)) {
      for (const p of Object.values(s.properties ?? {})) {
        total++;
        if (p.description) described++;
      }
    }
    assert.ok(described / total > 0.97, `${described}/${total} properties described`);
  });

  it('publishes the patch merge keys of k8s.io/api', () => {
    const spec = 'io.k8s.api.core.v1.PodSpec';
    for (const f of ['containers', 'initContainers', 'ephemeralContainers', 'imagePullSecrets']) {
      assert.deepEqual(mergeKey(prop(spec, f)), ['name', 'merge', 'map', ['name']], f);
    }
    assert.deepEqual(mergeKey(prop(spec, 'volumes')), ['name', 'merge,retainKeys', 'map', ['name']]);
    assert.deepEqual(mergeKey(prop(spec, 'hostAliases')), ['ip', 'merge', 'map', ['ip']]);
    assert.deepEqual(mergeKey(prop(spec, 'topologySpreadConstraints')), ['topologyKey', 'merge', 'map', ['topologyKey', 'whenUnsatisfiable']]);
    const c = 'io.k8s.api.core.v1.Container';
    assert.deepEqual(mergeKey(prop(c, 'env')), ['name', 'merge', 'map', ['name']]);
    assert.deepEqual(mergeKey(prop(c, 'ports')), ['containerPort', 'merge', 'map', ['containerPort', 'protocol']]);
    assert.deepEqual(mergeKey(prop(c, 'volumeMounts')), ['mountPath', 'merge', 'map', ['mountPath']]);
    assert.deepEqual(mergeKey(prop(c, 'volumeDevices')), ['devicePath', 'merge', 'map', ['devicePath']]);
    assert.deepEqual(mergeKey(prop('io.k8s.api.core.v1.EphemeralContainer', 'env')), ['name', 'merge', 'map', ['name']]);
    const status = 'io.k8s.api.core.v1.PodStatus';
    assert.deepEqual(mergeKey(prop(status, 'conditions')), ['type', 'merge', 'map', ['type']]);
    assert.deepEqual(mergeKey(prop(status, 'podIPs')), ['ip', 'merge', 'map', ['ip']]);
    assert.deepEqual(mergeKey(prop(status, 'hostIPs')).slice(0, 3), ['ip', 'merge', 'atomic']);
    assert.deepEqual(mergeKey(prop('io.k8s.api.core.v1.NodeStatus', 'addresses')), ['type', 'merge', 'map', ['type']]);
    assert.deepEqual(mergeKey(prop('io.k8s.api.core.v1.ServiceSpec', 'ports')), ['port', 'merge', 'map', ['port', 'protocol']]);
    const meta = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';
    assert.deepEqual(mergeKey(prop(meta, 'finalizers')), [undefined, 'merge', 'set', undefined]);
    assert.deepEqual(mergeKey(prop(meta, 'ownerReferences')), ['uid', 'merge', 'map', ['uid']]);
  });

  it('keys every conditions list by type', () => {
    for (const [name, field] of [
      ['io.k8s.api.apps.v1.DeploymentStatus', 'conditions'],
      ['io.k8s.api.core.v1.NodeStatus', 'conditions'],
      ['io.k8s.api.core.v1.NamespaceStatus', 'conditions'],
      ['io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus', 'conditions'],
    ] as const) {
      assert.deepEqual(mergeKey(prop(name, field)), ['type', 'merge', 'map', ['type']], name);
    }
  });

  it('types quantities, times and map types', () => {
    const limits = prop('io.k8s.api.core.v1.ResourceRequirements', 'limits');
    assert.equal(limits.type, 'object');
    assert.equal(refName(limits.additionalProperties as Schema), QUANTITY);
    assert.equal(target(prop('io.k8s.api.core.v1.EmptyDirVolumeSource', 'sizeLimit')), QUANTITY);
    assert.equal(target(prop('io.k8s.api.core.v1.ResourceFieldSelector', 'divisor')), QUANTITY);
    assert.deepEqual(component(QUANTITY).oneOf, [{ type: 'string' }, { type: 'number' }]);
    assert.equal(target(prop('io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta', 'creationTimestamp')), TIME);
    assert.equal(component(TIME).format, 'date-time');
    assert.equal(prop('io.k8s.api.core.v1.Secret', 'data').additionalProperties && (prop('io.k8s.api.core.v1.Secret', 'data').additionalProperties as Schema).format, 'byte');
    assert.equal(component('io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector')['x-kubernetes-map-type'], 'atomic');
    assert.equal(prop('io.k8s.api.core.v1.PodSpec', 'nodeSelector')['x-kubernetes-map-type'], 'atomic');
    assert.deepEqual(prop('io.k8s.api.core.v1.ContainerPort', 'containerPort'), {
      description: prop('io.k8s.api.core.v1.ContainerPort', 'containerPort').description, type: 'integer', format: 'int32',
    });
  });
});

describe('Deployment and Service', () => {
  it('publishes IntOrString as int-or-string', () => {
    const ios = component(INT_OR_STRING);
    assert.equal(ios['x-kubernetes-int-or-string'], true);
    assert.equal(ios.format, 'int-or-string');
    assert.deepEqual(ios.oneOf, [{ type: 'integer' }, { type: 'string' }]);
    assert.equal(target(prop('io.k8s.api.apps.v1.RollingUpdateDeployment', 'maxSurge')), INT_OR_STRING);
    assert.equal(target(prop('io.k8s.api.core.v1.ServicePort', 'targetPort')), INT_OR_STRING);
    assert.equal(target(prop('io.k8s.api.core.v1.HTTPGetAction', 'port')), INT_OR_STRING);
  });

  it('references the core pod template from apps', () => {
    assert.deepEqual(component('io.k8s.api.apps.v1.DeploymentSpec').required, ['selector', 'template']);
    assert.equal(target(prop('io.k8s.api.apps.v1.DeploymentSpec', 'template')), 'io.k8s.api.core.v1.PodTemplateSpec');
    assert.equal(target(prop('io.k8s.api.apps.v1.DeploymentSpec', 'selector')), 'io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector');
    assert.equal(prop('io.k8s.api.apps.v1.DeploymentSpec', 'replicas').format, 'int32');
  });

  it('publishes the Scale subresource kind', () => {
    assert.deepEqual(component('io.k8s.api.autoscaling.v1.Scale')['x-kubernetes-group-version-kind'], [{ group: 'autoscaling', version: 'v1', kind: 'Scale' }]);
  });
});

describe('Lease, RuntimeClass, CustomResourceDefinition', () => {
  it('Lease times are MicroTime', () => {
    const lease = schemaFor(def('coordination.k8s.io', 'Lease'))!;
    assert.equal(target(lease.properties!.spec!), 'io.k8s.api.coordination.v1.LeaseSpec');
    assert.equal(target(prop('io.k8s.api.coordination.v1.LeaseSpec', 'renewTime')), MICRO_TIME);
    assert.equal(prop('io.k8s.api.coordination.v1.LeaseSpec', 'leaseDurationSeconds').type, 'integer');
  });

  it('RuntimeClass requires handler and carries overhead quantities', () => {
    const rc = schemaFor(def('node.k8s.io', 'RuntimeClass'))!;
    assert.deepEqual(rc.required, ['handler']);
    assert.equal(refName(prop('io.k8s.api.node.v1.Overhead', 'podFixed').additionalProperties as Schema), QUANTITY);
    assert.equal(target(rc.properties!.scheduling!), 'io.k8s.api.node.v1.Scheduling');
  });

  it('CRD schema keeps JSON names and recursive JSONSchemaProps', () => {
    const crd = schemaFor(def('apiextensions.k8s.io', 'CustomResourceDefinition'))!;
    assert.deepEqual(crd.required, ['spec']);
    const props = 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps';
    const p = component(props).properties!;
    for (const f of ['$ref', '$schema', 'default', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-int-or-string', 'x-kubernetes-list-map-keys']) {
      assert.ok(p[f], `JSONSchemaProps.${f}`);
    }
    assert.equal(refName((p.properties!.additionalProperties as Schema)), props);
    assert.equal(target(p.additionalProperties!), 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool');
    assert.deepEqual(component('io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionSpec').required, ['group', 'names', 'scope', 'versions']);
  });
});

describe('resolver', () => {
  it('follows $ref and described references, and tolerates unknown names', () => {
    const r = resolver({ A: { type: 'string' }, B: { $ref: '#/components/schemas/A' } });
    assert.deepEqual(r({ $ref: '#/components/schemas/B' }), { type: 'string' });
    assert.deepEqual(r({ allOf: [{ $ref: '#/components/schemas/A' }], description: 'x' }), { type: 'string' });
    const plain: Schema = { type: 'integer' };
    assert.equal(r(plain), plain);
    assert.equal(r({ $ref: '#/components/schemas/Nope' })['x-kubernetes-preserve-unknown-fields'], true);
  });
});
