import type { Readable } from 'node:stream';
import { PROTOCOL_V3, PROTOCOL_V4, exitStatus, failureStatus, parseResize, type Status, type TerminalSize } from './protocol.js';
import type { StreamSession } from './runtime.js';
import { RST_REFUSED_STREAM } from './spdy-frames.js';
import { HEADER_STREAM_TYPE, STREAM_ERROR, STREAM_RESIZE, STREAM_STDERR, STREAM_STDIN, STREAM_STDOUT } from './spdy-handshake.js';
import type { SpdySession, SpdyStream } from './spdy-session.js';

/** A resize stream that sends this much without closing a JSON object is ignored until it does. */
const MAX_RESIZE_MESSAGE_BYTES = 4096;

export interface CommandStreams {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/**
 * The streams a client opens for a command under `protocol` (kubelet's remotecommand count): the
 * error stream always, one per requested stdio stream, and the resize stream for a tty from v3 on.
 */
export function expectedStreams(request: CommandStreams, protocol: string): string[] {
  const types = [STREAM_ERROR];
  if (request.stdin) types.push(STREAM_STDIN);
  if (request.stdout) types.push(STREAM_STDOUT);
  if (request.stderr) types.push(STREAM_STDERR);
  if (request.tty && supportsResize(protocol)) types.push(STREAM_RESIZE);
  return types;
}

export function supportsResize(protocol: string): boolean {
  return protocol === PROTOCOL_V4 || protocol === PROTOCOL_V3;
}

/** The error stream's content for `status`: v4 a JSON Status; older versions the message, and nothing on success. */
export function statusPayload(protocol: string, status: Status): string | undefined {
  if (protocol === PROTOCOL_V4) return JSON.stringify(status);
  return status.status === 'Success' ? undefined : (status.message ?? 'error');
}

/**
 * Serves an exec or attach on a SPDY session. The client opens the streams `expectedStreams` names,
 * each with a `streamtype` header; others (and duplicates) are refused. Once all are there the
 * command starts (`start`): the stdin stream feeds its stdin, and the client's FIN on it ends that
 * stdin (CRI stdin_once); stdout and stderr go out on theirs, ending with FIN; the resize stream's
 * JSON objects ({"Width":w,"Height":h}) resize its terminal. When the command exited and its output
 * is out, the error stream gets the status (statusPayload) and FIN, and the session closes. If the
 * streams are not all open within `creationTimeoutMs` the client gets a Failure instead; if the
 * client goes away first the command is killed (for attach: detached).
 */
export async function serveSpdyCommand(
  session: SpdySession,
  protocol: string,
  request: CommandStreams,
  start: () => Promise<StreamSession>,
  creationTimeoutMs: number,
): Promise<void> {
  const expected = expectedStreams(request, protocol);
  const streams = new Map<string, SpdyStream>();
  const arrival = await new Promise<'complete' | 'timeout' | 'gone'>((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), creationTimeoutMs);
    session.onStream = (stream) => {
      const type = (stream.headers[HEADER_STREAM_TYPE] ?? '').toLowerCase();
      if (!expected.includes(type) || streams.has(type)) return stream.reset(RST_REFUSED_STREAM);
      stream.accept();
      streams.set(type, stream);
      if (streams.size === expected.length) {
        clearTimeout(timer);
        resolve('complete');
      }
    };
    void session.closed.then(() => {
      clearTimeout(timer);
      resolve('gone');
    });
  });
  session.onStream = (stream) => stream.reset(RST_REFUSED_STREAM);
  if (arrival === 'gone') return;
  const errorStream = streams.get(STREAM_ERROR);
  if (arrival === 'timeout') {
    const missing = expected.filter((type) => !streams.has(type));
    return finish(session, errorStream, protocol, failureStatus(`timed out after ${creationTimeoutMs} ms waiting for the client to open the ${missing.join(', ')} stream(s)`));
  }
  // The client writes nothing on these; reading keeps a stray write from stalling the connection.
  for (const type of [STREAM_ERROR, STREAM_STDOUT, STREAM_STDERR]) streams.get(type)?.resume();

  let command: StreamSession;
  try {
    command = await start();
  } catch (err) {
    return finish(session, errorStream, protocol, failureStatus((err as Error).message));
  }
  let done = false;
  void session.closed.then(() => {
    if (!done) command.kill();
    command.stdin?.destroy();
  });

  const stdin = streams.get(STREAM_STDIN);
  if (stdin && command.stdin) {
    command.stdin.on('error', () => undefined);
    stdin.pipe(command.stdin);
  } else {
    stdin?.resume();
  }
  const resize = streams.get(STREAM_RESIZE);
  if (resize) readResizes(resize, (size) => command.resize?.(size));

  const output = Promise.all([forward(command.stdout, streams.get(STREAM_STDOUT)), forward(command.stderr, streams.get(STREAM_STDERR))]);
  let status: Status;
  try {
    const code = await command.exited;
    await output;
    status = exitStatus(code);
  } catch (err) {
    status = failureStatus((err as Error).message);
  }
  done = true;
  return finish(session, errorStream, protocol, status);
}

/** Copies a command's output onto its stream and ends that with FIN; resolves once the FIN is out (or the stream is gone). */
function forward(source: Readable | null, stream: SpdyStream | undefined): Promise<void> {
  if (!stream) {
    source?.resume();
    return Promise.resolve();
  }
  if (!source) {
    stream.end();
    return Promise.resolve();
  }
  source.pipe(stream);
  source.on('error', () => undefined);
  // A source that stops without 'end' (killed, failed) still owes the client its FIN.
  source.once('close', () => {
    if (!stream.writableEnded) stream.end();
  });
  return new Promise((resolve) => {
    stream.once('finish', resolve);
    stream.once('close', () => {
      // The client reset the stream: keep draining so the command never blocks on a full pipe.
      source.resume();
      resolve();
    });
  });
}

/** Writes the outcome on the error stream, ends it, and closes the session. */
async function finish(session: SpdySession, errorStream: SpdyStream | undefined, protocol: string, status: Status): Promise<void> {
  if (errorStream && !errorStream.destroyed) {
    const sent = new Promise((resolve) => {
      errorStream.once('finish', resolve);
      errorStream.once('close', resolve);
    });
    const payload = statusPayload(protocol, status);
    if (payload === undefined) errorStream.end();
    else errorStream.end(payload);
    await sent;
  }
  void session.close();
}

/**
 * Reads terminal sizes off the resize stream: JSON objects, which client-go writes one per line
 * (any separator, or none, is accepted). Malformed objects are skipped, as on the WebSocket.
 */
function readResizes(stream: SpdyStream, apply: (size: TerminalSize) => void): void {
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (text: string) => {
    pending += text;
    for (;;) {
      const open = pending.indexOf('{');
      const close = open < 0 ? -1 : pending.indexOf('}', open);
      if (close < 0) break;
      const size = parseResize(Buffer.from(pending.slice(open, close + 1)));
      if (size) apply(size);
      pending = pending.slice(close + 1);
    }
    if (pending.length > MAX_RESIZE_MESSAGE_BYTES) pending = '';
  });
}
