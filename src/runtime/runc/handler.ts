import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, readSync, watch, type FSWatcher } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { cgroupAt, cgroupMode, enableBlockIoStats, oomKillCount, readBlockIo, readStats, swapAccounting, type CgroupMode } from '../cgroups.js';
import {
  RuntimeError,
  type AdoptedContainer,
  type AttachSession,
  type ContainerSpec,
  type ContainerState,
  type ContainerStats,
  type ExecOptions,
  type ExecResult,
  type ExecSession,
  type ExitReason,
  type Resources,
  type RuntimeHandler,
} from '../handler.js';
import { conmonAttach } from '../streaming/attach.js';
import { scriptTerminalResizer } from '../streaming/terminal.js';
import type { OciSeccomp } from './seccomp.js';
import { rootfsUser } from './rootfs-user.js';
import { buildOciSpec, capabilitiesFromMask, clampOomScoreAdj, ociResources, type OciSpec } from './spec.js';

/** How often exit files are checked in case an inotify event was missed (the watch is the fast path). */
const EXIT_POLL_MS = 5_000;
/** How long conmon may take to report the container's PID (runc create included). */
const CONMON_START_TIMEOUT_MS = 30_000;
/** How long a SIGKILLed container may take to be reported exited. */
const KILL_GRACE_MS = 10_000;
/** How long conmon may take to exit after its container's exit file appeared. */
const CONMON_EXIT_TIMEOUT_MS = 5_000;
/** How long adopt() waits for a live conmon to write the exit file of a container runc reports stopped. */
const ADOPT_EXIT_FILE_WAIT_MS = 2_000;
/** Interval of the bounded waits on processes that give no event (conmon's exit). */
const PROCESS_POLL_MS = 20;
/** Bound on runc subcommands that should return at once (start, kill, delete, state, update). */
const RUNC_CALL_TIMEOUT_MS = 30_000;
/** How long runc exec gets to reap a timed-out command after it was killed, before runc is killed too. */
const EXEC_REAP_GRACE_MS = 2_000;
/** How long a timed-out exec's process may take to appear (runc writes its pid file) before runc itself is killed. */
const EXEC_START_GRACE_MS = 10_000;
const EXEC_PID_POLL_MS = 50;
/** runc's FIFO in its state dir that a created container's init waits on (libcontainer execFifoFilename). */
const EXEC_FIFO = 'exec.fifo';
/** conmon's control-FIFO message asking it to reopen the log file (config.h REOPEN_LOGS_EVENT). */
const REOPEN_LOGS_EVENT = 2;
/** Exit code recorded for a container whose exit nobody saw (conmon gone, no exit file), as CRI-O does. */
const LOST_EXIT_CODE = 255;

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export interface RuncHandlerOptions {
  runcPath?: string;
  conmonPath?: string;
  /** Cgroup parent for containers whose spec names none. */
  cgroupParent?: string;
  /** conmon's --log-size-max; unlimited when absent. */
  logSizeMax?: number;
  /** Where warnings go (the OOM score clamp); console.warn when absent. */
  log?: (message: string) => void;
  /**
   * Start a created container from this process, by reading runc's exec FIFO as `runc start` itself
   * does, instead of running `runc start`. For a runv guest under TCG, where every run of runc (a Go
   * program) costs a second or more; on a host a `runc start` costs milliseconds, so off by default.
   */
  startInProcess?: boolean;
}

type RecordStatus = 'creating' | 'created' | 'running' | 'exited';

/** What the handler persists per container (record.json in the bundle). */
interface ContainerRecord {
  id: string;
  name: string;
  sandboxId: string;
  status: RecordStatus;
  pid: number;
  conmonPid: number;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  exitCode?: number;
  reason?: ExitReason;
  message?: string;
  logPath: string;
  cgroupsPath: string;
  stopSignal: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

function parseRecord(text: string, id: string): ContainerRecord {
  const value = JSON.parse(text) as Partial<ContainerRecord>;
  const valid =
    value.id === id &&
    typeof value.status === 'string' &&
    ['creating', 'created', 'running', 'exited'].includes(value.status) &&
    typeof value.pid === 'number' &&
    typeof value.conmonPid === 'number' &&
    typeof value.createdAt === 'number' &&
    typeof value.logPath === 'string' &&
    typeof value.cgroupsPath === 'string';
  if (!valid) throw new RuntimeError('Internal', `container ${id}: record.json is malformed`);
  return value as ContainerRecord;
}

/**
 * Writes a file so that a crash leaves the old content or the new, never a mix. `durable: false` skips
 * the fsync, for files read only while their container lives: a power loss that could drop their bytes
 * ends the container too.
 */
async function writeFileAtomic(path: string, data: string, durable = true): Promise<void> {
  const temporary = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temporary, 'w', 0o600);
  try {
    await handle.writeFile(data);
    if (durable) await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, path);
}

/** The message of runc's last `level=error msg="..."` line, or the trimmed text. */
export function runcErrorMessage(text: string): string {
  const matches = [...text.matchAll(/level=error msg="((?:[^"\\]|\\.)*)"/g)];
  const last = matches.at(-1)?.[1];
  if (last === undefined) return text.trim();
  return last.replace(/\\(.)/g, '$1');
}

const COMMAND_NOT_FOUND = /executable file not found|no such file or directory|not a directory|permission denied/i;

/** A runc failure to start the process, as the precise error CRI callers expect. */
function startError(id: string, text: string): RuntimeError {
  const message = runcErrorMessage(text);
  if (/exec:|exec failed|starting container process/.test(message) && COMMAND_NOT_FOUND.test(message)) {
    return new RuntimeError('CommandNotFound', `container ${id}: ${message}`);
  }
  return new RuntimeError('Internal', `container ${id}: ${message}`);
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], input?: string, timeoutMs = RUNC_CALL_TIMEOUT_MS): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new RuntimeError('Internal', `${file}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128 + (signal ? 9 : 0), stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** Whether `pid` is a live (not zombie) process whose command name is `comm`. */
function processAlive(pid: number, comm?: string): boolean {
  if (pid <= 0) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X' && (comm === undefined || name === comm);
  } catch {
    return false;
  }
}

/** This process's hard limit on open files, from /proc/self/limits; undefined when unlimited. */
function ownNofileHardLimit(): number | undefined {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((text) => text.startsWith('Max open files'));
  const hard = line?.trim().split(/\s+/)[4];
  return hard && /^\d+$/.test(hard) ? Number(hard) : undefined;
}

/** The capabilities in this process's bounding set. */
function ownBoundingCapabilities(): string[] {
  const mask = readFileSync('/proc/self/status', 'utf8').match(/^CapBnd:\s*([0-9a-f]+)$/m)?.[1] ?? '0';
  return capabilitiesFromMask(BigInt(`0x${mask}`));
}

/**
 * conmon's name for the container's link in the socket dir. The attach socket's path must fit a unix
 * socket address (108 bytes), which a 64-character CRI id under a long root would not.
 */
function attachLinkName(id: string): string {
  return createHash('sha256').update(id).digest('hex').slice(0, 16);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * RuntimeHandler on runc, with one conmon per container. conmon daemonizes, runs `runc create`,
 * writes the CRI log file, and writes the exit file when the container ends, so containers and
 * their exit codes survive the runtime process.
 *
 * Layout under `root`:
 *   runc/                 runc's own state (--root)
 *   exits/<id>            conmon's exit files: the exit status in decimal
 *   sockets/<hash>        conmon's attach-socket links (a short hash of the id)
 *   containers/<id>/      the OCI bundle and conmon's persist dir: config.json, record.json,
 *                         conmon.pid, pidfile, exit, oom (present after an OOM kill), ctl and winsz FIFOs
 */
export class RuncHandler implements RuntimeHandler {
  readonly name = 'runc';
  private readonly runcPath: string;
  private readonly conmonPath: string;
  private readonly cgroupParent: string;
  private readonly records = new Map<string, ContainerRecord>();
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly watcher: FSWatcher;
  private readonly poll: NodeJS.Timeout;
  private readonly mode: CgroupMode = cgroupMode();
  private oomClampLogged = false;
  /** Set up once, before the first container runs, so its block I/O is counted (see enableBlockIoStats). */
  private blockIoStats: Promise<void> | undefined;

  constructor(
    readonly root: string,
    private readonly options: RuncHandlerOptions = {},
  ) {
    this.runcPath = options.runcPath ?? '/usr/sbin/runc';
    this.conmonPath = options.conmonPath ?? '/usr/bin/conmon';
    this.cgroupParent = options.cgroupParent ?? '/atoll';
    for (const dir of [this.runcRoot, this.exitDir, this.socketDir, this.containersDir]) mkdirSync(dir, { recursive: true });
    this.watcher = watch(this.exitDir, (_event, filename) => {
      if (filename && ID_PATTERN.test(filename)) void this.refreshQuietly(filename);
    });
    this.poll = setInterval(() => {
      for (const record of this.records.values()) if (record.status === 'created' || record.status === 'running') void this.refreshQuietly(record.id);
    }, EXIT_POLL_MS);
    this.poll.unref();
  }

  private get runcRoot() {
    return join(this.root, 'runc');
  }
  private get exitDir() {
    return join(this.root, 'exits');
  }
  private get socketDir() {
    return join(this.root, 'sockets');
  }
  private get containersDir() {
    return join(this.root, 'containers');
  }
  private bundle(id: string) {
    return join(this.containersDir, id);
  }

  private runc(args: string[], input?: string): Promise<RunResult> {
    return run(this.runcPath, ['--root', this.runcRoot, ...args], input);
  }

  async createContainer(spec: ContainerSpec): Promise<{ id: string }> {
    const { id } = spec;
    if (!ID_PATTERN.test(id)) throw new RuntimeError('InvalidArgument', `container id "${id}" must match ${ID_PATTERN}`);
    if (!isAbsolute(spec.logPath)) throw new RuntimeError('InvalidArgument', `container ${id}: log path ${spec.logPath} is not absolute`);
    if (!isAbsolute(spec.rootfs) || !existsSync(spec.rootfs)) throw new RuntimeError('InvalidArgument', `container ${id}: rootfs ${spec.rootfs} does not exist`);
    const dir = this.bundle(id);
    try {
      await mkdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new RuntimeError('AlreadyExists', `container ${id} already exists`);
      throw err;
    }
    try {
      const oci = await this.ociSpec(spec);
      const record: ContainerRecord = {
        id,
        name: spec.name ?? id,
        sandboxId: spec.sandboxId,
        status: 'creating',
        pid: 0,
        conmonPid: 0,
        createdAt: Date.now(),
        logPath: spec.logPath,
        cgroupsPath: oci.linux.cgroupsPath,
        stopSignal: spec.stopSignal ?? 'SIGTERM',
        labels: { ...spec.labels },
        annotations: { ...spec.annotations },
      };
      this.records.set(id, record);
      // Independent, so at once (adopt() destroys a bundle whose record is missing or still 'creating');
      // all settle before a failure is handled, so the cleanup below races no write into the bundle.
      const prepared = await Promise.allSettled([
        writeFileAtomic(join(dir, 'config.json'), JSON.stringify(oci, null, 1), false),
        this.persist(record),
        mkdir(dirname(spec.logPath), { recursive: true }),
        (this.blockIoStats ??= enableBlockIoStats(cgroupAt(this.cgroupParent, this.mode)).catch((err: Error) =>
          (this.options.log ?? console.warn)(`runc: block I/O statistics stay off: ${err.message}`),
        )),
      ]);
      for (const step of prepared) if (step.status === 'rejected') throw step.reason;
      record.pid = await this.runConmon(spec, dir);
      record.conmonPid = Number((await readFile(join(dir, 'conmon.pid'), 'utf8')).trim());
      record.status = 'created';
      await this.persist(record);
      return { id };
    } catch (err) {
      await this.destroy(id).catch(() => undefined);
      throw err;
    }
  }

  private async ociSpec(spec: ContainerSpec): Promise<OciSpec> {
    const user = rootfsUser(spec);
    const currentOomScoreAdj = Number(readFileSync('/proc/self/oom_score_adj', 'utf8').trim());
    const requested = spec.resources?.oomScoreAdj;
    if (requested !== undefined && clampOomScoreAdj(requested, currentOomScoreAdj) !== requested && !this.oomClampLogged) {
      this.oomClampLogged = true;
      (this.options.log ?? console.warn)(
        `runc: OOM score ${requested} requested, raised to the runtime's own ${currentOomScoreAdj} (the kernel refuses lowering it); logged once`,
      );
    }
    let localhostSeccomp: OciSeccomp | undefined;
    if (spec.seccomp?.type === 'Localhost') {
      try {
        localhostSeccomp = JSON.parse(await readFile(spec.seccomp.path, 'utf8')) as OciSeccomp;
      } catch (err) {
        throw new RuntimeError('InvalidArgument', `container ${spec.id}: seccomp profile ${spec.seccomp.path}: ${(err as Error).message}`);
      }
    }
    return buildOciSpec(spec, {
      cgroupMode: this.mode,
      cgroupParent: this.cgroupParent,
      currentOomScoreAdj,
      swapAccounting: swapAccounting(this.mode),
      user,
      localhostSeccomp,
      nofileHardLimit: ownNofileHardLimit(),
      hostCapabilities: ownBoundingCapabilities(),
    });
  }


  /** Starts conmon (which runs `runc create`) and resolves with the container's PID. */
  private runConmon(spec: ContainerSpec, dir: string): Promise<number> {
    const args = [
      '--api-version', '1',
      '--cid', spec.id,
      '--cuuid', attachLinkName(spec.id),
      '--name', spec.name ?? spec.id,
      '--runtime', this.runcPath,
      '--runtime-arg', `--root=${this.runcRoot}`,
      '--bundle', dir,
      '--container-pidfile', join(dir, 'pidfile'),
      '--conmon-pidfile', join(dir, 'conmon.pid'),
      '--log-path', spec.logPath,
      '--exit-dir', this.exitDir,
      '--socket-dir-path', this.socketDir,
      '--persist-dir', dir,
      '--log-level', 'error',
    ];
    if (this.options.logSizeMax !== undefined) args.push('--log-size-max', String(this.options.logSizeMax));
    if (spec.tty) args.push('--terminal');
    if (spec.stdin) args.push('--stdin');
    const conmon = spawn(this.conmonPath, args, {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      env: { ...process.env, _OCI_SYNCPIPE: '3' },
    });
    return new Promise((resolve, reject) => {
      const sync = conmon.stdio[3] as Readable;
      let message = '';
      let stderr = '';
      let settled = false;
      const finish = (err: Error | undefined, pid?: number) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sync.destroy();
        conmon.stderr!.destroy();
        if (err) reject(err);
        else resolve(pid!);
      };
      const timer = setTimeout(() => {
        conmon.kill('SIGKILL');
        finish(new RuntimeError('Internal', `container ${spec.id}: conmon did not report the container within ${CONMON_START_TIMEOUT_MS} ms`));
      }, CONMON_START_TIMEOUT_MS);
      conmon.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      conmon.on('error', (err) => finish(new RuntimeError('Internal', `conmon: ${err.message}`)));
      sync.on('data', (chunk: Buffer) => {
        message += chunk.toString();
        let parsed: { data?: number; pid?: number; message?: string };
        try {
          parsed = JSON.parse(message) as typeof parsed;
        } catch {
          return;
        }
        const pid = parsed.data ?? parsed.pid ?? -1;
        if (pid > 0) finish(undefined, pid);
        else finish(startError(spec.id, parsed.message ?? 'runc create failed'));
      });
      sync.on('end', () => finish(new RuntimeError('Internal', `container ${spec.id}: conmon exited without reporting the container: ${stderr.trim()}`)));
      sync.on('error', () => undefined);
    });
  }

  async start(id: string): Promise<void> {
    const record = await this.load(id);
    await this.refresh(record);
    if (record.status !== 'created') throw new RuntimeError('NotRunning', `container ${id} is ${record.status}, not created; only a created container can start`);
    const startedAt = Date.now();
    if (this.options.startInProcess) {
      await this.releaseInit(id, record.pid);
    } else {
      const result = await this.runc(['start', id]);
      if (result.code !== 0) throw startError(id, result.stderr);
    }
    // A fast process may already have exited (and been recorded); refresh() below re-reads its exit file.
    record.status = 'running';
    record.startedAt = startedAt;
    await this.persist(record);
    await this.refresh(record);
  }

  /**
   * What `runc start` does (runc 1.x libcontainer `exec()`): a created container's init waits to open
   * `exec.fifo` in runc's state dir for writing, writes one byte, then execs the container's process.
   * Reading that byte lets it go; removing the FIFO is what makes runc call the container running.
   * The FIFO is opened read-write and non-blocking, so that neither this open nor the init's blocks;
   * it is read until the byte comes or the init is found dead, which is judged by one more read, since
   * a fast process may have taken its start and exited between two reads.
   */
  private async releaseInit(id: string, initPid: number): Promise<void> {
    const fifo = join(this.runcRoot, id, EXEC_FIFO);
    let fd: number;
    try {
      fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new RuntimeError('NotRunning', `container ${id}: runc has no exec FIFO for it: it was started already`);
      throw new RuntimeError('Internal', `container ${id}: opening runc's exec FIFO: ${(err as Error).message}`);
    }
    const byteCame = (): boolean => {
      try {
        return readSync(fd, Buffer.alloc(1)) > 0;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return false;
        throw new RuntimeError('Internal', `container ${id}: reading runc's exec FIFO: ${(err as Error).message}`);
      }
    };
    try {
      const deadline = Date.now() + RUNC_CALL_TIMEOUT_MS;
      while (!byteCame()) {
        if (!processAlive(initPid)) {
          if (byteCame()) break;
          throw new RuntimeError('Internal', `container ${id}: its init process ${initPid} died before it could start the container's process`);
        }
        if (Date.now() > deadline) throw new RuntimeError('Internal', `container ${id}: its init did not take the start within ${RUNC_CALL_TIMEOUT_MS} ms`);
        await sleep(PROCESS_POLL_MS);
      }
    } finally {
      closeSync(fd);
    }
    await rm(fifo, { force: true });
  }

  async stop(id: string, timeoutSeconds: number): Promise<void> {
    const record = await this.load(id);
    await this.refresh(record);
    if (record.status === 'exited') return;
    if (timeoutSeconds > 0 && record.status === 'running') {
      await this.signal(id, record.stopSignal);
      if (await this.exitedWithin(id, timeoutSeconds * 1000)) return;
    }
    await this.signal(id, 'SIGKILL');
    if (!(await this.exitedWithin(id, KILL_GRACE_MS))) throw new RuntimeError('Internal', `container ${id} did not exit ${KILL_GRACE_MS} ms after SIGKILL`);
  }

  async kill(id: string, signal: string | number): Promise<void> {
    const record = await this.load(id);
    await this.refresh(record);
    if (record.status !== 'created' && record.status !== 'running') throw new RuntimeError('NotRunning', `container ${id} is not running`);
    await this.signal(id, String(signal));
  }

  /** `runc kill`, treating "already gone" as done. */
  private async signal(id: string, signal: string): Promise<void> {
    const result = await this.runc(['kill', id, signal]);
    if (result.code === 0) return;
    const message = runcErrorMessage(result.stderr);
    if (/not running|process already finished|no such process|container not running/i.test(message)) return;
    throw new RuntimeError('Internal', `container ${id}: runc kill ${signal}: ${message}`);
  }

  private async exitedWithin(id: string, ms: number): Promise<boolean> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), ms);
    try {
      await this.wait(id, controller.signal);
      return true;
    } catch (err) {
      if (controller.signal.aborted) return false;
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async wait(id: string, signal?: AbortSignal): Promise<ContainerState> {
    for (;;) {
      const record = await this.load(id);
      await this.refresh(record);
      if (record.status === 'exited') return this.toState(record);
      signal?.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const waiters = this.waiters.get(id) ?? new Set();
        this.waiters.set(id, waiters);
        const done = () => {
          waiters.delete(done);
          signal?.removeEventListener('abort', aborted);
          resolve();
        };
        const aborted = () => {
          waiters.delete(done);
          reject(signal!.reason);
        };
        waiters.add(done);
        signal?.addEventListener('abort', aborted, { once: true });
      });
    }
  }

  async remove(id: string): Promise<void> {
    const record = await this.load(id);
    await this.refresh(record);
    if (record.status === 'running') throw new RuntimeError('ContainerRunning', `container ${id} is running; stop it before removing it`);
    await this.destroy(id);
  }

  /** Deletes everything of a container that is not running user code (created, exited or half-made). */
  private async destroy(id: string): Promise<void> {
    const record = this.records.get(id);
    const deleted = await this.runc(['delete', '--force', id]);
    if (deleted.code !== 0 && !/does not exist|not exist/.test(runcErrorMessage(deleted.stderr))) {
      throw new RuntimeError('Internal', `container ${id}: runc delete: ${runcErrorMessage(deleted.stderr)}`);
    }
    const conmonPid = record?.conmonPid || Number((await readFile(join(this.bundle(id), 'conmon.pid'), 'utf8').catch(() => '0')).trim());
    const deadline = Date.now() + CONMON_EXIT_TIMEOUT_MS;
    while (processAlive(conmonPid, 'conmon') && Date.now() < deadline) await sleep(PROCESS_POLL_MS);
    if (processAlive(conmonPid, 'conmon')) process.kill(conmonPid, 'SIGKILL');
    // conmon may still be finishing a write into the bundle, its persist dir (a slow host, a kill just above).
    await rm(this.bundle(id), { recursive: true, force: true, maxRetries: 3 });
    await rm(join(this.exitDir, id), { force: true });
    await rm(join(this.socketDir, attachLinkName(id)), { force: true });
    this.records.delete(id);
    this.notify(id);
    this.waiters.delete(id);
  }

  async state(id: string): Promise<ContainerState> {
    const record = await this.load(id);
    await this.refresh(record);
    return this.toState(record);
  }

  private toState(record: ContainerRecord): ContainerState {
    const state: ContainerState = {
      status: record.status === 'creating' ? 'unknown' : record.status,
      pid: record.status === 'exited' ? 0 : record.pid,
      createdAt: record.createdAt,
    };
    if (record.startedAt !== undefined) state.startedAt = record.startedAt;
    if (record.finishedAt !== undefined) state.finishedAt = record.finishedAt;
    if (record.exitCode !== undefined) state.exitCode = record.exitCode;
    if (record.reason !== undefined) state.reason = record.reason;
    if (record.message !== undefined) state.message = record.message;
    return state;
  }

  async execSync(id: string, cmd: string[], timeoutSeconds: number): Promise<ExecResult> {
    const { child, cleanup, killProcess } = await this.spawnExec(id, cmd, false, false);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout!.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk));
    let timedOut = false;
    const code = await new Promise<number>((resolve, reject) => {
      const timer =
        timeoutSeconds > 0
          ? setTimeout(() => {
              timedOut = true;
              void killTimedOut(child, killProcess);
            }, timeoutSeconds * 1000)
          : undefined;
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new RuntimeError('Internal', `runc exec: ${err.message}`));
      });
      child.on('exit', () => {
        if (!timedOut) return;
        // The command's own children may hold the pipes open; runc's exit is the end.
        child.stdout!.destroy();
        child.stderr!.destroy();
        resolve(-1);
      });
      child.on('close', (exitCode, signal) => {
        clearTimeout(timer);
        resolve(exitCode ?? 128 + (signal === 'SIGKILL' ? 9 : 15));
      });
    }).finally(cleanup);
    if (timedOut) throw new RuntimeError('DeadlineExceeded', `container ${id}: command ${JSON.stringify(cmd)} timed out after ${timeoutSeconds} s`);
    const errText = Buffer.concat(stderr).toString();
    if (code === 255 && /level=error msg=/.test(errText)) throw execError(id, cmd, errText);
    return { stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr), exitCode: code };
  }

  async attach(id: string, options: ExecOptions): Promise<AttachSession> {
    const state = await this.state(id);
    if (state.status !== 'running') throw new RuntimeError('NotRunning', `container ${id} is not running (${state.status})`);
    return conmonAttach({
      socketPath: join(this.socketDir, attachLinkName(id), 'attach'),
      ctlPath: join(this.bundle(id), 'ctl'),
      stdin: options.stdin ?? false,
      tty: options.tty ?? false,
      exitCode: async () => (await this.state(id)).exitCode,
    });
  }

  async exec(id: string, cmd: string[], options: ExecOptions): Promise<ExecSession> {
    const { child, cleanup, killProcess } = await this.spawnExec(id, cmd, options.tty === true, options.stdin === true);
    const exited = new Promise<number>((resolve, reject) => {
      child.on('error', (err) => reject(new RuntimeError('Internal', `runc exec: ${err.message}`)));
      child.on('close', (code, signal) => resolve(code ?? 128 + (signal === 'SIGKILL' ? 9 : 15)));
    }).finally(cleanup);
    return {
      stdin: options.stdin ? (child.stdin as Writable) : null,
      stdout: child.stdout as Readable,
      stderr: options.tty ? null : (child.stderr as Readable),
      exited,
      kill: (signal: NodeJS.Signals = 'SIGKILL') => void killProcess(signal),
      resize: options.tty && child.pid !== undefined ? scriptTerminalResizer(child.pid) : undefined,
    };
  }

  /**
   * Starts `runc exec` with the container's own process settings (user, env, capabilities) and `cmd`.
   * A tty needs a terminal on runc's side too, which `script` provides; without one runc refuses.
   */
  private async spawnExec(id: string, cmd: string[], tty: boolean, stdin: boolean) {
    if (cmd.length === 0) throw new RuntimeError('InvalidArgument', `container ${id}: exec needs a command`);
    const record = await this.load(id);
    await this.refresh(record);
    if (record.status !== 'running') throw new RuntimeError('NotRunning', `container ${id} is ${record.status}; exec needs a running container`);
    const dir = this.bundle(id);
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as OciSpec;
    const tag = randomBytes(6).toString('hex');
    const processFile = join(dir, `exec-${tag}.json`);
    const pidFile = join(dir, `exec-${tag}.pid`);
    await writeFileAtomic(processFile, JSON.stringify({ ...config.process, args: cmd, terminal: tty }), false);
    const runcArgs = ['--root', this.runcRoot, 'exec', '--process', processFile, '--pid-file', pidFile, id];
    const stdio = [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] as const;
    const child: ChildProcess = tty
      ? spawn('script', ['--quiet', '--return', '--flush', '--command', [this.runcPath, ...runcArgs].map(shellQuote).join(' '), '/dev/null'], { stdio: [...stdio] })
      : spawn(this.runcPath, runcArgs, { stdio: [...stdio] });
    /** Signals the exec'd process; false when it has not started or is gone. */
    const killProcess = (signal: NodeJS.Signals = 'SIGKILL'): boolean => {
      try {
        const pid = Number(readFileSync(pidFile, 'utf8').trim());
        if (pid <= 0) return false;
        process.kill(pid, signal);
        return true;
      } catch {
        return false;
      }
    };
    const cleanup = () => Promise.all([rm(processFile, { force: true }), rm(pidFile, { force: true })]).then(() => undefined);
    return { child, cleanup, killProcess };
  }

  async stats(id: string): Promise<ContainerStats> {
    const record = await this.load(id);
    const cgroup = cgroupAt(record.cgroupsPath, this.mode);
    try {
      // Block I/O is best effort: a v2 parent without the io controller has no io.stat.
      const [stats, blockIo] = await Promise.all([readStats(cgroup), readBlockIo(cgroup).catch(() => undefined)]);
      return {
        timestamp: Date.now(),
        cpu: { usageCoreNanoSeconds: stats.cpuUsageNanoseconds },
        memory: { usageBytes: stats.memoryUsageBytes, workingSetBytes: stats.memoryWorkingSetBytes, rssBytes: stats.memoryRssBytes },
        pids: stats.pids,
        ...(blockIo ? { blockIo } : {}),
      };
    } catch (err) {
      throw new RuntimeError('NotFound', `container ${id}: cgroup ${record.cgroupsPath} unreadable: ${(err as Error).message}`);
    }
  }

  async updateResources(id: string, resources: Resources): Promise<void> {
    const record = await this.load(id);
    await this.refresh(record);
    if (record.status !== 'created' && record.status !== 'running') throw new RuntimeError('NotRunning', `container ${id} is ${record.status}`);
    const oci = ociResources(resources, swapAccounting(this.mode));
    const result = await this.runc(['update', '--resources', '-', id], JSON.stringify(oci));
    if (result.code !== 0) throw new RuntimeError('Internal', `container ${id}: runc update: ${runcErrorMessage(result.stderr)}`);
    const configPath = join(this.bundle(id), 'config.json');
    const config = JSON.parse(await readFile(configPath, 'utf8')) as OciSpec;
    config.linux.resources = { ...config.linux.resources, ...oci };
    if (resources.oomScoreAdj !== undefined) {
      const current = Number(readFileSync('/proc/self/oom_score_adj', 'utf8').trim());
      const score = clampOomScoreAdj(resources.oomScoreAdj, current);
      await writeFile(`/proc/${record.pid}/oom_score_adj`, String(score));
      config.process.oomScoreAdj = score;
    }
    await writeFileAtomic(configPath, JSON.stringify(config, null, 1));
  }

  async reopenLog(id: string): Promise<void> {
    const record = await this.load(id);
    await this.refresh(record);
    if (record.status !== 'created' && record.status !== 'running') throw new RuntimeError('NotRunning', `container ${id} is ${record.status}; its log is closed`);
    let handle;
    try {
      handle = await open(join(this.bundle(id), 'ctl'), constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (err) {
      throw new RuntimeError('NotRunning', `container ${id}: conmon is not listening: ${(err as Error).message}`);
    }
    try {
      await handle.write(`${REOPEN_LOGS_EVENT} 0 0\n`);
    } finally {
      await handle.close();
    }
  }

  async adopt(): Promise<AdoptedContainer[]> {
    const adopted: AdoptedContainer[] = [];
    for (const id of (await readdir(this.containersDir)).sort()) {
      if (!ID_PATTERN.test(id)) continue;
      if (!existsSync(join(this.bundle(id), 'record.json'))) {
        // The runtime died between making the bundle directory and recording the container.
        await this.destroy(id);
        continue;
      }
      let record: ContainerRecord;
      try {
        record = await this.load(id);
      } catch (err) {
        (this.options.log ?? console.warn)(`runc: skipping container ${id}: ${(err as Error).message}`);
        continue;
      }
      if (record.status === 'creating') {
        // The runtime died inside createContainer; the caller never got an id, so nobody owns it.
        await this.destroy(id);
        continue;
      }
      await this.refresh(record);
      if (record.status === 'created' || record.status === 'running') await this.confirmAlive(record);
      adopted.push({
        id,
        sandboxId: record.sandboxId,
        name: record.name,
        logPath: record.logPath,
        labels: record.labels,
        annotations: record.annotations,
        state: this.toState(record),
      });
    }
    return adopted;
  }

  /** Checks a container without an exit file against runc and conmon; one that vanished is recorded as lost. */
  private async confirmAlive(record: ContainerRecord): Promise<void> {
    const result = await this.runc(['state', record.id]);
    const runcStatus = result.code === 0 ? (JSON.parse(result.stdout) as { status: string }).status : 'missing';
    if (runcStatus === 'running' || runcStatus === 'created' || runcStatus === 'paused') return;
    const deadline = Date.now() + ADOPT_EXIT_FILE_WAIT_MS;
    while (processAlive(record.conmonPid, 'conmon') && Date.now() < deadline) {
      await sleep(PROCESS_POLL_MS);
      await this.refresh(record);
      if (record.status === 'exited') return;
    }
    await this.refresh(record);
    if (record.status === 'exited') return;
    record.status = 'exited';
    record.exitCode = LOST_EXIT_CODE;
    record.reason = 'Error';
    record.finishedAt = Date.now();
    record.message = `container lost: runc reports it ${runcStatus} and conmon left no exit file`;
    await this.persist(record);
    this.notify(record.id);
  }

  async close(): Promise<void> {
    this.watcher.close();
    clearInterval(this.poll);
  }

  private async load(id: string): Promise<ContainerRecord> {
    const cached = this.records.get(id);
    if (cached) return cached;
    if (!ID_PATTERN.test(id)) throw new RuntimeError('NotFound', `container ${id} not found`);
    let text: string;
    try {
      text = await readFile(join(this.bundle(id), 'record.json'), 'utf8');
    } catch {
      throw new RuntimeError('NotFound', `container ${id} not found`);
    }
    const record = this.records.get(id) ?? parseRecord(text, id);
    this.records.set(id, record);
    return record;
  }

  private persist(record: ContainerRecord): Promise<void> {
    return writeFileAtomic(join(this.bundle(record.id), 'record.json'), JSON.stringify(record));
  }

  private async refreshQuietly(id: string): Promise<void> {
    try {
      await this.refresh(await this.load(id));
    } catch {
      // removed meanwhile
    }
  }

  /** Folds conmon's exit file (and OOM evidence) into the record. */
  private async refresh(record: ContainerRecord): Promise<void> {
    if (record.status === 'exited' || record.status === 'creating') return;
    const exitFile = join(this.exitDir, record.id);
    let text: string;
    let finishedAt: number;
    try {
      [text, finishedAt] = await Promise.all([readFile(exitFile, 'utf8'), stat(exitFile).then((info) => Math.round(info.mtimeMs))]);
    } catch {
      return;
    }
    if (record.status !== 'created' && record.status !== 'running') return;
    const exitCode = /^-?\d+$/.test(text.trim()) ? Number(text.trim()) : LOST_EXIT_CODE;
    const oom = existsSync(join(this.bundle(record.id), 'oom')) || (await oomKillCount(cgroupAt(record.cgroupsPath, this.mode))) > 0;
    record.status = 'exited';
    record.pid = 0;
    record.exitCode = exitCode;
    record.finishedAt = finishedAt;
    record.reason = oom ? 'OOMKilled' : exitCode === 0 ? 'Completed' : 'Error';
    await this.persist(record);
    this.notify(record.id);
  }

  private notify(id: string): void {
    for (const waiter of [...(this.waiters.get(id) ?? [])]) waiter();
  }
}

function execError(id: string, cmd: string[], text: string): RuntimeError {
  const message = runcErrorMessage(text);
  if (COMMAND_NOT_FOUND.test(message)) return new RuntimeError('CommandNotFound', `container ${id}: exec ${JSON.stringify(cmd)}: ${message}`);
  return new RuntimeError('Internal', `container ${id}: exec ${JSON.stringify(cmd)}: ${message}`);
}

function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * Ends an exec whose deadline passed. The process is killed, and runc, which reaps it (a container
 * init that never reaps, sleep say, would not), only if it lingers. runc writes the pid file only once
 * the process runs, which on a loaded host, or under TCG in a runv guest, can be after the deadline:
 * killing runc then would leave the command running, orphaned in the container, so the process is
 * waited for first, up to EXEC_START_GRACE_MS.
 */
async function killTimedOut(runc: ChildProcess, killProcess: () => boolean): Promise<void> {
  const exited = () => runc.exitCode !== null || runc.signalCode !== null;
  const giveUp = Date.now() + EXEC_START_GRACE_MS;
  while (!killProcess()) {
    if (exited()) return;
    if (Date.now() >= giveUp) {
      runc.kill('SIGKILL');
      return;
    }
    await sleep(EXEC_PID_POLL_MS);
  }
  setTimeout(() => runc.kill('SIGKILL'), EXEC_REAP_GRACE_MS).unref();
}
