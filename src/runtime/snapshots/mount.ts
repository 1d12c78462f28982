import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import { CommandError, run } from './command.js';
import type { Mount } from './snapshotter.js';

/**
 * The kernel copies mount(2)'s option string into one page. 4096 is the smallest page size Linux
 * runs with, so staying under it is safe on every architecture.
 */
export const MOUNT_OPTIONS_LIMIT = 4096;

/** Mounting or unmounting failed; the message names the target and what mount(8) said. */
export class MountError extends Error {
  constructor(readonly target: string, message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'MountError';
  }
}

/**
 * Mounts `mounts` in order on `target` (an existing directory), as containerd's `mount.All` does.
 * Uses mount(8) without a shell. If one fails, the ones already stacked on `target` are unmounted.
 *
 * An overlay whose option string would pass the page limit (a long parent chain) is mounted with
 * its lowerdirs made relative to their longest common directory, with mount(8) started in that
 * directory: overlayfs resolves lowerdirs once, at mount time, against the caller's working
 * directory. This is containerd's trick, and it keeps `Mount` itself absolute and portable.
 */
export async function mountAll(mounts: readonly Mount[], target: string): Promise<void> {
  const where = resolve(target);
  try {
    for (const m of mounts) await mountOne(m, where);
  } catch (err) {
    await unmount(where).catch(() => undefined);
    throw err;
  }
}

async function mountOne(m: Mount, target: string): Promise<void> {
  let options = m.options;
  let cwd: string | undefined;
  if (m.type === 'overlay' && options.join(',').length >= MOUNT_OPTIONS_LIMIT) {
    ({ options, cwd } = compactLowerdirs(options));
    const length = options.join(',').length;
    if (length >= MOUNT_OPTIONS_LIMIT) {
      throw new MountError(
        target,
        `mount overlay on ${target}: options are ${length} bytes even with relative lowerdirs; ` +
          `the kernel accepts fewer than ${MOUNT_OPTIONS_LIMIT} (flatten the parent chain)`,
      );
    }
  }
  // mount(8) wants binds as `-o bind`, not as a filesystem type.
  const args = m.type === 'bind' || m.type === 'rbind' ? [] : ['-t', m.type];
  if (options.length > 0) args.push('-o', options.join(','));
  args.push(m.source, target);
  try {
    await run('mount', args, { cwd });
  } catch (err) {
    const said = err instanceof CommandError ? err.stderr.trim() || err.message : String(err);
    throw new MountError(target, `mount ${m.type} ${m.source} on ${target}: ${said}`, err);
  }
}

/** Rewrites the lowerdir option relative to the lowerdirs' common directory, which becomes the cwd. */
function compactLowerdirs(options: readonly string[]): { options: string[]; cwd: string | undefined } {
  const lower = options.find((o) => o.startsWith('lowerdir='));
  if (!lower) return { options: [...options], cwd: undefined };
  const dirs = lower.slice('lowerdir='.length).split(':');
  if (!dirs.every(isAbsolute)) return { options: [...options], cwd: undefined };
  let common = dirname(dirs[0]!);
  while (!dirs.every((d) => d.startsWith(common === sep ? sep : common + sep))) common = dirname(common);
  const relativeLower = 'lowerdir=' + dirs.map((d) => relative(common, d)).join(':');
  return { options: options.map((o) => (o === lower ? relativeLower : o)), cwd: common };
}

/**
 * Unmounts everything stacked on `target` (mountAll may have stacked several), and succeeds when
 * nothing is mounted there, so cleanup code can call it unconditionally.
 */
export async function unmount(target: string): Promise<void> {
  const where = resolve(target);
  while (await isMountPoint(where)) {
    try {
      await run('umount', [where]);
    } catch (err) {
      if (!(await isMountPoint(where))) return;
      const said = err instanceof CommandError ? err.stderr.trim() || err.message : String(err);
      throw new MountError(where, `umount ${where}: ${said}`, err);
    }
  }
}

/** Whether something is mounted exactly on `path`, per this process's mount table. */
export async function isMountPoint(path: string): Promise<boolean> {
  const where = resolve(path);
  const table = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of table.split('\n')) {
    const mountPoint = line.split(' ')[4];
    if (mountPoint !== undefined && unescapeMountinfo(mountPoint) === where) return true;
  }
  return false;
}

/** mountinfo writes space, tab, newline and backslash as three-digit octal escapes. */
function unescapeMountinfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
