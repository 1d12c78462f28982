import { chmod, mkdir, rm } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { dirname } from 'node:path';
import type { ContainerStats } from './handler.js';
import { ImageError } from './images/errors.js';
import { importArchive } from './images/import.js';
import type { Image, ImageStore } from './images/store.js';
import type { InterfaceStats } from './network/index.js';

/** Largest admin request body: a JSON object naming a file. */
const MAX_ADMIN_BODY = 64 * 1024;

export interface ImageSummary {
  id: string;
  repoTags: string[];
  size: number;
}

function summary(image: Image): ImageSummary {
  return { id: image.id, repoTags: image.repoTags, size: image.size };
}

/** Where the admin socket's stats come from: the runtime service, which asks each container's handler. */
export interface StatsSource {
  handlerStats(): Promise<{ id: string; stats: ContainerStats }[]>;
  sandboxInterfaces(): Promise<{ id: string; timestamp: number; interfaces: InterfaceStats[] }[]>;
}

/**
 * The runtime's own stats, beyond what CRI has fields for: per CRI container id the handler's cpu,
 * memory and block I/O (CRI has no block I/O), and per CRI sandbox id the pod's interface counters
 * with packets and drops (CRI has bytes and errors only). Timestamps are milliseconds since the epoch.
 */
export interface ExtendedStats {
  containers: {
    id: string;
    timestamp: number;
    cpu: { usageCoreNanoSeconds: bigint };
    memory: { usageBytes: number; workingSetBytes: number; rssBytes: number };
    blockIo?: { readBytes: number; writeBytes: number; readOps: number; writeOps: number };
  }[];
  sandboxes: { id: string; timestamp: number; interfaces: InterfaceStats[] }[];
}

/**
 * The runtime's local admin endpoint: HTTP on a root-only unix socket, for what CRI has no call for.
 * `atoll images import` goes through it so the one runtime process stays the only writer of its image
 * store.
 *
 *   POST /v1/images/import {"path": "/abs/file.tar"} -> 200 {"images": [{id, repoTags, size}]}
 *   GET  /v1/images                                 -> 200 {"images": [...]}
 *   GET  /v1/stats                                  -> 200 ExtendedStats, cpu usage as a decimal string
 *
 * Failures answer {"message"} with 400 (bad request or archive), 404 (no such file) or 500.
 */
export async function serveAdmin(socketPath: string, images: ImageStore, stats?: StatsSource): Promise<{ close(): Promise<void> }> {
  await mkdir(dirname(socketPath), { recursive: true, mode: 0o755 });
  await rm(socketPath, { force: true });
  const server: Server = createServer((req, res) => {
    const answer = (code: number, body: object) => {
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    handle(req, images, stats).then(
      (body) => answer(200, body),
      (err: unknown) => {
        if (err instanceof AdminError) return answer(err.code, { message: err.message });
        if (err instanceof ImageError) return answer(400, { message: err.message });
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'ENOENT') return answer(404, { message: e.message });
        answer(500, { message: e.message ?? String(err) });
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  await chmod(socketPath, 0o600);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).then(() => rm(socketPath, { force: true })),
  };
}

class AdminError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

async function handle(req: IncomingMessage, images: ImageStore, stats: StatsSource | undefined): Promise<object> {
  const url = new URL(req.url ?? '/', 'http://admin');
  if (req.method === 'GET' && url.pathname === '/v1/images') return { images: (await images.list()).map(summary) };
  if (req.method === 'GET' && url.pathname === '/v1/stats' && stats) return extendedStats(stats);
  if (req.method === 'POST' && url.pathname === '/v1/images/import') {
    const body = (await readJson(req)) as { path?: unknown };
    if (typeof body.path !== 'string' || !body.path.startsWith('/')) throw new AdminError(400, 'path must be an absolute file name');
    return { images: (await importArchive(images, body.path)).map(summary) };
  }
  throw new AdminError(404, `no ${req.method} ${url.pathname} here`);
}

async function extendedStats(source: StatsSource): Promise<object> {
  const [containers, sandboxes] = await Promise.all([source.handlerStats(), source.sandboxInterfaces()]);
  return {
    containers: containers.map(({ id, stats }) => ({
      id,
      timestamp: stats.timestamp,
      cpu: { usageCoreNanoSeconds: stats.cpu.usageCoreNanoSeconds.toString() },
      memory: stats.memory,
      ...(stats.blockIo ? { blockIo: stats.blockIo } : {}),
    })),
    sandboxes,
  };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ADMIN_BODY) throw new AdminError(413, 'request too large');
    chunks.push(chunk);
  }
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString());
    if (value === null || typeof value !== 'object') throw new Error('not an object');
    return value;
  } catch (err) {
    throw new AdminError(400, `body is not a JSON object: ${(err as Error).message}`);
  }
}

/** Client side, for the CLI and the agent: one request to the admin socket, answered as parsed JSON or thrown. */
export function adminRequest<T>(socketPath: string, method: 'GET' | 'POST', path: string, body?: object, options: { timeoutMs?: number } = {}): Promise<T> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ socketPath, method, path, headers: data ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let parsed: T & { message?: string };
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString() || '{}') as T & { message?: string };
        } catch (err) {
          return reject(new Error(`the runtime's answer to ${method} ${path} is not JSON: ${(err as Error).message}`));
        }
        if (res.statusCode === 200) resolve(parsed);
        else reject(new Error(parsed.message ?? `HTTP ${res.statusCode}`));
      });
      res.on('error', reject);
    });
    if (options.timeoutMs !== undefined) {
      req.setTimeout(options.timeoutMs, () => req.destroy(new Error(`no answer from ${socketPath} within ${options.timeoutMs} ms`)));
    }
    req.on('error', reject);
    req.end(data);
  });
}

/** GET /v1/stats, checked field by field: the agent trusts nothing read off a socket. */
export async function fetchExtendedStats(socketPath: string, timeoutMs: number): Promise<ExtendedStats> {
  return parseExtendedStats(await adminRequest<unknown>(socketPath, 'GET', '/v1/stats', undefined, { timeoutMs }));
}

const MEMORY_FIELDS = ['usageBytes', 'workingSetBytes', 'rssBytes'] as const;
const BLOCK_IO_FIELDS = ['readBytes', 'writeBytes', 'readOps', 'writeOps'] as const;
const INTERFACE_FIELDS = ['rxBytes', 'rxPackets', 'rxErrors', 'rxDropped', 'txBytes', 'txPackets', 'txErrors', 'txDropped'] as const;

export function parseExtendedStats(value: unknown): ExtendedStats {
  const body = object(value, 'stats');
  const containers = list(body.containers, 'containers').map((item, i) => {
    const at = `containers[${i}]`;
    const c = object(item, at);
    const cpu = object(c.cpu, `${at}.cpu`);
    if (typeof cpu.usageCoreNanoSeconds !== 'string' || !/^\d+$/.test(cpu.usageCoreNanoSeconds)) throw new Error(`${at}.cpu.usageCoreNanoSeconds must be a decimal string`);
    const memory = object(c.memory, `${at}.memory`);
    const out: ExtendedStats['containers'][number] = {
      id: text(c.id, `${at}.id`),
      timestamp: count(c.timestamp, `${at}.timestamp`),
      cpu: { usageCoreNanoSeconds: BigInt(cpu.usageCoreNanoSeconds) },
      memory: fields(memory, MEMORY_FIELDS, `${at}.memory`),
    };
    if (c.blockIo !== undefined) out.blockIo = fields(object(c.blockIo, `${at}.blockIo`), BLOCK_IO_FIELDS, `${at}.blockIo`);
    return out;
  });
  const sandboxes = list(body.sandboxes, 'sandboxes').map((item, i) => {
    const at = `sandboxes[${i}]`;
    const s = object(item, at);
    const interfaces = list(s.interfaces, `${at}.interfaces`).map((raw, j) => {
      const iface = object(raw, `${at}.interfaces[${j}]`);
      return { name: text(iface.name, `${at}.interfaces[${j}].name`), ...fields(iface, INTERFACE_FIELDS, `${at}.interfaces[${j}]`) };
    });
    return { id: text(s.id, `${at}.id`), timestamp: count(s.timestamp, `${at}.timestamp`), interfaces };
  });
  return { containers, sandboxes };
}

function object(value: unknown, at: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${at} must be an object`);
  return value as Record<string, unknown>;
}

function list(value: unknown, at: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${at} must be a list`);
  return value;
}

function text(value: unknown, at: string): string {
  if (typeof value !== 'string' || value === '') throw new Error(`${at} must be a non-empty string`);
  return value;
}

function count(value: unknown, at: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new Error(`${at} must be a non-negative number`);
  return value;
}

function fields<K extends string>(from: Record<string, unknown>, keys: readonly K[], at: string): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const key of keys) out[key] = count(from[key], `${at}.${key}`);
  return out;
}
