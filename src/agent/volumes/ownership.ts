// The pod's fsGroup applied to a volume (pkg/volume/volume_linux.go SetVolumeOwnership, policy Always).
import { chmod, lchown, lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

const READ_WRITE_MASK = 0o660;
const READ_ONLY_MASK = 0o440;
const EXEC_MASK = 0o110;
const SETGID = 0o2000;

/**
 * Gives group `fsGroup` everything under `dir` (and `dir` itself): each entry's group becomes it,
 * files gain group read (and write, unless `readOnly`), directories also gain setgid and search so
 * new files inherit the group. Symlinks change group only.
 */
export async function applyFsGroup(dir: string, fsGroup: number, readOnly: boolean): Promise<void> {
  const mask = readOnly ? READ_ONLY_MASK : READ_WRITE_MASK;
  const entries = ['', ...(await readdir(dir, { recursive: true }))];
  for (const entry of entries) {
    const path = join(dir, entry);
    const st = await lstat(path);
    await lchown(path, -1, fsGroup);
    if (st.isSymbolicLink()) continue;
    const bits = st.isDirectory() ? mask | SETGID | EXEC_MASK : mask;
    await chmod(path, (st.mode & 0o7777) | bits);
  }
}
