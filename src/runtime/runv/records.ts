// What the runv handler persists under `<root>/runv`: one record per pod sandbox (its VM) and one per
// container, written with write-then-rename and fsync (service/records.ts's RecordDir), and checked when
// read back after a restart.
import type { ContainerState } from '../handler.js';
import { RecordError } from '../service/records.js';

/** Container and sandbox ids, as the runc handler accepts them. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export interface SandboxRecord {
  id: string;
  /**
   * 'starting' from before the tap and the VM exist until the guest has its network: a crash in between
   * leaves a record that adopt() undoes. 'running' after that.
   */
  phase: 'starting' | 'running';
  hostname: string;
  /** The pod's network namespace file; QEMU runs in it. */
  netns: string;
  /** The pod's interface in the netns, which the tap is joined to (tap.ts). */
  veth: string;
  memoryMiB: number;
  /** The VM's directory (vm.ts): sockets, pid file, console log. */
  vmDir: string;
  /**
   * The host directory of the VM's 9p share; absent in records from before pooled VMs (pool.ts), whose
   * share is `<runv dir>/shares/<id>`.
   */
  shareDir?: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /** Set once the VM was found gone without being stopped: its containers are reported exited with this. */
  vmExit?: { at: number; message: string };
}

export interface BlockIo { readBytes: number; writeBytes: number; readOps: number; writeOps: number }

export interface ContainerRecord {
  id: string;
  name: string;
  sandboxId: string;
  /** 'creating' until the guest holds the container: a crash before that leaves leftovers adopt() removes. */
  phase: 'creating' | 'created';
  /** Milliseconds since the epoch. */
  createdAt: number;
  logPath: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** The container's qcow2 layer over its image disk. */
  layer: string;
  /** The chain ID of an image disk built for this container alone (its spec had none), removed with it. */
  ownImageDisk?: string;
  /** File mounts the container may write (its termination log): copied back to the host file when it exits. */
  copyBack: { guest: string; host: string }[];
  /** The counters of the layer's guest disk when it was attached: a slot's device outlives its containers. */
  blockBaseline?: BlockIo;
  /** The final state, once the container exited or its VM went. */
  final?: ContainerState;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringMap = (v: unknown): boolean => isObject(v) && Object.values(v).every((x) => typeof x === 'string');
const isId = (v: unknown): v is string => typeof v === 'string' && ID_PATTERN.test(v);

export function validateSandboxRecord(value: unknown, file: string): SandboxRecord {
  const v = value as Partial<SandboxRecord>;
  const ok =
    isObject(v) && isId(v.id) &&
    (v.phase === 'starting' || v.phase === 'running') &&
    typeof v.hostname === 'string' && typeof v.netns === 'string' && typeof v.veth === 'string' &&
    Number.isSafeInteger(v.memoryMiB) && typeof v.vmDir === 'string' && typeof v.createdAt === 'number' &&
    (v.shareDir === undefined || typeof v.shareDir === 'string') &&
    (v.vmExit === undefined || (isObject(v.vmExit) && typeof v.vmExit.message === 'string' && typeof v.vmExit.at === 'number'));
  if (!ok) throw new RecordError(`runv sandbox record ${file} is malformed`);
  return v as SandboxRecord;
}

export function validateContainerRecord(value: unknown, file: string): ContainerRecord {
  const v = value as Partial<ContainerRecord>;
  const ok =
    isObject(v) && isId(v.id) && isId(v.sandboxId) && typeof v.name === 'string' &&
    (v.phase === 'creating' || v.phase === 'created') &&
    typeof v.createdAt === 'number' && typeof v.logPath === 'string' && typeof v.layer === 'string' &&
    isStringMap(v.labels) && isStringMap(v.annotations) &&
    (v.ownImageDisk === undefined || typeof v.ownImageDisk === 'string') &&
    Array.isArray(v.copyBack) && v.copyBack.every((c) => isObject(c) && typeof c.guest === 'string' && typeof c.host === 'string') &&
    (v.final === undefined || (isObject(v.final) && v.final.status === 'exited' && typeof v.final.createdAt === 'number'));
  if (!ok) throw new RecordError(`runv container record ${file} is malformed`);
  return v as ContainerRecord;
}
