// hostPath volumes' `type` checks (pkg/volume/hostpath/host_path.go checkType).
import type { Stats } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import type { HostPathSource } from './types.js';

/** The kubelet's FileType names, which its mismatch messages print. */
type FileType = 'Directory' | 'File' | 'Socket' | 'CharDevice' | 'BlockDevice';

const EXPECTED: Record<string, { type: FileType; description: string; create?: 'dir' | 'file' }> = {
  DirectoryOrCreate: { type: 'Directory', description: 'directory', create: 'dir' },
  Directory: { type: 'Directory', description: 'directory' },
  FileOrCreate: { type: 'File', description: 'file', create: 'file' },
  File: { type: 'File', description: 'file' },
  Socket: { type: 'Socket', description: 'socket file' },
  CharDevice: { type: 'CharDevice', description: 'character device' },
  BlockDevice: { type: 'BlockDevice', description: 'block device' },
};

/** The hostPath does not have the type the volume asks for, or cannot be created. */
export class HostPathError extends Error {
  override readonly name = 'HostPathError';
}

async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch {
    return undefined;
  }
}

function fileType(st: Stats): FileType | undefined {
  if (st.isDirectory()) return 'Directory';
  if (st.isFile()) return 'File';
  if (st.isSocket()) return 'Socket';
  if (st.isCharacterDevice()) return 'CharDevice';
  if (st.isBlockDevice()) return 'BlockDevice';
  return undefined;
}

/**
 * Checks (and for the `...OrCreate` types, creates) a hostPath volume's path. An unset or empty
 * type checks nothing. Like the kubelet, a `FileOrCreate` file's parent directory must exist.
 */
export async function checkHostPath(src: HostPathSource): Promise<void> {
  if (src.path.split('/').includes('..')) throw new HostPathError(`invalid HostPath \`${src.path}\`: must not contain '..'`);
  if (!src.type) return;
  const expected = EXPECTED[src.type];
  if (!expected) throw new HostPathError(`${src.type} is an invalid volume type`);
  let st = await statOrUndefined(src.path);
  if (!st && expected.create) {
    try {
      if (expected.create === 'dir') await mkdir(src.path, { recursive: true, mode: 0o755 });
      else await (await open(src.path, 'a', 0o644)).close();
    } catch (err) {
      throw new HostPathError(`hostPath ${src.path} could not be created: ${(err as Error).message}`);
    }
    return;
  }
  if (!st) throw new HostPathError(`hostPath ${src.path} doesn't exist`);
  const actual = fileType(st);
  if (!actual) {
    throw new HostPathError(
      `hostPath type check failed, ${src.path} is not a ${expected.description}, unable to determine its type: only recognise file, directory, socket, block device and character device`,
    );
  }
  if (actual !== expected.type) throw new HostPathError(`hostPath type check failed: ${src.path} is not a ${expected.description}, it's a ${actual}`);
}
