import { timingSafeEqual } from 'node:crypto';
import { chmod, rm } from 'node:fs/promises';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { ApiError, errors } from '../api/errors.js';
import type { KubeList, KubeObject, WatchEvent } from '../api/types.js';
import { isDNS1123Subdomain } from '../api/validation/names.js';
import { parseBool, requestInfo, type RequestInfo } from '../apiserver/request-info.js';
import { CachePolicy, type CachePolicyOptions } from './cache-policy.js';
import { EdgeCache, componentOf, newer, queryMatches, type CacheScope, type ListQuery } from './cache.js';
import { UpstreamHealth, type HealthOptions, type TlsCredentials } from './health.js';
import { EdgeHubMetrics, METRICS_CONTENT_TYPE } from './metrics.js';
import { MAX_BUFFERED_EVENTS, MAX_OFFLINE_WRITE_BYTES, applyWrite, certificateNode, isEventCreate, offlineRefusal, ownedPart, replayQueue } from './offline-writes.js';
import { UpgradeRelay } from './upgrade.js';

/**
 * EdgeHub: the node's local proxy for the Kubernetes API.
 *
 * Every request from a local client is forwarded to the healthy cloud endpoint with the node's own
 * credentials, and the answer streamed back. JSON answers to GET, LIST and WATCH of cacheable
 * resources are written to the cache, per client component, as they pass; which components,
 * resources and verbs are cached is the cache policy's (cache-policy.ts). While no endpoint is
 * healthy (or a request cannot connect), reads are answered from the cache with selectors applied;
 * what the cache cannot answer gets a 503 Status, never an empty list. Offline watches are held open,
 * given periodic BOOKMARKs with the cache's resourceVersion when the client allows them, and ended
 * when the cloud returns, so clients relist and resume against the cloud.
 *
 * While offline, the node's own Lease renewals, its Node status and the status of its pods are
 * accepted locally and queued (see offline-writes.ts); held watches see them as MODIFIED events. The
 * queue is replayed in order when the cloud returns; until it drains, later writes to the same object
 * queue behind it. Events are buffered (bounded, oldest dropped and counted) and posted on reconnect.
 * Any other write while offline gets a 503 naming that the node is offline and why.
 *
 * Upgrade requests (exec, attach, port-forward) are relayed byte for byte (see upgrade.ts).
 *
 * Only standard API semantics are used, so EdgeHub works in front of Atoll's server and a real
 * kube-apiserver alike.
 */

/** How often a held watch that allows bookmarks gets one, as Atoll's API server does. */
export const DEFAULT_BOOKMARK_PERIOD_MS = 30_000;
/** Unix-socket mode: only the owner (root, like the node agent) may connect. */
const DEFAULT_SOCKET_MODE = 0o600;
/** How long an idle upstream keep-alive socket is kept. */
const UPSTREAM_KEEPALIVE_MS = 30_000;
const MAX_UPSTREAM_SOCKETS = 64;
/**
 * A request whose answer does not start within this long is treated as a lost link, so a read falls
 * back to the cache instead of hanging until the health checker notices.
 */
const UPSTREAM_ANSWER_TIMEOUT_MS = 10_000;
/** After a replay stopped on a lost link or a 5xx, how long before it is tried again while healthy. */
const REPLAY_RETRY_MS = 5_000;
/** Headers that belong to one hop and are never relayed. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'host', 'authorization']);

export type ListenOptions = { host?: string; port?: number } | { socketPath: string; socketMode?: number };

export interface EdgeHubOptions {
  /** Cloud API server URLs, preferred first. */
  endpoints: string[];
  /** The node's own credentials for the cloud. */
  credentials: TlsCredentials;
  /** SQLite file of the cache. */
  cachePath: string;
  listen: ListenOptions;
  /** Serve TLS on a TCP listener with this certificate; plain HTTP otherwise (loopback only). */
  serving?: { certPem: string; keyPem: string };
  /** Bearer token local clients must present on a TCP listener. A unix socket relies on its file mode. */
  token?: string;
  health?: HealthOptions;
  /** Which components, resources and verbs are cached; default every component's reads of what a node runs pods with. */
  cache?: CachePolicyOptions;
  /**
   * The node whose writes are accepted offline. Default: from the client certificate's CN
   * (`system:node:<name>`); without either, no write is accepted offline.
   */
  nodeName?: string;
  /** How often a held watch that allows bookmarks gets one; default DEFAULT_BOOKMARK_PERIOD_MS. */
  bookmarkPeriodMs?: number;
}

interface Request {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  info: RequestInfo;
  component: string;
  /** The object's namespace: request-info reports a Namespace's own name there, the cache ''. */
  namespace: string;
  cacheable: boolean;
  /**
   * A node status or Lease write of a cached resource: the cloud's answer is the freshest copy of the
   * object, and the one an offline write of it must start from (a Lease is otherwise never read).
   */
  keepsAnswer: boolean;
}

export class EdgeHub {
  private readonly abort = new AbortController();
  /** Upstream watches, cut when the cloud goes unhealthy so their clients relist from the cache. */
  private readonly upstreamWatches = new Set<http.ClientRequest>();
  /** Offline watches and their queries, ended when the cloud comes back. */
  private readonly heldWatches = new Map<ServerResponse, ListQuery>();
  private replaying?: Promise<void>;
  private replayTimer?: NodeJS.Timeout;
  private readonly tokenBuf?: Buffer;
  private readonly upgrades: UpgradeRelay;
  private server!: http.Server;

  private constructor(
    private readonly opts: EdgeHubOptions,
    private readonly policy: CachePolicy,
    /** The node whose writes are accepted offline, if known. */
    readonly nodeName: string | undefined,
    readonly cache: EdgeCache,
    readonly health: UpstreamHealth,
    private readonly agent: https.Agent,
    readonly metrics: EdgeHubMetrics,
  ) {
    if (opts.token !== undefined) this.tokenBuf = Buffer.from(opts.token);
    this.upgrades = new UpgradeRelay(opts.credentials, metrics);
  }

  static async start(opts: EdgeHubOptions): Promise<EdgeHub> {
    const tcp = !('socketPath' in opts.listen);
    if (tcp && !opts.token) throw new Error('edgehub: a TCP listener needs a token (or listen on a unix socket)');
    if (opts.token !== undefined && opts.token.length < 16) throw new Error('edgehub: the token must be at least 16 characters');
    const bookmarkPeriod = opts.bookmarkPeriodMs ?? DEFAULT_BOOKMARK_PERIOD_MS;
    if (!Number.isSafeInteger(bookmarkPeriod) || bookmarkPeriod < 1) throw new RangeError(`edgehub: bookmarkPeriodMs must be a positive integer, got ${bookmarkPeriod}`);
    const policy = CachePolicy.from(opts.cache);
    const nodeName = servedNode(opts);
    const agent = new https.Agent({
      keepAlive: true,
      keepAliveMsecs: UPSTREAM_KEEPALIVE_MS,
      maxSockets: MAX_UPSTREAM_SOCKETS,
      ca: opts.credentials.caPem,
      cert: opts.credentials.certPem,
      key: opts.credentials.keyPem,
    });
    const health = new UpstreamHealth(opts.endpoints, agent, opts.health);
    const cache = EdgeCache.open(opts.cachePath);
    const hub = new EdgeHub(opts, policy, nodeName, cache, health, agent, new EdgeHubMetrics());
    try {
      health.onChange((current, previous) => hub.onHealthChange(current, previous));
      await health.start(hub.abort.signal);
      await hub.listen();
      hub.replay();
      return hub;
    } catch (err) {
      await hub.close();
      throw err;
    }
  }

  /** Where local clients connect: an https://, http:// or unix:// URL. */
  get url(): string {
    if ('socketPath' in this.opts.listen) return `unix://${this.opts.listen.socketPath}`;
    const addr = this.server.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return `${this.opts.serving ? 'https' : 'http'}://${host}:${addr.port}`;
  }

  async close(): Promise<void> {
    this.abort.abort();
    for (const w of this.upstreamWatches) w.destroy();
    this.upgrades.cut();
    for (const res of this.heldWatches.keys()) res.end();
    clearTimeout(this.replayTimer);
    if (this.server?.listening) {
      await new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        this.server.closeAllConnections();
      });
    }
    // Cuts a replay or probe in flight, so they settle at once.
    this.agent.destroy();
    await this.replaying;
    await this.health.settled();
    this.cache.close();
    if ('socketPath' in this.opts.listen) await rm(this.opts.listen.socketPath, { force: true });
  }

  private async listen(): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    this.server = this.opts.serving ? https.createServer({ cert: this.opts.serving.certPem, key: this.opts.serving.keyPem }, handler) : http.createServer(handler);
    this.server.requestTimeout = 0; // watches are long-lived
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.handleUpgrade(req, socket, head));
    const listen = this.opts.listen;
    if ('socketPath' in listen) await rm(listen.socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      if ('socketPath' in listen) this.server.listen(listen.socketPath, resolve);
      else this.server.listen(listen.port ?? 0, listen.host ?? '127.0.0.1', resolve);
    });
    if ('socketPath' in listen) await chmod(listen.socketPath, listen.socketMode ?? DEFAULT_SOCKET_MODE);
  }

  private onHealthChange(current: string | undefined, previous: string | undefined): void {
    if (current === undefined) {
      // The link may be silent rather than closed; cut upstream watches so clients fall back to the
      // cache, and relayed streams, which would otherwise hang.
      for (const w of this.upstreamWatches) w.destroy();
      this.upgrades.cut();
    } else if (previous === undefined) {
      // Back online: replay what was accepted locally, and end held watches so clients relist and
      // watch the cloud again.
      this.replay();
      for (const res of this.heldWatches.keys()) res.end();
    }
  }

  /** Drains the offline write queue to the cloud, once at a time, retrying later after a lost link. */
  private replay(): void {
    if (this.replaying || this.abort.signal.aborted) return;
    clearTimeout(this.replayTimer);
    this.replaying = (async () => {
      for (;;) {
        const upstream = this.health.current();
        const depth = this.cache.queueDepth();
        if (upstream === undefined || depth === 0 || this.abort.signal.aborted) return;
        await replayQueue(this.cache, { upstream, agent: this.agent }, (result) => this.metrics.replayed(result), this.abort.signal);
        // Writes absorbed during the replay queued behind it; stop only when a round made no progress.
        if (this.cache.queueDepth() >= depth) {
          if (!this.abort.signal.aborted) this.replayTimer = setTimeout(() => this.replay(), REPLAY_RETRY_MS);
          return;
        }
      }
    })()
      .catch((err) => console.error('edgehub: replaying offline writes:', err))
      .finally(() => (this.replaying = undefined));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://edgehub');
      if (req.method === 'GET' && url.pathname === '/healthz') return this.serveHealthz(res);
      if (req.method === 'GET' && url.pathname === '/metrics') {
        res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE });
        return void res.end(this.metrics.render(this.health.snapshot(), { queueDepth: this.cache.queueDepth(), droppedEvents: this.cache.droppedEvents() }));
      }
      if (!this.admitted(req)) throw errors.unauthorized();
      const info = requestInfo(req.method ?? 'GET', url);
      const component = componentOf(req.headers['user-agent']);
      const cacheable = info.resourceRequest && !info.subresource && this.policy.caches(component, info.resource, info.verb) && acceptsJson(req.headers.accept);
      const keepsAnswer = ownedPart(info) !== undefined && this.policy.keeps(component, info.resource) && acceptsJson(req.headers.accept);
      const namespace = info.resource === 'namespaces' && info.apiGroup === '' ? '' : info.namespace;
      const r: Request = { req, res, url, info, component, namespace, cacheable, keepsAnswer };
      const upstream = this.health.current();
      // Once a write is queued for an object, later ones queue behind it until the replay drains.
      if (ownedPart(info) && (upstream === undefined || this.cache.hasQueuedWrite(scopeOf(r), r.namespace, info.name))) return await this.absorb(r);
      if (upstream === undefined && isEventCreate(info)) return await this.bufferEvent(r);
      if (upstream === undefined) return this.offline(r);
      this.forward(r, upstream);
    } catch (err) {
      sendError(res, err);
    }
  }

  /** An upgrade request (exec, attach, port-forward): relayed to the cloud, or refused with a Status. */
  private async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    try {
      if (!this.admitted(req)) {
        this.metrics.upgraded('unauthorized');
        return this.upgrades.refuse(socket, errors.unauthorized());
      }
      await this.upgrades.relay(req, socket, head, this.health.current());
    } catch (err) {
      socket.destroy();
      console.error('edgehub: relaying an upgrade request:', err);
    }
  }

  private admitted(req: IncomingMessage): boolean {
    if (!this.tokenBuf) return true;
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!m) return false;
    const given = Buffer.from(m[1]!);
    return given.length === this.tokenBuf.length && timingSafeEqual(given, this.tokenBuf);
  }

  private serveHealthz(res: ServerResponse): void {
    const endpoints = this.health.snapshot();
    const body = { status: 'ok', cloud: { healthy: this.health.healthy, current: this.health.current() ?? null, endpoints } };
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  /** `retried`: a GET already failed once on a reused keep-alive socket the cloud had closed. */
  private forward(r: Request, upstream: string, retried = false): void {
    const { req, res, info } = r;
    const base = new URL(upstream);
    const headers = relayHeaders(req.headers);
    if (r.cacheable || r.keepsAnswer) {
      // The cache stores JSON; compressed or protobuf answers could not be read back.
      headers.accept = 'application/json';
      delete headers['accept-encoding'];
    }
    const out = https.request({ host: base.hostname, port: base.port || 443, method: req.method, path: req.url, headers, agent: this.agent }, (up) => {
      // Streams (logs, watches) may be silent for long; only the wait for the answer is bounded.
      clearTimeout(answerTimer);
      if (info.verb === 'watch') this.upstreamWatches.add(out);
      res.writeHead(up.statusCode ?? 502, relayHeaders(up.headers));
      res.flushHeaders();
      const ok = (r.cacheable || r.keepsAnswer) && up.statusCode === 200;
      const body: Buffer[] = [];
      const watch = ok && info.verb === 'watch' ? new LineSplitter((line) => this.cacheWatchLine(r, line)) : undefined;
      up.on('data', (chunk: Buffer) => {
        this.metrics.proxied('from_cloud', chunk.length);
        if (watch) watch.push(chunk);
        else if (ok) body.push(chunk);
        res.write(chunk);
      });
      up.on('end', () => {
        this.upstreamWatches.delete(out);
        res.end();
        if (ok && !watch) this.cacheAnswer(r, Buffer.concat(body).toString());
        else if (r.cacheable && info.verb === 'get' && up.statusCode === 404) this.forget(r);
      });
      // A cut mid-stream: end cleanly so a watcher relists (and reaches the cache if still offline).
      up.on('error', () => undefined);
      up.on('close', () => {
        this.upstreamWatches.delete(out);
        if (!res.writableEnded) res.end();
      });
    });
    out.on('error', (err) => {
      this.upstreamWatches.delete(out);
      if (res.headersSent) return void res.end();
      // A pooled socket the server closed while idle fails the next request on it; a read is safe to retry.
      if (out.reusedSocket && !retried && req.method === 'GET') return this.forward(r, upstream, true);
      if (info.verb === 'get' || info.verb === 'list' || info.verb === 'watch') {
        try {
          return this.offline(r);
        } catch (e) {
          return sendError(res, e);
        }
      }
      sendStatus(res, unavailable(`edgehub: the cloud is unreachable (${err.message}); ${describe(r)} was not sent`));
    });
    // A timer, not the socket's idle timeout: that is armed only once a new connection is made, and
    // behind a silent cut the connection attempt itself hangs until the kernel gives up (minutes).
    const answerTimer = setTimeout(() => out.destroy(new Error(`no answer within ${UPSTREAM_ANSWER_TIMEOUT_MS} ms`)), UPSTREAM_ANSWER_TIMEOUT_MS);
    out.on('close', () => clearTimeout(answerTimer));
    res.on('close', () => {
      if (!res.writableFinished) out.destroy();
    });
    if (retried) return void out.end();
    req.on('data', (chunk: Buffer) => this.metrics.proxied('to_cloud', chunk.length));
    req.pipe(out);
  }

  private cacheAnswer(r: Request, text: string): void {
    try {
      const obj = JSON.parse(text) as KubeObject | KubeList;
      if (r.info.verb === 'get' || r.keepsAnswer) {
        this.cache.putObject(scopeOf(r), obj as KubeObject);
      } else if (r.info.verb === 'list') {
        const list = obj as KubeList;
        // A page of a paginated list is not the whole list; storing it would prune the rest.
        if (r.url.searchParams.get('continue') || list.metadata?.continue) return;
        this.cache.putList(listQuery(r), list);
      }
    } catch {
      this.metrics.cacheWriteError();
    }
  }

  /** The cloud says the object is gone; a cached copy must not answer for it offline. */
  private forget(r: Request): void {
    try {
      this.cache.forget(scopeOf(r), r.namespace, r.info.name);
    } catch {
      this.metrics.cacheWriteError();
    }
  }

  private cacheWatchLine(r: Request, line: string): void {
    try {
      this.cache.applyWatchEvent(listQuery(r), JSON.parse(line) as WatchEvent);
    } catch {
      this.metrics.cacheWriteError();
    }
  }

  private offline(r: Request): void {
    const { res, info } = r;
    if (!r.cacheable) {
      const read = info.resourceRequest && ['get', 'list', 'watch'].includes(info.verb);
      const what = !read ? 'it cannot be accepted locally' : info.subresource ? `subresource ${info.subresource} is not cached` : this.policy.exclusion(r.component, info.resource, info.verb);
      return sendStatus(res, unavailable(`edgehub: the node is offline (the cloud is unreachable) and ${describe(r)} was refused: ${what}`));
    }
    if (info.verb === 'watch') return this.holdWatch(r);
    const scope = scopeOf(r);
    if (info.verb === 'get') {
      const found = this.cache.get(scope, r.namespace, info.name);
      this.metrics.cacheRequest(info.resource, found.kind === 'unknown' ? 'miss' : 'hit');
      if (found.kind === 'hit') return sendJson(res, 200, found.object);
      if (found.kind === 'absent') return sendStatus(res, errors.notFound({ group: info.apiGroup, resource: info.resource, name: info.name }));
      return sendStatus(res, unavailable(`edgehub: the cloud is unreachable and nothing is cached for ${describe(r)}`));
    }
    const list = this.cache.list(listQuery(r));
    this.metrics.cacheRequest(info.resource, list ? 'hit' : 'miss');
    if (list) return sendJson(res, 200, list);
    sendStatus(res, unavailable(`edgehub: the cloud is unreachable and nothing is cached for ${describe(r)}`));
  }

  /** Accepts a node status or Lease write locally: answers with the cached object changed, and queues it. */
  private async absorb(r: Request): Promise<void> {
    const { req, res, info } = r;
    const body = await readBody(req, MAX_OFFLINE_WRITE_BYTES);
    const scope = scopeOf(r);
    const cached = this.cache.get(scope, r.namespace, info.name);
    const refusal = offlineRefusal(info, this.nodeName, cached.kind === 'hit' ? cached.object : undefined);
    if (refusal !== undefined || cached.kind !== 'hit') {
      return sendStatus(res, unavailable(`edgehub: the node is offline and ${describe(r)} cannot be accepted locally: ${refusal}`));
    }
    const method = req.method ?? 'PUT';
    const contentType = req.headers['content-type'] ?? 'application/json';
    const result = applyWrite({ group: info.apiGroup, version: info.apiVersion, resource: info.resource, subresource: info.subresource }, cached.object, method, contentType, body);
    this.cache.absorbWrite(
      { ...scope, namespace: r.namespace, name: info.name, subresource: info.subresource, method, path: r.url.pathname, contentType, body, userAgent: req.headers['user-agent'] ?? '' },
      result,
    );
    this.metrics.writeAbsorbed();
    for (const [watch, query] of this.heldWatches) {
      const same = query.component === scope.component && query.group === scope.group && query.version === scope.version && query.resource === scope.resource;
      if (same && matchesQuietly(query, result)) watch.write(JSON.stringify({ type: 'MODIFIED', object: result }) + '\n');
    }
    sendJson(res, 200, result);
  }

  /** Accepts an Event offline: echoed back as created, and queued (bounded) for the cloud. */
  private async bufferEvent(r: Request): Promise<void> {
    const { req, res, info } = r;
    const body = await readBody(req, MAX_OFFLINE_WRITE_BYTES);
    let event: KubeObject;
    try {
      event = JSON.parse(body) as KubeObject;
    } catch {
      throw errors.badRequest('the request body is not valid JSON');
    }
    if (!event || typeof event !== 'object' || typeof event.metadata !== 'object') throw errors.badRequest('an Event needs metadata');
    const write = {
      ...scopeOf(r), namespace: info.namespace, name: event.metadata.name ?? '', subresource: '', method: 'POST', path: r.url.pathname,
      contentType: 'application/json', body, userAgent: req.headers['user-agent'] ?? '',
    };
    this.cache.bufferEvent(write, MAX_BUFFERED_EVENTS);
    sendJson(res, 201, { ...event, metadata: { ...event.metadata, namespace: info.namespace } });
  }

  /**
   * Holds a watch open; it ends when the cloud returns, the client leaves, or its timeout passes. It
   * carries the node's own writes accepted meanwhile, and BOOKMARKs if the client allows them.
   */
  private holdWatch(r: Request): void {
    const { res, url } = r;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    const query = listQuery(r);
    this.heldWatches.set(res, query);
    this.metrics.watchHeld(1);
    const timeoutSeconds = Number(url.searchParams.get('timeoutSeconds') ?? '0');
    const timeout = timeoutSeconds > 0 ? setTimeout(() => res.end(), timeoutSeconds * 1000) : undefined;
    let bookmarkTimer: NodeJS.Timeout | undefined;
    if (parseBool(url.searchParams.get('allowWatchBookmarks')) === true) {
      const period = this.opts.bookmarkPeriodMs ?? DEFAULT_BOOKMARK_PERIOD_MS;
      let sent = url.searchParams.get('resourceVersion') ?? '';
      const bookmark = () => {
        sent = this.sendBookmark(res, query, sent);
        bookmarkTimer = setTimeout(bookmark, period);
      };
      // As the API server does: the first one in time to arrive before a short timeout ends the watch.
      bookmarkTimer = setTimeout(bookmark, timeoutSeconds > 0 ? Math.min(period, timeoutSeconds * 500) : period);
    }
    res.on('close', () => {
      clearTimeout(timeout);
      clearTimeout(bookmarkTimer);
      if (this.heldWatches.delete(res)) this.metrics.watchHeld(-1);
    });
    if (this.health.healthy) res.end();
  }

  /**
   * Sends a BOOKMARK carrying the resourceVersion the cache holds for `query`, so a client that
   * reconnects resumes from it. None when no cached list covers the query, or when the cache is
   * behind what the client already has (`sent`): a bookmark never moves a watcher back. Returns the
   * resourceVersion the client now has.
   */
  private sendBookmark(res: ServerResponse, query: ListQuery, sent: string): string {
    if (res.writableEnded) return sent;
    let list: KubeList | undefined;
    try {
      list = this.cache.list(query);
    } catch {
      return sent;
    }
    const rv = list?.metadata.resourceVersion;
    if (!list || !rv || (rv !== sent && !newer(rv, sent))) return sent;
    const object = { apiVersion: list.apiVersion, kind: list.kind.replace(/List$/, ''), metadata: { resourceVersion: rv } };
    res.write(JSON.stringify({ type: 'BOOKMARK', object }) + '\n');
    return rv;
  }
}

/** Splits a watch stream into its newline-delimited JSON events. */
class LineSplitter {
  private buf = '';
  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer): void {
    this.buf += chunk.toString();
    let nl;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line) this.onLine(line);
    }
  }
}

/** JSON without an `as=` transformation (Table, PartialObjectMetadata), which is what the cache stores. */
function acceptsJson(accept: string | undefined): boolean {
  if (!accept) return true;
  return accept.split(',').some((part) => {
    const [type, ...params] = part.split(';').map((s) => s.trim());
    if (params.some((p) => p.startsWith('as='))) return false;
    return type === 'application/json' || type === '*/*' || type === 'application/*';
  });
}

function relayHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

function scopeOf(r: Request): CacheScope {
  return { component: r.component, group: r.info.apiGroup, version: r.info.apiVersion, resource: r.info.resource };
}

function listQuery(r: Request): ListQuery {
  const p = r.url.searchParams;
  return { ...scopeOf(r), namespace: r.namespace, labelSelector: p.get('labelSelector') ?? '', fieldSelector: p.get('fieldSelector') ?? '' };
}

function describe(r: Request): string {
  const { info, url } = r;
  if (!info.resourceRequest) return `${info.verb} ${info.path}`;
  const what = [info.verb, info.apiGroup ? `${info.resource}.${info.apiGroup}` : info.resource];
  if (info.subresource) what[1] += `/${info.subresource}`;
  if (info.name) what.push(`"${info.name}"`);
  if (info.namespace && !(info.resource === 'namespaces')) what.push(`in namespace "${info.namespace}"`);
  const selectors = ['labelSelector', 'fieldSelector'].map((k) => url.searchParams.get(k)).filter(Boolean);
  if (selectors.length) what.push(`with selector "${selectors.join(';')}"`);
  return `${what.join(' ')} (client ${r.component})`;
}

/** The node whose writes are accepted offline: as given (checked against the certificate), else the certificate's. */
function servedNode(opts: EdgeHubOptions): string | undefined {
  const fromCert = opts.credentials.certPem ? certificateNode(opts.credentials.certPem) : undefined;
  if (opts.nodeName === undefined) return fromCert;
  const problems = isDNS1123Subdomain(opts.nodeName);
  if (problems.length) throw new RangeError(`edgehub: nodeName "${opts.nodeName}": ${problems.join('; ')}`);
  if (fromCert !== undefined && fromCert !== opts.nodeName) {
    throw new RangeError(`edgehub: nodeName "${opts.nodeName}" differs from the client certificate's node "${fromCert}" (CN system:node:${fromCert}); give the certificate's node or leave nodeName out`);
  }
  return opts.nodeName;
}

function unavailable(message: string): ApiError {
  return new ApiError(503, 'ServiceUnavailable', message);
}

/** A held watch with a selector the cloud would have refused simply gets no events. */
function matchesQuietly(query: ListQuery, obj: KubeObject): boolean {
  try {
    return queryMatches(query, obj);
  } catch {
    return false;
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(errors.tooLarge(`edgehub: a write accepted offline may be at most ${limit} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendStatus(res: ServerResponse, err: ApiError): void {
  sendJson(res, err.code, err.toStatus());
}

function sendError(res: ServerResponse, err: unknown): void {
  if (res.headersSent) return void res.end();
  const e = err instanceof ApiError ? err : errors.internal(err instanceof Error ? err.message : String(err));
  sendStatus(res, e);
}
