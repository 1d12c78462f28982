import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, randomBytes, sign, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Blob, TestImage } from './images.js';

/**
 * Debian's docker-registry (distribution 2.8) on a free loopback port, for tests that pull.
 *
 * auth 'basic': htpasswd with a bcrypt hash (the only kind distribution accepts), made by perl's
 * crypt(3), which libxcrypt backs with bcrypt. auth 'token': a Node token server on loopback signs
 * RS256 JWTs with a self-signed key whose certificate the registry trusts (rootcertbundle); the
 * certificate travels in the JWT's x5c header.
 */

export const REGISTRY_BINARY = '/usr/bin/docker-registry';
export const TEST_USER = 'atoll';
export const TEST_PASSWORD = 'atoll-secret';
const STARTUP_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
const TOKEN_SERVICE = 'atoll-test-registry';
const TOKEN_ISSUER = 'atoll-test-issuer';
const TOKEN_LIFETIME_S = 300;

const run = promisify(execFile);

export type RegistryAuthMode = 'none' | 'basic' | 'token';

export interface TokenRequest {
  scope: string[];
  user: string | undefined;
}

export interface TestRegistry {
  /** `127.0.0.1:PORT` */
  host: string;
  root: string;
  auth: RegistryAuthMode;
  credentials?: { username: string; password: string };
  /** Token requests seen by the token server ('token' only). */
  tokenRequests: TokenRequest[];
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

function bcryptHash(password: string): Promise<string> {
  const alphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const salt = Array.from(randomBytes(21), (b) => alphabet[b % 64]).join('') + 'e';
  return run('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', password, `$2b$04$${salt}`]).then(({ stdout }) => {
    if (!stdout.startsWith('$2b$')) throw new Error(`perl crypt did not produce bcrypt: ${stdout}`);
    return stdout;
  });
}

interface TokenServerOptions {
  keyPem: string;
  certDer: Buffer;
  anonymousPull: boolean;
  requests: TokenRequest[];
}

function startTokenServer(o: TokenServerOptions): Server {
  const key = createPrivateKey(o.keyPem);
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://token');
    const scopes = url.searchParams.getAll('scope');
    let user: string | undefined;
    const header = req.headers.authorization;
    if (header?.startsWith('Basic ')) {
      const [u, p] = Buffer.from(header.slice(6), 'base64').toString().split(':');
      if (u !== TEST_USER || p !== TEST_PASSWORD) {
        o.requests.push({ scope: scopes, user: u });
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
      user = u;
    }
    o.requests.push({ scope: scopes, user });
    const access = scopes.flatMap((s) => {
      const first = s.indexOf(':');
      const last = s.lastIndexOf(':');
      if (first < 0 || last <= first) return [];
      const actions = s.slice(last + 1).split(',').filter((a) => user !== undefined || (o.anonymousPull && a === 'pull'));
      return [{ type: s.slice(0, first), name: s.slice(first + 1, last), actions }];
    });
    const now = Math.floor(Date.now() / 1000);
    const head = b64url(JSON.stringify({ typ: 'JWT', alg: 'RS256', x5c: [o.certDer.toString('base64')] }));
    const claims = b64url(JSON.stringify({ iss: TOKEN_ISSUER, sub: user ?? '', aud: TOKEN_SERVICE, exp: now + TOKEN_LIFETIME_S, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access }));
    const signature = b64url(sign('sha256', Buffer.from(`${head}.${claims}`), key));
    const token = `${head}.${claims}.${signature}`;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, access_token: token, expires_in: TOKEN_LIFETIME_S, issued_at: new Date().toISOString() }));
  });
}

async function waitReady(host: string, child: ChildProcess, log: () => Promise<string>): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}: ${await log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const req = http.get(`http://${host}/v2/`, (res) => {
        res.resume();
        resolve(true);
      });
      req.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry on ${host} not ready within ${STARTUP_TIMEOUT_MS} ms: ${await log()}`);
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

export async function startRegistry(options: { auth?: RegistryAuthMode; anonymousPull?: boolean } = {}): Promise<TestRegistry> {
  const auth = options.auth ?? 'none';
  const root = await mkdtemp(join(tmpdir(), 'atoll-registry-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const tokenRequests: TokenRequest[] = [];
  let tokenServer: Server | undefined;
  let authConfig = '';
  if (auth === 'basic') {
    await writeFile(join(root, 'htpasswd'), `${TEST_USER}:${await bcryptHash(TEST_PASSWORD)}\n`);
    authConfig = `auth:\n  htpasswd:\n    realm: atoll-test\n    path: ${join(root, 'htpasswd')}\n`;
  } else if (auth === 'token') {
    const key = join(root, 'token.key');
    const cert = join(root, 'token.crt');
    await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=atoll-test-token']);
    const certDer = Buffer.from(new X509Certificate(await readFile(cert)).raw);
    tokenServer = startTokenServer({ keyPem: await readFile(key, 'utf8'), certDer, anonymousPull: options.anonymousPull ?? false, requests: tokenRequests });
    const tokenPort = await listen(tokenServer);
    authConfig = `auth:\n  token:\n    realm: http://127.0.0.1:${tokenPort}/token\n    service: ${TOKEN_SERVICE}\n    issuer: ${TOKEN_ISSUER}\n    rootcertbundle: ${cert}\n`;
  }
  const config = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(root, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${host}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
    authConfig,
  ].join('\n');
  const configFile = join(root, 'config.yml');
  await writeFile(configFile, config);
  const logFile = join(root, 'registry.log');
  const { openSync, closeSync } = await import('node:fs');
  const logFd = openSync(logFile, 'w');
  const child = spawn(REGISTRY_BINARY, ['serve', configFile], { stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  const stop = async (): Promise<void> => {
    await stopChild(child);
    if (tokenServer) await new Promise((resolve) => tokenServer!.close(resolve));
    await rm(root, { recursive: true, force: true });
  };
  try {
    await waitReady(host, child, () => readFile(logFile, 'utf8').catch(() => ''));
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    host,
    root,
    auth,
    ...(auth === 'none' ? {} : { credentials: { username: TEST_USER, password: TEST_PASSWORD } }),
    tokenRequests,
    stop,
  };
}

/** Pushes with the registry HTTP API, answering basic or bearer challenges with the test credentials. */
class Pusher {
  private authorization: string | undefined;

  constructor(
    private readonly registry: Pick<TestRegistry, 'host' | 'credentials'>,
    private readonly repo: string,
  ) {}

  async request(method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Response> {
    const url = path.startsWith('http') ? path : `http://${this.registry.host}${path}`;
    const send = (): Promise<Response> =>
      fetch(url, { method, headers: { ...headers, ...(this.authorization ? { authorization: this.authorization } : {}) }, ...(body ? { body } : {}) });
    let res = await send();
    if (res.status !== 401) return res;
    await res.arrayBuffer();
    const challenge = res.headers.get('www-authenticate') ?? '';
    const creds = this.registry.credentials;
    if (!creds) throw new Error(`${this.registry.host} wants authentication and no credentials were given`);
    const basic = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    if (/^basic/i.test(challenge)) {
      this.authorization = basic;
    } else {
      const realm = /realm="([^"]+)"/.exec(challenge)?.[1];
      const service = /service="([^"]+)"/.exec(challenge)?.[1] ?? '';
      const tokenUrl = `${realm}?service=${encodeURIComponent(service)}&scope=${encodeURIComponent(`repository:${this.repo}:pull,push`)}`;
      const t = (await (await fetch(tokenUrl, { headers: { authorization: basic } })).json()) as { token: string };
      this.authorization = `Bearer ${t.token}`;
    }
    res = await send();
    return res;
  }

  async blob(blob: Blob): Promise<void> {
    const head = await this.request('HEAD', `/v2/${this.repo}/blobs/${blob.digest}`);
    if (head.status === 200) return;
    const start = await this.request('POST', `/v2/${this.repo}/blobs/uploads/`);
    await start.arrayBuffer();
    if (start.status !== 202) throw new Error(`upload start for ${this.repo}: ${start.status}`);
    const location = new URL(start.headers.get('location')!, `http://${this.registry.host}`);
    location.searchParams.set('digest', blob.digest);
    const put = await this.request('PUT', location.toString(), blob.data, { 'content-type': 'application/octet-stream' });
    const text = await put.text();
    if (put.status !== 201) throw new Error(`upload of ${blob.digest} to ${this.repo}: ${put.status} ${text}`);
  }

  async manifest(reference: string, manifest: Blob): Promise<string> {
    const put = await this.request('PUT', `/v2/${this.repo}/manifests/${reference}`, manifest.data, { 'content-type': manifest.mediaType });
    const text = await put.text();
    if (put.status !== 201) throw new Error(`manifest ${reference} of ${this.repo}: ${put.status} ${text}`);
    return put.headers.get('docker-content-digest') ?? manifest.digest;
  }
}

function splitRef(ref: string): { repo: string; tag: string } {
  const colon = ref.lastIndexOf(':');
  return colon > ref.lastIndexOf('/') ? { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) } : { repo: ref, tag: 'latest' };
}

/** Pushes an image's blobs and manifest as `repo:tag` (a repository path on the registry, no host). */
export async function pushImage(registry: Pick<TestRegistry, 'host' | 'credentials'>, ref: string, image: TestImage): Promise<string> {
  const { repo, tag } = splitRef(ref);
  const pusher = new Pusher(registry, repo);
  for (const blob of [image.config, ...image.layers]) await pusher.blob(blob);
  return pusher.manifest(tag, image.manifest);
}

/** Pushes each image by digest, then the index as `repo:tag`. */
export async function pushIndex(registry: Pick<TestRegistry, 'host' | 'credentials'>, ref: string, index: Blob, images: TestImage[]): Promise<string> {
  const { repo, tag } = splitRef(ref);
  const pusher = new Pusher(registry, repo);
  for (const image of images) {
    for (const blob of [image.config, ...image.layers]) await pusher.blob(blob);
    await pusher.manifest(image.manifest.digest, image.manifest);
  }
  return pusher.manifest(tag, index);
}

export interface ProxyFaults {
  /** Cut the connection after this many body bytes of a blob answer, for the first `cutTimes` blob answers. */
  cutBlobAfter?: number;
  cutTimes?: number;
  /** Flip one byte in the middle of every blob body. */
  corruptBlobs?: boolean;
  /** Hold each blob answer this long, so parallel downloads overlap. */
  delayBlobMs?: number;
}

export interface ProxyRequest {
  method: string;
  path: string;
  range: string | undefined;
}

export interface TestProxy {
  host: string;
  requests: ProxyRequest[];
  /** Most blob requests in flight at one time. */
  maxConcurrentBlobs: number;
  stop(): Promise<void>;
}

/** An HTTP proxy in front of a registry that can break, corrupt or slow blob downloads. */
export async function startProxy(target: string, faults: ProxyFaults = {}): Promise<TestProxy> {
  let cuts = 0;
  let inFlight = 0;
  const proxy: TestProxy = { host: '', requests: [], maxConcurrentBlobs: 0, stop: async () => undefined };
  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    const isBlob = /\/blobs\/sha256:/.test(path) && req.method === 'GET';
    proxy.requests.push({ method: req.method ?? 'GET', path, range: req.headers.range });
    const forward = (): void => {
      const upstream = http.request({ host: target.split(':')[0], port: Number(target.split(':')[1]), method: req.method, path, headers: { ...req.headers, host: target } }, (up) => {
        const status = up.statusCode ?? 502;
        if (!isBlob || status >= 300) {
          res.writeHead(status, up.headers);
          up.pipe(res);
          return;
        }
        inFlight++;
        proxy.maxConcurrentBlobs = Math.max(proxy.maxConcurrentBlobs, inFlight);
        const done = (): void => {
          inFlight--;
        };
        const chunks: Buffer[] = [];
        up.on('data', (c: Buffer) => chunks.push(c));
        up.on('end', () => {
          let body = Buffer.concat(chunks);
          if (faults.corruptBlobs && body.length > 0) {
            body = Buffer.from(body);
            body[body.length >> 1] ^= 0xff;
          }
          const cut = faults.cutBlobAfter !== undefined && cuts < (faults.cutTimes ?? 1) && body.length > faults.cutBlobAfter;
          setTimeout(() => {
            res.writeHead(status, up.headers);
            if (cut) {
              cuts++;
              res.write(body.subarray(0, faults.cutBlobAfter), () => {
                res.socket?.destroy();
                done();
              });
            } else {
              res.end(body, done);
            }
          }, faults.delayBlobMs ?? 0);
        });
      });
      upstream.on('error', () => res.writeHead(502).end());
      req.pipe(upstream);
    };
    forward();
  });
  const port = await listen(server);
  proxy.host = `127.0.0.1:${port}`;
  proxy.stop = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  return proxy;
}

/** sha256 of a buffer, as registries name it. */
export function digestOf(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
