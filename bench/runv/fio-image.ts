/**
 * The workload image of bench/runv: busybox (every applet), the host's fio with the loader and shared
 * libraries `ldd` names, and a data file of random bytes for fio to read, as an OCI archive imported
 * like the busybox image, so that the same image runs under runc and runv.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { busyboxApplets, busyboxRootfs } from '../../src/runtime/images/busybox.js';
import { buildImageArchive } from '../../src/runtime/images/import.js';

const run = promisify(execFile);

export const FIO = '/usr/bin/fio';
/** Where the data file lies in the image; the same file is put in the 9p volume. */
export const IMAGE_DATA_FILE = '/data/fio.dat';
const LDD_TIMEOUT_MS = 10_000;
/** Random data is written in pieces of this size, so the file never sits whole in memory. */
const CHUNK_BYTES = 1024 * 1024;

/** The loader and libraries `ldd` reports for `binary`, as absolute host paths. */
async function sharedLibraries(binary: string): Promise<string[]> {
  const { stdout } = await run('ldd', [binary], { timeout: LDD_TIMEOUT_MS });
  const libs: string[] = [];
  for (const line of stdout.split('\n')) {
    const path = /=>\s*(\/\S+)/.exec(line)?.[1] ?? /^\s*(\/\S+)\s+\(/.exec(line)?.[1];
    if (path) libs.push(path);
  }
  if (libs.length === 0) throw new Error(`ldd ${binary} reported no libraries:\n${stdout}`);
  return libs;
}

/** Writes `bytes` random bytes to `path`: data no filesystem can store sparse or compress. */
export async function writeRandomFile(path: string, bytes: number): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, (function* () {
    for (let left = bytes; left > 0; left -= CHUNK_BYTES) yield randomBytes(Math.min(left, CHUNK_BYTES));
  })());
}

/** Builds the image's tree in `dir` and its archive at `output`; returns the archive. */
export async function fioImage(ref: string, dir: string, output: string, dataBytes: number): Promise<string> {
  const rootfs = await busyboxRootfs(dir, { applets: await busyboxApplets() });
  for (const file of [FIO, ...(await sharedLibraries(FIO))]) {
    await mkdir(join(rootfs, dirname(file)), { recursive: true });
    // copyFile follows symlinks (the loader's /lib64 entry): the image gets the file itself at the path ldd printed.
    await copyFile(file, join(rootfs, file));
  }
  await chmod(join(rootfs, FIO), 0o755);
  await writeRandomFile(join(rootfs, IMAGE_DATA_FILE), dataBytes);
  return buildImageArchive({
    ref,
    files: rootfs,
    config: { Cmd: ['sh'], Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'], WorkingDir: '/', User: '' },
    output,
  });
}
