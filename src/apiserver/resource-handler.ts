import type { IncomingMessage, ServerResponse } from 'node:http';
import { errors } from '../api/errors.js';
import { parseFieldSelector, fieldMatcher } from '../api/fields.js';
import { parseLabelSelector, matches } from '../api/labels.js';
import { parseFieldValidation } from '../api/openapi/validate.js';
import { patchTypeFromContentType } from '../api/patch/index.js';
import { defaultManager } from '../api/apply/index.js';
import type { ResourceDef } from '../api/resources.js';
import { toTable } from '../api/table.js';
import type { KubeList, KubeObject, UserInfo } from '../api/types.js';
import { decodeBody, parseAccept, readBody, sendJson, type Accept } from './http.js';
import { parseBool, type RequestInfo } from './request-info.js';
import type { DeleteOptions, Storage, WriteOptions } from './storage.js';
import type { WatchCache } from './watch-cache.js';
import { serveWatch } from './watch.js';
import type { ResourceRegistry } from './registry.js';
import { subresourceHandlers } from './subresources.js';

export interface ResourceContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  info: RequestInfo;
  def: ResourceDef;
  user: UserInfo;
  storage: Storage;
  cache: WatchCache;
  registry: ResourceRegistry;
}

/** Serves one resource request: CRUD, list, watch and subresources of a served kind. */
export async function handleResource(ctx: ResourceContext): Promise<void> {
  const { info, def } = ctx;
  if (def.namespaced && !info.namespace && ['create', 'update', 'patch', 'delete', 'get'].includes(info.verb) && info.resource !== 'namespaces') {
    throw errors.notFound({ group: def.group, resource: def.plural, name: info.name });
  }
  if (info.subresource) {
    const handler = subresourceHandlers[info.subresource];
    if (!handler || !def.subresources.includes(info.subresource as never)) {
      throw errors.notFound({ group: def.group, resource: `${def.plural}/${info.subresource}`, name: info.name });
    }
    return handler(ctx);
  }
  switch (info.verb) {
    case 'get':
      return respond(ctx, 200, await ctx.storage.get(def, info.namespace, info.name));
    case 'list':
      return list(ctx);
    case 'watch':
      return watch(ctx);
    case 'create': {
      if (info.name) throw errors.methodNotAllowed(`the server does not allow this method on the requested resource`);
      const opts = writeOptions(ctx);
      const body = await objectBody(ctx, opts);
      const created = await ctx.storage.create(def, info.namespace, body as KubeObject, opts);
      return respond(ctx, 201, created, opts.warnings);
    }
    case 'update': {
      const opts = writeOptions(ctx);
      const body = await objectBody(ctx, opts);
      const r = await ctx.storage.update(def, info.namespace, info.name, body as KubeObject, opts);
      return respond(ctx, r.created ? 201 : 200, r.object, opts.warnings);
    }
    case 'patch':
      return patch(ctx, '');
    case 'delete': {
      const opts = writeOptions(ctx);
      const r = await ctx.storage.delete(def, info.namespace, info.name, await deleteOptions(ctx), opts);
      const accepted = !r.deleted && ctx.url.searchParams.get('orphanDependents') === 'false';
      return sendJson(ctx.res, accepted ? 202 : 200, r.body, opts.warnings);
    }
    case 'deletecollection': {
      const opts = writeOptions(ctx);
      const r = await ctx.storage.deleteCollection(def, info.namespace, selectorFilter(ctx), await deleteOptions(ctx), opts);
      return sendJson(ctx.res, 200, r, opts.warnings);
    }
    default:
      throw errors.methodNotAllowed(`the server does not allow this method on the requested resource`);
  }
}

export async function patch(ctx: ResourceContext, subresource: string): Promise<void> {
  const { info, def } = ctx;
  const type = patchTypeFromContentType(ctx.req.headers['content-type'] ?? '');
  if (!type) {
    throw errors.unsupportedMediaType(`the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json`);
  }
  const opts = writeOptions(ctx, subresource);
  const raw = await readBody(ctx.req);
  const decoded = decodeBody(raw, type === 'apply' ? 'application/apply-patch+yaml' : 'application/json');
  opts.duplicateFields = decoded.duplicates;
  const force = parseBool(ctx.url.searchParams.get('force'));
  if (type === 'apply' && !ctx.url.searchParams.get('fieldManager')) {
    throw errors.badRequest('PATCH, application/apply-patch+yaml requests must set the fieldManager parameter');
  }
  if (type !== 'apply' && force !== undefined) throw errors.badRequest('force is only allowed for apply patches');
  const r = await ctx.storage.patch(def, info.namespace, info.name, type, decoded.value, { ...opts, force: force ?? false });
  return respond(ctx, r.created ? 201 : 200, r.object, opts.warnings);
}

async function list(ctx: ResourceContext): Promise<void> {
  const q = ctx.url.searchParams;
  const limit = q.get('limit');
  if (limit !== null && !/^\d+$/.test(limit)) throw errors.badRequest(`invalid limit: ${JSON.stringify(limit)}`);
  const result = await ctx.storage.list(ctx.def, ctx.info.namespace, {
    filter: selectorFilter(ctx),
    limit: limit === null ? undefined : Number(limit),
    continueToken: q.get('continue') ?? undefined,
    resourceVersion: q.get('resourceVersion') ?? undefined,
    resourceVersionMatch: q.get('resourceVersionMatch') ?? undefined,
  });
  respondList(ctx, result);
}

async function watch(ctx: ResourceContext): Promise<void> {
  const q = ctx.url.searchParams;
  const timeout = q.get('timeoutSeconds');
  if (timeout !== null && !/^\d+$/.test(timeout)) throw errors.badRequest(`invalid timeoutSeconds: ${JSON.stringify(timeout)}`);
  const accept = acceptFor(ctx);
  await serveWatch(
    ctx.req,
    ctx.res,
    {
      def: ctx.def,
      namespace: ctx.info.namespace,
      filter: selectorFilter(ctx),
      resourceVersion: q.get('resourceVersion') ?? undefined,
      timeoutSeconds: timeout === null ? undefined : Number(timeout),
      allowBookmarks: parseBool(q.get('allowWatchBookmarks')) === true,
      render: (obj) => render(ctx, accept, obj),
      plain: !accept.table && !accept.partialMetadata,
    },
    ctx.storage,
    ctx.cache,
  );
}

function acceptFor(ctx: ResourceContext): Accept {
  const accept = parseAccept(ctx.req.headers.accept);
  if (!accept.json && !accept.table && !accept.partialMetadata) {
    throw errors.notAcceptable('only the following media types are accepted: application/json, application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io');
  }
  return accept;
}

function render(ctx: ResourceContext, accept: Accept, obj: KubeObject): unknown {
  if (accept.table) return toTable(ctx.def, [obj], tableOptions(ctx));
  if (accept.partialMetadata) return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: obj.metadata };
  return obj;
}

function tableOptions(ctx: ResourceContext, list?: KubeList) {
  const include = ctx.url.searchParams.get('includeObject');
  if (include !== null && !['None', 'Metadata', 'Object'].includes(include)) {
    throw errors.badRequest(`includeObject must be one of None, Metadata, Object`);
  }
  return {
    includeObject: (include ?? 'Metadata') as 'None' | 'Metadata' | 'Object',
    resourceVersion: list?.metadata.resourceVersion,
    continue: list?.metadata.continue,
    crdColumns: ctx.registry.printerColumns(ctx.def),
  };
}

export function respond(ctx: ResourceContext, code: number, obj: KubeObject, warnings: string[] = []): void {
  const accept = acceptFor(ctx);
  sendJson(ctx.res, code, render(ctx, accept, obj), warnings);
}

export function respondList(ctx: ResourceContext, list: KubeList): void {
  const accept = acceptFor(ctx);
  if (accept.table) return sendJson(ctx.res, 200, toTable(ctx.def, list.items, tableOptions(ctx, list)));
  if (accept.partialMetadata) {
    return sendJson(ctx.res, 200, {
      kind: 'PartialObjectMetadataList',
      apiVersion: 'meta.k8s.io/v1',
      metadata: list.metadata,
      items: list.items.map((o) => ({ kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata })),
    });
  }
  sendJson(ctx.res, 200, list);
}

/** Label and field selectors of the request, compiled once into one predicate. */
export function selectorFilter(ctx: ResourceContext): ((obj: KubeObject) => boolean) | undefined {
  const q = ctx.url.searchParams;
  const tests: ((obj: KubeObject) => boolean)[] = [];
  const ls = q.get('labelSelector');
  if (ls) {
    const selector = parseLabelSelector(ls);
    tests.push((o) => matches(selector, o.metadata.labels));
  }
  const fs = q.get('fieldSelector');
  if (fs) {
    const match = fieldMatcher(ctx.def, parseFieldSelector(fs));
    tests.push((o) => match(o));
  }
  if (tests.length === 0) return undefined;
  if (tests.length === 1) return tests[0];
  return (o) => tests.every((t) => t(o));
}

export function writeOptions(ctx: ResourceContext, subresource = ''): WriteOptions {
  const q = ctx.url.searchParams;
  const dryRun = q.getAll('dryRun');
  for (const d of dryRun) if (d !== 'All') throw errors.badRequest(`Invalid dry run value: ${JSON.stringify(d)}: supported values: "All"`);
  const manager = q.get('fieldManager');
  if (manager !== null && (manager.length > 128 || /[^\x20-\x7e]/.test(manager))) {
    throw errors.badRequest('fieldManager: Invalid value: must be at most 128 printable characters');
  }
  return {
    user: ctx.user,
    fieldManager: manager ?? defaultManager(ctx.req.headers['user-agent']),
    dryRun: dryRun.length > 0,
    fieldValidation: parseFieldValidation(q.get('fieldValidation') ?? undefined),
    warnings: [],
    subresource,
  };
}

/** Reads a create/update body: JSON or YAML, duplicate keys handled per fieldValidation. */
export async function objectBody(ctx: ResourceContext, opts: WriteOptions): Promise<unknown> {
  const decoded = decodeBody(await readBody(ctx.req), ctx.req.headers['content-type']);
  opts.duplicateFields = decoded.duplicates;
  return decoded.value;
}

async function deleteOptions(ctx: ResourceContext): Promise<DeleteOptions> {
  const q = ctx.url.searchParams;
  let options: DeleteOptions = {};
  const raw = await readBody(ctx.req);
  if (raw.length && raw.toString().trim()) {
    const body = decodeBody(raw, ctx.req.headers['content-type']).value;
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw errors.badRequest('DeleteOptions must be an object');
    options = body as DeleteOptions;
  }
  const grace = q.get('gracePeriodSeconds');
  if (grace !== null) {
    if (!/^-?\d+$/.test(grace)) throw errors.badRequest(`invalid gracePeriodSeconds: ${JSON.stringify(grace)}`);
    options.gracePeriodSeconds = Number(grace);
  }
  const policy = q.get('propagationPolicy');
  if (policy !== null) options.propagationPolicy = policy as DeleteOptions['propagationPolicy'];
  const orphan = parseBool(q.get('orphanDependents'));
  if (orphan !== undefined) options.orphanDependents = orphan;
  if (options.propagationPolicy !== undefined && !['Orphan', 'Background', 'Foreground'].includes(options.propagationPolicy)) {
    throw errors.invalid('DeleteOptions', '', '', [{ reason: 'FieldValueNotSupported', message: `Unsupported value: "${options.propagationPolicy}": supported values: "Foreground", "Background", "Orphan"`, field: 'propagationPolicy' }]);
  }
  if (options.propagationPolicy !== undefined && options.orphanDependents !== undefined) {
    throw errors.invalid('DeleteOptions', '', '', [{ reason: 'FieldValueInvalid', message: 'Invalid value: "null": orphanDependents and deletionPropagation cannot be both set', field: 'propagationPolicy' }]);
  }
  if (options.gracePeriodSeconds !== undefined && (typeof options.gracePeriodSeconds !== 'number' || options.gracePeriodSeconds < 0)) {
    options.gracePeriodSeconds = 1;
  }
  return options;
}
