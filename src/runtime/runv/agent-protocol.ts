/**
 * The guest agent protocol's wire format, shared by the host-side client and the agent inside the VM.
 * PROTOCOL.md beside this file is the specification; this module holds only Node built-ins so that it
 * runs unchanged in the guest.
 *
 * A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON.
 */

/** The protocol versions this build speaks, newest last. */
export const PROTOCOL_VERSIONS = [1] as const;
export const PROTOCOL_VERSION = 1;
/** Larger frames are refused: a corrupt length prefix must not make either side allocate gigabytes. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;
const HEADER_BYTES = 4;
/** The virtio-serial port name the agent listens on (the guest sees it under /sys/class/virtio-ports). */
export const AGENT_PORT_NAME = 'atoll.agent';

export const OPS = [
  'hello', 'exec', 'start', 'signal', 'wait',
  'mount', 'umount', 'writeFile',
  'createContainer', 'startContainer', 'signalContainer', 'stopContainer', 'waitContainer', 'removeContainer', 'updateContainer',
  'execInContainer', 'execSyncInContainer', 'waitExec', 'signalExec',
  'readOutput', 'writeStdin', 'closeStdin', 'resizeTerminal',
  'stats', 'interface', 'route', 'hostname', 'setTime', 'reseedRandom', 'identity',
] as const;
export type Op = (typeof OPS)[number];

/** The longest a long-poll op (`readOutput`, `waitContainer`, `waitExec`) may hold its answer back. */
export const MAX_LONG_POLL_MS = 60_000;
/** Bytes of output one `readOutput` answer carries at most (base64 makes it 4/3 of this on the wire). */
export const MAX_OUTPUT_READ_BYTES = 1024 * 1024;
/** Largest `writeStdin`/`writeFile` payload, decoded. */
export const MAX_PAYLOAD_BYTES = 4 * 1024 * 1024;

export interface HelloArgs { versions: number[] }
export interface HelloResult { version: number; agent: string; kernelRelease: string }

/** Runs a command in the guest (not in a container) to completion; output is base64, since it is bytes. */
export interface ExecArgs { argv: string[]; env?: string[]; cwd?: string; timeoutMs?: number }
export interface ExecResult { exitCode: number; signal: string | null; stdout: string; stderr: string }

/** Starts a guest command in the background; its stdio is discarded. */
export interface StartArgs { argv: string[]; env?: string[]; cwd?: string }
export interface StartResult { pid: number }

export interface SignalArgs { pid: number; signal: string | number }
export interface WaitArgs { pid: number }
export interface WaitResult { exitCode: number; signal: string | null }

/** Mounts `source` (a path, a 9p tag, `tmpfs`...) or the virtio disk whose serial is `serial` on `target`. */
export interface MountArgs { source?: string; serial?: string; fstype: string; options?: string[]; target: string }
/** `device` is the block device that was flushed and mounted, null when the source is not one. */
export interface MountResult { device: string | null }
export interface UmountArgs { target: string; lazy?: boolean }
export interface UmountResult { wasMounted: boolean }
/** Writes a guest file atomically (write, then rename), making its directory. */
export interface WriteFileArgs { path: string; data: string; mode?: number }

export type ContainerMount =
  | { type: 'bind'; source: string; destination: string; readonly?: boolean }
  | { type: 'tmpfs'; destination: string; sizeBytes?: number; readonly?: boolean };

/** Resource limits of a container; every field optional, as in CRI's LinuxContainerResources. */
export interface ContainerResources {
  cpuShares?: number;
  cpuQuota?: number;
  cpuPeriod?: number;
  cpusetCpus?: string;
  memoryLimitBytes?: number;
  oomScoreAdj?: number;
  pidsLimit?: number;
}

export interface ContainerUser { uid?: number; gid?: number; username?: string; additionalGids?: number[] }

/**
 * A container, in guest paths. `argv` is final (the host merges the image's entrypoint and cmd). The
 * container shares the VM's network and IPC namespaces, and its UTS namespace unless `hostname` is given.
 */
export interface CreateContainerArgs {
  containerId: string;
  rootfs: string;
  argv: string[];
  env?: string[];
  cwd?: string;
  user?: ContainerUser;
  hostname?: string;
  mounts?: ContainerMount[];
  terminal?: boolean;
  /** The main process's stdin stays open for writeStdin (through conmon's attach socket, as on the host). */
  stdin?: boolean;
  readonlyRootfs?: boolean;
  privileged?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  noNewPrivileges?: boolean;
  seccomp?: 'RuntimeDefault' | 'Unconfined';
  resources?: ContainerResources;
  stopSignal?: string;
}
export interface ContainerIdArgs { containerId: string }
export interface SignalContainerArgs { containerId: string; signal: string | number }
export interface StopContainerArgs { containerId: string; timeoutSeconds: number }
export interface WaitContainerArgs { containerId: string; timeoutMs?: number }
export interface UpdateContainerArgs { containerId: string; resources: ContainerResources }

export interface ContainerStateResult {
  status: 'created' | 'running' | 'exited' | 'unknown';
  /** The container's init process in the guest; 0 once it exited. */
  pid: number;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  exitCode?: number;
  /** The signal that ended the process, read from an exit code of 128 + n (conmon's convention). */
  signal?: string | null;
  reason?: 'Completed' | 'Error' | 'OOMKilled';
  oomKilled: boolean;
  message?: string;
}

export interface ExecInContainerArgs { containerId: string; argv: string[]; tty?: boolean; stdin?: boolean }
export interface ExecInContainerResult { execId: string }
export interface ExecSyncInContainerArgs { containerId: string; argv: string[]; timeoutSeconds?: number }
export interface ExecSyncInContainerResult { exitCode: number; stdout: string; stderr: string }
export interface WaitExecArgs { execId: string; timeoutMs?: number }
export interface WaitExecResult { exited: boolean; exitCode: number | null }
export interface SignalExecArgs { execId: string; signal: string }

/** `processId` names a process: a container's id (its main process) or an exec id. */
export interface ProcessIdArgs { processId: string }
export interface ReadOutputArgs { processId: string; after: number; timeoutMs?: number; maxBytes?: number }
export interface OutputChunk { seq: number; stream: 'stdout' | 'stderr'; data: string; time: number }
export interface ReadOutputResult {
  /** Changes when the agent restarted and numbered the process's output anew; `after` then restarts at 0. */
  epoch: string;
  chunks: OutputChunk[];
  /** Chunks after `after` that the bounded buffer no longer holds. */
  dropped: number;
  /** No chunk will follow the last one returned. */
  eof: boolean;
}
export interface WriteStdinArgs { processId: string; data: string }
export interface ResizeTerminalArgs { processId: string; width: number; height: number }

export interface StatsArgs { containerIds?: string[] }
export interface ContainerStatsResult {
  containerId: string;
  /** Decimal string: nanoseconds outgrow a JSON number's exact range. */
  cpuNs: string;
  memoryUsageBytes: number;
  memoryWorkingSetBytes: number;
  memoryRssBytes: number;
  pids: number;
}
export interface InterfaceCounters {
  name: string;
  rxBytes: number; rxPackets: number; rxErrors: number; rxDropped: number;
  txBytes: number; txPackets: number; txErrors: number; txDropped: number;
}
export interface BlockCounters { name: string; serial: string | null; readIos: number; readBytes: number; writeIos: number; writeBytes: number }
export interface StatsResult {
  timestamp: number;
  containers: ContainerStatsResult[];
  network: InterfaceCounters[];
  block: BlockCounters[];
  memory: { totalBytes: number; availableBytes: number };
}

export interface InterfaceArgs { mac: string; name?: string; addresses: string[]; mtu?: number; up?: boolean }
export interface InterfaceResult { name: string }
export interface RouteArgs { dest: string; gateway?: string; dev?: string; family?: 4 | 6 }
export interface HostnameArgs { hostname: string }
export interface SetTimeArgs { epochMs: number }
/**
 * `agentMs`: how long the agent held the request, from reading it to answering. The clock ends behind
 * the host's by the request's way to the agent, so by at most the round trip less `agentMs`.
 */
export interface SetTimeResult { previousEpochMs: number; agentMs: number }
export interface ReseedRandomArgs { bytes: string }
/** A route through the pod NIC, as `identity`'s `network` gives it: `route`'s arguments without `dev`. */
export type NicRoute = Omit<RouteArgs, 'dev'>;
/**
 * The pod NIC's whole configuration, as `identity` takes it: the NIC with `mac` (after the MAC change)
 * gets `name`, `mtu`, exactly `addresses`, is brought up (unless `up` is false), then gets `routes`.
 */
export interface NicConfig { mac: string; name?: string; mtu?: number; addresses: string[]; routes?: NicRoute[]; up?: boolean }
/** A template clone's own clock, randomness, NIC MAC, network and hostname, given in one request (PROTOCOL.md). */
export interface IdentityArgs { epochMs: number; seed: string; hostname?: string; mac?: { from: string; to: string }; network?: NicConfig }
/** `interface`: the NIC's name once `network` was applied; absent without `network`. */
export interface IdentityResult extends SetTimeResult { interface?: string }

type Empty = Record<string, never>;

export interface OpArgs {
  hello: HelloArgs; exec: ExecArgs; start: StartArgs; signal: SignalArgs; wait: WaitArgs;
  mount: MountArgs; umount: UmountArgs; writeFile: WriteFileArgs;
  createContainer: CreateContainerArgs; startContainer: ContainerIdArgs; signalContainer: SignalContainerArgs;
  stopContainer: StopContainerArgs; waitContainer: WaitContainerArgs; removeContainer: ContainerIdArgs; updateContainer: UpdateContainerArgs;
  execInContainer: ExecInContainerArgs; execSyncInContainer: ExecSyncInContainerArgs; waitExec: WaitExecArgs; signalExec: SignalExecArgs;
  readOutput: ReadOutputArgs; writeStdin: WriteStdinArgs; closeStdin: ProcessIdArgs; resizeTerminal: ResizeTerminalArgs;
  stats: StatsArgs; interface: InterfaceArgs; route: RouteArgs; hostname: HostnameArgs; setTime: SetTimeArgs; reseedRandom: ReseedRandomArgs;
  identity: IdentityArgs;
}
export interface OpResults {
  hello: HelloResult; exec: ExecResult; start: StartResult; signal: Empty; wait: WaitResult;
  mount: MountResult; umount: UmountResult; writeFile: Empty;
  createContainer: ContainerIdArgs; startContainer: Empty; signalContainer: Empty;
  stopContainer: Empty; waitContainer: ContainerStateResult; removeContainer: Empty; updateContainer: Empty;
  execInContainer: ExecInContainerResult; execSyncInContainer: ExecSyncInContainerResult; waitExec: WaitExecResult; signalExec: Empty;
  readOutput: ReadOutputResult; writeStdin: Empty; closeStdin: Empty; resizeTerminal: Empty;
  stats: StatsResult; interface: InterfaceResult; route: Empty; hostname: Empty; setTime: SetTimeResult; reseedRandom: Empty;
  identity: IdentityResult;
}

/** Names of the envelope; no op's arguments use them. */
export const ENVELOPE_FIELDS = ['v', 'id', 'op'] as const;

export type Request<O extends Op = Op> = { v: number; id: number; op: O } & OpArgs[O];

/** Error codes an agent answers with. */
export type AgentErrorCode =
  | 'BadRequest' | 'UnsupportedVersion' | 'UnknownOp' | 'CommandNotFound' | 'NoSuchProcess' | 'DeadlineExceeded'
  | 'NotFound' | 'AlreadyExists' | 'ContainerRunning' | 'NotRunning' | 'Internal';

export type Response =
  | { v: number; id: number; ok: true; result: unknown }
  | { v: number; id: number; ok: false; error: { code: AgentErrorCode; message: string } };

/** A frame or message that breaks the protocol. The connection carrying it can no longer be trusted. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

export function encodeFrame(message: object): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  if (body.length > MAX_FRAME_BYTES) throw new ProtocolError(`frame of ${body.length} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit`);
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32BE(body.length, 0);
  return Buffer.concat([header, body]);
}

/**
 * Splits a byte stream into JSON messages. `push` returns every message completed by the chunk; it
 * throws ProtocolError on an oversized length or a body that is not a JSON object, after which the
 * decoder refuses further input (the stream's framing is lost).
 */
export class FrameDecoder {
  private buffer: Buffer = Buffer.alloc(0);
  private broken: ProtocolError | null = null;

  push(chunk: Buffer): Record<string, unknown>[] {
    if (this.broken) throw this.broken;
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const messages: Record<string, unknown>[] = [];
    while (this.buffer.length >= HEADER_BYTES) {
      const length = this.buffer.readUInt32BE(0);
      if (length > MAX_FRAME_BYTES) this.fail(`frame length ${length} exceeds the ${MAX_FRAME_BYTES}-byte limit`);
      if (this.buffer.length < HEADER_BYTES + length) break;
      const body = this.buffer.subarray(HEADER_BYTES, HEADER_BYTES + length);
      this.buffer = this.buffer.subarray(HEADER_BYTES + length);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch (err) {
        this.fail(`frame body is not JSON: ${(err as Error).message}`);
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) this.fail('frame body is not a JSON object');
      messages.push(parsed as Record<string, unknown>);
    }
    return messages;
  }

  /** Bytes of an incomplete frame still waiting for the rest. */
  get pending(): number {
    return this.buffer.length;
  }

  private fail(message: string): never {
    this.broken = new ProtocolError(message);
    throw this.broken;
  }
}

function isId(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** Checks the envelope of a message from the host. Per-op arguments are checked by the agent's handlers. */
export function parseRequest(message: Record<string, unknown>): Request {
  if (!isId(message.id)) throw new ProtocolError(`request 'id' must be a non-negative integer, got ${JSON.stringify(message.id)}`);
  if (!Number.isSafeInteger(message.v)) throw new ProtocolError(`request ${message.id}: 'v' must be an integer, got ${JSON.stringify(message.v)}`);
  if (typeof message.op !== 'string') throw new ProtocolError(`request ${message.id}: 'op' must be a string`);
  return message as unknown as Request;
}

/** Checks a message from the agent. */
export function parseResponse(message: Record<string, unknown>): Response {
  if (!isId(message.id)) throw new ProtocolError(`response 'id' must be a non-negative integer, got ${JSON.stringify(message.id)}`);
  if (!Number.isSafeInteger(message.v)) throw new ProtocolError(`response ${message.id}: 'v' must be an integer`);
  if (message.ok === true) {
    if (!('result' in message)) throw new ProtocolError(`response ${message.id}: 'result' is missing`);
  } else if (message.ok === false) {
    const error = message.error as { code?: unknown; message?: unknown } | undefined;
    if (typeof error !== 'object' || error === null || typeof error.code !== 'string' || typeof error.message !== 'string') {
      throw new ProtocolError(`response ${message.id}: 'error' must be {code, message} strings`);
    }
  } else {
    throw new ProtocolError(`response ${message.id}: 'ok' must be true or false`);
  }
  return message as unknown as Response;
}
