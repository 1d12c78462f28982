import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kubectl, type Kubectl } from '../../../test/e2e/harness.js';
import type { StreamingServer } from './server.js';
import { StreamingTestbed } from './testkit.js';

/**
 * kubectl 1.32 against this SPDY server: the Go side is client-go's SPDY executor and port
 * forwarder over moby/spdystream, the same code an API server uses towards kubelet. A stand-in API
 * server answers kubectl's discovery and pod reads and hands each exec or port-forward upgrade,
 * byte for byte, to the streaming URL the case registered (as the API server proxies to the node).
 */

const HTTP_PORT = 8080;
const POD = 'web';
const SANDBOX = 'sandbox-kubectl';
/** kubectl port-forward's first line, naming the local port it listens on. */
const FORWARDING = /Forwarding from 127\.0\.0\.1:(\d+) -> 8080/;

const testbed = new StreamingTestbed();
after(() => testbed.cleanup());

const DISCOVERY: Record<string, unknown> = {
  '/api': { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }] },
  '/apis': { kind: 'APIGroupList', apiVersion: 'v1', groups: [] },
  '/api/v1': {
    kind: 'APIResourceList',
    groupVersion: 'v1',
    resources: [
      { name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod', verbs: ['get', 'list'], shortNames: ['po'] },
      { name: 'pods/exec', singularName: '', namespaced: true, kind: 'PodExecOptions', verbs: ['create', 'get'] },
      { name: 'pods/portforward', singularName: '', namespaced: true, kind: 'PodPortForwardOptions', verbs: ['create', 'get'] },
    ],
  },
  [`/api/v1/namespaces/default/pods/${POD}`]: {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: POD, namespace: 'default', uid: '6f1c2a52-0000-4000-8000-000000000001' },
    spec: { containers: [{ name: 'main', image: 'busybox' }] },
    status: { phase: 'Running' },
  },
};

/** The stand-in API server; `next` is the streaming URL the next upgrade goes to. */
class ApiStandIn {
  next: string | undefined;
  /** Each upgrade kubectl asked for: request line, Upgrade header and offered (sub)protocols. */
  readonly upgrades: string[] = [];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor() {
    this.server = createServer((req, res) => {
      const body = DISCOVERY[new URL(req.url ?? '/', 'http://api').pathname];
      if (body === undefined) return void res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.proxy(req, socket, head));
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private proxy(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const protocols = req.headers['x-stream-protocol-version'] ?? req.headers['sec-websocket-protocol'];
    this.upgrades.push(`${req.method} ${req.url} upgrade=${req.headers.upgrade} protocols=${protocols}`);
    const target = new URL(this.next ?? 'http://127.0.0.1:1/none');
    this.next = undefined;
    const upstream = connect(Number(target.port), target.hostname);
    for (const s of [socket, upstream]) {
      this.sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => (socket.destroy(), upstream.destroy()));
    }
    const lines = [`${req.method} ${target.pathname} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
    upstream.write(head);
    upstream.pipe(socket);
    socket.pipe(upstream);
  }
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (text: string) => (body += text));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('kubectl exec and port-forward over SPDY', { timeout: 120_000 }, () => {
  const api = new ApiStandIn();
  let server: StreamingServer;
  /** kubectl made to speak SPDY, as it does to API servers that refuse its WebSocket upgrades. */
  let k: Kubectl;
  /** kubectl as it comes: port-forward tunnels its SPDY session through a WebSocket. */
  let kDefault: Kubectl;
  const containerId = `spdy-kubectl-${process.pid}`;

  before(async () => {
    await testbed.run(containerId, { command: ['sh', '-c', `httpd -p 127.0.0.1:${HTTP_PORT} -h /etc && exec sleep 1000`] }, SANDBOX);
    server = await testbed.start();
    const kubeconfig = join(testbed.work, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'stand-in', cluster: { server: await api.start() } }],
        users: [{ name: 'nobody', user: {} }],
        contexts: [{ name: 'stand-in', context: { cluster: 'stand-in', user: 'nobody', namespace: 'default' } }],
        'current-context': 'stand-in',
      }),
    );
    kDefault = await kubectl(kubeconfig);
    process.env.KUBECTL_REMOTE_COMMAND_WEBSOCKETS = 'false';
    process.env.KUBECTL_PORT_FORWARD_WEBSOCKETS = 'false';
    k = await kubectl(kubeconfig);
  });
  after(async () => {
    await k?.cleanup();
    await kDefault?.cleanup();
    await api.stop();
    await testbed.stop();
  });

  it('runs kubectl exec: stdout, stderr and the exit code', async () => {
    api.next = server.registerExec({ containerId, cmd: ['sh', '-c', 'echo out; echo err >&2; exit 3'], tty: false, stdin: false, stdout: true, stderr: true });
    const result = await k.result('exec', POD, '--', 'sh', '-c', 'echo out; echo err >&2; exit 3');
    assert.equal(result.stdout, 'out\n');
    assert.match(result.stderr, /^err\n/);
    assert.equal(result.code, 3, result.stderr);
    assert.match(api.upgrades.at(-1)!, new RegExp(`^POST /api/v1/namespaces/default/pods/${POD}/exec\\?.* upgrade=SPDY/3\\.1 protocols=.*v4\\.channel\\.k8s\\.io`));
  });

  it('runs kubectl exec -i: stdin through to the command until kubectl’s stdin ends', async () => {
    api.next = server.registerExec({ containerId, cmd: ['wc', '-c'], tty: false, stdin: true, stdout: true, stderr: true });
    const child = k.spawn('exec', '-i', POD, '--', 'wc', '-c');
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.stdin!.end(Buffer.alloc(300_000, 'x'));
    assert.equal(await exited, 0, stderr);
    assert.equal(stdout.trim(), '300000');
    assert.match(api.upgrades.at(-1)!, / upgrade=SPDY\/3\.1 /);
  });

  async function portForward(client: Kubectl, expectUpgrade: RegExp): Promise<void> {
    api.next = server.registerPortForward({ podSandboxId: SANDBOX, ports: [HTTP_PORT] });
    const child = client.spawn('port-forward', `pod/${POD}`, `:${HTTP_PORT}`);
    const exited = new Promise((resolve) => child.on('close', resolve));
    try {
      let output = '';
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout!.on('data', (chunk: Buffer) => {
          output += chunk.toString();
          const match = FORWARDING.exec(output);
          if (match) resolve(Number(match[1]));
        });
        child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
        child.on('close', () => reject(new Error(`kubectl port-forward exited: ${output}`)));
      });
      const first = await get(port, '/passwd');
      assert.equal(first.status, 200);
      assert.match(first.body, /root:x:0:0/);
      const second = await get(port, '/group');
      assert.equal(second.status, 200);
      assert.match(second.body, /root:x:0:/);
      assert.match(api.upgrades.at(-1)!, expectUpgrade);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  }

  it('runs kubectl port-forward over SPDY: connections to the local port reach the server inside the pod', async () => {
    await portForward(k, new RegExp(`^POST /api/v1/namespaces/default/pods/${POD}/portforward upgrade=SPDY/3\\.1 protocols=portforward\\.k8s\\.io`));
  });

  it('runs kubectl port-forward through its WebSocket tunnel (SPDY/3.1+portforward.k8s.io)', async () => {
    await portForward(kDefault, /upgrade=websocket protocols=SPDY\/3\.1\+portforward\.k8s\.io/);
  });
});
