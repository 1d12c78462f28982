import { WebSocket } from 'ws';
import { PROTOCOL_BASE, PROTOCOL_V4, PROTOCOL_V5, type Status } from './protocol.js';

/** A client's view of one channel-protocol WebSocket: what arrived on each channel, and the close. */
export interface ChannelSession {
  ws: WebSocket;
  /** The subprotocol the server chose. */
  protocol: string;
  /** Concatenated data per channel (for port-forward, the 2-byte port prefixes included). */
  channels: Map<number, Buffer>;
  /** Resolves with the close code. */
  closed: Promise<number>;
}

/**
 * Connects to a streaming URL (`http://...` as the Exec/Attach/PortForward RPCs return it) and
 * collects every frame by channel. Rejects with `statusCode` set when the server refuses the upgrade.
 */
export function openChannelSession(url: string, protocols: string[] = [PROTOCOL_V5, PROTOCOL_V4, PROTOCOL_BASE]): Promise<ChannelSession> {
  const ws = new WebSocket(url.replace(/^http/, 'ws'), protocols);
  const channels = new Map<number, Buffer>();
  ws.on('message', (data: Buffer) => {
    if (data.length === 0) return;
    channels.set(data[0]!, Buffer.concat([channels.get(data[0]!) ?? Buffer.alloc(0), data.subarray(1)]));
  });
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    ws.on('open', () => resolve({ ws, protocol: ws.protocol, channels, closed }));
    ws.on('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode })));
    ws.on('error', reject);
  });
}

export function channelText(session: ChannelSession, channel: number): string {
  return session.channels.get(channel)?.toString() ?? '';
}

/** The Status the server sent on the error channel (3) before closing. */
export function channelStatus(session: ChannelSession): Status {
  return JSON.parse(channelText(session, 3)) as Status;
}
