// Proxies HTTP upgrade requests (WebSocket, SPDY) byte for byte, as kube's UpgradeAwareHandler does
// between kubectl, the API server, the kubelet and the CRI streaming server. Nothing here reads the
// upgraded protocol, so channel.k8s.io WebSockets and SPDY pass alike.
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';

/** How long connecting to the target and reading its response head may take. */
export const UPGRADE_DIAL_TIMEOUT_MS = 30_000;
/** A response head larger than this is refused (Go's http.DefaultMaxHeaderBytes). */
const MAX_RESPONSE_HEAD_BYTES = 1 << 20;
const HEAD_END = Buffer.from('\r\n\r\n');

export interface UpgradeTarget {
  /** `http:` or `https:`; its path and query are where the request goes. */
  url: URL;
  /** For https targets: the CA to verify the server with, and the client certificate to present. */
  tls?: { ca?: string; cert?: string; key?: string };
}

/** The request line and headers sent to the target. Header names keep their case and order. */
export interface UpgradeRequest {
  method: string;
  /** Path and query. */
  path: string;
  headers: [string, string][];
}

export interface UpgradeResponse {
  statusCode: number;
  /** Header values by lower-cased name (repeated headers joined with ", "). */
  headers: Record<string, string>;
  /** The raw status line and headers, up to and including the blank line. */
  rawHead: Buffer;
  /** Bytes that followed the head in the same reads. */
  rest: Buffer;
  /** The connection to the target, paused after the head. */
  socket: Duplex;
}

/** Headers a proxy never passes on: the caller's credentials end at the first hop. */
const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization'];

/**
 * The request `req` becomes at `target`: same method and headers (Upgrade, Connection,
 * Sec-WebSocket-*, X-Stream-Protocol-Version...), Host rewritten, credentials and `drop` removed.
 * The query is the target URL's when it has one, else the original request's.
 */
export function forwardedRequest(req: IncomingMessage, target: URL, drop: string[] = []): UpgradeRequest {
  const dropped = new Set([...CREDENTIAL_HEADERS, 'host', ...drop.map((h) => h.toLowerCase())]);
  const headers: [string, string][] = [['Host', target.host]];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (dropped.has(lower) || lower.startsWith('impersonate-')) continue;
    headers.push([name, req.rawHeaders[i + 1]!]);
  }
  const query = target.search || new URL(req.url ?? '/', 'http://request').search;
  return { method: req.method ?? 'GET', path: target.pathname + query, headers };
}

/**
 * Connects to `target`, sends `request` followed by `head` (bytes the client sent after its own
 * request head), and reads the response head. The caller owns the returned socket.
 */
export function dialUpgrade(target: UpgradeTarget, request: UpgradeRequest, head: Buffer = Buffer.alloc(0)): Promise<UpgradeResponse> {
  const { url } = target;
  const secure = url.protocol === 'https:';
  if (!secure && url.protocol !== 'http:') return Promise.reject(new Error(`cannot proxy an upgrade to ${url.protocol} URL ${url.href}`));
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port || (secure ? 443 : 80));
  const socket: Duplex = secure
    ? tls.connect({ host, port, ca: target.tls?.ca, cert: target.tls?.cert, key: target.tls?.key, servername: net.isIP(host) ? undefined : host })
    : net.connect({ host, port });
  return new Promise<UpgradeResponse>((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const fail = (err: Error) => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(`no response from ${url.host} within ${UPGRADE_DIAL_TIMEOUT_MS} ms`)), UPGRADE_DIAL_TIMEOUT_MS);
    const onError = (err: Error) => fail(new Error(`error dialing backend ${url.host}: ${err.message}`));
    const onClose = () => fail(new Error(`${url.host} closed the connection before answering`));
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf(HEAD_END);
      if (end < 0) {
        if (buffered.length > MAX_RESPONSE_HEAD_BYTES) fail(new Error(`${url.host} sent a response head over ${MAX_RESPONSE_HEAD_BYTES} bytes`));
        return;
      }
      cleanup();
      socket.pause();
      const rawHead = buffered.subarray(0, end + HEAD_END.length);
      const parsed = parseHead(rawHead);
      if (!parsed) {
        socket.destroy();
        return reject(new Error(`${url.host} sent a malformed response head`));
      }
      resolve({ ...parsed, rawHead, rest: buffered.subarray(end + HEAD_END.length), socket });
    };
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.off('data', onData);
    };
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('data', onData);
    const lines = [`${request.method} ${request.path} HTTP/1.1`, ...request.headers.map(([k, v]) => `${k}: ${v}`), '', ''];
    socket.write(Buffer.concat([Buffer.from(lines.join('\r\n'), 'latin1'), head]));
  });
}

function parseHead(raw: Buffer): { statusCode: number; headers: Record<string, string> } | undefined {
  const lines = raw.toString('latin1').split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!status) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return { statusCode: Number(status[1]), headers };
}

/**
 * Hands the upgraded or refused response to the client: a 101 is forwarded and both sockets are
 * then piped until either side closes; any other answer is forwarded with its body, then the client
 * connection is closed (it was an upgrade request; there is no keep-alive to honour).
 */
export function spliceUpgrade(client: Duplex, response: UpgradeResponse): void {
  const upstream = response.socket;
  client.write(response.rawHead);
  if (response.rest.length) client.write(response.rest);
  const destroyBoth = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', destroyBoth);
  upstream.on('error', destroyBoth);
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.end());
  if (response.statusCode === 101) {
    upstream.pipe(client);
    client.pipe(upstream);
    upstream.resume();
    return;
  }
  const length = Number(response.headers['content-length']);
  if (Number.isInteger(length) && length <= response.rest.length) {
    client.end();
    upstream.destroy();
    return;
  }
  let remaining = Number.isInteger(length) ? length - response.rest.length : Infinity;
  upstream.on('data', (chunk: Buffer) => {
    const part = chunk.subarray(0, Math.min(chunk.length, remaining));
    remaining -= part.length;
    client.write(part);
    if (remaining <= 0) {
      client.end();
      upstream.destroy();
    }
  });
  upstream.on('end', () => client.end());
  upstream.resume();
}

/** Proxies the upgrade request `req` (whose socket and head the server's 'upgrade' event gave) to `target`. */
export async function proxyUpgrade(req: IncomingMessage, client: Duplex, head: Buffer, target: UpgradeTarget, drop: string[] = []): Promise<void> {
  const response = await dialUpgrade(target, forwardedRequest(req, target.url, drop), head);
  spliceUpgrade(client, response);
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** Answers on a raw socket (an upgrade request nobody upgraded) and closes it. */
export function respondOnSocket(socket: Duplex, code: number, body: string, contentType = 'application/json'): void {
  if (socket.destroyed) return;
  const length = Buffer.byteLength(body);
  socket.end(`HTTP/1.1 ${code} ${REASONS[code] ?? 'Error'}\r\nContent-Type: ${contentType}\r\nContent-Length: ${length}\r\nCache-Control: no-cache, private\r\nConnection: close\r\n\r\n${body}`);
}
