import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { parse } from 'yaml';
import { ApiError } from '../api/errors.js';
import type { KubeList, KubeObject, Status, WatchEvent } from '../api/types.js';

/**
 * A small Kubernetes API client for Atoll's own components (scheduler, controllers, node agent,
 * edgehub). It speaks plain HTTPS + JSON, so it works against Atoll's server and against a real
 * kube-apiserver alike. Failures arrive as ApiError carrying the server's Status.
 *
 * A `unix:///path/to.sock` server is spoken to in plain HTTP over that socket: how a node's
 * components reach their local EdgeHub, whose socket's file mode admits only them.
 */

export interface Resource {
  group: string;
  version: string;
  /** plural, e.g. "pods" */
  resource: string;
  namespaced: boolean;
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
}

export interface WatchOptions {
  labelSelector?: string;
  fieldSelector?: string;
  resourceVersion?: string;
  allowWatchBookmarks?: boolean;
  timeoutSeconds?: number;
}

export interface WriteOptions {
  fieldManager?: string;
  dryRun?: boolean;
  subresource?: string;
}

export type PatchType = 'merge' | 'json' | 'strategic' | 'apply';

const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
};

export interface Credentials {
  /** `https://host:port`, or `unix:///path` for a local EdgeHub socket (plain HTTP). */
  server: string;
  caPem?: string;
  certPem?: string;
  keyPem?: string;
  token?: string;
  /** Skip server certificate verification (kubeconfig insecure-skip-tls-verify). */
  insecure?: boolean;
}

export class KubeClient {
  private readonly agent: http.Agent;
  private readonly base: URL;
  private readonly request: typeof https.request;

  constructor(
    private readonly credentials: Credentials,
    readonly userAgent = 'atoll',
  ) {
    this.base = new URL(credentials.server);
    if (this.base.protocol === 'unix:') {
      this.request = http.request;
      this.agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
      return;
    }
    this.request = https.request;
    this.agent = new https.Agent({
      keepAlive: true,
      maxSockets: 32,
      ca: credentials.caPem,
      cert: credentials.certPem,
      key: credentials.keyPem,
      rejectUnauthorized: !credentials.insecure,
    });
  }

  /** Reads the current context of a kubeconfig with embedded (`*-data`) or file credentials. */
  static fromKubeconfig(path: string, userAgent?: string): KubeClient {
    const cfg = parse(readFileSync(path, 'utf8')) as Kubeconfig;
    const ctxName = cfg['current-context'];
    const ctx = cfg.contexts?.find((c) => c.name === ctxName)?.context ?? cfg.contexts?.[0]?.context;
    const cluster = cfg.clusters?.find((c) => c.name === ctx?.cluster)?.cluster ?? cfg.clusters?.[0]?.cluster;
    const user = cfg.users?.find((u) => u.name === ctx?.user)?.user ?? cfg.users?.[0]?.user ?? {};
    if (!cluster?.server) throw new Error(`kubeconfig ${path}: no cluster server in the current context`);
    const data = (inline: string | undefined, file: string | undefined) =>
      inline ? Buffer.from(inline, 'base64').toString() : file ? readFileSync(file, 'utf8') : undefined;
    return new KubeClient(
      {
        server: cluster.server,
        caPem: data(cluster['certificate-authority-data'], cluster['certificate-authority']),
        certPem: data(user['client-certificate-data'], user['client-certificate']),
        keyPem: data(user['client-key-data'], user['client-key']),
        token: user.token ?? (user.tokenFile ? readFileSync(user.tokenFile, 'utf8').trim() : undefined),
        insecure: cluster['insecure-skip-tls-verify'],
      },
      userAgent,
    );
  }

  close(): void {
    this.agent.destroy();
  }

  path(r: Resource, namespace?: string, name?: string, subresource?: string): string {
    let p = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
    if (r.namespaced && namespace) p += `/namespaces/${encodeURIComponent(namespace)}`;
    p += `/${r.resource}`;
    if (name) p += `/${encodeURIComponent(name)}`;
    if (subresource) p += `/${subresource}`;
    return p;
  }

  async get<T extends KubeObject = KubeObject>(r: Resource, namespace: string | undefined, name: string, subresource?: string): Promise<T> {
    return this.json<T>('GET', this.path(r, namespace, name, subresource));
  }

  async list<T extends KubeObject = KubeObject>(r: Resource, namespace?: string, opts: ListOptions = {}): Promise<KubeList<T>> {
    return this.json<KubeList<T>>('GET', this.path(r, namespace) + query(opts));
  }

  async create<T extends KubeObject = KubeObject>(r: Resource, namespace: string | undefined, obj: unknown, opts: WriteOptions = {}): Promise<T> {
    return this.json<T>('POST', this.path(r, namespace, undefined) + writeQuery(opts), obj);
  }

  /** POST to a subresource of a named object (binding, eviction, token). */
  async createSubresource<T = KubeObject>(r: Resource, namespace: string | undefined, name: string, subresource: string, body: unknown, opts: WriteOptions = {}): Promise<T> {
    return this.json<T>('POST', this.path(r, namespace, name, subresource) + writeQuery(opts), body);
  }

  async update<T extends KubeObject = KubeObject>(r: Resource, obj: T, opts: WriteOptions = {}): Promise<T> {
    const path = this.path(r, obj.metadata.namespace, obj.metadata.name, opts.subresource);
    return this.json<T>('PUT', path + writeQuery(opts), obj);
  }

  async patch<T extends KubeObject = KubeObject>(
    r: Resource,
    namespace: string | undefined,
    name: string,
    type: PatchType,
    body: unknown,
    opts: WriteOptions & { force?: boolean } = {},
  ): Promise<T> {
    const q = writeQuery(opts) + (opts.force ? `${opts.fieldManager || opts.dryRun ? '&' : '?'}force=true` : '');
    return this.json<T>('PATCH', this.path(r, namespace, name, opts.subresource) + q, body, PATCH_CONTENT_TYPE[type]);
  }

  async delete(r: Resource, namespace: string | undefined, name: string, options: Record<string, unknown> = {}): Promise<KubeObject | Status> {
    return this.json('DELETE', this.path(r, namespace, name), options);
  }

  /**
   * Streams watch events until the server ends the watch, `signal` aborts, or the connection
   * fails (which rejects). An expired resourceVersion arrives as an ERROR event carrying a Status.
   */
  watch(r: Resource, namespace: string | undefined, opts: WatchOptions, onEvent: (event: WatchEvent) => void, signal: AbortSignal): Promise<void> {
    const path = this.path(r, namespace) + query({ ...opts, watch: true });
    return new Promise((resolve, reject) => {
      if (signal.aborted) return resolve();
      const req = this.request(this.options('GET', path), (res) => {
        if (res.statusCode !== 200) {
          collect(res).then((body) => reject(toApiError(res.statusCode ?? 0, body)), reject);
          return;
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (!line.trim()) continue;
            try {
              onEvent(JSON.parse(line) as WatchEvent);
            } catch (err) {
              req.destroy(err as Error);
            }
          }
        });
        res.on('end', () => resolve());
        res.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
      });
      const abort = () => {
        req.destroy();
        resolve();
      };
      signal.addEventListener('abort', abort, { once: true });
      req.on('close', () => signal.removeEventListener('abort', abort));
      req.on('error', (err) => (signal.aborted ? resolve() : reject(err)));
      req.end();
    });
  }

  /** Any request, answered as parsed JSON; non-2xx answers throw ApiError. */
  async json<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const { status, text } = await this.raw(method, path, body === undefined ? undefined : JSON.stringify(body), contentType);
    if (status < 200 || status >= 300) throw toApiError(status, text);
    return JSON.parse(text) as T;
  }

  raw(method: string, path: string, body?: string, contentType = 'application/json'): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const opts = this.options(method, path);
      if (body !== undefined) opts.headers = { ...opts.headers, 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) };
      const req = this.request(opts, (res) => {
        collect(res).then((text) => resolve({ status: res.statusCode ?? 0, text }), reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  private options(method: string, path: string): https.RequestOptions {
    const headers: Record<string, string | number> = { Accept: 'application/json', 'User-Agent': this.userAgent };
    if (this.credentials.token) headers.Authorization = `Bearer ${this.credentials.token}`;
    if (this.base.protocol === 'unix:') return { socketPath: decodeURIComponent(this.base.pathname), method, path, agent: this.agent, headers };
    return { host: this.base.hostname, port: this.base.port || 443, method, path, agent: this.agent, headers };
  }
}

interface Kubeconfig {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  clusters?: { name: string; cluster: { server: string; 'certificate-authority-data'?: string; 'certificate-authority'?: string; 'insecure-skip-tls-verify'?: boolean } }[];
  users?: { name: string; user: { 'client-certificate-data'?: string; 'client-certificate'?: string; 'client-key-data'?: string; 'client-key'?: string; token?: string; tokenFile?: string } }[];
}

function collect(res: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString()));
    res.on('error', reject);
  });
}

function toApiError(status: number, text: string): ApiError {
  try {
    const s = JSON.parse(text) as Status;
    if (s.kind === 'Status') return new ApiError(s.code || status, s.reason ?? '', s.message ?? text, s.details);
  } catch {
    // not a Status: fall through
  }
  return new ApiError(status, status === 404 ? 'NotFound' : 'Unknown', text.slice(0, 500) || `HTTP ${status}`);
}

function query(opts: object): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(opts) as [string, unknown][]) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

function writeQuery(opts: WriteOptions): string {
  return query({ fieldManager: opts.fieldManager, dryRun: opts.dryRun ? 'All' : undefined });
}

export function isNotFound(err: unknown): boolean {
  return err instanceof ApiError && err.code === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof ApiError && err.code === 409;
}
