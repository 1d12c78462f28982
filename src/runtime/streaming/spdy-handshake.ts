import { PROTOCOL_BASE, PROTOCOL_PORTFORWARD, PROTOCOL_V2, PROTOCOL_V3, PROTOCOL_V4 } from './protocol.js';

/**
 * The HTTP upgrade into SPDY, as k8s.io/apimachinery's httpstream does it. The client sends
 * `Connection: Upgrade`, `Upgrade: SPDY/3.1` and one `X-Stream-Protocol-Version` per protocol it
 * speaks, best first; the server picks the first it speaks too and answers `101 Switching Protocols`
 * naming it in `X-Stream-Protocol-Version`, or 403 with `X-Accepted-Stream-Protocol-Versions`.
 * From then on the connection carries SPDY/3.1 frames (spdy-session.ts).
 */
export const SPDY_UPGRADE = 'SPDY/3.1';
export const HEADER_PROTOCOL_VERSION = 'X-Stream-Protocol-Version';
export const HEADER_ACCEPTED_PROTOCOL_VERSIONS = 'X-Accepted-Stream-Protocol-Versions';

/** remotecommand over SPDY, newest first (v5 is WebSocket-only). */
export const SPDY_COMMAND_PROTOCOLS = [PROTOCOL_V4, PROTOCOL_V3, PROTOCOL_V2, PROTOCOL_BASE] as const;
export const SPDY_PORTFORWARD_PROTOCOLS = [PROTOCOL_PORTFORWARD] as const;

/**
 * The WebSocket subprotocol of kubectl's port-forward since 1.31 (client-go's tunneling dialer):
 * every binary message carries raw bytes of a SPDY/3.1 portforward.k8s.io session, with no HTTP
 * upgrade inside. An API server may proxy it to the node as it came.
 */
export const PROTOCOL_SPDY_TUNNEL_PORTFORWARD = `${SPDY_UPGRADE}+${PROTOCOL_PORTFORWARD}`;

/** Whether an Upgrade header asks for SPDY/3.1. */
export function isSpdyUpgrade(upgrade: string | undefined): boolean {
  return (upgrade ?? '').toLowerCase().includes(SPDY_UPGRADE.toLowerCase());
}

/** The server's answer that switches the connection to SPDY with `protocol`. */
export function switchingProtocols(protocol: string): string {
  return `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${SPDY_UPGRADE}\r\n${HEADER_PROTOCOL_VERSION}: ${protocol}\r\n\r\n`;
}

/** Header names and stream types of Kubernetes' SPDY streams (k8s.io/api/core/v1 StreamType*). */
export const HEADER_STREAM_TYPE = 'streamtype';
export const HEADER_PORT = 'port';
export const HEADER_REQUEST_ID = 'requestid';
export const STREAM_ERROR = 'error';
export const STREAM_STDIN = 'stdin';
export const STREAM_STDOUT = 'stdout';
export const STREAM_STDERR = 'stderr';
export const STREAM_RESIZE = 'resize';
export const STREAM_DATA = 'data';
