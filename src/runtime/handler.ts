import type { Readable, Writable } from 'node:stream';
import type { NetworkAttachment } from './network/network.js';

/**
 * RuntimeHandler runs the containers of one pod sandbox technology: `runc` (Linux namespaces and
 * cgroups on the host kernel) today, `runv` (a microVM per pod) later. The CRI layer translates a
 * CRI ContainerConfig into a runtime-level {@link ContainerSpec} and drives a handler through the
 * same lifecycle whichever technology sits behind it.
 *
 * Lifecycle of a container
 * ------------------------
 *
 *   createContainer(spec)   -> { id }     status 'created': process set up, user code not yet running
 *   start(id)                             status 'running'
 *   execSync(id, ["ls"], 5) -> { stdout, stderr, exitCode }       any number of times while running
 *   stop(id, 10)                          SIGTERM, SIGKILL after 10 s; status 'exited'
 *   state(id)               -> { status: 'exited', exitCode: 137, reason: 'Error', ... }
 *   remove(id)                            refused with RuntimeError 'ContainerRunning' while running
 *
 * A container may also exit on its own at any point after start; `state` then reports its exit code,
 * when it finished and why ('Completed' for 0, 'OOMKilled' when the kernel's OOM killer ended it,
 * 'VmExited' when the VM it ran in (runv) ended under it, 'Error' otherwise). Removing a container
 * deletes its runtime state; the CRI log file stays, since rotating and deleting logs is the kubelet's job.
 *
 * State and restarts
 * ------------------
 * Containers outlive the runtime process. A handler persists each container's record under its root
 * directory (write-then-rename), and something other than the runtime process watches each container
 * (conmon for runc, the VM's agent for runv) and records its exit. After the runtime restarts,
 * `adopt()` re-reads every record and reports true states, including exits that happened while the
 * runtime was down. Restarting the runtime never kills a container; `close()` only releases the
 * handler's watchers.
 *
 * Errors
 * ------
 * Calls fail with {@link RuntimeError}, whose `code` the CRI layer maps to a gRPC status.
 */
export interface RuntimeHandler {
  /** The handler name a RuntimeClass selects ('runc', 'runv'). */
  readonly name: string;

  /** Sets up the container without running user code. Fails with 'CommandNotFound' when the command is missing. */
  createContainer(spec: ContainerSpec): Promise<{ id: string }>;
  /** Runs the created container's process. */
  start(id: string): Promise<void>;
  /**
   * Sends the stop signal (SIGTERM unless the spec names another), waits up to `timeoutSeconds` for
   * the container to exit, then sends SIGKILL and waits again. Stopping an exited container is a no-op.
   */
  stop(id: string, timeoutSeconds: number): Promise<void>;
  /** Sends a signal (name like 'SIGHUP' or number) to the container's init process. */
  kill(id: string, signal: string | number): Promise<void>;
  /** Deletes the container's runtime state. Refused with 'ContainerRunning' while it runs. */
  remove(id: string): Promise<void>;
  /** The container's current state; fails with 'NotFound' for an unknown id. */
  state(id: string): Promise<ContainerState>;
  /** Resolves with the final state once the container has exited (at once if it already has). */
  wait(id: string, signal?: AbortSignal): Promise<ContainerState>;

  /**
   * Runs a command in the running container and collects its output. With `timeoutSeconds` > 0 the
   * command is killed when the time is up and the call fails with 'DeadlineExceeded'.
   */
  execSync(id: string, cmd: string[], timeoutSeconds: number): Promise<ExecResult>;
  /** Starts a command in the running container with streams for the CRI streaming server. */
  exec(id: string, cmd: string[], options: ExecOptions): Promise<ExecSession>;
  /**
   * Connects to the running container's main process: its output from now on, its stdin when the
   * container was created with stdin open, and terminal resizes. Killing the session detaches.
   * Absent when the handler cannot attach.
   */
  attach?(id: string, options: ExecOptions): Promise<AttachSession>;

  /** CPU, memory and process counts of the container's cgroup (or VM). */
  stats(id: string): Promise<ContainerStats>;
  /** Changes the resource limits of a created or running container. */
  updateResources(id: string, resources: Resources): Promise<void>;
  /** Makes the log writer reopen the CRI log file (after the kubelet rotated it). */
  reopenLog(id: string): Promise<void>;

  /**
   * Called by RunPodSandbox once the pod's namespaces and network exist, before any container. A
   * handler that runs the whole pod in one place (runv: a VM) starts it here. Failing fails
   * RunPodSandbox, which then undoes the network.
   */
  startSandbox?(spec: SandboxSpec): Promise<void>;
  /**
   * Called by StopPodSandbox after the pod's containers stopped and before its network goes; also on
   * the rollback of a failed RunPodSandbox. Idempotent: a sandbox already stopped or never started is fine.
   */
  stopSandbox?(sandboxId: string): Promise<void>;
  /**
   * Set when the pod's network stack runs inside what the handler starts (runv: the VM's kernel), not
   * in the pod's netns on the host, whose loopback then reaches nothing: CRI PortForward dials the pod
   * IP from the node's network namespace instead.
   */
  readonly podNetworkInGuest?: boolean;

  /** Re-reads every persisted container after a restart and reports its true state. */
  adopt(): Promise<AdoptedContainer[]>;
  /** Releases watchers and timers. Containers keep running. */
  close(): Promise<void>;
}

export type RuntimeErrorCode =
  | 'NotFound'
  | 'AlreadyExists'
  | 'InvalidArgument'
  | 'CommandNotFound'
  | 'ContainerRunning'
  | 'NotRunning'
  | 'DeadlineExceeded'
  | 'Internal';

export class RuntimeError extends Error {
  constructor(
    readonly code: RuntimeErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RuntimeError';
  }
}

/** What a handler learns about a pod sandbox when it starts (see `startSandbox`). */
export interface SandboxSpec {
  id: string;
  hostname: string;
  /** The pod's network namespace file: the pod's own, or the node's for host-network pods. */
  netns: string;
  hostNetwork: boolean;
  /** The pod's interfaces and IPs as the network attached them; absent for host-network pods. */
  network?: NetworkAttachment;
  /** The pod-level limits the kubelet passed (CRI `LinuxPodSandboxConfig.resources`), if any. */
  resources?: Resources;
  /** Cgroup parent of the pod (cgroupfs path like '/kubepods/pod123'). */
  cgroupParent?: string;
}

/** A runtime-level container description; the CRI layer builds it from a CRI ContainerConfig and the image config. */
export interface ContainerSpec {
  /** Unique container id: letters, digits, '_', '.', '-'; at most 128 characters. */
  id: string;
  /** Human name, used in logs and conmon's --name. Defaults to the id. */
  name?: string;
  sandboxId: string;
  /**
   * Namespace files of the pod sandbox to join (bind-mounted nsfs files). A missing entry means the
   * container gets a namespace of its own. PID and mount namespaces are always the container's own
   * unless `pid` is given (pod-level process namespace sharing).
   */
  namespaces?: { network?: string; ipc?: string; uts?: string; pid?: string };
  /** The container's root filesystem, already mounted by the caller. */
  rootfs: string;
  /**
   * The chain ID of the image snapshot under `rootfs`: the same ID means the same image tree, so a
   * handler that turns the tree into a disk image (runv) can build it once per image.
   */
  imageChainId?: string;
  readonlyRootfs?: boolean;

  /** The image's config; the spec's own fields override it (CRI's command/args semantics). */
  image?: ImageConfig;
  /** Replaces the image's entrypoint (CRI `command`). */
  command?: string[];
  /** Replaces the image's cmd (CRI `args`). */
  args?: string[];
  /** Added after the image's env; a later entry wins over an earlier one with the same name. */
  env?: { name: string; value: string }[];
  workingDir?: string;
  user?: UserSpec;

  mounts?: BindMount[];
  hostname?: string;
  /** Files bound over /etc/hosts, /etc/resolv.conf and /etc/hostname. */
  hostsFile?: string;
  resolvConfFile?: string;
  hostnameFile?: string;
  /** A directory bound over /dev/shm (the pod's shared memory); a private tmpfs when absent. */
  shmPath?: string;

  privileged?: boolean;
  /** Capability names with or without the CAP_ prefix; 'ALL' is accepted in both lists. */
  capabilities?: { add?: string[]; drop?: string[] };
  /** Defaults to true unless privileged. */
  noNewPrivileges?: boolean;
  seccomp?: SeccompProfile;
  /** Replace the default masked and read-only /proc and /sys paths when given. */
  maskedPaths?: string[];
  readonlyPaths?: string[];
  resources?: Resources;
  /** Cgroup (cgroupfs path like '/kubepods/pod123') under which the container's cgroup is made. */
  cgroupParent?: string;

  /** Absolute path of the CRI log file. Its directory is created if missing. */
  logPath: string;
  tty?: boolean;
  stdin?: boolean;
  /** Signal sent by stop(); SIGTERM when absent. */
  stopSignal?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** The parts of an OCI image config that shape the process. */
export interface ImageConfig {
  entrypoint?: string[];
  cmd?: string[];
  /** NAME=value strings. */
  env?: string[];
  workingDir?: string;
  /** 'uid', 'uid:gid', 'name' or 'name:group', resolved against the rootfs's /etc/passwd and /etc/group. */
  user?: string;
}

/** CRI's run_as_user, run_as_username, run_as_group and supplemental_groups; these override the image's user. */
export interface UserSpec {
  uid?: number;
  username?: string;
  gid?: number;
  additionalGids?: number[];
}

export interface BindMount {
  source: string;
  destination: string;
  readonly?: boolean;
  /** Mount propagation; 'private' when absent. */
  propagation?: 'private' | 'rslave' | 'rshared';
}

export type SeccompProfile = { type: 'RuntimeDefault' } | { type: 'Unconfined' } | { type: 'Localhost'; path: string };

export interface Resources {
  cpuShares?: number;
  cpuQuota?: number;
  cpuPeriod?: number;
  cpusetCpus?: string;
  memoryLimitBytes?: number;
  /** Requested OOM score; a value below the runtime's own is raised to it (the kernel refuses lowering it). */
  oomScoreAdj?: number;
  pidsLimit?: number;
}

export type ContainerStatus = 'created' | 'running' | 'exited' | 'unknown';
export type ExitReason = 'Completed' | 'Error' | 'OOMKilled' | 'VmExited';

export interface ContainerState {
  status: ContainerStatus;
  /** Host PID of the container's init process while it exists; 0 otherwise. */
  pid: number;
  exitCode?: number;
  /** Milliseconds since the epoch. */
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  reason?: ExitReason;
  /** Detail for 'unknown' or a container that was lost while the runtime was down. */
  message?: string;
}

export interface AdoptedContainer {
  id: string;
  sandboxId: string;
  name: string;
  logPath: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: ContainerState;
}

export interface ExecResult {
  stdout: Buffer;
  stderr: Buffer;
  exitCode: number;
}

export interface ExecOptions {
  tty?: boolean;
  stdin?: boolean;
}

/** A running exec. With a tty, stderr is merged into stdout and `stderr` is null. */
export interface ExecSession {
  stdin: Writable | null;
  stdout: Readable;
  stderr: Readable | null;
  /** Resolves with the command's exit code. */
  exited: Promise<number>;
  /** Kills the exec'd process. */
  kill(signal?: NodeJS.Signals): void;
  /** Applies a terminal size; absent when the session's terminal cannot be resized (no tty). */
  resize?(size: { width: number; height: number }): void;
}

/** An attach looks like an exec; killing it detaches. */
export type AttachSession = ExecSession;

export interface ContainerStats {
  /** Milliseconds since the epoch when the numbers were read. */
  timestamp: number;
  cpu: { usageCoreNanoSeconds: bigint };
  memory: { usageBytes: number; workingSetBytes: number; rssBytes: number };
  pids: number;
  /**
   * Block I/O issued by the container since it started, summed over devices; absent when the
   * handler cannot tell (CRI has no field for it: the runtime's admin socket carries it).
   */
  blockIo?: { readBytes: number; writeBytes: number; readOps: number; writeOps: number };
}
