import { spawn } from 'node:child_process';
import { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { frame, portPrefix } from './protocol.js';

/** How long a relay gets to connect inside the pod before the forward reports an error. */
const DIAL_TIMEOUT_MS = 10_000;
const NSENTER = 'nsenter';

/**
 * The relay run inside a network namespace: it connects to <host>:<port>, says "connected" (or the
 * error) on stderr, then copies stdin to the socket and the socket to stdout. Dialling loopback
 * inside the pod's netns reaches servers bound to 127.0.0.1 as well as the pod IP, which connecting
 * to the pod IP from the node's netns would not, and needs no route to the pod.
 */
const RELAY = `
const net = require('node:net');
const s = net.connect(Number(process.argv[1]), process.argv[2]);
s.on('connect', () => { process.stderr.write('connected\\n'); process.stdin.pipe(s); s.pipe(process.stdout); });
s.on('error', (e) => { process.stderr.write(e.message + '\\n'); process.exit(1); });
s.on('close', () => process.stdout.end(() => process.exit(0)));
`;

/**
 * Opens a TCP connection to `host`:`port` inside the network namespace `netns` (a relay process
 * under nsenter); rejects with the relay's error when nothing listens there.
 */
export function dialInNetns(netns: string, port: number, host = '127.0.0.1'): Promise<Duplex> {
  const child = spawn(NSENTER, [`--net=${netns}`, process.execPath, '-e', RELAY, String(port), host], { stdio: ['pipe', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => fail(`connecting to port ${port} in the pod timed out after ${DIAL_TIMEOUT_MS} ms`), DIAL_TIMEOUT_MS);
    const fail = (message: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(message));
    };
    child.on('error', (err) => fail(`${NSENTER}: ${err.message}`));
    child.on('close', (code) => {
      if (!text.startsWith('connected\n')) fail(`connecting to port ${port} in the pod: ${text.trim() || `relay exited with ${code}`}`);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      const before = text;
      text += chunk.toString();
      if (!before.startsWith('connected\n') && text.startsWith('connected\n')) {
        clearTimeout(timer);
        const connection = Duplex.from({ readable: child.stdout, writable: child.stdin });
        connection.on('close', () => child.kill('SIGKILL'));
        child.stdin.on('error', () => undefined);
        resolve(connection);
      }
    });
  });
}

/**
 * Serves port forwarding on an open WebSocket (v4.channel.k8s.io / portforward.k8s.io): port i
 * gets data channel 2i and error channel 2i+1, each opened by the port as 2 little-endian bytes.
 * Each port carries one connection; when every connection has ended the socket closes.
 */
export function servePortForward(ws: WebSocket, ports: number[], dial: (port: number) => Promise<Duplex>, held: Buffer[] = []): void {
  const connections: (Duplex | undefined)[] = ports.map(() => undefined);
  const early: Buffer[][] = ports.map(() => []);
  let open = ports.length;
  const ended = () => {
    if (--open === 0 && ws.readyState === ws.OPEN) ws.close(1000);
  };
  const send = (channel: number, data: Buffer | string) => {
    if (ws.readyState === ws.OPEN) ws.send(frame(channel, data));
  };

  ports.forEach((port, i) => {
    send(2 * i, portPrefix(port));
    send(2 * i + 1, portPrefix(port));
  });
  const onMessage = (data: Buffer) => {
    if (data.length === 0 || data[0]! % 2 !== 0) return;
    const i = data[0]! / 2;
    if (i >= ports.length) return;
    const body = data.subarray(1);
    const connection = connections[i];
    if (connection) connection.write(body);
    else early[i]!.push(body);
  };
  ws.on('message', onMessage);
  for (const data of held.splice(0)) onMessage(data);
  ws.on('close', () => {
    for (const connection of connections) connection?.destroy();
    connections.fill(undefined);
    open = -1;
  });

  ports.forEach((port, i) => {
    dial(port).then(
      (connection) => {
        if (open < 0) return void connection.destroy();
        connections[i] = connection;
        for (const body of early[i]!) connection.write(body);
        early[i] = [];
        connection.on('data', (chunk: Buffer) => send(2 * i, chunk));
        connection.on('error', (err) => send(2 * i + 1, `error forwarding port ${port}: ${err.message}`));
        connection.on('close', ended);
      },
      (err: Error) => {
        send(2 * i + 1, `error forwarding port ${port}: ${err.message}`);
        ended();
      },
    );
  });
}
