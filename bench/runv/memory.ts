/** Host memory of runv sandboxes for bench/runv: PSS of the runtime process and its QEMUs, and what a QEMU's PSS is made of. */
import { readFile } from 'node:fs/promises';
import { listProcesses, runtimeFootprint, type ProcInfo } from '../runtime/proc.js';

/** From /proc/<pid>/smaps_rollup, in KiB: all of PSS, and its anonymous, file and shmem (tmpfs, here the template's RAM) parts. */
export interface Pss {
  pss: number;
  anon: number;
  file: number;
  shmem: number;
}

/**
 * A QEMU's PSS by what its mappings hold, in KiB (from /proc/<pid>/smaps):
 *   guestRam        the guest's RAM: a clone's private mapping of the template's memory file (its
 *                   unwritten pages shared with every clone, `guestRamPrivate` of it the pages the
 *                   guest wrote since the restore), or a cold-booted VM's anonymous RAM;
 *   tcgCache        TCG's translated-code buffer (the one anonymous rwx mapping), resident in full;
 *   kernelFile      the guest kernel file QEMU maps for -kernel (page cache, shared by every VM);
 *   other           QEMU itself: heap, device state, libraries.
 */
export interface QemuParts {
  guestRam: number;
  guestRamPrivate: number;
  tcgCache: number;
  kernelFile: number;
  other: number;
}

/** What identifies a QEMU's mappings: the template's memory file, the guest kernel file, the guest RAM size. */
export interface VmLayout {
  memoryFile: string;
  kernelFile: string;
  memoryMiB: number;
}

const ZERO: Pss = { pss: 0, anon: 0, file: 0, shmem: 0 };
const NO_PARTS: QemuParts = { guestRam: 0, guestRamPrivate: 0, tcgCache: 0, kernelFile: 0, other: 0 };
/** QEMU may round a RAM block up to its alignment; an anonymous mapping this close above the RAM size is the RAM. */
const RAM_SLACK_KIB = 2048;
const MAPPING = /^[0-9a-f]+-[0-9a-f]+ (\S{4}) \S+ \S+ \d+\s*(.*)$/;

/** The process's PSS split; zeros when it is gone. */
export async function pssOf(pid: number): Promise<Pss> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text)?.[1] ?? 0);
  return { pss: kib('Pss'), anon: kib('Pss_Anon'), file: kib('Pss_File'), shmem: kib('Pss_Shmem') };
}

export function addPss(a: Pss, b: Pss): Pss {
  return { pss: a.pss + b.pss, anon: a.anon + b.anon, file: a.file + b.file, shmem: a.shmem + b.shmem };
}

function addParts(a: QemuParts, b: QemuParts): QemuParts {
  return {
    guestRam: a.guestRam + b.guestRam, guestRamPrivate: a.guestRamPrivate + b.guestRamPrivate, tcgCache: a.tcgCache + b.tcgCache,
    kernelFile: a.kernelFile + b.kernelFile, other: a.other + b.other,
  };
}

/** Which part of a QEMU a mapping is, from its permissions, path and size. */
function partOf(perms: string, path: string, sizeKiB: number, layout: VmLayout): Exclude<keyof QemuParts, 'guestRamPrivate'> {
  const ramKiB = layout.memoryMiB * 1024;
  if (path === layout.memoryFile) return 'guestRam';
  if (path === layout.kernelFile) return 'kernelFile';
  if (path !== '') return 'other';
  if (perms === 'rwxp') return 'tcgCache';
  if (perms === 'rw-p' && sizeKiB >= ramKiB && sizeKiB <= ramKiB + RAM_SLACK_KIB) return 'guestRam';
  return 'other';
}

/** The QEMU's PSS by part (see QemuParts); zeros when it is gone. */
export async function qemuParts(pid: number, layout: VmLayout): Promise<QemuParts> {
  const text = await readFile(`/proc/${pid}/smaps`, 'utf8').catch(() => '');
  const parts = { ...NO_PARTS };
  let mapping = { perms: '', path: '' };
  let part: ReturnType<typeof partOf> = 'other';
  for (const line of text.split('\n')) {
    const header = MAPPING.exec(line);
    if (header) {
      mapping = { perms: header[1]!, path: header[2]! };
      continue;
    }
    const field = /^(Size|Pss|Anonymous):\s+(\d+) kB$/.exec(line);
    if (!field) continue;
    const kib = Number(field[2]);
    // smaps lists Size first, then Pss, then Anonymous, for each mapping.
    if (field[1] === 'Size') part = partOf(mapping.perms, mapping.path, kib, layout);
    else if (field[1] === 'Pss') parts[part] += kib;
    else if (part === 'guestRam') parts.guestRamPrivate += kib;
  }
  return parts;
}

export interface RunvFootprint {
  /** The runtime process (CRI, the runv handler, its log pumps). */
  runtime: Pss;
  /** Every QEMU of the runtime's VMs, summed. */
  qemu: Pss;
  qemuParts: QemuParts;
  qemuCount: number;
  /** Any other host process the runtime started and that is still there (a per-sandbox helper, if runv had one). */
  helpers: Pss;
  helperKinds: Record<string, number>;
  total: Pss;
}

/**
 * The host side of the runv sandboxes: the runtime process, each QEMU whose command line names a path
 * under `root`, and any descendant of either, apart from processes in another mount namespace (the
 * workload of runc pods, which the memory phase does not run anyway).
 */
export async function runvFootprint(runtimePid: number, root: string, layout: VmLayout): Promise<RunvFootprint> {
  const isQemu = (p: ProcInfo) => p.cmdline.startsWith('qemu-system') && p.cmdline.includes(root);
  const kindOf = (p: ProcInfo) => (p.pid === runtimePid ? 'runtime' : isQemu(p) ? 'qemu' : p.cmdline.split(' ')[0]!);
  const { pids } = await runtimeFootprint(runtimePid, isQemu, kindOf);
  const procs = new Map((await listProcesses()).map((p) => [p.pid, p]));
  const footprint: RunvFootprint = { runtime: ZERO, qemu: ZERO, qemuParts: NO_PARTS, qemuCount: 0, helpers: ZERO, helperKinds: {}, total: ZERO };
  for (const pid of pids) {
    const p = procs.get(pid);
    if (!p) continue;
    const pss = await pssOf(pid);
    const kind = kindOf(p);
    if (kind === 'runtime') {
      footprint.runtime = pss;
    } else if (kind === 'qemu') {
      footprint.qemu = addPss(footprint.qemu, pss);
      footprint.qemuParts = addParts(footprint.qemuParts, await qemuParts(pid, layout));
      footprint.qemuCount++;
    } else {
      footprint.helpers = addPss(footprint.helpers, pss);
      footprint.helperKinds[kind] = (footprint.helperKinds[kind] ?? 0) + 1;
    }
    footprint.total = addPss(footprint.total, pss);
  }
  return footprint;
}
