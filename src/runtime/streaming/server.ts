import { STATUS_CODES, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import { RuntimeError } from '../handler.js';
import { finishCommand, serveCommand } from './command.js';
import { servePortForward } from './portforward.js';
import { COMMAND_PROTOCOLS, PORTFORWARD_PROTOCOLS, chooseProtocol, failureStatus, offeredProtocols } from './protocol.js';
import type { AttachRequest, ExecRequest, PendingRequest, PortDialer, PortForwardRequest, StreamingRuntime } from './runtime.js';
import { serveSpdyCommand } from './spdy-command.js';
import {
  HEADER_ACCEPTED_PROTOCOL_VERSIONS,
  HEADER_PROTOCOL_VERSION,
  PROTOCOL_SPDY_TUNNEL_PORTFORWARD,
  SPDY_COMMAND_PROTOCOLS,
  SPDY_PORTFORWARD_PROTOCOLS,
  isSpdyUpgrade,
  switchingProtocols,
} from './spdy-handshake.js';
import { serveSpdyPortForward } from './spdy-portforward.js';
import { SpdySession } from './spdy-session.js';
import { TOKEN_TTL_MS, TokenCache, TokenCacheFullError } from './tokens.js';

/** The address the streaming server listens on unless told otherwise: loopback, like kubelet's default. */
export const DEFAULT_STREAMING_ADDRESS = '127.0.0.1';
const MAX_PORT = 65_535;
const PATH = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]+)$/;
/** How long a SPDY client gets to open a command's streams or a port-forward pair's second stream (kubelet's DefaultStreamCreationTimeout). */
export const STREAM_CREATION_TIMEOUT_MS = 30_000;

export interface StreamingServerOptions {
  /** How long an issued URL stays usable; TOKEN_TTL_MS (1 minute) when absent. */
  tokenTtlMs?: number;
  /** STREAM_CREATION_TIMEOUT_MS when absent. */
  streamCreationTimeoutMs?: number;
}

/**
 * The CRI streaming server. The runtime's Exec, Attach and PortForward RPCs call `registerExec`,
 * `registerAttach` and `registerPortForward`, which validate the request and return a URL holding
 * a single-use token (valid for a minute). A client then upgrades that URL, in either of the two
 * transports kubelet's streaming server speaks, and the server runs the request against the
 * StreamingRuntime:
 *   - WebSocket with a Kubernetes channel subprotocol (protocol.ts): v5/v4/channel.k8s.io for exec
 *     and attach, v4/portforward.k8s.io for port forwarding (ports from ?port=N or the RPC); or,
 *     for port forwarding, SPDY/3.1+portforward.k8s.io, kubectl's SPDY session tunnelled in
 *     WebSocket messages (served as below).
 *   - SPDY/3.1 (spdy-handshake.ts), what crictl uses and kubectl port-forward reaches the node
 *     with: remotecommand v4/v3/v2/channel.k8s.io with one SPDY stream per stdio part, an error
 *     stream and a resize stream (spdy-command.ts); portforward.k8s.io with an error/data stream pair
 *     per connection, to the port its headers name (spdy-portforward.ts).
 * A token is spent once the upgrade's protocol is agreed. Terminal resizes reach the command
 * through StreamSession.resize on both transports.
 */
export class StreamingServer {
  private readonly tokens: TokenCache<PendingRequest>;
  private readonly wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => chooseProtocol([...offered], ALL_PROTOCOLS) || false });
  private readonly spdySessions = new Set<SpdySession>();
  /** Subprotocols negotiated here rather than by ws, which rejects '/' in one (see onUpgrade). */
  private readonly ownProtocols = new WeakMap<IncomingMessage, string>();
  private readonly streamCreationTimeoutMs: number;
  private server: Server | undefined;
  private base: string | undefined;

  constructor(
    private readonly runtime: StreamingRuntime,
    options: StreamingServerOptions = {},
  ) {
    this.tokens = new TokenCache(options.tokenTtlMs ?? TOKEN_TTL_MS);
    this.streamCreationTimeoutMs = options.streamCreationTimeoutMs ?? STREAM_CREATION_TIMEOUT_MS;
    this.wss.on('headers', (headers: string[], req: IncomingMessage) => {
      const protocol = this.ownProtocols.get(req);
      if (protocol) headers.push(`Sec-WebSocket-Protocol: ${protocol}`);
    });
  }

  async start(options: { address?: string; port?: number } = {}): Promise<void> {
    const server = createServer((req, res) => this.onRequest(req, res));
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, options.address ?? DEFAULT_STREAMING_ADDRESS, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    this.server = server;
    this.base = `http://${host}:${address.port}`;
  }

  /** The server's base URL, e.g. http://127.0.0.1:10010; set once started. */
  get url(): string {
    if (!this.base) throw new Error('streaming server not started');
    return this.base;
  }

  /** Validates a CRI ExecRequest and returns the URL that runs it. */
  registerExec(request: ExecRequest): string {
    requireContainer(request.containerId);
    if (request.cmd.length === 0) throw new RuntimeError('InvalidArgument', 'exec needs a command (cmd is empty)');
    validateStreams(request);
    return this.issue({ kind: 'exec', ...request });
  }

  /** Validates a CRI AttachRequest and returns the URL that attaches. */
  registerAttach(request: AttachRequest): string {
    requireContainer(request.containerId);
    validateStreams(request);
    if (!this.runtime.attach) throw new RuntimeError('Internal', 'this runtime cannot attach to containers');
    return this.issue({ kind: 'attach', ...request });
  }

  /** Validates a CRI PortForwardRequest and returns the URL that forwards. */
  registerPortForward(request: PortForwardRequest): string {
    if (!request.podSandboxId) throw new RuntimeError('InvalidArgument', 'port forward needs a pod_sandbox_id');
    for (const port of request.ports) checkPort(port);
    return this.issue({ kind: 'portforward', ...request });
  }

  async close(): Promise<void> {
    for (const client of this.wss.clients) client.terminate();
    this.wss.close();
    for (const session of this.spdySessions) session.destroy();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private issue(request: PendingRequest): string {
    try {
      return `${this.url}/${request.kind}/${this.tokens.issue(request)}`;
    } catch (err) {
      if (err instanceof TokenCacheFullError) throw new RuntimeError('Internal', err.message);
      throw err;
    }
  }

  private lookup(url: string | undefined): { kind: string; token: string } | undefined {
    const match = PATH.exec(new URL(url ?? '/', 'http://streaming').pathname);
    if (!match) return undefined;
    const token = match[2]!;
    return this.tokens.has(token) ? { kind: match[1]!, token } : undefined;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const found = this.lookup(req.url);
    if (!found) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('unknown or expired streaming token\n');
    res.writeHead(400, { 'content-type': 'text/plain' }).end(`${UPGRADE_NEEDED}\n`);
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const found = this.lookup(req.url);
    if (!found) return refuse(socket, 404, 'unknown or expired streaming token');
    if (isSpdyUpgrade(req.headers.upgrade)) return this.onSpdyUpgrade(req, socket as Socket, head, found);
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return refuse(socket, 400, `cannot upgrade to ${req.headers.upgrade}: ${UPGRADE_NEEDED}`);
    const supported = found.kind === 'portforward' ? WEBSOCKET_PORTFORWARD_PROTOCOLS : COMMAND_PROTOCOLS;
    const protocol = chooseProtocol(offeredProtocols(req.headers['sec-websocket-protocol']), supported);
    if (protocol === undefined) return refuse(socket, 400, `no supported subprotocol offered; this server speaks ${supported.join(', ')}`);
    const request = this.tokens.take(found.token);
    if (!request || request.kind !== found.kind) return refuse(socket, 404, 'unknown or expired streaming token');
    // A SPDY tunnel names its ports per stream; the channel framing needs them up front.
    const ports = request.kind === 'portforward' && protocol !== PROTOCOL_SPDY_TUNNEL_PORTFORWARD ? portsOf(req.url, request.ports) : [];
    if (ports instanceof Error) return refuse(socket, 400, ports.message);
    if (protocol === PROTOCOL_SPDY_TUNNEL_PORTFORWARD) {
      // ws accepts only RFC 7230 tokens as subprotocols, and '/' is not a token character.
      delete req.headers['sec-websocket-protocol'];
      this.ownProtocols.set(req, protocol);
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      ws.binaryType = 'nodebuffer';
      void this.serve(ws, protocol, request, ports);
    });
  }

  /** The SPDY handshake (spdy-handshake.ts); the token is spent only once a protocol is agreed. */
  private onSpdyUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, found: { kind: string; token: string }): void {
    const supported: readonly string[] = found.kind === 'portforward' ? SPDY_PORTFORWARD_PROTOCOLS : SPDY_COMMAND_PROTOCOLS;
    const offered = offeredProtocols(req.headers[HEADER_PROTOCOL_VERSION.toLowerCase()]);
    if (offered.length === 0) return refuse(socket, 400, `${HEADER_PROTOCOL_VERSION} is required; this server speaks ${supported.join(', ')}`);
    const protocol = offered.find((offer) => supported.includes(offer));
    if (protocol === undefined) {
      const message = `unable to negotiate a stream protocol: the client offers ${offered.join(', ')}, this server speaks ${supported.join(', ')}`;
      return refuse(socket, 403, message, { [HEADER_ACCEPTED_PROTOCOL_VERSIONS]: supported.join(', ') });
    }
    const request = this.tokens.take(found.token);
    if (!request || request.kind !== found.kind) return refuse(socket, 404, 'unknown or expired streaming token');
    void this.serveSpdy(socket, head, protocol, request);
  }

  private async serveSpdy(socket: Socket, head: Buffer, protocol: string, request: PendingRequest): Promise<void> {
    let dial: PortDialer | undefined;
    if (request.kind === 'portforward') {
      try {
        dial = await this.runtime.portDialer(request.podSandboxId);
      } catch (err) {
        return refuse(socket, 500, (err as Error).message);
      }
    }
    socket.setNoDelay(true);
    socket.write(switchingProtocols(protocol));
    const session = this.track(new SpdySession(socket, 'server', head));
    if (request.kind === 'portforward') {
      return serveSpdyPortForward(session, request.podSandboxId, dial!, this.streamCreationTimeoutMs);
    }
    const options = { tty: request.tty, stdin: request.stdin };
    const start = () => (request.kind === 'exec' ? this.runtime.exec(request.containerId, request.cmd, options) : this.runtime.attach!(request.containerId, options));
    await serveSpdyCommand(session, protocol, request, start, this.streamCreationTimeoutMs);
  }

  private track(session: SpdySession): SpdySession {
    this.spdySessions.add(session);
    void session.closed.then(() => this.spdySessions.delete(session));
    return session;
  }

  private async serve(ws: WebSocket, protocol: string, request: PendingRequest, ports: number[]): Promise<void> {
    // The client may send (stdin, a close signal) before the session has started; keep it for the session.
    const held: Buffer[] = [];
    const hold = (data: Buffer) => held.push(data);
    ws.on('message', hold);
    const release = () => ws.off('message', hold);
    if (request.kind === 'portforward') {
      let dial: PortDialer;
      try {
        dial = await this.runtime.portDialer(request.podSandboxId);
      } catch (err) {
        ws.close(1011, truncateReason((err as Error).message));
        return;
      }
      release();
      if (protocol === PROTOCOL_SPDY_TUNNEL_PORTFORWARD) {
        const session = this.track(new SpdySession(createWebSocketStream(ws), 'server', Buffer.concat(held)));
        return serveSpdyPortForward(session, request.podSandboxId, dial, this.streamCreationTimeoutMs);
      }
      servePortForward(ws, ports, dial, held);
      return;
    }
    try {
      const options = { tty: request.tty, stdin: request.stdin };
      const session =
        request.kind === 'exec' ? await this.runtime.exec(request.containerId, request.cmd, options) : await this.runtime.attach!(request.containerId, options);
      release();
      await serveCommand(ws, protocol, session, request, held);
    } catch (err) {
      finishCommand(ws, protocol, failureStatus((err as Error).message));
    }
  }
}

const WEBSOCKET_PORTFORWARD_PROTOCOLS = [...PORTFORWARD_PROTOCOLS, PROTOCOL_SPDY_TUNNEL_PORTFORWARD];
const ALL_PROTOCOLS = [...new Set<string>([...COMMAND_PROTOCOLS, ...WEBSOCKET_PORTFORWARD_PROTOCOLS])];
const UPGRADE_NEEDED = 'this streaming server needs an upgrade: to WebSocket with a channel.k8s.io subprotocol, or to SPDY/3.1';

function requireContainer(id: string): void {
  if (!id) throw new RuntimeError('InvalidArgument', 'container_id is required');
}

/** CRI's rules for exec and attach streams (as kubelet's streaming server checks them). */
function validateStreams(request: { tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }): void {
  if (request.tty && request.stderr) throw new RuntimeError('InvalidArgument', 'tty and stderr cannot both be true');
  if (!request.stdin && !request.stdout && !request.stderr) throw new RuntimeError('InvalidArgument', 'one of stdin, stdout or stderr must be set');
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > MAX_PORT) throw new RuntimeError('InvalidArgument', `invalid port ${port}: must be 1-${MAX_PORT}`);
}

/** The ports of a port-forward URL (?port=80&port=8080), else the RPC's; an Error when invalid or none. */
function portsOf(url: string | undefined, fallback: number[]): number[] | Error {
  const texts = new URL(url ?? '/', 'http://streaming').searchParams.getAll('port');
  const ports = texts.length > 0 ? texts.map((text) => (/^\d+$/.test(text) ? Number(text) : NaN)) : fallback;
  if (ports.length === 0) return new Error('no port to forward: give ?port=N');
  const bad = ports.find((port) => !Number.isInteger(port) || port < 1 || port > MAX_PORT);
  return bad === undefined ? ports : new Error(`invalid port in ${texts.join(',')}: must be 1-${MAX_PORT}`);
}

/** WebSocket close reasons are limited to 123 bytes. */
function truncateReason(message: string): string {
  return Buffer.from(message).subarray(0, 120).toString();
}

function refuse(socket: Duplex, code: number, message: string, headers: Record<string, string> = {}): void {
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  socket.end(
    `HTTP/1.1 ${code} ${STATUS_CODES[code]}\r\nContent-Type: text/plain\r\n${extra}Content-Length: ${Buffer.byteLength(message) + 1}\r\nConnection: close\r\n\r\n${message}\n`,
  );
}
