import type { Duplex } from 'node:stream';
import { RST_REFUSED_STREAM } from './spdy-frames.js';
import { HEADER_PORT, HEADER_REQUEST_ID, HEADER_STREAM_TYPE, STREAM_DATA, STREAM_ERROR } from './spdy-handshake.js';
import type { SpdySession, SpdyStream } from './spdy-session.js';

const MAX_PORT = 65_535;

interface StreamPair {
  error?: SpdyStream;
  data?: SpdyStream;
  timer: NodeJS.Timeout;
}

/**
 * Serves port forwarding on a SPDY session (portforward.k8s.io, as kubelet does). Each forwarded
 * connection is a pair of client-opened streams with headers `streamtype` (error or data), `port`
 * and `requestid` (the pair's key; old clients without it pair by stream id). Once both are there,
 * the data stream is spliced to a new TCP connection to the port inside the pod (`dial`): the
 * client's FIN half-closes it, the pod's end sends FIN, and then the error stream closes too.
 * Failures are written on the error stream as text before it closes. A pair whose other half does
 * not arrive within `pairTimeoutMs` is given up with a message. The session serves pairs until the
 * client hangs up, which tears every connection down.
 */
export function serveSpdyPortForward(session: SpdySession, podSandboxId: string, dial: (port: number) => Promise<Duplex>, pairTimeoutMs: number): void {
  const pairs = new Map<string, StreamPair>();
  const connections = new Set<Duplex>();

  const expire = (requestId: string) => {
    const pair = pairs.get(requestId);
    if (!pair) return;
    pairs.delete(requestId);
    const missing = pair.error ? STREAM_DATA : STREAM_ERROR;
    pair.error?.end(`timed out after ${pairTimeoutMs} ms waiting for the ${missing} stream of port-forward request ${requestId}`);
    pair.data?.reset();
  };

  session.onStream = (stream) => {
    const port = parsePort(stream.headers[HEADER_PORT]);
    const type = (stream.headers[HEADER_STREAM_TYPE] ?? '').toLowerCase();
    if (port === undefined || (type !== STREAM_ERROR && type !== STREAM_DATA)) return stream.reset(RST_REFUSED_STREAM);
    stream.accept();
    if (type === STREAM_ERROR) stream.resume();
    const requestId = stream.headers[HEADER_REQUEST_ID] || String(type === STREAM_ERROR ? stream.id : stream.id - 2);
    let pair = pairs.get(requestId);
    if (!pair) {
      pair = { timer: setTimeout(() => expire(requestId), pairTimeoutMs) };
      pairs.set(requestId, pair);
    }
    if (pair[type]) {
      pair.error?.write(`error processing stream for request ${requestId}: a ${type} stream is already assigned\n`);
      return stream.reset();
    }
    pair[type] = stream;
    if (pair.error && pair.data) {
      clearTimeout(pair.timer);
      pairs.delete(requestId);
      void splice(pair.data, pair.error, port);
    }
  };

  const splice = async (data: SpdyStream, error: SpdyStream, port: number) => {
    const problem = (message: string) => `error forwarding port ${port} to pod ${podSandboxId}: ${message}`;
    let connection: Duplex;
    try {
      connection = await dial(port);
    } catch (err) {
      error.end(problem((err as Error).message));
      data.end();
      return;
    }
    if (data.destroyed) return void connection.destroy();
    connections.add(connection);
    data.pipe(connection);
    connection.pipe(data);
    connection.on('error', (err: Error) => {
      if (!error.writableEnded) error.write(problem(err.message));
    });
    connection.once('close', () => {
      connections.delete(connection);
      if (!data.writableEnded) data.end();
      if (!error.writableEnded) error.end();
    });
    // Closed data stream: both halves done, or the client reset it; either way the connection is over.
    data.once('close', () => connection.destroy());
  };

  void session.closed.then(() => {
    for (const pair of pairs.values()) clearTimeout(pair.timer);
    pairs.clear();
    for (const connection of connections) connection.destroy();
  });
}

function parsePort(text: string | undefined): number | undefined {
  if (!text || !/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port >= 1 && port <= MAX_PORT ? port : undefined;
}
