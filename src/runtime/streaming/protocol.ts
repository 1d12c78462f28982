/**
 * The Kubernetes WebSocket channel protocol, as kubelet's streaming server speaks it for exec and
 * attach (k8s.io/apimachinery wsstream and the remotecommand server).
 *
 * Every binary message starts with a channel byte; the rest is that channel's data. For a command:
 *   0 stdin (client to server), 1 stdout, 2 stderr, 3 error (server to client), 4 resize (client to server).
 * Subprotocols, newest first:
 *   v5.channel.k8s.io  as v4, plus a close signal: the message [255, channel] ends that channel
 *                      (a client half-closes stdin this way).
 *   v4.channel.k8s.io  the error channel carries a JSON metav1.Status: Success, or Failure with reason
 *                      NonZeroExitCode and a cause {reason: ExitCode, message: "<code>"}.
 *   channel.k8s.io     the error channel carries a plain error message, and nothing on success.
 * A client that offers no subprotocol gets channel.k8s.io without the header being echoed.
 */

export const CHANNEL_STDIN = 0;
export const CHANNEL_STDOUT = 1;
export const CHANNEL_STDERR = 2;
export const CHANNEL_ERROR = 3;
export const CHANNEL_RESIZE = 4;
/** v5's close signal: [CHANNEL_CLOSE, channel]. */
export const CHANNEL_CLOSE = 255;

export const PROTOCOL_V5 = 'v5.channel.k8s.io';
export const PROTOCOL_V4 = 'v4.channel.k8s.io';
/** v3 and v2 exist only over SPDY (spdy-command.ts): v3 adds the resize stream, v2 has none. */
export const PROTOCOL_V3 = 'v3.channel.k8s.io';
export const PROTOCOL_V2 = 'v2.channel.k8s.io';
export const PROTOCOL_BASE = 'channel.k8s.io';
/** Port forwarding's own name for the channel framing (kubelet accepts it besides v4). */
export const PROTOCOL_PORTFORWARD = 'portforward.k8s.io';

export const COMMAND_PROTOCOLS = [PROTOCOL_V5, PROTOCOL_V4, PROTOCOL_BASE] as const;
export const PORTFORWARD_PROTOCOLS = [PROTOCOL_V4, PROTOCOL_PORTFORWARD] as const;

/**
 * The subprotocol to answer with: the first of the client's offers the server speaks, '' when the
 * client offered none (the base protocol, header not echoed), undefined when none of the offers fit.
 */
export function chooseProtocol(offered: readonly string[], supported: readonly string[]): string | undefined {
  if (offered.length === 0) return '';
  return offered.find((protocol) => supported.includes(protocol));
}

/** The offers of a Sec-WebSocket-Protocol header. */
export function offeredProtocols(header: string | string[] | undefined): string[] {
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  return text
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean);
}

export function frame(channel: number, data: Buffer | string = Buffer.alloc(0)): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data) : data;
  return Buffer.concat([Buffer.from([channel]), body]);
}

/** A metav1.Status as the error channel of v4 and v5 carries it. */
export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: { causes: { reason: string; message: string }[] };
}

export function successStatus(): Status {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success' };
}

export function exitStatus(code: number): Status {
  if (code === 0) return successStatus();
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: ${code}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
  };
}

export function failureStatus(message: string): Status {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: 'InternalError' };
}

/** A terminal size as the resize channel sends it: {"Width": 80, "Height": 24}. */
export interface TerminalSize {
  width: number;
  height: number;
}

const MAX_TERMINAL_DIMENSION = 0xffff;

/** Parses one resize message; undefined for anything but two whole numbers in uint16 range. */
export function parseResize(data: Buffer): TerminalSize | undefined {
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { Width: width, Height: height } = value as { Width?: unknown; Height?: unknown };
  const valid = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= MAX_TERMINAL_DIMENSION;
  return valid(width) && valid(height) ? { width, height } : undefined;
}

/** The 2-byte little-endian port prefix that opens each port-forward channel. */
export function portPrefix(port: number): Buffer {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16LE(port);
  return prefix;
}
