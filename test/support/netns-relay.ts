import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';

/**
 * TCP connections from inside a network namespace the test made, for code that dials pods the way
 * the node agent does from the node's namespace (probes, hooks). A small Node process runs in the
 * namespace and listens on a unix socket (which namespaces do not separate); each connection names
 * its target in one line, gets `+` or `-<error>` back, and is then spliced to the target.
 */
export interface NetnsRelay {
  dial(host: string, port: number, signal: AbortSignal): Promise<net.Socket>;
  close(): Promise<void>;
}

const RELAY_READY_TIMEOUT_MS = 10_000;

const RELAY_SCRIPT = `
const net = require('net');
const path = process.argv[1];
net.createServer((c) => {
  c.on('error', () => {});
  let buf = Buffer.alloc(0);
  const onData = (d) => {
    buf = Buffer.concat([buf, d]);
    const nl = buf.indexOf(10);
    if (nl < 0) return;
    c.removeListener('data', onData);
    c.pause();
    const [host, port] = buf.subarray(0, nl).toString().split(' ');
    const rest = buf.subarray(nl + 1);
    const t = net.connect({ host, port: Number(port) });
    t.once('error', (e) => c.end('-connect: ' + (e.code === 'ECONNREFUSED' ? 'connection refused' : e.message) + '\\n'));
    t.once('connect', () => {
      t.removeAllListeners('error');
      t.on('error', () => c.destroy());
      c.on('close', () => t.destroy());
      t.on('close', () => c.destroy());
      c.write('+\\n');
      if (rest.length) t.write(rest);
      c.pipe(t);
      t.pipe(c);
      c.resume();
    });
  };
  c.on('data', onData);
}).listen(path, () => process.stdout.write('ready\\n'));
process.on('SIGTERM', () => process.exit(0));
`;

export async function startNetnsRelay(netnsPath: string, dir: string): Promise<NetnsRelay> {
  const socketPath = join(dir, `relay-${process.pid}-${Date.now()}.sock`);
  const child: ChildProcess = spawn('nsenter', [`--net=${netnsPath}`, process.execPath, '-e', RELAY_SCRIPT, socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the netns relay did not start')), RELAY_READY_TIMEOUT_MS);
    child.stdout!.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the netns relay exited with ${code}`));
    });
  }).catch(async (err: unknown) => {
    child.kill('SIGKILL');
    await exited;
    throw err;
  });

  function dial(host: string, port: number, signal: AbortSignal): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = net.connect(socketPath);
      let buf = Buffer.alloc(0);
      const fail = (err: Error) => {
        signal.removeEventListener('abort', onAbort);
        s.destroy();
        reject(err);
      };
      const onAbort = () => fail(new Error(`dial tcp ${host}:${port}: i/o timeout`));
      signal.addEventListener('abort', onAbort, { once: true });
      s.once('error', fail);
      s.write(`${host} ${port}\n`);
      // Read the answer line in paused mode, so that whoever takes the socket next starts it flowing.
      const onReadable = () => {
        let chunk: Buffer | null;
        while ((chunk = s.read() as Buffer | null) !== null) {
          buf = Buffer.concat([buf, chunk]);
          const nl = buf.indexOf(10);
          if (nl < 0) continue;
          s.removeListener('readable', onReadable);
          const line = buf.subarray(0, nl).toString();
          const rest = buf.subarray(nl + 1);
          if (!line.startsWith('+')) return fail(new Error(`dial tcp ${host}:${port}: ${line.slice(1)}`));
          signal.removeEventListener('abort', onAbort);
          s.removeListener('error', fail);
          if (rest.length > 0) s.unshift(rest);
          return resolve(s);
        }
      };
      s.on('readable', onReadable);
    });
  }

  return {
    dial,
    async close() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
