/**
 * The guest agent: runs as a Node program inside the VM (started by the initramfs's /init) and serves
 * the protocol in PROTOCOL.md on the virtio-serial port named AGENT_PORT_NAME. It imports only Node
 * built-ins and ./agent-protocol.js, the two files the agent disk carries.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream, openSync, readdirSync, readFileSync } from 'node:fs';
import { constants, release } from 'node:os';
import {
  AGENT_PORT_NAME, FrameDecoder, PROTOCOL_VERSIONS, ProtocolError, encodeFrame, parseRequest,
  type AgentErrorCode, type ExecArgs, type ExecResult, type Request, type SignalArgs, type StartArgs, type WaitArgs, type WaitResult,
} from './agent-protocol.js';

const AGENT_NAME = 'atoll-guest-agent';
/** Output beyond this per stream of one exec is cut off, so a chatty command cannot exhaust guest memory. */
const EXEC_OUTPUT_LIMIT_BYTES = 8 * 1024 * 1024;

class AgentError extends Error {
  constructor(readonly code: AgentErrorCode, message: string) {
    super(message);
  }
}

function findPort(name: string): string {
  const base = '/sys/class/virtio-ports';
  for (const port of readdirSync(base)) {
    if (readFileSync(`${base}/${port}/name`, 'utf8').trim() === name) return `/dev/${port}`;
  }
  throw new Error(`no virtio-serial port named '${name}' under ${base}`);
}

function stringArray(value: unknown, field: string, nonEmpty: boolean): string[] {
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string') || (nonEmpty && value.length === 0)) {
    throw new AgentError('BadRequest', `'${field}' must be ${nonEmpty ? 'a non-empty' : 'an'} array of strings`);
  }
  return value as string[];
}

function envObject(env: unknown): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };
  for (const entry of env === undefined ? [] : stringArray(env, 'env', false)) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new AgentError('BadRequest', `env entry '${entry}' is not NAME=value`);
    out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return out;
}

/** Spawns argv and resolves once the process exists, or rejects with CommandNotFound. */
function spawnChecked(argv: string[], env: NodeJS.ProcessEnv, cwd: string | undefined, stdio: 'pipe' | 'ignore'): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, cwd, stdio: ['ignore', stdio, stdio] });
    child.once('spawn', () => resolve(child));
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'EACCES') reject(new AgentError('CommandNotFound', `${argv[0]}: ${err.code === 'ENOENT' ? 'executable file not found' : 'permission denied'}${cwd ? ` (cwd ${cwd})` : ''}`));
      else reject(new AgentError('Internal', `spawn ${argv[0]}: ${err.message}`));
    });
  });
}

function collect(stream: NodeJS.ReadableStream | null): () => string {
  const chunks: Buffer[] = [];
  let size = 0;
  stream?.on('data', (chunk: Buffer) => {
    if (size >= EXEC_OUTPUT_LIMIT_BYTES) return;
    chunks.push(chunk.subarray(0, EXEC_OUTPUT_LIMIT_BYTES - size));
    size += chunk.length;
  });
  return () => Buffer.concat(chunks).toString('base64');
}

/** Processes started with 'start', kept until a 'wait' collects their exit. */
const started = new Map<number, { exit: Promise<WaitResult> }>();

function exitOf(child: ChildProcess): Promise<WaitResult> {
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ exitCode: code ?? 128, signal })));
}

async function exec(args: ExecArgs): Promise<ExecResult> {
  const argv = stringArray(args.argv, 'argv', true);
  if (args.timeoutMs !== undefined && !(Number.isSafeInteger(args.timeoutMs) && args.timeoutMs > 0)) throw new AgentError('BadRequest', "'timeoutMs' must be a positive integer");
  const child = await spawnChecked(argv, envObject(args.env), args.cwd, 'pipe');
  const stdout = collect(child.stdout);
  const stderr = collect(child.stderr);
  let timedOut = false;
  const timer = args.timeoutMs === undefined ? undefined : setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, args.timeoutMs);
  const exit = await exitOf(child);
  clearTimeout(timer);
  if (timedOut) throw new AgentError('DeadlineExceeded', `${argv[0]} did not finish within ${args.timeoutMs} ms and was killed`);
  return { exitCode: exit.signal ? 128 + signalNumber(exit.signal) : exit.exitCode, signal: exit.signal, stdout: stdout(), stderr: stderr() };
}

async function start(args: StartArgs): Promise<{ pid: number }> {
  const argv = stringArray(args.argv, 'argv', true);
  const child = await spawnChecked(argv, envObject(args.env), args.cwd, 'ignore');
  const pid = child.pid!;
  started.set(pid, { exit: exitOf(child) });
  return { pid };
}

function signalNumber(name: string): number {
  return constants.signals[name as NodeJS.Signals] ?? 0;
}

function processOf(pid: unknown): { exit: Promise<WaitResult> } {
  if (!Number.isSafeInteger(pid)) throw new AgentError('BadRequest', "'pid' must be an integer");
  const entry = started.get(pid as number);
  if (!entry) throw new AgentError('NoSuchProcess', `no process ${String(pid)} started by this agent`);
  return entry;
}

function signal(args: SignalArgs): Record<string, never> {
  processOf(args.pid);
  if (typeof args.signal !== 'string' && !Number.isSafeInteger(args.signal)) throw new AgentError('BadRequest', "'signal' must be a name or a number");
  try {
    process.kill(args.pid, args.signal);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return {};
    throw new AgentError('BadRequest', `signal ${String(args.signal)} to ${args.pid}: ${(err as Error).message}`);
  }
  return {};
}

async function wait(args: WaitArgs): Promise<WaitResult> {
  const result = await processOf(args.pid).exit;
  started.delete(args.pid);
  return result;
}

async function handle(request: Request): Promise<unknown> {
  if (request.op === 'hello') {
    const offered = versionList((request as Request<'hello'>).versions);
    const version = [...PROTOCOL_VERSIONS].reverse().find((v) => offered.includes(v));
    if (version === undefined) throw new AgentError('UnsupportedVersion', `agent speaks versions ${PROTOCOL_VERSIONS.join(', ')}, host offered ${offered.join(', ') || 'none'}`);
    return { version, agent: AGENT_NAME, kernelRelease: release() };
  }
  if (!(PROTOCOL_VERSIONS as readonly number[]).includes(request.v)) throw new AgentError('UnsupportedVersion', `agent speaks versions ${PROTOCOL_VERSIONS.join(', ')}, request used ${request.v}`);
  switch (request.op) {
    case 'exec': return exec(request as Request<'exec'>);
    case 'start': return start(request as Request<'start'>);
    case 'signal': return signal(request as Request<'signal'>);
    case 'wait': return wait(request as Request<'wait'>);
    default: throw new AgentError('UnknownOp', `unknown op '${String(request.op)}'`);
  }
}

function versionList(value: unknown): number[] {
  if (!Array.isArray(value) || value.some((v) => !Number.isSafeInteger(v))) throw new AgentError('BadRequest', "'versions' must be an array of integers");
  return value as number[];
}

function serve(path: string): void {
  // A virtio-serial port can be open only once, so both directions share one read-write descriptor.
  const fd = openSync(path, 'r+');
  const input = createReadStream(path, { fd, autoClose: false });
  const output = createWriteStream(path, { fd, autoClose: false });
  const decoder = new FrameDecoder();
  const reply = (message: object) => output.write(encodeFrame(message));
  input.on('data', (chunk: Buffer | string) => {
    let messages: Record<string, unknown>[];
    try {
      messages = decoder.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    } catch (err) {
      // The framing is lost; nothing after this point can be matched to a request. Exiting lets /init
      // restart the agent with a fresh decoder.
      process.stderr.write(`${AGENT_NAME}: ${(err as Error).message}\n`);
      process.exit(2);
    }
    for (const message of messages) {
      let request: Request;
      try {
        request = parseRequest(message);
      } catch (err) {
        const id = Number.isSafeInteger(message.id) ? message.id : 0;
        reply({ v: PROTOCOL_VERSIONS[0], id, ok: false, error: { code: 'BadRequest', message: (err as ProtocolError).message } });
        continue;
      }
      handle(request).then(
        (result) => reply({ v: request.v, id: request.id, ok: true, result }),
        (err: Error) => reply({ v: request.v, id: request.id, ok: false, error: { code: err instanceof AgentError ? err.code : 'Internal', message: err.message } }),
      );
    }
  });
  input.on('error', (err) => {
    process.stderr.write(`${AGENT_NAME}: reading ${path}: ${err.message}\n`);
    process.exit(1);
  });
}

serve(process.argv[2] ?? findPort(AGENT_PORT_NAME));
