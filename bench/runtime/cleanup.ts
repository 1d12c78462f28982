/** The benches' cleanup (bench/runtime, bench/runv): a stack of undo steps run once, in reverse, on exit or on SIGINT/SIGTERM, and the host-side removers they use. */
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cgroupAt, removeCgroup } from '../../src/runtime/cgroups.js';
import { mountPoints } from '../../src/runtime/sandbox/namespaces.js';
import { unmount } from '../../src/runtime/snapshots/mount.js';
import { sleep } from './proc.js';

const CGROUP_REMOVE_ATTEMPTS = 20;
const CGROUP_REMOVE_RETRY_MS = 100;

type Cleanup = { what: string; fn: () => Promise<unknown> | unknown };
const cleanups: Cleanup[] = [];
let cleaning: Promise<void> | undefined;
/** Set once SIGINT or SIGTERM arrived; the cleanups then run and the process exits 130. */
export let interrupted = false;

export function onCleanup(what: string, fn: Cleanup['fn']): void {
  cleanups.push({ what, fn });
}

/** Runs the cleanup registered as `what` now, and takes it off the stack; nothing when there is none. */
export async function runCleanup(what: string): Promise<void> {
  const index = cleanups.findIndex((c) => c.what === what);
  if (index >= 0) await cleanups.splice(index, 1)[0]!.fn();
}

/** Runs the cleanups in reverse order, once: a signal and main's finally share the same run. */
export function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const { what, fn } = cleanups.pop()!;
      try {
        await fn();
      } catch (err) {
        console.error(`cleanup (${what}): ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  })();
  return cleaning;
}

export function cleanUpOnSignals(): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (interrupted) return;
      interrupted = true;
      console.error(`${sig}: cleaning up`);
      void cleanupAll().finally(() => process.exit(130));
    });
  }
}

export async function killPids(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  // SIGKILL is asynchronous; give the kernel a moment before the caller removes what they held.
  if (pids.length > 0) await sleep(200);
}

/** SIGKILLs what is left in the cgroup tree at `path` (runc containers whose conmon died first), then removes the tree. */
export async function killAndRemoveCgroup(path: string): Promise<void> {
  const cgroup = cgroupAt(path);
  const pids: number[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(dir, e.name));
      else if (e.name === 'cgroup.procs') pids.push(...(await readFile(join(dir, e.name), 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number));
    }
  };
  for (const dir of cgroup.directories()) await walk(dir);
  await killPids(pids);
  // The kernel lets a cgroup go only once its killed processes are fully gone.
  for (let attempt = 0; ; attempt++) {
    try {
      removeCgroup(cgroup);
      return;
    } catch (err) {
      if (attempt >= CGROUP_REMOVE_ATTEMPTS) throw err;
      await sleep(CGROUP_REMOVE_RETRY_MS);
    }
  }
}

/** Unmounts everything mounted at or below `dir`, deepest first; lazily when a mount is busy. */
export async function unmountUnder(dir: string): Promise<void> {
  const points = [...(await mountPoints())].filter((p) => p === dir || p.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
  for (const point of points) await unmount(point).catch(() => runQuietly('umount', ['-l', point]));
}

/** Runs a command to its exit, ignoring its output and its failure (cleanup's last resort). */
function runQuietly(file: string, argv: string[]): Promise<void> {
  return new Promise((resolve) => spawn(file, argv, { stdio: 'ignore' }).once('exit', () => resolve()).once('error', () => resolve()));
}
