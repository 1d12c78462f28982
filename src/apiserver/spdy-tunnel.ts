// kubectl's port-forward over WebSocket: the client speaks SPDY inside binary WebSocket messages
// (subprotocol `SPDY/3.1+portforward.k8s.io`), and the API server turns that into a plain SPDY upgrade
// towards the node, as upstream's TunnelingHandler (apiserver/pkg/util/proxy/streamtunnel.go) does.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { offeredProtocols } from '../runtime/streaming/protocol.js';
import { dialUpgrade, forwardedRequest, spliceUpgrade, type UpgradeTarget } from './upgrade-proxy.js';

/** The prefix of a WebSocket subprotocol that carries SPDY, e.g. `SPDY/3.1+portforward.k8s.io`. */
export const SPDY_TUNNEL_PREFIX = 'SPDY/3.1+';
const KUBERNETES_SUFFIX = '.k8s.io';
const PLACEHOLDER_PROTOCOL = 'spdy-tunnel';

/** The SPDY protocols a WebSocket request offers to tunnel, prefix removed; empty when it tunnels none. */
export function tunneledSpdyProtocols(req: IncomingMessage): string[] {
  if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return [];
  return offeredProtocols(req.headers['sec-websocket-protocol'])
    .filter((p) => p.startsWith(SPDY_TUNNEL_PREFIX) && p.endsWith(KUBERNETES_SUFFIX))
    .map((p) => p.slice(SPDY_TUNNEL_PREFIX.length));
}

/**
 * Sends `req` to `target` as a SPDY/3.1 upgrade (POST, X-Stream-Protocol-Version per tunneled
 * protocol, no WebSocket headers). On 101 the client's WebSocket is accepted with the protocol the
 * target chose, and binary messages are relayed as raw bytes both ways; any other answer is
 * passed back to the client unchanged, so it can fall back to plain SPDY.
 */
export async function tunnelSpdyOverWebSocket(req: IncomingMessage, client: Duplex, head: Buffer, target: UpgradeTarget, protocols: string[]): Promise<void> {
  const base = forwardedRequest(req, target.url, [
    'upgrade',
    'connection',
    'sec-websocket-key',
    'sec-websocket-version',
    'sec-websocket-protocol',
    'sec-websocket-extensions',
    'x-stream-protocol-version',
    'content-length',
  ]);
  const request = {
    method: 'POST',
    path: base.path,
    headers: [...base.headers, ['Connection', 'Upgrade'], ['Upgrade', 'SPDY/3.1'], ...protocols.map((p): [string, string] => ['X-Stream-Protocol-Version', p])] as [string, string][],
  };
  const response = await dialUpgrade(target, request);
  const upgraded = response.statusCode === 101 && (response.headers['upgrade'] ?? '').toLowerCase().includes('spdy/3.1');
  if (!upgraded) return spliceUpgrade(client, response);
  const chosen = response.headers['x-stream-protocol-version']?.trim();
  // `ws` refuses subprotocol offers that are not RFC 7230 tokens, and "SPDY/3.1+..." has a '/'
  // (Go's gorilla/websocket, which kubectl uses, accepts it). The offer was read above; ws sees a
  // token in its place and answers with the name handleProtocols returns, which it writes as is.
  req.headers['sec-websocket-protocol'] = PLACEHOLDER_PROTOCOL;
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, handleProtocols: () => (chosen ? SPDY_TUNNEL_PREFIX + chosen : false) });
  // A handshake ws refuses (it answers 400 itself) never reaches the callback: drop the upstream then.
  const abandon = () => response.socket.destroy();
  client.once('close', abandon);
  wss.handleUpgrade(req, client, head, (ws) => {
    client.off('close', abandon);
    wss.close();
    relay(ws, response.socket, response.rest);
  });
}

function relay(ws: WebSocket, upstream: Duplex, early: Buffer): void {
  if (early.length) ws.send(early, { binary: true });
  ws.on('message', (data: Buffer) => upstream.write(data));
  upstream.on('data', (chunk: Buffer) => {
    if (ws.readyState === ws.OPEN) ws.send(chunk, { binary: true });
  });
  upstream.on('error', () => upstream.destroy());
  upstream.on('close', () => {
    if (ws.readyState === ws.OPEN) ws.close(1000);
  });
  ws.on('close', () => upstream.destroy());
  ws.on('error', () => upstream.destroy());
  upstream.resume();
}
