// The kubelet's AtomicWriter (pkg/volume/util/atomic_writer.go): a volume's files change for its
// readers all at once, never half-way.
//
// The files live in a hidden timestamped directory; `..data` is a symlink to it, and each top-level
// name a reader sees is a symlink through `..data`:
//
//   <volume>/..2024_05_01_10_00_00.123456/{key1,dir/key2}
//   <volume>/..data -> ..2024_05_01_10_00_00.123456
//   <volume>/key1   -> ..data/key1
//   <volume>/dir    -> ..data/dir
//
// A write fills a new timestamped directory, then renames a fresh `..data_tmp` symlink over
// `..data`, which swaps every file at once. No fsync: the content is derived again from the API on
// every sync, so only readers' atomicity matters, not surviving a crash.
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Payload } from './types.js';

export const DATA_DIR = '..data';
const NEW_DATA_DIR = '..data_tmp';
const MAX_FILE_NAME_LENGTH = 255;
const MAX_PATH_LENGTH = 4096;
/** A timestamped directory: `..` then Go's "2006_01_02_15_04_05." layout, then a random suffix. */
const TS_DIR = /^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\./;

/** The payload is unusable (a path escaping the volume...); the message is the kubelet's. */
export class PayloadError extends Error {
  override readonly name = 'PayloadError';
}

/** atomic_writer.go validatePath. */
function validatePath(target: string): void {
  if (target === '') throw new PayloadError(`invalid path: must not be empty: ""`);
  if (posix.isAbsolute(target)) throw new PayloadError(`invalid path: must be relative path: ${target}`);
  if (target.length > MAX_PATH_LENGTH) throw new PayloadError(`invalid path: must be less than or equal to ${MAX_PATH_LENGTH} characters`);
  const items = target.split('/');
  for (const item of items) {
    if (item === '..') throw new PayloadError(`invalid path: must not contain '..': ${target}`);
    if (item.length > MAX_FILE_NAME_LENGTH) throw new PayloadError(`invalid path: filenames must be less than or equal to ${MAX_FILE_NAME_LENGTH} characters`);
  }
  if (items[0]!.startsWith('..') && items[0]!.length > 2) throw new PayloadError(`invalid path: must not start with '..': ${target}`);
}

function cleanPayload(payload: Payload): Payload {
  const clean: Payload = new Map();
  for (const [path, file] of payload) {
    validatePath(path);
    clean.set(posix.normalize(path).replace(/\/+$/, ''), file);
  }
  return clean;
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

async function readlinkOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await readlink(path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Every file and directory under `dir`, relative to it. */
async function walk(dir: string): Promise<Set<string>> {
  const paths = new Set<string>();
  for (const entry of await readdir(dir, { recursive: true })) paths.add(entry);
  return paths;
}

async function differs(path: string, data: Buffer): Promise<boolean> {
  try {
    return !data.equals(await readFile(path));
  } catch (err) {
    if (isNotFound(err)) return true;
    throw err;
  }
}

/** The payload's paths and all their parent directories. */
function payloadPaths(payload: Payload): Set<string> {
  const paths = new Set<string>();
  for (const file of payload.keys()) {
    for (let p = file; p !== '.' && p !== ''; p = posix.dirname(p)) paths.add(p);
  }
  return paths;
}

function topLevel(path: string): string {
  const slash = path.indexOf('/');
  return slash === -1 ? path : path.slice(0, slash);
}

async function createUserVisibleLinks(targetDir: string, payload: Payload): Promise<void> {
  for (const name of new Set([...payload.keys()].map(topLevel))) {
    try {
      await lstat(join(targetDir, name));
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await symlink(posix.join(DATA_DIR, name), join(targetDir, name));
    }
  }
}

/** Go's time.Format("..2006_01_02_15_04_05.") in UTC. */
function timestampPrefix(now: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `..${now.getUTCFullYear()}_${p(now.getUTCMonth() + 1)}_${p(now.getUTCDate())}_${p(now.getUTCHours())}_${p(now.getUTCMinutes())}_${p(now.getUTCSeconds())}.`;
}

/**
 * Projects `payload` into `targetDir` (which must exist). Returns false without touching anything
 * when the files already hold this content and no file has to go. `beforeSwap` runs on the new
 * timestamped directory once its files are written (ownership changes); if it or any write fails,
 * the new directory is removed and the volume keeps its previous content.
 */
export async function writeAtomically(targetDir: string, payload: Payload, beforeSwap?: (tsDir: string) => Promise<void>): Promise<boolean> {
  const clean = cleanPayload(payload);
  const dataLink = join(targetDir, DATA_DIR);
  const oldTsDir = await readlinkOrUndefined(dataLink);
  let toRemove = new Set<string>();
  if (oldTsDir !== undefined) {
    const oldPath = join(targetDir, oldTsDir);
    const wanted = payloadPaths(clean);
    toRemove = new Set([...(await walk(oldPath))].filter((p) => !wanted.has(p)));
    let changed = false;
    for (const [path, file] of clean) {
      if (await differs(join(oldPath, path), file.data)) {
        changed = true;
        break;
      }
    }
    if (!changed && toRemove.size === 0) {
      // The data is current, but a crash may have come between the swap and the links.
      await createUserVisibleLinks(targetDir, clean);
      return false;
    }
  }

  const tsDir = await mkdtemp(join(targetDir, timestampPrefix(new Date())));
  const tsName = posix.basename(tsDir);
  try {
    // Group and others must be able to traverse it, whatever the umask.
    await chmod(tsDir, 0o755);
    for (const [path, file] of clean) {
      const full = join(tsDir, path);
      await mkdir(posix.dirname(full), { recursive: true, mode: 0o755 });
      await writeFile(full, file.data, { mode: file.mode });
      // writeFile's mode passes through the umask; the volume's modes must not.
      await chmod(full, file.mode);
    }
    await beforeSwap?.(tsDir);
    const newLink = join(targetDir, NEW_DATA_DIR);
    await rm(newLink, { force: true });
    await symlink(tsName, newLink);
    await rename(newLink, dataLink);
  } catch (err) {
    await rm(join(targetDir, NEW_DATA_DIR), { force: true });
    await rm(tsDir, { recursive: true, force: true });
    throw err;
  }

  await createUserVisibleLinks(targetDir, clean);
  for (const path of toRemove) {
    // Only the top-level links are outside the data directory.
    if (!path.includes('/')) await rm(join(targetDir, path), { force: true });
  }
  // The previous data, and any left by a write that crashed before its swap.
  for (const entry of await readdir(targetDir)) {
    if (entry !== tsName && TS_DIR.test(entry)) await rm(join(targetDir, entry), { recursive: true, force: true });
  }
  return true;
}
