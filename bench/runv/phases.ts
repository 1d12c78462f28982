/** The measurements of bench/runv, one function per phase (see run.ts for what each measures and why). */
import { stat } from 'node:fs/promises';
import { percentile, sleep } from '../runtime/proc.js';
import { IMAGE_DATA_FILE } from './fio-image.js';
import { log } from './log.js';
import { pssOf, qemuParts, type Pss, type QemuParts, type RunvFootprint } from './memory.js';
import { removePod, runPod, runSandbox, startContainer, type ContainerConfig, type Handler, type Pod, type Sandbox } from './pods.js';
import type { VmStart } from './runtime-process.js';
import { footprint, setMode, vmStarts, type Runtime } from './runtime.js';
import { CPU_WORKLOADS, cpuRun, exec, fio, type FioMode, type FioResult } from './workload.js';

/** How long pods run before a memory sample: a clone's first seconds touch the pages it then keeps. */
const MEMORY_SETTLE_MS = 5_000;
const VOLUME_MOUNT = '/vol';

export interface BenchConfig {
  starts: number;
  cold: number;
  clones: number;
  reps: number;
  busyboxImage: string;
  fioImage: string;
}

// ---------------------------------------------------------------- sandbox start

export type StartKind = 'runc' | 'runv-cold' | 'runv-template' | 'runv-pool';

const MODES = { 'runv-cold': 'cold', 'runv-template': 'template', 'runv-pool': 'pool' } as const;

export interface StartSample extends Pod {
  kind: StartKind;
  teardownMs: number;
  /** runv: the VM start this pod caused (none for a pool start that found its VM), and the parts of RunPodSandbox before and after it, ms. */
  vm?: VmStart;
  beforeVmMs?: number;
  afterVmMs?: number;
}

const sleeper = (image: string): ContainerConfig => ({ image, command: ['sleep', '86400'] });

/** One pod of `kind` from start to removal. */
async function startSample(rt: Runtime, config: BenchConfig, kind: StartKind, name: string): Promise<StartSample> {
  if (kind !== 'runc') await setMode(rt, MODES[kind]);
  const pod = await runPod(rt.client, rt.opts.logRoot, name, kind === 'runc' ? 'runc' : 'runv', sleeper(config.busyboxImage));
  const t0 = performance.now();
  await removePod(rt.client, pod.podId);
  const sample: StartSample = { ...pod, kind, teardownMs: performance.now() - t0 };
  if (kind !== 'runc') {
    const starts = await vmStarts(rt);
    if (kind === 'runv-pool' && starts.length === 0) return sample;
    if (starts.length !== 1) throw new Error(`pod ${name}: expected one VM start, the runtime saw ${starts.length}`);
    const vm = starts[0]!;
    Object.assign(sample, { vm, beforeVmMs: vm.began - pod.sandboxAt.began, afterVmMs: pod.sandboxAt.ended - vm.ended });
  }
  return sample;
}

/** Warm-up pods, then runc, runv cold, runv template and runv pool pods one at a time, interleaved. */
export async function startPhase(rt: Runtime, config: BenchConfig): Promise<StartSample[]> {
  log('start: warm-up pods (runc, runv cold, runv template, runv pool): first image unpack and rootfs disk, lazy code');
  for (const kind of ['runc', 'runv-cold', 'runv-template', 'runv-pool'] as const) await startSample(rt, config, kind, `warmup-${kind}`);
  const samples: StartSample[] = [];
  for (let i = 0; i < Math.max(config.starts, config.cold); i++) {
    const first = samples.length;
    if (i < config.starts) samples.push(await startSample(rt, config, 'runc', `runc-${i}`));
    if (i < config.cold) samples.push(await startSample(rt, config, 'runv-cold', `cold-${i}`));
    if (i < config.starts) samples.push(await startSample(rt, config, 'runv-template', `tpl-${i}`));
    if (i < config.starts) samples.push(await startSample(rt, config, 'runv-pool', `pool-${i}`));
    const text = samples.slice(first).map((s) => `${s.kind} ${s.sandboxMs.toFixed(0)}/${s.firstContainerMs.toFixed(0)} ms${fallbackNote(s)}`);
    log(`start: round ${i + 1} (sandbox/first container): ${text.join(', ')}`);
  }
  return samples;
}

function fallbackNote(s: StartSample): string {
  if (s.kind === 'runv-template' && !s.vm!.restored) return ' (fell back to a cold boot)';
  if (s.kind === 'runv-pool' && s.vm) return ' (the pool had no VM ready)';
  return '';
}

// ---------------------------------------------------------------- memory

export interface MemoryResult {
  clones: number;
  /** Template clones without containers: 1, then `clones`. */
  bare1: RunvFootprint;
  bareN: RunvFootprint;
  /** The same `clones` sandboxes, each now running a busybox sleep container. */
  podsN: RunvFootprint;
  /** One cold-booted sandbox alone (no container): its QEMU, for reference. */
  cold: { pss: Pss; parts: QemuParts } | null;
  /** Template starts of this phase that fell back to a cold boot. */
  fallbacks: number;
  /** What the template's RAM file holds on /dev/shm (tmpfs pages), KiB. */
  templateShmKiB: number;
}

export async function memoryPhase(rt: Runtime, config: BenchConfig): Promise<MemoryResult> {
  log('memory: one cold-booted sandbox alone, for reference');
  await setMode(rt, 'cold');
  const coldSandbox = await runSandbox(rt.client, rt.opts.logRoot, 'mem-cold', 'runv');
  await sleep(MEMORY_SETTLE_MS);
  const coldStart = (await vmStarts(rt))[0];
  const { templateMemoryFile: memoryFile, kernelFile, memoryMiB } = rt.ready;
  const cold = coldStart ? { pss: await pssOf(coldStart.pid), parts: await qemuParts(coldStart.pid, { memoryFile, kernelFile, memoryMiB }) } : null;
  await removePod(rt.client, coldSandbox.podId);

  await setMode(rt, 'template');
  const sandboxes: Sandbox[] = [await runSandbox(rt.client, rt.opts.logRoot, 'mem-0', 'runv')];
  await sleep(MEMORY_SETTLE_MS);
  const bare1 = await footprint(rt);
  log(`memory: 1 sandbox: ${mib(bare1.total.pss)} MiB PSS (runtime ${mib(bare1.runtime.pss)}, QEMU ${mib(bare1.qemu.pss)})`);
  for (let i = 1; i < config.clones; i++) sandboxes.push(await runSandbox(rt.client, rt.opts.logRoot, `mem-${i}`, 'runv'));
  await sleep(MEMORY_SETTLE_MS);
  const bareN = await footprint(rt);
  log(`memory: ${config.clones} sandboxes: ${mib(bareN.total.pss)} MiB PSS (runtime ${mib(bareN.runtime.pss)}, ${bareN.qemuCount} QEMUs ${mib(bareN.qemu.pss)})`);
  for (const sandbox of sandboxes) await startContainer(rt.client, sandbox, sleeper(config.busyboxImage));
  await sleep(MEMORY_SETTLE_MS);
  const podsN = await footprint(rt);
  log(`memory: ${config.clones} pods with a container each: ${mib(podsN.total.pss)} MiB PSS`);
  const fallbacks = (await vmStarts(rt)).filter((s) => !s.restored).length;
  const shm = await stat(memoryFile).catch(() => null);
  for (const sandbox of sandboxes) await removePod(rt.client, sandbox.podId);
  return { clones: config.clones, bare1, bareN, podsN, cold, fallbacks, templateShmKiB: shm ? (shm.blocks * 512) / 1024 : NaN };
}

export function mib(kib: number): string {
  return (kib / 1024).toFixed(1);
}

// ---------------------------------------------------------------- workloads: cpu and fio

export interface WorkloadPods {
  runc: Pod;
  runv: Pod;
}

/** One runc and one runv (template) pod of the fio image, each with the host directory `volume` at VOLUME_MOUNT. */
export async function workloadPods(rt: Runtime, config: BenchConfig, volume: string): Promise<WorkloadPods> {
  await setMode(rt, 'template');
  const spec: ContainerConfig = { image: config.fioImage, command: ['sleep', '86400'], mounts: [{ hostPath: volume, containerPath: VOLUME_MOUNT, readonly: true }] };
  log('workload: starting a runc and a runv pod of the fio image (the runv rootfs disk of the image is built first)');
  const pods = {} as WorkloadPods;
  for (const h of ['runc', 'runv'] as const) pods[h] = await runPod(rt.client, rt.opts.logRoot, `work-${h}`, h, spec);
  const fallbacks = (await vmStarts(rt)).filter((s) => !s.restored).length;
  if (fallbacks > 0) log('workload: WARNING: the runv pod was cold booted, not restored (the workload does not depend on it)');
  return pods;
}

export interface CpuResult {
  workload: string;
  what: string;
  /**
   * The container's own clock around the script (/proc/uptime), median of the runs, ms; runv's divided
   * by the guest clock's measured rate (runvClockRate), so that both are in host milliseconds.
   */
  runcMs: number;
  runvMs: number;
  /** runv's median as the guest's clock showed it, before that correction. */
  runvGuestClockMs: number;
  /** Cross-check: the host's wall time of the ExecSync less the median exec overhead, median, ms. */
  runcWallNetMs: number;
  runvWallNetMs: number;
}

export interface CpuPhaseResult {
  results: CpuResult[];
  execOverheadMs: Record<Handler, number>;
  /**
   * How fast the runv guest's clock ran against the host's over the phase (1 = exact): the in-container
   * times are only as good as it. From two reads of the guest's uptime, each placed at the end of its
   * ExecSync (most of an exec's time goes before its command runs), so it is good to about the
   * difference between two execs' return paths over the phase's length.
   */
  runvClockRate: number;
  runvClockSpanS: number;
}

/** The guest's uptime (s) and the host time (ms) when the ExecSync that read it returned. */
async function uptimeReading(rt: Runtime, containerId: string): Promise<{ guestS: number; hostMs: number }> {
  const { stdout } = await exec(rt.client, containerId, ['cat', '/proc/uptime']);
  const hostMs = performance.now();
  const guestS = Number(stdout.split(' ')[0]);
  if (!Number.isFinite(guestS)) throw new Error(`/proc/uptime in ${containerId} reads ${JSON.stringify(stdout)}`);
  return { guestS, hostMs };
}

/** Each workload `reps` times per handler, interleaved rep by rep, so load from elsewhere falls on both alike. */
export async function cpuPhase(rt: Runtime, config: BenchConfig, pods: WorkloadPods): Promise<CpuPhaseResult> {
  const handlers = ['runc', 'runv'] as const;
  const clockStart = await uptimeReading(rt, pods.runv.containerId);
  const trueMs: Record<Handler, number[]> = { runc: [], runv: [] };
  for (let rep = 0; rep < config.reps; rep++) for (const h of handlers) trueMs[h].push((await exec(rt.client, pods[h].containerId, ['true'])).ms);
  const execOverheadMs = { runc: percentile(trueMs.runc, 50), runv: percentile(trueMs.runv, 50) };
  log(`cpu: exec overhead runc ${execOverheadMs.runc.toFixed(0)} ms, runv ${execOverheadMs.runv.toFixed(0)} ms`);
  // The data file is read once first, so that md5sum reads page cache in both.
  for (const h of handlers) await exec(rt.client, pods[h].containerId, ['sh', '-c', `cat ${IMAGE_DATA_FILE} >/dev/null`]);
  const measured: (Omit<CpuResult, 'runvMs'>)[] = [];
  for (const w of CPU_WORKLOADS) {
    const runs: Record<Handler, { wallMs: number; inContainerMs: number }[]> = { runc: [], runv: [] };
    for (let rep = 0; rep < config.reps; rep++) for (const h of handlers) runs[h].push(await cpuRun(rt.client, pods[h].containerId, w));
    const show = (h: Handler) => runs[h].map((r) => `${r.inContainerMs.toFixed(0)}`).join('/');
    log(`cpu: ${w.name}: in-container runc ${show('runc')} ms, runv ${show('runv')} ms`);
    const median = (h: Handler, f: (r: { wallMs: number; inContainerMs: number }) => number) => percentile(runs[h].map(f), 50);
    measured.push({
      workload: w.name, what: w.what,
      runcMs: median('runc', (r) => r.inContainerMs), runvGuestClockMs: median('runv', (r) => r.inContainerMs),
      runcWallNetMs: median('runc', (r) => r.wallMs) - execOverheadMs.runc, runvWallNetMs: median('runv', (r) => r.wallMs) - execOverheadMs.runv,
    });
  }
  const clockEnd = await uptimeReading(rt, pods.runv.containerId);
  const hostS = (clockEnd.hostMs - clockStart.hostMs) / 1000;
  const runvClockRate = (clockEnd.guestS - clockStart.guestS) / hostS;
  const results = measured.map((m) => ({ ...m, runvMs: m.runvGuestClockMs / runvClockRate }));
  return { results, execOverheadMs, runvClockRate, runvClockSpanS: hostS };
}

export type FioPath = 'rootfs' | 'volume';
export type FioCell = FioResult & { runs: number[] };
export type FioTable = Record<Handler, Record<FioPath, Record<FioMode, FioCell>>>;

/**
 * fio on the rootfs and the volume, O_DIRECT and buffered, in both pods, `reps` times interleaved;
 * each cell is the run with the median IOPS, with every run's IOPS in rep order. A pod's rootfs and
 * volume runs of one mode follow each other, so that their ratio can be taken rep by rep, between
 * runs that saw the same load from elsewhere.
 */
export async function fioPhase(rt: Runtime, config: BenchConfig, pods: WorkloadPods): Promise<FioTable> {
  const files: Record<FioPath, string> = { rootfs: IMAGE_DATA_FILE, volume: `${VOLUME_MOUNT}/fio.dat` };
  const runs = new Map<string, FioResult[]>();
  for (let rep = 0; rep < config.reps; rep++) {
    for (const mode of ['direct', 'buffered'] as const) {
      for (const h of ['runc', 'runv'] as const) {
        for (const path of ['rootfs', 'volume'] as const) {
          const result = await fio(rt.client, pods[h].containerId, files[path], mode);
          const key = `${h}/${path}/${mode}`;
          runs.set(key, [...(runs.get(key) ?? []), result]);
          log(`fio: rep ${rep + 1}: ${h} ${path} ${mode}: ${result.iops.toFixed(0)} IOPS, ${result.meanLatUs.toFixed(1)} µs`);
        }
      }
    }
  }
  const cell = (key: string): FioCell => {
    const all = runs.get(key)!;
    const iops = percentile(all.map((r) => r.iops), 50);
    return { ...all.find((r) => r.iops === iops)!, runs: all.map((r) => r.iops) };
  };
  const table = {} as FioTable;
  for (const h of ['runc', 'runv'] as const) {
    table[h] = {
      rootfs: { direct: cell(`${h}/rootfs/direct`), buffered: cell(`${h}/rootfs/buffered`) },
      volume: { direct: cell(`${h}/volume/direct`), buffered: cell(`${h}/volume/buffered`) },
    };
  }
  return table;
}
