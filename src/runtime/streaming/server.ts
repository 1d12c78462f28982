import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { RuntimeError } from '../handler.js';
import { finishCommand, serveCommand } from './command.js';
import { dialInNetns, servePortForward } from './portforward.js';
import { COMMAND_PROTOCOLS, PORTFORWARD_PROTOCOLS, chooseProtocol, failureStatus, offeredProtocols } from './protocol.js';
import type { AttachRequest, ExecRequest, PendingRequest, PortForwardRequest, StreamingRuntime } from './runtime.js';
import { TOKEN_TTL_MS, TokenCache, TokenCacheFullError } from './tokens.js';

/** The address the streaming server listens on unless told otherwise: loopback, like kubelet's default. */
export const DEFAULT_STREAMING_ADDRESS = '127.0.0.1';
const MAX_PORT = 65_535;
const PATH = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]+)$/;

export interface StreamingServerOptions {
  /** How long an issued URL stays usable; TOKEN_TTL_MS (1 minute) when absent. */
  tokenTtlMs?: number;
}

/**
 * The CRI streaming server. The runtime's Exec, Attach and PortForward RPCs call `registerExec`,
 * `registerAttach` and `registerPortForward`, which validate the request and return a URL holding
 * a single-use token (valid for a minute). A client then opens that URL as a WebSocket with a
 * Kubernetes channel subprotocol (see protocol.ts), and the server runs the request against the
 * StreamingRuntime. SPDY upgrades are refused with 400.
 */
export class StreamingServer {
  private readonly tokens: TokenCache<PendingRequest>;
  private readonly wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => chooseProtocol([...offered], ALL_PROTOCOLS) || false });
  private server: Server | undefined;
  private base: string | undefined;

  constructor(
    private readonly runtime: StreamingRuntime,
    options: StreamingServerOptions = {},
  ) {
    this.tokens = new TokenCache(options.tokenTtlMs ?? TOKEN_TTL_MS);
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
    res
      .writeHead(400, { 'content-type': 'text/plain' })
      .end('this streaming server speaks WebSocket with the channel.k8s.io subprotocols; SPDY is not supported\n');
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const found = this.lookup(req.url);
    if (!found) return refuse(socket, 404, 'unknown or expired streaming token');
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return refuse(socket, 400, 'only WebSocket upgrades are supported (SPDY is not)');
    const supported = found.kind === 'portforward' ? PORTFORWARD_PROTOCOLS : COMMAND_PROTOCOLS;
    const protocol = chooseProtocol(offeredProtocols(req.headers['sec-websocket-protocol']), supported);
    if (protocol === undefined) return refuse(socket, 400, `no supported subprotocol offered; this server speaks ${supported.join(', ')}`);
    const request = this.tokens.take(found.token);
    if (!request || request.kind !== found.kind) return refuse(socket, 404, 'unknown or expired streaming token');
    const ports = request.kind === 'portforward' ? portsOf(req.url, request.ports) : [];
    if (ports instanceof Error) return refuse(socket, 400, ports.message);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      ws.binaryType = 'nodebuffer';
      void this.serve(ws, protocol, request, ports);
    });
  }

  private async serve(ws: WebSocket, protocol: string, request: PendingRequest, ports: number[]): Promise<void> {
    // The client may send (stdin, a close signal) before the session has started; keep it for the session.
    const held: Buffer[] = [];
    const hold = (data: Buffer) => held.push(data);
    ws.on('message', hold);
    const release = () => ws.off('message', hold);
    if (request.kind === 'portforward') {
      let netns: string;
      try {
        netns = await this.runtime.podNetns(request.podSandboxId);
      } catch (err) {
        ws.close(1011, truncateReason((err as Error).message));
        return;
      }
      release();
      servePortForward(ws, ports, (port) => dialInNetns(netns, port), held);
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

const ALL_PROTOCOLS = [...new Set<string>([...COMMAND_PROTOCOLS, ...PORTFORWARD_PROTOCOLS])];

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

function refuse(socket: Duplex, code: number, message: string): void {
  const reason = code === 404 ? 'Not Found' : 'Bad Request';
  socket.end(`HTTP/1.1 ${code} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(message) + 1}\r\nConnection: close\r\n\r\n${message}\n`);
}
