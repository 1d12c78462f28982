import { request as httpRequest } from 'node:http';
import type { Socket } from 'node:net';
import { failureStatus, successStatus, PROTOCOL_V4, type Status, type TerminalSize } from './protocol.js';
import { supportsResize } from './spdy-command.js';
import {
  HEADER_PORT,
  HEADER_PROTOCOL_VERSION,
  HEADER_REQUEST_ID,
  HEADER_STREAM_TYPE,
  SPDY_COMMAND_PROTOCOLS,
  SPDY_PORTFORWARD_PROTOCOLS,
  SPDY_UPGRADE,
  STREAM_DATA,
  STREAM_ERROR,
  STREAM_RESIZE,
  STREAM_STDERR,
  STREAM_STDIN,
  STREAM_STDOUT,
  isSpdyUpgrade,
} from './spdy-handshake.js';
import { SpdySession, type SpdyStream } from './spdy-session.js';

/** An upgraded connection and the stream protocol the server chose. */
export interface SpdyConnection {
  session: SpdySession;
  protocol: string;
}

/**
 * Upgrades a streaming URL (`http://...` as Exec/Attach/PortForward return it) to SPDY/3.1,
 * offering `protocols` best first. Rejects with `statusCode` (and the server's message) when the
 * server answers anything but 101.
 */
export function connectSpdy(url: string, protocols: readonly string[]): Promise<SpdyConnection> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method: 'POST',
      headers: { Connection: 'Upgrade', Upgrade: SPDY_UPGRADE, [HEADER_PROTOCOL_VERSION]: [...protocols] },
    });
    req.on('upgrade', (res, socket: Socket, head: Buffer) => {
      if (!isSpdyUpgrade(res.headers.upgrade)) {
        socket.destroy();
        return reject(new Error(`the server switched to ${res.headers.upgrade ?? 'nothing'}, not ${SPDY_UPGRADE}`));
      }
      socket.setNoDelay(true);
      const protocol = res.headers[HEADER_PROTOCOL_VERSION.toLowerCase()];
      resolve({ session: new SpdySession(socket, 'client', head), protocol: typeof protocol === 'string' ? protocol : '' });
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (text: string) => (body += text));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}: ${body.trim()}`), { statusCode: res.statusCode, body: body.trim() })));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Everything a stream carries until its end (or until it is cut off). */
export function readAll(stream: SpdyStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer | string) => chunks.push(Buffer.from(chunk)));
  return new Promise((resolve) => {
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

export interface SpdyExecOptions {
  stdin?: boolean;
  stdout?: boolean;
  stderr?: boolean;
  tty?: boolean;
  /** Offered stream protocols, best first; SPDY_COMMAND_PROTOCOLS when absent. */
  protocols?: readonly string[];
}

/** A client's side of an exec or attach over SPDY. */
export interface SpdyExecSession {
  session: SpdySession;
  /** The remotecommand version the server chose. */
  protocol: string;
  /** The command's stdin; end() half-closes it, which ends the command's stdin. */
  stdin: SpdyStream | null;
  stdout: SpdyStream | null;
  stderr: SpdyStream | null;
  /** Sends a terminal size; throws without a resize stream (no tty, or a protocol before v3). */
  resize(size: TerminalSize): void;
  /**
   * The outcome, read off the error stream once the server closed it: v4's Status as sent; for
   * older protocols Success when it stayed empty, else a Failure carrying the server's message.
   */
  status: Promise<Status>;
  /** Hangs up (GOAWAY); the server stops the command or detaches. */
  close(): Promise<void>;
}

/**
 * Opens an exec or attach URL the way client-go's SPDY executor does: upgrade, then one stream per
 * part (error, stdin, stdout, stderr, resize), each named by its `streamtype` header.
 */
export async function openSpdyExec(url: string, options: SpdyExecOptions): Promise<SpdyExecSession> {
  const { session, protocol } = await connectSpdy(url, options.protocols ?? SPDY_COMMAND_PROTOCOLS);
  try {
    const open = (type: string) => session.openStream({ [HEADER_STREAM_TYPE]: type });
    const error = await open(STREAM_ERROR);
    const stdin = options.stdin ? await open(STREAM_STDIN) : null;
    const stdout = options.stdout ? await open(STREAM_STDOUT) : null;
    const stderr = options.stderr ? await open(STREAM_STDERR) : null;
    const resize = options.tty && supportsResize(protocol) ? await open(STREAM_RESIZE) : null;
    // The client writes nothing on these; its FIN tells the server so.
    for (const stream of [error, stdout, stderr]) stream?.end();
    const status = readAll(error).then((bytes) => statusOf(protocol, bytes.toString()));
    return {
      session,
      protocol,
      stdin,
      stdout,
      stderr,
      resize: (size) => {
        if (!resize) throw new Error(`no resize stream: ${options.tty ? `protocol ${protocol} cannot resize` : 'the session has no tty'}`);
        resize.write(`${JSON.stringify({ Width: size.width, Height: size.height })}\n`);
      },
      status,
      close: () => session.close(),
    };
  } catch (err) {
    session.destroy();
    throw err;
  }
}

function statusOf(protocol: string, text: string): Status {
  if (text === '') return successStatus();
  if (protocol === PROTOCOL_V4) return JSON.parse(text) as Status;
  return failureStatus(text);
}

/** One forwarded connection: its data stream, and what the server said on its error stream. */
export interface SpdyForwardedConnection {
  port: number;
  requestId: number;
  /** Bytes to and from the pod's port; end() half-closes the connection inside the pod. */
  data: SpdyStream;
  /** The error stream's text once the server closed it; '' when the forward went well. */
  error: Promise<string>;
}

/** A port-forward session: its first connection, and more on demand. */
export interface SpdyPortForward extends SpdyForwardedConnection {
  session: SpdySession;
  /** Opens another connection (the next request id) to `port` over the same session. */
  connect(port: number): Promise<SpdyForwardedConnection>;
  close(): Promise<void>;
}

/** Opens a port-forward URL as client-go's port forwarder does, with a first connection to `port`. */
export async function openSpdyPortForward(url: string, port: number): Promise<SpdyPortForward> {
  const { session } = await connectSpdy(url, SPDY_PORTFORWARD_PROTOCOLS);
  let nextRequestId = 0;
  const connect = async (target: number): Promise<SpdyForwardedConnection> => {
    const requestId = nextRequestId++;
    const headers = { [HEADER_PORT]: String(target), [HEADER_REQUEST_ID]: String(requestId) };
    const errorStream = await session.openStream({ ...headers, [HEADER_STREAM_TYPE]: STREAM_ERROR });
    errorStream.end();
    const error = readAll(errorStream).then((bytes) => bytes.toString());
    const data = await session.openStream({ ...headers, [HEADER_STREAM_TYPE]: STREAM_DATA });
    return { port: target, requestId, data, error };
  };
  try {
    return { ...(await connect(port)), session, connect, close: () => session.close() };
  } catch (err) {
    session.destroy();
    throw err;
  }
}
