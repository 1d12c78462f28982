import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { deleteLink, ip } from '../network/ip.js';
import { createNamespaces, removeNamespaces, unmountNamespaceDirs } from '../sandbox/namespaces.js';
import { releaseShareDir } from './container-mounts.js';
import { DEFAULT_DISK_SLOTS } from './disk-slots.js';
import type { GuestImages } from './guest-image.js';
import type { GuestKernel } from './guest-kernel.js';
import { SHARE_TAG } from './pod-vm.js';
import { MAX_POOL_SIZE } from './pool-size.js';
import { type TemplateCache, type TemplateShape, type VmTemplate } from './template.js';
import { MicroVm, type Accelerator } from './vm.js';

/**
 * How long the refill waits after a failed restore before it tries again: a template that cannot be
 * restored must not keep a 2-core host busy with QEMU starts.
 */
export const REFILL_RETRY_MS = 30_000;
/** The id of the pool's namespaces under `<runv dir>/pool` (sandbox/namespaces.ts). */
const POOL_NAMESPACES_ID = 'pool';
const POOL_HOSTNAME = 'runv-pool';
/** Pool VMs' directories and shares are named `pool-<id>`; their taps `rvp<id>` (at most IFNAMSIZ). */
const POOL_NAME_PREFIX = 'pool-';
const POOL_TAP_PREFIX = 'rvp';
const POOL_ID_BYTES = 4;

/** A restored VM waiting for a pod: its NIC on a tap in the pool's netns, its share on its own directory. */
export interface PooledVm {
  vm: MicroVm;
  vmDir: string;
  shareDir: string;
  /** The tap in the pool's netns until handOver() moves it into the pod's. */
  tap: string;
  /** The MAC the guest NIC has (the template's); the pod's replaces it (MicroVm.giveIdentity). */
  nicMac: string | null;
  /** The template it was restored from. */
  key: string;
}

export interface VmPoolOptions {
  /** How many VMs to keep ready, 0..MAX_POOL_SIZE (0: none, until resize()). */
  size: number;
  /** The runv directory (`<root>/runv`): VMs go under `vm/`, shares under `shares/`, the pool's netns under `pool/`. */
  dir: string;
  templates: TemplateCache;
  kernel: GuestKernel;
  images: GuestImages;
  accel: Accelerator;
  /** The memory of the VMs the pool keeps: the default pod's (sandbox-memory.ts). */
  memoryMiB: number;
  log: (line: string) => void;
}

/**
 * A warm pool of pod VMs (Kata's "VM cache"): clones of the default pod shape's template, restored
 * ahead of time and left idle, so that a pod's start skips QEMU's start and the state load.
 *
 * Each idle VM runs in a network namespace the pool owns (`<runv dir>/pool/netns/pool`), where nothing
 * is reachable, with its NIC on a tap of its own there, no network and a placeholder hostname. A pod
 * takes one: take(), then handOver() moves the tap into the pod's netns under the pod's tap name (one
 * `ip` command; QEMU keeps its open tap), and the handler gives the guest the pod's identity.
 *
 * Lifecycle:
 *
 *   const pool = new VmPool({ size: 1, ... });
 *   pool.start();                                  // fills in the background, one restore at a time
 *   const pooled = pool.take();                    // a ready VM or undefined
 *   await pool.handOver(pooled, podNetns, tap);    // the VM is the pod's now
 *   pool.replenish();                              // once the pod's start is over: refills
 *   await pool.close();                            // stops the idle VMs, removes the netns
 *
 * Idle VMs belong to no sandbox record: after a crash, the handler's removeOrphans destroys them, and
 * removeLeftovers() the netns. A template whose key changed (rebuilt) drains the pool at the next refill.
 */
export class VmPool {
  private readonly idle: PooledVm[] = [];
  private readonly closing = new AbortController();
  private refilling: Promise<void> | undefined;
  private netns: Promise<string> | undefined;
  private key: string | undefined;
  private readonly shape: TemplateShape;
  private size: number;
  /** Set by start(): before it, the leftovers of an earlier run may still be being removed. */
  private started = false;
  /** The VM and share directories of the idle VMs and of the one being restored. */
  private readonly dirs = new Set<string>();

  constructor(private readonly options: VmPoolOptions) {
    this.size = checkSize(options.size);
    // A pod's VM as the handler starts it: default disk slots, a NIC, the share.
    this.shape = {
      kernel: options.kernel, images: options.images, accel: options.accel, memoryMiB: options.memoryMiB,
      diskSlots: DEFAULT_DISK_SLOTS, nic: true, shareTag: SHARE_TAG,
    };
  }

  get memoryMiB(): number {
    return this.options.memoryMiB;
  }

  /** Whether `dir` (a VM or share directory) is an idle VM's, or one being restored: not an orphan. */
  owns(dir: string): boolean {
    return this.dirs.has(dir);
  }

  /** Whether start() was called: the pool's netns and VMs are this process's, not leftovers. */
  get isStarted(): boolean {
    return this.started;
  }

  /** Keeps `size` VMs ready from now on: stops the idle VMs beyond it, or refills up to it. */
  async resize(size: number): Promise<void> {
    const shrinking = checkSize(size) < this.size;
    this.size = size;
    // A restore in flight when the pool shrinks is stopped when it ends, not kept.
    if (shrinking) await this.refilling;
    const extra = this.idle.splice(size);
    for (const pooled of extra) await this.discard(pooled);
    this.refill();
  }

  /** Begins filling the pool; a no-op once started. */
  start(): void {
    this.started = true;
    this.refill();
  }

  /**
   * A ready VM, taken out of the pool, or undefined when none is ready. Call replenish() once the pod's
   * start is over: a restore running beside it would take the CPU the start needs.
   */
  take(): PooledVm | undefined {
    const pooled = this.idle.shift();
    if (pooled) this.disown(pooled);
    return pooled;
  }

  /** Refills the pool in the background, after a take(). */
  replenish(): void {
    this.refill();
  }

  /** Moves the VM's tap into the pod's netns, renamed `tap`, in one step; QEMU keeps using it. */
  async handOver(pooled: PooledVm, podNetns: string, tap: string): Promise<void> {
    await ip(['link', 'set', 'dev', pooled.tap, 'netns', podNetns, 'name', tap], await this.netns!, 'tap devices');
  }

  /** Stops a taken VM that no pod got (its start failed): the VM, its tap if still in the pool's netns, its share. */
  async discard(pooled: PooledVm): Promise<void> {
    this.disown(pooled);
    await pooled.vm.stop();
    if (this.netns) await deleteLink(pooled.tap, await this.netns).catch(() => undefined);
    await releaseShareDir(pooled.shareDir);
  }

  private disown(pooled: PooledVm): void {
    this.dirs.delete(pooled.vmDir);
    this.dirs.delete(pooled.shareDir);
  }

  /** Resolves once the pool holds `size` ready VMs; rejects when `signal` aborts or the pool closes first. */
  async full(signal?: AbortSignal): Promise<void> {
    while (this.idle.length < this.size) {
      signal?.throwIfAborted();
      if (!this.refilling) throw new Error('runv pool: not filling: closed, or not started (the handler starts it in adopt())');
      let onAbort = (): void => undefined;
      const abort = new Promise<never>((_resolve, reject) => {
        onAbort = () => reject(signal!.reason);
        signal?.addEventListener('abort', onAbort, { once: true });
      });
      abort.catch(() => undefined);
      await Promise.race([this.refilling, abort]).finally(() => signal?.removeEventListener('abort', onAbort));
    }
  }

  /** Stops the refill and the idle VMs and removes the pool's netns. Taken VMs are the handler's. */
  async close(): Promise<void> {
    this.closing.abort();
    await this.refilling;
    await this.drain();
    if (this.netns) await removeLeftovers(this.options.dir);
  }

  private refill(): void {
    if (!this.started || this.refilling || this.closing.signal.aborted) return;
    this.refilling = this.fill().finally(() => {
      this.refilling = undefined;
      // A take() between the fill's last check and here found the refill still running.
      if (this.idle.length < this.size) this.refill();
    });
  }

  /** Restores VMs one at a time (a refill must not crowd a 2-core host's pods) until the pool is full or closes. */
  private async fill(): Promise<void> {
    const { signal } = this.closing;
    while (!signal.aborted && this.idle.length < this.size) {
      try {
        const { template } = await this.options.templates.ensure(this.shape, {
          signal, onProgress: (step) => this.options.log(`runv pool: building a template: ${step}`),
        });
        if (template.key !== this.key) {
          await this.drain();
          this.key = template.key;
        }
        const pooled = await this.restore(template, signal);
        if (signal.aborted || this.idle.length >= this.size) {
          await this.discard(pooled);
          continue;
        }
        this.idle.push(pooled);
        void pooled.vm.exited.then(() => this.forget(pooled), () => undefined);
      } catch (err) {
        if (signal.aborted) return;
        this.options.log(`runv pool: restoring an idle VM failed, trying again in ${REFILL_RETRY_MS} ms: ${(err as Error).message}`);
        await sleep(REFILL_RETRY_MS, undefined, { signal }).catch(() => undefined);
      }
    }
  }

  private async restore(template: VmTemplate, signal: AbortSignal): Promise<PooledVm> {
    const netns = await (this.netns ??= this.makeNetns());
    const id = randomBytes(POOL_ID_BYTES).toString('hex');
    const vmDir = join(this.options.dir, 'vm', `${POOL_NAME_PREFIX}${id}`);
    const shareDir = join(this.options.dir, 'shares', `${POOL_NAME_PREFIX}${id}`);
    const tap = `${POOL_TAP_PREFIX}${id}`;
    this.dirs.add(vmDir).add(shareDir);
    try {
      await mkdir(shareDir, { recursive: true, mode: 0o700 });
      // QEMU, without CAP_NET_ADMIN, can open a tap that exists and has no owner, as tap.ts makes a pod's.
      await ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap', 'vnet_hdr'], netns, 'tap devices');
      const vm = await MicroVm.restore(template, {
        dir: vmDir, netns, nic: { tap, mac: template.nicMac! }, share: { dir: shareDir, tag: SHARE_TAG }, hostname: POOL_HOSTNAME, signal,
      });
      return { vm, vmDir, shareDir, tap, nicMac: template.nicMac, key: template.key };
    } catch (err) {
      this.dirs.delete(vmDir);
      this.dirs.delete(shareDir);
      await deleteLink(tap, netns).catch(() => undefined);
      await releaseShareDir(shareDir);
      throw err;
    }
  }

  /** An idle VM whose QEMU exited: out of the pool, its tap and share removed, and a refill. */
  private async forget(pooled: PooledVm): Promise<void> {
    const at = this.idle.indexOf(pooled);
    if (at < 0) return;
    this.idle.splice(at, 1);
    if (!this.closing.signal.aborted) this.options.log(`runv pool: the idle VM in ${pooled.vmDir} exited on its own`);
    await this.discard(pooled).catch((err: Error) => this.options.log(`runv pool: removing an exited idle VM: ${err.message}`));
    this.refill();
  }

  private async drain(): Promise<void> {
    for (const pooled of this.idle.splice(0)) {
      await this.discard(pooled).catch((err: Error) => this.options.log(`runv pool: stopping the idle VM in ${pooled.vmDir}: ${err.message}`));
    }
  }

  /** The pool's netns: a fresh one, in place of anything a crashed runtime left. */
  private async makeNetns(): Promise<string> {
    await removeLeftovers(this.options.dir);
    const runDir = poolRunDir(this.options.dir);
    return (await createNamespaces(runDir, POOL_NAMESPACES_ID, { hostname: POOL_HOSTNAME, loopback: false })).net;
  }
}

function checkSize(size: number): number {
  if (!Number.isInteger(size) || size < 0 || size > MAX_POOL_SIZE) throw new Error(`runv: the pool size must be a whole number from 0 to ${MAX_POOL_SIZE}, got ${size}`);
  return size;
}

/**
 * Removes the pool's namespaces and their directory under the runv directory `dir`, as a pool's close()
 * or a crashed runtime left them. The netns itself ends with the last QEMU in it (a pod's VM taken
 * from the pool keeps it, holding no device there). Idempotent.
 */
export async function removeLeftovers(dir: string): Promise<void> {
  const runDir = poolRunDir(dir);
  await removeNamespaces(runDir, POOL_NAMESPACES_ID);
  await unmountNamespaceDirs(runDir);
  await rm(runDir, { recursive: true, force: true });
}

function poolRunDir(dir: string): string {
  return join(dir, 'pool');
}
