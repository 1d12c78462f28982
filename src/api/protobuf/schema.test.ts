import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as clientNode from '@kubernetes/client-node';
import { BUILTIN_RESOURCES, groupVersion } from '../resources.js';
import { unpack } from './field.js';
import { messageFor } from './decode.js';
import { KINDS, MESSAGES } from './schema.js';

const SCALARS = new Set(['string', 'bytes', 'bool', 'int32', 'int64', 'uint32', 'uint64', 'double', 'float']);

/** Messages whose JSON is not an object of their fields; decode.ts converts them. */
const CONVERTED = new Set([
  'meta.v1.Time',
  'meta.v1.MicroTime',
  'resource.Quantity',
  'intstr.IntOrString',
  'runtime.RawExtension',
  'runtime.Unknown',
  'meta.v1.FieldsV1',
  'apiextensions.v1.JSON',
  'apiextensions.v1.JSONSchemaPropsOrArray',
  'apiextensions.v1.JSONSchemaPropsOrBool',
  'apiextensions.v1.JSONSchemaPropsOrStringArray',
  'authentication.v1.ExtraValue',
  'authorization.v1.ExtraValue',
  'certificates.v1.ExtraValue',
]);

describe('protobuf schema table', () => {
  test('every message reachable from every kind resolves, and every field is well formed', () => {
    const seen = new Set<string>();
    const queue = [...Object.values(KINDS), 'runtime.Unknown', 'meta.v1.DeleteOptions', 'meta.v1.Status'];
    const missing: string[] = [];
    while (queue.length) {
      const name = queue.pop()!;
      if (seen.has(name)) continue;
      seen.add(name);
      const defs = MESSAGES[name];
      if (!defs) {
        missing.push(name);
        continue;
      }
      const numbers = new Set<number>();
      const names = new Set<string>();
      for (const def of defs) {
        const f = unpack(def);
        assert.ok(!numbers.has(f.number) && !names.has(f.json), `${name}: field ${f.number} ${f.json} repeated`);
        numbers.add(f.number);
        names.add(f.json);
        assert.ok(f.message !== undefined || SCALARS.has(f.scalar!), `${name}.${f.json}: type ${def[2]}`);
        assert.ok(!(f.map && f.repeated) && !(f.keep && (f.repeated || f.map)), `${name}.${f.json}: flags ${def[3]}`);
        if (f.inline) assert.ok(f.message && !f.repeated, `${name}.${f.json}: only a single message can be inline`);
        if (f.message) queue.push(f.message);
      }
    }
    assert.deepEqual(missing, []);
    assert.deepEqual(Object.keys(MESSAGES).filter((m) => !seen.has(m)), [], 'no unreachable messages');
  });

  test('every built-in kind, its list, and the subresource bodies have a message', () => {
    for (const def of BUILTIN_RESOURCES) {
      const apiVersion = groupVersion(def);
      const hint = 'add it to ROOT_KINDS in extract-schema.mjs and rerun it';
      assert.ok(messageFor(apiVersion, def.kind), `${apiVersion} ${def.kind}: ${hint}`);
      if (def.verbs.includes('list')) assert.ok(messageFor(apiVersion, def.listKind), `${apiVersion} ${def.listKind}: ${hint}`);
    }
    assert.equal(messageFor('policy/v1', 'Eviction'), 'policy.v1.Eviction');
    assert.equal(messageFor('autoscaling/v1', 'Scale'), 'autoscaling.v1.Scale');
    assert.equal(messageFor('v1', 'Binding'), 'core.v1.Binding');
    assert.equal(messageFor('authentication.k8s.io/v1', 'TokenRequest'), 'authentication.v1.TokenRequest');
    assert.equal(messageFor('meta.k8s.io/v1', 'DeleteOptions'), 'meta.v1.DeleteOptions');
    assert.equal(messageFor('v1', 'Status'), 'meta.v1.Status');
  });

  // Protobuf field names are not always the JSON names (`uID`, embedded structs), so the table carries
  // JSON names; client-node's models, generated from kube's OpenAPI, are an independent check.
  test('JSON names agree with the @kubernetes/client-node models', () => {
    const models = clientNode as unknown as Record<string, { getAttributeTypeMap?: () => { baseName: string }[] } | undefined>;
    const cap = (s: string) => s[0]!.toUpperCase() + s.slice(1);
    const jsonNames = (name: string): Set<string> | undefined => {
      const [pkg, version, kind] = name.split('.') as [string, string, string];
      const model = models[`${cap(pkg)}${cap(version)}${kind}`] ?? models[`${cap(version)}${kind}`];
      return model?.getAttributeTypeMap ? new Set(model.getAttributeTypeMap().map((a) => a.baseName)) : undefined;
    };
    const flatten = (name: string): string[] =>
      MESSAGES[name]!.map(unpack).flatMap((f) => (f.inline ? flatten(f.message!) : [f.json]));
    let checked = 0;
    const wrong: string[] = [];
    for (const name of Object.keys(MESSAGES)) {
      if (CONVERTED.has(name)) continue;
      const expected = jsonNames(name);
      if (!expected) continue;
      checked++;
      for (const json of flatten(name)) if (!expected.has(json)) wrong.push(`${name}.${json}`);
    }
    assert.deepEqual(wrong, []);
    assert.ok(checked > 250, `only ${checked} messages had a model`);
  });
});
