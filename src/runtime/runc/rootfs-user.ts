import { readFileSync, realpathSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { ContainerSpec } from '../handler.js';
import { resolveUser, type ResolvedUser } from './spec.js';

/**
 * The container process's user as resolveUser() works it out, names looked up in the /etc/passwd and
 * /etc/group of the container's rootfs (`spec.rootfs`, as the host sees it).
 */
export function rootfsUser(spec: ContainerSpec): ResolvedUser {
  return resolveUser(spec, rootfsFile(spec.rootfs, '/etc/passwd'), rootfsFile(spec.rootfs, '/etc/group'));
}

/** A file of the rootfs, refusing symlinks that lead out of it; undefined when missing. */
function rootfsFile(rootfs: string, path: string): string | undefined {
  try {
    const root = realpathSync(rootfs);
    const resolved = realpathSync(join(rootfs, path));
    if (relative(root, resolved).startsWith('..')) return undefined;
    return readFileSync(resolved, 'utf8');
  } catch {
    return undefined;
  }
}
