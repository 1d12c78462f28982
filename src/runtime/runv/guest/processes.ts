import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { ExecResult, StartResult, WaitResult } from '../agent-protocol.js';
import { AgentError, envEntries, integer, optionalInteger, optionalString, signalValue, stringArray } from './validate.js';

/**
 * Guest processes outside any container (`exec`, `start`, `signal`, `wait`): what the host uses to
 * prepare the VM itself.
 */

/**
 * Output beyond this per stream of one exec is cut off: a chatty command must not exhaust guest
 * memory, and both streams, base64-encoded, must fit one frame.
 */
export const EXEC_OUTPUT_LIMIT_BYTES = 4 * 1024 * 1024;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

function environment(env: unknown): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { PATH: DEFAULT_PATH };
  for (const entry of envEntries(env, 'env')) {
    const eq = entry.indexOf('=');
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

/** Collects a stream up to `limit` bytes; the returned function gives what was kept. */
export function collect(stream: NodeJS.ReadableStream | null, limit = EXEC_OUTPUT_LIMIT_BYTES): () => Buffer {
  const chunks: Buffer[] = [];
  let size = 0;
  stream?.on('data', (chunk: Buffer) => {
    if (size >= limit) return;
    chunks.push(chunk.subarray(0, limit - size));
    size += chunk.length;
  });
  return () => Buffer.concat(chunks);
}

function exitOf(child: ChildProcess): Promise<WaitResult> {
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ exitCode: code ?? 128, signal })));
}

export function signalNumber(name: string): number {
  return constants.signals[name as NodeJS.Signals] ?? 0;
}

export async function exec(args: Record<string, unknown>): Promise<ExecResult> {
  const argv = stringArray(args.argv, 'argv', true);
  const timeoutMs = optionalInteger(args.timeoutMs, 'timeoutMs', 1);
  const child = await spawnChecked(argv, environment(args.env), optionalString(args.cwd, 'cwd'), 'pipe');
  const stdout = collect(child.stdout);
  const stderr = collect(child.stderr);
  let timedOut = false;
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
  const exit = await exitOf(child);
  clearTimeout(timer);
  if (timedOut) throw new AgentError('DeadlineExceeded', `${argv[0]} did not finish within ${timeoutMs} ms and was killed`);
  return {
    exitCode: exit.signal ? 128 + signalNumber(exit.signal) : exit.exitCode,
    signal: exit.signal,
    stdout: stdout().toString('base64'),
    stderr: stderr().toString('base64'),
  };
}

/** Runs argv to completion and throws with its stderr unless it exits 0; for the agent's own tools. */
export async function run(argv: string[]): Promise<string> {
  const child = await spawnChecked(argv, environment(undefined), undefined, 'pipe');
  const stdout = collect(child.stdout);
  const stderr = collect(child.stderr);
  const exit = await exitOf(child);
  if (exit.exitCode !== 0 || exit.signal) {
    throw new AgentError('Internal', `${argv.join(' ')}: ${stderr().toString().trim() || `exit ${exit.exitCode}${exit.signal ? ` (${exit.signal})` : ''}`}`);
  }
  return stdout().toString();
}

/** Processes started with 'start', kept until a 'wait' collects their exit. */
const started = new Map<number, Promise<WaitResult>>();

export async function start(args: Record<string, unknown>): Promise<StartResult> {
  const argv = stringArray(args.argv, 'argv', true);
  const child = await spawnChecked(argv, environment(args.env), optionalString(args.cwd, 'cwd'), 'ignore');
  const pid = child.pid!;
  started.set(pid, exitOf(child));
  return { pid };
}

function startedProcess(value: unknown): { pid: number; exit: Promise<WaitResult> } {
  const pid = integer(value, 'pid', 1);
  const exit = started.get(pid);
  if (!exit) throw new AgentError('NoSuchProcess', `no process ${pid} started by this agent`);
  return { pid, exit };
}

export function signal(args: Record<string, unknown>): Record<string, never> {
  const { pid } = startedProcess(args.pid);
  const sig = signalValue(args.signal, 'signal');
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return {};
    throw new AgentError('BadRequest', `signal ${String(sig)} to ${pid}: ${(err as Error).message}`);
  }
  return {};
}

export async function wait(args: Record<string, unknown>): Promise<WaitResult> {
  const { pid, exit } = startedProcess(args.pid);
  const result = await exit;
  started.delete(pid);
  return result;
}
