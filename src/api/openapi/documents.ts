import { createHash } from 'node:crypto';

import type { ResourceDef, Subresource } from '../resources.js';
import type { GroupVersionKind } from '../types.js';
import { builtinSchemas, DELETE_OPTIONS, LIST_META, OBJECT_META, PATCH, ref, refName, STATUS, WATCH_EVENT } from './generate.js';
import type { Schema } from './schema.js';

/*
 * The /openapi/v3 documents: an index naming one document per group-version, and each document with
 * kube's paths (so kubectl finds a `patch` operation carrying the kind's GVK and a `fieldValidation`
 * parameter, and then validates server-side) and every component schema those paths reach (so
 * `kubectl explain` can walk the kind's fields and descriptions).
 *
 * Custom resources take part through `extra`: the caller passes their components, built with
 * `customResourceSchemas`, keyed by each ResourceDef's schemaName.
 */

const KUBE_VERSION = 'v1.32.0';
const MAX_CACHED_DOCUMENTS = 128;

/** "api/v1" for the core group, "apis/<group>/<version>" otherwise: the key in the index. */
export function groupVersionPath(def: Pick<ResourceDef, 'group' | 'version'>): string {
  return def.group === '' ? `api/${def.version}` : `apis/${def.group}/${def.version}`;
}

// ---- parameters ---------------------------------------------------------------------------------

interface Parameter {
  name: string;
  in: 'query' | 'path';
  description: string;
  required?: boolean;
  schema: { type: string; uniqueItems: true };
}

function query(name: string, type: string, description: string): Parameter {
  return { name, in: 'query', description, schema: { type, uniqueItems: true } };
}

function pathParam(name: string, description: string): Parameter {
  return { name, in: 'path', description, required: true, schema: { type: 'string', uniqueItems: true } };
}

const P = {
  pretty: query('pretty', 'string', "If 'true', then the output is pretty printed."),
  dryRun: query('dryRun', 'string',
    'When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed'),
  fieldManager: query('fieldManager', 'string',
    'fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint. This field is required for apply requests (application/apply-patch) but optional for non-apply patch types (JsonPatch, MergePatch, StrategicMergePatch).'),
  fieldValidation: query('fieldValidation', 'string',
    'fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.'),
  force: query('force', 'boolean',
    'Force is going to "force" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.'),
  gracePeriodSeconds: query('gracePeriodSeconds', 'integer',
    'The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately.'),
  orphanDependents: query('orphanDependents', 'boolean',
    'Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the "orphan" finalizer will be added to/removed from the object\'s finalizers list. Either this field or PropagationPolicy may be set, but not both.'),
  propagationPolicy: query('propagationPolicy', 'string',
    "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground."),
  allowWatchBookmarks: query('allowWatchBookmarks', 'boolean', 'allowWatchBookmarks requests watch events with type "BOOKMARK".'),
  continue: query('continue', 'string', 'The continue option should be set when retrieving more results from the server.'),
  fieldSelector: query('fieldSelector', 'string', 'A selector to restrict the list of returned objects by their fields. Defaults to everything.'),
  labelSelector: query('labelSelector', 'string', 'A selector to restrict the list of returned objects by their labels. Defaults to everything.'),
  limit: query('limit', 'integer', 'limit is a maximum number of responses to return for a list call.'),
  resourceVersion: query('resourceVersion', 'string',
    'resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset'),
  resourceVersionMatch: query('resourceVersionMatch', 'string', 'resourceVersionMatch determines how resourceVersion is applied to list calls.'),
  sendInitialEvents: query('sendInitialEvents', 'boolean', '`sendInitialEvents=true` may be set together with `watch=true`.'),
  timeoutSeconds: query('timeoutSeconds', 'integer', 'Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity.'),
  watch: query('watch', 'boolean', 'Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion.'),
  namespace: pathParam('namespace', 'object name and auth scope, such as for teams and projects'),
};

const LIST_PARAMS = [P.allowWatchBookmarks, P.continue, P.fieldSelector, P.labelSelector, P.limit, P.resourceVersion,
  P.resourceVersionMatch, P.sendInitialEvents, P.timeoutSeconds, P.watch];
const WRITE_PARAMS = [P.dryRun, P.fieldManager, P.fieldValidation];
const DELETE_PARAMS = [P.dryRun, P.gracePeriodSeconds, P.orphanDependents, P.propagationPolicy];

// ---- operations ---------------------------------------------------------------------------------

type Action = 'get' | 'list' | 'post' | 'put' | 'patch' | 'delete' | 'deletecollection' | 'connect';

interface Operation {
  description: string;
  operationId: string;
  tags: string[];
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema: Schema }>; required: true };
  responses: Record<string, { description: string; content?: Record<string, { schema: Schema }> }>;
  'x-kubernetes-action': Action;
  'x-kubernetes-group-version-kind': GroupVersionKind;
}

type PathItem = Partial<Record<'get' | 'put' | 'post' | 'delete' | 'patch' | 'head' | 'options', Operation>> & {
  parameters?: Parameter[];
};

const PATCH_TYPES = ['application/apply-patch+yaml', 'application/json-patch+json', 'application/merge-patch+json',
  'application/strategic-merge-patch+json'];

function content(schema: Schema, types = ['application/json', 'application/yaml']): Record<string, { schema: Schema }> {
  return Object.fromEntries(types.map((t) => [t, { schema }]));
}

function responses(schema: Schema, codes: [string, string][]): Operation['responses'] {
  const out: Operation['responses'] = {};
  for (const [code, description] of codes) out[code] = { description, content: content(schema) };
  out['401'] = { description: 'Unauthorized' };
  return out;
}

const OK: [string, string] = ['200', 'OK'];
const CREATED: [string, string] = ['201', 'Created'];
const ACCEPTED: [string, string] = ['202', 'Accepted'];

function words(text: string): string {
  return text.split(/[.\-]/).filter(Boolean).map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
}

/** kube's operationId stem: ("apps", "v1") → "AppsV1", ("", "v1") → "CoreV1". */
function operationStem(def: ResourceDef): string {
  return `${def.group === '' ? 'Core' : words(def.group.replace(/\.k8s\.io$/, ''))}${words(def.version)}`;
}

function tag(def: ResourceDef): string {
  const g = def.group === '' ? 'core' : def.group.replace(/\.k8s\.io$/, '').replace(/\./g, '_');
  return `${g}_${def.version}`;
}

function gvkOf(def: ResourceDef, kind = def.kind): GroupVersionKind {
  return { group: def.group, version: def.version, kind };
}

interface OperationSpec {
  action: Action;
  verb: string;
  description: string;
  gvk: GroupVersionKind;
  parameters?: Parameter[];
  body?: Schema;
  bodyTypes?: string[];
  response?: Schema;
  codes?: [string, string][];
  responseTypes?: string[];
}

function operation(def: ResourceDef, suffix: string, spec: OperationSpec): Operation {
  const op: Operation = {
    description: spec.description,
    operationId: `${spec.verb}${operationStem(def)}${def.namespaced && !suffix.startsWith('!') ? 'Namespaced' : ''}${suffix.replace(/^!/, '')}`,
    tags: [tag(def)],
    responses: {},
    'x-kubernetes-action': spec.action,
    'x-kubernetes-group-version-kind': spec.gvk,
  };
  if (spec.parameters?.length) op.parameters = spec.parameters;
  if (spec.body) op.requestBody = { content: content(spec.body, spec.bodyTypes ?? ['application/json']), required: true };
  if (spec.response && spec.responseTypes) {
    op.responses = { '200': { description: 'OK', content: content(spec.response, spec.responseTypes) }, '401': { description: 'Unauthorized' } };
  } else if (spec.response) {
    op.responses = responses(spec.response, spec.codes ?? [OK]);
  } else {
    op.responses = { '200': { description: 'OK', content: content({ type: 'string' }, ['*/*']) }, '401': { description: 'Unauthorized' } };
  }
  return op;
}

function readWriteOps(def: ResourceDef, suffix: string, schema: Schema, gvk: GroupVersionKind, what: string, verbs: Set<string>): PathItem {
  const item: PathItem = {};
  if (verbs.has('get')) item.get = operation(def, suffix, { action: 'get', verb: 'read', description: `read ${what}`, gvk, response: schema });
  if (verbs.has('update')) {
    item.put = operation(def, suffix, {
      action: 'put', verb: 'replace', description: `replace ${what}`, gvk, parameters: WRITE_PARAMS, body: schema, response: schema, codes: [OK, CREATED],
    });
  }
  if (verbs.has('patch')) {
    item.patch = operation(def, suffix, {
      action: 'patch', verb: 'patch', description: `partially update ${what}`, gvk, parameters: [...WRITE_PARAMS, P.force],
      body: ref(PATCH), bodyTypes: PATCH_TYPES, response: schema, codes: [OK, CREATED],
    });
  }
  return item;
}

const CONNECT_PARAMS: Partial<Record<Subresource, Parameter[]>> = {
  exec: ['command', 'container', 'stderr', 'stdin', 'stdout', 'tty'].map((n) =>
    query(n, n === 'command' || n === 'container' ? 'string' : 'boolean', `${n} of the exec request`)),
  attach: ['container', 'stderr', 'stdin', 'stdout', 'tty'].map((n) => query(n, n === 'container' ? 'string' : 'boolean', `${n} of the attach request`)),
  portforward: [query('ports', 'integer', 'List of ports to forward. Required when using WebSockets')],
};

const CONNECT_KINDS: Partial<Record<Subresource, string>> = {
  exec: 'PodExecOptions', attach: 'PodAttachOptions', portforward: 'PodPortForwardOptions',
};

const LOG_PARAMS = [
  query('container', 'string', 'The container for which to stream logs. Defaults to only container if there is one container in the pod.'),
  query('follow', 'boolean', 'Follow the log stream of the pod. Defaults to false.'),
  query('insecureSkipTLSVerifyBackend', 'boolean', 'insecureSkipTLSVerifyBackend indicates that the apiserver should not confirm the validity of the serving certificate of the backend it is connecting to.'),
  query('limitBytes', 'integer', 'If set, the number of bytes to read from the server before terminating the log output.'),
  query('previous', 'boolean', 'Return previous terminated container logs. Defaults to false.'),
  query('sinceSeconds', 'integer', 'A relative time in seconds before the current time from which to show logs.'),
  query('stream', 'string', 'Specify which container log stream to return to the client. Acceptable values are "All", "Stdout" and "Stderr".'),
  query('tailLines', 'integer', 'If set, the number of lines from the end of the logs to show.'),
  query('timestamps', 'boolean', 'If true, add an RFC3339 or RFC3339Nano timestamp at the beginning of every line of log output. Defaults to false.'),
];

/** The paths kube serves for one resource, keyed by URL path. */
function resourcePaths(def: ResourceDef): Record<string, PathItem> {
  const prefix = `/${groupVersionPath(def)}`;
  const collection = def.namespaced ? `${prefix}/namespaces/{namespace}/${def.plural}` : `${prefix}/${def.plural}`;
  const item = `${collection}/{name}`;
  const scope = def.namespaced ? [P.namespace] : [];
  const named = [pathParam('name', `name of the ${def.kind}`), ...scope, P.pretty];
  const verbs = new Set(def.verbs);
  const schema = ref(def.schemaName);
  const gvk = gvkOf(def);
  const paths: Record<string, PathItem> = {};

  const coll: PathItem = { parameters: [...scope, P.pretty] };
  if (verbs.has('list')) {
    coll.get = operation(def, def.kind, {
      action: 'list', verb: 'list', description: `list or watch objects of kind ${def.kind}`, gvk, parameters: LIST_PARAMS,
      response: ref(`${def.schemaName}List`), responseTypes: ['application/json', 'application/yaml', 'application/json;stream=watch'],
    });
  }
  if (verbs.has('create')) {
    coll.post = operation(def, def.kind, {
      action: 'post', verb: 'create', description: `create ${article(def.kind)}`, gvk, parameters: WRITE_PARAMS, body: schema, response: schema,
      codes: [OK, CREATED, ACCEPTED],
    });
  }
  if (verbs.has('deletecollection')) {
    coll.delete = operation(def, `Collection${def.kind}`, {
      action: 'deletecollection', verb: 'delete', description: `delete collection of ${def.kind}`, gvk,
      parameters: [...DELETE_PARAMS, ...LIST_PARAMS.filter((p) => p !== P.watch && p !== P.allowWatchBookmarks)],
      body: ref(DELETE_OPTIONS), response: ref(STATUS),
    });
  }
  if (!verbs.has('patch')) {
    // kubectl decides whether the server validates fields by finding a patch operation for the kind
    // that takes `fieldValidation`; without one it falls back to /openapi/v2, which Atoll does not
    // serve. Create-only kinds (reviews) therefore publish one; the server answers it 405.
    coll.patch = operation(def, def.kind, {
      action: 'patch', verb: 'patch', description: `${def.kind} is not patchable; published so clients know create validates fields server-side`,
      gvk, parameters: [...WRITE_PARAMS, P.force], body: ref(PATCH), bodyTypes: PATCH_TYPES, response: schema,
    });
  }
  paths[collection] = coll;

  if (def.namespaced && verbs.has('list')) {
    paths[`${prefix}/${def.plural}`] = {
      parameters: [P.pretty],
      get: operation(def, `!${def.kind}ForAllNamespaces`, {
        action: 'list', verb: 'list', description: `list or watch objects of kind ${def.kind}`, gvk, parameters: LIST_PARAMS,
        response: ref(`${def.schemaName}List`), responseTypes: ['application/json', 'application/yaml', 'application/json;stream=watch'],
      }),
    };
  }

  const one = readWriteOps(def, def.kind, schema, gvk, `the specified ${def.kind}`, verbs);
  if (verbs.has('delete')) {
    one.delete = operation(def, def.kind, {
      action: 'delete', verb: 'delete', description: `delete ${article(def.kind)}`, gvk, parameters: DELETE_PARAMS,
      body: ref(DELETE_OPTIONS), response: ref(STATUS), codes: [OK, ACCEPTED],
    });
  }
  if (Object.keys(one).length > 0) paths[item] = { parameters: named, ...one };

  for (const sub of def.subresources) {
    const at = `${item}/${sub}`;
    const Sub = sub[0]!.toUpperCase() + sub.slice(1);
    switch (sub) {
      case 'status':
        paths[at] = { parameters: named, ...readWriteOps(def, `${def.kind}Status`, schema, gvk, `status of the specified ${def.kind}`, new Set(['get', 'update', 'patch'])) };
        break;
      case 'approval':
        paths[at] = { parameters: named, ...readWriteOps(def, `${def.kind}Approval`, schema, gvk, `approval of the specified ${def.kind}`, new Set(['get', 'update', 'patch'])) };
        break;
      case 'scale': {
        const scale = { group: 'autoscaling', version: 'v1', kind: 'Scale' };
        paths[at] = { parameters: named, ...readWriteOps(def, `${def.kind}Scale`, ref('io.k8s.api.autoscaling.v1.Scale'), scale, `scale of the specified ${def.kind}`, new Set(['get', 'update', 'patch'])) };
        break;
      }
      case 'binding':
      case 'eviction': {
        const [gvkSub, body] = sub === 'binding'
          ? [{ group: '', version: 'v1', kind: 'Binding' }, 'io.k8s.api.core.v1.Binding']
          : [{ group: 'policy', version: 'v1', kind: 'Eviction' }, 'io.k8s.api.policy.v1.Eviction'];
        paths[at] = {
          parameters: named,
          post: operation(def, `${def.kind}${Sub}`, {
            action: 'post', verb: 'create', description: `create ${sub} of ${article(def.kind)}`, gvk: gvkSub, parameters: WRITE_PARAMS,
            body: ref(body), response: ref(body), codes: [OK, CREATED, ACCEPTED],
          }),
        };
        break;
      }
      case 'log':
        paths[at] = {
          parameters: named,
          get: operation(def, `${def.kind}Log`, { action: 'get', verb: 'read', description: `read log of the specified ${def.kind}`, gvk, parameters: LOG_PARAMS }),
        };
        break;
      case 'exec':
      case 'attach':
      case 'portforward': {
        const connectGvk = gvkOf(def, CONNECT_KINDS[sub]!);
        const params = CONNECT_PARAMS[sub]!;
        paths[at] = {
          parameters: [pathParam('name', `name of the ${CONNECT_KINDS[sub]}`), ...scope],
          get: operation(def, `Get${def.kind}${Sub}`, { action: 'connect', verb: 'connect', description: `connect GET requests to ${sub} of ${def.kind}`, gvk: connectGvk, parameters: params }),
          post: operation(def, `Post${def.kind}${Sub}`, { action: 'connect', verb: 'connect', description: `connect POST requests to ${sub} of ${def.kind}`, gvk: connectGvk, parameters: params }),
        };
        break;
      }
      case 'proxy': {
        const proxyGvk = gvkOf(def, `${def.kind}ProxyOptions`);
        const pathArg = query('path', 'string', `Path is the URL path to use for the current proxy request to ${def.kind.toLowerCase()}.`);
        for (const [url, extra] of [[at, []], [`${at}/{path}`, [pathParam('path', 'path to the resource')]]] as const) {
          const proxy: PathItem = { parameters: [pathParam('name', `name of the ${def.kind}ProxyOptions`), ...scope, ...extra, ...(extra.length ? [] : [pathArg])] };
          for (const method of ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const) {
            const M = method[0]!.toUpperCase() + method.slice(1);
            proxy[method] = operation(def, `${M}${def.kind}Proxy${extra.length ? 'WithPath' : ''}`, {
              action: 'connect', verb: 'connect', description: `connect ${method.toUpperCase()} requests to proxy of ${def.kind}`, gvk: proxyGvk,
            });
          }
          paths[url] = proxy;
        }
        break;
      }
    }
  }
  return paths;
}

function article(kind: string): string {
  return /^[AEIOU]/.test(kind) ? `an ${kind}` : `a ${kind}`;
}

// ---- custom resources ---------------------------------------------------------------------------

const API_VERSION_DOC =
  'APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources';
const KIND_DOC =
  'Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds';

/**
 * The components kube publishes for a custom resource version: the CRD's openAPIV3Schema with
 * apiVersion, kind and metadata (ObjectMeta) filled in and the GVK extension, plus its list type.
 * Without a schema the kind accepts any fields. Keys are def.schemaName and def.schemaName + "List".
 */
export function customResourceSchemas(def: ResourceDef, openAPIV3Schema?: Schema): Record<string, Schema> {
  const schema: Schema = openAPIV3Schema
    ? structuredClone(openAPIV3Schema)
    : { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
  schema.type ??= 'object';
  schema.properties = {
    ...schema.properties,
    apiVersion: { description: API_VERSION_DOC, type: 'string' },
    kind: { description: KIND_DOC, type: 'string' },
    metadata: { allOf: [ref(OBJECT_META)], description: 'Standard object\'s metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata' },
  };
  schema['x-kubernetes-group-version-kind'] = [gvkOf(def)];
  const list: Schema = {
    description: `${def.listKind} is a list of ${def.kind}`,
    type: 'object',
    properties: {
      apiVersion: { description: API_VERSION_DOC, type: 'string' },
      items: { description: `List of ${def.plural}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md`, type: 'array', items: ref(def.schemaName) },
      kind: { description: KIND_DOC, type: 'string' },
      metadata: { allOf: [ref(LIST_META)], description: 'ListMeta describes metadata that synthetic resources must have, including lists and various status objects.' },
    },
    required: ['items'],
    'x-kubernetes-group-version-kind': [gvkOf(def, def.listKind)],
  };
  return { [def.schemaName]: schema, [`${def.schemaName}List`]: list };
}

// ---- documents ----------------------------------------------------------------------------------

function collectRefs(node: unknown, components: Record<string, Schema>, into: Set<string>, fieldMap = false): void {
  if (Array.isArray(node)) {
    for (const n of node) collectRefs(n, components, into);
    return;
  }
  if (node === null || typeof node !== 'object') return;
  const name = refName(node as Schema);
  if (name !== undefined && !into.has(name) && components[name]) {
    into.add(name);
    collectRefs(components[name], components, into);
  }
  for (const [k, v] of Object.entries(node)) {
    if (v === null || typeof v !== 'object') continue;
    // Defaults, enums and examples are data, not schemas; under `properties` those are field names.
    if (!fieldMap && (k === 'default' || k === 'enum' || k === 'example')) continue;
    collectRefs(v, components, into, !fieldMap && k === 'properties');
  }
}

/**
 * A full OpenAPI 3.0 document for the resources of one group-version: their paths and every component
 * schema those reach. `extra` supplies components beyond the built-ins (custom resources) and wins
 * over a built-in of the same name.
 */
export function groupVersionDocument(defs: readonly ResourceDef[], extra: Record<string, Schema> = {}): Record<string, unknown> {
  const components = { ...builtinSchemas(), ...extra };
  const paths: Record<string, PathItem> = {};
  for (const def of defs) Object.assign(paths, resourcePaths(def));
  const sortedPaths = Object.fromEntries(Object.entries(paths).sort(([a], [b]) => a.localeCompare(b)));
  const used = new Set<string>([STATUS, DELETE_OPTIONS, WATCH_EVENT]);
  for (const name of [...used]) collectRefs(components[name], components, used);
  collectRefs(sortedPaths, components, used);
  const schemas = Object.fromEntries([...used].filter((n) => components[n]).sort().map((n) => [n, components[n]!]));
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: KUBE_VERSION },
    paths: sortedPaths,
    components: {
      schemas,
      securitySchemes: { BearerToken: { type: 'apiKey', description: 'Bearer Token authentication', name: 'authorization', in: 'header' } },
    },
    security: [{ BearerToken: [] }],
  };
}

export interface RenderedDocument {
  /** The document serialized as JSON, ready to send. */
  body: string;
  /** Upper-case hex SHA-512 of body, as kube puts in `?hash=`. */
  hash: string;
}

const rendered = new Map<string, RenderedDocument>();

/** The extra components one group-version's kinds reach, so other groups' CRDs don't change its hash. */
function extrasFor(defs: readonly ResourceDef[], extra: Record<string, Schema>): Record<string, Schema> {
  const names = new Set<string>();
  for (const def of defs) {
    for (const name of [def.schemaName, `${def.schemaName}List`]) {
      if (extra[name] && !names.has(name)) {
        names.add(name);
        collectRefs(extra[name], extra, names);
      }
    }
  }
  return Object.fromEntries([...names].map((n) => [n, extra[n]!]));
}

/**
 * groupVersionDocument serialized with its hash. Cached on the inputs, so serving the index and then
 * the document costs one build while the served resources stay the same.
 */
export function renderGroupVersion(defs: readonly ResourceDef[], extra: Record<string, Schema> = {}): RenderedDocument {
  const own = extrasFor(defs, extra);
  const key = JSON.stringify([defs, Object.keys(own).sort().map((k) => [k, own[k]])]);
  const hit = rendered.get(key);
  if (hit) return hit;
  const body = JSON.stringify(groupVersionDocument(defs, own));
  const doc = { body, hash: createHash('sha512').update(body).digest('hex').toUpperCase() };
  if (rendered.size >= MAX_CACHED_DOCUMENTS) rendered.delete(rendered.keys().next().value!);
  rendered.set(key, doc);
  return doc;
}

/** Groups served resources by their index key ("api/v1", "apis/apps/v1"). */
export function byGroupVersion(defs: readonly ResourceDef[]): Map<string, ResourceDef[]> {
  const out = new Map<string, ResourceDef[]>();
  for (const def of defs) {
    const key = groupVersionPath(def);
    out.set(key, [...(out.get(key) ?? []), def]);
  }
  return out;
}

/**
 * The /openapi/v3 index: `{paths: {"api/v1": {serverRelativeURL: "/openapi/v3/api/v1?hash=..."}, ...}}`.
 * Each hash is that of the document renderGroupVersion produces for the same inputs.
 */
export function openapiIndex(defs: readonly ResourceDef[], extra: Record<string, Schema> = {}): { paths: Record<string, { serverRelativeURL: string }> } {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const [key, group] of [...byGroupVersion(defs)].sort(([a], [b]) => a.localeCompare(b))) {
    const { hash } = renderGroupVersion(group, extra);
    paths[key] = { serverRelativeURL: `/openapi/v3/${key}?hash=${hash}` };
  }
  return { paths };
}
