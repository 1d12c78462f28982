import { readFileSync, readdirSync, rmdirSync, statfsSync, existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Cgroup access for container stats and cleanup, on both layouts Linux hosts use:
 *
 * - v2 (unified): one hierarchy at /sys/fs/cgroup; a container's cgroup is one directory.
 * - v1 (legacy or hybrid): one hierarchy per controller (cpu, cpuacct, memory, pids, ...), possibly
 *   co-mounted ("cpu,cpuacct"); a container's cgroup is the same relative path in each of them. Hybrid
 *   hosts also mount a v2 tree at /sys/fs/cgroup/unified, which holds no controllers.
 *
 * Paths here are cgroupfs paths like '/atoll/pod1/c1', relative to each hierarchy's root, the form
 * runc takes in config.json's linux.cgroupsPath.
 */

export type CgroupMode = 'v1' | 'v2';

const CGROUP_ROOT = '/sys/fs/cgroup';
const CGROUP2_SUPER_MAGIC = 0x63677270;

let detected: CgroupMode | undefined;

/** The host's cgroup layout, detected once from the filesystem type at /sys/fs/cgroup. */
export function cgroupMode(): CgroupMode {
  detected ??= statfsSync(CGROUP_ROOT).type === CGROUP2_SUPER_MAGIC ? 'v2' : 'v1';
  return detected;
}

/**
 * Whether the kernel accounts swap per cgroup, so a memory limit can also bound swap (as containerd
 * does by setting memory+swap equal to the limit).
 */
export function swapAccounting(mode: CgroupMode = cgroupMode()): boolean {
  if (mode === 'v1') {
    const memory = v1Hierarchies().get('memory');
    return memory !== undefined && existsSync(join(memory, 'memory.memsw.limit_in_bytes'));
  }
  const own = readFileSync('/proc/self/cgroup', 'utf8').match(/^0::(.*)$/m)?.[1] ?? '/';
  return existsSync(join(CGROUP_ROOT, own, 'memory.swap.max'));
}

/** Mount point of each v1 controller and of the named hierarchies, from /proc/self/mountinfo. */
function v1Hierarchies(): Map<string, string> {
  const hierarchies = new Map<string, string>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const [fstype, , superOptions = ''] = right.split(' ');
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    const mountPoint = left.split(' ')[4]!;
    if (fstype === 'cgroup2') {
      hierarchies.set('unified', mountPoint);
      continue;
    }
    for (const option of superOptions.split(',')) {
      if (option === 'rw' || option === 'ro' || option.startsWith('release_agent') || option === 'clone_children') continue;
      hierarchies.set(option, mountPoint);
    }
  }
  return hierarchies;
}

/** A container's cgroup: where to read each kind of stat from. */
export interface Cgroup {
  mode: CgroupMode;
  path: string;
  /** Every directory that makes up the cgroup (one per hierarchy on v1). */
  directories(): string[];
}

export function cgroupAt(path: string, mode: CgroupMode = cgroupMode()): Cgroup {
  return {
    mode,
    path,
    directories() {
      if (mode === 'v2') return [join(CGROUP_ROOT, path)];
      return [...new Set(v1Hierarchies().values())].map((mountPoint) => join(mountPoint, path));
    },
  };
}

function controllerDir(cgroup: Cgroup, controller: string): string {
  if (cgroup.mode === 'v2') return join(CGROUP_ROOT, cgroup.path);
  const mountPoint = v1Hierarchies().get(controller);
  if (!mountPoint) throw new Error(`cgroup v1 controller ${controller} is not mounted`);
  return join(mountPoint, cgroup.path);
}

/** Parses "key value" lines (memory.stat, cpu.stat, memory.events). */
function keyed(text: string): Map<string, bigint> {
  const values = new Map<string, bigint>();
  for (const line of text.split('\n')) {
    const [key, value] = line.split(' ');
    if (key && value && /^\d+$/.test(value)) values.set(key, BigInt(value));
  }
  return values;
}

async function readNumber(file: string): Promise<bigint> {
  const text = (await readFile(file, 'utf8')).trim();
  return text === 'max' ? -1n : BigInt(text);
}

export interface CgroupStats {
  cpuUsageNanoseconds: bigint;
  memoryUsageBytes: number;
  /** Usage minus inactive file cache: what the kubelet compares to the limit for eviction. */
  memoryWorkingSetBytes: number;
  memoryRssBytes: number;
  pids: number;
}

export async function readStats(cgroup: Cgroup): Promise<CgroupStats> {
  if (cgroup.mode === 'v2') {
    const dir = controllerDir(cgroup, '');
    const [cpu, memoryStat, usage, pids] = await Promise.all([
      readFile(join(dir, 'cpu.stat'), 'utf8').then(keyed),
      readFile(join(dir, 'memory.stat'), 'utf8').then(keyed),
      readNumber(join(dir, 'memory.current')),
      readNumber(join(dir, 'pids.current')),
    ]);
    return shape((cpu.get('usage_usec') ?? 0n) * 1000n, usage, memoryStat.get('inactive_file') ?? 0n, memoryStat.get('anon') ?? 0n, pids);
  }
  const memoryDir = controllerDir(cgroup, 'memory');
  const [cpu, memoryStat, usage, pids] = await Promise.all([
    readNumber(join(controllerDir(cgroup, 'cpuacct'), 'cpuacct.usage')),
    readFile(join(memoryDir, 'memory.stat'), 'utf8').then(keyed),
    readNumber(join(memoryDir, 'memory.usage_in_bytes')),
    readNumber(join(controllerDir(cgroup, 'pids'), 'pids.current')),
  ]);
  return shape(cpu, usage, memoryStat.get('total_inactive_file') ?? 0n, memoryStat.get('total_rss') ?? 0n, pids);
}

function shape(cpu: bigint, usage: bigint, inactiveFile: bigint, rss: bigint, pids: bigint): CgroupStats {
  const workingSet = usage > inactiveFile ? usage - inactiveFile : 0n;
  return {
    cpuUsageNanoseconds: cpu,
    memoryUsageBytes: Number(usage),
    memoryWorkingSetBytes: Number(workingSet),
    memoryRssBytes: Number(rss),
    pids: Number(pids),
  };
}

/** Block I/O of a cgroup and its descendants, summed over devices. */
export interface BlockIoStats {
  readBytes: number;
  writeBytes: number;
  readOps: number;
  writeOps: number;
}

/**
 * Reads a cgroup's block I/O: `io.stat` on v2; on v1 the blkio throttle files, which count every
 * bio (`blkio.throttle.io_service_bytes_recursive` / `io_serviced_recursive`), else the CFQ ones of
 * old kernels (`blkio.io_service_bytes_recursive` / `blkio.io_serviced_recursive`).
 */
export async function readBlockIo(cgroup: Cgroup): Promise<BlockIoStats> {
  if (cgroup.mode === 'v2') return parseIoStat(await readFile(join(controllerDir(cgroup, ''), 'io.stat'), 'utf8'));
  const dir = controllerDir(cgroup, 'blkio');
  const prefix = existsSync(join(dir, 'blkio.throttle.io_service_bytes_recursive')) ? 'blkio.throttle.' : 'blkio.';
  const read = (file: string) => readFile(join(dir, prefix + file), 'utf8').then(parseBlkioRecursive);
  const [bytes, ops] = await Promise.all([read('io_service_bytes_recursive'), read('io_serviced_recursive')]);
  return { readBytes: bytes.read, writeBytes: bytes.write, readOps: ops.read, writeOps: ops.write };
}

/** v2 `io.stat`: `MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N` per device. */
export function parseIoStat(text: string): BlockIoStats {
  const out: BlockIoStats = { readBytes: 0, writeBytes: 0, readOps: 0, writeOps: 0 };
  const fields: Record<string, keyof BlockIoStats> = { rbytes: 'readBytes', wbytes: 'writeBytes', rios: 'readOps', wios: 'writeOps' };
  for (const line of text.split('\n')) {
    for (const pair of line.trim().split(/\s+/).slice(1)) {
      const [key, value] = pair.split('=');
      const field = key ? fields[key] : undefined;
      if (field && value && /^\d+$/.test(value)) out[field] += Number(value);
    }
  }
  return out;
}

/** v1 blkio `*_recursive` files: `MAJ:MIN Read|Write|Sync|Async|Discard|Total N` per device, then `Total N`. */
export function parseBlkioRecursive(text: string): { read: number; write: number } {
  const out = { read: 0, write: 0 };
  for (const line of text.split('\n')) {
    const [device, op, value] = line.trim().split(/\s+/);
    if (!device?.includes(':') || !value || !/^\d+$/.test(value)) continue;
    if (op === 'Read') out.read += Number(value);
    else if (op === 'Write') out.write += Number(value);
  }
  return out;
}

/**
 * Makes v1 blkio throttle statistics count. Recent kernels (measured on 6.18) set up a disk's throttle
 * state, and with it every cgroup's `blkio.throttle.io_service*` counters, only once some cgroup
 * configures a throttle rule for that disk; until then they read 0. A rule of 0 means "no limit", so
 * writing one per disk into `parent` (which the caller owns) turns the counting on and limits nothing.
 * Not needed on v2, whose io.stat always counts; disks that refuse a rule are skipped.
 */
export async function enableBlockIoStats(parent: Cgroup): Promise<void> {
  if (parent.mode === 'v2') return;
  const dir = controllerDir(parent, 'blkio');
  await mkdir(dir, { recursive: true });
  for (const disk of await readdir('/sys/block')) {
    const device = await readFile(join('/sys/block', disk, 'dev'), 'utf8').catch(() => '');
    if (!/^\d+:\d+$/.test(device.trim())) continue;
    await writeFile(join(dir, 'blkio.throttle.read_bps_device'), `${device.trim()} 0`).catch(() => undefined);
  }
}

/** How many processes of the cgroup the kernel's OOM killer has killed; 0 when the cgroup is gone. */
export async function oomKillCount(cgroup: Cgroup): Promise<number> {
  const file =
    cgroup.mode === 'v2' ? join(controllerDir(cgroup, ''), 'memory.events') : join(controllerDir(cgroup, 'memory'), 'memory.oom_control');
  try {
    return Number(keyed(await readFile(file, 'utf8')).get('oom_kill') ?? 0n);
  } catch {
    return 0;
  }
}

/** Whether any directory of the cgroup still exists. */
export function cgroupExists(cgroup: Cgroup): boolean {
  return cgroup.directories().some((dir) => existsSync(dir));
}

/** Child cgroups of `parent` (names), across all hierarchies. */
export function childCgroups(parent: Cgroup): string[] {
  const names = new Set<string>();
  for (const dir of parent.directories()) {
    try {
      for (const entry of readdirSync(dir, { withFileTypes: true })) if (entry.isDirectory()) names.add(entry.name);
    } catch {
      // a hierarchy without this cgroup has no children in it
    }
  }
  return [...names].sort();
}

/**
 * Removes an empty cgroup and its empty descendants in every hierarchy. The kernel refuses (EBUSY)
 * while a process is inside; that error is thrown.
 */
export function removeCgroup(cgroup: Cgroup): void {
  for (const dir of cgroup.directories()) removeTree(dir);
}

function removeTree(dir: string): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  for (const entry of entries) if (entry.isDirectory()) removeTree(join(dir, entry.name));
  rmdirSync(dir);
}
