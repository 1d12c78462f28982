import { join } from 'node:path';
import { AgentCallError } from './agent-client.js';
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
 * restored from a template). The VM it returns answers its agent and has exactly the devices `options`
 * asks for; the caller gives it its identity (network, hostname) afterwards.
 */
export type StartVm = (options: VmOptions) => Promise<MicroVm>;

/**
 * A pod sandbox's VM as the handler holds it: the record, the VM, and which pod-level guest mounts
 * exist. The 9p share and the shared-memory tmpfs are mounted in the guest only when a container first
 * needs them: a VM whose share was never mounted can still be saved as a template.
 */
export class PodVm {
  private share: Promise<void> | undefined;
  private shm: Promise<void> | undefined;
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
}

/** Mounts in the guest; a target already mounted (by this VM's earlier runtime process) is fine. */
async function mountOnce(pod: PodVm, args: { source: string; fstype: string; options: string[]; target: string }): Promise<void> {
  try {
    await pod.agent.call('mount', args);
  } catch (err) {
    if (!(err instanceof AgentCallError && err.code === 'AlreadyExists')) throw err;
  }
}
