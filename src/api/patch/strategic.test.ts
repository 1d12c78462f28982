import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../errors.js';
import type { Schema, SchemaResolver } from '../openapi/schema.js';
import { applyStrategicMergePatch } from './strategic.js';

// A Pod-shaped slice of the OpenAPI v3 document, written the way kube-apiserver publishes it: patch
// metadata on the property, element and struct schemas behind `$ref` or an `allOf: [{$ref}]` wrapper.
const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const wrapped = (name: string): Schema => ({ allOf: [ref(name)], default: {} });
const str: Schema = { type: 'string' };
const stringMap: Schema = { type: 'object', additionalProperties: str };
const mergeList = (item: Schema, mergeKey?: string, strategy = 'merge'): Schema => ({
  type: 'array',
  items: item,
  'x-kubernetes-patch-strategy': strategy,
  ...(mergeKey ? { 'x-kubernetes-patch-merge-key': mergeKey } : {}),
});

const components: Record<string, Schema> = {
  Pod: {
    type: 'object',
    properties: { apiVersion: str, kind: str, metadata: wrapped('ObjectMeta'), spec: wrapped('PodSpec') },
  },
  ObjectMeta: {
    type: 'object',
    properties: {
      name: str,
      labels: stringMap,
      annotations: stringMap,
      finalizers: { ...mergeList(str), 'x-kubernetes-list-type': 'set' },
      ownerReferences: mergeList(wrapped('OwnerReference'), 'uid'),
    },
  },
  OwnerReference: { type: 'object', properties: { uid: str, name: str, kind: str } },
  PodSpec: {
    type: 'object',
    properties: {
      containers: mergeList(wrapped('Container'), 'name'),
      volumes: mergeList(wrapped('Volume'), 'name', 'merge,retainKeys'),
      tolerations: { type: 'array', items: wrapped('Toleration'), 'x-kubernetes-list-type': 'atomic' },
      nodeSelector: stringMap,
      updateStrategy: { allOf: [ref('UpdateStrategy')], 'x-kubernetes-patch-strategy': 'retainKeys' },
      dnsConfig: { allOf: [ref('DNSConfig')], 'x-kubernetes-patch-strategy': 'replace' },
      extra: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
    },
  },
  Container: {
    type: 'object',
    properties: {
      name: str,
      image: str,
      args: { type: 'array', items: str },
      env: mergeList(wrapped('EnvVar'), 'name'),
      ports: mergeList(wrapped('ContainerPort'), 'containerPort'),
      resources: { type: 'object', properties: { limits: stringMap, requests: stringMap } },
    },
  },
  EnvVar: {
    type: 'object',
    properties: { name: str, value: str, valueFrom: { type: 'object', properties: { fieldRef: stringMap } } },
  },
  ContainerPort: { type: 'object', properties: { containerPort: { type: 'integer' }, name: str, protocol: str } },
  Volume: {
    type: 'object',
    properties: {
      name: str,
      emptyDir: { type: 'object', properties: { medium: str } },
      configMap: { type: 'object', properties: { name: str } },
      hostPath: { type: 'object', properties: { path: str } },
    },
  },
  Toleration: { type: 'object', properties: { key: str, operator: str, effect: str } },
  UpdateStrategy: {
    type: 'object',
    properties: { type: str, rollingUpdate: { type: 'object', properties: { maxUnavailable: str } } },
  },
  DNSConfig: { type: 'object', properties: { nameservers: { type: 'array', items: str }, searches: { type: 'array', items: str } } },
};

const resolve: SchemaResolver = (schema) => {
  if (schema.$ref) return components[schema.$ref.slice('#/components/schemas/'.length)]!;
  if (schema.allOf?.length === 1 && schema.allOf[0]!.$ref) return resolve(schema.allOf[0]!);
  return schema;
};

const podSchema: Schema = ref('Pod');

function smp(original: unknown, patch: unknown): any {
  const out = applyStrategicMergePatch(deepFreeze(original), deepFreeze(patch), podSchema, resolve);
  assertNoDirectives(out);
  return out;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function assertNoDirectives(value: unknown, path = ''): void {
  if (Array.isArray(value)) value.forEach((v, i) => assertNoDirectives(v, `${path}[${i}]`));
  else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      assert.ok(!k.startsWith('$'), `directive ${k} leaked into the result at ${path}`);
      assertNoDirectives(v, `${path}.${k}`);
    }
  }
}

function badRequest(message: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ApiError, `expected ApiError, got ${String(err)}`);
    assert.equal(err.code, 400);
    assert.equal(err.reason, 'BadRequest');
    assert.match(err.message, message);
    return true;
  };
}

const names = (list: { name: string }[]) => list.map((x) => x.name);

const livePod = () => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'web',
    labels: { app: 'web', tier: 'front' },
    annotations: { note: 'x' },
    finalizers: ['a.example.com/f', 'b.example.com/f'],
  },
  spec: {
    containers: [
      {
        name: 'app',
        image: 'app:1',
        args: ['--a', '--b'],
        env: [
          { name: 'A', value: 'a' },
          { name: 'B', value: 'b' },
        ],
        ports: [{ containerPort: 80, protocol: 'TCP' }],
      },
      { name: 'sidecar', image: 'sidecar:1' },
    ],
    volumes: [{ name: 'data', emptyDir: {} }],
    tolerations: [{ key: 'k1', operator: 'Exists' }],
    nodeSelector: { zone: 'a', disk: 'ssd' },
  },
});

describe('applyStrategicMergePatch: maps', () => {
  it('merges maps, replaces scalars and deletes keys set to null (kubectl label/annotate)', () => {
    const out = smp(livePod(), {
      metadata: { labels: { tier: null, track: 'stable' }, annotations: { note: 'y' } },
      spec: { nodeSelector: { disk: null } },
    });
    assert.deepEqual(out.metadata.labels, { app: 'web', track: 'stable' });
    assert.deepEqual(out.metadata.annotations, { note: 'y' });
    assert.deepEqual(out.spec.nodeSelector, { zone: 'a' });
    assert.deepEqual(out.spec.containers, livePod().spec.containers);
  });

  it('ignores null for keys that do not exist', () => {
    const out = smp(livePod(), { metadata: { labels: { missing: null } }, spec: { nodeName: null } });
    assert.deepEqual(out, livePod());
  });

  it('$patch: replace swaps a map for the rest of the patch map', () => {
    const out = smp(livePod(), { spec: { nodeSelector: { $patch: 'replace', zone: 'b' } } });
    assert.deepEqual(out.spec.nodeSelector, { zone: 'b' });
  });

  it('$patch: delete empties a map', () => {
    const out = smp(livePod(), { spec: { nodeSelector: { $patch: 'delete' } } });
    assert.deepEqual(out.spec.nodeSelector, {});
  });

  it('$patch: merge is the default', () => {
    const out = smp(livePod(), { spec: { nodeSelector: { $patch: 'merge', rack: 'r1' } } });
    assert.deepEqual(out.spec.nodeSelector, { zone: 'a', disk: 'ssd', rack: 'r1' });
  });

  it('a field with patch strategy "replace" is replaced, not merged', () => {
    const live = { spec: { dnsConfig: { nameservers: ['1.1.1.1'], searches: ['a.local'] } } };
    const out = smp(live, { spec: { dnsConfig: { nameservers: ['8.8.8.8'] } } });
    assert.deepEqual(out.spec.dnsConfig, { nameservers: ['8.8.8.8'] });
  });

  it('$retainKeys drops keys not listed (Deployment strategy switch)', () => {
    const live = { spec: { updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '1' } } } };
    const out = smp(live, { spec: { updateStrategy: { $retainKeys: ['type'], type: 'Recreate', rollingUpdate: null } } });
    assert.deepEqual(out.spec.updateStrategy, { type: 'Recreate' });
  });

  it('merges fields the schema does not know like a JSON merge patch', () => {
    const live = { spec: { unknown: { a: 1, b: { c: 2 }, list: [1, 2] } }, status: { phase: 'Running' } };
    const out = smp(live, { spec: { unknown: { a: null, b: { d: 3 }, list: [3] } }, status: { reason: 'x' } });
    assert.deepEqual(out.spec.unknown, { b: { c: 2, d: 3 }, list: [3] });
    assert.deepEqual(out.status, { phase: 'Running', reason: 'x' });
  });

  it('merges x-kubernetes-preserve-unknown-fields maps as maps', () => {
    const live = { spec: { extra: { x: { y: 1, z: 2 }, items: [{ name: 'a' }] } } };
    const out = smp(live, { spec: { extra: { x: { z: null, w: 3 }, items: [{ name: 'b' }] } } });
    assert.deepEqual(out.spec.extra, { x: { y: 1, w: 3 }, items: [{ name: 'b' }] });
  });

  it('replaces a value whose type changes', () => {
    const out = smp({ spec: { extra: { v: [1] } } }, { spec: { extra: { v: { now: 'a map' } } } });
    assert.deepEqual(out.spec.extra.v, { now: 'a map' });
  });
});

describe('applyStrategicMergePatch: lists', () => {
  it('merges containers by name and leaves the others alone', () => {
    const out = smp(livePod(), { spec: { containers: [{ name: 'sidecar', image: 'sidecar:2' }] } });
    assert.deepEqual(names(out.spec.containers), ['app', 'sidecar']);
    assert.equal(out.spec.containers[1].image, 'sidecar:2');
    assert.deepEqual(out.spec.containers[0], livePod().spec.containers[0]);
  });

  it('merges nested env by name, deleting fields set to null', () => {
    const out = smp(livePod(), {
      spec: { containers: [{ name: 'app', env: [{ name: 'A', value: null, valueFrom: { fieldRef: { fieldPath: 'x' } } }] }] },
    });
    assert.deepEqual(out.spec.containers[0].env, [
      { name: 'A', valueFrom: { fieldRef: { fieldPath: 'x' } } },
      { name: 'B', value: 'b' },
    ]);
  });

  it('merges ports on the integer merge key containerPort', () => {
    const out = smp(livePod(), {
      spec: { containers: [{ name: 'app', ports: [{ containerPort: 80, name: 'http' }, { containerPort: 443 }] }] },
    });
    assert.deepEqual(out.spec.containers[0].ports, [
      { containerPort: 80, protocol: 'TCP', name: 'http' },
      { containerPort: 443 },
    ]);
  });

  it('without $setElementOrder, follows the patch order and puts new elements before live-only ones', () => {
    // apimachinery's mergeSortedSlice: an element the live list does not know cannot be ranked against
    // live-only elements, so it is emitted first.
    const out = smp(livePod(), { spec: { containers: [{ name: 'new', image: 'new:1' }] } });
    assert.deepEqual(names(out.spec.containers), ['new', 'app', 'sidecar']);
    const reordered = smp(
      { spec: { containers: [{ name: '1' }, { name: '2', image: 'b' }, { name: '3' }] } },
      { spec: { containers: [{ name: '3', image: 'c' }, { name: '1', image: 'a' }] } },
    );
    assert.deepEqual(reordered.spec.containers, [{ name: '2', image: 'b' }, { name: '3', image: 'c' }, { name: '1', image: 'a' }]);
  });

  it('removes an element with {<mergeKey>: v, $patch: delete}, all duplicates included', () => {
    const live = { spec: { containers: [{ name: 'a' }, { name: 'b' }, { name: 'a', image: 'dup' }] } };
    const out = smp(live, { spec: { containers: [{ name: 'a', $patch: 'delete' }] } });
    assert.deepEqual(out.spec.containers, [{ name: 'b' }]);
  });

  it('{$patch: replace} in a list replaces the list with the other elements', () => {
    const out = smp(livePod(), { spec: { containers: [{ $patch: 'replace' }, { name: 'only', image: 'only:1' }] } });
    assert.deepEqual(out.spec.containers, [{ name: 'only', image: 'only:1' }]);
    const emptied = smp(livePod(), { spec: { containers: [{ $patch: 'replace' }] } });
    assert.deepEqual(emptied.spec.containers, []);
  });

  it('replaces lists without a merge strategy atomically (tolerations, args)', () => {
    const out = smp(livePod(), {
      spec: {
        tolerations: [{ key: 'k2', operator: 'Equal' }],
        containers: [{ name: 'app', args: ['--c'] }],
      },
    });
    assert.deepEqual(out.spec.tolerations, [{ key: 'k2', operator: 'Equal' }]);
    assert.deepEqual(out.spec.containers[0].args, ['--c']);
  });

  it('merges primitive merge lists as sets (finalizers)', () => {
    const out = smp(livePod(), { metadata: { finalizers: ['b.example.com/f', 'c.example.com/f'] } });
    assert.deepEqual(out.metadata.finalizers, ['a.example.com/f', 'b.example.com/f', 'c.example.com/f']);
    const dup = smp({ metadata: { finalizers: ['x', 'x', 'y'] } }, { metadata: { finalizers: ['y'] } });
    assert.deepEqual(dup.metadata.finalizers, ['x', 'y']);
  });

  it('$deleteFromPrimitiveList/<list> removes values, duplicates included', () => {
    const out = smp(
      { metadata: { finalizers: ['f1', 'f2', 'f3', 'f3', 'f4'] } },
      { metadata: { '$deleteFromPrimitiveList/finalizers': ['f3', 'absent'] } },
    );
    assert.deepEqual(out.metadata.finalizers, ['f1', 'f2', 'f4']);
  });

  it('$retainKeys in a volume switches its source (volumes are merge,retainKeys)', () => {
    const out = smp(livePod(), {
      spec: { volumes: [{ $retainKeys: ['configMap', 'name'], configMap: { name: 'cm' }, emptyDir: null, name: 'data' }] },
    });
    assert.deepEqual(out.spec.volumes, [{ name: 'data', configMap: { name: 'cm' } }]);
  });

  it('$retainKeys drops live keys the patch does not null out itself', () => {
    const live = { spec: { volumes: [{ name: 'data', emptyDir: { medium: 'Memory' } }, { name: 'logs', emptyDir: {} }] } };
    const out = smp(live, { spec: { volumes: [{ $retainKeys: ['hostPath', 'name'], hostPath: { path: '/var/data' }, name: 'data' }] } });
    assert.deepEqual(out.spec.volumes, [{ name: 'data', hostPath: { path: '/var/data' } }, { name: 'logs', emptyDir: {} }]);
  });

  it('adds a list the original lacks, still applying directives inside it', () => {
    const out = smp({ spec: {} }, {
      spec: { containers: [{ name: 'a', env: [{ name: 'X', value: '1' }, { name: 'Y', $patch: 'delete' }] }] },
    });
    assert.deepEqual(out.spec.containers, [{ name: 'a', env: [{ name: 'X', value: '1' }] }]);
  });
});

describe('applyStrategicMergePatch: $setElementOrder', () => {
  it('applies the patch kubectl apply sends for an existing pod', () => {
    // kubectl apply after: app image bumped, env B removed and C added, container "metrics" inserted.
    const lastApplied = JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web' } });
    const patch = {
      metadata: { annotations: { 'kubectl.kubernetes.io/last-applied-configuration': `${lastApplied}\n` } },
      spec: {
        '$setElementOrder/containers': [{ name: 'app' }, { name: 'metrics' }, { name: 'sidecar' }],
        containers: [
          {
            '$setElementOrder/env': [{ name: 'A' }, { name: 'C' }],
            env: [{ name: 'C', value: 'c' }, { $patch: 'delete', name: 'B' }],
            image: 'app:2',
            name: 'app',
          },
          { image: 'metrics:1', name: 'metrics' },
        ],
      },
    };
    const out = smp(livePod(), patch);
    assert.deepEqual(names(out.spec.containers), ['app', 'metrics', 'sidecar']);
    assert.equal(out.spec.containers[0].image, 'app:2');
    assert.deepEqual(out.spec.containers[0].env, [{ name: 'A', value: 'a' }, { name: 'C', value: 'c' }]);
    assert.deepEqual(out.spec.containers[0].ports, [{ containerPort: 80, protocol: 'TCP' }]);
    assert.deepEqual(out.spec.containers[1], { image: 'metrics:1', name: 'metrics' });
    assert.equal(out.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration'], `${lastApplied}\n`);
    assert.equal(out.metadata.annotations.note, 'x');
  });

  it('applies the patch kubectl apply sends to drop a container and a finalizer', () => {
    const out = smp(livePod(), {
      metadata: {
        '$setElementOrder/finalizers': ['a.example.com/f', 'c.example.com/f'],
        '$deleteFromPrimitiveList/finalizers': ['b.example.com/f'],
        finalizers: ['c.example.com/f'],
      },
      spec: {
        '$setElementOrder/containers': [{ name: 'app' }],
        containers: [{ $patch: 'delete', name: 'sidecar' }],
      },
    });
    assert.deepEqual(names(out.spec.containers), ['app']);
    assert.deepEqual(out.metadata.finalizers, ['a.example.com/f', 'c.example.com/f']);
  });

  it('reorders without a patch list', () => {
    const out = smp(livePod(), { spec: { '$setElementOrder/containers': [{ name: 'sidecar' }, { name: 'app' }] } });
    assert.deepEqual(names(out.spec.containers), ['sidecar', 'app']);
  });

  it('ignores entries that are in neither list', () => {
    const out = smp(
      { spec: { containers: [{ name: '1' }, { name: '3' }] } },
      {
        spec: {
          '$setElementOrder/containers': [{ name: '3' }, { name: '2' }, { name: '1' }],
          containers: [{ name: '3', image: 'c' }, { name: '1', image: 'a' }],
        },
      },
    );
    assert.deepEqual(out.spec.containers, [{ name: '3', image: 'c' }, { name: '1', image: 'a' }]);
  });

  it('interleaves live-only elements by their live position, as apimachinery does', () => {
    const out = smp(
      { spec: { containers: ['C', 'B', 'D', 'A', 'E'].map((name) => ({ name })) } },
      {
        spec: {
          '$setElementOrder/containers': [{ name: 'A' }, { name: 'B' }],
          containers: [{ name: 'A', image: 'a' }, { name: 'B', image: 'b' }],
        },
      },
    );
    assert.deepEqual(names(out.spec.containers), ['C', 'D', 'A', 'B', 'E']);
  });

  it('keeps server-added env vars when the user reorders theirs (preserve-order proposal example)', () => {
    const live = {
      spec: {
        containers: [
          {
            name: 'app',
            env: [
              { name: 'ENV2', value: 'bar' },
              { name: 'ENV5', value: 'server-added-2' },
              { name: 'ENV1', value: 'foo' },
              { name: 'ENV3', value: 'baz' },
              { name: 'ENV4', value: 'server-added-1' },
            ],
          },
        ],
      },
    };
    const out = smp(live, {
      spec: {
        containers: [
          {
            name: 'app',
            '$setElementOrder/env': [{ name: 'ENV1' }, { name: 'ENV2' }, { name: 'ENV6' }],
            env: [{ name: 'ENV3', $patch: 'delete' }, { name: 'ENV6', value: 'new-env' }],
          },
        ],
      },
    });
    assert.deepEqual(names(out.spec.containers[0].env), ['ENV5', 'ENV1', 'ENV2', 'ENV6', 'ENV4']);
    assert.equal(out.spec.containers[0].env[3].value, 'new-env');
  });

  it('orders primitive lists by value', () => {
    const out = smp(
      { metadata: { finalizers: ['1', '2', '3', '4'] } },
      { metadata: { '$setElementOrder/finalizers': ['1', '2'], '$deleteFromPrimitiveList/finalizers': ['3'] } },
    );
    assert.deepEqual(out.metadata.finalizers, ['1', '2', '4']);
  });

  it('rejects a patch list whose order contradicts $setElementOrder', () => {
    assert.throws(
      () =>
        smp(livePod(), {
          spec: {
            '$setElementOrder/containers': [{ name: 'app' }, { name: 'sidecar' }],
            containers: [{ name: 'sidecar', image: 's' }, { name: 'app', image: 'a' }],
          },
        }),
      badRequest(/doesn't match \$setElementOrder\/containers/),
    );
    assert.throws(
      () => smp(livePod(), { spec: { '$setElementOrder/containers': [{ name: 'app' }], containers: [{ name: 'other' }] } }),
      badRequest(/doesn't match/),
    );
  });
});

describe('applyStrategicMergePatch: invalid patches', () => {
  it('rejects an unknown $patch value in maps and in list elements', () => {
    assert.throws(() => smp(livePod(), { spec: { nodeSelector: { $patch: 'bogus' } } }), badRequest(/spec\.nodeSelector: unknown \$patch directive "bogus"/));
    assert.throws(() => smp(livePod(), { spec: { containers: [{ name: 'app', $patch: 'bogus' }] } }), badRequest(/unknown \$patch directive/));
    assert.throws(() => smp(livePod(), { $patch: 7 }), badRequest(/unknown \$patch directive 7/));
  });

  it('rejects an element of a merge list without its merge key', () => {
    assert.throws(
      () => smp(livePod(), { spec: { containers: [{ image: 'x' }] } }),
      badRequest(/spec\.containers\[0\]: map \{"image":"x"\} does not contain declared merge key: name/),
    );
    assert.throws(() => smp(livePod(), { spec: { containers: [{ $patch: 'delete' }] } }), badRequest(/does not contain declared merge key: name/));
  });

  it('rejects $patch: delete in a list of primitives', () => {
    assert.throws(
      () => smp(livePod(), { metadata: { finalizers: [{ $patch: 'delete' }] } }),
      badRequest(/needs a merge key/),
    );
  });

  it('rejects malformed $retainKeys, $setElementOrder and $deleteFromPrimitiveList', () => {
    assert.throws(() => smp(livePod(), { spec: { volumes: [{ name: 'data', $retainKeys: 'name' }] } }), badRequest(/\$retainKeys: must be a list/));
    assert.throws(
      () => smp(livePod(), { spec: { volumes: [{ name: 'data', $retainKeys: ['name'], hostPath: { path: '/x' } }] } }),
      badRequest(/field "hostPath" is set by the patch but not listed in \$retainKeys/),
    );
    assert.throws(() => smp(livePod(), { spec: { '$setElementOrder/containers': { name: 'app' } } }), badRequest(/must be a list/));
    assert.throws(() => smp(livePod(), { spec: { $setElementOrder: [] } }), badRequest(/\$setElementOrder\/<list field>/));
    assert.throws(() => smp(livePod(), { spec: { '$setElementOrder/containers': ['app'] } }), badRequest(/declared merge key: name/));
    assert.throws(() => smp(livePod(), { metadata: { '$deleteFromPrimitiveList/finalizers': 'a' } }), badRequest(/must be a list/));
  });

  it('rejects a patch that is not an object', () => {
    assert.throws(() => smp(livePod(), [{ op: 'add' }]), badRequest(/must be a JSON object/));
    assert.throws(() => smp(livePod(), null), badRequest(/must be a JSON object/));
  });
});

describe('applyStrategicMergePatch: purity', () => {
  it('never mutates its inputs or shares structure with them', () => {
    const original = deepFreeze(livePod());
    const patch = deepFreeze({
      metadata: { labels: { extra: 'y' } },
      spec: { containers: [{ name: 'new', env: [{ name: 'N', value: 'n' }] }], tolerations: [{ key: 't' }] },
    });
    const out = applyStrategicMergePatch(original, patch, podSchema, resolve) as any;
    // Every object of the result is writable, so none of them is one of the frozen inputs.
    out.metadata.labels.app = 'changed';
    out.spec.containers[0].env[0].value = 'changed';
    out.spec.containers[1].env[0].value = 'changed';
    out.spec.tolerations[0].key = 'changed';
    out.spec.volumes[0].emptyDir.medium = 'Memory';
    assert.deepEqual(original, livePod());
  });
});
