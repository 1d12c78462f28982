import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import { errors } from '../api/errors.js';
import { builtinSchemas, resolver, schemaFor } from '../api/openapi/generate.js';
import { applyPatch, patchTypeFromContentType } from '../api/patch/index.js';
import { BUILTIN_RESOURCES } from '../api/resources.js';
import type { KubeObject } from '../api/types.js';
import type { RequestInfo } from '../apiserver/request-info.js';
import type { EdgeCache, QueuedWrite } from './cache.js';

/**
 * The writes a node keeps making while offline, and only those: its own Lease renewals
 * (kube-node-lease/<node>), its own Node status and the status of pods bound to it (spec.nodeName of
 * the cached pod). A write to another node's objects is refused, so a local client cannot use the
 * node's credentials offline to queue what the cloud would later apply on its behalf. Each is answered locally with the cached object changed as the API server
 * would change it (a status write touches only status, a Lease write only spec), queued in SQLite
 * together with that object, and replayed to the cloud in order once it is reachable again. Events
 * the node records are queued too, bounded, the oldest dropped and counted.
 *
 * Replay sends the original request. A resourceVersion conflict means the cloud changed the object
 * meanwhile: the replayer re-reads it and re-applies only the part the node owns (status, or the
 * Lease spec), so nothing else the cloud changed is clobbered. A write whose object is gone (404) or
 * that the cloud refuses (other 4xx) is dropped and counted; a lost link stops the replay, keeping
 * the rest of the queue for the next reconnect.
 */

/** Largest write body accepted locally; the node's status writes are far smaller. */
export const MAX_OFFLINE_WRITE_BYTES = 1 << 20;
/** Events kept while offline; older ones are dropped (and counted) beyond this. */
export const MAX_BUFFERED_EVENTS = 1_000;
/** Re-reads after conflicts before a write is given up as contended. */
const MAX_CONFLICT_RETRIES = 5;
/** How long one replayed request may wait for its answer. */
const REPLAY_REQUEST_TIMEOUT_MS = 10_000;

/** Where nodes keep their heartbeat Leases, each named after its node. */
const NODE_LEASE_NAMESPACE = 'kube-node-lease';
/** The common name kube gives a node's client certificate. */
const NODE_CN = /^system:node:(.+)$/;

export type ReplayResult = 'applied' | 'resolved_conflict' | 'dropped_gone' | 'rejected';

/** Which part of the object a write may change: `status` for status subresources, `spec` for Leases. */
export function ownedPart(info: RequestInfo): 'status' | 'spec' | undefined {
  if (info.verb !== 'update' && info.verb !== 'patch') return undefined;
  if (!info.name) return undefined;
  if (info.subresource === 'status' && info.apiGroup === '' && (info.resource === 'pods' || info.resource === 'nodes')) return 'status';
  if (info.subresource === '' && info.apiGroup === 'coordination.k8s.io' && info.resource === 'leases') return 'spec';
  return undefined;
}

/** The node a client certificate belongs to (CN `system:node:<name>`), or undefined for any other. */
export function certificateNode(certPem: string): string | undefined {
  const cert = new X509Certificate(certPem);
  for (const line of cert.subject.split('\n')) {
    const eq = line.indexOf('=');
    if (line.slice(0, eq) !== 'CN') continue;
    const m = NODE_CN.exec(line.slice(eq + 1));
    if (m) return m[1];
  }
  return undefined;
}

/**
 * Why an offline write (one `ownedPart` accepts) cannot be taken on `node`'s behalf, or undefined
 * when it can. `cached` is the object as cached, undefined when nothing is.
 */
export function offlineRefusal(info: RequestInfo, node: string | undefined, cached: KubeObject | undefined): string | undefined {
  if (node === undefined) return 'EdgeHub does not know which node it serves (no node name was given and its client certificate is not system:node:<name>)';
  if (info.resource === 'leases' && (info.namespace !== NODE_LEASE_NAMESPACE || info.name !== node)) {
    return `only this node's own Lease (${NODE_LEASE_NAMESPACE}/${node}) is renewed offline`;
  }
  if (info.resource === 'nodes' && info.name !== node) return `only this node's own status (node "${node}") is accepted offline`;
  if (!cached) return 'the object is not cached';
  if (info.resource === 'pods') {
    const bound = (cached.spec as { nodeName?: unknown } | undefined)?.nodeName;
    if (bound !== node) return `the pod is bound to ${typeof bound === 'string' && bound ? `node "${bound}"` : 'no node'}, and only pods bound to this node ("${node}") have their status accepted offline`;
  }
  return undefined;
}

/** Whether the request creates an Event (core or events.k8s.io), which is buffered while offline. */
export function isEventCreate(info: RequestInfo): boolean {
  return info.verb === 'create' && info.resource === 'events' && !info.name && (info.apiGroup === '' || info.apiGroup === 'events.k8s.io');
}

/** What a write addresses, as stored with it in the queue. */
export interface WriteTarget {
  group: string;
  version: string;
  resource: string;
  subresource: string;
}

/**
 * The object a write leaves behind, computed from `current` as the API server would: the owned part
 * taken from the new body or the patched object, everything else as it was. Throws a 400 ApiError for
 * a malformed body, 415 for an unsupported patch type.
 */
export function applyWrite(target: WriteTarget, current: KubeObject, method: string, contentType: string, body: string): KubeObject {
  const part = target.subresource === 'status' ? 'status' : 'spec';
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw errors.badRequest('the request body is not valid JSON');
  }
  let changed: KubeObject;
  if (method === 'PUT') {
    changed = parsed as KubeObject;
  } else {
    const type = patchTypeFromContentType(contentType);
    if (type === undefined || type === 'apply') throw errors.unsupportedMediaType(`edgehub: while offline only json, merge and strategic merge patches are accepted, not ${contentType}`);
    const def = BUILTIN_RESOURCES.find((d) => d.group === target.group && d.version === target.version && d.plural === target.resource);
    const schema = def ? schemaFor(def) : undefined;
    changed = applyPatch(type, structuredClone(current), parsed, schema, schema ? resolver(builtinSchemas()) : undefined) as KubeObject;
  }
  if (changed === null || typeof changed !== 'object') throw errors.badRequest('the request body must be an object');
  const result: KubeObject = structuredClone(current);
  if (changed[part] === undefined) delete result[part];
  else result[part] = changed[part];
  return result;
}

export interface ReplayTarget {
  /** Base URL of the healthy cloud endpoint. */
  upstream: string;
  agent: https.Agent;
}

/** Replays the queue in order; resolves when it is empty or the link failed. */
export async function replayQueue(cache: EdgeCache, target: ReplayTarget, onResult: (result: ReplayResult) => void, signal: AbortSignal): Promise<void> {
  for (const write of cache.queuedWrites()) {
    if (signal.aborted) return;
    const outcome = await replayOne(write, target);
    if (outcome === 'unreachable') return;
    cache.completeWrite(write, outcome.answer);
    onResult(outcome.result);
  }
}

type Outcome = { result: ReplayResult; answer?: KubeObject } | 'unreachable';

async function replayOne(write: QueuedWrite, target: ReplayTarget): Promise<Outcome> {
  let body = write.body;
  let method = write.method;
  let contentType = write.contentType;
  for (let attempt = 0; attempt <= MAX_CONFLICT_RETRIES; attempt++) {
    const answer = await send(target, method, write.path, write.userAgent, body, contentType);
    if (answer === undefined) return 'unreachable';
    if (answer.status >= 200 && answer.status < 300) {
      return { result: attempt === 0 ? 'applied' : 'resolved_conflict', answer: JSON.parse(answer.text) as KubeObject };
    }
    if (answer.status === 404) return { result: 'dropped_gone' };
    if (answer.status >= 500 || answer.status === 429) return 'unreachable';
    // A create that conflicts (an Event that already exists) has nothing to re-apply.
    if (answer.status !== 409 || method === 'POST') return { result: 'rejected' };
    // Conflict: re-read, re-apply the original write to the cloud's object, and PUT that with its
    // resourceVersion; a further conflict goes round again.
    const current = await send(target, 'GET', write.path, write.userAgent);
    if (current === undefined) return 'unreachable';
    if (current.status === 404) return { result: 'dropped_gone' };
    if (current.status !== 200) return 'unreachable';
    let fresh: KubeObject;
    try {
      fresh = applyWrite(write, JSON.parse(current.text) as KubeObject, write.method, write.contentType, write.body);
    } catch {
      return { result: 'rejected' };
    }
    body = JSON.stringify(fresh);
    method = 'PUT';
    contentType = 'application/json';
  }
  return { result: 'rejected' };
}

function send(target: ReplayTarget, method: string, path: string, userAgent: string, body?: string, contentType?: string): Promise<{ status: number; text: string } | undefined> {
  return new Promise((resolve) => {
    const base = new URL(target.upstream);
    const headers: Record<string, string | number> = { Accept: 'application/json', 'User-Agent': userAgent };
    if (body !== undefined) {
      headers['Content-Type'] = contentType ?? 'application/json';
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    const req = https.request({ host: base.hostname, port: base.port || 443, method, path, headers, agent: target.agent, timeout: REPLAY_REQUEST_TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      res.on('error', () => resolve(undefined));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(undefined));
    req.end(body);
  });
}
