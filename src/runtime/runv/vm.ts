import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, openSync, closeSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile, rename } from 'node:fs/promises';
import { release } from 'node:os';
import { basename, isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentCallError, AgentClient } from './agent-client.js';
import { AGENT_PORT_NAME, type HelloResult, type NicConfig } from './agent-protocol.js';
import { DEFAULT_DISK_SLOTS, DiskSlots, diskSlotArgs, type AttachOptions, type AttachedDisk, type DiskSlotCounts } from './disk-slots.js';
import type { GuestImages } from './guest-image.js';
import type { GuestKernel } from './guest-kernel.js';
import { loadState, saveState } from './migration.js';
import { QmpClient } from './qmp.js';
import { withQemuPrivileges } from './qemu-privileges.js';
import { hostTscKhz } from './tsc.js';

/**
 * One QEMU microVM: the guest kernel and initramfs, the agent disk read-only on virtio-blk, and the
 * agent's virtio-serial port served as a unix socket. Everything the VM owns lives in its directory:
 *
 *   agent.sock   the agent channel (QEMU listens, the host connects; reconnecting is allowed)
 *   qmp.sock     QEMU's monitor: disk attach and detach (disk-slots.ts), and a clean quit
 *   console.log  the guest's serial console (a file, so the boot log survives with nobody reading)
 *   qemu.log     QEMU's own stdout and stderr
 *   qemu.pid     written by QEMU
 *   migrate.sock, incoming.sock   while save() or restore() streams the device state (migration.ts)
 *
 * Lifecycle: boot() starts QEMU and waits for the agent's hello, restore() starts a clone of a saved
 * VM (a template, see template.ts), or adopt() takes over a VM that a previous runtime process
 * started; then the VM runs, disks come and go (attachDisk, detachDisk); stop() ends it, or release()
 * lets go of it without stopping it, for a later adopt(). save() writes a paused VM's device state to a
 * file, for restore().
 *
 * QEMU runs in its own process group so that it outlives the runtime process: a runtime killed with
 * SIGKILL leaves its VMs running, and the next runtime adopts them from their directories. stop()
 * quits QEMU over QMP, kills it by PID if that does not work in time, and removes the directory.
 */

export const QEMU = 'qemu-system-x86_64';
export type Accelerator = 'kvm' | 'tcg';
export const DEFAULT_MEMORY_MIB = 256;
/**
 * TCG's translated-code cache of a cold-booted VM. It fills as the guest runs new code and is resident
 * as far as it has filled (QEMU runs without huge pages under TCG, see QemuPrivilegeOptions): it dominates a TCG
 * guest's host memory (DESIGN.md). A boot translates much code once, and a smaller cache makes it
 * slower (8 MiB: about twice as long), so a cold boot, and a template build, use this size, and a
 * template's clones, which boot nothing, a smaller one (template.ts).
 */
export const TCG_TB_SIZE_MIB = 64;
/**
 * TCG's code cache of a VM restored from a template, in MiB. A clone boots nothing, but a cache smaller
 * than the guest's working set (the Node agent, runc, the pod) is flushed and refilled over and over.
 * Measured on the 2-core build machine under load (template.test.ts with ATOLL_RUNV_TB_SIZES=8,16,32,64,
 * when QEMU still had huge pages and so paid for all of its cache): a guest exec right after a restore
 * took p50 517, 353, 66 and 84 ms, and each extra clone cost 36, 44, 63 and 61 MiB PSS. Without huge
 * pages a clone pays for what it fills: 20-29 MiB after a restore, a few execs and some idle seconds,
 * at 32 or at 64; this size caps what a busy pod's VM holds.
 */
export const CLONE_TB_SIZE_MIB = 32;
/** How long a cold boot may take to the agent's first answer. TCG boots in seconds; this allows for a loaded host. */
export const BOOT_TIMEOUT_MS = 90_000;
/** The KVM probe: a working KVM boots in well under this; a broken one never answers. */
export const KVM_PROBE_TIMEOUT_MS = 20_000;
/** How long stop() waits for QEMU to quit over QMP before killing it. */
export const QUIT_TIMEOUT_MS = 5_000;
/** How long adopt() waits for an adopted VM's agent to answer. The VM is already running, so this is short. */
export const ADOPT_TIMEOUT_MS = 10_000;
/** How long restore() may take from starting QEMU to the restored agent's answers; no boot, so short. */
export const RESTORE_TIMEOUT_MS = 30_000;
/** How long save() may take to write the device state (tens of KiB: guest RAM is in the shared file). */
export const SAVE_TIMEOUT_MS = 30_000;
/**
 * Bytes of host randomness a restored guest's CRNG is reseeded from: clones of one template must not
 * share a random state. 64 bytes fill the kernel's input pool (256 bits) with room to spare.
 */
const SEED_BYTES = 64;
/**
 * How far behind the host's a restored guest's clock may be left. The clock is set to the host's time
 * as the request leaves, so it ends behind by the request's way to the agent: milliseconds usually,
 * which a loaded host can stretch to hundreds. When the way may have been longer than this, the clock
 * is set again, up to CLOCK_RETRIES times. A lower bound would set it again often on a loaded host,
 * and each setting has the same uncertain way, so no better odds.
 */
export const CLOCK_TOLERANCE_MS = 50;
const CLOCK_RETRIES = 2;
/** QEMU's id of the guest RAM's memory backend; a template and its clones must use the same one. */
const MEMORY_BACKEND_ID = 'ram';
const MIB = 1024 * 1024;
/**
 * How often restore() retries the agent and QMP sockets, which QEMU creates while it starts: a clone
 * is up in a few hundred milliseconds, and each retry is one failed connect().
 */
const SOCKET_RETRY_MS = 5;
/** How often the exit of an adopted QEMU (not our child, so no exit event) is checked. */
const EXIT_POLL_MS = 20;
/**
 * The guest kernel's command line. The TCG additions give the kernel the TSC's rate, which it cannot
 * calibrate under TCG, where it would otherwise hang: the host's rate (tsc.ts), since a TCG guest's
 * TSC is the host's, and a guest told another rate has a clock off by as much. `tsc=reliable` keeps
 * the clocksource watchdog from judging the TSC against jiffies, which a loaded TCG guest loses: it
 * then switched a guest (and, in a template, all its clones) off the TSC, and its clock ran about 30%
 * slow.
 */
const KERNEL_CMDLINE = 'console=ttyS0 quiet panic=-1 edd=off';
function tcgKernelCmdline(tscKhz: number): string {
  return `tsc_early_khz=${tscKhz} tsc=reliable no_timer_check`;
}
/**
 * QEMU's seccomp filter: on top of its default deny list, no obsolete syscalls, no set*uid (so QEMU
 * cannot be started with -runas; an unprivileged QEMU is started as its user instead), no fork or
 * exec, no scheduler or priority changes. Checked under TCG with disk attach and detach.
 */
const SECCOMP_SANDBOX = 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny';

export interface VmOptions {
  /** The VM's own directory; created, and removed by stop(). */
  dir: string;
  kernel: GuestKernel;
  images: GuestImages;
  accel: Accelerator;
  memoryMiB?: number;
  bootTimeoutMs?: number;
  signal?: AbortSignal;
  /** Disk slots for disks attached after boot (disk-slots.ts); DEFAULT_DISK_SLOTS when absent. */
  diskSlots?: DiskSlotCounts;
  /**
   * The pod's network namespace file. QEMU is started inside it (nsenter execs QEMU, so the pid stays
   * QEMU's), since a tap can only be opened from the netns that holds it.
   */
  netns?: string;
  /** A virtio-net NIC on an existing tap in `netns` (see tap.ts's connectTap), with the guest's MAC. */
  nic?: { tap: string; mac: string };
  /** The guest's hostname; see GuestIdentity. */
  hostname?: string;
  /** The pod's network on the NIC (which needs `nic`); see GuestIdentity. */
  network?: GuestNetwork;
  /**
   * A virtio-9p device exporting the host directory `dir` under the mount tag `tag` (passthrough: the
   * guest sees the host's owners and modes). The guest mounts it only when it needs it: a mounted 9p
   * share blocks migration, and so a template save (DESIGN.md).
   */
  share?: { dir: string; tag: string };
  /**
   * QEMU runs in a new network namespace of its own, where nothing is reachable and where the NIC's
   * tap is made just before QEMU starts (it goes away with QEMU and the netns): a template's NIC, a
   * placeholder whose backend each clone replaces with its pod's tap. Excludes `netns`.
   */
  isolatedNetwork?: boolean;
  /**
   * Guest RAM in a file (a memory-backend-file) instead of anonymous memory. `shared`: mapped shared,
   * so the file holds the guest's memory (a template being built, on /dev/shm); otherwise mapped
   * private, copy-on-write over the file's contents (a template's clone).
   */
  memoryFile?: { path: string; shared: boolean };
  /**
   * TCG's code cache in MiB (TCG only); TCG_TB_SIZE_MIB when absent (CLONE_TB_SIZE_MIB for restore()).
   * Not part of a saved VM's state.
   */
  tbSizeMiB?: number;
}

/**
 * A VM saved by save() for restore(): what it booted, its device set, and where its memory and device
 * state are. A clone must have the same devices; only their backends differ (the pod's tap for the
 * NIC, the pod's directory for the share).
 */
export interface SavedVm {
  kernel: GuestKernel;
  images: GuestImages;
  accel: Accelerator;
  memoryMiB: number;
  diskSlots: DiskSlotCounts;
  /** The saved guest's NIC's MAC; null when it has no NIC. A clone has a NIC exactly when this is set. */
  nicMac: string | null;
  /** The mount tag of the saved VM's (never mounted) 9p device; null when it has none. */
  shareTag: string | null;
  /** The guest's RAM, as the shared memory-backend-file left it. */
  memoryFile: string;
  /** The device state, from save(). */
  stateFile: string;
}

/** The pod's network as the guest NIC gets it: NicConfig (agent-protocol.ts) less the MAC, which is the NIC's. */
export type GuestNetwork = Omit<NicConfig, 'mac'>;

/**
 * What a VM's guest is given before boot() or restore() hands the VM over, in one `identity` request
 * (PROTOCOL.md): so a pod's VM is ready, network and all, the moment it is returned, and a clone and a
 * cold boot end in the same state. A clone also gets the host's clock, fresh randomness and its NIC's
 * MAC in that request, whether or not these are set.
 */
export interface GuestIdentity {
  /** The guest's hostname; left as it is (a clone: its template's) when absent. */
  hostname?: string;
  /** The pod's network on the VM's NIC; the NIC stays unconfigured when absent. */
  network?: GuestNetwork;
}

/** A clone's own parts; see VmOptions for each. */
export interface RestoreOptions extends GuestIdentity {
  dir: string;
  netns?: string;
  /** Required exactly when the saved VM has a NIC; the guest NIC is given this MAC. */
  nic?: { tap: string; mac: string };
  /** Required exactly when the saved VM has a share, with the same tag. */
  share?: { dir: string; tag: string };
  tbSizeMiB?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** How long restore() took, in milliseconds from spawning QEMU. */
export interface RestoreTimings {
  /** QEMU is up: its monitor answered (the agent socket is connected by then too). */
  monitorMs: number;
  /** The device state was loaded into the clone. */
  loadedMs: number;
  /** QEMU runs the clone (`cont` answered). */
  resumedMs: number;
  /** The agent's first answer (what bootMs means for a cold boot). */
  firstAnswerMs: number;
  /** The guest has its clock, fresh randomness, MAC, network and hostname: ready for a pod. */
  readyMs: number;
}

/** The QEMU command line for `options`. */
export function qemuArgs(options: VmOptions): string[] {
  const { dir, kernel, images, accel, memoryFile } = options;
  const memoryMiB = options.memoryMiB ?? DEFAULT_MEMORY_MIB;
  return [
    '-M', memoryFile ? `microvm,memory-backend=${MEMORY_BACKEND_ID}` : 'microvm',
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-sandbox', SECCOMP_SANDBOX,
    ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', `tcg,tb-size=${options.tbSizeMiB ?? TCG_TB_SIZE_MIB}`, '-cpu', 'max']),
    '-smp', '1', '-m', String(memoryMiB),
    ...(memoryFile ? ['-object', `memory-backend-file,id=${MEMORY_BACKEND_ID},size=${memoryMiB}M,mem-path=${memoryFile.path},share=${memoryFile.shared ? 'on' : 'off'}`] : []),
    '-kernel', kernel.vmlinux, '-initrd', images.initramfs,
    '-append', accel === 'tcg' ? `${KERNEL_CMDLINE} ${tcgKernelCmdline(hostTscKhz())}` : KERNEL_CMDLINE,
    '-serial', `file:${join(dir, 'console.log')}`,
    '-drive', `if=none,id=agentdisk,file=${images.agentDisk},format=raw,readonly=on`,
    '-device', 'virtio-blk-device,drive=agentdisk',
    '-device', 'virtio-serial-device',
    '-chardev', `socket,id=agent,path=${join(dir, 'agent.sock')},server=on,wait=off`,
    '-device', `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`,
    '-qmp', `unix:${join(dir, 'qmp.sock')},server=on,wait=off`,
    '-pidfile', join(dir, 'qemu.pid'),
    // A restored guest's pool starts as its template's; virtio-rng keeps feeding it host entropy.
    '-object', 'rng-builtin,id=rng', '-device', 'virtio-rng-device,rng=rng',
    ...diskSlotArgs(options.diskSlots ?? DEFAULT_DISK_SLOTS),
    ...(options.nic ? [
      '-netdev', `tap,id=nic0,ifname=${options.nic.tap},script=no,downscript=no,vhost=off`,
      '-device', `virtio-net-device,netdev=nic0,mac=${options.nic.mac}`,
    ] : []),
    ...(options.share ? [
      '-fsdev', `local,id=share0,path=${options.share.dir},security_model=passthrough`,
      '-device', `virtio-9p-device,fsdev=share0,mount_tag=${options.share.tag}`,
    ] : []),
  ];
}

export class MicroVm {
  private stopped = false;
  /** Ends the watch for an adopted QEMU's exit when this object lets go of the VM. */
  private readonly released = new AbortController();
  /** Resolves when QEMU has exited. For an adopted VM, rejects (AbortError) once release() stops the watch. */
  readonly exited: Promise<void>;

  private constructor(
    readonly dir: string,
    readonly pid: number,
    /** QEMU's process when this runtime started it; an adopted VM's QEMU is not our child. */
    private readonly child: ChildProcess | null,
    watchExit: (released: AbortSignal) => Promise<void>,
    readonly agent: AgentClient,
    readonly hello: HelloResult,
    readonly qmp: QmpClient,
    private readonly disks: DiskSlots,
    /** Milliseconds from spawning QEMU to the agent's first answer; null for an adopted VM. */
    readonly bootMs: number | null,
    /** How long the steps of restore() took; null unless this VM was restored. */
    readonly restoreTimings: RestoreTimings | null,
  ) {
    this.exited = watchExit(this.released.signal);
    this.exited.catch(() => undefined);
  }

  /**
   * Boots a VM, waits for its agent's hello and gives the guest its hostname and network when
   * `options` has them (see GuestIdentity). On any failure the VM is killed and its directory removed.
   */
  static async boot(options: VmOptions): Promise<MicroVm> {
    const { dir } = options;
    const qemu = await startQemu(options, []);
    let agent: AgentClient | undefined;
    let qmp: QmpClient | undefined;
    try {
      const timeoutMs = options.bootTimeoutMs ?? BOOT_TIMEOUT_MS;
      const hello = await qemu.unlessExited('boot', (async () => {
        agent = await AgentClient.connect(join(dir, 'agent.sock'), timeoutMs, options.signal);
        const hello = await agent.hello(timeoutMs);
        // QEMU created its monitor socket before the guest ran, so it is there by now.
        qmp = await QmpClient.connect(join(dir, 'qmp.sock'));
        if (options.hostname !== undefined || options.network) await giveIdentity(agent, null, options, timeoutMs);
        return hello;
      })());
      const disks = DiskSlots.empty(qmp!, agent!, options.diskSlots ?? DEFAULT_DISK_SLOTS);
      return new MicroVm(dir, qemu.child.pid!, qemu.child, () => qemu.exited, agent!, hello, qmp!, disks, Date.now() - qemu.began, null);
    } catch (err) {
      agent?.close();
      qmp?.close();
      await qemu.kill();
      throw new Error(`runv VM in ${dir} did not boot (${options.accel}): ${await failureDetail(err, dir)}`);
    }
  }

  /**
   * Starts a clone of `saved` (see template.ts): QEMU with the saved VM's device set, its RAM mapped
   * private (copy-on-write) from the saved memory file, and its device state loaded from the state
   * file. The clone then runs on from where the saved VM was paused, its agent already up. Before this
   * resolves the guest is given what must differ between clones: the host's clock, fresh randomness,
   * the NIC's MAC, and the GuestIdentity in `options`. On any failure the clone is killed and its
   * directory removed.
   *
   * The agent connection is opened before the state is loaded. The template was saved with its host
   * connected, so the guest finds the host still connected and simply reads the next request; a host
   * that connected only after the load would first be announced as gone and then as back, and the
   * agent would notice the return only at its next poll (PROTOCOL.md, Reconnecting).
   */
  static async restore(saved: SavedVm, options: RestoreOptions): Promise<MicroVm> {
    const { dir } = options;
    const mismatch = restoreMismatch(saved, options);
    if (mismatch) throw new Error(`cannot restore into ${dir}: ${mismatch}`);
    // QEMU would create a missing memory file, empty, and the clone would wake with no memory.
    const memory = await stat(saved.memoryFile).catch(() => null);
    if (memory?.size !== saved.memoryMiB * MIB) throw new Error(`cannot restore into ${dir}: the saved VM's memory file ${saved.memoryFile} is ${memory ? `${memory.size} bytes, not ${saved.memoryMiB} MiB` : 'gone'}`);
    const timeoutMs = options.timeoutMs ?? RESTORE_TIMEOUT_MS;
    const qemu = await startQemu({
      dir, kernel: saved.kernel, images: saved.images, accel: saved.accel, memoryMiB: saved.memoryMiB, diskSlots: saved.diskSlots,
      netns: options.netns, nic: options.nic, share: options.share, memoryFile: { path: saved.memoryFile, shared: false }, tbSizeMiB: options.tbSizeMiB ?? CLONE_TB_SIZE_MIB,
    }, ['-incoming', 'defer']);
    const deadline = qemu.began + timeoutMs;
    const left = () => Math.max(deadline - Date.now(), 1);
    let agent: AgentClient | undefined;
    let qmp: QmpClient | undefined;
    try {
      const { hello, timings } = await qemu.unlessExited('restore', (async () => {
        // QEMU makes both sockets early in its start; the monitor answers once QEMU is up.
        const [agentConnected, qmpConnected] = await Promise.allSettled([
          AgentClient.connect(join(dir, 'agent.sock'), timeoutMs, options.signal, SOCKET_RETRY_MS),
          connectQmp(join(dir, 'qmp.sock'), deadline, options.signal),
        ]);
        if (agentConnected.status === 'fulfilled') agent = agentConnected.value;
        if (qmpConnected.status === 'fulfilled') qmp = qmpConnected.value;
        if (agentConnected.status === 'rejected') throw agentConnected.reason;
        if (qmpConnected.status === 'rejected') throw qmpConnected.reason;
        const monitorMs = Date.now() - qemu.began;
        await loadState(qmp!, join(dir, 'incoming.sock'), saved.stateFile, left(), options.signal);
        const loadedMs = Date.now() - qemu.began;
        await qmp!.execute('cont');
        const resumedMs = Date.now() - qemu.began;
        const hello = await agent!.hello(left());
        const firstAnswerMs = Date.now() - qemu.began;
        await giveIdentity(agent!, saved.nicMac, options, left());
        return { hello, timings: { monitorMs, loadedMs, resumedMs, firstAnswerMs, readyMs: Date.now() - qemu.began } };
      })());
      const disks = DiskSlots.empty(qmp!, agent!, saved.diskSlots);
      return new MicroVm(dir, qemu.child.pid!, qemu.child, () => qemu.exited, agent!, hello, qmp!, disks, timings.firstAnswerMs, timings);
    } catch (err) {
      agent?.close();
      qmp?.close();
      await qemu.kill();
      throw new Error(`runv VM in ${dir} was not restored from ${saved.stateFile}: ${await failureDetail(err, dir)}`);
    }
  }

  /**
   * Takes over the running VM in `dir`, which an earlier runtime process booted: checks that the PID
   * in qemu.pid is that VM's QEMU, reconnects to the agent (hello again) and to QMP, and reads back
   * the attached disks. A failure leaves the VM as it was.
   */
  static async adopt(dir: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<MicroVm> {
    const timeoutMs = options.timeoutMs ?? ADOPT_TIMEOUT_MS;
    const pid = await vmPid(dir);
    let agent: AgentClient | undefined;
    let qmp: QmpClient | undefined;
    try {
      agent = await AgentClient.connect(join(dir, 'agent.sock'), timeoutMs, options.signal);
      const hello = await agent.hello(timeoutMs);
      qmp = await QmpClient.connect(join(dir, 'qmp.sock'), timeoutMs);
      const disks = await DiskSlots.recover(qmp, agent);
      // QEMU closes its monitor when it exits; then the PID says when the exit is complete.
      const monitor = qmp;
      const watchExit = (released: AbortSignal) => monitor.closed.then(() => processGone(pid, released));
      return new MicroVm(dir, pid, null, watchExit, agent, hello, qmp, disks, null, null);
    } catch (err) {
      agent?.close();
      qmp?.close();
      throw new Error(`cannot adopt the runv VM in ${dir} (QEMU pid ${pid}): ${(err as Error).message}`);
    }
  }

  /**
   * Kills the VM in `dir` without talking to it, for a VM that cannot be adopted, and removes the
   * directory. A qemu.pid naming a process that is not this VM's QEMU is left alone.
   */
  static async destroy(dir: string): Promise<void> {
    const pid = await vmPid(dir).catch(() => null);
    if (pid !== null) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // It exited between the check and the kill.
      }
      await processGone(pid);
    }
    await rm(dir, { recursive: true, force: true });
  }

  /**
   * Gives the running guest what restore() gives a clone (see giveIdentity below): the host's clock,
   * fresh randomness, the MAC `nic.mac` in place of `currentMac`, and `identity`. For a clone restored
   * ahead of time and given its pod later (pool.ts).
   */
  giveIdentity(currentMac: string | null, identity: GuestIdentity & { nic?: { mac: string } }, timeoutMs = RESTORE_TIMEOUT_MS): Promise<void> {
    return giveIdentity(this.agent, currentMac, identity, timeoutMs);
  }

  /** Attaches a disk file; when this resolves the guest device shows it, ready to mount. See disk-slots.ts. */
  attachDisk(file: string, options: AttachOptions): Promise<AttachedDisk> {
    return this.disks.attach(file, options);
  }

  /** Detaches the disk in `slot`; refused while the guest has it mounted. */
  detachDisk(slot: number): Promise<void> {
    return this.disks.detach(slot);
  }

  attachedDisks(): AttachedDisk[] {
    return this.disks.list();
  }

  /**
   * Pauses the VM and writes its device state to `file` (see migration.ts); returns its size. Guest
   * RAM in a shared memoryFile is left out: the file holds it. The VM stays paused; stop() it then.
   * The agent connection stays open, and the caller must have no agent call in flight: a clone wakes
   * with the host connected (see restore) and must not get answers meant for this host.
   */
  async save(file: string, signal?: AbortSignal): Promise<number> {
    await this.qmp.execute('stop');
    return saveState(this.qmp, join(this.dir, 'migrate.sock'), file, SAVE_TIMEOUT_MS, signal);
  }

  /** Quits QEMU (QMP, then SIGKILL), waits for it to exit and removes the VM directory. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.agent.close();
    if (!(await this.exitedWithin(0))) {
      // The handle is unref'd while the VM runs so it does not hold the runtime open; waiting for the exit must.
      this.child?.ref();
      await this.qmp.execute('quit', undefined, QUIT_TIMEOUT_MS).catch(() => undefined);
      if (!(await this.exitedWithin(QUIT_TIMEOUT_MS))) {
        try {
          process.kill(this.pid, 'SIGKILL');
        } catch {
          // It exited on its own meanwhile.
        }
        await this.exited;
      }
    }
    this.qmp.close();
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Lets go of the VM without stopping it: closes the agent and QMP connections, so that adopt() can take it over. */
  release(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.released.abort();
    this.agent.close();
    this.qmp.close();
  }

  private exitedWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      this.exited.then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(resolve, ms, false))),
    ]).finally(() => clearTimeout(timer));
  }
}

interface StartedQemu {
  child: ChildProcess;
  /** Resolves when QEMU has exited. */
  exited: Promise<void>;
  /** Date.now() when QEMU was spawned. */
  began: number;
  /** `work`'s result, or QEMU's log and console tail if QEMU exits first. */
  unlessExited<T>(what: string, work: Promise<T>): Promise<T>;
  /** Kills QEMU unless it has exited, and waits for the exit. */
  kill(): Promise<void>;
}

/**
 * In a netns of its own, the argv prefix that makes the tap `tap` (as tap.ts makes a pod's) before
 * exec'ing the rest: QEMU could make it itself only with CAP_NET_ADMIN, which it does not keep.
 */
function withOwnTap(tap: string | undefined): string[] {
  return tap === undefined ? [] : ['sh', '-c', 'ip tuntap add dev "$1" mode tap vnet_hdr && shift && exec "$@"', 'sh', tap];
}

/** Spawns QEMU for `options` plus `extraArgs`, in the pod's netns or a netns of its own, in its own process group. */
async function startQemu(options: VmOptions, extraArgs: string[]): Promise<StartedQemu> {
  const { dir } = options;
  if (options.netns && options.isolatedNetwork) throw new Error('a VM runs in the pod netns or in a netns of its own, not both (netns and isolatedNetwork)');
  await mkdir(dir, { recursive: true });
  const log = openSync(join(dir, 'qemu.log'), 'a');
  const began = Date.now();
  let child: ChildProcess;
  try {
    const argv = [QEMU, ...qemuArgs(options), ...extraArgs];
    // nsenter, unshare and perl exec QEMU, so the pid stays QEMU's. The netns is entered first: that
    // needs a capability QEMU then no longer has (qemu-privileges.ts).
    const netns = options.netns ? ['nsenter', `--net=${options.netns}`, '--'] : options.isolatedNetwork ? ['unshare', '--net', '--', ...withOwnTap(options.nic?.tap)] : [];
    const [file, ...args] = [...netns, ...withQemuPrivileges({ hugePages: options.accel !== 'tcg' }), ...argv];
    child = spawn(file!, args, { detached: true, stdio: ['ignore', log, log] });
  } finally {
    closeSync(log);
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', () => undefined);
  child.unref();
  return {
    child, exited, began,
    async unlessExited<T>(what: string, work: Promise<T>): Promise<T> {
      const died = exited.then(async (): Promise<never> => {
        throw new Error(`${QEMU} exited during ${what}: ${await tail(join(dir, 'qemu.log'))}; console: ${await tail(join(dir, 'console.log'))}`);
      });
      // The loser of the race settles later; it must not surface as an unhandled rejection.
      died.catch(() => undefined);
      work.catch(() => undefined);
      return Promise.race([work, died]);
    },
    async kill() {
      // Nothing in a VM that failed to start is worth a clean quit.
      if (child.exitCode === null && child.signalCode === null) {
        child.ref();
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** The error of a failed boot or restore, with the guest console's tail when the agent did not answer; removes `dir`. */
async function failureDetail(err: unknown, dir: string): Promise<string> {
  const detail = err instanceof AgentCallError && err.code === 'Timeout' ? `${err.message}; console: ${await tail(join(dir, 'console.log'))}` : (err as Error).message;
  await rm(dir, { recursive: true, force: true });
  return detail;
}

/** Connects to QMP at `path`, retrying while QEMU, just started, has not created the socket yet. */
async function connectQmp(path: string, deadline: number, signal?: AbortSignal): Promise<QmpClient> {
  for (;;) {
    signal?.throwIfAborted();
    try {
      return await QmpClient.connect(path, Math.max(deadline - Date.now(), 1));
    } catch (err) {
      if (!/ENOENT|ECONNREFUSED/.test((err as Error).message) || Date.now() > deadline) throw err;
    }
    await sleep(SOCKET_RETRY_MS, undefined, { signal });
  }
}

/** Why a clone with `options` cannot be restored from `saved` (its devices would differ), or null. */
function restoreMismatch(saved: SavedVm, options: Pick<RestoreOptions, 'nic' | 'share'>): string | null {
  if (saved.nicMac === null && options.nic) return `the saved VM has no NIC for tap ${options.nic.tap}`;
  if (saved.nicMac !== null && !options.nic) return 'the saved VM has a NIC, so its clone needs one';
  if (saved.shareTag === null && options.share) return `the saved VM has no 9p share for tag ${options.share.tag}`;
  if (saved.shareTag !== null && options.share?.tag !== saved.shareTag) return `the saved VM has a 9p share tagged ${saved.shareTag}, so its clone needs one with that tag`;
  return null;
}

/**
 * Gives a guest, in one agent request, what must differ between clones of one template: the clock, a
 * reseeded CRNG, the NIC's MAC (a clone's NIC wakes with the template's, `savedMac`, which is device
 * state; null: a cold boot, whose NIC has its own) and the GuestIdentity. The time is read as the
 * request leaves, after the agent's first answer: the guest is awake by then, so the request's way to
 * the agent, the clock's error, is short. The round trip less the agent's own time bounds that way; a
 * longer one than CLOCK_TOLERANCE_MS (a loaded host) sets the clock again.
 */
async function giveIdentity(agent: AgentClient, savedMac: string | null, options: GuestIdentity & { nic?: { mac: string } }, timeoutMs: number): Promise<void> {
  const from = savedMac?.toLowerCase();
  const to = options.nic?.mac.toLowerCase();
  if (options.network && !to) throw new Error('a VM without a NIC cannot be given a network');
  let sent = Date.now();
  const { agentMs } = await agent.call('identity', {
    seed: randomBytes(SEED_BYTES).toString('base64'),
    ...(options.hostname !== undefined ? { hostname: options.hostname } : {}),
    ...(from && to && from !== to ? { mac: { from, to } } : {}),
    ...(options.network ? { network: { ...options.network, mac: to! } } : {}),
    epochMs: sent,
  }, timeoutMs);
  let behindAtMost = Date.now() - sent - agentMs;
  for (let retry = 0; behindAtMost > CLOCK_TOLERANCE_MS && retry < CLOCK_RETRIES; retry++) {
    sent = Date.now();
    const answer = await agent.call('setTime', { epochMs: sent }, timeoutMs);
    behindAtMost = Date.now() - sent - answer.agentMs;
  }
}

/** The PID of the VM in `dir`, checked to be that VM's QEMU: its command line names the VM's pid file. */
async function vmPid(dir: string): Promise<number> {
  if (!isAbsolute(dir)) throw new Error(`VM directory must be an absolute path, got '${dir}'`);
  const pidFile = join(dir, 'qemu.pid');
  const text = await readFile(pidFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new Error(`no running VM in ${dir}: cannot read ${pidFile}: ${err.code ?? err.message}`);
  });
  if (!/^\d+\s*$/.test(text)) throw new Error(`${pidFile} does not hold a PID: '${text.slice(0, 40)}'`);
  const pid = Number(text);
  // A zombie's command line is empty: it has exited as much as a running VM is concerned.
  const argv = await readFile(`/proc/${pid}/cmdline`, 'utf8').then((cmdline) => (cmdline ? cmdline.split('\0') : null), () => null);
  if (!argv) throw new Error(`the VM in ${dir} is not running: QEMU pid ${pid} from ${pidFile} is gone`);
  const pidFileArg = argv.indexOf('-pidfile');
  if (!basename(argv[0] ?? '').startsWith('qemu-system') || pidFileArg < 0 || argv[pidFileArg + 1] !== pidFile) {
    throw new Error(`pid ${pid} from ${pidFile} is not this VM's QEMU (its command line is '${argv.slice(0, 3).join(' ')} ...')`);
  }
  return pid;
}

/** Resolves once `pid` has exited (it is gone, or a zombie left for its parent to reap). */
async function processGone(pid: number, signal?: AbortSignal): Promise<void> {
  for (;;) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
    // The state follows the parenthesised command name, which may itself contain spaces.
    if (stat === null || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return;
    await sleep(EXIT_POLL_MS, undefined, { signal });
  }
}

async function tail(path: string): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-15).join(' | ') || '(empty)';
}

export interface AcceleratorChoice { accel: Accelerator; reason: string; kernel: string; hostRelease: string }

/**
 * Chooses KVM only when a real boot under KVM reaches the agent: /dev/kvm can exist while KVM cannot
 * boot a stock kernel. The answer is cached in `<root>/runv/accel.json` per guest kernel and host kernel.
 */
export async function chooseAccelerator(root: string, kernel: GuestKernel, images: GuestImages, signal?: AbortSignal): Promise<AcceleratorChoice> {
  const cacheFile = join(root, 'runv', 'accel.json');
  const hostRelease = release();
  const cached = await readFile(cacheFile, 'utf8').then((text) => JSON.parse(text) as AcceleratorChoice, () => null);
  if (cached && cached.kernel === kernel.version && cached.hostRelease === hostRelease && (cached.accel === 'kvm' || cached.accel === 'tcg')) return cached;

  let choice: AcceleratorChoice;
  if (!existsSync('/dev/kvm')) {
    choice = { accel: 'tcg', reason: '/dev/kvm is absent', kernel: kernel.version, hostRelease };
  } else {
    try {
      const vm = await MicroVm.boot({ dir: join(root, 'runv', 'probe-kvm'), kernel, images, accel: 'kvm', bootTimeoutMs: KVM_PROBE_TIMEOUT_MS, signal });
      await vm.stop();
      choice = { accel: 'kvm', reason: `a KVM boot reached the agent in ${vm.bootMs} ms`, kernel: kernel.version, hostRelease };
    } catch (err) {
      choice = { accel: 'tcg', reason: `a KVM test boot failed: ${(err as Error).message}`, kernel: kernel.version, hostRelease };
    }
  }
  await mkdir(join(root, 'runv'), { recursive: true });
  await writeFile(`${cacheFile}.tmp`, JSON.stringify(choice, null, 2));
  await rename(`${cacheFile}.tmp`, cacheFile);
  return choice;
}
