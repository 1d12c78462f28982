import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
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
  type Resources,
  type RuntimeHandler,
  type SandboxSpec,
} from '../handler.js';
import { RecordDir } from '../service/records.js';
import { AGENT_CALL_TIMEOUT_MS, AgentCallError, processStreams } from './agent-client.js';
import { MAX_LONG_POLL_MS, type ContainerStateResult } from './agent-protocol.js';
import { guestContainerArgs } from './container-args.js';
import { copyBack, guestFilesDir, prepareMounts, releaseShareDir } from './container-mounts.js';
import { runtimeError } from './errors.js';
import { ensureGuestImages, type GuestImages } from './guest-image.js';
import { ensureGuestKernel, type GuestKernel } from './guest-kernel.js';
import { LogPump } from './log-pump.js';
import { VmPool, removeLeftovers, type PooledVm } from './pool.js';
import { MAX_POOL_SIZE } from './pool-size.js';
import { GUEST_DIR, PodVm, SHARE_TAG, type StartVm, type VmExit } from './pod-vm.js';
import { ID_PATTERN, validateContainerRecord, validateSandboxRecord, type BlockIo, type ContainerRecord, type SandboxRecord } from './records.js';
import { createContainerLayer, ensureImageDisk, removeContainerLayer, removeImageDisk, removeInterruptedBuilds } from './rootfs-image.js';
import { sandboxMemoryMiB } from './sandbox-memory.js';
import { beginConnectTap, disconnectTap, guestNetwork, tapName } from './tap.js';
import type { TemplateCache } from './template.js';
import { DEFAULT_MEMORY_MIB, MicroVm, chooseAccelerator, type Accelerator } from './vm.js';

/** Container operations under TCG on a loaded 2-core host take seconds (runc and conmon start in the guest). */
export const CONTAINER_CALL_TIMEOUT_MS = 60_000;
/** Calls that only read state answer at once, unless the agent is stuck. */
const STATE_CALL_TIMEOUT_MS = AGENT_CALL_TIMEOUT_MS;
/** One long poll of wait() and of an exec's exit; the agent answers sooner when the process exits. */
const WAIT_POLL_MS = Math.min(10_000, MAX_LONG_POLL_MS);
/** The agent's stopContainer may take the stop timeout plus 10 s (PROTOCOL.md); the call gets this on top. */
const STOP_MARGIN_MS = 20_000;
/** An execSync without a timeout (CRI's 0) is still bounded, so that no CRI call waits forever on a VM. */
export const EXEC_SYNC_MAX_SECONDS = 600;
/** How long remove() waits for an exited container's last output to reach its log before removing it. */
const DRAIN_TIMEOUT_MS = 10_000;
/** After an agent connection broke, how long to wait for QEMU's exit before calling it a VM crash rather than an agent failure. */
const VM_EXIT_GRACE_MS = 2_000;
/** Exit code reported for a container that ended with its VM (nobody saw its own exit), as the runc handler reports a lost container. */
const LOST_EXIT_CODE = 255;
/** unix socket paths (the VM's agent and QMP sockets) must fit in sockaddr_un's 108 bytes. */
const MAX_SOCKET_PATH = 107;
/** Lines of the guest console quoted when a VM exits on its own. */
const CONSOLE_TAIL_LINES = 10;

export interface RunvHandlerOptions {
  /**
   * The runtime's root directory. runv keeps everything under `<root>/runv`: VMs (`vm/`), records
   * (`sandboxes/`, `containers/`), 9p shares (`shares/`), rootfs
   * disks (`rootfs/`), container layers (`layers/`), output cursors (`output/`), and the guest kernel
   * and images unless `cacheRoot` is given.
   */
  root: string;
  /** Where the guest kernel, images and accelerator choice are cached (`<cacheRoot>/runv/...`); `root` when absent. */
  cacheRoot?: string;
  /** How a pod's VM is obtained; a cold boot when absent. A VM template restore plugs in here. */
  startVm?: StartVm;
  /**
   * How many VMs of the default pod shape to keep restored and idle (pool.ts), 0..MAX_POOL_SIZE; 0
   * (the default) keeps none. A pool needs `templates`. A pod that fits (no memory limit) takes one.
   */
  pool?: number;
  /** The templates the pool restores from; the same cache `startVm` uses. */
  templates?: TemplateCache;
  /** Where progress and warnings go; stderr when absent. */
  log?: (line: string) => void;
  /** Ends open()'s preparation of the kernel and images. */
  signal?: AbortSignal;
}

interface Container {
  record: ContainerRecord;
  pump?: LogPump;
  /** The last state the guest reported, for the times of a container whose VM then went. */
  seen?: ContainerState;
  finishing?: Promise<ContainerState>;
}

/**
 * RuntimeHandler `runv`: every pod sandbox is a QEMU microVM with its own kernel (vm.ts), and its
 * containers run inside it, under the guest's runc and conmon, driven by the guest agent
 * (PROTOCOL.md). Through CRI a runv pod looks like a runc pod: same logs, exec, stats and IPs.
 *
 * Lifecycle of a pod:
 *
 *   startSandbox(spec)   the pod's netns and veth exist (the CRI layer made them): a tap is joined to
 *                        the veth (tap.ts), the VM starts in the netns with its NIC on the tap and the
 *                        veth's MAC while the tap's redirects are set up, and its guest is given the
 *                        pod's addresses, routes and hostname before the VM is returned (vm.ts
 *                        GuestIdentity). Host-network pods are refused: a VM has its own network stack.
 *                        With a pool (RunvHandlerOptions.pool), a pod without a memory limit takes an
 *                        idle VM instead: its tap moves into the pod's netns and its guest gets the
 *                        pod's identity (pool.ts); the pool refills in the background.
 *   createContainer      the image's ext4 disk (built once per chain ID) under a qcow2 layer of the
 *                        container's own is attached to a free disk slot and mounted in the guest;
 *                        mounts reach the guest as files, as the pod's emptyDir disks and tmpfs, or
 *                        through the 9p share (container-mounts.ts);
 *                        the agent creates the container. Its output is copied into the CRI log
 *                        (log-pump.ts) from then on.
 *   start, stop, kill, exec, attach, stats ...   agent calls, each with a deadline: an agent that does
 *                        not answer fails the call ('DeadlineExceeded'); no CRI call waits on it forever.
 *   remove               the container goes from the guest, its disk is unmounted and detached, and
 *                        its layer deleted.
 *   stopSandbox          the VM is stopped, the tap removed and the veth given its addresses back.
 *                        The pod's emptyDir disks stay with its volumes (empty-dir.ts).
 *
 * A VM that exits on its own takes its containers with it: each is reported exited with reason
 * 'VmExited' and a message quoting the guest console.
 *
 * Restarts: VMs run in their own process group and outlive the runtime. close() lets go of them;
 * adopt() reconnects to each (MicroVm.adopt), reports every container's true state, and resumes each
 * log where it stopped. A VM that cannot be adopted is destroyed and its containers reported exited.
 *
 * The container's `pid` in its state is QEMU's while the container exists in the VM: no host process
 * is the container's own.
 */
export class RunvHandler implements RuntimeHandler {
  readonly name = 'runv';
  /** The pod IP lives in the guest; port-forwards dial it (RuntimeHandler.podNetworkInGuest). */
  readonly podNetworkInGuest = true;
  private readonly sandboxRecords: RecordDir<SandboxRecord>;
  private readonly containerRecords: RecordDir<ContainerRecord>;
  /** Every sandbox record this handler knows, running or not. */
  private readonly sandboxes = new Map<string, SandboxRecord>();
  /** The VMs this handler holds. */
  private readonly pods = new Map<string, PodVm>();
  private readonly containers = new Map<string, Container>();
  private readonly startVm: StartVm;
  private readonly log: (line: string) => void;
  /** Idle VMs for pods of the default shape (none at size 0); filled once adopt() has removed a previous run's leftovers. */
  private readonly pool: VmPool | undefined;
  private closed = false;

  private constructor(
    private readonly root: string,
    readonly kernel: GuestKernel,
    readonly images: GuestImages,
    /** The accelerator VMs use; the node's `atoll.dev/kvm` label follows it. */
    readonly accel: Accelerator,
    options: RunvHandlerOptions,
  ) {
    this.sandboxRecords = new RecordDir(join(this.dir, 'sandboxes'), validateSandboxRecord);
    this.containerRecords = new RecordDir(join(this.dir, 'containers'), validateContainerRecord);
    this.startVm = options.startVm ?? ((vmOptions) => MicroVm.boot(vmOptions));
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    if (options.templates) {
      this.pool = new VmPool({
        size: options.pool ?? 0, dir: this.dir, templates: options.templates, kernel, images, accel, memoryMiB: DEFAULT_MEMORY_MIB, log: this.log,
      });
    }
  }

  /**
   * Prepares the guest kernel and images (downloaded and built on first use, with progress through
   * `log`), chooses the accelerator, and returns the handler. Call adopt() next, as for any handler.
   */
  static async open(options: RunvHandlerOptions): Promise<RunvHandler> {
    const { root, signal } = options;
    const pool = options.pool ?? 0;
    if (!Number.isInteger(pool) || pool < 0 || pool > MAX_POOL_SIZE) throw new Error(`runv: the pool size must be a whole number from 0 to ${MAX_POOL_SIZE}, got ${pool}`);
    if (pool > 0 && !options.templates) throw new Error('runv: a pool of VMs needs VM templates (RunvHandlerOptions.templates) to restore them from');
    if (!isAbsolute(root)) throw new Error(`runv: the root ${JSON.stringify(root)} must be an absolute path`);
    const socket = join(root, 'runv', 'vm', vmDirName('x'), 'agent.sock');
    if (socket.length > MAX_SOCKET_PATH) {
      throw new Error(`runv: the root ${root} is too long: a VM socket under it (${socket}) passes the ${MAX_SOCKET_PATH}-byte limit of unix socket paths; use a shorter --root`);
    }
    const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
    const cacheRoot = options.cacheRoot ?? root;
    const kernel = await ensureGuestKernel(cacheRoot, { signal, onProgress: log });
    const images = await ensureGuestImages(cacheRoot, kernel, { signal, onProgress: log });
    const choice = await chooseAccelerator(cacheRoot, kernel, images, signal);
    log(`runv: VMs use ${choice.accel} (${choice.reason})`);
    await removeInterruptedBuilds(root);
    return new RunvHandler(root, kernel, images, choice.accel, { ...options, log });
  }

  private get dir(): string {
    return join(this.root, 'runv');
  }
  private vmDir(sandboxId: string): string {
    return join(this.dir, 'vm', vmDirName(sandboxId));
  }
  private shareDir(sandboxId: string): string {
    return join(this.dir, 'shares', sandboxId);
  }
  /** The sandbox's share: the pool VM's own when it came from the pool; records from before pools name none. */
  private shareDirOf(record: SandboxRecord): string {
    return record.shareDir ?? this.shareDir(record.id);
  }
  private layerPath(containerId: string): string {
    return join(this.dir, 'layers', `${containerId}.qcow2`);
  }
  private cursorFile(containerId: string): string {
    return join(this.dir, 'output', `${containerId}.json`);
  }

  /**
   * Resolves once the pool (RunvHandlerOptions.pool) holds all its idle VMs: at once without a pool.
   * Rejects when `signal` aborts or the handler closes first. For tests and benchmarks.
   */
  async poolFull(signal?: AbortSignal): Promise<void> {
    await this.pool?.full(signal);
  }

  /** Keeps `size` idle VMs from now on (0..MAX_POOL_SIZE; see RunvHandlerOptions.pool), stopping any beyond it. */
  async resizePool(size: number): Promise<void> {
    if (!this.pool) throw new Error('runv: a pool of VMs needs VM templates (RunvHandlerOptions.templates) to restore them from');
    await this.pool.resize(size);
  }

  // ---- sandboxes -----------------------------------------------------------------------------

  async startSandbox(spec: SandboxSpec): Promise<void> {
    const { id } = spec;
    if (spec.hostNetwork) {
      throw new RuntimeError('InvalidArgument', `runv sandbox ${id}: a runv pod cannot use the node's network (hostNetwork): its VM has its own kernel and network stack; run the pod with runc`);
    }
    if (!ID_PATTERN.test(id)) throw new RuntimeError('InvalidArgument', `runv sandbox id ${JSON.stringify(id)} must match ${ID_PATTERN}`);
    if (this.sandboxes.has(id)) throw new RuntimeError('AlreadyExists', `runv sandbox ${id} already exists`);
    const veth = spec.network?.interfaces[0]?.name;
    if (!veth) throw new RuntimeError('InvalidArgument', `runv sandbox ${id}: the pod has no network interface to give its VM`);
    const memoryMiB = sandboxMemoryMiB(spec.resources);
    const pooled = memoryMiB === this.pool?.memoryMiB ? this.pool.take() : undefined;
    if (pooled) return this.startPooledSandbox(spec, veth, memoryMiB, pooled);
    const record: SandboxRecord = {
      id, phase: 'starting', hostname: spec.hostname, netns: spec.netns, veth,
      memoryMiB, vmDir: this.vmDir(id), shareDir: this.shareDir(id), createdAt: Date.now(),
    };
    this.sandboxes.set(id, record);
    let vm: MicroVm | undefined;
    try {
      // The record goes first: a crash from here on leaves something adopt() can undo.
      await this.sandboxRecords.write(record);
      const shareDir = this.shareDirOf(record);
      await mkdir(shareDir, { recursive: true, mode: 0o700 });
      const { connection: tap, ready } = await beginConnectTap(spec.netns, { veth });
      // The VM starts while the tap's redirects are put in place; the VM comes back with its guest
      // network and hostname set (vm.ts GuestIdentity), and the pod is ready once both are done.
      const [started, wired] = await Promise.allSettled([
        this.startVm({
          dir: record.vmDir, kernel: this.kernel, images: this.images, accel: this.accel, memoryMiB: record.memoryMiB,
          netns: spec.netns, nic: { tap: tap.tap, mac: tap.mac }, share: { dir: shareDir, tag: SHARE_TAG },
          hostname: spec.hostname, network: guestNetwork(tap),
        }),
        ready,
      ]);
      if (started.status === 'rejected') throw started.reason;
      vm = started.value;
      if (wired.status === 'rejected') throw wired.reason;
      record.phase = 'running';
      await this.sandboxRecords.write(record);
      this.hold(new PodVm(record, vm, shareDir));
    } catch (err) {
      await vm?.stop().catch((e: Error) => this.log(`runv sandbox ${id}: stopping the VM of a failed start: ${e.message}`));
      await this.undoSandbox(record).catch((e: Error) => this.log(`runv sandbox ${id}: undoing a failed start: ${e.message}`));
      throw runtimeError(err, `runv sandbox ${id}`);
    }
  }

  /**
   * startSandbox with a VM from the pool: its tap moves into the pod's netns under the pod's tap name
   * (the pool VM's NIC stays on it), tap.ts then finds that tap and joins it to the veth, and the guest
   * gets the pod's MAC, network and hostname in one request while the redirects go in.
   */
  private async startPooledSandbox(spec: SandboxSpec, veth: string, memoryMiB: number, pooled: PooledVm): Promise<void> {
    const { id } = spec;
    const record: SandboxRecord = {
      id, phase: 'starting', hostname: spec.hostname, netns: spec.netns, veth,
      memoryMiB, vmDir: pooled.vmDir, shareDir: pooled.shareDir, createdAt: Date.now(),
    };
    this.sandboxes.set(id, record);
    try {
      await this.sandboxRecords.write(record);
      await this.pool!.handOver(pooled, spec.netns, tapName(veth));
      const { connection: tap, ready } = await beginConnectTap(spec.netns, { veth });
      const [identified, wired] = await Promise.allSettled([
        pooled.vm.giveIdentity(pooled.nicMac, { hostname: spec.hostname, network: guestNetwork(tap), nic: { mac: tap.mac } }),
        ready,
      ]);
      if (identified.status === 'rejected') throw identified.reason;
      if (wired.status === 'rejected') throw wired.reason;
      record.phase = 'running';
      await this.sandboxRecords.write(record);
      this.hold(new PodVm(record, pooled.vm, pooled.shareDir));
    } catch (err) {
      await this.pool!.discard(pooled).catch((e: Error) => this.log(`runv sandbox ${id}: stopping the pool VM of a failed start: ${e.message}`));
      await this.undoSandbox(record).catch((e: Error) => this.log(`runv sandbox ${id}: undoing a failed start: ${e.message}`));
      throw runtimeError(err, `runv sandbox ${id}`);
    } finally {
      this.pool!.replenish();
    }
  }

  async stopSandbox(sandboxId: string): Promise<void> {
    const record = this.sandboxes.get(sandboxId);
    if (!record) return;
    const pod = this.pods.get(sandboxId);
    for (const c of this.containersOf(sandboxId)) {
      if (c.record.phase !== 'created') continue;
      const state = await this.state(c.record.id).catch(() => undefined);
      if (state?.status === 'exited') await this.drained(c);
      else await this.finish(c, this.lostState(c, `runv sandbox ${sandboxId} was stopped: its VM was shut down under the container`, 'Error'));
      await c.pump?.stop();
    }
    if (pod) {
      pod.stopping = true;
      try {
        await pod.vm.stop();
      } catch (err) {
        throw runtimeError(err, `runv sandbox ${sandboxId}: stopping its VM`);
      }
      this.pods.delete(sandboxId);
    }
    try {
      await this.undoSandbox(record);
    } catch (err) {
      throw runtimeError(err, `runv sandbox ${sandboxId}`);
    }
  }

  /** Removes what a sandbox left on the host: the VM (killed if it still runs), the tap, the share, the record. Idempotent. */
  private async undoSandbox(record: SandboxRecord): Promise<void> {
    await MicroVm.destroy(record.vmDir);
    await disconnectTap(record.netns, tapName(record.veth));
    await releaseShareDir(this.shareDirOf(record));
    await this.sandboxRecords.remove(record.id);
    this.sandboxes.delete(record.id);
  }

  /** Takes a running VM into the handler and watches for it ending on its own. */
  private hold(pod: PodVm): void {
    this.pods.set(pod.record.id, pod);
    pod.vm.exited.then(() => {
      if (this.closed || pod.stopping) return;
      pod.exit = describeExit(pod);
      void this.vmExited(pod).catch((err: Error) => this.log(`runv sandbox ${pod.record.id}: recording its VM's exit: ${err.message}`));
    }, () => undefined);
  }

  /** A VM ended under its containers: each is recorded exited ('VmExited'), with the console's last lines in the message. */
  private async vmExited(pod: PodVm): Promise<void> {
    const { record } = pod;
    const exit = await pod.exit!;
    record.vmExit = exit;
    this.log(`runv sandbox ${record.id}: ${exit.message}`);
    await this.sandboxRecords.write(record);
    for (const c of this.containersOf(record.id)) {
      if (c.record.phase === 'created' && !c.record.final) await this.finish(c, this.lostState(c, exit.message, 'VmExited', exit.at));
    }
  }

  private containersOf(sandboxId: string): Container[] {
    return [...this.containers.values()].filter((c) => c.record.sandboxId === sandboxId);
  }

  /** The running VM of a sandbox, for work that needs one. */
  private livePod(sandboxId: string, what: string): PodVm {
    const pod = this.pods.get(sandboxId);
    if (pod && !pod.exit) return pod;
    const record = this.sandboxes.get(sandboxId);
    if (!record) throw new RuntimeError('NotFound', `${what}: runv sandbox ${sandboxId} does not exist or was stopped`);
    throw new RuntimeError('NotRunning', `${what}: the VM of runv sandbox ${sandboxId} is not running${record.vmExit ? `: ${record.vmExit.message}` : ''}`);
  }

  /** Whether the pod's VM has exited, waiting a moment for QEMU's exit to show after its agent connection broke. */
  private async vmGone(pod: PodVm): Promise<boolean> {
    if (pod.exit) return true;
    let timer: NodeJS.Timeout | undefined;
    const gone = await Promise.race([
      pod.vm.exited.then(() => true, () => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(resolve, VM_EXIT_GRACE_MS, false))),
    ]).finally(() => clearTimeout(timer));
    return gone && pod.exit !== undefined;
  }

  // ---- containers ----------------------------------------------------------------------------

  async createContainer(spec: ContainerSpec): Promise<{ id: string }> {
    const { id } = spec;
    if (!ID_PATTERN.test(id)) throw new RuntimeError('InvalidArgument', `container id "${id}" must match ${ID_PATTERN}`);
    if (!isAbsolute(spec.logPath)) throw new RuntimeError('InvalidArgument', `container ${id}: log path ${spec.logPath} is not absolute`);
    if (!isAbsolute(spec.rootfs) || !existsSync(spec.rootfs)) throw new RuntimeError('InvalidArgument', `container ${id}: rootfs ${spec.rootfs} does not exist`);
    if (this.containers.has(id) || existsSync(join(this.containerRecords.dir, `${id}.json`))) throw new RuntimeError('AlreadyExists', `container ${id} already exists`);
    const pod = this.livePod(spec.sandboxId, `container ${id}`);
    const guestRootfs = guestRootfsPath(id);
    // The process is worked out before anything is made, so that a bad spec fails with nothing to undo.
    const args = guestContainerArgs(spec, guestRootfs, []);
    const record: ContainerRecord = {
      id, name: spec.name ?? id, sandboxId: spec.sandboxId, phase: 'creating', createdAt: Date.now(), logPath: spec.logPath,
      labels: { ...spec.labels }, annotations: { ...spec.annotations }, layer: this.layerPath(id), copyBack: [],
      ...(spec.imageChainId ? {} : { ownImageDisk: ownChainId(id) }),
    };
    const c: Container = { record };
    this.containers.set(id, c);
    try {
      await this.containerRecords.write(record);
      // The rootfs and the other mounts need nothing of each other, and under TCG each is a chain of
      // guest round trips: they are made at once. Both settle before a failure is handled, so that
      // destroy() races neither.
      const [rootfsMounted, mounts] = await Promise.allSettled([
        (async () => {
          const image = await ensureImageDisk(this.root, spec.imageChainId ?? record.ownImageDisk!, spec.rootfs, { onProgress: this.log });
          await createContainerLayer(image, record.layer);
          const disk = await pod.vm.attachDisk(record.layer, { format: 'qcow2' });
          record.blockBaseline = await this.blockIo(pod, disk.serial);
          await pod.agent.call('mount', { serial: disk.serial, fstype: 'ext4', options: ['noatime'], target: guestRootfs }, CONTAINER_CALL_TIMEOUT_MS);
        })(),
        prepareMounts(pod, spec, record),
      ]);
      if (rootfsMounted.status === 'rejected') throw rootfsMounted.reason;
      if (mounts.status === 'rejected') throw mounts.reason;
      args.mounts = mounts.value;
      await pod.agent.call('createContainer', args, CONTAINER_CALL_TIMEOUT_MS);
      record.phase = 'created';
      await this.containerRecords.write(record);
      c.pump = await LogPump.start(pod.agent, id, spec.logPath, this.cursorFile(id), this.log);
    } catch (err) {
      await this.destroy(c).catch((e: Error) => this.log(`runv container ${id}: undoing a failed create: ${e.message}`));
      throw runtimeError(err, `container ${id}`);
    }
    return { id };
  }

  async start(id: string): Promise<void> {
    const c = this.container(id);
    if (c.record.final) throw new RuntimeError('NotRunning', `container ${id} has exited; only a created container can start`);
    const pod = this.livePod(c.record.sandboxId, `container ${id}`);
    try {
      await pod.agent.call('startContainer', { containerId: id }, CONTAINER_CALL_TIMEOUT_MS);
    } catch (err) {
      throw runtimeError(err, `container ${id}`);
    }
  }

  async stop(id: string, timeoutSeconds: number): Promise<void> {
    const c = this.container(id);
    if (c.record.final) return;
    const pod = this.pods.get(c.record.sandboxId);
    if (!pod || pod.exit) {
      await this.state(id);
      return;
    }
    try {
      await pod.agent.call('stopContainer', { containerId: id, timeoutSeconds }, timeoutSeconds * 1000 + STOP_MARGIN_MS);
    } catch (err) {
      if (!(await this.vmGone(pod))) throw runtimeError(err, `container ${id}`);
    }
    await this.state(id);
  }

  async kill(id: string, signal: string | number): Promise<void> {
    const c = this.container(id);
    if (c.record.final) throw new RuntimeError('NotRunning', `container ${id} is not running`);
    const pod = this.livePod(c.record.sandboxId, `container ${id}`);
    try {
      await pod.agent.call('signalContainer', { containerId: id, signal }, CONTAINER_CALL_TIMEOUT_MS);
    } catch (err) {
      throw runtimeError(err, `container ${id}`);
    }
  }

  async remove(id: string): Promise<void> {
    const c = this.container(id);
    const state = await this.state(id);
    if (state.status === 'running') throw new RuntimeError('ContainerRunning', `container ${id} is running; stop it before removing it`);
    if (state.status === 'exited') await this.drained(c);
    try {
      await this.destroy(c);
    } catch (err) {
      throw runtimeError(err, `container ${id}: remove`);
    }
  }

  /** Waits, boundedly, until the exited container's last output is in its log. */
  private async drained(c: Container): Promise<void> {
    if (!c.pump) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([c.pump.finished, new Promise((resolve) => (timer = setTimeout(resolve, DRAIN_TIMEOUT_MS)))]).finally(() => clearTimeout(timer));
  }

  /**
   * Deletes everything of a container that is not running: in the guest (the container, its files, its
   * rootfs mount and disk) while the VM runs, and on the host (share binds, layer, own image disk,
   * cursor, record). Also undoes a create that stopped half-way.
   */
  private async destroy(c: Container): Promise<void> {
    const { record } = c;
    const { id } = record;
    // The final state is visible as soon as finish() starts, before its record is written: that
    // write must land before the record is removed, or it brings the record back.
    await c.finishing?.catch(() => undefined);
    await c.pump?.stop();
    const pod = this.pods.get(record.sandboxId);
    if (pod && !pod.exit) {
      await pod.agent.call('removeContainer', { containerId: id }, CONTAINER_CALL_TIMEOUT_MS).catch((err: unknown) => {
        if (!(err instanceof AgentCallError && err.code === 'NotFound')) throw err;
      });
      await pod.agent.exec(['rm', '-rf', guestFilesDir(id)], { timeoutMs: AGENT_CALL_TIMEOUT_MS });
      await pod.agent.call('umount', { target: guestRootfsPath(id) }, CONTAINER_CALL_TIMEOUT_MS);
      const disk = pod.vm.attachedDisks().find((d) => d.file === record.layer);
      if (disk) await pod.vm.detachDisk(disk.slot);
    }
    await releaseShareDir(join(this.shareDir(record.sandboxId), id));
    await removeContainerLayer(record.layer);
    if (record.ownImageDisk) await removeImageDisk(this.root, record.ownImageDisk);
    await rm(this.cursorFile(id), { force: true });
    await this.containerRecords.remove(id);
    this.containers.delete(id);
  }

  private container(id: string): Container {
    const c = this.containers.get(id);
    if (!c || c.record.phase === 'creating') throw new RuntimeError('NotFound', `container ${id} not found`);
    return c;
  }

  async state(id: string): Promise<ContainerState> {
    const c = this.container(id);
    if (c.record.final) return { ...c.record.final };
    const pod = this.pods.get(c.record.sandboxId);
    if (!pod || pod.exit) return this.finish(c, await this.lostStateOf(c));
    let result: ContainerStateResult;
    try {
      result = await pod.agent.call('waitContainer', { containerId: id }, STATE_CALL_TIMEOUT_MS);
    } catch (err) {
      if (await this.vmGone(pod)) return this.state(id);
      throw runtimeError(err, `container ${id}`);
    }
    return this.observe(c, pod, result);
  }

  async wait(id: string, signal?: AbortSignal): Promise<ContainerState> {
    for (;;) {
      const state = await this.state(id);
      if (state.status === 'exited') return state;
      signal?.throwIfAborted();
      const c = this.container(id);
      const pod = this.livePod(c.record.sandboxId, `container ${id}`);
      const poll = pod.agent.call('waitContainer', { containerId: id, timeoutMs: WAIT_POLL_MS }, WAIT_POLL_MS + STATE_CALL_TIMEOUT_MS);
      poll.catch(() => undefined);
      let onAbort = () => undefined as void;
      const aborted = new Promise<never>((_resolve, reject) => {
        onAbort = () => reject(signal!.reason);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
      aborted.catch(() => undefined);
      const vmExit = pod.vm.exited.then(() => null, () => null);
      const result = await Promise.race([poll, aborted, vmExit]).catch(async (err: unknown) => {
        if (signal?.aborted) throw err;
        if (await this.vmGone(pod)) return null;
        throw runtimeError(err, `container ${id}`);
      }).finally(() => signal?.removeEventListener('abort', onAbort));
      if (result) await this.observe(c, pod, result);
    }
  }

  /** A state the guest reported, as this handler reports it; an exit is recorded once. */
  private async observe(c: Container, pod: PodVm, result: ContainerStateResult): Promise<ContainerState> {
    const alive = result.status === 'created' || result.status === 'running';
    const state: ContainerState = { status: result.status, pid: alive ? pod.vm.pid : 0, createdAt: result.createdAt };
    if (result.startedAt !== undefined) state.startedAt = result.startedAt;
    if (result.finishedAt !== undefined) state.finishedAt = result.finishedAt;
    if (result.exitCode !== undefined) state.exitCode = result.exitCode;
    if (result.reason !== undefined) state.reason = result.reason;
    if (result.message !== undefined) state.message = result.message;
    c.seen = state;
    if (state.status !== 'exited') return state;
    await copyBack(pod, c.record).then((failures) => {
      for (const failure of failures) this.log(`runv container ${c.record.id}: copying a file back to the host: ${failure}`);
    });
    return this.finish(c, state);
  }

  /** The state of a container whose VM is gone or was stopped. */
  private async lostStateOf(c: Container): Promise<ContainerState> {
    const pod = this.pods.get(c.record.sandboxId);
    const exit = pod?.exit ? await pod.exit : this.sandboxes.get(c.record.sandboxId)?.vmExit;
    if (exit) return this.lostState(c, exit.message, 'VmExited', exit.at);
    return this.lostState(c, `runv sandbox ${c.record.sandboxId} is not running: its VM was stopped`, 'Error');
  }

  private lostState(c: Container, message: string, reason: 'VmExited' | 'Error', at = Date.now()): ContainerState {
    const state: ContainerState = { status: 'exited', pid: 0, exitCode: LOST_EXIT_CODE, createdAt: c.seen?.createdAt ?? c.record.createdAt, finishedAt: at, reason, message };
    if (c.seen?.startedAt !== undefined) state.startedAt = c.seen.startedAt;
    return state;
  }

  /** Records the container's final state, once: later callers get the first. */
  private finish(c: Container, state: ContainerState): Promise<ContainerState> {
    c.finishing ??= (async () => {
      c.record.final = state;
      c.seen = state;
      await this.containerRecords.write(c.record);
      return state;
    })().catch((err: unknown) => {
      c.finishing = undefined;
      delete c.record.final;
      throw runtimeError(err, `container ${c.record.id}: recording its exit`);
    });
    return c.finishing.then((final) => ({ ...final }));
  }

  // ---- processes -----------------------------------------------------------------------------

  /** The container and its running VM, for calls that need the container's processes. */
  private running(id: string): { c: Container; pod: PodVm } {
    const c = this.container(id);
    if (c.record.final) throw new RuntimeError('NotRunning', `container ${id} has exited`);
    return { c, pod: this.livePod(c.record.sandboxId, `container ${id}`) };
  }

  async execSync(id: string, cmd: string[], timeoutSeconds: number): Promise<ExecResult> {
    if (cmd.length === 0) throw new RuntimeError('InvalidArgument', `container ${id}: exec needs a command`);
    const { pod } = this.running(id);
    const bound = timeoutSeconds > 0 ? timeoutSeconds : EXEC_SYNC_MAX_SECONDS;
    try {
      const result = await pod.agent.call('execSyncInContainer', { containerId: id, argv: cmd, timeoutSeconds: bound }, bound * 1000 + CONTAINER_CALL_TIMEOUT_MS);
      return { stdout: Buffer.from(result.stdout, 'base64'), stderr: Buffer.from(result.stderr, 'base64'), exitCode: result.exitCode };
    } catch (err) {
      throw runtimeError(err, `container ${id}`);
    }
  }

  async exec(id: string, cmd: string[], options: ExecOptions): Promise<ExecSession> {
    if (cmd.length === 0) throw new RuntimeError('InvalidArgument', `container ${id}: exec needs a command`);
    const { pod } = this.running(id);
    const tty = options.tty === true;
    let execId: string;
    try {
      ({ execId } = await pod.agent.call('execInContainer', { containerId: id, argv: cmd, tty, stdin: options.stdin === true }, CONTAINER_CALL_TIMEOUT_MS));
    } catch (err) {
      throw runtimeError(err, `container ${id}`);
    }
    const streams = processStreams(pod.agent, execId, { stdin: options.stdin === true });
    const exited = streams.done.then(() => this.execExitCode(pod, execId)).catch((err: unknown) => {
      throw runtimeError(err, `container ${id}: exec ${JSON.stringify(cmd)}`);
    });
    return {
      stdin: streams.stdin,
      stdout: streams.stdout,
      stderr: tty ? null : streams.stderr,
      exited,
      kill: (signal: NodeJS.Signals = 'SIGKILL') => void pod.agent.call('signalExec', { execId, signal }).catch(() => undefined),
      resize: tty ? (size) => void pod.agent.call('resizeTerminal', { processId: execId, ...size }).catch(() => undefined) : undefined,
    };
  }

  private async execExitCode(pod: PodVm, execId: string): Promise<number> {
    for (;;) {
      const result = await pod.agent.call('waitExec', { execId, timeoutMs: WAIT_POLL_MS }, WAIT_POLL_MS + STATE_CALL_TIMEOUT_MS);
      if (result.exited) return result.exitCode ?? LOST_EXIT_CODE;
    }
  }

  /**
   * The main process's output from now on, its stdin (when the container was created with stdin open:
   * the guest's conmon takes it, as on the host), and terminal resizes.
   */
  async attach(id: string, options: ExecOptions): Promise<AttachSession> {
    const { c, pod } = this.running(id);
    const state = await this.state(id);
    if (state.status !== 'running') throw new RuntimeError('NotRunning', `container ${id} is not running (${state.status})`);
    const detach = new AbortController();
    const cursor = c.pump?.cursor;
    const streams = processStreams(pod.agent, id, { after: cursor?.seq, epoch: cursor?.epoch, signal: detach.signal, stdin: options.stdin === true });
    const exited = streams.done.then(async () => (await this.state(id)).exitCode ?? 0);
    return {
      stdin: streams.stdin,
      stdout: streams.stdout,
      stderr: options.tty ? null : streams.stderr,
      exited,
      kill: () => detach.abort(),
      resize: options.tty ? (size) => void pod.agent.call('resizeTerminal', { processId: id, ...size }).catch(() => undefined) : undefined,
    };
  }

  async stats(id: string): Promise<ContainerStats> {
    const c = this.container(id);
    const pod = this.livePod(c.record.sandboxId, `container ${id}`);
    try {
      const result = await pod.agent.call('stats', { containerIds: [id] }, STATE_CALL_TIMEOUT_MS);
      const own = result.containers.find((entry) => entry.containerId === id);
      if (!own) throw new RuntimeError('NotFound', `container ${id}: the guest reports no stats for it`);
      const stats: ContainerStats = {
        timestamp: result.timestamp,
        cpu: { usageCoreNanoSeconds: BigInt(own.cpuNs) },
        memory: { usageBytes: own.memoryUsageBytes, workingSetBytes: own.memoryWorkingSetBytes, rssBytes: own.memoryRssBytes },
        pids: own.pids,
      };
      const disk = pod.vm.attachedDisks().find((d) => d.file === c.record.layer);
      const counters = disk && result.block.find((b) => b.serial === disk.serial);
      if (counters) {
        const base = c.record.blockBaseline ?? { readBytes: 0, writeBytes: 0, readOps: 0, writeOps: 0 };
        stats.blockIo = {
          readBytes: counters.readBytes - base.readBytes, writeBytes: counters.writeBytes - base.writeBytes,
          readOps: counters.readIos - base.readOps, writeOps: counters.writeIos - base.writeOps,
        };
      }
      return stats;
    } catch (err) {
      throw runtimeError(err, `container ${id}: stats`);
    }
  }

  /** The I/O counters of the guest disk with `serial` (the container's rootfs layer). */
  private async blockIo(pod: PodVm, serial: string): Promise<BlockIo | undefined> {
    const { block } = await pod.agent.call('stats', { containerIds: [] }, STATE_CALL_TIMEOUT_MS);
    const disk = block.find((b) => b.serial === serial);
    return disk && { readBytes: disk.readBytes, writeBytes: disk.writeBytes, readOps: disk.readIos, writeOps: disk.writeIos };
  }

  async updateResources(id: string, resources: Resources): Promise<void> {
    const { pod } = this.running(id);
    try {
      await pod.agent.call('updateContainer', { containerId: id, resources }, CONTAINER_CALL_TIMEOUT_MS);
    } catch (err) {
      throw runtimeError(err, `container ${id}`);
    }
  }

  async reopenLog(id: string): Promise<void> {
    const c = this.container(id);
    if (!(await c.pump?.reopen())) throw new RuntimeError('NotRunning', `container ${id}: its log is closed (the container's output ended, or its VM is not running)`);
  }

  // ---- restarts ------------------------------------------------------------------------------

  async adopt(): Promise<AdoptedContainer[]> {
    const vmDirs = new Set<string>();
    for (const record of await this.sandboxRecords.readAll((m) => this.log(`runv: ${m}`))) {
      vmDirs.add(record.vmDir);
      if (this.sandboxes.has(record.id)) continue;
      this.sandboxes.set(record.id, record);
      if (record.phase === 'starting') {
        // The runtime died inside startSandbox; the CRI layer never got a running sandbox.
        this.log(`runv sandbox ${record.id}: removing the leftovers of an unfinished start`);
        await this.undoSandbox(record);
        continue;
      }
      if (record.vmExit) continue;
      try {
        this.hold(new PodVm(record, await MicroVm.adopt(record.vmDir), this.shareDirOf(record)));
      } catch (err) {
        const message = `the pod's VM could not be adopted after a runtime restart: ${(err as Error).message}; its console ended: ${await consoleTail(record.vmDir)}`;
        this.log(`runv sandbox ${record.id}: ${message}`);
        await MicroVm.destroy(record.vmDir);
        record.vmExit = { at: Date.now(), message };
        await this.sandboxRecords.write(record);
      }
    }
    await this.removeOrphans(vmDirs);
    this.pool?.start();

    const adopted: AdoptedContainer[] = [];
    for (const record of await this.containerRecords.readAll((m) => this.log(`runv: ${m}`))) {
      let c = this.containers.get(record.id);
      if (!c) {
        c = { record };
        this.containers.set(record.id, c);
        if (record.phase === 'creating') {
          // The runtime died inside createContainer; the caller never got an id, so nobody owns it.
          await this.destroy(c).catch((err: Error) => this.log(`runv container ${record.id}: removing the leftovers of an unfinished create: ${err.message}`));
          continue;
        }
        const pod = this.pods.get(record.sandboxId);
        if (pod && !pod.exit) {
          const pump = await LogPump.resume(pod.agent, record.id, record.logPath, this.cursorFile(record.id), this.log).catch((err: Error) => {
            this.log(`runv container ${record.id}: its log cannot be resumed: ${err.message}`);
            return null;
          });
          if (pump) c.pump = pump;
        }
      }
      if (c.record.phase !== 'created') continue;
      const state = await this.state(record.id).catch((err: Error): ContainerState => ({ status: 'unknown', pid: 0, createdAt: record.createdAt, message: err.message }));
      adopted.push({ id: record.id, sandboxId: record.sandboxId, name: record.name, logPath: record.logPath, labels: record.labels, annotations: record.annotations, state });
    }
    return adopted;
  }

  /**
   * VMs and shares no sandbox record names: a crash between making them and recording them, and the
   * idle VMs of a previous run's pool, whose netns goes too.
   */
  private async removeOrphans(vmDirs: Set<string>): Promise<void> {
    for (const name of await readdir(join(this.dir, 'vm')).catch(() => [] as string[])) {
      const dir = join(this.dir, 'vm', name);
      if (vmDirs.has(dir) || this.pool?.owns(dir)) continue;
      this.log(`runv: destroying the VM in ${dir}, which no sandbox owns`);
      await MicroVm.destroy(dir);
    }
    const shares = new Set([...this.sandboxes.values()].map((record) => this.shareDirOf(record)));
    for (const name of await readdir(join(this.dir, 'shares')).catch(() => [] as string[])) {
      const dir = join(this.dir, 'shares', name);
      if (!shares.has(dir) && !this.pool?.owns(dir)) await releaseShareDir(dir);
    }
    if (!this.pool?.isStarted) await removeLeftovers(this.dir);
  }

  /**
   * Stops copying output and lets go of every pod's VM; those VMs and their containers keep running for
   * the next adopt(). The pool's idle VMs, which no pod has, are stopped.
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.pool?.close();
    await Promise.all([...this.containers.values()].map((c) => c.pump?.stop()));
    for (const pod of this.pods.values()) pod.vm.release();
  }
}

/** When the pod's VM exited, and the last lines of its console, which usually say why (a panic, the OOM killer). */
async function describeExit(pod: PodVm): Promise<VmExit> {
  const at = Date.now();
  return { at, message: `the pod's VM (QEMU pid ${pod.vm.pid}) exited on its own; its console ended: ${await consoleTail(pod.record.vmDir)}` };
}

async function consoleTail(vmDir: string): Promise<string> {
  const console = await readFile(join(vmDir, 'console.log'), 'utf8').catch(() => '');
  return console.trim().split('\n').slice(-CONSOLE_TAIL_LINES).join(' | ') || '(empty)';
}

/** The VM directory's name: short, so that its sockets fit a unix socket path under any sensible root. */
function vmDirName(sandboxId: string): string {
  return createHash('sha256').update(sandboxId).digest('hex').slice(0, 16);
}

/** A chain ID for an image disk built for one container whose spec named no image chain. */
function ownChainId(containerId: string): string {
  return `sha256:${createHash('sha256').update(`runv container ${containerId}`).digest('hex')}`;
}

function guestRootfsPath(containerId: string): string {
  return join(GUEST_DIR, 'rootfs', containerId);
}
