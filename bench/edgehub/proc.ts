/** /proc, child-process and polling helpers for bench/edgehub. */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { sleep } from '../../src/client/informer.js';
import { pssKiB } from '../runtime/proc.js';

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const USER_HZ = 100;
const CHILD_POLL_MS = 50;

export interface Memory {
  /** Resident set now. */
  rssKiB: number;
  /** Peak resident set over the process's life (VmHWM). */
  peakKiB: number;
  /** Proportional set: pages shared with other processes (the node binary's, say) count by share. */
  pssKiB: number;
}

/** RSS, peak RSS and PSS of `pid`; zeros once it is gone. */
export async function memoryOf(pid: number): Promise<Memory> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { rssKiB: field('VmRSS'), peakKiB: field('VmHWM'), pssKiB: await pssKiB(pid) };
}

export const mib = (kib: number) => +(kib / 1024).toFixed(1);

/** User plus system CPU time `pid` has used, all its threads together, in ms (10 ms resolution). */
export async function cpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // comm may hold spaces and parentheses: fields resume after the last ')', utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ;
}

/**
 * Polls `check` every `intervalMs` until it returns a value, and returns it with the time it was first
 * seen (performance.now()). Unlike test/support's waitFor, the interval is the caller's (it bounds the
 * resolution of what is timed) and the wait ends at once when `signal` aborts. A check that throws
 * counts as not yet.
 */
export async function poll<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  opts: { timeoutMs: number; intervalMs: number; signal: AbortSignal },
): Promise<{ value: T; at: number }> {
  const deadline = performance.now() + opts.timeoutMs;
  let last: unknown;
  for (;;) {
    if (opts.signal.aborted) throw new Error(`stopped while waiting for ${what}`);
    try {
      const value = await check();
      if (value) return { value, at: performance.now() };
    } catch (err) {
      last = err;
    }
    if (performance.now() > deadline) throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(opts.intervalMs, opts.signal);
  }
}

/** A Node child process that printed `ready` on stdout or stderr. */
export interface Child {
  process: ChildProcess;
  output(): string;
  /** Sends `signal`, SIGKILLs after `graceMs`; resolves once the child is reaped. */
  stop(signal: NodeJS.Signals, graceMs: number): Promise<void>;
}

/** Runs `node ...args` and waits until it prints `ready`; a child that fails to get there is stopped. */
export async function startChild(args: string[], ready: string, opts: { timeoutMs: number; signal: AbortSignal }): Promise<Child> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const handle: Child = {
    process: child,
    output: () => output,
    async stop(signal, graceMs) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  try {
    await poll(`${args.join(' ')} to print "${ready}"`, async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited:\n${output}`);
      return output.includes(ready);
    }, { ...opts, intervalMs: CHILD_POLL_MS });
  } catch (err) {
    await handle.stop('SIGKILL', 0);
    throw err;
  }
  return handle;
}
