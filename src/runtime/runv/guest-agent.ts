/**
 * The guest agent: runs as a Node program inside the VM (started, and restarted, by the initramfs's
 * /init) and serves the protocol in PROTOCOL.md on the virtio-serial port named AGENT_PORT_NAME. It
 * imports only Node built-ins and modules of this repository that do too; guest-image.ts copies it
 * and everything it imports onto the agent disk.
 */
import { createWriteStream, openSync, read, readdirSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { RuntimeError } from '../handler.js';
import {
  AGENT_PORT_NAME, FrameDecoder, PROTOCOL_VERSIONS, encodeFrame, parseRequest,
  type HelloResult, type Op, type Request,
} from './agent-protocol.js';
import { GuestContainers } from './guest/containers.js';
import { configureInterface, route, setHostname } from './guest/network.js';
import { exec, signal, start, wait } from './guest/processes.js';
import { mount, umount, writeFile } from './guest/storage.js';
import { blockCounters, identity, memoryCounters, networkCounters, reseedRandom, setTime } from './guest/system.js';
import { AgentError, optionalStringArray } from './guest/validate.js';

const AGENT_NAME = 'atoll-guest-agent';
/** While no host is connected a read of the port returns at once (EOF); this paces the wait for one. */
const RECONNECT_POLL_MS = 100;
const READ_BYTES = 64 * 1024;
const readAsync = promisify(read);

type Handler = (args: Record<string, unknown>, signal: AbortSignal) => unknown;

function findPort(name: string): string {
  const base = '/sys/class/virtio-ports';
  for (const port of readdirSync(base)) {
    if (readFileSync(`${base}/${port}/name`, 'utf8').trim() === name) return `/dev/${port}`;
  }
  throw new Error(`no virtio-serial port named '${name}' under ${base}`);
}

function hello(args: Record<string, unknown>): HelloResult {
  const offered = args.versions;
  if (!Array.isArray(offered) || offered.some((v) => !Number.isSafeInteger(v))) throw new AgentError('BadRequest', "'versions' must be an array of integers");
  const version = [...PROTOCOL_VERSIONS].reverse().find((v) => offered.includes(v));
  if (version === undefined) throw new AgentError('UnsupportedVersion', `agent speaks versions ${PROTOCOL_VERSIONS.join(', ')}, host offered ${offered.join(', ') || 'none'}`);
  return { version, agent: AGENT_NAME, kernelRelease: release() };
}

function handlers(containers: GuestContainers | Error): Record<Op, Handler> {
  const c = (use: (containers: GuestContainers) => Handler): Handler => {
    if (containers instanceof Error) return () => { throw new AgentError('Internal', `containers are unavailable in this guest: ${containers.message}`); };
    return use(containers);
  };
  return {
    hello, exec, start, signal, wait,
    mount, umount, writeFile,
    createContainer: c((x) => (args) => x.create(args)),
    startContainer: c((x) => (args) => x.start(args)),
    signalContainer: c((x) => (args) => x.signal(args)),
    stopContainer: c((x) => (args) => x.stop(args)),
    waitContainer: c((x) => (args, abort) => x.wait(args, abort)),
    removeContainer: c((x) => (args) => x.remove(args)),
    updateContainer: c((x) => (args) => x.update(args)),
    execInContainer: c((x) => (args) => x.exec(args)),
    execSyncInContainer: c((x) => (args) => x.execSync(args)),
    waitExec: c((x) => (args, abort) => x.waitExec(args, abort)),
    signalExec: c((x) => (args) => x.signalExec(args)),
    readOutput: c((x) => (args, abort) => x.readOutput(args, abort)),
    writeStdin: c((x) => (args) => x.writeStdin(args)),
    closeStdin: c((x) => (args) => x.closeStdin(args)),
    resizeTerminal: c((x) => (args) => x.resize(args)),
    stats: async (args) => ({
      timestamp: Date.now(),
      containers: containers instanceof Error ? [] : await containers.stats(optionalStringArray(args.containerIds, 'containerIds')),
      network: await networkCounters(),
      block: await blockCounters(),
      memory: await memoryCounters(),
    }),
    interface: configureInterface,
    route,
    hostname: setHostname,
    setTime,
    reseedRandom,
    identity,
  };
}

/** An error as the protocol's {code, message}; the runtime handler's codes carry over. */
function errorBody(err: unknown): { code: string; message: string } {
  if (err instanceof AgentError) return { code: err.code, message: err.message };
  if (err instanceof RuntimeError) return { code: err.code === 'InvalidArgument' ? 'BadRequest' : err.code, message: err.message };
  return { code: 'Internal', message: (err as Error).message ?? String(err) };
}

async function handle(table: Record<Op, Handler>, request: Request, abort: AbortSignal): Promise<unknown> {
  const args = request as unknown as Record<string, unknown>;
  if (request.op === 'hello') return hello(args);
  if (!(PROTOCOL_VERSIONS as readonly number[]).includes(request.v)) throw new AgentError('UnsupportedVersion', `agent speaks versions ${PROTOCOL_VERSIONS.join(', ')}, request used ${request.v}`);
  if (!Object.hasOwn(table, request.op)) throw new AgentError('UnknownOp', `unknown op '${String(request.op)}'`);
  return table[request.op](args, abort);
}

/**
 * Reads requests from the port and answers each when it completes. The port reads EOF while no host
 * is connected: that ends the connection (its decoder state and its unanswered requests, whose
 * answers would reach the next host) and the agent waits for the next one. Containers and their
 * buffered output stay.
 */
async function serve(path: string, table: Record<Op, Handler>): Promise<never> {
  // A virtio-serial port can be open only once, so both directions share one read-write descriptor.
  const fd = openSync(path, 'r+');
  const output = createWriteStream(path, { fd, autoClose: false });
  output.on('error', (err) => {
    process.stderr.write(`${AGENT_NAME}: writing ${path}: ${err.message}\n`);
    process.exit(1);
  });
  let connection = new AbortController();
  let decoder = new FrameDecoder();
  const chunk = Buffer.alloc(READ_BYTES);
  const reply = (abort: AbortSignal, message: object) => {
    if (abort.aborted) return;
    let frame: Buffer;
    try {
      frame = encodeFrame(message);
    } catch (err) {
      const id = (message as { id: number }).id;
      frame = encodeFrame({ v: PROTOCOL_VERSIONS[0], id, ok: false, error: { code: 'Internal', message: `answer not sent: ${(err as Error).message}` } });
    }
    output.write(frame);
  };
  for (;;) {
    const { bytesRead } = await readAsync(fd, chunk, 0, READ_BYTES, null);
    if (bytesRead === 0) {
      connection.abort();
      decoder = new FrameDecoder();
      await sleep(RECONNECT_POLL_MS);
      continue;
    }
    if (connection.signal.aborted) connection = new AbortController();
    const abort = connection.signal;
    let messages: Record<string, unknown>[];
    try {
      messages = decoder.push(Buffer.from(chunk.subarray(0, bytesRead)));
    } catch (err) {
      // The framing is lost; nothing after this point can be matched to a request. Exiting lets /init
      // restart the agent with a fresh decoder; containers keep running under their conmon.
      process.stderr.write(`${AGENT_NAME}: ${(err as Error).message}\n`);
      process.exit(2);
    }
    for (const message of messages) {
      let request: Request;
      try {
        request = parseRequest(message);
      } catch (err) {
        const id = Number.isSafeInteger(message.id) ? message.id : 0;
        reply(abort, { v: PROTOCOL_VERSIONS[0], id, ok: false, error: { code: 'BadRequest', message: (err as Error).message } });
        continue;
      }
      handle(table, request, abort).then(
        (result) => reply(abort, { v: request.v, id: request.id, ok: true, result }),
        (err: unknown) => reply(abort, { v: request.v, id: request.id, ok: false, error: errorBody(err) }),
      );
    }
  }
}

const containers = await GuestContainers.open().catch((err: Error) => {
  process.stderr.write(`${AGENT_NAME}: containers unavailable: ${err.message}\n`);
  return err;
});
await serve(process.argv[2] ?? findPort(AGENT_PORT_NAME), handlers(containers));
