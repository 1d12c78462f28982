import { isDeepStrictEqual } from 'node:util';
import type { Schema, SchemaResolver } from '../openapi/schema.js';
import { encodeElement, FieldSet, listItemElement, TrieNode, type FieldPath, type PathElement } from './fieldset.js';
import { childSchema, isGranularObject, isObject, shapeOf, type Shape } from './shape.js';

type ListShape = Extract<Shape, { kind: 'list' }>;

function clone<T>(v: T): T {
  return v === undefined ? v : structuredClone(v);
}

function isEmptyContainer(v: unknown): boolean {
  return v === undefined || v === null || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0);
}

/** Items of a list keyed by their path element; live objects may hold items SMD could not key. */
function keyedItems(shape: ListShape, list: unknown[], path: FieldPath, resolve: SchemaResolver, lenient: boolean): Array<{ key: string; pe: PathElement; item: unknown }> {
  return list.map((item, i) => {
    try {
      const pe = listItemElement(shape, item, path, resolve);
      return { key: encodeElement(pe), pe, item };
    } catch (err) {
      if (!lenient) throw err;
      const pe: PathElement = { index: i };
      return { key: `#${i}`, pe, item };
    }
  });
}

/**
 * Merges an applied configuration into a live value: the configuration's values win, maps and
 * associative lists merge by key, everything else is replaced whole. An explicit null removes a leaf.
 */
export function mergeValues(live: unknown, config: unknown, schema: Schema | undefined, resolve: SchemaResolver, path: FieldPath = []): unknown {
  if (config === undefined) return clone(live);
  if (live === undefined || live === null) return clone(config);
  const shape = shapeOf(schema, resolve);
  if (isGranularObject(shape) && isObject(live) && isObject(config)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(live)) out[k] = clone(v);
    for (const [k, v] of Object.entries(config)) {
      const cs = childSchema(shape, k).schema;
      if (v === null) {
        const keep = live[k] !== undefined && !isEmptyContainer(live[k]) && isWalkable(shapeOf(cs, resolve), live[k]);
        if (!keep) delete out[k];
        continue;
      }
      out[k] = mergeValues(live[k], v, cs, resolve, [...path, { field: k }]);
    }
    return out;
  }
  if (shape.kind === 'list' && shape.listType !== 'atomic' && Array.isArray(live) && Array.isArray(config)) {
    return mergeList(shape, live, config, path, resolve);
  }
  return clone(config);
}

function isWalkable(shape: Shape, v: unknown): boolean {
  if (isGranularObject(shape)) return isObject(v);
  return shape.kind === 'list' && shape.listType !== 'atomic' && Array.isArray(v);
}

/**
 * SMD's associative-list merge: items both sides share follow the configuration's order, items only
 * the live list has keep their place among them, and new items land where the configuration put them.
 */
function mergeList(shape: ListShape, live: unknown[], config: unknown[], path: FieldPath, resolve: SchemaResolver): unknown[] {
  const l = keyedItems(shape, live, path, resolve, true);
  const r = keyedItems(shape, config, path, resolve, false);
  const lByKey = new Map<string, unknown>();
  for (const e of l) if (!lByKey.has(e.key)) lByKey.set(e.key, e.item);
  const rKeys = new Set(r.map((e) => e.key));
  const shared = r.filter((e) => lByKey.has(e.key)).map((e) => e.key);
  let nextShared = 0;
  const merged = new Set<string>();
  const out: unknown[] = [];
  const mergeItem = (key: string, pe: PathElement, item: unknown): unknown =>
    shape.listType === 'map' ? mergeValues(lByKey.get(key), item, shape.items, resolve, [...path, pe]) : clone(item);

  let li = 0;
  let ri = 0;
  while (li < l.length || ri < r.length) {
    if (li < l.length && ri < r.length) {
      const lk = l[li].key;
      if (lk === r[ri].key) {
        merged.add(lk);
        out.push(mergeItem(lk, r[ri].pe, r[ri].item));
        li++;
        ri++;
        nextShared++;
        continue;
      }
      if (rKeys.has(lk) && nextShared < shared.length && shared[nextShared] !== lk) {
        li++;
        continue;
      }
    }
    if (li < l.length) {
      const lk = l[li].key;
      if (!rKeys.has(lk)) {
        out.push(clone(l[li].item));
        li++;
        continue;
      }
      if (merged.has(lk)) {
        li++;
        continue;
      }
    }
    if (ri < r.length) {
      const rk = r[ri].key;
      merged.add(rk);
      out.push(mergeItem(rk, r[ri].pe, r[ri].item));
      ri++;
      if (shared[nextShared] === rk) nextShared++;
    }
  }
  return out;
}

export interface Comparison {
  added: FieldSet;
  removed: FieldSet;
  modified: FieldSet;
}

/**
 * SMD's TypedValue.Compare: leaves (scalars, atomic values, empty containers) are added, removed or
 * modified; walked nodes that appear or disappear are added or removed too. Struct-typed nodes and
 * required fields are not reported as nodes, standing in for Go's zero values: kube compares against
 * a typed empty object whose non-pointer structs and required lists already exist.
 */
export function compareValues(before: unknown, after: unknown, schema: Schema | undefined, resolve: SchemaResolver): Comparison {
  const c: Comparison = { added: new FieldSet(), removed: new FieldSet(), modified: new FieldSet() };
  walkCompare(before, after, schema, [], false, resolve, c);
  return c;
}

function walkCompare(l: unknown, r: unknown, schema: Schema | undefined, path: FieldPath, required: boolean, resolve: SchemaResolver, c: Comparison): void {
  const shape = shapeOf(schema, resolve);
  const bothEmpty = isEmptyContainer(l) && isEmptyContainer(r);
  if (isGranularObject(shape) && (l === undefined || isObject(l)) && (r === undefined || isObject(r)) && !bothEmpty) {
    const lo = (l ?? {}) as Record<string, unknown>;
    const ro = (r ?? {}) as Record<string, unknown>;
    const keys = new Set([...Object.keys(lo), ...Object.keys(ro)]);
    for (const k of keys) {
      const cs = childSchema(shape, k).schema;
      const req = shape.kind === 'struct' && shape.required.has(k);
      walkCompare(lo[k], ro[k], cs, [...path, { field: k }], req, resolve, c);
    }
    if (shape.kind !== 'struct' && !required) markNode(l, r, path, c);
    return;
  }
  if (shape.kind === 'list' && shape.listType !== 'atomic' && (l === undefined || Array.isArray(l)) && (r === undefined || Array.isArray(r)) && !bothEmpty) {
    const li = keyedItems(shape, (l ?? []) as unknown[], path, resolve, true);
    const ri = keyedItems(shape, (r ?? []) as unknown[], path, resolve, true);
    const lMap = new Map(li.map((e) => [e.key, e]));
    const rMap = new Map(ri.map((e) => [e.key, e]));
    const keys = new Set([...lMap.keys(), ...rMap.keys()]);
    for (const k of keys) {
      const pe = (lMap.get(k) ?? rMap.get(k))!.pe;
      walkCompare(lMap.get(k)?.item, rMap.get(k)?.item, shape.items, [...path, pe], false, resolve, c);
      markNode(lMap.get(k)?.item, rMap.get(k)?.item, [...path, pe], c);
    }
    if (!required) markNode(l, r, path, c);
    return;
  }
  if (path.length === 0) return;
  if (l === undefined && r !== undefined) c.added.insert(path);
  else if (r === undefined && l !== undefined) c.removed.insert(path);
  else if (!isDeepStrictEqual(l, r)) c.modified.insert(path);
}

function markNode(l: unknown, r: unknown, path: FieldPath, c: Comparison): void {
  if (path.length === 0) return;
  if (l === undefined && r !== undefined) c.added.insert(path);
  else if (r === undefined && l !== undefined) c.removed.insert(path);
}

/**
 * Removes every path of `set` (with everything under it) from `value`. A map or list emptied by the
 * removal disappears too, as SMD's RemoveItems leaves it null.
 */
export function removeFields(value: unknown, set: FieldSet, schema: Schema | undefined, resolve: SchemaResolver): unknown {
  if (set.isEmpty()) return value;
  const out = removeWalk(value, TrieNode.of(set), schema, [], resolve);
  return out === undefined && isObject(value) ? {} : out;
}

function removeWalk(value: unknown, node: TrieNode, schema: Schema | undefined, path: FieldPath, resolve: SchemaResolver): unknown {
  if (node.children.size === 0) return value;
  const shape = shapeOf(schema, resolve);
  if (isGranularObject(shape) && isObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const entry = node.children.get(encodeElement({ field: k }));
      if (!entry) {
        out[k] = v;
        continue;
      }
      if (entry.member) continue;
      const nv = removeWalk(v, entry.node, childSchema(shape, k).schema, [...path, { field: k }], resolve);
      if (nv !== undefined) out[k] = nv;
    }
    return Object.keys(out).length > 0 ? out : undefined;
  }
  if (shape.kind === 'list' && shape.listType !== 'atomic' && Array.isArray(value)) {
    const out: unknown[] = [];
    for (const e of keyedItems(shape, value, path, resolve, true)) {
      const entry = node.children.get(e.key);
      if (!entry) {
        out.push(e.item);
        continue;
      }
      if (entry.member) continue;
      const nv = removeWalk(e.item, entry.node, shape.items, [...path, e.pe], resolve);
      if (nv !== undefined) out.push(nv);
    }
    return out.length > 0 ? out : undefined;
  }
  return value;
}
