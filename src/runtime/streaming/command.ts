import type { Readable } from 'node:stream';
import type { WebSocket } from 'ws';
import {
  CHANNEL_CLOSE,
  CHANNEL_ERROR,
  CHANNEL_RESIZE,
  CHANNEL_STDERR,
  CHANNEL_STDIN,
  CHANNEL_STDOUT,
  PROTOCOL_BASE,
  PROTOCOL_V5,
  exitStatus,
  failureStatus,
  frame,
  parseResize,
  type Status,
} from './protocol.js';
import type { StreamSession } from './runtime.js';

/** Output is paused while this much is queued on the WebSocket, so a slow client slows the command. */
const SEND_HIGH_WATER_BYTES = 1 << 20;

export interface CommandStreams {
  stdout: boolean;
  stderr: boolean;
}

/** Writes the outcome on the error channel in the dialect of `protocol`, then closes the socket. */
export function finishCommand(ws: WebSocket, protocol: string, status: Status): void {
  if (ws.readyState !== ws.OPEN) return;
  if (protocol === PROTOCOL_BASE || protocol === '') {
    if (status.status !== 'Success') ws.send(frame(CHANNEL_ERROR, status.message ?? 'error'));
  } else {
    ws.send(frame(CHANNEL_ERROR, JSON.stringify(status)));
  }
  ws.close(1000);
}

/**
 * Connects a started exec or attach to an open WebSocket: client stdin and resize messages in,
 * stdout and stderr out; once the command exited and its output drained, the exit status on the
 * error channel and a normal close. A client that goes away kills the command. `held` are the
 * messages that arrived while the command was starting.
 */
export async function serveCommand(ws: WebSocket, protocol: string, session: StreamSession, streams: CommandStreams, held: Buffer[] = []): Promise<void> {
  let done = false;
  const onMessage = (data: Buffer) => {
    if (data.length === 0) return;
    const channel = data[0];
    const body = data.subarray(1);
    if (channel === CHANNEL_STDIN) {
      if (session.stdin && !session.stdin.writableEnded && body.length > 0 && !session.stdin.write(body)) {
        ws.pause();
        session.stdin.once('drain', () => ws.resume());
      }
    } else if (channel === CHANNEL_RESIZE) {
      const size = parseResize(body);
      if (size) session.resize?.(size);
    } else if (channel === CHANNEL_CLOSE && protocol === PROTOCOL_V5 && body[0] === CHANNEL_STDIN) {
      session.stdin?.end();
    }
  };
  ws.on('message', onMessage);
  for (const data of held.splice(0)) onMessage(data);
  const onClose = () => {
    if (!done) session.kill();
    session.stdin?.destroy();
  };
  if (ws.readyState === ws.OPEN) ws.on('close', onClose);
  else onClose();
  session.stdin?.on('error', () => undefined);

  const pump = (stream: Readable | null, channel: number, forward: boolean): Promise<void> => {
    if (!stream) return Promise.resolve();
    return new Promise((resolve) => {
      stream.on('data', (chunk: Buffer) => {
        if (!forward || ws.readyState !== ws.OPEN) return;
        ws.send(frame(channel, chunk));
        if (ws.bufferedAmount > SEND_HIGH_WATER_BYTES) {
          stream.pause();
          const resume = () => (ws.bufferedAmount > SEND_HIGH_WATER_BYTES && ws.readyState === ws.OPEN ? setTimeout(resume, 10) : stream.resume());
          setTimeout(resume, 10);
        }
      });
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
    });
  };

  const output = Promise.all([pump(session.stdout, CHANNEL_STDOUT, streams.stdout), pump(session.stderr, CHANNEL_STDERR, streams.stderr)]);
  let status: Status;
  try {
    const code = await session.exited;
    await output;
    status = exitStatus(code);
  } catch (err) {
    status = failureStatus((err as Error).message);
  }
  done = true;
  finishCommand(ws, protocol, status);
}
