/** bench/runv's output: summaries of the phases, the tables, the targets, and one JSON line. */
import { percentile } from '../runtime/proc.js';
import { mib, type CpuPhaseResult, type CpuResult, type FioTable, type MemoryResult, type StartKind, type StartSample } from './phases.js';
import type { Pss, QemuParts, RunvFootprint } from './memory.js';
import { FIO_RAMP_S, FIO_RUNTIME_S } from './workload.js';

export const TARGETS = { templateStartP50MsMax: 500, perExtraSandboxMiBMax: 25, blockOver9pMin: 3 };

export interface StartSummary {
  kind: StartKind;
  n: number;
  sandboxP50Ms: number;
  sandboxP99Ms: number;
  firstContainerP50Ms: number;
  firstContainerP99Ms: number;
  createP50Ms: number;
  startP50Ms: number;
  teardownP50Ms: number;
  /** runv: p50 of the VM start (boot or restore, the guest's network and hostname included) and of RunPodSandbox's parts before it (netns, veth, the tap made) and after it (the rest of the tap's setup, which overlaps the VM start, and the record). */
  vmStartP50Ms?: number;
  beforeVmP50Ms?: number;
  afterVmP50Ms?: number;
  /** runv template: starts that fell back to a cold boot; runv pool: starts that found no idle VM (they are in the figures). */
  fallbacks?: number;
  restoreP50Ms?: { monitor: number; loaded: number; resumed: number; firstAnswer: number; ready: number };
  bootP50Ms?: number;
}

export function summarizeStarts(samples: StartSample[], kind: StartKind): StartSummary | undefined {
  const mine = samples.filter((s) => s.kind === kind);
  if (mine.length === 0) return undefined;
  const p = (f: (s: StartSample) => number, q = 50) => percentile(mine.map(f), q);
  const summary: StartSummary = {
    kind, n: mine.length,
    sandboxP50Ms: p((s) => s.sandboxMs), sandboxP99Ms: p((s) => s.sandboxMs, 99),
    firstContainerP50Ms: p((s) => s.firstContainerMs), firstContainerP99Ms: p((s) => s.firstContainerMs, 99),
    createP50Ms: p((s) => s.createMs), startP50Ms: p((s) => s.startMs), teardownP50Ms: p((s) => s.teardownMs),
  };
  if (kind === 'runc') return summary;
  if (kind === 'runv-pool') {
    summary.fallbacks = mine.filter((s) => s.vm).length;
    return summary;
  }
  summary.vmStartP50Ms = p((s) => s.vm!.ms);
  summary.beforeVmP50Ms = p((s) => s.beforeVmMs!);
  summary.afterVmP50Ms = p((s) => s.afterVmMs!);
  const restored = mine.filter((s) => s.vm!.restore);
  if (kind === 'runv-template') summary.fallbacks = mine.length - restored.length;
  if (restored.length > 0) {
    const r = (f: (s: StartSample) => number) => percentile(restored.map(f), 50);
    summary.restoreP50Ms = {
      monitor: r((s) => s.vm!.restore!.monitorMs), loaded: r((s) => s.vm!.restore!.loadedMs), resumed: r((s) => s.vm!.restore!.resumedMs),
      firstAnswer: r((s) => s.vm!.restore!.firstAnswerMs), ready: r((s) => s.vm!.restore!.readyMs),
    };
  }
  const booted = mine.filter((s) => !s.vm!.restore && s.vm!.bootMs !== null);
  if (booted.length > 0) summary.bootP50Ms = percentile(booted.map((s) => s.vm!.bootMs!), 50);
  return summary;
}

/** Per-sandbox differences of the memory phase, KiB. */
export interface MemoryDeltas {
  /** (N bare sandboxes - 1) / (N - 1): what one more sandbox costs the host. */
  perExtraSandbox: { total: number; runtime: number; qemu: number; parts: QemuParts };
  /** (N pods with a container - N bare sandboxes) / N: what a busybox sleep container adds in a runv pod. */
  perContainer: { total: number; runtime: number; qemu: number; parts: QemuParts };
}

function partsDelta(a: QemuParts, b: QemuParts, n: number): QemuParts {
  return {
    guestRam: (a.guestRam - b.guestRam) / n, guestRamPrivate: (a.guestRamPrivate - b.guestRamPrivate) / n, tcgCache: (a.tcgCache - b.tcgCache) / n,
    kernelFile: (a.kernelFile - b.kernelFile) / n, other: (a.other - b.other) / n,
  };
}

function delta(a: RunvFootprint, b: RunvFootprint, n: number): MemoryDeltas['perExtraSandbox'] {
  return { total: (a.total.pss - b.total.pss) / n, runtime: (a.runtime.pss - b.runtime.pss) / n, qemu: (a.qemu.pss - b.qemu.pss) / n, parts: partsDelta(a.qemuParts, b.qemuParts, n) };
}

export function memoryDeltas(m: MemoryResult): MemoryDeltas {
  return { perExtraSandbox: delta(m.bareN, m.bare1, m.clones - 1), perContainer: delta(m.podsN, m.bareN, m.clones) };
}

export interface CpuRow extends CpuResult {
  /** runv time / runc time. */
  slowdown: number;
  /** runc time / runv time: runv's speed as a share of runc's. */
  relative: number;
}

export function cpuRows(cpu: CpuPhaseResult): CpuRow[] {
  return cpu.results.map((r) => ({ ...r, slowdown: r.runvMs / r.runcMs, relative: r.runcMs / r.runvMs }));
}

export interface FioRatios {
  /** runv rootfs IOPS / runv 9p IOPS, taken rep by rep (adjacent runs), and their median: the target's figure. */
  blockOver9pDirect: number;
  blockOver9pDirectPerRep: number[];
  blockOver9pBuffered: number;
  blockOver9pBufferedPerRep: number[];
  /** Ratios of the median cells. */
  runvRootfsOverRuncRootfsBuffered: number;
  runvRootfsOverRuncRootfsDirect: number;
  runv9pOverRuncVolumeBuffered: number;
}

function perRep(a: number[], b: number[]): number[] {
  return a.map((x, i) => x / b[i]!);
}

export function fioRatios(t: FioTable): FioRatios {
  const direct = perRep(t.runv.rootfs.direct.runs, t.runv.volume.direct.runs);
  const buffered = perRep(t.runv.rootfs.buffered.runs, t.runv.volume.buffered.runs);
  return {
    blockOver9pDirect: percentile(direct, 50),
    blockOver9pDirectPerRep: direct,
    blockOver9pBuffered: percentile(buffered, 50),
    blockOver9pBufferedPerRep: buffered,
    runvRootfsOverRuncRootfsBuffered: t.runv.rootfs.buffered.iops / t.runc.rootfs.buffered.iops,
    runvRootfsOverRuncRootfsDirect: t.runv.rootfs.direct.iops / t.runc.rootfs.direct.iops,
    runv9pOverRuncVolumeBuffered: t.runv.volume.buffered.iops / t.runc.volume.buffered.iops,
  };
}

function fmt(n: number | undefined, digits = 0): string {
  return n !== undefined && Number.isFinite(n) ? n.toFixed(digits) : '-';
}

function verdict(ok: boolean | null): string {
  return ok === null ? '(not measured)' : ok ? 'PASS' : 'FAIL';
}

function pssText(p: Pss): string {
  return `${mib(p.pss)} (${mib(p.anon)}/${mib(p.file)}/${mib(p.shmem)})`;
}

function partsText(p: QemuParts): string {
  return [`${mib(p.guestRam)} (${mib(p.guestRamPrivate)})`.padStart(15), mib(p.tcgCache).padStart(8), mib(p.kernelFile).padStart(11), mib(p.other).padStart(7)].join('  ');
}

export interface Report {
  accel: string;
  accelReason: string;
  load: { start: number; end: number };
  template: { key: string; buildMs: number; built: boolean; stateBytes: number };
  reps: number;
  dataMiB: number;
  starts: StartSummary[];
  memory?: MemoryResult;
  cpu?: CpuPhaseResult;
  fio?: FioTable;
}

export function printReport(r: Report): void {
  const accel = r.accel.toUpperCase();
  console.log(`\nbench/runv: accelerator ${accel}${r.accelReason ? ` (${r.accelReason})` : ''}; every runv figure below ran under ${accel}.`);
  console.log(`host: load average ${r.load.start.toFixed(1)} at start, ${r.load.end.toFixed(1)} at end (other work shares this 2-core machine; the kinds of runs are interleaved)`);
  console.log(`VM template ${r.template.key}: ${r.template.built ? `built in ${r.template.buildMs} ms` : 'reused'}, ${r.template.stateBytes} bytes of device state\n`);

  const template = r.starts.find((s) => s.kind === 'runv-template');
  if (r.starts.length > 0) {
    console.log('Sandbox start through CRI, pods one at a time; ms; p99 of n = the slowest of n');
    console.log('  sandbox = RunPodSandbox; 1st container = RunPodSandbox + CreateContainer + StartContainer of busybox sleep');
    console.log('  runv sandbox = before VM (netns, veth, tap made) + VM start (boot or restore, guest network and hostname included) + after VM (rest of the tap setup, overlapping the VM start)');
    console.log(['kind'.padEnd(14), 'n'.padStart(3), 'sandbox p50', 'p99'.padStart(6), '1st ctr p50', 'p99'.padStart(6), 'create/start p50', 'before/VM/after p50', 'teardown p50'].join('  '));
    for (const s of r.starts) {
      const parts = s.vmStartP50Ms === undefined ? '' : `${fmt(s.beforeVmP50Ms)}/${fmt(s.vmStartP50Ms)}/${fmt(s.afterVmP50Ms)}`;
      console.log([
        s.kind.padEnd(14), String(s.n).padStart(3), fmt(s.sandboxP50Ms).padStart(11), fmt(s.sandboxP99Ms).padStart(6),
        fmt(s.firstContainerP50Ms).padStart(11), fmt(s.firstContainerP99Ms).padStart(6), `${fmt(s.createP50Ms)}/${fmt(s.startP50Ms)}`.padStart(16),
        parts.padStart(19), fmt(s.teardownP50Ms).padStart(12),
      ].join('  '));
    }
    if (template?.restoreP50Ms) {
      const t = template.restoreP50Ms;
      console.log(`template restore p50, from spawning QEMU: monitor up ${fmt(t.monitor)} ms, device state loaded ${fmt(t.loaded)} ms, resumed ${fmt(t.resumed)} ms, ` +
        `agent's first answer ${fmt(t.firstAnswer)} ms, identity (clock, seed, MAC, network, hostname) given ${fmt(t.ready)} ms`);
    }
    const cold = r.starts.find((s) => s.kind === 'runv-cold');
    if (cold?.bootP50Ms !== undefined) console.log(`cold boot p50, from spawning QEMU to the agent's hello: ${fmt(cold.bootP50Ms)} ms`);
    if (template?.fallbacks) console.log(`WARNING: ${template.fallbacks} of ${template.n} template starts fell back to a cold boot; they are in the template figures`);
    const pool = r.starts.find((s) => s.kind === 'runv-pool');
    if (pool) console.log('runv-pool: a pool of one idle clone, ready before each start; its VM start is the tap move and the identity request, inside RunPodSandbox');
    if (pool?.fallbacks) console.log(`WARNING: ${pool.fallbacks} of ${pool.n} pool starts found no idle VM; they are in the pool figures`);
    console.log('');
  }

  const memory = r.memory;
  const deltas = memory && memoryDeltas(memory);
  if (memory && deltas) {
    const n = memory.clones;
    console.log('Host memory: PSS in MiB (smaps_rollup: total (anon/file/shmem)); QEMU split by mapping (smaps); template clones');
    console.log([''.padEnd(26), 'total'.padStart(24), 'runtime process'.padStart(24), 'QEMUs'.padStart(24), 'n'.padStart(3), 'guest RAM (written)', 'TCG code', 'kernel file', '  other'].join('  '));
    const row = (label: string, f: RunvFootprint) =>
      console.log([label.padEnd(26), pssText(f.total).padStart(24), pssText(f.runtime).padStart(24), pssText(f.qemu).padStart(24), String(f.qemuCount).padStart(3), partsText(f.qemuParts)].join('  '));
    row('1 sandbox', memory.bare1);
    row(`${n} sandboxes`, memory.bareN);
    row(`${n} pods, 1 container each`, memory.podsN);
    const drow = (label: string, d: MemoryDeltas['perExtraSandbox']) =>
      console.log([label.padEnd(26), mib(d.total).padStart(24), mib(d.runtime).padStart(24), mib(d.qemu).padStart(24), ''.padStart(3), partsText(d.parts)].join('  '));
    drow('per extra sandbox', deltas.perExtraSandbox);
    drow('per container in a pod', deltas.perContainer);
    if (memory.cold) console.log([`1 cold-booted sandbox`.padEnd(26), ''.padStart(24), ''.padStart(24), pssText(memory.cold.pss).padStart(24), '1'.padStart(3), partsText(memory.cold.parts)].join('  '));
    if (Object.keys(memory.podsN.helperKinds).length > 0) console.log(`other host processes of the runtime: ${JSON.stringify(memory.podsN.helperKinds)}`);
    console.log(`per extra pod (sandbox + a busybox sleep container): ${mib(deltas.perExtraSandbox.total + deltas.perContainer.total)} MiB`);
    console.log(`the template's guest RAM on /dev/shm: ${mib(memory.templateShmKiB)} MiB, once per node and template (in PSS only as far as clones map it)`);
    if (memory.fallbacks > 0) console.log(`WARNING: ${memory.fallbacks} of the memory phase's template starts fell back to a cold boot`);
    console.log('');
  }

  const cpu = r.cpu && cpuRows(r.cpu);
  if (r.cpu && cpu) {
    console.log(`CPU-bound: ms by the container's own clock, median of ${r.reps}, runv's corrected by its clock's rate (below)`);
    console.log(`  cross-check: host wall time of ExecSync less exec overhead (runc ${fmt(r.cpu.execOverheadMs.runc)} ms, runv ${fmt(r.cpu.execOverheadMs.runv)} ms)`);
    console.log(['workload'.padEnd(9), 'runc'.padStart(7), 'runv'.padStart(7), 'runv/runc'.padStart(9), 'runv speed % of runc', 'host-timed runc/runv'.padStart(20), '  what'].join('  '));
    for (const c of cpu) {
      console.log([
        c.workload.padEnd(9), fmt(c.runcMs).padStart(7), fmt(c.runvMs).padStart(7), `${fmt(c.slowdown, 2)}x`.padStart(9), `${fmt(c.relative * 100, 1)}%`.padStart(20),
        `${fmt(c.runcWallNetMs)}/${fmt(c.runvWallNetMs)}`.padStart(20), `  ${c.what}`,
      ].join('  '));
    }
    console.log(`the runv guest's clock ran at ${fmt(r.cpu.runvClockRate, 3)}x the host's over ${fmt(r.cpu.runvClockSpanS)} s (uncorrected runv: ${cpu.map((c) => `${c.workload} ${fmt(c.runvGuestClockMs)} ms`).join(', ')})`);
    console.log('');
  }

  const ratios = r.fio && fioRatios(r.fio);
  if (r.fio && ratios) {
    const t = r.fio;
    console.log(`fio 4 KiB random read, psync, queue depth 1, ${FIO_RUNTIME_S} s after a ${FIO_RAMP_S} s ramp, ${r.dataMiB} MiB file: IOPS (mean latency µs), median of ${r.reps}`);
    console.log(['path'.padEnd(42), 'O_DIRECT'.padStart(18), 'buffered'.padStart(18)].join('  '));
    const row = (label: string, cells: FioTable['runc']['rootfs']) =>
      console.log([label.padEnd(42), `${fmt(cells.direct.iops)} (${fmt(cells.direct.meanLatUs, 1)})`.padStart(18), `${fmt(cells.buffered.iops)} (${fmt(cells.buffered.meanLatUs, 1)})`.padStart(18)].join('  '));
    row('runv rootfs: ext4 on qcow2, virtio-blk', t.runv.rootfs);
    row('runv volume: host directory over 9p', t.runv.volume);
    row('runc rootfs: overlay', t.runc.rootfs);
    row('runc volume: host directory, bind mount', t.runc.volume);
    const reps = (values: number[]) => values.map((v) => fmt(v, 2)).join(', ');
    console.log(`block / 9p, median of the per-rep ratios: O_DIRECT ${fmt(ratios.blockOver9pDirect, 2)}x (${reps(ratios.blockOver9pDirectPerRep)}), buffered ${fmt(ratios.blockOver9pBuffered, 2)}x (${reps(ratios.blockOver9pBufferedPerRep)})`);
    console.log(`runv rootfs / runc overlay, of the medians: buffered ${fmt(ratios.runvRootfsOverRuncRootfsBuffered, 3)}x, O_DIRECT ${fmt(ratios.runvRootfsOverRuncRootfsDirect, 2)}x; runv 9p / runc bind, buffered: ${fmt(ratios.runv9pOverRuncVolumeBuffered, 3)}x`);
    console.log(`O_DIRECT: no page cache in the container's kernel on either runv path (the 9p share is mounted cache=none, so its buffered reads are uncached too);`);
    console.log(`runv's reads end in QEMU, which reads its files through the host page cache; runc's O_DIRECT reads go to this machine's disk.`);
    console.log('');
  }

  const templateP50 = template?.sandboxP50Ms ?? NaN;
  const perExtraMiB = deltas ? deltas.perExtraSandbox.total / 1024 : NaN;
  const pass = {
    templateStart: template ? templateP50 <= TARGETS.templateStartP50MsMax : null,
    memory: deltas ? perExtraMiB <= TARGETS.perExtraSandboxMiBMax : null,
    blockOver9pDirect: ratios ? ratios.blockOver9pDirect >= TARGETS.blockOver9pMin : null,
    blockOver9pBuffered: ratios ? ratios.blockOver9pBuffered >= TARGETS.blockOver9pMin : null,
  };
  console.log(`targets (${accel}):`);
  console.log(`  template sandbox start (RunPodSandbox) p50 ${fmt(templateP50)} ms <= ${TARGETS.templateStartP50MsMax} ms: ${verdict(pass.templateStart)}`);
  console.log(`  PSS per extra sandbox ${fmt(perExtraMiB, 1)} MiB <= ${TARGETS.perExtraSandboxMiBMax} MiB: ${verdict(pass.memory)}`);
  console.log(`  block rootfs / 9p random-read IOPS >= ${TARGETS.blockOver9pMin}x: O_DIRECT ${fmt(ratios?.blockOver9pDirect, 2)}x ${verdict(pass.blockOver9pDirect)}; buffered ${fmt(ratios?.blockOver9pBuffered, 2)}x ${verdict(pass.blockOver9pBuffered)}`);
  console.log(
    JSON.stringify({
      bench: 'runv',
      accel: r.accel,
      accelReason: r.accelReason,
      loadAverage: r.load,
      template: r.template,
      start: r.starts,
      memory: memory && deltas && {
        clones: memory.clones,
        kib: { bare1: memory.bare1, bareN: memory.bareN, podsN: memory.podsN, cold: memory.cold },
        perExtraSandboxKiB: deltas.perExtraSandbox,
        perContainerKiB: deltas.perContainer,
        perExtraSandboxMiB: perExtraMiB,
        templateShmMiB: memory.templateShmKiB / 1024,
        fallbacks: memory.fallbacks,
      },
      cpu: r.cpu && { execOverheadMs: r.cpu.execOverheadMs, runvClockRate: r.cpu.runvClockRate, runvClockSpanS: r.cpu.runvClockSpanS, reps: r.reps, workloads: cpu },
      fio: r.fio && { reps: r.reps, runtimeS: FIO_RUNTIME_S, rampS: FIO_RAMP_S, fileMiB: r.dataMiB, table: r.fio, ratios },
      targets: { ...TARGETS, pass },
    }),
  );
}
