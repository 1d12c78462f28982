/** /proc helpers for bench/runtime: process trees, PSS, mount namespaces, percentiles. */
import { readdir, readFile, readlink } from 'node:fs/promises';

export interface ProcInfo {
  pid: number;
  ppid: number;
  cmdline: string;
  mntns: string;
}

export async function listProcesses(): Promise<ProcInfo[]> {
  const out: ProcInfo[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      // comm may hold spaces and parentheses: fields resume after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ').trim();
      const mntns = await readlink(`/proc/${pid}/ns/mnt`).catch(() => '');
      out.push({ pid, ppid, cmdline, mntns });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** PSS in KiB from smaps_rollup; 0 when the process is gone. */
export async function pssKiB(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
  const m = /^Pss:\s+(\d+) kB/m.exec(text);
  return m ? Number(m[1]) : 0;
}

export interface RuntimeFootprint {
  pids: number[];
  kinds: Record<string, number>;
  pssKiB: number;
}

/**
 * The runtime side of a node: `rootPid`, every process `isHelper` accepts (shims, conmons: they are
 * reparented away from the runtime), and all their descendants, except processes in another mount
 * namespace than ours (containers, pause processes), which are the workload, not the runtime.
 */
export async function runtimeFootprint(rootPid: number, isHelper: (p: ProcInfo) => boolean, kindOf: (p: ProcInfo) => string): Promise<RuntimeFootprint> {
  const procs = await listProcesses();
  const ownMnt = await readlink('/proc/self/ns/mnt');
  const children = new Map<number, ProcInfo[]>();
  for (const p of procs) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const selected = new Map<number, ProcInfo>();
  const queue = procs.filter((p) => p.pid === rootPid || isHelper(p));
  while (queue.length > 0) {
    const p = queue.pop()!;
    if (selected.has(p.pid)) continue;
    selected.set(p.pid, p);
    queue.push(...(children.get(p.pid) ?? []));
  }
  const kept = [...selected.values()].filter((p) => p.mntns === ownMnt);
  const kinds: Record<string, number> = {};
  let total = 0;
  for (const p of kept) {
    kinds[kindOf(p)] = (kinds[kindOf(p)] ?? 0) + 1;
    total += await pssKiB(p.pid);
  }
  return { pids: kept.map((p) => p.pid), kinds, pssKiB: total };
}

/** Nearest-rank percentile of `values` (ms). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1]!;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
