import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { BUILTIN_RESOURCES, type ResourceDef } from '../resources.js';
import type { GroupVersionKind } from '../types.js';
import { ATOMIC_STRUCTS, FIELD_TAGS, QUANTITY_FIELDS, UNTYPED_FIELDS, type FieldTags } from './go-tags.js';
import type { Schema, SchemaResolver } from './schema.js';

/*
 * Builds kube's OpenAPI v3 component schemas from the @kubernetes/client-node 1.4 models. Each model's
 * .js file carries `attributeTypeMap` (JSON names, types, formats); its .d.ts carries the descriptions and
 * marks optional fields with `?`. Only the models reachable from the served kinds are read, once per
 * process, on first use (about 60 ms), so no build step is needed. What the models lose (Go struct tags,
 * which strings are Quantities) comes from go-tags.ts.
 */

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1';
const APIEXT = 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1';
export const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';
export const INT_OR_STRING = 'io.k8s.apimachinery.pkg.util.intstr.IntOrString';
export const TIME = `${META}.Time`;
export const MICRO_TIME = `${META}.MicroTime`;
export const OBJECT_META = `${META}.ObjectMeta`;
export const LIST_META = `${META}.ListMeta`;
export const STATUS = `${META}.Status`;
export const DELETE_OPTIONS = `${META}.DeleteOptions`;
export const PATCH = `${META}.Patch`;
export const WATCH_EVENT = `${META}.WatchEvent`;

const REF_PREFIX = '#/components/schemas/';

export function ref(name: string): Schema {
  return { $ref: REF_PREFIX + name };
}

/** The component name a `$ref` points at, or undefined for anything else. */
export function refName(schema: Schema): string | undefined {
  const target: unknown = schema.$ref;
  return typeof target === 'string' && target.startsWith(REF_PREFIX) ? target.slice(REF_PREFIX.length) : undefined;
}

interface Attribute {
  name: string;
  baseName: string;
  type: string;
  format: string;
}

interface ModelDocs {
  description?: string;
  fields: Map<string, { description?: string; optional: boolean }>;
}

const modelsDir = join(dirname(createRequire(import.meta.url).resolve('@kubernetes/client-node')), 'gen', 'models');
const apisDir = join(modelsDir, '..', 'apis');

const attributeCache = new Map<string, Attribute[]>();
let modelFiles: Set<string> | undefined;

function isModel(name: string): boolean {
  modelFiles ??= new Set(readdirSync(modelsDir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3)));
  return modelFiles.has(name);
}

function attributesOf(model: string): Attribute[] {
  let attrs = attributeCache.get(model);
  if (!attrs) {
    const js = readFileSync(join(modelsDir, `${model}.js`), 'utf8');
    const start = js.indexOf('.attributeTypeMap = [');
    attrs = start < 0 ? [] : (JSON.parse(js.slice(js.indexOf('[', start), js.indexOf('];', start) + 1)) as Attribute[]);
    attributeCache.set(model, attrs);
  }
  return attrs;
}

const DOC_FIELD = /\/\*\*\n\s*\*\s?(.*)\n\s*\*\/\n\s*'([^']+)'(\?)?:/g;
const DOC_CLASS = /\/\*\*\n\*\s?(.*)\n\*\/\nexport declare class/;

function unescapeDoc(text: string): string {
  return text.replace(/\\(['"\\])/g, '$1').trim();
}

const docsCache = new Map<string, ModelDocs>();

function docsOf(model: string): ModelDocs {
  let docs = docsCache.get(model);
  if (!docs) {
    docs = readDocs(model);
    docsCache.set(model, docs);
  }
  return docs;
}

function readDocs(model: string): ModelDocs {
  const dts = readFileSync(join(modelsDir, `${model}.d.ts`), 'utf8');
  const fields = new Map<string, { description?: string; optional: boolean }>();
  for (const m of dts.matchAll(DOC_FIELD)) fields.set(m[2]!, { description: unescapeDoc(m[1]!) || undefined, optional: m[3] === '?' });
  // Fields without a comment still declare their optionality.
  for (const m of dts.matchAll(/^\s{4}'([^']+)'(\?)?:/gm)) {
    if (!fields.has(m[1]!)) fields.set(m[1]!, { optional: m[2] === '?' });
  }
  const cls = DOC_CLASS.exec(dts);
  return { description: cls ? unescapeDoc(cls[1]!) : undefined, fields };
}

/** Model names an attribute type mentions: "Array<V1Container>" → ["V1Container"]. */
function modelsIn(type: string): string[] {
  return [...type.matchAll(/\b([A-Z][A-Za-z0-9]*V\d+(?:alpha\d+|beta\d+)?[A-Z][A-Za-z0-9]*|V\d+(?:alpha\d+|beta\d+)?[A-Z][A-Za-z0-9]*)\b/g)].map((m) => m[1]!);
}

// ---- naming: client-node model → kube component -------------------------------------------------

const MODEL_NAME = /^([A-Z][a-z]+)?(V\d+(?:alpha\d+|beta\d+)?)([A-Z][A-Za-z0-9]*)$/;

const PACKAGE_ROOTS: Record<string, string> = {
  core: 'io.k8s.api.core',
  rbac: 'io.k8s.api.rbac',
  rbacauthorization: 'io.k8s.api.rbac',
  flowcontrol: 'io.k8s.api.flowcontrol',
  flowcontrolapiserver: 'io.k8s.api.flowcontrol',
  internalapiserver: 'io.k8s.api.apiserverinternal',
  apiextensions: 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions',
  apiregistration: 'io.k8s.kube-aggregator.pkg.apis.apiregistration',
};

function packageRoot(word: string): string {
  const w = word.toLowerCase();
  return PACKAGE_ROOTS[w] ?? `io.k8s.api.${w}`;
}

/** Models of k8s.io/apimachinery/pkg/apis/meta/v1 (client-node names them V1<Kind>). */
const META_KINDS = new Set([
  'APIGroup', 'APIGroupList', 'APIResource', 'APIResourceList', 'APIVersions', 'Condition', 'DeleteOptions',
  'FieldSelectorRequirement', 'GroupVersionForDiscovery', 'LabelSelector', 'LabelSelectorRequirement', 'ListMeta',
  'ManagedFieldsEntry', 'ObjectMeta', 'OwnerReference', 'Preconditions', 'ServerAddressByClientCIDR', 'Status',
  'StatusCause', 'StatusDetails', 'WatchEvent',
]);

/** Subresource types the core and apps APIs use but other groups define. */
const FOREIGN_KINDS: Record<string, string> = {
  V1Scale: 'autoscaling', V1ScaleSpec: 'autoscaling', V1ScaleStatus: 'autoscaling', V1Eviction: 'policy',
};

let packageIndex: Map<string, string> | undefined;

/** The client-node API class of a group-version: ("rbac.authorization.k8s.io", "v1") → RbacAuthorizationV1Api. */
function apiClass(group: string, version: string): string {
  const words = group === '' ? ['core'] : group.replace(/\.k8s\.io$/, '').split('.');
  return `${words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('')}${version[0]!.toUpperCase()}${version.slice(1)}Api`;
}

/**
 * Which Go package each unprefixed model (V1PodSpec) lives in. client-node drops that, so it is
 * recovered from the API classes of the served group-versions: a model belongs to the package of the
 * first API (core first) whose types reach it, inheriting from the model that referenced it.
 */
function packages(): Map<string, string> {
  if (packageIndex) return packageIndex;
  const index = new Map<string, string>();
  const apis = [...new Set(['CoreV1Api', ...BUILTIN_RESOURCES.map((d) => apiClass(d.group, d.version))])];
  for (const api of apis) {
    const file = join(apisDir, `${api}.d.ts`);
    if (!existsSync(file)) continue;
    const root = packageRoot(api.slice(0, api.search(/V\d/)));
    const queue: [string, string][] = [];
    for (const m of readFileSync(file, 'utf8').matchAll(/from '\.\.\/models\/([A-Za-z0-9]+)\.js'/g)) queue.push([m[1]!, root]);
    while (queue.length > 0) {
      const [model, inherited] = queue.shift()!;
      if (index.has(model) || !MODEL_NAME.test(model) || !isModel(model)) continue;
      const own = ownPackage(model) ?? inherited;
      index.set(model, own);
      for (const a of attributesOf(model)) for (const m of modelsIn(a.type)) queue.push([m, own]);
    }
  }
  packageIndex = index;
  return index;
}

function ownPackage(model: string): string | undefined {
  const m = MODEL_NAME.exec(model)!;
  if (m[1]) return packageRoot(m[1]);
  if (m[2] === 'V1' && META_KINDS.has(m[3]!)) return 'io.k8s.apimachinery.pkg.apis.meta';
  const foreign = FOREIGN_KINDS[model];
  return foreign ? packageRoot(foreign) : undefined;
}

/** The kube OpenAPI component name of a client-node model, e.g. V1PodSpec → io.k8s.api.core.v1.PodSpec. */
export function componentName(model: string): string {
  const m = MODEL_NAME.exec(model);
  if (!m) return `io.k8s.client-node.${model}`;
  const root = ownPackage(model) ?? packages().get(model) ?? 'io.k8s.api.unknown';
  return `${root}.${m[2]!.toLowerCase()}.${m[3]}`;
}

// ---- schemas ------------------------------------------------------------------------------------

const QUANTITY_DOC =
  'Quantity is a fixed-point representation of a number. It provides convenient marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() accessors.\n\nThe serialization format is:\n\n<quantity> ::= <signedNumber><suffix>\n<suffix> ::= <binarySI> | <decimalExponent> | <decimalSI>\n<binarySI> ::= Ki | Mi | Gi | Ti | Pi | Ei\n<decimalSI> ::= m | "" | k | M | G | T | P | E\n<decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>\n\nExamples: "500m" is half a CPU; "1.5Gi" is 1536Mi.';

function fixedComponents(): Record<string, Schema> {
  const preserve = { 'x-kubernetes-preserve-unknown-fields': true } as const;
  return {
    [QUANTITY]: { description: QUANTITY_DOC, oneOf: [{ type: 'string' }, { type: 'number' }] },
    [INT_OR_STRING]: {
      description:
        'IntOrString is a type that can hold an int32 or a string.  When used in JSON or YAML marshalling and unmarshalling, it produces or consumes the inner type.  This allows you to have, for example, a JSON field that can accept a name or number.',
      format: 'int-or-string',
      oneOf: [{ type: 'integer' }, { type: 'string' }],
      'x-kubernetes-int-or-string': true,
    },
    [TIME]: {
      description:
        'Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON.  Wrappers are provided for many of the factory methods that the time package offers.',
      type: 'string',
      format: 'date-time',
    },
    [MICRO_TIME]: { description: 'MicroTime is version of Time with microsecond level precision.', type: 'string', format: 'date-time' },
    [`${META}.FieldsV1`]: {
      description:
        "FieldsV1 stores a set of fields in a data structure like a Trie, in JSON format.\n\nEach key is either a '.' representing the field itself, and will always map to an empty set, or a string representing a sub-field or item. The string will follow one of these four formats: 'f:<name>', where <name> is the name of a field in a struct, or key in a map 'v:<value>', where <value> is the exact json formatted value of a list item 'i:<index>', where <index> is position of a item in a list 'k:<keys>', where <keys> is a map of  a list item's key fields to their unique values If a key maps to an empty Fields value, the field that key represents is part of the set.\n\nThe exact format is defined in sigs.k8s.io/structured-merge-diff",
      type: 'object',
      ...preserve,
    },
    'io.k8s.apimachinery.pkg.runtime.RawExtension': {
      description: 'RawExtension is used to hold extensions in external versions. It holds a complete object, serialized as JSON.',
      type: 'object',
      ...preserve,
    },
    [PATCH]: { description: 'Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.', type: 'object' },
    [`${APIEXT}.JSON`]: {
      description: 'JSON represents any valid JSON value. These types are supported: bool, int64, float64, string, []interface{}, map[string]interface{} and nil.',
      ...preserve,
    },
    [`${APIEXT}.JSONSchemaPropsOrBool`]: {
      description: 'JSONSchemaPropsOrBool represents JSONSchemaProps or a boolean value. Defaults to true for the boolean property.',
      oneOf: [{ type: 'boolean' }, ref(`${APIEXT}.JSONSchemaProps`)],
    },
    [`${APIEXT}.JSONSchemaPropsOrArray`]: {
      description: 'JSONSchemaPropsOrArray represents a value that can either be a JSONSchemaProps or an array of JSONSchemaProps. Mainly here for serialization purposes.',
      oneOf: [ref(`${APIEXT}.JSONSchemaProps`), { type: 'array', items: ref(`${APIEXT}.JSONSchemaProps`) }],
    },
    [`${APIEXT}.CustomResourceSubresourceStatus`]: {
      description:
        'CustomResourceSubresourceStatus defines how to serve the status subresource for CustomResources. Status is represented by the `.status` JSON path inside of a CustomResource. When set, * exposes a /status subresource for the custom resource * PUT requests to the /status subresource take a custom resource object, and ignore changes to anything except the status stanza * PUT/POST/PATCH requests to the custom resource ignore changes to the status stanza',
      type: 'object',
    },
  };
}

function typeSchema(type: string, format: string, deps: string[]): Schema {
  switch (type) {
    case 'string':
      return format ? { type: 'string', format } : { type: 'string' };
    case 'number':
      if (format === 'int32' || format === 'int64') return { type: 'integer', format };
      return format ? { type: 'number', format } : { type: 'number' };
    case 'boolean':
      return { type: 'boolean' };
    case 'Date':
    case 'V1MicroTime':
      return ref(format === 'date-time-micro' ? MICRO_TIME : TIME);
    case 'IntOrString':
      return ref(INT_OR_STRING);
    case 'any':
    case 'object':
      return { 'x-kubernetes-preserve-unknown-fields': true };
  }
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return { type: 'array', items: typeSchema(array[1]!, format, deps) };
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return { type: 'object', additionalProperties: typeSchema(map[1]!, format, deps) };
  deps.push(type);
  return ref(componentName(type));
}

/** A property that is only a reference is wrapped as kube does: `{allOf: [{$ref}], description}`. */
function described(schema: Schema, description: string | undefined): Schema {
  if (description === undefined) return schema;
  if (schema.$ref) return { allOf: [schema], description };
  return { description, ...schema };
}

function applyTags(schema: Schema, tags: FieldTags): void {
  if (tags.mergeKey) schema['x-kubernetes-patch-merge-key'] = tags.mergeKey;
  if (tags.strategy) schema['x-kubernetes-patch-strategy'] = tags.strategy;
  if (tags.listType) schema['x-kubernetes-list-type'] = tags.listType;
  if (tags.listType === 'map' && tags.mapKeys?.length) schema['x-kubernetes-list-map-keys'] = tags.mapKeys;
  if (tags.mapType) schema['x-kubernetes-map-type'] = tags.mapType;
}

function propertySchema(model: string, attr: Attribute, fieldDoc: string | undefined, deps: string[]): Schema {
  // client-node drops the field description of every field whose type is another model; the
  // referenced type's own description stands in.
  const referenced = modelsIn(attr.type).find(isModel);
  const description = fieldDoc ?? (referenced ? docsOf(referenced).description : undefined);
  const key = `${model}.${attr.baseName}`;
  const untyped = UNTYPED_FIELDS.get(key);
  if (untyped) return described(ref(untyped), description);
  const quantity = QUANTITY_FIELDS.get(key);
  if (quantity === 'scalar') return described(ref(QUANTITY), description);
  if (quantity === 'map') return described({ type: 'object', additionalProperties: ref(QUANTITY) }, description);

  const schema = described(typeSchema(attr.type, attr.format, deps), description);
  const tags = FIELD_TAGS.get(key);
  if (tags) applyTags(schema, tags);
  else if (attr.baseName === 'conditions' && schema.type === 'array') {
    // Every condition list is keyed by type (patchMergeKey=type, listType=map).
    const item = /^Array<(.+)>$/.exec(attr.type)?.[1];
    if (item && attributesOf(item).some((a) => a.baseName === 'type')) applyTags(schema, { mergeKey: 'type', strategy: 'merge', listType: 'map', mapKeys: ['type'] });
  }
  return schema;
}

function modelSchema(model: string, deps: string[]): Schema {
  const docs = docsOf(model);
  const properties: Record<string, Schema> = {};
  const required: string[] = [];
  for (const attr of attributesOf(model)) {
    const field = docs.fields.get(attr.name);
    properties[attr.baseName] = propertySchema(model, attr, field?.description, deps);
    if (field && !field.optional) required.push(attr.baseName);
  }
  const schema: Schema = {};
  if (docs.description) schema.description = docs.description;
  schema.type = 'object';
  schema.properties = properties;
  if (required.length > 0) schema.required = required;
  if (ATOMIC_STRUCTS.has(model)) schema['x-kubernetes-map-type'] = 'atomic';
  return schema;
}

/**
 * Component schemas for the given client-node models and everything they reference, plus kube's
 * scalar components (Quantity, IntOrString, Time, ...). `gvks` adds `x-kubernetes-group-version-kind`.
 */
export function generateSchemas(models: string[], gvks: Map<string, GroupVersionKind[]> = new Map()): Record<string, Schema> {
  const out: Record<string, Schema> = {};
  const seen = new Set<string>();
  const queue = [...models];
  while (queue.length > 0) {
    const model = queue.shift()!;
    if (seen.has(model)) continue;
    seen.add(model);
    const deps: string[] = [];
    const schema = modelSchema(model, deps);
    const gvk = gvks.get(model);
    if (gvk) schema['x-kubernetes-group-version-kind'] = gvk;
    out[componentName(model)] = schema;
    queue.push(...deps);
  }
  const fixed = fixedComponents();
  for (const [name, schema] of Object.entries(fixed)) out[name] ??= schema;
  return out;
}

/** Models every group-version document needs besides its own kinds. */
const COMMON_MODELS = ['V1Status', 'V1DeleteOptions', 'V1WatchEvent', 'V1APIResourceList'];

/** Subresource request/response kinds, with the GVK kube publishes for them. */
const SUBRESOURCE_MODELS: Record<string, [string, GroupVersionKind]> = {
  scale: ['V1Scale', { group: 'autoscaling', version: 'v1', kind: 'Scale' }],
  eviction: ['V1Eviction', { group: 'policy', version: 'v1', kind: 'Eviction' }],
  binding: ['V1Binding', { group: '', version: 'v1', kind: 'Binding' }],
};

let builtins: Record<string, Schema> | undefined;

/** Every built-in kind's schema (and list, subresource and meta schemas), keyed by component name. */
export function builtinSchemas(): Record<string, Schema> {
  if (builtins) return builtins;
  const gvks = new Map<string, GroupVersionKind[]>();
  const add = (model: string, gvk: GroupVersionKind) => gvks.set(model, [...(gvks.get(model) ?? []), gvk]);
  const models: string[] = [];
  const groupVersions = new Map<string, { group: string; version: string }>();
  for (const def of BUILTIN_RESOURCES) {
    if (!def.model) continue;
    models.push(def.model);
    add(def.model, { group: def.group, version: def.version, kind: def.kind });
    if (isModel(`${def.model}List`)) {
      models.push(`${def.model}List`);
      add(`${def.model}List`, { group: def.group, version: def.version, kind: def.listKind });
    }
    groupVersions.set(`${def.group}/${def.version}`, { group: def.group, version: def.version });
    for (const sub of def.subresources) {
      const extra = SUBRESOURCE_MODELS[sub];
      if (extra && !gvks.has(extra[0])) {
        models.push(extra[0]);
        add(extra[0], extra[1]);
      }
    }
  }
  add('V1Status', { group: '', version: 'v1', kind: 'Status' });
  for (const gv of groupVersions.values()) {
    add('V1DeleteOptions', { ...gv, kind: 'DeleteOptions' });
    add('V1WatchEvent', { ...gv, kind: 'WatchEvent' });
  }
  const schemas = generateSchemas([...models, ...COMMON_MODELS], gvks);
  for (const def of BUILTIN_RESOURCES) {
    if (def.model && !schemas[def.schemaName]) {
      throw new Error(`OpenAPI: model ${def.model} generated as ${componentName(def.model)}, not ${def.schemaName}`);
    }
  }
  builtins = schemas;
  return schemas;
}

/** The schema of a served kind, or undefined for custom resources (their schema comes from the CRD). */
export function schemaFor(def: ResourceDef): Schema | undefined {
  if (def.custom) return undefined;
  return builtinSchemas()[def.schemaName];
}

/**
 * Follows `$ref` and the described-reference wrapper `{allOf: [{$ref}], description}` to the named
 * component. Unknown references resolve to a schema that accepts anything.
 */
export function resolver(components: Record<string, Schema>): SchemaResolver {
  const unknown: Schema = { 'x-kubernetes-preserve-unknown-fields': true };
  return (schema: Schema): Schema => {
    let cur = schema;
    for (let hops = 0; hops < 32; hops++) {
      const target = refName(cur) ?? (cur.allOf?.length === 1 && !cur.properties && !cur.type ? refName(cur.allOf[0]!) : undefined);
      if (target === undefined) return cur;
      const next = components[target];
      if (!next) return unknown;
      cur = next;
    }
    return cur;
  };
}
