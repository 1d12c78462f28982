import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { release } from 'node:os';
import { basename, isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentCallError, AgentClient } from './agent-client.js';
import { AGENT_PORT_NAME, type HelloResult } from './agent-protocol.js';
import { DEFAULT_DISK_SLOTS, DiskSlots, diskSlotArgs, type AttachOptions, type AttachedDisk, type DiskSlotCounts } from './disk-slots.js';
import type { GuestImages } from './guest-image.js';
import type { GuestKernel } from './guest-kernel.js';
import { QmpClient } from './qmp.js';

/**
 * One QEMU microVM: the guest kernel and initramfs, the agent disk read-only on virtio-blk, and the
 * agent's virtio-serial port served as a unix socket. Everything the VM owns lives in its directory:
 *
 *   agent.sock   the agent channel (QEMU listens, the host connects; reconnecting is allowed)
 *   qmp.sock     QEMU's monitor: disk attach and detach (disk-slots.ts), and a clean quit
 *   console.log  the guest's serial console (a file, so the boot log survives with nobody reading)
 *   qemu.log     QEMU's own stdout and stderr
 *   qemu.pid     written by QEMU
 *
 * Lifecycle: boot() starts QEMU and waits for the agent's hello, or adopt() takes over a VM that a
 * previous runtime process started; then the VM runs, disks come and go (attachDisk, detachDisk);
 * stop() ends it, or release() lets go of it without stopping it, for a later adopt().
 *
 * QEMU runs in its own process group so that it outlives the runtime process: a runtime killed with
 * SIGKILL leaves its VMs running, and the next runtime adopts them from their directories. stop()
 * quits QEMU over QMP, kills it by PID if that does not work in time, and removes the directory.
 */

export const QEMU = 'qemu-system-x86_64';
export type Accelerator = 'kvm' | 'tcg';
export const DEFAULT_MEMORY_MIB = 256;
/** TCG's translated-code cache. It dominates a TCG guest's host memory (DESIGN.md), so it is kept small. */
export const TCG_TB_SIZE_MIB = 64;
/** How long a cold boot may take to the agent's first answer. TCG boots in seconds; this allows for a loaded host. */
export const BOOT_TIMEOUT_MS = 90_000;
/** The KVM probe: a working KVM boots in well under this; a broken one never answers. */
export const KVM_PROBE_TIMEOUT_MS = 20_000;
/** How long stop() waits for QEMU to quit over QMP before killing it. */
export const QUIT_TIMEOUT_MS = 5_000;
/** How long adopt() waits for an adopted VM's agent to answer. The VM is already running, so this is short. */
export const ADOPT_TIMEOUT_MS = 10_000;
/** How often the exit of an adopted QEMU (not our child, so no exit event) is checked. */
const EXIT_POLL_MS = 20;
/** The guest kernel's command line. The TCG additions give the kernel a TSC frequency, which it cannot calibrate under TCG, where it would otherwise hang. */
const KERNEL_CMDLINE = 'console=ttyS0 quiet panic=-1 edd=off';
const TCG_KERNEL_CMDLINE = 'tsc_early_khz=2000000 no_timer_check';
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
}

/** The QEMU command line for `options`. */
export function qemuArgs(options: VmOptions): string[] {
  const { dir, kernel, images, accel } = options;
  return [
    '-M', 'microvm', '-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-sandbox', SECCOMP_SANDBOX,
    ...(accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', `tcg,tb-size=${TCG_TB_SIZE_MIB}`, '-cpu', 'max']),
    '-smp', '1', '-m', String(options.memoryMiB ?? DEFAULT_MEMORY_MIB),
    '-kernel', kernel.vmlinux, '-initrd', images.initramfs,
    '-append', accel === 'tcg' ? `${KERNEL_CMDLINE} ${TCG_KERNEL_CMDLINE}` : KERNEL_CMDLINE,
    '-serial', `file:${join(dir, 'console.log')}`,
    '-drive', `if=none,id=agentdisk,file=${images.agentDisk},format=raw,readonly=on`,
    '-device', 'virtio-blk-device,drive=agentdisk',
    '-device', 'virtio-serial-device',
    '-chardev', `socket,id=agent,path=${join(dir, 'agent.sock')},server=on,wait=off`,
    '-device', `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`,
    '-qmp', `unix:${join(dir, 'qmp.sock')},server=on,wait=off`,
    '-pidfile', join(dir, 'qemu.pid'),
    ...diskSlotArgs(options.diskSlots ?? DEFAULT_DISK_SLOTS),
    ...(options.nic ? [
      '-netdev', `tap,id=nic0,ifname=${options.nic.tap},script=no,downscript=no,vhost=off`,
      '-device', `virtio-net-device,netdev=nic0,mac=${options.nic.mac}`,
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
  ) {
    this.exited = watchExit(this.released.signal);
    this.exited.catch(() => undefined);
  }

  /** Boots a VM and waits for its agent's hello. On any failure the VM is killed and its directory removed. */
  static async boot(options: VmOptions): Promise<MicroVm> {
    const { dir } = options;
    await mkdir(dir, { recursive: true });
    const log = openSync(join(dir, 'qemu.log'), 'a');
    const began = Date.now();
    let child: ChildProcess;
    try {
      const argv = [QEMU, ...qemuArgs(options)];
      const [file, ...args] = options.netns ? ['nsenter', `--net=${options.netns}`, '--', ...argv] : argv;
      child = spawn(file!, args, { detached: true, stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('error', () => undefined);
    child.unref();
    let agent: AgentClient | undefined;
    let qmp: QmpClient | undefined;
    try {
      const timeoutMs = options.bootTimeoutMs ?? BOOT_TIMEOUT_MS;
      const died = exited.then(async () => {
        throw new Error(`${QEMU} exited during boot: ${await tail(join(dir, 'qemu.log'))}; console: ${await tail(join(dir, 'console.log'))}`);
      });
      const ready = (async () => {
        agent = await AgentClient.connect(join(dir, 'agent.sock'), timeoutMs, options.signal);
        const hello = await agent.hello(timeoutMs);
        // QEMU created its monitor socket before the guest ran, so it is there by now.
        qmp = await QmpClient.connect(join(dir, 'qmp.sock'));
        return hello;
      })();
      // The loser of the race settles later; it must not surface as an unhandled rejection.
      died.catch(() => undefined);
      ready.catch(() => undefined);
      const hello = await Promise.race([ready, died]);
      const disks = DiskSlots.empty(qmp!, agent!, options.diskSlots ?? DEFAULT_DISK_SLOTS);
      return new MicroVm(dir, child.pid!, child, () => exited, agent!, hello, qmp!, disks, Date.now() - began);
    } catch (err) {
      agent?.close();
      qmp?.close();
      // Nothing in a VM that failed to boot is worth a clean quit.
      if (child.exitCode === null && child.signalCode === null) {
        child.ref();
        child.kill('SIGKILL');
        await exited;
      }
      const detail = err instanceof AgentCallError && err.code === 'Timeout' ? `${err.message}; console: ${await tail(join(dir, 'console.log'))}` : (err as Error).message;
      await rm(dir, { recursive: true, force: true });
      throw new Error(`runv VM in ${dir} did not boot (${options.accel}): ${detail}`);
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
      return new MicroVm(dir, pid, null, watchExit, agent, hello, qmp, disks, null);
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
