// Kubernetes strategic merge patch, the body of `application/strategic-merge-patch+json` (kubectl apply
// for an existing object, kubectl patch's default). It is a JSON merge patch that reads the OpenAPI schema
// beside the object: a list whose field carries `x-kubernetes-patch-strategy: merge` is merged element by
// element, matched on `x-kubernetes-patch-merge-key` (or as a set when its elements are primitives);
// every other list is replaced whole. Fields the schema does not know merge like a JSON merge patch.
//
// Directives the patch may carry, none of which survive into the result:
//   $patch: replace | merge | delete    in a map: replace it with the rest of the patch map, merge
//                                       (the default), or empty it. As a list element: `{$patch: replace}`
//                                       replaces the list; `{<key>: v, $patch: delete}` removes the
//                                       element whose merge key is v.
//   $retainKeys: [field, ...]           drop every key of the original map not listed.
//   $setElementOrder/<list>: [...]      the order of the merged list (merge keys, or values for primitives).
//   $deleteFromPrimitiveList/<list>     values to remove from a primitive list.
//
// Ordering follows apimachinery: $setElementOrder wins, then the order of the patch list, then the order
// of the live list. Items the patch does not mention are interleaved by their live position, so a new
// element sent without $setElementOrder lands before the live elements it cannot be compared with.
import { errors } from '../errors.js';
import type { Schema, SchemaResolver } from '../openapi/schema.js';
import { cloneJson, getOwn, isJsonObject, setOwn, type JsonObject } from './merge.js';

const PATCH = '$patch';
const RETAIN_KEYS = '$retainKeys';
const SET_ELEMENT_ORDER = '$setElementOrder';
const DELETE_FROM_PRIMITIVE_LIST = '$deleteFromPrimitiveList';

/** How many `$ref` hops to follow before deciding the resolver has nothing more to give. */
const MAX_REF_HOPS = 16;

type Directive = 'replace' | 'merge' | 'delete';

interface ListMeta {
  merge: boolean;
  mergeKey: string | undefined;
}

function isDirectiveKey(key: string): boolean {
  return (
    key === PATCH ||
    key === RETAIN_KEYS ||
    key.startsWith(SET_ELEMENT_ORDER) ||
    key.startsWith(DELETE_FROM_PRIMITIVE_LIST)
  );
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function show(value: unknown): string {
  return JSON.stringify(value);
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  return typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && show(a) === show(b);
}

function without(obj: JsonObject, key: string): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(obj)) if (k !== key) setOwn(out, k, v);
  return out;
}

/** The `$patch` directive of a patch map, or undefined when it has none. */
function directiveOf(obj: JsonObject, path: string): Directive | undefined {
  if (!Object.hasOwn(obj, PATCH)) return undefined;
  const d = obj[PATCH];
  if (d === 'replace' || d === 'merge' || d === 'delete') return d;
  throw errors.badRequest(`${path || 'patch'}: unknown $patch directive ${show(d)}: expected "replace", "merge" or "delete"`);
}

/** The list field a `$setElementOrder/<field>` or `$deleteFromPrimitiveList/<field>` key names. */
function listField(key: string, prefix: string, path: string): string {
  const field = key.startsWith(`${prefix}/`) ? key.slice(prefix.length + 1) : '';
  if (!field) throw errors.badRequest(`${join(path, key)}: directive must be written ${prefix}/<list field>`);
  return field;
}

function noMergeKey(item: unknown, mergeKey: string, path: string): never {
  throw errors.badRequest(`${path}: map ${show(item)} does not contain declared merge key: ${mergeKey}`);
}

/** Position of `el` in `list`, matching maps on their merge key and primitives by value. */
function indexIn(list: unknown[], el: unknown, mergeKey: string | undefined): number {
  if (mergeKey === undefined) return list.findIndex((o) => sameValue(o, el));
  if (!isJsonObject(el) || !Object.hasOwn(el, mergeKey)) return -1;
  return list.findIndex((o) => isJsonObject(o) && Object.hasOwn(o, mergeKey) && sameValue(o[mergeKey], el[mergeKey]));
}

function sortedBy(items: unknown[], order: unknown[], mergeKey: string | undefined): unknown[] {
  const rank = (el: unknown): number => {
    const i = indexIn(order, el, mergeKey);
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  return items
    .map((el, i) => ({ el, i, r: rank(el) }))
    .sort((a, b) => a.r - b.r || a.i - b.i)
    .map((x) => x.el);
}

/**
 * Orders a merged list: elements named in `wanted` follow its order, the others keep their order in
 * `live`, and the two runs are interleaved by live position where both elements have one.
 */
function normalizeOrder(
  merged: unknown[],
  wanted: unknown[],
  live: unknown[],
  mergeKey: string | undefined,
): unknown[] {
  const named = merged.filter((el) => indexIn(wanted, el, mergeKey) >= 0);
  const liveOnly = merged.filter((el) => indexIn(wanted, el, mergeKey) < 0);
  const right = sortedBy(named, wanted, mergeKey);
  const left = sortedBy(liveOnly, live, mergeKey);
  const out: unknown[] = [];
  let i = 0;
  let j = 0;
  while (i < left.length && j < right.length) {
    const li = indexIn(live, left[i], mergeKey);
    const ri = indexIn(live, right[j], mergeKey);
    if (li >= 0 && ri >= 0 && li < ri) out.push(left[i++]);
    else out.push(right[j++]);
  }
  return out.concat(left.slice(i), right.slice(j));
}

class StrategicMerge {
  constructor(private readonly resolve: SchemaResolver) {}

  private deref(schema: Schema | undefined): Schema | undefined {
    let s = schema;
    for (let hop = 0; s !== undefined && hop < MAX_REF_HOPS; hop++) {
      const next = this.resolve(s);
      if (next === s) break;
      s = next;
    }
    return s;
  }

  private fieldSchema(parent: Schema | undefined, key: string): Schema | undefined {
    const p = this.deref(parent);
    if (!p) return undefined;
    if (p.properties && Object.hasOwn(p.properties, key)) return p.properties[key];
    if (typeof p.additionalProperties === 'object') return p.additionalProperties;
    return undefined;
  }

  private itemSchema(list: Schema | undefined): Schema | undefined {
    return this.deref(list)?.items;
  }

  /** Patch metadata sits on the property schema, or on the schema it refers to. */
  private patchMeta(field: Schema | undefined, name: 'x-kubernetes-patch-strategy' | 'x-kubernetes-patch-merge-key'): string | undefined {
    if (!field) return undefined;
    return field[name] ?? this.deref(field)?.[name];
  }

  private strategies(field: Schema | undefined): string[] {
    return (this.patchMeta(field, 'x-kubernetes-patch-strategy') ?? '').split(',').map((s) => s.trim());
  }

  private listMeta(field: Schema | undefined): ListMeta {
    const mergeKey = this.patchMeta(field, 'x-kubernetes-patch-merge-key');
    return { merge: this.strategies(field).includes('merge'), mergeKey: mergeKey || undefined };
  }

  /** Merges `patch` into `original`, which the caller owns and which is updated in place. */
  mergeMap(original: JsonObject | undefined, patch: JsonObject, schema: Schema | undefined, path: string): JsonObject {
    const directive = directiveOf(patch, path);
    if (directive === 'replace') return this.mergeMap(undefined, without(patch, PATCH), schema, path);
    if (directive === 'delete') return {};

    const result = original ?? {};
    this.retainKeys(result, patch, path);
    const ordered = this.setElementOrder(result, patch, schema, path);
    for (const [key, value] of Object.entries(patch)) {
      if (isDirectiveKey(key) || ordered.has(key)) continue;
      if (value === null) {
        delete result[key];
        continue;
      }
      setOwn(result, key, this.mergeValue(getOwn(result, key), value, this.fieldSchema(schema, key), join(path, key)));
    }
    this.deleteFromPrimitiveLists(result, patch, path);
    return result;
  }

  /** `original` is owned by the caller; the returned value never shares structure with `patch`. */
  private mergeValue(original: unknown, patch: unknown, field: Schema | undefined, path: string): unknown {
    if (isJsonObject(patch)) {
      const keep = isJsonObject(original) && !this.strategies(field).includes('replace');
      return this.mergeMap(keep ? original : undefined, patch, field, path);
    }
    if (Array.isArray(patch)) return this.mergeList(Array.isArray(original) ? original : [], patch, field, path);
    return patch;
  }

  private mergeList(original: unknown[], patch: unknown[], field: Schema | undefined, path: string): unknown[] {
    const { merge, mergeKey } = this.listMeta(field);
    const items = this.itemSchema(field);
    if (!merge) {
      return patch
        .filter((el, i) => !(isJsonObject(el) && directiveOf(el, `${path}[${i}]`) && Object.keys(el).length === 1))
        .map((el, i) => this.mergeValue(undefined, el, items, `${path}[${i}]`));
    }

    let live = original.slice();
    let replace = false;
    const additions: unknown[] = [];
    patch.forEach((el, i) => {
      const at = `${path}[${i}]`;
      const directive = isJsonObject(el) ? directiveOf(el, at) : undefined;
      if (directive === undefined) {
        additions.push(el);
        return;
      }
      const element = el as JsonObject;
      if (directive === 'delete') {
        if (mergeKey === undefined) {
          throw errors.badRequest(
            `${at}: $patch: delete needs a merge key, and ${path} has none; use ${DELETE_FROM_PRIMITIVE_LIST}/<list> for primitives`,
          );
        }
        if (!Object.hasOwn(element, mergeKey)) noMergeKey(element, mergeKey, at);
        live = live.filter((o) => indexIn([element], o, mergeKey) < 0);
        return;
      }
      if (directive === 'replace') replace = true;
      const rest = without(element, PATCH);
      if (Object.keys(rest).length > 0) additions.push(rest);
    });
    if (replace) live = [];

    const all = live.concat(additions);
    if (all.some(Array.isArray)) throw errors.badRequest(`${path}: lists of lists cannot be merged`);
    const maps = all.filter(isJsonObject).length;
    if (maps > 0 && maps < all.length) {
      throw errors.badRequest(`${path}: list elements must be all maps or all primitives, got ${show(all)}`);
    }

    if (maps === 0) {
      const merged = all.filter((v, i) => all.findIndex((o) => sameValue(o, v)) === i);
      return normalizeOrder(merged, additions, live, undefined);
    }

    if (mergeKey === undefined) {
      throw errors.badRequest(`${path}: cannot merge a list of maps without a merge key (x-kubernetes-patch-merge-key)`);
    }
    const merged = live.slice();
    additions.forEach((el, i) => {
      const element = el as JsonObject;
      const at = `${path}[${mergeKey}=${show(getOwn(element, mergeKey))}]`;
      if (!Object.hasOwn(element, mergeKey)) noMergeKey(element, mergeKey, `${path}[${i}]`);
      const found = indexIn(merged, element, mergeKey);
      if (found >= 0) merged[found] = this.mergeMap(merged[found] as JsonObject, element, items, at);
      else merged.push(this.mergeMap(undefined, element, items, at));
    });
    return normalizeOrder(merged, additions, live, mergeKey);
  }

  private retainKeys(result: JsonObject, patch: JsonObject, path: string): void {
    if (!Object.hasOwn(patch, RETAIN_KEYS)) return;
    const keep = patch[RETAIN_KEYS];
    if (!Array.isArray(keep) || !keep.every((k) => typeof k === 'string')) {
      throw errors.badRequest(`${join(path, RETAIN_KEYS)}: must be a list of field names`);
    }
    for (const [key, value] of Object.entries(patch)) {
      if (value === null || isDirectiveKey(key)) continue;
      if (!keep.includes(key)) {
        throw errors.badRequest(`${path || 'patch'}: field "${key}" is set by the patch but not listed in ${RETAIN_KEYS}`);
      }
    }
    for (const key of Object.keys(result)) if (!keep.includes(key)) delete result[key];
  }

  /** Merges and orders every list named by a `$setElementOrder/<list>`; returns the lists it handled. */
  private setElementOrder(result: JsonObject, patch: JsonObject, schema: Schema | undefined, path: string): Set<string> {
    const handled = new Set<string>();
    for (const [key, order] of Object.entries(patch)) {
      if (!key.startsWith(SET_ELEMENT_ORDER)) continue;
      const name = listField(key, SET_ELEMENT_ORDER, path);
      const at = join(path, name);
      if (!Array.isArray(order)) throw errors.badRequest(`${join(path, key)}: must be a list`);
      const field = this.fieldSchema(schema, name);
      const { mergeKey } = this.listMeta(field);
      if (mergeKey !== undefined) {
        for (const el of order) if (!isJsonObject(el) || !Object.hasOwn(el, mergeKey)) noMergeKey(el, mergeKey, join(path, key));
      }

      const live = getOwn(result, name);
      const patchList = getOwn(patch, name);
      if (live !== undefined && !Array.isArray(live)) throw errors.badRequest(`${at}: ${key} applies only to lists`);
      if (patchList !== undefined && !Array.isArray(patchList)) throw errors.badRequest(`${at}: ${key} applies only to lists`);
      if (live === undefined && patchList === undefined) continue;
      if (patchList !== undefined) checkOrder(patchList, order, mergeKey, at, key);

      const merged = patchList === undefined ? live ?? [] : this.mergeList(live ?? [], patchList, field, at);
      setOwn(result, name, normalizeOrder(merged, order, live ?? [], mergeKey));
      handled.add(name);
    }
    return handled;
  }

  private deleteFromPrimitiveLists(result: JsonObject, patch: JsonObject, path: string): void {
    for (const [key, values] of Object.entries(patch)) {
      if (!key.startsWith(DELETE_FROM_PRIMITIVE_LIST)) continue;
      const name = listField(key, DELETE_FROM_PRIMITIVE_LIST, path);
      if (!Array.isArray(values)) throw errors.badRequest(`${join(path, key)}: must be a list`);
      const current = getOwn(result, name);
      if (Array.isArray(current)) setOwn(result, name, current.filter((v) => !values.some((d) => sameValue(d, v))));
    }
  }
}

/**
 * Every element the patch list sets must appear in `$setElementOrder`, in the same relative order;
 * elements carrying a `$patch` directive are exempt.
 */
function checkOrder(patchList: unknown[], order: unknown[], mergeKey: string | undefined, path: string, key: string): void {
  let p = 0;
  let o = 0;
  while (p < patchList.length && o < order.length) {
    const el = patchList[p];
    if (isJsonObject(el) && Object.hasOwn(el, PATCH)) {
      p++;
      continue;
    }
    if (mergeKey !== undefined && !(isJsonObject(el) && Object.hasOwn(el, mergeKey))) noMergeKey(el, mergeKey, path);
    if (indexIn([order[o]], el, mergeKey) === 0) p++;
    o++;
  }
  while (p < patchList.length) {
    const el = patchList[p];
    if (!(isJsonObject(el) && Object.hasOwn(el, PATCH))) {
      throw errors.badRequest(`${path}: the order in patch list ${show(patchList)} doesn't match ${key} list ${show(order)}`);
    }
    p++;
  }
}

/**
 * Applies a strategic merge patch to `original` and returns the result. `schema` is the OpenAPI schema
 * of the object's kind; `resolve` follows its `$ref`s. Neither input is modified or shared with the result.
 * Malformed directives throw a 400 BadRequest ApiError.
 */
export function applyStrategicMergePatch(
  original: unknown,
  patch: unknown,
  schema: Schema,
  resolve: SchemaResolver,
): unknown {
  if (!isJsonObject(patch)) throw errors.badRequest('strategic merge patch must be a JSON object');
  const base = isJsonObject(original) ? cloneJson(original) : undefined;
  return new StrategicMerge(resolve).mergeMap(base, patch, schema, '');
}
