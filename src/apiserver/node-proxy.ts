// The API server's side of the kubelet connection: pods/log, pods/exec, pods/attach, pods/portforward
// and nodes/proxy reach the node server of the pod's node, over TLS verified against the cluster CA,
// with the API server's kubelet-client certificate (kube-apiserver --kubelet-client-certificate).
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { ApiError, errors } from '../api/errors.js';
import type { ResourceDef } from '../api/resources.js';
import type { KubeObject } from '../api/types.js';
import { parseLogQuery } from '../agent/server/log-options.js';
import { parseBool, type RequestInfo } from './request-info.js';
import { tunnelSpdyOverWebSocket, tunneledSpdyProtocols } from './spdy-tunnel.js';
import type { Storage } from './storage.js';
import { proxyUpgrade, type UpgradeTarget } from './upgrade-proxy.js';

/** The kubelet's port, used when a Node publishes no daemonEndpoints.kubeletEndpoint. */
export const DEFAULT_KUBELET_PORT = 10250;
/** kube-apiserver's default --kubelet-preferred-address-types, InternalIP first as Atoll's nodes report it. */
const PREFERRED_ADDRESS_TYPES = ['InternalIP', 'Hostname', 'InternalDNS', 'ExternalIP', 'ExternalDNS'];
/** How long connecting to a node server may take before a plain (non-upgrade) request fails. */
export const NODE_DIAL_TIMEOUT_MS = 30_000;
/** How much of a node's error body is read into the Status message. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const STREAM_SUBRESOURCES = new Set(['exec', 'attach', 'portforward']);

export interface NodeProxyOptions {
  storage: Storage;
  pods: ResourceDef;
  nodes: ResourceDef;
  /** The cluster CA (node serving certificates chain to it) and the kubelet-client certificate. */
  tls: { caPem: string; certPem: string; keyPem: string };
}

/**
 * Serves the subresources that live on a node. Plain requests (log, nodes/proxy) come through
 * `serve` with a response; upgrade requests (exec, attach, portforward, and upgrades through
 * nodes/proxy) through `upgrade` with the raw socket. Both run after authentication and RBAC
 * (exec, attach and portforward are `create` even as GET upgrades; see request-info).
 */
export class NodeProxy {
  private readonly agent: https.Agent;

  constructor(private readonly opts: NodeProxyOptions) {
    this.agent = new https.Agent({ keepAlive: true, ca: opts.tls.caPem, cert: opts.tls.certPem, key: opts.tls.keyPem });
  }

  /** Whether a resource request is one of the node subresources served here. */
  static handles(info: RequestInfo): boolean {
    if (!info.resourceRequest || info.apiGroup !== '') return false;
    if (info.resource === 'pods') return info.subresource === 'log' || STREAM_SUBRESOURCES.has(info.subresource);
    return info.resource === 'nodes' && info.subresource === 'proxy';
  }

  close(): void {
    this.agent.destroy();
  }

  async serve(req: IncomingMessage, res: ServerResponse, url: URL, info: RequestInfo): Promise<void> {
    if (info.resource === 'nodes') return this.proxyToNode(req, res, url, info);
    if (info.subresource !== 'log') throw errors.badRequest('Upgrade request required');
    if (info.verb !== 'get') throw errors.methodNotAllowed('the server does not allow this method on the requested resource');
    const pod = await this.opts.storage.get(this.opts.pods, info.namespace, info.name);
    try {
      parseLogQuery(url.searchParams);
    } catch (err) {
      throw errors.badRequest((err as Error).message);
    }
    const container = podContainer(pod, url.searchParams.get('container'));
    const node = await this.nodeOf(pod);
    const query = new URLSearchParams(url.searchParams);
    query.delete('container');
    const path = `/containerLogs/${seg(info.namespace)}/${seg(info.name)}/${seg(container)}${suffix(query)}`;
    const upstream = await this.request(node, 'GET', path, {});
    if (upstream.statusCode !== 200) throw await nodeError(upstream);
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    res.on('close', () => upstream.destroy());
    upstream.pipe(res);
  }

  async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL, info: RequestInfo): Promise<void> {
    if (info.resource === 'nodes') {
      const node = await this.nodeByName(info.name);
      return proxyUpgrade(req, socket, head, this.target(node, restPath(url) + url.search));
    }
    const pod = await this.opts.storage.get(this.opts.pods, info.namespace, info.name);
    const node = await this.nodeOf(pod);
    const q = url.searchParams;
    const query = new URLSearchParams();
    let path: string;
    if (info.subresource === 'portforward') {
      for (const port of q.getAll('ports')) query.append('port', port);
      for (const port of q.getAll('port')) query.append('port', port);
      path = `/portForward/${seg(info.namespace)}/${seg(info.name)}`;
    } else {
      const container = podContainer(pod, q.get('container'));
      if (info.subresource === 'exec') for (const c of q.getAll('command')) query.append('command', c);
      // The kubelet's names for the stream flags (k8s.io/api core/v1 Exec*Param), as kube-apiserver sends them.
      for (const [from, to] of [['stdin', 'input'], ['stdout', 'output'], ['stderr', 'error'], ['tty', 'tty']] as const) {
        if (parseBool(q.get(from)) === true) query.set(to, '1');
      }
      path = `/${info.subresource}/${seg(info.namespace)}/${seg(info.name)}/${seg(container)}`;
    }
    const target = this.target(node, path + suffix(query));
    const tunneled = info.subresource === 'portforward' ? tunneledSpdyProtocols(req) : [];
    if (tunneled.length > 0) return tunnelSpdyOverWebSocket(req, socket, head, target, tunneled);
    return proxyUpgrade(req, socket, head, target);
  }

  /** nodes/<name>/proxy/<path>: any method, passed through with its body. */
  private async proxyToNode(req: IncomingMessage, res: ServerResponse, url: URL, info: RequestInfo): Promise<void> {
    const node = await this.nodeByName(info.name);
    const headers: Record<string, string> = {};
    for (const name of ['accept', 'content-type', 'content-length', 'user-agent']) {
      const value = req.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const upstream = await this.request(node, req.method ?? 'GET', restPath(url) + url.search, headers, req);
    const out: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(upstream.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
    }
    res.writeHead(upstream.statusCode ?? 502, out);
    res.on('close', () => upstream.destroy());
    upstream.pipe(res);
  }

  private target(node: NodeAddress, path: string): UpgradeTarget {
    const { caPem, certPem, keyPem } = this.opts.tls;
    return { url: new URL(`https://${node.host}:${node.port}${path}`), tls: { ca: caPem, cert: certPem, key: keyPem } };
  }

  private request(node: NodeAddress, method: string, path: string, headers: Record<string, string>, body?: IncomingMessage): Promise<IncomingMessage> {
    const url = `https://${node.host}:${node.port}${path}`;
    return new Promise((resolve, reject) => {
      const req = https.request(
        { host: node.host.replace(/^\[(.*)\]$/, '$1'), port: node.port, method, path, headers, agent: this.agent, timeout: NODE_DIAL_TIMEOUT_MS },
        (res) => {
          req.setTimeout(0);
          resolve(res);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${NODE_DIAL_TIMEOUT_MS} ms`)));
      req.on('error', (err) => reject(new ApiError(500, 'InternalError', `${method} "${url}": ${err.message}`)));
      if (body) body.pipe(req);
      else req.end();
    });
  }

  private async nodeOf(pod: KubeObject): Promise<NodeAddress> {
    const nodeName = (pod.spec as { nodeName?: string } | undefined)?.nodeName;
    if (!nodeName) throw errors.badRequest(`pod ${pod.metadata.name} does not have a host assigned`);
    return this.nodeByName(nodeName);
  }

  private async nodeByName(name: string): Promise<NodeAddress> {
    return nodeAddress(await this.opts.storage.get(this.opts.nodes, '', name));
  }
}

interface NodeAddress {
  /** Ready for a URL: IPv6 in brackets. */
  host: string;
  port: number;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);

/** Where a Node's server listens: its preferred address and kubelet endpoint port. */
export function nodeAddress(node: KubeObject): NodeAddress {
  const status = (node.status ?? {}) as { addresses?: { type: string; address: string }[]; daemonEndpoints?: { kubeletEndpoint?: { Port?: number } } };
  const addresses = status.addresses ?? [];
  const chosen = PREFERRED_ADDRESS_TYPES.map((type) => addresses.find((a) => a.type === type && a.address)).find(Boolean);
  if (!chosen) {
    throw errors.internal(`no preferred addresses found; known addresses: [${addresses.map((a) => `{${a.type} ${a.address}}`).join(' ')}]`);
  }
  const port = status.daemonEndpoints?.kubeletEndpoint?.Port || DEFAULT_KUBELET_PORT;
  return { host: isIP(chosen.address) === 6 ? `[${chosen.address}]` : chosen.address, port };
}

/** The container a request names, or the pod's only container; kube's messages otherwise. */
export function podContainer(pod: KubeObject, requested: string | null): string {
  const spec = (pod.spec ?? {}) as { containers?: { name: string }[]; initContainers?: { name: string }[]; ephemeralContainers?: { name: string }[] };
  const all = [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])].map((c) => c.name);
  const name = pod.metadata.name;
  if (requested) {
    if (!all.includes(requested)) throw errors.badRequest(`container ${requested} is not valid for pod ${name}`);
    return requested;
  }
  const containers = spec.containers ?? [];
  if (containers.length === 1) return containers[0]!.name;
  if (containers.length === 0) throw errors.badRequest(`pod ${name} does not have a container`);
  throw errors.badRequest(`a container name must be specified for pod ${name}, choose one of: [${all.join(' ')}]`);
}

/** The node's error answer as an ApiError: its Status when it sent one, else its text (kube's checker). */
async function nodeError(res: IncomingMessage): Promise<ApiError> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    if (size < MAX_ERROR_BODY_BYTES) chunks.push(chunk);
    size += chunk.length;
  }
  const text = Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY_BYTES).toString().trim();
  const code = res.statusCode ?? 500;
  try {
    const status = JSON.parse(text) as { kind?: string; message?: string; reason?: string; code?: number };
    if (status.kind === 'Status') return new ApiError(status.code || code, status.reason || 'Unknown', status.message ?? text);
  } catch {
    // plain text: below
  }
  if (code === 400) return errors.badRequest(text);
  if (code === 500) return errors.internal(text);
  return new ApiError(code, code === 404 ? 'NotFound' : 'Unknown', text || `the node answered ${code}`);
}

function seg(value: string): string {
  return encodeURIComponent(value);
}

function suffix(query: URLSearchParams): string {
  const text = query.toString();
  return text ? `?${text}` : '';
}

/** The path after `nodes/<name>/proxy` in the request, kept encoded as it arrived. */
function restPath(url: URL): string {
  const parts = url.pathname.split('/');
  return '/' + parts.slice(parts.indexOf('nodes') + 3).join('/');
}
