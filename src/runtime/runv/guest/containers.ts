import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readdir, rm, rmdir } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import {
  MAX_LONG_POLL_MS, MAX_OUTPUT_READ_BYTES, MAX_PAYLOAD_BYTES,
  type ContainerMount, type ContainerResources, type ContainerStateResult, type ContainerStatsResult, type ExecInContainerResult,
  type ExecSyncInContainerResult, type ReadOutputResult, type WaitExecResult,
} from '../agent-protocol.js';
import type { AttachSession, BindMount, ContainerSpec, ContainerState, ExecSession, Resources } from '../../handler.js';
import { RuncHandler } from '../../runc/handler.js';
import { resizeTerminal } from '../../streaming/attach.js';
import { LogTail } from './conmon-log.js';
import { OutputBuffer } from './output.js';
import { EXEC_OUTPUT_LIMIT_BYTES, run } from './processes.js';
import {
  AgentError, absolutePath, base64, envEntries, integer, object, optionalBoolean, optionalInteger, optionalString,
  optionalStringArray, signalValue, string, stringArray,
} from './validate.js';

/** Where the agent keeps container state in the guest (a tmpfs: it lives as long as the VM). */
export const GUEST_STATE_DIR = '/run/atoll';
const HANDLER_ROOT = join(GUEST_STATE_DIR, 'runc');
const LOG_DIR = join(GUEST_STATE_DIR, 'logs');
/** Per container, one tmpfs per `tmpfs` mount, bound into the container from here. */
const VOLUME_DIR = join(GUEST_STATE_DIR, 'volumes');
/** conmon replaces a container's log file past this size; the agent has read it long before. */
const LOG_SIZE_MAX_BYTES = 1024 * 1024;
/** A fallback read of every live log, in case an inotify event was missed (the watch is the fast path). */
const LOG_RESCAN_MS = 5_000;
/** Finished execs whose exit and output nobody collected are forgotten past this many, oldest first. */
const MAX_FINISHED_EXECS = 64;
/** Every container in the VM belongs to the one pod the VM runs. */
const SANDBOX_ID = 'runv-vm';
/** The VM's own namespaces, which a pod's containers share (the pod's network, IPC and UTS). */
const VM_NAMESPACES = { network: '/proc/1/ns/net', ipc: '/proc/1/ns/ipc', uts: '/proc/1/ns/uts' };
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const EXEC_ID = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,127})#(\d+)$/;

interface MainOutput {
  buffer: OutputBuffer;
  tail: LogTail;
  /** Whether the process was created with stdin open; unknown for a container an earlier agent created. */
  stdinOpen?: boolean;
  /** The attach relay its stdin goes through, opened at the first write (see stdinOf). */
  stdin?: Promise<AttachSession>;
}

interface ExecRecord {
  containerId: string;
  session: ExecSession;
  buffer: OutputBuffer;
  exited: Promise<number>;
  exitCode: number | null;
}

function containerId(value: unknown, field = 'containerId'): string {
  const id = string(value, field);
  if (!CONTAINER_ID.test(id)) throw new AgentError('BadRequest', `'${field}' must match ${CONTAINER_ID}, got ${JSON.stringify(id)}`);
  return id;
}

function resources(value: unknown, field: string): Resources {
  const given = object(value, field);
  const out: ContainerResources = {};
  for (const key of ['cpuShares', 'cpuQuota', 'cpuPeriod', 'memoryLimitBytes', 'pidsLimit'] as const) {
    const number = optionalInteger(given[key], `${field}.${key}`, key === 'cpuQuota' ? -1 : 0);
    if (number !== undefined) out[key] = number;
  }
  const score = optionalInteger(given.oomScoreAdj, `${field}.oomScoreAdj`, -1000, 1000);
  if (score !== undefined) out.oomScoreAdj = score;
  const cpus = optionalString(given.cpusetCpus, `${field}.cpusetCpus`);
  if (cpus !== undefined) out.cpusetCpus = cpus;
  return out;
}

function mounts(value: unknown): ContainerMount[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new AgentError('BadRequest', `'mounts' must be an array, got ${JSON.stringify(value)}`);
  return value.map((item, index) => {
    const mount = object(item, `mounts[${index}]`);
    const destination = absolutePath(mount.destination, `mounts[${index}].destination`);
    const readonly = optionalBoolean(mount.readonly, `mounts[${index}].readonly`);
    if (mount.type === 'bind') return { type: 'bind', source: absolutePath(mount.source, `mounts[${index}].source`), destination, readonly };
    if (mount.type === 'tmpfs') return { type: 'tmpfs', destination, readonly, sizeBytes: optionalInteger(mount.sizeBytes, `mounts[${index}].sizeBytes`, 1) };
    throw new AgentError('BadRequest', `'mounts[${index}].type' must be 'bind' or 'tmpfs', got ${JSON.stringify(mount.type)}`);
  });
}

function signalName(exitCode: number | undefined): string | null {
  if (exitCode === undefined || exitCode <= 128 || exitCode > 128 + 64) return null;
  return Object.entries(constants.signals).find(([, number]) => number === exitCode - 128)?.[0] ?? null;
}

function stateResult(state: ContainerState): ContainerStateResult {
  // 'VmExited' is the host's reason for the VM itself ending; the runc handler in the guest never gives it.
  const reason = state.reason === 'VmExited' ? 'Error' : state.reason;
  return { ...state, reason, signal: state.status === 'exited' ? signalName(state.exitCode) : undefined, oomKilled: state.reason === 'OOMKilled' };
}

function longPoll(value: unknown): number {
  return optionalInteger(value, 'timeoutMs', 0, MAX_LONG_POLL_MS) ?? 0;
}

/**
 * The containers of the VM's pod. They run with the host's runc, through the same RuncHandler (and
 * conmon per container) a runc pod uses, so the lifecycle, OOM detection, exec and stats behave alike;
 * conmon owns each container's stdio, so containers outlive an agent restart. What the agent adds is
 * the output each process wrote, numbered and buffered for the host (see OutputBuffer).
 */
export class GuestContainers {
  private readonly outputs = new Map<string, MainOutput>();
  /** Ids inside create(), so that a concurrent create of the same id cannot touch their volumes. */
  private readonly creating = new Set<string>();
  private readonly execs = new Map<string, ExecRecord>();
  private nextExec = 1;
  private readonly watcher: FSWatcher;
  private readonly rescan: NodeJS.Timeout;

  private constructor(private readonly handler: RuncHandler) {
    this.watcher = watch(LOG_DIR, (_event, filename) => {
      const id = filename?.endsWith('.log') ? filename.slice(0, -'.log'.length) : undefined;
      if (id) void this.outputs.get(id)?.tail.poke().catch(logFailure);
    });
    this.rescan = setInterval(() => {
      for (const { tail } of this.outputs.values()) void tail.poke().catch(logFailure);
    }, LOG_RESCAN_MS);
    this.rescan.unref();
  }

  /** Opens the guest's container state; containers of an earlier agent process are adopted with their output. */
  static async open(): Promise<GuestContainers> {
    await mkdir(LOG_DIR, { recursive: true });
    // Each run of runc (Go) costs a second or more under TCG: a start needs none (startInProcess).
    const handler = new RuncHandler(HANDLER_ROOT, { logSizeMax: LOG_SIZE_MAX_BYTES, startInProcess: true, log: (line) => process.stderr.write(`${line}\n`) });
    const containers = new GuestContainers(handler);
    for (const adopted of await handler.adopt()) containers.follow(adopted.id);
    return containers;
  }

  async close(): Promise<void> {
    this.watcher.close();
    clearInterval(this.rescan);
    await this.handler.close();
  }

  async create(args: Record<string, unknown>): Promise<{ containerId: string }> {
    const id = containerId(args.containerId);
    const hostname = optionalString(args.hostname, 'hostname');
    const given = mounts(args.mounts);
    if (args.seccomp !== undefined && args.seccomp !== 'RuntimeDefault' && args.seccomp !== 'Unconfined') {
      throw new AgentError('BadRequest', `'seccomp' must be 'RuntimeDefault' or 'Unconfined', got ${JSON.stringify(args.seccomp)}`);
    }
    const seccomp = args.seccomp as 'RuntimeDefault' | 'Unconfined' | undefined;
    const capabilities = args.capabilities === undefined ? undefined : object(args.capabilities, 'capabilities');
    const user = args.user === undefined ? undefined : object(args.user, 'user');
    const spec: ContainerSpec = {
      id,
      sandboxId: SANDBOX_ID,
      rootfs: absolutePath(args.rootfs, 'rootfs'),
      readonlyRootfs: optionalBoolean(args.readonlyRootfs, 'readonlyRootfs'),
      command: stringArray(args.argv, 'argv', true),
      env: envEntries(args.env, 'env').map((entry) => ({ name: entry.slice(0, entry.indexOf('=')), value: entry.slice(entry.indexOf('=') + 1) })),
      workingDir: args.cwd === undefined ? undefined : absolutePath(args.cwd, 'cwd'),
      user: user && {
        uid: optionalInteger(user.uid, 'user.uid', 0),
        gid: optionalInteger(user.gid, 'user.gid', 0),
        username: optionalString(user.username, 'user.username'),
        additionalGids: user.additionalGids === undefined ? undefined : stringArrayOfIntegers(user.additionalGids, 'user.additionalGids'),
      },
      hostname,
      namespaces: hostname ? { network: VM_NAMESPACES.network, ipc: VM_NAMESPACES.ipc } : VM_NAMESPACES,
      tty: optionalBoolean(args.terminal, 'terminal'),
      stdin: optionalBoolean(args.stdin, 'stdin'),
      privileged: optionalBoolean(args.privileged, 'privileged'),
      capabilities: capabilities && { add: optionalStringArray(capabilities.add, 'capabilities.add'), drop: optionalStringArray(capabilities.drop, 'capabilities.drop') },
      noNewPrivileges: optionalBoolean(args.noNewPrivileges, 'noNewPrivileges'),
      seccomp: seccomp && { type: seccomp },
      resources: args.resources === undefined ? undefined : resources(args.resources, 'resources'),
      stopSignal: args.stopSignal === undefined ? undefined : String(signalValue(args.stopSignal, 'stopSignal')),
      logPath: join(LOG_DIR, `${id}.log`),
    };
    if (this.outputs.has(id) || this.creating.has(id)) throw new AgentError('AlreadyExists', `container ${id} already exists`);
    this.creating.add(id);
    try {
      spec.mounts = await this.mountVolumes(id, given);
      await rm(spec.logPath, { force: true });
      await this.handler.createContainer(spec);
      this.follow(id).stdinOpen = spec.stdin === true;
      return { containerId: id };
    } catch (err) {
      await this.unmountVolumes(id).catch(logFailure);
      throw err;
    } finally {
      this.creating.delete(id);
    }
  }

  async start(args: Record<string, unknown>): Promise<Record<string, never>> {
    await this.handler.start(containerId(args.containerId));
    return {};
  }

  async signal(args: Record<string, unknown>): Promise<Record<string, never>> {
    const id = containerId(args.containerId);
    const signal = signalValue(args.signal, 'signal');
    await this.handler.kill(id, signal);
    return {};
  }

  async stop(args: Record<string, unknown>): Promise<Record<string, never>> {
    await this.handler.stop(containerId(args.containerId), integer(args.timeoutSeconds, 'timeoutSeconds', 0));
    return {};
  }

  /** The container's state; with `timeoutMs`, first waits that long at most for it to exit. */
  async wait(args: Record<string, unknown>, signal: AbortSignal): Promise<ContainerStateResult> {
    const id = containerId(args.containerId);
    const timeoutMs = longPoll(args.timeoutMs);
    if (timeoutMs > 0) {
      const bound = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
      try {
        return stateResult(await this.handler.wait(id, bound));
      } catch (err) {
        if (!bound.aborted) throw err;
      }
    }
    return stateResult(await this.handler.state(id));
  }

  async remove(args: Record<string, unknown>): Promise<Record<string, never>> {
    const id = containerId(args.containerId);
    await this.handler.remove(id);
    const output = this.outputs.get(id);
    this.outputs.delete(id);
    void output?.stdin?.then((session) => session.kill(), () => undefined);
    output?.buffer.close();
    await output?.tail.close();
    for (const [execId, record] of this.execs) {
      if (record.containerId !== id) continue;
      record.session.kill('SIGKILL');
      record.buffer.close();
      this.execs.delete(execId);
    }
    await this.unmountVolumes(id);
    await rm(join(LOG_DIR, `${id}.log`), { force: true });
    return {};
  }

  async update(args: Record<string, unknown>): Promise<Record<string, never>> {
    await this.handler.updateResources(containerId(args.containerId), resources(args.resources, 'resources'));
    return {};
  }

  async exec(args: Record<string, unknown>): Promise<ExecInContainerResult> {
    const id = containerId(args.containerId);
    const argv = stringArray(args.argv, 'argv', true);
    const tty = optionalBoolean(args.tty, 'tty') ?? false;
    const session = await this.handler.exec(id, argv, { tty, stdin: optionalBoolean(args.stdin, 'stdin') ?? false });
    const execId = `${id}#${this.nextExec++}`;
    const buffer = new OutputBuffer();
    session.stdout.on('data', (chunk: Buffer) => buffer.push('stdout', chunk));
    session.stderr?.on('data', (chunk: Buffer) => buffer.push('stderr', chunk));
    session.stdin?.on('error', () => undefined);
    const record: ExecRecord = { containerId: id, session, buffer, exited: session.exited, exitCode: null };
    session.exited.then(
      (code) => {
        record.exitCode = code;
        buffer.close();
      },
      (err: Error) => {
        record.exitCode = -1;
        buffer.push('stderr', Buffer.from(`${err.message}\n`));
        buffer.close();
      },
    );
    this.execs.set(execId, record);
    this.forgetOldExecs();
    return { execId };
  }

  async execSync(args: Record<string, unknown>): Promise<ExecSyncInContainerResult> {
    const id = containerId(args.containerId);
    const timeoutSeconds = optionalInteger(args.timeoutSeconds, 'timeoutSeconds', 0) ?? 0;
    const result = await this.handler.execSync(id, stringArray(args.argv, 'argv', true), timeoutSeconds);
    return {
      exitCode: result.exitCode,
      stdout: result.stdout.subarray(0, EXEC_OUTPUT_LIMIT_BYTES).toString('base64'),
      stderr: result.stderr.subarray(0, EXEC_OUTPUT_LIMIT_BYTES).toString('base64'),
    };
  }

  async waitExec(args: Record<string, unknown>, signal: AbortSignal): Promise<WaitExecResult> {
    const record = this.execRecord(args.execId);
    const timeoutMs = longPoll(args.timeoutMs);
    if (record.exitCode === null && timeoutMs > 0) {
      const bound = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
      await new Promise<void>((resolve) => {
        bound.addEventListener('abort', () => resolve(), { once: true });
        record.exited.then(() => resolve(), () => resolve());
      });
    }
    return { exited: record.exitCode !== null, exitCode: record.exitCode };
  }

  signalExec(args: Record<string, unknown>): Record<string, never> {
    const record = this.execRecord(args.execId);
    const name = string(args.signal, 'signal');
    if (!(name in constants.signals)) throw new AgentError('BadRequest', `'signal' must be a signal name like 'SIGTERM', got ${JSON.stringify(name)}`);
    if (record.exitCode === null) record.session.kill(name as NodeJS.Signals);
    return {};
  }

  readOutput(args: Record<string, unknown>, signal: AbortSignal): Promise<ReadOutputResult> {
    const buffer = this.process(args.processId).buffer;
    const after = integer(args.after, 'after', 0);
    const maxBytes = optionalInteger(args.maxBytes, 'maxBytes', 1, MAX_OUTPUT_READ_BYTES) ?? MAX_OUTPUT_READ_BYTES;
    return buffer.read(after, longPoll(args.timeoutMs), maxBytes, signal);
  }

  async writeStdin(args: Record<string, unknown>): Promise<Record<string, never>> {
    const stdin = await this.stdinOf(args.processId);
    const data = base64(args.data, 'data', MAX_PAYLOAD_BYTES);
    await new Promise<void>((resolve, reject) => {
      stdin.write(data, (err) => (err ? reject(new AgentError('NotRunning', `${String(args.processId)}: stdin is closed: ${err.message}`)) : resolve()));
    });
    return {};
  }

  async closeStdin(args: Record<string, unknown>): Promise<Record<string, never>> {
    (await this.stdinOf(args.processId)).end();
    return {};
  }

  async resize(args: Record<string, unknown>): Promise<Record<string, never>> {
    const size = { width: integer(args.width, 'width', 1, 65535), height: integer(args.height, 'height', 1, 65535) };
    const target = this.process(args.processId);
    if (target.exec) {
      if (!target.exec.session.resize) throw new AgentError('BadRequest', `exec ${String(args.processId)} has no terminal`);
      target.exec.session.resize(size);
    } else {
      await resizeTerminal(join(HANDLER_ROOT, 'containers', String(args.processId), 'ctl'), size);
    }
    return {};
  }

  /** Stats of the given containers, or of every container whose cgroup exists. */
  async stats(ids: string[] | undefined): Promise<ContainerStatsResult[]> {
    const wanted = ids ?? [...this.outputs.keys()];
    const results: ContainerStatsResult[] = [];
    for (const id of wanted) {
      let stats;
      try {
        stats = await this.handler.stats(id);
      } catch (err) {
        if (ids) throw err;
        continue;
      }
      results.push({
        containerId: id,
        cpuNs: stats.cpu.usageCoreNanoSeconds.toString(),
        memoryUsageBytes: stats.memory.usageBytes,
        memoryWorkingSetBytes: stats.memory.workingSetBytes,
        memoryRssBytes: stats.memory.rssBytes,
        pids: stats.pids,
      });
    }
    return results;
  }

  /** Buffers the main process's output from conmon's log, and ends it once the container is gone. */
  private follow(id: string): MainOutput {
    const buffer = new OutputBuffer();
    const tail = new LogTail(join(LOG_DIR, `${id}.log`), buffer);
    const output: MainOutput = { buffer, tail };
    this.outputs.set(id, output);
    void tail.poke().catch(logFailure);
    // conmon writes the exit file after the last output reached the log, so one more read gets it all.
    this.handler.wait(id).then(
      () => tail.poke(),
      () => undefined,
    ).finally(() => {
      buffer.close();
      return tail.close();
    }).catch(logFailure);
    return output;
  }

  private process(value: unknown): { buffer: OutputBuffer; exec?: ExecRecord; main?: MainOutput } {
    const id = string(value, 'processId');
    if (EXEC_ID.test(id)) {
      const exec = this.execRecord(id);
      return { buffer: exec.buffer, exec };
    }
    const output = this.outputs.get(containerId(id, 'processId'));
    if (!output) throw new AgentError('NotFound', `container ${id} not found`);
    return { buffer: output.buffer, main: output };
  }

  private execRecord(value: unknown): ExecRecord {
    const execId = string(value, 'execId');
    if (!EXEC_ID.test(execId)) throw new AgentError('BadRequest', `'execId' must be '<container id>#<n>' as execInContainer returned it, got ${JSON.stringify(execId)}`);
    const record = this.execs.get(execId);
    if (!record) throw new AgentError('NotFound', `exec ${execId} not found`);
    return record;
  }

  /**
   * Where a process's stdin goes. An exec's is its pipe. A main process's is conmon's attach socket,
   * as on the host: one attach relay per container, opened at the first write and kept across the
   * host's attach sessions, so that detaching does not close the container's stdin (conmon closes it
   * when the relay's stdin ends: closeStdin, CRI's stdin_once). Its output is dropped: the host reads
   * the main process's output from the log (readOutput).
   */
  private async stdinOf(value: unknown): Promise<NodeJS.WritableStream> {
    const target = this.process(value);
    if (target.exec) {
      if (!target.exec.session.stdin) throw new AgentError('BadRequest', `exec ${String(value)} was started without stdin`);
      return target.exec.session.stdin;
    }
    const output = target.main!;
    if (output.stdinOpen === false) throw new AgentError('BadRequest', `container ${String(value)} was created without stdin`);
    output.stdin ??= this.handler.attach(String(value), { stdin: true }).then((session) => {
      session.stdout.resume();
      session.stderr?.resume();
      session.stdin!.on('error', () => undefined);
      session.exited.catch(() => undefined).finally(() => (output.stdin = undefined));
      return session;
    });
    output.stdin.catch(() => (output.stdin = undefined));
    const session = await output.stdin;
    return session.stdin!;
  }

  private forgetOldExecs(): void {
    const finished = [...this.execs].filter(([, record]) => record.exitCode !== null);
    for (const [execId] of finished.slice(0, Math.max(0, finished.length - MAX_FINISHED_EXECS))) this.execs.delete(execId);
  }

  private async mountVolumes(id: string, given: ContainerMount[]): Promise<BindMount[]> {
    const binds: BindMount[] = [];
    for (const [index, mount] of given.entries()) {
      if (mount.type === 'bind') {
        binds.push({ source: mount.source, destination: mount.destination, readonly: mount.readonly });
        continue;
      }
      const source = join(VOLUME_DIR, id, String(index));
      await mkdir(source, { recursive: true });
      await run(['mount', '-t', 'tmpfs', '-o', mount.sizeBytes === undefined ? 'mode=1777' : `mode=1777,size=${mount.sizeBytes}`, 'tmpfs', source]);
      binds.push({ source, destination: mount.destination, readonly: mount.readonly });
    }
    return binds;
  }

  private async unmountVolumes(id: string): Promise<void> {
    const dir = join(VOLUME_DIR, id);
    const entries = await readdir(dir).catch(() => []);
    for (const entry of entries) {
      await run(['umount', join(dir, entry)]).catch(() => undefined);
      await rmdir(join(dir, entry));
    }
    await rmdir(dir).catch(() => undefined);
  }
}

function stringArrayOfIntegers(value: unknown, field: string): number[] {
  if (!Array.isArray(value)) throw new AgentError('BadRequest', `'${field}' must be an array of integers, got ${JSON.stringify(value)}`);
  return value.map((item, index) => integer(item, `${field}[${index}]`, 0));
}

function logFailure(err: Error): void {
  process.stderr.write(`atoll-guest-agent: ${err.message}\n`);
}
