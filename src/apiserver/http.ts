import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { ApiError, errors } from '../api/errors.js';
import { findDuplicateFields, findDuplicateYamlFields } from '../api/openapi/validate.js';
import { decodeKubernetesProtobuf, isProtobufContentType } from '../api/protobuf/index.js';

/** kube-apiserver's limit on a request body. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) {
    req.resume();
    throw errors.tooLarge('the request body is too large: limit is 3MiB');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      req.resume();
      throw errors.tooLarge('the request body is too large: limit is 3MiB');
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export interface DecodedBody {
  value: unknown;
  /** Paths of keys that appeared twice in the raw body. */
  duplicates: string[];
}

/** Parses a JSON or YAML body according to its content type, noting duplicate keys. */
export function decodeBody(raw: Buffer, contentType: string | undefined): DecodedBody {
  const media = (contentType ?? 'application/json').split(';')[0]!.trim().toLowerCase();
  // kubectl's typed clients send built-in kinds as protobuf and do not fall back to JSON.
  if (isProtobufContentType(media)) return { value: decodeKubernetesProtobuf(raw), duplicates: [] };
  const text = raw.toString('utf8');
  if (text.trim() === '') throw errors.badRequest('the request body is empty');
  if (media === 'application/yaml' || media === 'application/apply-patch+yaml' || media === 'text/yaml') {
    return decodeYaml(text);
  }
  if (media.endsWith('json') || media === '*/*' || media === '') {
    try {
      return { value: JSON.parse(text), duplicates: findDuplicateFields(text) };
    } catch (err) {
      throw errors.badRequest(`the request body is not valid JSON: ${(err as Error).message}`);
    }
  }
  throw errors.unsupportedMediaType(`the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf`);
}

function decodeYaml(text: string): DecodedBody {
  // JSON is YAML; a JSON body (kubectl's server-side apply sends one) keeps JSON's duplicate check.
  if (text.trimStart().startsWith('{')) {
    try {
      return { value: JSON.parse(text), duplicates: findDuplicateFields(text) };
    } catch {
      // not strict JSON: parse it as YAML below
    }
  }
  try {
    return { value: parseYaml(text, { uniqueKeys: false, maxAliasCount: 100 }), duplicates: findDuplicateYamlFields(text) };
  } catch (err) {
    throw errors.badRequest(`the request body is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
}

export function sendJson(res: ServerResponse, code: number, body: unknown, warnings: string[] = []): void {
  const json = JSON.stringify(body);
  const headers: Record<string, string | string[]> = {
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(json)),
    'Cache-Control': 'no-cache, private',
  };
  if (warnings.length) headers['Warning'] = warnings.map(warningHeader);
  res.writeHead(code, headers);
  res.end(json);
}

export function sendRaw(res: ServerResponse, code: number, contentType: string, json: string): void {
  res.writeHead(code, { 'Content-Type': contentType, 'Content-Length': String(Buffer.byteLength(json)), 'Cache-Control': 'no-cache, private' });
  res.end(json);
}

export function sendError(res: ServerResponse, err: unknown): void {
  const apiErr = err instanceof ApiError ? err : errors.internal(err instanceof Error ? err.message : String(err));
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, apiErr.code, apiErr.toStatus());
}

/** RFC 7234 warning header with code 299, as kube-apiserver sends. */
function warningHeader(text: string): string {
  return `299 - ${JSON.stringify(text.replace(/[\r\n]/g, ' '))}`;
}

/** What an Accept header asks for, in the forms Kubernetes clients send. */
export interface Accept {
  table: boolean;
  partialMetadata: boolean;
  aggregatedDiscovery: boolean;
  /** At least one acceptable JSON form was offered. */
  json: boolean;
}

export function parseAccept(header: string | undefined): Accept {
  const result: Accept = { table: false, partialMetadata: false, aggregatedDiscovery: false, json: !header };
  if (!header) return result;
  for (const part of header.split(',')) {
    const [mediaRaw, ...paramsRaw] = part.split(';');
    const media = mediaRaw!.trim().toLowerCase();
    const params = new Map(paramsRaw.map((p) => p.split('=').map((s) => s.trim()) as [string, string]));
    if (media !== 'application/json' && media !== '*/*' && media !== 'application/*' && media !== 'application/yaml') continue;
    const as = params.get('as');
    const g = params.get('g');
    if (!as) {
      result.json = true;
    } else if (as === 'Table' && g === 'meta.k8s.io') {
      result.table ||= !result.partialMetadata && !result.aggregatedDiscovery;
    } else if ((as === 'PartialObjectMetadata' || as === 'PartialObjectMetadataList') && g === 'meta.k8s.io') {
      result.partialMetadata ||= !result.table;
    } else if (as === 'APIGroupDiscoveryList' && g === 'apidiscovery.k8s.io' && params.get('v') === 'v2') {
      result.aggregatedDiscovery = true;
    }
  }
  return result;
}
