import { chmod, mkdir, rm } from 'node:fs/promises';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { dirname } from 'node:path';
import { ImageError } from './images/errors.js';
import { importArchive } from './images/import.js';
import type { Image, ImageStore } from './images/store.js';

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

/**
 * The runtime's local admin endpoint: HTTP on a root-only unix socket, for what CRI has no call for.
 * `atoll images import` goes through it so the one runtime process stays the only writer of its image
 * store.
 *
 *   POST /v1/images/import {"path": "/abs/file.tar"} -> 200 {"images": [{id, repoTags, size}]}
 *   GET  /v1/images                                 -> 200 {"images": [...]}
 *
 * Failures answer {"message"} with 400 (bad request or archive), 404 (no such file) or 500.
 */
export async function serveAdmin(socketPath: string, images: ImageStore): Promise<{ close(): Promise<void> }> {
  await mkdir(dirname(socketPath), { recursive: true, mode: 0o755 });
  await rm(socketPath, { force: true });
  const server: Server = createServer((req, res) => {
    const answer = (code: number, body: object) => {
      res.writeHead(code, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    handle(req, images).then(
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

async function handle(req: IncomingMessage, images: ImageStore): Promise<object> {
  const url = new URL(req.url ?? '/', 'http://admin');
  if (req.method === 'GET' && url.pathname === '/v1/images') return { images: (await images.list()).map(summary) };
  if (req.method === 'POST' && url.pathname === '/v1/images/import') {
    const body = (await readJson(req)) as { path?: unknown };
    if (typeof body.path !== 'string' || !body.path.startsWith('/')) throw new AdminError(400, 'path must be an absolute file name');
    return { images: (await importArchive(images, body.path)).map(summary) };
  }
  throw new AdminError(404, `no ${req.method} ${url.pathname} here`);
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

/** Client side, for the CLI: one request to the admin socket, answered as parsed JSON or thrown. */
export function adminRequest<T>(socketPath: string, method: 'GET' | 'POST', path: string, body?: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ socketPath, method, path, headers: data ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const parsed = JSON.parse(Buffer.concat(chunks).toString() || '{}') as T & { message?: string };
        if (res.statusCode === 200) resolve(parsed);
        else reject(new Error(parsed.message ?? `HTTP ${res.statusCode}`));
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}
