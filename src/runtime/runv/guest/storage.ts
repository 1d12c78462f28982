import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { MAX_PAYLOAD_BYTES, type MountResult, type UmountResult } from '../agent-protocol.js';
import { run } from './processes.js';
import { AgentError, absolutePath, base64, optionalBoolean, optionalInteger, optionalString, string, stringArray } from './validate.js';

const SYS_BLOCK = '/sys/block';
const FSTYPE = /^[a-z0-9_.]+$/;
/** A mount option may not smuggle a second option list or a path component into mount(8)'s argv. */
const MOUNT_OPTION = /^[A-Za-z0-9_.=:/@+-]+$/;

/** The /dev path of the virtio disk whose serial (QEMU's `serial=`) is `serial`. */
export async function diskBySerial(serial: string): Promise<string> {
  for (const name of await readdir(SYS_BLOCK)) {
    const value = await readFile(`${SYS_BLOCK}/${name}/serial`, 'utf8').catch(() => undefined);
    if (value?.trim() === serial) return `/dev/${name}`;
  }
  throw new AgentError('NotFound', `no disk with serial ${JSON.stringify(serial)} under ${SYS_BLOCK}`);
}

/** Whether `target` is a mount point, from /proc/self/mountinfo (field 5; spaces are escaped as \040). */
async function isMountPoint(target: string): Promise<boolean> {
  const escaped = target.replace(/ /g, '\\040');
  return (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((line) => line.split(' ')[4] === escaped);
}

/**
 * Mounts a disk (by serial or path), a 9p share or a memory filesystem on `target`, making the
 * directory. A block device's page cache is flushed first: the host may have swapped the disk's
 * backend under the running guest (a template's placeholder disk), and stale cached blocks of the
 * old backend must not be read as the new filesystem's.
 */
export async function mount(args: Record<string, unknown>): Promise<MountResult> {
  const target = absolutePath(args.target, 'target');
  const fstype = string(args.fstype, 'fstype');
  if (!FSTYPE.test(fstype)) throw new AgentError('BadRequest', `'fstype' must match ${FSTYPE}, got ${JSON.stringify(fstype)}`);
  const options = args.options === undefined ? [] : stringArray(args.options, 'options');
  for (const option of options) if (!MOUNT_OPTION.test(option)) throw new AgentError('BadRequest', `'options[]' entries must match ${MOUNT_OPTION}, got ${JSON.stringify(option)}`);
  const serial = optionalString(args.serial, 'serial');
  const source = optionalString(args.source, 'source');
  if ((serial === undefined) === (source === undefined)) throw new AgentError('BadRequest', "exactly one of 'source' and 'serial' must be given");
  const device = serial !== undefined ? await diskBySerial(serial) : source!.startsWith('/dev/') ? source! : null;
  if (device !== null && !existsSync(device)) throw new AgentError('NotFound', `no block device ${device}`);
  if (await isMountPoint(target)) throw new AgentError('AlreadyExists', `${target} is already a mount point`);
  await mkdir(target, { recursive: true });
  if (device !== null) await run(['blockdev', '--flushbufs', device]);
  await run(['mount', '-t', fstype, ...(options.length > 0 ? ['-o', options.join(',')] : []), device ?? source!, target]);
  return { device };
}

export async function umount(args: Record<string, unknown>): Promise<UmountResult> {
  const target = absolutePath(args.target, 'target');
  const lazy = optionalBoolean(args.lazy, 'lazy') ?? false;
  if (!(await isMountPoint(target))) return { wasMounted: false };
  await run(['umount', ...(lazy ? ['-l'] : []), target]);
  return { wasMounted: true };
}

/** Writes a guest file so that a reader sees the old content or the new, never a mix. */
export async function writeFile(args: Record<string, unknown>): Promise<Record<string, never>> {
  const path = absolutePath(args.path, 'path');
  const data = base64(args.data, 'data', MAX_PAYLOAD_BYTES);
  const mode = optionalInteger(args.mode, 'mode', 0, 0o7777) ?? 0o644;
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temporary, 'w', mode);
  try {
    await handle.writeFile(data);
    await handle.chmod(mode);
  } catch (err) {
    await handle.close();
    await rm(temporary, { force: true });
    throw err;
  }
  await handle.close();
  await rename(temporary, path);
  return {};
}
