import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { connect } from 'node:net';
import { release } from 'node:os';
import { join } from 'node:path';
import { AgentCallError, AgentClient } from './agent-client.js';
import { AGENT_PORT_NAME, type HelloResult } from './agent-protocol.js';
import type { GuestImages } from './guest-image.js';
import type { GuestKernel } from './guest-kernel.js';

/**
 * One QEMU microVM: the guest kernel and initramfs, the agent disk read-only on virtio-blk, and the
 * agent's virtio-serial port served as a unix socket. Everything the VM owns lives in its directory:
 *
 *   agent.sock   the agent channel (QEMU listens, the host connects; reconnecting is allowed)
 *   qmp.sock     QEMU's monitor, used for a clean quit
 *   console.log  the guest's serial console (a file, so the boot log survives with nobody reading)
 *   qemu.log     QEMU's own stdout and stderr
 *   qemu.pid     written by QEMU
 *
 * QEMU runs in its own process group so that it outlives the runtime process; stop() quits it over
 * QMP, kills it by PID if that does not work in time, and removes the directory.
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
/** The guest kernel's command line. The TCG additions give the kernel a TSC frequency, which it cannot calibrate under TCG, where it would otherwise hang. */
const KERNEL_CMDLINE = 'console=ttyS0 quiet panic=-1 edd=off';
const TCG_KERNEL_CMDLINE = 'tsc_early_khz=2000000 no_timer_check';

export interface VmOptions {
  /** The VM's own directory; created, and removed by stop(). */
  dir: string;
  kernel: GuestKernel;
  images: GuestImages;
  accel: Accelerator;
  memoryMiB?: number;
  bootTimeoutMs?: number;
  signal?: AbortSignal;
}

/** The QEMU command line for `options`. */
export function qemuArgs(options: VmOptions): string[] {
  const { dir, kernel, images, accel } = options;
  return [
    '-M', 'microvm', '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
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
  ];
}

export class MicroVm {
  private stopped = false;

  private constructor(
    readonly dir: string,
    readonly pid: number,
    private readonly child: ChildProcess,
    private readonly exited: Promise<void>,
    readonly agent: AgentClient,
    readonly hello: HelloResult,
    /** Milliseconds from spawning QEMU to the agent's first answer. */
    readonly bootMs: number,
  ) {}

  /** Boots a VM and waits for its agent's hello. On any failure the VM is stopped and its directory removed. */
  static async boot(options: VmOptions): Promise<MicroVm> {
    const { dir } = options;
    await mkdir(dir, { recursive: true });
    const log = openSync(join(dir, 'qemu.log'), 'a');
    const began = Date.now();
    let child: ChildProcess;
    try {
      child = spawn(QEMU, qemuArgs(options), { detached: true, stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('error', () => undefined);
    child.unref();
    let agent: AgentClient | undefined;
    try {
      const timeoutMs = options.bootTimeoutMs ?? BOOT_TIMEOUT_MS;
      const died = exited.then(async () => {
        throw new Error(`${QEMU} exited during boot: ${await tail(join(dir, 'qemu.log'))}; console: ${await tail(join(dir, 'console.log'))}`);
      });
      const ready = (async () => {
        agent = await AgentClient.connect(join(dir, 'agent.sock'), timeoutMs, options.signal);
        return agent.hello(timeoutMs);
      })();
      // The loser of the race settles later; it must not surface as an unhandled rejection.
      died.catch(() => undefined);
      ready.catch(() => undefined);
      const hello = await Promise.race([ready, died]);
      return new MicroVm(dir, child.pid!, child, exited, agent!, hello, Date.now() - began);
    } catch (err) {
      agent?.close();
      await terminate(child, exited, dir);
      const detail = err instanceof AgentCallError && err.code === 'Timeout' ? `${err.message}; console: ${await tail(join(dir, 'console.log'))}` : (err as Error).message;
      await rm(dir, { recursive: true, force: true });
      throw new Error(`runv VM in ${dir} did not boot (${options.accel}): ${detail}`);
    }
  }

  /** Quits QEMU (QMP, then SIGKILL), reaps it and removes the VM directory. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.agent.close();
    await terminate(this.child, this.exited, this.dir);
    await rm(this.dir, { recursive: true, force: true });
  }
}

async function terminate(child: ChildProcess, exited: Promise<void>, dir: string): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  // The handle is unref'd while the VM runs so it does not hold the runtime open; waiting for the exit must.
  child.ref();
  await qmpQuit(join(dir, 'qmp.sock')).catch(() => undefined);
  const quit = await Promise.race([exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(resolve, QUIT_TIMEOUT_MS, false))]);
  if (!quit) {
    try {
      process.kill(child.pid!, 'SIGKILL');
    } catch {
      return;
    }
    await exited;
  }
}

/** Sends QMP's capability handshake and `quit`; QEMU answers the greeting first, then runs them in order. */
function qmpQuit(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.setTimeout(QUIT_TIMEOUT_MS, () => socket.destroy(new Error('QMP timed out')));
    socket.once('connect', () => socket.write('{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n'));
    socket.on('data', () => undefined);
    socket.once('error', reject);
    socket.once('close', () => resolve());
  });
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
