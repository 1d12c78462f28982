import { readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { agentPaths } from '../agent/agent.js';
import { sleep } from '../client/informer.js';
import { runCommand } from '../runtime/sandbox/namespaces.js';

/** How long killed processes may take to disappear before cleanup gives up on them. */
export const CLEANUP_KILL_TIMEOUT_MS = 10_000;
/** Interval of the wait for killed processes to disappear. */
const KILL_POLL_MS = 50;
/** Stacked mounts are unmounted one layer per round; more rounds than this means something remounts. */
const MAX_UNMOUNT_ROUNDS = 8;
const RUNC = '/usr/sbin/runc';

export interface CleanupOptions {
  /** The runtime's persistent root; default the agent's (`agentPaths(dir).runtime`). */
  runtimeRoot?: string;
  /** The node's own netns: whatever still runs in it (conmon, host-network pods, helpers) is killed. */
  netnsPath?: string;
}

export interface CleanupReport {
  containers: number;
  processes: number;
  mounts: number;
}

interface MountEntry {
  point: string;
  fstype: string;
}

async function mountsUnder(dir: string): Promise<MountEntry[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (fields.length < 5 || dash < 0) continue;
    const point = fields[4]!.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
    if (point === dir || point.startsWith(`${dir}/`)) entries.push({ point, fstype: fields[dash + 1] ?? '' });
  }
  return entries;
}

/** Inode numbers of the network namespaces pinned under `dir` (pods' netns files) plus `extra`. */
async function netnsInodes(dir: string, extra: string | undefined): Promise<Set<number>> {
  const files = (await mountsUnder(dir)).filter((m) => m.fstype === 'nsfs').map((m) => m.point);
  if (extra) files.push(extra);
  const inodes = new Set<number>();
  for (const file of files) {
    const st = await stat(file).catch(() => undefined);
    if (st) inodes.add(st.ino);
  }
  return inodes;
}

/** PIDs (not this process) whose network namespace is one of `inodes`, or whose command is conmon or runc naming `dir`. */
async function processesOf(dir: string, inodes: Set<number>): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const link = await readlink(`/proc/${entry}/ns/net`).catch(() => '');
    const ino = /^net:\[(\d+)\]$/.exec(link)?.[1];
    if (ino !== undefined && inodes.has(Number(ino))) {
      pids.push(Number(entry));
      continue;
    }
    const comm = (await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '')).trim();
    if (comm !== 'conmon' && comm !== 'runc') continue;
    const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0');
    if (argv.some((arg) => arg === dir || arg.startsWith(`${dir}/`))) pids.push(Number(entry));
  }
  return pids;
}

/**
 * Removes what a node's runtime leaves once its agent has stopped: containers keep running without
 * the agent (by design: a restarted agent adopts them), so stopping a node for good means killing
 * them here. Kills every runc container under the runtime root (`runc delete --force`, which also
 * removes its cgroup), then every process still inside the node's netns or a pod netns pinned under
 * `dir` and any conmon or runc naming `dir`, then unmounts everything mounted under `dir` (rootfs
 * overlays, netns bind mounts), deepest first. Only processes identified that way are touched.
 * Idempotent; the runtime's records stay, so a later start of the node sees its containers as exited.
 */
export async function cleanupNode(nodeDir: string, options: CleanupOptions = {}): Promise<CleanupReport> {
  // Mount points and command lines name the real path.
  const dir = await realpath(nodeDir).catch(() => resolve(nodeDir));
  const report: CleanupReport = { containers: 0, processes: 0, mounts: 0 };
  // The runc handler keeps runc's own state in <runtime root>/runc/runc.
  const runcRoot = join(options.runtimeRoot ?? agentPaths(dir).runtime, 'runc', 'runc');
  const listed = await runCommand([RUNC, '--root', runcRoot, 'list', '--format', 'json']).catch(() => undefined);
  const containers = listed ? ((JSON.parse(listed.stdout.trim() || 'null') as { id: string }[] | null) ?? []) : [];
  for (const { id } of containers) {
    await runCommand([RUNC, '--root', runcRoot, 'delete', '--force', id]).catch(() => undefined);
    report.containers++;
  }

  const inodes = await netnsInodes(dir, options.netnsPath);
  const deadline = Date.now() + CLEANUP_KILL_TIMEOUT_MS;
  const killed = new Set<number>();
  for (;;) {
    const left = await processesOf(dir, inodes);
    if (left.length === 0) break;
    if (Date.now() > deadline) throw new Error(`processes of node ${dir} did not exit after SIGKILL: ${left.join(', ')}`);
    for (const pid of left) {
      if (!killed.has(pid)) report.processes++;
      killed.add(pid);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // exited meanwhile
      }
    }
    await sleep(KILL_POLL_MS);
  }

  for (let round = 0; round < MAX_UNMOUNT_ROUNDS; round++) {
    const mounts = [...new Set((await mountsUnder(dir)).map((m) => m.point))].sort().reverse();
    if (mounts.length === 0) return report;
    for (const point of mounts) {
      // Lazy as a fallback: a mount still busy here is one no process of this node can be using any more.
      await runCommand(['umount', point]).catch(() => runCommand(['umount', '-l', point]).catch(() => undefined));
      report.mounts++;
    }
  }
  const left = (await mountsUnder(dir)).map((m) => m.point);
  if (left.length > 0) throw new Error(`mounts under ${dir} could not be removed: ${left.join(', ')}`);
  return report;
}
