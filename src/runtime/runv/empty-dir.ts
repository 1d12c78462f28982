import { randomBytes } from 'node:crypto';
import { mkdir, open, realpath, rename, rm, stat, statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { RuntimeError } from '../handler.js';
import { isMountPoint } from '../snapshots/mount.js';
import { runTool } from './command.js';
import { fsyncPath } from '../../apiserver/auth/atomic-file.js';

/**
 * A pod's emptyDir volumes in a runv VM. CRI hands the runtime only host paths, so an emptyDir is
 * recognised by where the kubelet (and Atoll's agent, src/agent/volumes) keeps it:
 * `<pods>/<uid>/volumes/kubernetes.io~empty-dir/<name>`, the test Kata Containers uses too. Its data
 * then never touches that host directory:
 *
 *   an emptyDir on disk        gets a sparse ext4 disk of its own (EMPTY_DIR_DISK_BYTES), attached to
 *                              one of the VM's writable disk slots and mounted once per pod in the
 *                              guest; every container that mounts the volume binds that mount. The
 *                              disk is a file in the volume's host directory (EMPTY_DIR_DISK_FILE), so
 *                              it lives exactly as long as the volume: across container restarts and a
 *                              new sandbox of the pod (a node reboot), as a runc pod's emptyDir does,
 *                              and it goes when the kubelet removes the pod's volumes. The kubelet's
 *                              usage figures count its allocated blocks, which is what the pod wrote.
 *   `medium: Memory`           the host directory is a tmpfs: the guest gets a tmpfs of the same size
 *                              instead, and the host one stays empty.
 *
 * The volume's root keeps the host directory's mode and owner (0777, or the pod's fsGroup with setgid),
 * as a container would see it under runc.
 */

/** The kubelet's plugin directory of emptyDir volumes. */
export const EMPTY_DIR_PLUGIN = 'kubernetes.io~empty-dir';
/** The disk's file name in the volume's host directory. */
export const EMPTY_DIR_DISK_FILE = '.atoll-runv-disk.ext4';
/**
 * Every emptyDir disk's size. CRI carries neither the pod's ephemeral-storage limit nor the volume's
 * sizeLimit (the kubelet enforces both by measuring), so the runtime cannot size a disk from them.
 * The file is sparse: the host pays for what the pod writes plus about 4 MiB of ext4 metadata.
 */
export const EMPTY_DIR_DISK_BYTES = 10 * 1024 ** 3;
const BLOCK_BYTES = 4096;
/** statfs(2)'s f_type of a tmpfs. */
const TMPFS_MAGIC = 0x01021994;
/** A volume name as the API accepts it (a DNS-1123 label); it names a file and a guest directory here. */
const VOLUME_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const S_IFDIR = 0o040000;

/** A mount source inside a pod's emptyDir: the volume, its host directory, and the path below it ('' for the root). */
export interface EmptyDirRef {
  name: string;
  hostDir: string;
  subPath: string;
}

/** Mode and owner of a volume's root directory. */
export interface VolumeRoot {
  mode: number;
  uid: number;
  gid: number;
}

/** What backs an emptyDir in the guest. */
export type EmptyDirBacking = ({ medium: 'disk' } | { medium: 'memory'; sizeBytes: number }) & VolumeRoot;

/**
 * The emptyDir that `source` (an absolute host path) lies in, or undefined when it lies in none. The
 * first `volumes/kubernetes.io~empty-dir/<name>` in the path counts: what follows is a subPath, which
 * a container may name freely.
 */
export function emptyDirOf(source: string, what: string): EmptyDirRef | undefined {
  const parts = source.split('/');
  const at = parts.findIndex((part, i) => part === EMPTY_DIR_PLUGIN && i >= 2 && parts[i - 1] === 'volumes');
  const name = parts[at + 1];
  if (at < 0 || name === undefined || name === '') return undefined;
  if (!VOLUME_NAME.test(name)) throw new RuntimeError('InvalidArgument', `${what}: mount source ${source} is in an emptyDir whose name ${JSON.stringify(name)} is not a DNS-1123 label`);
  const below = parts.slice(at + 2).filter((part) => part !== '');
  if (below.some((part) => part === '.' || part === '..')) throw new RuntimeError('InvalidArgument', `${what}: mount source ${source} has '.' or '..' below its emptyDir`);
  return { name, hostDir: parts.slice(0, at + 2).join('/'), subPath: below.join('/') };
}

/** How the emptyDir at `hostDir` is backed in the guest: a tmpfs when the host directory is a tmpfs mount, a disk otherwise. */
export async function emptyDirBacking(hostDir: string, what: string): Promise<EmptyDirBacking> {
  const info = await stat(hostDir).catch(() => null);
  if (!info?.isDirectory()) throw new RuntimeError('InvalidArgument', `${what}: emptyDir ${hostDir} is ${info ? 'not a directory' : 'missing'}; the kubelet sets it up before creating containers`);
  const root = { mode: info.mode & 0o7777, uid: info.uid, gid: info.gid };
  const real = await realpath(hostDir);
  if (await isMountPoint(real)) {
    const fs = await statfs(real);
    if (fs.type === TMPFS_MAGIC) return { medium: 'memory', sizeBytes: fs.blocks * fs.bsize, ...root };
  }
  return { medium: 'disk', ...root };
}

/**
 * Makes an emptyDir disk at `file`: EMPTY_DIR_DISK_BYTES, sparse, ext4 with `root` as its root
 * directory's mode and owner. It appears by rename, so `file` is either absent or a whole disk.
 *
 * With a journal: the disk outlives its VM, which may die in the middle of a write (a node losing
 * power). Inode tables are zeroed here, where zeroing a sparse file costs nothing, not lazily by the
 * guest, whose zeroes would land in the file; the journal is left unzeroed, which a new sparse file
 * already reads as. -m 0: no blocks are kept back for root.
 */
export async function createEmptyDirDisk(file: string, root: VolumeRoot, signal?: AbortSignal): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      await handle.truncate(EMPTY_DIR_DISK_BYTES);
    } finally {
      await handle.close();
    }
    await runTool('mkfs.ext4', [
      '-q', '-F', '-b', String(BLOCK_BYTES), '-m', '0',
      '-E', `lazy_itable_init=0,lazy_journal_init=1,root_owner=${root.uid}:${root.gid}`, temp,
    ], { signal });
    // mkfs.ext4 has no option for the root's mode (and -d does not copy it), and an emptyDir starts
    // empty, without lost+found (e2fsck makes one again if it ever needs it). debugfs exits 0 even when
    // a request fails, so the result is read back.
    const requests = `set_inode_field / mode 0${(S_IFDIR | root.mode).toString(8)}\nrmdir lost+found\n`;
    await runTool('debugfs', ['-w', '-f', '-', temp], { signal, input: Buffer.from(requests) });
    const shown = await runTool('debugfs', ['-R', 'stat /', temp], { signal });
    const mode = /Mode:\s+0*([0-7]+)/.exec(shown)?.[1];
    const links = /Links:\s+(\d+)/.exec(shown)?.[1];
    if (mode === undefined || parseInt(mode, 8) !== root.mode || links !== '2') {
      throw new Error(`debugfs did not set up the root of ${temp} (mode ${root.mode.toString(8)}, no lost+found); it shows: ${shown.trim()}`);
    }
    await fsyncPath(temp);
    await rename(temp, file);
    await fsyncPath(dirname(file));
  } finally {
    await rm(temp, { force: true });
  }
}
