import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { KubeObject } from '../../api/types.js';
import { parseBool } from '../../apiserver/request-info.js';
import { proxyUpgrade, respondOnSocket } from '../../apiserver/upgrade-proxy.js';
import type { KubeClient } from '../../client/client.js';
import { isGrpcError, CriCode, type CriClient } from '../../runtime/cri/index.js';
import { NodeSampler, type StatsSample } from '../stats-sample.js';
import { SummaryStats } from '../stats.js';
import { NodeAuthorizer, requestAttributes } from './auth.js';
import { cadvisorMetrics } from './cadvisor-metrics.js';
import { streamContainerLog } from './container-logs.js';
import { parseLogQuery } from './log-options.js';
import { NodeRequestError, logContainer, readySandbox, runningContainer } from './pod-containers.js';
import { PROMETHEUS_CONTENT_TYPE } from './prometheus-text.js';
import { resourceMetrics } from './resource-metrics.js';

/** The kubelet's port, where the API server finds a node's server unless the Node says otherwise. */
export const DEFAULT_NODE_SERVER_PORT = 10250;
const MAX_PORT = 65_535;

export interface NodeServerOptions {
  /** Address to listen on, e.g. '0.0.0.0' or the node IP. */
  address: string;
  /** 0 picks a free port. */
  port: number;
  /** The serving certificate and key, and the cluster CA client certificates are verified against. */
  tls: { certPem: string; keyPem: string; caPem: string };
  cri: CriClient;
  /** The pods the agent runs on this node, as the API has them. */
  pods: () => KubeObject[];
  nodeName: string;
  /**
   * The API client TokenReview and SubjectAccessReview go through, for callers other than the API
   * server's kubelet-client certificate. Without one, only that certificate is let in.
   */
  client?: KubeClient;
  /** The filesystem reported as the node's `fs` in the Summary (the agent's data dir); default '/'. */
  rootDir?: string;
  /**
   * The runtime's admin socket, where block I/O and packet counters come from (CRI has no field for
   * them); without it /metrics/cadvisor leaves them out.
   */
  adminSocket?: string;
  log?: (line: string) => void;
}

export interface NodeServer {
  port: number;
  close(): Promise<void>;
}

/**
 * The node's HTTPS server on the kubelet's paths (port 10250):
 *
 *   GET /healthz                                          ok
 *   GET /pods                                             PodList of the node's pods
 *   GET /stats/summary                                    kubelet Summary API
 *   GET /metrics/resource                                 the kubelet's resource metrics (Prometheus text)
 *   GET /metrics/cadvisor                                 cAdvisor's container metrics (Prometheus text)
 *   GET /containerLogs/<ns>/<pod>/<container>?follow&...  the container's log as text
 *   upgrade /exec|attach/<ns>/<pod>[/<uid>]/<container>   CRI Exec / Attach, proxied to the streaming server
 *   upgrade /portForward/<ns>/<pod>[/<uid>]               CRI PortForward, likewise
 *
 * Every request is authenticated and authorized first (see NodeAuthorizer); errors are Status bodies.
 */
export async function startNodeServer(opts: NodeServerOptions): Promise<NodeServer> {
  const handler = new NodeHandler(opts);
  const server = https.createServer(
    { cert: opts.tls.certPem, key: opts.tls.keyPem, ca: opts.tls.caPem, requestCert: true, rejectUnauthorized: false },
    (req, res) => void handler.request(req, res),
  );
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void handler.upgrade(req, socket, head));
  // Log streams follow for as long as the client wants.
  server.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.address, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        handler.abort.abort();
        for (const socket of handler.upgraded) socket.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

type Route = { kind: 'healthz' | 'pods' | 'summary' | 'resourceMetrics' | 'cadvisorMetrics' } | { kind: 'logs'; namespace: string; pod: string; container: string } | StreamRoute;

type StreamRoute =
  | { kind: 'exec' | 'attach'; namespace: string; pod: string; container: string }
  | { kind: 'portForward'; namespace: string; pod: string };

class NodeHandler {
  readonly abort = new AbortController();
  /** Upgraded connections outlive their request; closing the server ends them. */
  readonly upgraded = new Set<Duplex>();
  private readonly auth: NodeAuthorizer;
  private readonly sampler: NodeSampler;
  private readonly summary = new SummaryStats();
  private readonly log: (line: string) => void;

  constructor(private readonly opts: NodeServerOptions) {
    this.auth = new NodeAuthorizer(opts.client);
    this.log = opts.log ?? ((line) => console.error(line));
    this.sampler = new NodeSampler({ cri: opts.cri, nodeName: opts.nodeName, rootDir: opts.rootDir, adminSocket: opts.adminSocket, log: this.log });
  }

  async request(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'https://node');
      await this.admit(req, url);
      const route = routeOf(url.pathname);
      switch (route.kind) {
        case 'healthz':
          res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
          return void res.end('ok');
        case 'pods':
          return sendJson(res, 200, { kind: 'PodList', apiVersion: 'v1', metadata: {}, items: this.opts.pods() });
        case 'summary':
          return sendJson(res, 200, this.summary.summary(await this.sampler.sample()));
        case 'resourceMetrics':
          return sendText(res, resourceMetrics(await this.metricsSample(false)));
        case 'cadvisorMetrics':
          return sendText(res, cadvisorMetrics(await this.metricsSample(true)));
        case 'logs':
          return await this.containerLogs(route, url, res);
        default:
          throw new NodeRequestError(400, `${route.kind} needs a connection upgrade (WebSocket or SPDY)`);
      }
    } catch (err) {
      const { code, message } = this.failure(err);
      if (res.headersSent) return void res.destroy();
      sendJson(res, code, statusBody(code, message));
    }
  }

  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    this.upgraded.add(socket);
    socket.on('close', () => this.upgraded.delete(socket));
    try {
      const url = new URL(req.url ?? '/', 'https://node');
      await this.admit(req, url);
      const route = routeOf(url.pathname);
      if (route.kind !== 'exec' && route.kind !== 'attach' && route.kind !== 'portForward') {
        throw new NodeRequestError(400, `${url.pathname} cannot be upgraded`);
      }
      this.requirePod(route.namespace, route.pod);
      const streamUrl = await this.streamingUrl(route, url.searchParams);
      await proxyUpgrade(req, socket, head, { url: new URL(streamUrl) });
    } catch (err) {
      const { code, message } = this.failure(err);
      respondOnSocket(socket, code, JSON.stringify(statusBody(code, message)));
    }
  }

  /** A failed sample is answered as the kubelet does: 200 with the scrape-error gauge at 1. */
  private async metricsSample(extended: boolean): Promise<StatsSample | undefined> {
    try {
      return await this.sampler.sample({ extended });
    } catch (err) {
      this.log(`node server: metrics: ${(err as Error).message}`);
      return undefined;
    }
  }

  private async admit(req: IncomingMessage, url: URL): Promise<void> {
    const decision = await this.auth.check(req, requestAttributes(req.method ?? 'GET', url.pathname, this.opts.nodeName));
    if (!decision.allowed) throw new NodeRequestError(decision.code, decision.message);
  }

  private failure(err: unknown): { code: number; message: string } {
    if (err instanceof NodeRequestError) return { code: err.code, message: err.message };
    if (isGrpcError(err)) {
      const code = err.code === CriCode.NOT_FOUND ? 404 : err.code === CriCode.INVALID_ARGUMENT ? 400 : 500;
      return { code, message: err.details };
    }
    this.log(`node server: ${(err as Error).stack ?? String(err)}`);
    return { code: 500, message: (err as Error).message };
  }

  /** The pod as the agent knows it; the kubelet answers 404 for pods it does not run. */
  private requirePod(namespace: string, name: string): KubeObject {
    const pod = this.opts.pods().find((p) => p.metadata.namespace === namespace && p.metadata.name === name);
    if (!pod) throw new NodeRequestError(404, `pod "${name}" does not exist`);
    return pod;
  }

  private async containerLogs(route: { namespace: string; pod: string; container: string }, url: URL, res: ServerResponse): Promise<void> {
    const pod = this.requirePod(route.namespace, route.pod);
    const spec = (pod.spec ?? {}) as { containers?: { name: string }[]; initContainers?: { name: string }[]; ephemeralContainers?: { name: string }[] };
    const names = [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])].map((c) => c.name);
    if (!names.includes(route.container)) throw new NodeRequestError(404, `container "${route.container}" not found in pod "${route.pod}"`);
    let options;
    try {
      options = parseLogQuery(url.searchParams);
    } catch (err) {
      throw new NodeRequestError(400, (err as Error).message);
    }
    const { cri } = this.opts;
    const container = await logContainer(cri, route.namespace, route.pod, route.container, options.previous);
    const status = (await cri.ContainerStatus({ container_id: container.id })).status;
    if (!status?.log_path) throw new NodeRequestError(400, `container "${route.container}" in pod "${route.pod}" has no log file`);
    const source = {
      path: status.log_path,
      running: async () => (await cri.ContainerStatus({ container_id: container.id }).catch(() => undefined))?.status?.state === 'CONTAINER_RUNNING',
    };

    const abort = new AbortController();
    const stop = () => abort.abort();
    res.on('close', stop);
    this.abort.signal.addEventListener('abort', stop, { once: true });
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    const write = (chunk: Buffer) =>
      new Promise<void>((resolve) => {
        if (abort.signal.aborted || res.write(chunk)) return resolve();
        const done = () => {
          res.off('drain', done);
          abort.signal.removeEventListener('abort', done);
          resolve();
        };
        res.on('drain', done);
        abort.signal.addEventListener('abort', done, { once: true });
      });
    try {
      await streamContainerLog(source, options, write, abort.signal);
      res.end();
    } finally {
      this.abort.signal.removeEventListener('abort', stop);
    }
  }

  private async streamingUrl(route: StreamRoute, query: URLSearchParams): Promise<string> {
    const { cri } = this.opts;
    if (route.kind === 'portForward') {
      const sandbox = await readySandbox(cri, route.namespace, route.pod);
      return (await cri.PortForward({ pod_sandbox_id: sandbox.id, port: portsOf(query) })).url;
    }
    const streams = {
      stdin: flag(query, 'input') || flag(query, 'stdin'),
      stdout: flag(query, 'output') || flag(query, 'stdout'),
      stderr: flag(query, 'error') || flag(query, 'stderr'),
      tty: flag(query, 'tty'),
    };
    if (!streams.stdin && !streams.stdout && !streams.stderr) throw new NodeRequestError(400, 'you must specify at least 1 of stdin, stdout, stderr');
    const container = await runningContainer(cri, route.namespace, route.pod, route.container);
    if (route.kind === 'attach') return (await cri.Attach({ container_id: container.id, ...streams })).url;
    const cmd = query.getAll('command');
    if (cmd.length === 0) throw new NodeRequestError(400, 'you must specify at least one command for the container');
    return (await cri.Exec({ container_id: container.id, cmd, ...streams })).url;
  }
}

/** Stream flags arrive as "1" from the API server (kube's kubelet URL) and as booleans from other callers. */
function flag(query: URLSearchParams, name: string): boolean {
  const value = query.get(name);
  return value === '1' || parseBool(value) === true;
}

function portsOf(query: URLSearchParams): number[] {
  return query.getAll('port').map((text) => {
    const port = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!Number.isInteger(port) || port < 1 || port > MAX_PORT) throw new NodeRequestError(400, `invalid port ${JSON.stringify(text)}: must be 1-${MAX_PORT}`);
    return port;
  });
}

function routeOf(pathname: string): Route {
  let parts: string[];
  try {
    parts = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    throw new NodeRequestError(400, `the request path is not valid percent-encoding: ${pathname}`);
  }
  const [first, ...rest] = parts;
  if (first === 'healthz' && rest.length === 0) return { kind: 'healthz' };
  if (first === 'pods' && rest.length === 0) return { kind: 'pods' };
  if (first === 'stats' && rest.length === 1 && rest[0] === 'summary') return { kind: 'summary' };
  if (first === 'metrics' && rest.length === 1 && rest[0] === 'resource') return { kind: 'resourceMetrics' };
  if (first === 'metrics' && rest.length === 1 && rest[0] === 'cadvisor') return { kind: 'cadvisorMetrics' };
  if (first === 'containerLogs' && rest.length === 3) return { kind: 'logs', namespace: rest[0]!, pod: rest[1]!, container: rest[2]! };
  // exec and attach take an optional pod uid before the container, as the kubelet's routes do.
  if ((first === 'exec' || first === 'attach') && (rest.length === 3 || rest.length === 4)) {
    return { kind: first, namespace: rest[0]!, pod: rest[1]!, container: rest[rest.length - 1]! };
  }
  if (first === 'portForward' && (rest.length === 2 || rest.length === 3)) return { kind: 'portForward', namespace: rest[0]!, pod: rest[1]! };
  throw new NodeRequestError(404, `the node server has no ${pathname}`);
}

const REASONS: Record<number, string> = { 400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 500: 'InternalError' };

function statusBody(code: number, message: string): object {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: REASONS[code] ?? 'Unknown', code };
}

function sendText(res: ServerResponse, text: string): void {
  res.writeHead(200, { 'Content-Type': PROMETHEUS_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-cache, private' });
  res.end(text);
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const json = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(json), 'Cache-Control': 'no-cache, private' });
  res.end(json);
}
