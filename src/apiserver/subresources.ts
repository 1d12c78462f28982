import { errors, successStatus } from '../api/errors.js';
import { applyPatch, patchTypeFromContentType } from '../api/patch/index.js';
import type { KubeObject } from '../api/types.js';
import { decodeBody, readBody, sendJson } from './http.js';
import { objectBody, patch, respond, writeOptions, type ResourceContext } from './resource-handler.js';
import { nowTimestamp } from './storage.js';

type SubresourceHandler = (ctx: ResourceContext) => Promise<void>;

/**
 * status and approval (get, update, patch) and finalize (update): subresources that write part of
 * the object, the part each may touch being the kind's strategy's business (strategy.ts).
 */
async function partialWrite(ctx: ResourceContext): Promise<void> {
  const { info, def, storage } = ctx;
  const sub = info.subresource;
  switch (sub === 'finalize' && info.verb !== 'update' ? '' : info.verb) {
    case 'get':
      return respond(ctx, 200, await storage.get(def, info.namespace, info.name));
    case 'update': {
      const opts = writeOptions(ctx, sub);
      const body = (await objectBody(ctx, opts)) as KubeObject;
      const r = await storage.update(def, info.namespace, info.name, body, opts);
      return respond(ctx, 200, r.object, opts.warnings);
    }
    case 'patch':
      return patch(ctx, sub);
    default:
      throw errors.methodNotAllowed('the server does not allow this method on the requested resource');
  }
}

/** autoscaling/v1 Scale of a workload, read from and written to its spec.replicas. */
function scaleOf(obj: KubeObject): KubeObject {
  const spec = obj.spec as { replicas?: number; selector?: { matchLabels?: Record<string, string> } };
  const st = (obj.status ?? {}) as { replicas?: number };
  const selector = Object.entries(spec.selector?.matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: {
      name: obj.metadata.name,
      namespace: obj.metadata.namespace,
      uid: obj.metadata.uid,
      resourceVersion: obj.metadata.resourceVersion,
      creationTimestamp: obj.metadata.creationTimestamp,
    },
    spec: { replicas: spec.replicas ?? 0 },
    status: { replicas: st.replicas ?? 0, selector },
  };
}

async function scale(ctx: ResourceContext): Promise<void> {
  const { info, def, storage } = ctx;
  const send = (obj: KubeObject, warnings: string[] = []) => sendJson(ctx.res, 200, scaleOf(obj), warnings);
  if (info.verb === 'get') return send(await storage.get(def, info.namespace, info.name));
  if (info.verb !== 'update' && info.verb !== 'patch') throw errors.methodNotAllowed('the server does not allow this method on the requested resource');
  const opts = writeOptions(ctx, 'scale');
  let replicas: unknown;
  let rv: string | undefined;
  if (info.verb === 'update') {
    const body = (await objectBody(ctx, opts)) as KubeObject;
    replicas = (body.spec as { replicas?: unknown } | undefined)?.replicas;
    rv = body.metadata?.resourceVersion;
  } else {
    // Patches apply to the Scale view: compute it, patch it, then write spec.replicas back.
    const current = await storage.get(def, info.namespace, info.name);
    const type = patchTypeFromContentType(ctx.req.headers['content-type'] ?? '');
    if (!type || type === 'apply') throw errors.unsupportedMediaType('scale accepts json, merge and strategic merge patches');
    const patchBody = decodeBody(await readBody(ctx.req), 'application/json').value;
    const patched = applyPatch(type, scaleOf(current), patchBody) as KubeObject;
    replicas = (patched.spec as { replicas?: unknown } | undefined)?.replicas;
  }
  if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
    throw errors.invalid('Scale', 'autoscaling', info.name, [{ reason: 'FieldValueInvalid', message: `Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`, field: 'spec.replicas' }]);
  }
  const r = await storage.patch(def, info.namespace, info.name, 'merge', { metadata: rv ? { resourceVersion: rv } : {}, spec: { replicas } }, opts);
  return send(r.object, opts.warnings);
}

/** POST pods/<name>/binding: what a scheduler does to place a pod. */
async function binding(ctx: ResourceContext): Promise<void> {
  const { info, def, storage } = ctx;
  if (info.verb !== 'create') throw errors.methodNotAllowed('the server does not allow this method on the requested resource');
  const opts = writeOptions(ctx, 'binding');
  const body = (await objectBody(ctx, opts)) as { target?: { name?: string; kind?: string }; metadata?: { name?: string } };
  const node = body?.target?.name;
  if (!node) throw errors.invalid('Binding', '', info.name, [{ reason: 'FieldValueRequired', message: 'Required value', field: 'target.name' }]);
  if (body.metadata?.name && body.metadata.name !== info.name) throw errors.badRequest('the name of the binding does not match the name of the pod');
  await storage.mutate(
    def,
    info.namespace,
    info.name,
    (pod) => {
      const spec = pod.spec as { nodeName?: string };
      if (pod.metadata.deletionTimestamp) throw errors.conflict({ group: '', resource: 'pods/binding', name: info.name }, `pod ${info.name} is being deleted, cannot be assigned to a host`);
      if (spec.nodeName) throw errors.conflict({ group: '', resource: 'pods/binding', name: info.name }, `pod ${info.name} is already assigned to node "${spec.nodeName}"`);
      spec.nodeName = node;
      const status = (pod.status ??= {}) as { conditions?: object[] };
      status.conditions = [
        ...(status.conditions ?? []).filter((c) => (c as { type: string }).type !== 'PodScheduled'),
        { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: nowTimestamp() },
      ];
    },
    opts,
  );
  sendJson(ctx.res, 201, successStatus(), opts.warnings);
}

/** POST pods/<name>/eviction: a delete that disruption budgets may refuse (none are served yet). */
async function eviction(ctx: ResourceContext): Promise<void> {
  const { info, def, storage } = ctx;
  if (info.verb !== 'create') throw errors.methodNotAllowed('the server does not allow this method on the requested resource');
  const opts = writeOptions(ctx, 'eviction');
  const body = (await objectBody(ctx, opts)) as { metadata?: { name?: string }; deleteOptions?: Record<string, unknown> };
  if (body?.metadata?.name && body.metadata.name !== info.name) throw errors.badRequest(`name in URL does not match name in Eviction object`);
  await storage.delete(def, info.namespace, info.name, (body?.deleteOptions ?? {}) as never, { ...opts, subresource: '' });
  sendJson(ctx.res, 201, successStatus(), opts.warnings);
}

export const subresourceHandlers: Record<string, SubresourceHandler> = {
  status: partialWrite,
  approval: partialWrite,
  finalize: partialWrite,
  scale,
  binding,
  eviction,
  // log, exec, attach, portforward and nodes' proxy reach the node: see node-proxy.ts.
};
