import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { RuntimeError } from '../handler.js';
import { AgentCallError } from './agent-client.js';
import type { MountArgs } from './agent-protocol.js';
import { DiskSlotError } from './disk-slots.js';
import { EMPTY_DIR_DISK_FILE, createEmptyDirDisk, type EmptyDirBacking } from './empty-dir.js';
import type { SandboxRecord } from './records.js';
import type { MicroVm, VmOptions } from './vm.js';

/** Where the handler keeps its guest-side paths (the agent's own state is under /run/atoll). */
export const GUEST_DIR = '/run/runv';
/** The 9p mount tag of the sandbox's share. */
export const SHARE_TAG = 'atoll-share';
/** The guest's mount point of the share. */
export const GUEST_SHARE = join(GUEST_DIR, 'share');
/** The pod's shared memory, a guest tmpfs bound over every container's /dev/shm that asks for the pod's. */
export const GUEST_SHM = join(GUEST_DIR, 'shm');
/** Where the pod's emptyDir volumes are mounted in the guest, one directory each by name. */
export const GUEST_EMPTY_DIRS = join(GUEST_DIR, 'empty-dir');
/** Mounting a disk flushes its cached blocks and reads its superblock: seconds under TCG on a loaded host. */
const DISK_MOUNT_TIMEOUT_MS = 60_000;
/** The pod's /dev/shm size, as runc's default /dev/shm tmpfs. */
const SHM_SIZE = 'size=65536k';
/**
 * 9p options: the Linux dialect, no guest cache (the host side of configMap and secret volumes changes
 * in place, and the guest must see it at once), and 256 KiB messages.
 */
const SHARE_OPTIONS = ['trans=virtio', 'version=9p2000.L', 'cache=none', 'msize=262144'];

export interface VmExit { at: number; message: string }

/**
 * How a pod's VM is obtained: a cold boot (MicroVm.boot) unless something faster is plugged in (a VM
 * restored from a template). The VM it returns answers its agent, has exactly the devices `options`
 * asks for, and its guest has the hostname and network `options` names (vm.ts GuestIdentity).
 */
export type StartVm = (options: VmOptions) => Promise<MicroVm>;

/**
 * A pod sandbox's VM as the handler holds it: the record, the VM, and which pod-level guest mounts
 * exist. The 9p share, the shared-memory tmpfs and each emptyDir are mounted in the guest only when a
 * container first needs them: a VM whose share was never mounted can still be saved as a template.
 * They stay until the VM stops, so they outlive the containers that use them. After a runtime restart
 * the guest still has them mounted and each emptyDir's disk attached (DiskSlots reads attachments back
 * from QEMU): setting one up again finds it done.
 */
export class PodVm {
  private share: Promise<void> | undefined;
  private shm: Promise<void> | undefined;
  private readonly emptyDirs = new Map<string, Promise<void>>();
  /** Set while stopSandbox stops the VM, so that its exit is not taken for a crash. */
  stopping = false;
  /** Set once the VM ended on its own: when, and what its console said last. */
  exit: Promise<VmExit> | undefined;

  constructor(readonly record: SandboxRecord, readonly vm: MicroVm, readonly shareDir: string) {}

  get agent() {
    return this.vm.agent;
  }

  /** Mounts the 9p share in the guest, once; returns its guest path. */
  async ensureShare(): Promise<string> {
    this.share ??= mountOnce(this, { source: SHARE_TAG, fstype: '9p', options: SHARE_OPTIONS, target: GUEST_SHARE });
    this.share.catch(() => (this.share = undefined));
    await this.share;
    return GUEST_SHARE;
  }

  /** Mounts the pod's shared-memory tmpfs in the guest, once; returns its guest path. */
  async ensureShm(): Promise<string> {
    this.shm ??= mountOnce(this, { source: 'tmpfs', fstype: 'tmpfs', options: ['nosuid', 'nodev', 'noexec', 'mode=1777', SHM_SIZE], target: GUEST_SHM });
    this.shm.catch(() => (this.shm = undefined));
    await this.shm;
    return GUEST_SHM;
  }

  /**
   * Sets up the pod's emptyDir `name` in the guest, once, and returns its guest path: a tmpfs, or the
   * ext4 disk at `diskFile` (made if missing, attached if detached) mounted there. A pod has one
   * sandbox and unique volume names, so the name is the volume.
   */
  async ensureEmptyDir(name: string, backing: EmptyDirBacking, diskFile: string): Promise<string> {
    let ready = this.emptyDirs.get(name);
    if (!ready) {
      ready = this.setUpEmptyDir(name, backing, diskFile);
      this.emptyDirs.set(name, ready);
      ready.catch(() => {
        if (this.emptyDirs.get(name) === ready) this.emptyDirs.delete(name);
      });
    }
    await ready;
    return guestEmptyDir(name);
  }

  private async setUpEmptyDir(name: string, backing: EmptyDirBacking, diskFile: string): Promise<void> {
    const target = guestEmptyDir(name);
    const owner = [`mode=${backing.mode.toString(8)}`, `uid=${backing.uid}`, `gid=${backing.gid}`];
    if (backing.medium === 'memory') {
      await mountOnce(this, { source: 'tmpfs', fstype: 'tmpfs', options: [`size=${backing.sizeBytes}`, ...owner], target });
      return;
    }
    let disk = this.vm.attachedDisks().find((d) => d.file === diskFile);
    if (!disk) {
      if (!existsSync(diskFile)) await createEmptyDirDisk(diskFile, backing);
      try {
        disk = await this.vm.attachDisk(diskFile, { format: 'raw' });
      } catch (err) {
        if (!(err instanceof DiskSlotError && err.code === 'NoFreeSlot')) throw err;
        const writable = this.vm.attachedDisks().filter((d) => !d.readonly);
        const emptyDirs = writable.filter((d) => basename(d.file) === EMPTY_DIR_DISK_FILE).length;
        throw new RuntimeError('Internal',
          `runv sandbox ${this.record.id}: no free writable disk slot for emptyDir volume "${name}": all ${writable.length} are taken ` +
          `(${writable.length - emptyDirs} by container rootfs layers, ${emptyDirs} by emptyDir disks); a runv pod needs one per container ` +
          'and one per emptyDir that is not medium: Memory');
      }
    }
    await mountOnce(this, { serial: disk.serial, fstype: 'ext4', target }, DISK_MOUNT_TIMEOUT_MS);
  }
}

/** The guest mount point of the pod's emptyDir `name`. */
export function guestEmptyDir(name: string): string {
  return join(GUEST_EMPTY_DIRS, name);
}

/** Mounts in the guest; a target already mounted (by this VM's earlier runtime process) is fine. */
async function mountOnce(pod: PodVm, args: MountArgs, timeoutMs?: number): Promise<void> {
  try {
    await pod.agent.call('mount', args, timeoutMs);
  } catch (err) {
    if (!(err instanceof AgentCallError && err.code === 'AlreadyExists')) throw err;
  }
}
