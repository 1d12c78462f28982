import { isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from 'yaml';

import { errors, type ApiError } from '../errors.js';
import type { GroupVersionKind } from '../types.js';
import { refName } from './generate.js';
import type { Schema, SchemaResolver } from './schema.js';

/*
 * Server-side field validation (the `fieldValidation` query parameter). Unknown and duplicate fields
 * are reported in kube's words, `unknown field "spec.foo"` and `duplicate field "metadata.name"`, and
 * the request decides with them: Strict fails it with 400, Warn returns them as warnings, Ignore
 * drops them. Type mismatches fail a request in every mode, as a JSON decoding error does in kube.
 */

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

const FIELD_VALIDATION_VALUES: readonly FieldValidation[] = ['Ignore', 'Strict', 'Warn'];

/**
 * The `fieldValidation` query parameter. Absent or empty means Warn, the server default since
 * Kubernetes 1.27; values are case-sensitive, as in kube.
 */
export function parseFieldValidation(value?: string | null): FieldValidation {
  if (value === undefined || value === null || value === '') return 'Warn';
  if ((FIELD_VALIDATION_VALUES as readonly string[]).includes(value)) return value as FieldValidation;
  throw errors.badRequest(
    `fieldValidation: Unsupported value: ${JSON.stringify(value)}: supported values: ${FIELD_VALIDATION_VALUES.map((v) => `"${v}"`).join(', ')}`,
  );
}

export interface FieldIssue {
  kind: 'unknown' | 'duplicate' | 'type';
  /** kube's field path: "spec.containers[0].image". */
  path: string;
  /** kube's message: `unknown field "spec.foo"`, or a JSON decoding error for a type mismatch. */
  message: string;
  /** For type issues: the OpenAPI type(s) the schema wanted, e.g. "integer" or "integer|string". */
  expected?: string;
}

export interface ValidateOptions {
  /**
   * Report null as a type issue unless the schema is `nullable` (custom resources). Built-in kinds
   * decode null as "unset", so the default is false.
   */
  strictNull?: boolean;
  /** Stop after this many issues. */
  limit?: number;
  /**
   * Also delete every unknown field from `obj`, as decoding into kube's typed structs drops them;
   * the issues are still reported. Implies no limit.
   */
  prune?: boolean;
}

type JsonType = 'null' | 'boolean' | 'integer' | 'number' | 'string' | 'array' | 'object';

function jsonType(value: unknown): JsonType {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  switch (typeof value) {
    case 'boolean': return 'boolean';
    case 'number': return Number.isInteger(value) ? 'integer' : 'number';
    case 'string': return 'string';
    default: return 'object';
  }
}

function accepts(type: string, actual: JsonType): boolean {
  return type === actual || (type === 'number' && actual === 'integer');
}

/** The component a schema (or its described-reference wrapper) names, for Go-style messages. */
function targetName(schema: Schema): string | undefined {
  return refName(schema) ?? (schema.allOf?.length === 1 ? refName(schema.allOf[0]!) : undefined);
}

/** "io.k8s.api.core.v1.Container" → "v1.Container", as Go prints a type. */
function goTypeName(component: string): string {
  const parts = component.split('.');
  return parts.slice(-2).join('.');
}

class Walker {
  readonly issues: FieldIssue[] = [];

  constructor(
    private readonly resolve: SchemaResolver,
    private readonly strictNull: boolean,
    private readonly limit: number,
    private readonly prune: boolean,
  ) {}

  private full(): boolean {
    return this.issues.length >= this.limit;
  }

  /** The OpenAPI types a schema admits, looking through oneOf/anyOf branches; empty means any. */
  private typesOf(s: Schema): string[] {
    if (s['x-kubernetes-int-or-string']) return ['integer', 'string'];
    if (s.type) return [s.type];
    const branches = s.oneOf ?? s.anyOf;
    if (!branches) return [];
    const types: string[] = [];
    for (const b of branches) {
      const t = this.typesOf(this.resolve(b));
      if (t.length === 0) return [];
      types.push(...t);
    }
    return types;
  }

  /** For a value matching one of several branches, the branch describing its shape. */
  private branchFor(s: Schema, actual: JsonType): Schema | undefined {
    const branches = s.oneOf ?? s.anyOf;
    if (!branches || s.properties || s.items || s.additionalProperties !== undefined) return undefined;
    for (const b of branches) {
      const r = this.resolve(b);
      if (this.typesOf(r).some((t) => accepts(t, actual))) return r;
    }
    return undefined;
  }

  private goType(schema: Schema): string {
    const name = targetName(schema);
    if (name) return goTypeName(name);
    const s = this.resolve(schema);
    switch (s.type) {
      case 'string': return 'string';
      case 'integer': return s.format === 'int32' ? 'int32' : 'int64';
      case 'number': return 'float64';
      case 'boolean': return 'bool';
      case 'array': return `[]${s.items ? this.goType(s.items) : 'interface {}'}`;
      case 'object':
        return typeof s.additionalProperties === 'object' ? `map[string]${this.goType(s.additionalProperties)}` : 'map[string]interface {}';
      default: return 'interface {}';
    }
  }

  /**
   * @param owner the Go struct holding this field, e.g. "PodSpec"
   * @param stack the JSON field names from the root, without indices, e.g. "spec.containers"
   */
  walk(value: unknown, schema: Schema, path: string, owner: string, stack: string): void {
    if (this.full()) return;
    let s = this.resolve(schema);
    const actual = jsonType(value);
    if (actual === 'null') {
      if (this.strictNull && !s.nullable && this.typesOf(s).length > 0) this.typeIssue(schema, s, actual, path, owner, stack);
      return;
    }
    const types = this.typesOf(s);
    if (types.length > 0 && !types.some((t) => accepts(t, actual))) {
      this.typeIssue(schema, s, actual, path, owner, stack);
      return;
    }
    s = this.branchFor(s, actual) ?? s;
    if (actual === 'array') {
      const items = s.items;
      if (!items) return;
      (value as unknown[]).forEach((v, i) => this.walk(v, items, `${path}[${i}]`, owner, stack));
    } else if (actual === 'object') {
      this.walkObject(value as Record<string, unknown>, schema, s, path, owner, stack);
    }
  }

  private walkObject(value: Record<string, unknown>, schema: Schema, s: Schema, path: string, owner: string, stack: string): void {
    let properties = s.properties;
    for (const part of s.allOf ?? []) {
      const r = this.resolve(part);
      if (r.properties) properties = { ...properties, ...r.properties };
    }
    const additional = s.additionalProperties;
    const open = s['x-kubernetes-preserve-unknown-fields'] === true || additional === true;
    // A schema saying nothing about an object's fields (no type, no properties) accepts any.
    if (!properties && additional === undefined && s.type !== 'object') return;
    const name = targetName(schema);
    const childOwner = name ? name.slice(name.lastIndexOf('.') + 1) : owner;
    const embedded = s['x-kubernetes-embedded-resource'] === true;
    for (const key of Object.keys(value)) {
      if (this.full()) return;
      const childPath = path ? `${path}.${key}` : key;
      const childStack = stack ? `${stack}.${key}` : key;
      const prop = properties?.[key];
      if (prop) this.walk(value[key], prop, childPath, childOwner, childStack);
      else if (typeof additional === 'object') this.walk(value[key], additional, childPath, childOwner, childStack);
      else if (open || (embedded && (key === 'apiVersion' || key === 'kind' || key === 'metadata'))) continue;
      else {
        this.issues.push({ kind: 'unknown', path: childPath, message: `unknown field "${childPath}"` });
        if (this.prune) delete value[key];
      }
    }
  }

  private typeIssue(schema: Schema, s: Schema, actual: JsonType, path: string, owner: string, stack: string): void {
    const expected = this.typesOf(s).join('|');
    const goActual = actual === 'integer' ? 'number' : actual === 'boolean' ? 'bool' : actual;
    const field = stack ? `Go struct field ${owner}.${stack}` : 'Go value';
    this.issues.push({
      kind: 'type',
      path,
      expected,
      message: `json: cannot unmarshal ${goActual} into ${field} of type ${this.goType(schema)}`,
    });
  }
}

/**
 * Unknown fields and type mismatches of `obj` against `schema` (a kind's schema from builtinSchemas or
 * customResourceSchemas). Paths are kube's: "spec.containers[0].imagePullPolcy".
 */
export function validateFields(obj: unknown, schema: Schema, resolve: SchemaResolver, options: ValidateOptions = {}): FieldIssue[] {
  const prune = options.prune ?? false;
  const walker = new Walker(resolve, options.strictNull ?? false, prune ? Number.POSITIVE_INFINITY : (options.limit ?? Number.POSITIVE_INFINITY), prune);
  const name = targetName(schema);
  walker.walk(obj, schema, '', name ? name.slice(name.lastIndexOf('.') + 1) : '', '');
  return walker.issues;
}

// ---- duplicate fields ---------------------------------------------------------------------------

interface Frame {
  object: boolean;
  keys: Set<string> | undefined;
  /** The last key read (objects) or the current index (arrays). */
  at: string | number;
}

function framePath(frames: Frame[], upTo: number): string {
  let path = '';
  for (let i = 0; i < upTo; i++) {
    const f = frames[i]!;
    path += f.object ? (path ? `.${f.at as string}` : (f.at as string)) : `[${f.at as number}]`;
  }
  return path;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Messages for every key repeated within one JSON object, `duplicate field "metadata.name"`, in one
 * pass over the text. Malformed JSON yields whatever was found before the damage; the parser reports
 * the syntax error itself.
 */
export function findDuplicateFields(raw: string): string[] {
  const found: string[] = [];
  const frames: Frame[] = [];
  let expectKey = false;
  const n = raw.length;
  for (let i = 0; i < n; i++) {
    const c = raw.charCodeAt(i);
    if (c === QUOTE) {
      let end = raw.indexOf('"', i + 1);
      for (;;) {
        if (end < 0) return found;
        let slashes = 0;
        while (raw.charCodeAt(end - 1 - slashes) === BACKSLASH) slashes++;
        if (slashes % 2 === 0) break;
        end = raw.indexOf('"', end + 1);
      }
      const top = frames[frames.length - 1];
      if (expectKey && top?.object) {
        const text = raw.slice(i + 1, end);
        const key = text.includes('\\') ? (JSON.parse(raw.slice(i, end + 1)) as string) : text;
        if (top.keys!.has(key)) {
          const parent = framePath(frames, frames.length - 1);
          found.push(`duplicate field "${parent ? `${parent}.${key}` : key}"`);
        } else {
          top.keys!.add(key);
        }
        top.at = key;
        expectKey = false;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      frames.push({ object: true, keys: new Set(), at: '' });
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      frames.push({ object: false, keys: undefined, at: 0 });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      frames.pop();
      expectKey = false;
    } else if (c === 0x2c /* , */) {
      const top = frames[frames.length - 1];
      if (top?.object) expectKey = true;
      else if (top) (top.at as number)++;
    }
  }
  return found;
}

/**
 * The same for a YAML body (application/apply-patch+yaml, or a YAML create). Parse such bodies with
 * `uniqueKeys: false`, since the yaml package otherwise fails on the first duplicate without a path.
 */
export function findDuplicateYamlFields(text: string): string[] {
  const found: string[] = [];
  const visit = (node: unknown, path: string): void => {
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        const child = path ? `${path}.${key}` : key;
        if (seen.has(key)) found.push(`duplicate field "${child}"`);
        seen.add(key);
        visit(pair.value, child);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => visit(item, `${path}[${i}]`));
    }
  };
  visit(parseDocument(text, { uniqueKeys: false }).contents as YamlNode | null, '');
  return found;
}

// ---- errors -------------------------------------------------------------------------------------

/**
 * The 400 kube answers when a body cannot be decoded (a type issue, in any mode) or, under Strict,
 * has unknown or duplicate fields: `Pod in version "v1" cannot be handled as a Pod: strict decoding
 * error: unknown field "spec.foo", duplicate field "metadata.name"`. Undefined when nothing fails.
 */
export function fieldValidationError(gvk: GroupVersionKind, issues: FieldIssue[], mode: FieldValidation): ApiError | undefined {
  const prefix = `${gvk.kind} in version "${gvk.version}" cannot be handled as a ${gvk.kind}`;
  const typed = issues.find((i) => i.kind === 'type');
  if (typed) return errors.badRequest(`${prefix}: ${typed.message}`);
  if (mode !== 'Strict' || issues.length === 0) return undefined;
  return errors.badRequest(`${prefix}: strict decoding error: ${issues.map((i) => i.message).join(', ')}`);
}
