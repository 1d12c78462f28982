import https from 'node:https';
import { errors } from '../api/errors.js';
import { builtinSchemas, resolver, schemaFor } from '../api/openapi/generate.js';
import { applyPatch, patchTypeFromContentType } from '../api/patch/index.js';
import { BUILTIN_RESOURCES } from '../api/resources.js';
import type { KubeObject } from '../api/types.js';
import type { RequestInfo } from '../apiserver/request-info.js';
import type { EdgeCache, QueuedWrite } from './cache.js';

/**
 * The writes a node keeps making while offline, and only those: its Lease renewals, its Node status
 * and its pods' status. Each is answered locally with the cached object changed as the API server
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

export type ReplayResult = 'applied' | 'resolved_conflict' | 'dropped_gone' | 'rejected';

/** Which part of the object a write may change: `status` for status subresources, `spec` for Leases. */
export function ownedPart(info: RequestInfo): 'status' | 'spec' | undefined {
  if (info.verb !== 'update' && info.verb !== 'patch') return undefined;
  if (!info.name) return undefined;
  if (info.subresource === 'status' && info.apiGroup === '' && (info.resource === 'pods' || info.resource === 'nodes')) return 'status';
  if (info.subresource === '' && info.apiGroup === 'coordination.k8s.io' && info.resource === 'leases') return 'spec';
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
