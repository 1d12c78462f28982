import { readFileSync } from 'node:fs';
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import type { Endpoint, RegistryAuth } from './config.js';
import { isLoopbackHost } from './config.js';
import type { ContentStore } from './content.js';
import { DigestMismatchError, ImageError, MalformedError, NotFoundError, UnauthorizedError, UnreachableError } from './errors.js';
import { MANIFEST_ACCEPT, sha256Digest, type Descriptor } from './manifest.js';
import { isDigest } from './reference.js';

/**
 * A client of one OCI distribution endpoint (registry v2 API) for one repository.
 *
 * Authentication follows the registry's challenge: a 401 with `WWW-Authenticate: Basic` is answered
 * with the configured credentials; `Bearer realm=...,service=...,scope=...` sends the client to the
 * token endpoint (with basic credentials when it has them) and the token is cached per scope in a
 * TokenCache shared between clients. Every manifest and blob is checked against its digest.
 */

/** Time to get response headers, and the longest silence while a body streams. */
export const REQUEST_TIMEOUT_MS = 30_000;
export const MAX_REDIRECTS = 5;
export const MANIFEST_MAX_BYTES = 4 << 20;
/** Tries per blob; each one after the first resumes from the bytes already held. */
export const BLOB_ATTEMPTS = 4;
/** Tokens are renewed this long before the registry says they expire. */
const TOKEN_EXPIRY_SLACK_MS = 10_000;
const DEFAULT_TOKEN_LIFETIME_S = 60;

const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED', 'UND_ERR_SOCKET',
]);

export interface FetchedManifest {
  digest: string;
  mediaType: string | undefined;
  bytes: Buffer;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Bearer tokens by realm, service, scope and identity; shared by every client of an image store. */
export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();
  /** How many tokens were fetched from token endpoints; tests read it to see the cache work. */
  fetched = 0;

  get(key: string): string | undefined {
    const t = this.tokens.get(key);
    if (!t) return undefined;
    if (t.expiresAt <= Date.now()) {
      this.tokens.delete(key);
      return undefined;
    }
    return t.token;
  }

  set(key: string, token: string, lifetimeS: number): void {
    this.fetched++;
    this.tokens.set(key, { token, expiresAt: Date.now() + lifetimeS * 1000 - TOKEN_EXPIRY_SLACK_MS });
  }
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (let p = re.exec(m[2]!); p; p = re.exec(m[2]!)) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  }
  return { scheme: m[1]!.toLowerCase(), params };
}

function basicCredentials(auth: RegistryAuth | undefined): string | undefined {
  if (!auth) return undefined;
  if (auth.auth) return auth.auth;
  if (auth.username !== undefined) return Buffer.from(`${auth.username}:${auth.password ?? ''}`).toString('base64');
  return undefined;
}

async function readBody(res: IncomingMessage, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      res.destroy();
      throw new MalformedError(`${what} is larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function drain(res: IncomingMessage): void {
  res.resume();
}

/** The registry's own error codes from a JSON error body, for messages: "MANIFEST_UNKNOWN: manifest unknown". */
async function registryErrors(res: IncomingMessage): Promise<string> {
  try {
    const body = JSON.parse((await readBody(res, 64 << 10, 'error body')).toString('utf8')) as { errors?: { code?: string; message?: string }[] };
    const list = (body.errors ?? []).map((e) => [e.code, e.message].filter(Boolean).join(': '));
    return list.length ? ` (${list.join('; ')})` : '';
  } catch {
    return '';
  }
}

function isNetworkError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string' && (NETWORK_ERROR_CODES.has(code) || code.startsWith('ERR_TLS') || code.includes('CERT') || code.startsWith('ERR_SSL'))) return true;
  return err instanceof Error && (err.message === 'aborted' || err.message === 'socket hang up' || (err as { code?: string }).code === 'ERR_STREAM_PREMATURE_CLOSE');
}

export interface RegistryClientOptions {
  tokens?: TokenCache;
  signal?: AbortSignal;
}

export class RegistryClient {
  readonly endpoint: Endpoint;
  private readonly tokens: TokenCache;
  private readonly signal: AbortSignal | undefined;
  private readonly tlsOptions: https.RequestOptions;
  /** How the registry asked to be authenticated, learnt from its first 401. */
  private challenge: Challenge | undefined;

  constructor(endpoint: Endpoint, options: RegistryClientOptions = {}) {
    this.endpoint = endpoint;
    this.tokens = options.tokens ?? new TokenCache();
    this.signal = options.signal;
    const tls = endpoint.tls ?? {};
    this.tlsOptions = {
      rejectUnauthorized: !tls.insecureSkipVerify,
      ...(tls.caFile ? { ca: readFileSync(tls.caFile) } : {}),
      ...(tls.certFile ? { cert: readFileSync(tls.certFile) } : {}),
      ...(tls.keyFile ? { key: readFileSync(tls.keyFile) } : {}),
    };
  }

  /** `127.0.0.1:5000/library/busybox`, how errors name what they were fetching. */
  get name(): string {
    return `${this.endpoint.host}/${this.endpoint.repository}`;
  }

  private get pullScope(): string {
    return `repository:${this.endpoint.repository}:pull`;
  }

  /** GET /v2/: the API answers (after authentication, if the registry wants it). */
  async ping(): Promise<void> {
    const res = await this.authorized(`${this.endpoint.apiRoot}/`, {}, this.pullScope);
    drain(res);
    if (res.statusCode !== 200) throw new ImageError('Unavailable', `registry ${this.endpoint.host} answered ${res.statusCode} to /v2/`);
  }

  /** Fetches a manifest or index by tag or digest and verifies its digest. */
  async getManifest(reference: string): Promise<FetchedManifest> {
    const what = `manifest ${reference} of ${this.name}`;
    const url = `${this.endpoint.apiRoot}/${this.endpoint.repository}/manifests/${reference}`;
    const res = await this.authorized(url, { accept: MANIFEST_ACCEPT }, this.pullScope);
    await this.expectOk(res, what, isDigest(reference) ? `manifest ${reference} not found in ${this.name}` : `tag ${JSON.stringify(reference)} not found in ${this.name}`);
    const bytes = await readBody(res, MANIFEST_MAX_BYTES, what);
    const digest = sha256Digest(bytes);
    const expected = isDigest(reference) ? reference : (res.headers['docker-content-digest'] as string | undefined);
    if (expected !== undefined && isDigest(expected) && expected !== digest) throw new DigestMismatchError(expected, digest, what);
    const mediaType = res.headers['content-type']?.split(';')[0]?.trim();
    return { digest, mediaType, bytes };
  }

  /** Fetches a small blob (an image config) into memory, verified. */
  async getBlob(desc: Descriptor, content: ContentStore, what: string): Promise<Buffer> {
    await this.fetchBlob(desc, content, { what });
    return content.read(desc.digest);
  }

  /**
   * Downloads a blob into the content store unless it is already there. A broken connection is
   * retried, resuming with a Range request from the bytes already written.
   */
  async fetchBlob(desc: Descriptor, content: ContentStore, options: { onProgress?: (bytes: number) => void; what?: string } = {}): Promise<void> {
    const what = options.what ?? `blob ${desc.digest} of ${this.name}`;
    for (let attempt = 1; ; attempt++) {
      try {
        await content.ingest(desc.digest, (offset) => this.openBlob(desc.digest, offset, what), {
          size: desc.size,
          what,
          ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        });
        return;
      } catch (err) {
        const retryable = err instanceof UnreachableError || (!(err instanceof ImageError) && isNetworkError(err));
        if (!retryable || attempt >= BLOB_ATTEMPTS || this.signal?.aborted) {
          if (!(err instanceof ImageError) && isNetworkError(err)) {
            throw new UnreachableError(this.endpoint.host, `download of ${what} from ${this.endpoint.host} broke after ${attempt} attempts: ${(err as Error).message}`, err);
          }
          throw err;
        }
      }
    }
  }

  private async openBlob(digest: string, offset: number, what: string): Promise<{ stream: Readable; offset: number }> {
    const url = `${this.endpoint.apiRoot}/${this.endpoint.repository}/blobs/${digest}`;
    const headers: OutgoingHttpHeaders = offset > 0 ? { range: `bytes=${offset}-` } : {};
    const res = await this.authorized(url, headers, this.pullScope);
    if (res.statusCode === 416 && offset > 0) {
      drain(res);
      return this.openBlob(digest, 0, what);
    }
    await this.expectOk(res, what, `${what} not found`);
    if (res.statusCode === 206) {
      const m = /^bytes (\d+)-/.exec(String(res.headers['content-range'] ?? ''));
      if (!m) {
        res.destroy();
        throw new MalformedError(`${what}: 206 answer without a Content-Range`);
      }
      return { stream: res, offset: Number(m[1]) };
    }
    return { stream: res, offset: 0 };
  }

  private async expectOk(res: IncomingMessage, what: string, notFound: string): Promise<void> {
    const status = res.statusCode ?? 0;
    if (status === 200 || status === 206) return;
    const detail = await registryErrors(res);
    if (status === 404) throw new NotFoundError(`${notFound}${detail}`);
    if (status === 401 || status === 403) throw new UnauthorizedError(this.endpoint.host, `${what}: access denied by ${this.endpoint.host} (${status})${detail}`);
    if (status === 429 || status >= 500) throw new ImageError('Unavailable', `${what}: registry ${this.endpoint.host} answered ${status}${detail}`);
    throw new ImageError('Internal', `${what}: registry ${this.endpoint.host} answered ${status}${detail}`);
  }

  /** Sends a GET with whatever authorization the registry asked for, answering one 401 challenge. */
  private async authorized(url: string, headers: OutgoingHttpHeaders, scope: string): Promise<IncomingMessage> {
    let authorization = this.challenge ? await this.authorization(this.challenge, scope, false) : undefined;
    let res = await this.get(url, { ...headers, ...(authorization ? { authorization } : {}) });
    if (res.statusCode !== 401) return res;
    const challenge = parseChallenge(res.headers['www-authenticate'] as string | undefined);
    const detail = await registryErrors(res);
    if (!challenge) throw new UnauthorizedError(this.endpoint.host, `${this.endpoint.host} answered 401 without a usable WWW-Authenticate challenge${detail}`);
    this.challenge = challenge;
    authorization = await this.authorization(challenge, scope, true);
    if (authorization === undefined) {
      throw new UnauthorizedError(this.endpoint.host, `${this.endpoint.host} requires authentication (${challenge.scheme}) for ${this.endpoint.repository} and no credentials are configured${detail}`);
    }
    res = await this.get(url, { ...headers, authorization });
    if (res.statusCode === 401) {
      const again = await registryErrors(res);
      throw new UnauthorizedError(this.endpoint.host, `${this.endpoint.host} rejected the credentials for ${this.endpoint.repository}${again}`);
    }
    return res;
  }

  private async authorization(challenge: Challenge, scope: string, fresh: boolean): Promise<string | undefined> {
    const auth = this.endpoint.auth;
    if (challenge.scheme === 'basic') {
      const basic = basicCredentials(auth);
      return basic ? `Basic ${basic}` : undefined;
    }
    if (challenge.scheme !== 'bearer') {
      throw new UnauthorizedError(this.endpoint.host, `${this.endpoint.host} asks for unsupported authentication scheme ${JSON.stringify(challenge.scheme)}`);
    }
    if (auth?.registryToken) return `Bearer ${auth.registryToken}`;
    const realm = challenge.params.realm;
    if (!realm) throw new UnauthorizedError(this.endpoint.host, `${this.endpoint.host}: bearer challenge without a realm`);
    const service = challenge.params.service ?? '';
    const wanted = fresh && challenge.params.scope ? challenge.params.scope : scope;
    const key = `${realm}\n${service}\n${wanted}\n${auth?.username ?? ''}`;
    const cached = this.tokens.get(key);
    if (cached) return `Bearer ${cached}`;
    if (!fresh) return undefined;
    const token = await this.fetchToken(realm, service, wanted, auth);
    this.tokens.set(key, token.token, token.lifetimeS);
    return `Bearer ${token.token}`;
  }

  private async fetchToken(realm: string, service: string, scope: string, auth: RegistryAuth | undefined): Promise<{ token: string; lifetimeS: number }> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new UnauthorizedError(this.endpoint.host, `${this.endpoint.host}: token realm ${JSON.stringify(realm)} is not a URL`);
    }
    if (service) url.searchParams.set('service', service);
    for (const s of scope.split(' ').filter(Boolean)) url.searchParams.append('scope', s);
    const basic = basicCredentials(auth);
    const res = await this.get(url.toString(), basic ? { authorization: `Basic ${basic}` } : {});
    if (res.statusCode === 401 || res.statusCode === 403) {
      drain(res);
      throw new UnauthorizedError(this.endpoint.host, `token server ${url.host} refused ${basic ? 'the credentials' : 'anonymous access'} for ${scope} (${res.statusCode})`);
    }
    if (res.statusCode !== 200) {
      drain(res);
      throw new ImageError('Unavailable', `token server ${url.host} answered ${res.statusCode}`);
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse((await readBody(res, 1 << 20, 'token response')).toString('utf8')) as typeof body;
    } catch (err) {
      if (err instanceof ImageError) throw err;
      throw new MalformedError(`token server ${url.host} answered with invalid JSON`);
    }
    const token = typeof body.token === 'string' ? body.token : body.access_token;
    if (typeof token !== 'string' || token === '') throw new MalformedError(`token server ${url.host} answered without a token`);
    const lifetimeS = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_LIFETIME_S;
    return { token, lifetimeS };
  }

  /** One GET, following redirects; Authorization is dropped when a redirect leaves the host. */
  private async get(url: string, headers: OutgoingHttpHeaders, redirects = 0): Promise<IncomingMessage> {
    const target = new URL(url);
    this.checkScheme(target);
    const res = await this.send(target, headers);
    const status = res.statusCode ?? 0;
    if ([301, 302, 303, 307, 308].includes(status) && res.headers.location) {
      drain(res);
      if (redirects >= MAX_REDIRECTS) throw new ImageError('Unavailable', `${url}: more than ${MAX_REDIRECTS} redirects`);
      const next = new URL(res.headers.location, target);
      const nextHeaders = { ...headers };
      if (next.host !== target.host) delete nextHeaders.authorization;
      return this.get(next.toString(), nextHeaders, redirects + 1);
    }
    return res;
  }

  /** Plain HTTP only to loopback, or to the endpoint whose config says http:// explicitly. */
  private checkScheme(url: URL): void {
    if (url.protocol === 'https:') return;
    const allowed = url.protocol === 'http:' && (isLoopbackHost(url.host) || (this.endpoint.scheme === 'http' && url.host === this.endpoint.host));
    if (!allowed) {
      throw new UnreachableError(url.host, `refusing plain HTTP to ${url.host}: only loopback registries or endpoints configured with http:// may skip TLS`);
    }
  }

  private send(url: URL, headers: OutgoingHttpHeaders): Promise<IncomingMessage> {
    const host = url.host;
    return new Promise((resolve, reject) => {
      const options: https.RequestOptions = {
        method: 'GET',
        headers: { 'user-agent': 'atoll-runtime', ...headers },
        timeout: REQUEST_TIMEOUT_MS,
        ...(this.signal ? { signal: this.signal } : {}),
        ...(url.protocol === 'https:' ? this.tlsOptions : {}),
      };
      const req = (url.protocol === 'https:' ? https : http).request(url, options, resolve);
      // The socket timeout covers the response body too: a registry that stalls mid-blob is cut off.
      req.on('timeout', () => req.destroy(Object.assign(new Error(`no data from ${host} for ${REQUEST_TIMEOUT_MS} ms`), { code: 'ETIMEDOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (this.signal?.aborted) reject(new ImageError('Internal', `pull from ${host} cancelled`, { cause: err }));
        else if (isNetworkError(err)) reject(new UnreachableError(host, `registry ${host} unreachable: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' '), err));
        else reject(err);
      });
      req.end();
    });
  }
}
