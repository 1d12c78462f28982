import type { Schema, SchemaResolver } from '../openapi/schema.js';
import { childSchema, isObject, resolveFully, shapeOf, type Shape } from './shape.js';

/**
 * Field sets as structured-merge-diff defines them: a set of paths into an object, each path a list of
 * elements. A field of a struct or map is `f:name`; an item of a keyed list is `k:{"name":"web"}`; an
 * item of a set list is `v:"value"`; an item of an atomic list walked by position is `i:0`.
 *
 * FieldsV1 (what `metadata.managedFields[].fieldsV1` holds) is the set written as a tree: each path
 * element is a key, a leaf is `{}`, and `".": {}` marks a node that is itself in the set while also
 * having children.
 */
export type PathElement =
  | { readonly field: string }
  | { readonly key: ReadonlyArray<readonly [string, unknown]> }
  | { readonly value: unknown }
  | { readonly index: number };

export type FieldPath = readonly PathElement[];

/** A set, list or key failed to fit its schema: SMD reports it against the path. */
export class FieldPathError extends Error {
  constructor(readonly path: FieldPath, readonly detail: string) {
    super(`${pathString(path)}: ${detail}`);
    this.name = 'FieldPathError';
  }
}

export class FieldSet {
  private readonly byKey = new Map<string, FieldPath>();

  constructor(paths: Iterable<FieldPath> = []) {
    for (const p of paths) this.insert(p);
  }

  static fromFieldsV1(fields: unknown): FieldSet {
    const set = new FieldSet();
    if (!isObject(fields)) throw new Error('error decoding set: expected an object');
    decodeNode(fields, [], set);
    return set;
  }

  get size(): number {
    return this.byKey.size;
  }

  isEmpty(): boolean {
    return this.byKey.size === 0;
  }

  insert(path: FieldPath): this {
    if (path.length > 0) this.byKey.set(pathKey(path), path);
    return this;
  }

  has(path: FieldPath): boolean {
    return this.byKey.has(pathKey(path));
  }

  union(other: FieldSet): FieldSet {
    const out = this.copy();
    for (const [k, p] of other.byKey) out.byKey.set(k, p);
    return out;
  }

  difference(other: FieldSet): FieldSet {
    const out = new FieldSet();
    for (const [k, p] of this.byKey) if (!other.byKey.has(k)) out.byKey.set(k, p);
    return out;
  }

  intersection(other: FieldSet): FieldSet {
    const out = new FieldSet();
    for (const [k, p] of this.byKey) if (other.byKey.has(k)) out.byKey.set(k, p);
    return out;
  }

  equals(other: FieldSet): boolean {
    if (this.size !== other.size) return false;
    for (const k of this.byKey.keys()) if (!other.byKey.has(k)) return false;
    return true;
  }

  copy(): FieldSet {
    const out = new FieldSet();
    for (const [k, p] of this.byKey) out.byKey.set(k, p);
    return out;
  }

  /** The paths in SMD's order: shorter prefixes first, siblings ordered by `compareElements`. */
  paths(): FieldPath[] {
    return [...this.byKey.values()].sort(comparePaths);
  }

  toFieldsV1(): Record<string, unknown> {
    const root = new TrieNode();
    for (const p of this.byKey.values()) root.add(p);
    return root.emit(false);
  }
}

/** A tree view of a set, used to emit FieldsV1 and to walk an object alongside the set. */
export class TrieNode {
  readonly children = new Map<string, { pe: PathElement; member: boolean; node: TrieNode }>();

  static of(set: FieldSet): TrieNode {
    const root = new TrieNode();
    for (const p of set.paths()) root.add(p);
    return root;
  }

  add(path: FieldPath): void {
    let node: TrieNode = this;
    path.forEach((pe, i) => {
      const k = encodeElement(pe);
      let child = node.children.get(k);
      if (!child) {
        child = { pe, member: false, node: new TrieNode() };
        node.children.set(k, child);
      }
      if (i === path.length - 1) child.member = true;
      node = child.node;
    });
  }

  emit(includeSelf: boolean): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    if (includeSelf) out['.'] = {};
    const entries = [...this.children.entries()].sort((a, b) => compareElements(a[1].pe, b[1].pe));
    for (const [k, child] of entries) {
      out[k] = child.node.children.size === 0 ? {} : child.node.emit(child.member);
    }
    return out;
  }
}

function decodeNode(fields: Record<string, unknown>, prefix: FieldPath, set: FieldSet): void {
  for (const [k, v] of Object.entries(fields)) {
    if (k === '.') {
      set.insert(prefix);
      continue;
    }
    const path = [...prefix, decodeElement(k)];
    if (!isObject(v)) throw new Error(`error decoding set: value of ${JSON.stringify(k)} is not an object`);
    if (Object.keys(v).length === 0) set.insert(path);
    else decodeNode(v, path, set);
  }
}

export function encodeElement(pe: PathElement): string {
  if ('field' in pe) return `f:${pe.field}`;
  if ('key' in pe) return `k:{${pe.key.map(([n, v]) => `${goJson(n)}:${goJson(v)}`).join(',')}}`;
  if ('value' in pe) return `v:${goJson(pe.value)}`;
  return `i:${pe.index}`;
}

export function decodeElement(s: string): PathElement {
  if (s.length < 2 || s[1] !== ':') throw new Error(`error decoding set: missing colon: ${s}`);
  const body = s.slice(2);
  switch (s[0]) {
    case 'f':
      return { field: body };
    case 'v':
      return { value: parseJson(body, s) };
    case 'k': {
      const obj = parseJson(body, s);
      if (!isObject(obj)) throw new Error(`error decoding set: key is not an object: ${s}`);
      return keyElement(Object.entries(obj));
    }
    case 'i': {
      if (!/^-?\d+$/.test(body)) throw new Error(`error decoding set: invalid index: ${s}`);
      return { index: Number(body) };
    }
    default:
      throw new Error(`error decoding set: unknown path element type: ${s}`);
  }
}

function parseJson(text: string, whole: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`error decoding set: invalid JSON in ${whole}`);
  }
}

export function keyElement(fields: Iterable<readonly [string, unknown]>): PathElement {
  return { key: [...fields].sort((a, b) => cmpStr(a[0], b[0])) };
}

function pathKey(path: FieldPath): string {
  return JSON.stringify(path.map(encodeElement));
}

/**
 * JSON as Go's encoding/json writes it: map keys sorted, and `<`, `>`, `&`, U+2028 and U+2029 escaped.
 * The FieldsV1 keys must match byte for byte what kube writes, or two encodings of one set differ.
 */
export function goJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(goJson).join(',')}]`;
  if (isObject(v)) {
    const keys = Object.keys(v).sort(cmpStr);
    return `{${keys.map((k) => `${goJson(k)}:${goJson(v[k])}`).join(',')}}`;
  }
  if (v === undefined) return 'null';
  return JSON.stringify(v).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** SMD's value.Compare: numbers < strings < booleans < lists < maps < null. */
export function orderValues(a: unknown, b: unknown): number {
  const rank = (v: unknown): number =>
    typeof v === 'number' ? 0 : typeof v === 'string' ? 1 : typeof v === 'boolean' ? 2 : Array.isArray(v) ? 3 : isObject(v) ? 4 : 5;
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return cmpStr(a, b);
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b);
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.min(a.length, b.length); i++) {
      const c = orderValues(a[i], b[i]);
      if (c !== 0) return c;
    }
    return a.length - b.length;
  }
  if (isObject(a) && isObject(b)) return cmpStr(goJson(a), goJson(b));
  return 0;
}

/** SMD's PathElement.Compare: fields, then keys, then values, then indexes. */
export function compareElements(a: PathElement, b: PathElement): number {
  const rank = (pe: PathElement): number => ('field' in pe ? 0 : 'key' in pe ? 1 : 'value' in pe ? 2 : 3);
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  if ('field' in a && 'field' in b) return cmpStr(a.field, b.field);
  if ('key' in a && 'key' in b) {
    for (let i = 0; i < Math.min(a.key.length, b.key.length); i++) {
      const c = cmpStr(a.key[i][0], b.key[i][0]) || orderValues(a.key[i][1], b.key[i][1]);
      if (c !== 0) return c;
    }
    return a.key.length - b.key.length;
  }
  if ('value' in a && 'value' in b) return orderValues(a.value, b.value);
  if ('index' in a && 'index' in b) return a.index - b.index;
  return 0;
}

function comparePaths(a: FieldPath, b: FieldPath): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = compareElements(a[i], b[i]);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

/** A value as SMD's value.ToString prints it inside a path: strings quoted, the rest as-is. */
function valueString(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(valueString).join(',')}]`;
  if (isObject(v)) return `{${Object.keys(v).sort(cmpStr).map((k) => `${k}=${valueString(v[k])}`).join(';')}}`;
  return String(v);
}

/** The path as kube prints it in conflicts: `.spec.template.spec.containers[name="web"].image`. */
export function pathString(path: FieldPath): string {
  return path
    .map((pe) => {
      if ('field' in pe) return `.${pe.field}`;
      if ('key' in pe) return `[${pe.key.map(([n, v]) => `${n}=${valueString(v)}`).join(',')}]`;
      if ('value' in pe) return `[=${valueString(pe.value)}]`;
      return `[${pe.index}]`;
    })
    .join('');
}

/**
 * The path element naming `item` in a set or map list. A map list item missing a key field takes the
 * key's schema default (containers[].ports[].protocol defaults to "TCP"), as SMD does.
 */
export function listItemElement(
  shape: Extract<Shape, { kind: 'list' }>,
  item: unknown,
  path: FieldPath,
  resolve: SchemaResolver,
): PathElement {
  if (shape.listType === 'map') {
    if (!isObject(item)) throw new FieldPathError(path, 'associative list with keys has an element that is not a map type');
    const itemSchema = resolveFully(shape.items, resolve);
    const fields: Array<[string, unknown]> = [];
    for (const k of shape.keys) {
      let v = item[k];
      if (v === undefined || v === null) v = resolveFully(itemSchema?.properties?.[k], resolve)?.default;
      if (v === undefined || v === null) {
        throw new FieldPathError(path, `associative list with keys has an element that omits key field ${JSON.stringify(k)} (and doesn't have default value)`);
      }
      fields.push([k, v]);
    }
    return keyElement(fields);
  }
  if (isObject(item)) throw new FieldPathError(path, "associative list without keys has an element that's a map type");
  return { value: item };
}

export interface FieldSetOptions {
  /** Refuse duplicate list keys, as SMD does for an applied configuration (but not for a live object). */
  rejectDuplicates?: boolean;
}

/**
 * The set of fields `value` sets, walked with `schema`: every scalar, every atomic list or map as one
 * leaf, every item of a set or map list (and its fields), every entry of a granular map. Struct fields
 * holding objects are not themselves members unless empty or null.
 */
export function fieldSetOf(value: unknown, schema: Schema | undefined, resolve: SchemaResolver, options: FieldSetOptions = {}): FieldSet {
  const set = new FieldSet();
  collect(value, schema, [], set, resolve, options);
  return set;
}

function collect(value: unknown, schema: Schema | undefined, path: FieldPath, set: FieldSet, resolve: SchemaResolver, options: FieldSetOptions): void {
  if (value === null || value === undefined) {
    set.insert(path);
    return;
  }
  const shape = shapeOf(schema, resolve);
  switch (shape.kind) {
    case 'scalar':
      set.insert(path);
      return;
    case 'untyped':
      if (!isObject(value)) {
        set.insert(path);
        return;
      }
      for (const [k, v] of Object.entries(value)) {
        const child = [...path, { field: k }];
        collect(v, undefined, child, set, resolve, options);
        set.insert(child);
      }
      return;
    case 'struct':
    case 'map':
      if (shape.atomic || !isObject(value)) {
        set.insert(path);
        return;
      }
      for (const [k, v] of Object.entries(value)) {
        const child = [...path, { field: k }];
        const { schema: cs, declared } = childSchema(shape, k);
        collect(v, cs, child, set, resolve, options);
        if (v === null || (isObject(v) && Object.keys(v).length === 0) || !declared) set.insert(child);
      }
      return;
    case 'list': {
      if (shape.listType === 'atomic' || !Array.isArray(value)) {
        set.insert(path);
        return;
      }
      const seen = new Set<string>();
      for (const item of value) {
        const pe = listItemElement(shape, item, path, resolve);
        const k = encodeElement(pe);
        if (seen.has(k) && options.rejectDuplicates) throw new FieldPathError(path, `duplicate entries for key ${pathString([pe])}`);
        seen.add(k);
        const child = [...path, pe];
        collect(item, shape.items, child, set, resolve, options);
        set.insert(child);
      }
      return;
    }
  }
}
