import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { sleep } from '../client/informer.js';

/** Restart delay after the first unexpected exit; it doubles on each further one, up to the cap. */
export const RESTART_BACKOFF_INITIAL_MS = 1_000;
export const RESTART_BACKOFF_MAX_MS = 30_000;
/** A child that ran at least this long before it exited starts again at the initial delay. */
export const RESTART_BACKOFF_RESET_MS = 60_000;
/** How long a child has between SIGTERM and SIGKILL when stopped. */
export const STOP_GRACE_MS = 10_000;
/** Interval of the wait for a process that is not our child to exit. */
const FOREIGN_EXIT_POLL_MS = 50;

export interface Backoff {
  initialMs: number;
  maxMs: number;
  resetAfterMs: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Delay before the next start. */
  restartInMs: number;
}

export interface SupervisedOptions {
  /** argv[0] is the program; no shell. */
  argv: readonly string[];
  /** stdout and stderr are appended here, after a line marking each start. */
  logFile: string;
  env?: NodeJS.ProcessEnv;
  backoff?: Partial<Backoff>;
  stopGraceMs?: number;
  /** Called with each new child's PID (record it to find stale children after a crash). */
  onStart?(pid: number): void;
  /** Called when the child exits on its own (not through `stop`). */
  onExit?(info: ExitInfo): void;
}

/**
 * Keeps one child process running, as systemd's `Restart=always` would: a child that exits is started
 * again after a back-off that grows while it keeps failing. Each child gets its own process group, so
 * a Ctrl-C on the terminal reaches only the supervisor, which then stops the child in order.
 *
 * Lifecycle: `new Supervised(opts)` → `start()` → (child exits → back-off → started again)* →
 * `stop()`: SIGTERM to the child's group, SIGKILL after the grace period, resolved once it is reaped.
 */
export class Supervised {
  private readonly abort = new AbortController();
  private child?: ChildProcess;
  private exited?: Promise<void>;
  private loop?: Promise<void>;
  private starts = 0;
  private readonly backoff: Backoff;

  constructor(private readonly options: SupervisedOptions) {
    this.backoff = {
      initialMs: options.backoff?.initialMs ?? RESTART_BACKOFF_INITIAL_MS,
      maxMs: options.backoff?.maxMs ?? RESTART_BACKOFF_MAX_MS,
      resetAfterMs: options.backoff?.resetAfterMs ?? RESTART_BACKOFF_RESET_MS,
    };
  }

  /** PID of the running child, if one is running. */
  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  /** How many times a child has been started. */
  get startCount(): number {
    return this.starts;
  }

  start(): void {
    this.loop ??= this.run();
  }

  private async run(): Promise<void> {
    const { signal } = this.abort;
    let delay = this.backoff.initialMs;
    while (!signal.aborted) {
      const startedAt = Date.now();
      const exit = await this.spawnOnce().catch((err: Error) => ({ code: null, signal: null, error: err }));
      if (signal.aborted) break;
      if (Date.now() - startedAt >= this.backoff.resetAfterMs) delay = this.backoff.initialMs;
      if ('error' in exit) this.note(`cannot start: ${exit.error.message}`);
      this.options.onExit?.({ code: exit.code, signal: exit.signal, restartInMs: delay });
      await sleep(delay, signal);
      delay = Math.min(delay * 2, this.backoff.maxMs);
    }
  }

  /** Runs one child to its end. */
  private spawnOnce(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const { argv, logFile } = this.options;
    mkdirSync(dirname(logFile), { recursive: true });
    const fd = openSync(logFile, 'a', 0o640);
    let child: ChildProcess;
    try {
      this.starts++;
      writeSync(fd, `--- ${new Date().toISOString()} start ${this.starts}: ${argv.join(' ')}\n`);
      child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, fd], detached: true, env: this.options.env ?? process.env });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, sig) => resolve({ code, signal: sig }));
    });
    this.exited = done.then(
      () => undefined,
      () => undefined,
    );
    if (child.pid !== undefined) this.options.onStart?.(child.pid);
    return done;
  }

  private note(line: string): void {
    try {
      const fd = openSync(this.options.logFile, 'a', 0o640);
      try {
        writeSync(fd, `--- ${new Date().toISOString()} ${line}\n`);
      } finally {
        closeSync(fd);
      }
    } catch {
      // the log is best effort; the exit is reported through onExit as well
    }
  }

  /** Stops restarting, then ends the running child: SIGTERM to its group, SIGKILL after the grace period. */
  async stop(): Promise<void> {
    this.abort.abort();
    const pid = this.pid;
    if (pid !== undefined) {
      signalGroup(pid, 'SIGTERM');
      const grace = this.options.stopGraceMs ?? STOP_GRACE_MS;
      const timer = new AbortController();
      const killed = sleep(grace, timer.signal).then(() => {
        if (!timer.signal.aborted) signalGroup(pid, 'SIGKILL');
      });
      await this.exited;
      timer.abort();
      await killed;
    }
    await this.loop;
  }
}

/** Signals the process group `pid` leads, or the process alone when it leads none. */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** The NUL-separated command line of `pid`, or undefined if there is no such (live) process. */
export async function processCommandLine(pid: number): Promise<string[] | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const text = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => undefined);
  // A zombie has an empty command line and nothing left to stop.
  if (!text) return undefined;
  return text.replace(/\0$/, '').split('\0');
}

/**
 * Stops a process left over from an earlier run (not our child) if its command line still passes
 * `isOurs`; a PID reused by something else is left alone. SIGTERM to its group, SIGKILL after
 * `graceMs`; resolves once it is gone. Returns whether it was ours and stopped.
 */
export async function stopStale(pid: number, isOurs: (argv: string[]) => boolean, graceMs = STOP_GRACE_MS, signal?: AbortSignal): Promise<boolean> {
  const argv = await processCommandLine(pid);
  if (!argv || !isOurs(argv)) return false;
  signalGroup(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  let killed = false;
  while (!signal?.aborted) {
    const now = await processCommandLine(pid);
    if (!now || !isOurs(now)) break;
    if (!killed && Date.now() >= deadline) {
      signalGroup(pid, 'SIGKILL');
      killed = true;
    }
    await sleep(FOREIGN_EXIT_POLL_MS, signal);
  }
  return true;
}
