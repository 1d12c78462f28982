import assert from 'node:assert/strict';
import http, { type IncomingMessage } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createHash, randomBytes } from 'node:crypto';
import { tunnelSpdyOverWebSocket, tunneledSpdyProtocols } from './spdy-tunnel.js';

/**
 * The translation alone, against a byte-level stand-in for the node (it answers the SPDY upgrade and
 * echoes bytes upper-cased): the tunnel never reads SPDY, so bytes are what it must carry.
 */
describe('WebSocket-tunneled SPDY to a plain SPDY upgrade', () => {
  let backend: net.Server;
  let frontend: http.Server;
  const seen: string[] = [];
  let refuse = false;

  const listen = (server: net.Server) => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));

  before(async () => {
    backend = net.createServer((socket) => {
      let head = '';
      const onData = (chunk: Buffer) => {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        seen.push(head.slice(0, end));
        if (refuse) return void socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nno way');
        socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n');
        const rest = head.slice(end + 4);
        if (rest) socket.write(rest.toUpperCase());
        socket.on('data', (data: Buffer) => socket.write(data.toString('latin1').toUpperCase()));
      };
      socket.on('data', onData);
      socket.on('error', () => socket.destroy());
    });
    const backendPort = await listen(backend);
    frontend = http.createServer((_req, res) => res.writeHead(404).end());
    frontend.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      void tunnelSpdyOverWebSocket(req, socket, head, { url: new URL(`http://127.0.0.1:${backendPort}/portForward/ns/pod`) }, tunneledSpdyProtocols(req));
    });
    await listen(frontend);
  });

  after(async () => {
    frontend.closeAllConnections();
    await new Promise((r) => frontend.close(r));
    await new Promise((r) => backend.close(r));
  });

  const path = '/api/v1/namespaces/ns/pods/pod/portforward?ports=80';

  /**
   * A WebSocket handshake by hand: `ws`'s client, like its server, refuses "SPDY/3.1+..." as a
   * subprotocol name, while kubectl's gorilla/websocket sends it.
   */
  function handshake(): Promise<{ status: number; headers: http.IncomingHttpHeaders; socket?: net.Socket; body: string; key: string }> {
    const key = randomBytes(16).toString('base64');
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: (frontend.address() as AddressInfo).port,
        path,
        headers: {
          Connection: 'Upgrade',
          Upgrade: 'websocket',
          'Sec-WebSocket-Version': '13',
          'Sec-WebSocket-Key': key,
          'Sec-WebSocket-Protocol': 'SPDY/3.1+portforward.k8s.io',
          Authorization: 'Bearer secret',
        },
      });
      req.on('upgrade', (res, socket) => resolve({ status: res.statusCode ?? 0, headers: res.headers, socket, body: '', key }));
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, key }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  /** One masked binary frame, as a client sends it (payload under 126 bytes). */
  function clientFrame(payload: Buffer): Buffer {
    const mask = randomBytes(4);
    return Buffer.concat([Buffer.from([0x82, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))]);
  }

  it('upgrades to SPDY upstream, answers with the tunneled subprotocol and relays binary messages as bytes', async () => {
    refuse = false;
    const r = await handshake();
    assert.equal(r.status, 101);
    assert.equal(r.headers['sec-websocket-protocol'], 'SPDY/3.1+portforward.k8s.io');
    const accept = createHash('sha1').update(r.key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    assert.equal(r.headers['sec-websocket-accept'], accept);
    const request = seen.at(-1)!;
    assert.match(request, /^POST \/portForward\/ns\/pod\?ports=80 HTTP\/1\.1\r\n/);
    assert.match(request, /\r\nUpgrade: SPDY\/3\.1\r\n/);
    assert.match(request, /\r\nX-Stream-Protocol-Version: portforward\.k8s\.io(\r\n|$)/);
    assert.doesNotMatch(request, /Sec-WebSocket|Authorization|websocket/i);

    const socket = r.socket!;
    let received = Buffer.alloc(0);
    const frame = new Promise<Buffer>((resolve) =>
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length >= 2 && received.length >= 2 + (received[1]! & 0x7f)) resolve(received);
      }),
    );
    socket.write(clientFrame(Buffer.from('spdy frame bytes')));
    const got = await frame;
    assert.equal(got[0], 0x82, 'a binary frame');
    assert.equal(got.subarray(2, 2 + (got[1]! & 0x7f)).toString(), 'SPDY FRAME BYTES');
    socket.destroy();
  });

  it('passes a refusal through unchanged, so the client can fall back', async () => {
    refuse = true;
    const r = await handshake();
    assert.equal(r.status, 400);
    assert.equal(r.body, 'no way');
  });

  it('only tunnels offered SPDY/3.1+*.k8s.io subprotocols of WebSocket requests', () => {
    const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
    assert.deepEqual(tunneledSpdyProtocols(req({ upgrade: 'websocket', 'sec-websocket-protocol': 'v4.channel.k8s.io, SPDY/3.1+portforward.k8s.io, SPDY/3.1+x.example' })), ['portforward.k8s.io']);
    assert.deepEqual(tunneledSpdyProtocols(req({ upgrade: 'SPDY/3.1', 'sec-websocket-protocol': 'SPDY/3.1+portforward.k8s.io' })), []);
  });
});
