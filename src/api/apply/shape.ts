import type { Schema, SchemaResolver } from '../openapi/schema.js';

/**
 * How structured-merge-diff sees one node of a schema. Every walk in this folder (field sets, merge,
 * compare, removal) asks the same question of a schema, so the answer lives here once.
 *
 * - `scalar`: a leaf.
 * - `untyped`: no usable schema (x-kubernetes-preserve-unknown-fields, free-form objects). Like SMD's
 *   deduced type: objects are granular maps whose every key is owned, arrays are atomic.
 * - `struct`: an object with declared `properties`; undeclared keys fall back to `rest`.
 * - `map`: an object keyed freely (`additionalProperties`), e.g. metadata.labels.
 * - `list`: `atomic`, `set` (items identified by value) or `map` (items identified by `keys`).
 */
export type Shape =
  | { kind: 'scalar' }
  | { kind: 'untyped' }
  | { kind: 'struct'; atomic: boolean; fields: Record<string, Schema>; rest?: Schema; required: ReadonlySet<string> }
  | { kind: 'map'; atomic: boolean; values?: Schema }
  | { kind: 'list'; listType: 'atomic' | 'set' | 'map'; items?: Schema; keys: readonly string[] };

const UNTYPED: Shape = { kind: 'untyped' };
const SCALAR: Shape = { kind: 'scalar' };

export function resolveFully(schema: Schema | undefined, resolve: SchemaResolver): Schema | undefined {
  let s = schema;
  // The resolver follows one $ref or allOf wrapper; described references can nest them.
  for (let depth = 0; s && depth < 8; depth++) {
    const next = resolve(s);
    if (next === s) {
      if (!s.$ref && s.allOf?.length === 1 && !s.type && !s.properties && !s.items) {
        s = s.allOf[0];
        continue;
      }
      break;
    }
    s = next;
  }
  return s;
}

export function shapeOf(schema: Schema | undefined, resolve: SchemaResolver): Shape {
  const s = resolveFully(schema, resolve);
  if (!s) return UNTYPED;
  if (s['x-kubernetes-int-or-string']) return SCALAR;
  if (s.type === 'array' || s.items) return listShape(s);
  const props = s.properties && Object.keys(s.properties).length > 0 ? s.properties : undefined;
  const additional = typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined;
  const atomic = s['x-kubernetes-map-type'] === 'atomic';
  if (props) {
    return { kind: 'struct', atomic, fields: props, rest: additional, required: new Set(s.required ?? []) };
  }
  if (additional) return { kind: 'map', atomic, values: additional };
  if (s.type === 'object') return atomic ? { kind: 'map', atomic: true } : UNTYPED;
  if (s['x-kubernetes-preserve-unknown-fields']) return UNTYPED;
  if (s.type) return SCALAR;
  return UNTYPED;
}

function listShape(s: Schema): Shape {
  const listType = s['x-kubernetes-list-type'];
  if (listType === 'map') return { kind: 'list', listType: 'map', items: s.items, keys: s['x-kubernetes-list-map-keys'] ?? [] };
  if (listType === 'set') return { kind: 'list', listType: 'set', items: s.items, keys: [] };
  if (listType === 'atomic') return { kind: 'list', listType: 'atomic', items: s.items, keys: [] };
  // Built-in types publish only strategic-merge tags on many lists; kube's schema conversion reads a
  // "merge" strategy as an associative list, keyed by the merge key when there is one.
  const strategy = s['x-kubernetes-patch-strategy'] ?? '';
  if (strategy.split(',').includes('merge')) {
    const key = s['x-kubernetes-patch-merge-key'];
    return key ? { kind: 'list', listType: 'map', items: s.items, keys: [key] } : { kind: 'list', listType: 'set', items: s.items, keys: [] };
  }
  return { kind: 'list', listType: 'atomic', items: s.items, keys: [] };
}

/** The schema of `key` inside a struct or map shape, and whether the struct declares it. */
export function childSchema(shape: Shape, key: string): { schema?: Schema; declared: boolean } {
  if (shape.kind === 'struct') {
    if (Object.prototype.hasOwnProperty.call(shape.fields, key)) return { schema: shape.fields[key], declared: true };
    return { schema: shape.rest, declared: false };
  }
  if (shape.kind === 'map') return { schema: shape.values, declared: false };
  return { schema: undefined, declared: false };
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** True for the shapes whose value is walked key by key. */
export function isGranularObject(shape: Shape): boolean {
  return shape.kind === 'untyped' || ((shape.kind === 'struct' || shape.kind === 'map') && !shape.atomic);
}
