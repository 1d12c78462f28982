// What the CRI service persists: one JSON file per sandbox and per container, written atomically and
// validated when read back. The handler keeps its own per-container runtime record; these hold the CRI
// metadata (configs as received) that the handler does not know about.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContainerConfig__Output, PodSandboxConfig__Output } from '../cri/index.js';
import type { NetworkAttachment } from '../network/index.js';

export type SandboxState = 'ready' | 'notready';

export interface SandboxRecord {
  id: string;
  /** The RunPodSandbox config as received. */
  config: PodSandboxConfig__Output;
  runtimeHandler: string;
  /** Nanoseconds since the epoch, as a decimal string (beyond Number's exact range). */
  createdAt: string;
  state: SandboxState;
  /** Whether the pod uses the node's network namespace (no Network attachment, no own netns). */
  hostNetwork: boolean;
  /** The network attachment made at RunPodSandbox; dropped at StopPodSandbox. */
  network?: NetworkAttachment;
  /** hostname, hosts and resolv.conf bound into every container. */
  files: { hostname: string; hosts: string; resolvConf: string };
}

export interface ContainerRecord {
  id: string;
  sandboxId: string;
  /** The CreateContainer config as received. */
  config: ContainerConfig__Output;
  /** The image as the request named it, and the id (config digest) it resolved to. */
  image: string;
  imageId: string;
  /** A repo digest of the image when it has one, else its id (CRI `image_ref`). */
  imageRef: string;
  runtimeHandler: string;
  /** The container's writable snapshot and where it is mounted. */
  snapshotKey: string;
  rootfs: string;
  logPath: string;
  createdAt: string;
}

export class RecordError extends Error {
  override name = 'RecordError';
}

const ID = /^[0-9a-f]{64}$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNanos(v: unknown): v is string {
  return typeof v === 'string' && /^\d{1,25}$/.test(v);
}

export function validateSandboxRecord(value: unknown, file: string): SandboxRecord {
  const v = value as Partial<SandboxRecord>;
  const ok =
    isObject(v) &&
    typeof v.id === 'string' && ID.test(v.id) &&
    isObject(v.config) && isObject(v.config.metadata) &&
    typeof v.runtimeHandler === 'string' &&
    isNanos(v.createdAt) &&
    (v.state === 'ready' || v.state === 'notready') &&
    typeof v.hostNetwork === 'boolean' &&
    (v.network === undefined || (isObject(v.network) && Array.isArray(v.network.ips))) &&
    isObject(v.files) && typeof v.files.hosts === 'string' && typeof v.files.resolvConf === 'string' && typeof v.files.hostname === 'string';
  if (!ok) throw new RecordError(`sandbox record ${file} is malformed`);
  return v as SandboxRecord;
}

export function validateContainerRecord(value: unknown, file: string): ContainerRecord {
  const v = value as Partial<ContainerRecord>;
  const ok =
    isObject(v) &&
    typeof v.id === 'string' && ID.test(v.id) &&
    typeof v.sandboxId === 'string' && ID.test(v.sandboxId) &&
    isObject(v.config) && isObject(v.config.metadata) &&
    typeof v.image === 'string' && typeof v.imageId === 'string' && typeof v.imageRef === 'string' &&
    typeof v.runtimeHandler === 'string' &&
    typeof v.snapshotKey === 'string' && typeof v.rootfs === 'string' && typeof v.logPath === 'string' &&
    isNanos(v.createdAt);
  if (!ok) throw new RecordError(`container record ${file} is malformed`);
  return v as ContainerRecord;
}

/** A directory of `<id>.json` records of one kind. */
export class RecordDir<T extends { id: string }> {
  constructor(
    readonly dir: string,
    private readonly validate: (value: unknown, file: string) => T,
  ) {}

  private path(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  /** Write-then-rename with fsync: a crash leaves the old record or the new one. */
  async write(record: T): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const target = this.path(record.id);
    const temporary = `${target}.${randomBytes(4).toString('hex')}.tmp`;
    const handle = await open(temporary, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(record));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, target);
  }

  async remove(id: string): Promise<void> {
    await rm(this.path(id), { force: true });
  }

  /** Every valid record; malformed files and leftover temporaries are reported through `warn` and skipped. */
  async readAll(warn: (message: string) => void): Promise<T[]> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const records: T[] = [];
    for (const name of (await readdir(this.dir)).sort()) {
      const file = join(this.dir, name);
      if (name.endsWith('.tmp')) {
        await rm(file, { force: true });
        continue;
      }
      if (!name.endsWith('.json')) continue;
      try {
        const record = this.validate(JSON.parse(await readFile(file, 'utf8')), file);
        if (`${record.id}.json` !== name) throw new RecordError(`record ${file} holds id ${record.id}`);
        records.push(record);
      } catch (err) {
        warn(`skipping ${file}: ${(err as Error).message}`);
      }
    }
    return records;
  }
}
