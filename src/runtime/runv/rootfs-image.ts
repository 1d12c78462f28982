import { randomBytes } from 'node:crypto';
import { link, lstat, mkdir, mkdtemp, opendir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { runTool } from './command.js';
import type { ProgressOptions } from './guest-kernel.js';
import { fsyncPath } from '../../apiserver/auth/atomic-file.js';

/**
 * A runv container's root filesystem is a block device, never a 9p share (the lesson: keep
 * 9p off the data path). Two layers:
 *
 *   image disk       one ext4 image per image, built from the unpacked tree with `mkfs.ext4 -d` and
 *                    cached by chain ID at `<root>/runv/rootfs/<hex>.v<layout>.ext4`. Never written
 *                    after it appears: every container layer that names it as backing relies on that.
 *   container layer  one qcow2 per container whose backing file is the image disk; the container's
 *                    writes land here, and removing the container removes the file.
 *
 * Image disks appear atomically: they are built in a temp directory beside the target and published
 * with link(2), which never replaces an existing disk (a second builder, in this process or another,
 * loses the race and uses the winner's disk). A crash leaves at most a `.build-*` directory, which
 * `removeInterruptedBuilds` clears when the runtime starts.
 */

/** Bumped when the layout below changes, so an old disk is never used as if it had the new one. */
const IMAGE_DISK_LAYOUT = 1;
/**
 * Free space each image disk gets beyond its files: the room a container has for writes to its
 * rootfs. The disk is sparse, so the host pays only for what containers write.
 */
export const IMAGE_DISK_FREE_BYTES = 1024 * 1024 * 1024;
/** Free inodes beyond the tree's entries, for the files containers create. */
export const IMAGE_DISK_FREE_INODES = 65_536;
const BLOCK_BYTES = 4096;
/** What ext4's own metadata (bitmaps, group descriptors, directories' growth) may take beyond the data and inode tables. */
const METADATA_SLACK_BYTES = 32 * 1024 * 1024;
const INODE_BYTES = 256;
/** The longest symlink target ext4 keeps inside the inode; a longer one takes a block. */
const FAST_SYMLINK_MAX = 59;
const CHAIN_ID = /^sha256:([a-f0-9]{64})$/;

const building = new Map<string, Promise<string>>();

/** Where the image disk for `chainId` lives (whether or not it exists yet). */
export function imageDiskPath(root: string, chainId: string): string {
  const hex = CHAIN_ID.exec(chainId)?.[1];
  if (!hex) throw new Error(`invalid image chain ID '${chainId}': expected sha256:<64 lowercase hex digits>`);
  return join(root, 'runv', 'rootfs', `${hex}.v${IMAGE_DISK_LAYOUT}.ext4`);
}

/**
 * Returns the image disk for `chainId`, building it from `fromDir` (the image's unpacked, merged
 * tree) when it does not exist yet. Concurrent callers for the same chain ID share one build.
 */
export async function ensureImageDisk(root: string, chainId: string, fromDir: string, options: ProgressOptions = {}): Promise<string> {
  const target = imageDiskPath(root, chainId);
  let build = building.get(target);
  if (!build) {
    build = buildImageDisk(target, chainId, fromDir, options).finally(() => building.delete(target));
    building.set(target, build);
  }
  return build;
}

async function buildImageDisk(target: string, chainId: string, fromDir: string, options: ProgressOptions): Promise<string> {
  if (await exists(target)) return target;
  if (!isAbsolute(fromDir)) throw new Error(`image tree for ${chainId} must be an absolute path, got '${fromDir}'`);
  const from = await stat(fromDir).catch(() => null);
  if (!from?.isDirectory()) throw new Error(`image tree for ${chainId} is not a directory: ${fromDir}`);

  await mkdir(dirname(target), { recursive: true });
  const work = await mkdtemp(join(dirname(target), '.build-'));
  try {
    const tree = await measureTree(fromDir, options.signal);
    const bytes = roundUp(tree.bytes + (tree.entries + IMAGE_DISK_FREE_INODES) * INODE_BYTES + METADATA_SLACK_BYTES + IMAGE_DISK_FREE_BYTES, BLOCK_BYTES);
    options.onProgress?.(`runv: building the rootfs disk for ${chainId} (${tree.entries} entries, ${Math.round(tree.bytes / 1024 / 1024)} MiB)`);
    const image = join(work, basename(target));
    // No journal: a container layer lives and dies with its pod, so there is nothing to replay, and
    // a journal would add writes to every layer. Inode tables are zeroed here, once per image, so
    // the guest's ext4 does not zero them lazily into every container's layer. -m 0: the free space
    // above is all the container's.
    await runTool('mkfs.ext4', [
      '-q', '-F', '-b', String(BLOCK_BYTES), '-I', String(INODE_BYTES), '-m', '0', '-O', '^has_journal',
      '-N', String(tree.entries + IMAGE_DISK_FREE_INODES), '-E', 'lazy_itable_init=0,root_owner=0:0',
      '-d', fromDir, image, `${bytes / 1024}k`,
    ], { signal: options.signal });
    await fsyncPath(image);
    try {
      await link(image, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    await fsyncPath(dirname(target));
    return target;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The space a tree takes on ext4 with 4 KiB blocks: file data rounded to blocks, plus one block per directory and long symlink. */
async function measureTree(dir: string, signal?: AbortSignal): Promise<{ bytes: number; entries: number }> {
  let bytes = BLOCK_BYTES;
  let entries = 1;
  const pending = [dir];
  while (pending.length > 0) {
    signal?.throwIfAborted();
    const current = pending.pop()!;
    for await (const entry of await opendir(current)) {
      const path = join(current, entry.name);
      const info = await lstat(path);
      entries++;
      if (info.isDirectory()) {
        bytes += BLOCK_BYTES;
        pending.push(path);
      } else if (info.isFile()) {
        bytes += roundUp(info.size, BLOCK_BYTES);
      } else if (info.isSymbolicLink() && info.size > FAST_SYMLINK_MAX) {
        bytes += BLOCK_BYTES;
      }
    }
  }
  return { bytes, entries };
}

/** Removes the image disk for `chainId`. The caller makes sure no container layer still uses it. */
export async function removeImageDisk(root: string, chainId: string): Promise<void> {
  await rm(imageDiskPath(root, chainId), { force: true });
}

/** Clears what interrupted builds left behind. Call it only while no build runs (at runtime start). */
export async function removeInterruptedBuilds(root: string): Promise<void> {
  const dir = join(root, 'runv', 'rootfs');
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const name of names) if (name.startsWith('.build-')) await rm(join(dir, name), { recursive: true, force: true });
}

/**
 * Creates the container layer at `path`: a qcow2 whose backing file is the image disk `base`, of the
 * same virtual size. It appears by rename, so a crash never leaves a half-written layer at `path`.
 */
export async function createContainerLayer(base: string, path: string, signal?: AbortSignal): Promise<void> {
  if (!isAbsolute(base) || !isAbsolute(path)) throw new Error(`container layer paths must be absolute: base '${base}', layer '${path}'`);
  if (!(await exists(base))) throw new Error(`the image disk ${base} for container layer ${path} does not exist`);
  if (await exists(path)) throw new Error(`container layer ${path} already exists`);
  await mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await runTool('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', base, temp], { signal });
    await fsyncPath(temp);
    await rename(temp, path);
    await fsyncPath(dirname(path));
  } finally {
    await rm(temp, { force: true });
  }
}

export async function removeContainerLayer(path: string): Promise<void> {
  await rm(path, { force: true });
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
