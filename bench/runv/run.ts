/**
 * bench/runv: the runv handler (a QEMU microVM per pod) against runc pods of the same runtime, in the
 * same run: sandbox start (cold boot and VM template), host memory per extra sandbox, CPU-bound
 * workloads, and fio random reads on the block rootfs, the 9p path and runc's overlay.
 *
 *   node dist/bench/runv/run.js [--starts 10] [--cold 5] [--clones 10] [--reps 3] [--only start,memory,cpu,fio]
 *
 * Needs root, QEMU and fio (scripts/deps). One Atoll runtime process (runtime-process.ts) serves both
 * handlers over CRI, with its pod bridge inside a "node" network namespace made here, so the host's
 * interfaces and routes are never touched. Its root is a temp directory, so its VM template is a
 * private one (built at start; removed at the end with its /dev/shm memory). The guest kernel and
 * images come from the checkout's `.cache/runv` (shared with the runv tests; built there if missing),
 * the kernel through a private copy (runtime.ts). The accelerator is whatever the runtime chooses (a
 * KVM test boot, else TCG); the output says which.
 *
 * Phases (phases.ts):
 *   start   warm-up pods, then pods one at a time, interleaved runc / runv cold boot / runv template /
 *           runv pool (a pool of one idle clone, ready before each start; src/runtime/runv/pool.ts)
 *           (so that other load on the machine hits all four alike): RunPodSandbox, then
 *           CreateContainer + StartContainer of busybox `sleep`, each timed through CRI, and the VM
 *           start inside RunPodSandbox timed by the runtime; each pod is removed before the next. A
 *           template start that fell back to a cold boot, and a pool start that found no idle VM, are
 *           counted and reported.
 *   memory  one cold-booted sandbox alone (reference); then template sandboxes: PSS (smaps_rollup) of
 *           the runtime process and every QEMU with 1 and with --clones sandboxes, then with a busybox
 *           `sleep` container in each; per extra sandbox = (N - 1 sandbox) / (N - 1). QEMU's PSS is
 *           split by mapping: guest RAM (and how much of it the clone wrote), TCG's code cache, the
 *           guest kernel file, the rest.
 *   cpu     in one runc and one runv (template) pod of the fio image: CPU-bound scripts, host wall time
 *           of ExecSync less the exec overhead, median of --reps, interleaved.
 *   fio     in the same pods: 4 KiB random reads (psync, QD 1) of the same data file on the container
 *           rootfs (runv: ext4 on a qcow2 layer over virtio-blk; runc: overlay) and on a host directory
 *           volume (runv: over 9p; runc: a bind mount), with O_DIRECT and buffered, median of --reps.
 *
 * Targets (issue 7, TCG): template start p50 <= 500 ms; <= 25 MiB PSS per extra sandbox; block rootfs
 * random-read IOPS >= 3x the 9p path (judged both with O_DIRECT and buffered). Prints tables, then one
 * JSON line.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { busyboxRootfs } from '../../src/runtime/images/busybox.js';
import { buildImageArchive } from '../../src/runtime/images/import.js';
import { cleanUpOnSignals, cleanupAll, interrupted, onCleanup, unmountUnder } from '../runtime/cleanup.js';
import { IMAGE_DATA_FILE, fioImage } from './fio-image.js';
import { log } from './log.js';
import { cpuPhase, fioPhase, memoryPhase, startPhase, workloadPods, type BenchConfig, type CpuPhaseResult, type FioTable } from './phases.js';
import { removePod } from './pods.js';
import { printReport, summarizeStarts, type StartSummary } from './report.js';
import { privateRunvCache, startRuntime } from './runtime.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PHASES = ['start', 'memory', 'cpu', 'fio'] as const;
/** The brief's ceiling: 10 VMs at once on a shared 2-core machine. */
const MAX_CLONES = 10;
const BUSYBOX_REF = 'atoll.local/bench-runv/busybox:1';
const FIO_REF = 'atoll.local/bench-runv/fio:1';
/** The data file fio reads (and md5sum hashes): small enough to sit in a 256 MiB guest's page cache for the buffered runs. */
const DATA_BYTES = 32 * 1024 * 1024;

const { values: args } = parseArgs({
  options: {
    starts: { type: 'string', default: '10' },
    cold: { type: 'string', default: '5' },
    clones: { type: 'string', default: '10' },
    reps: { type: 'string', default: '3' },
    only: { type: 'string', default: PHASES.join(',') },
    'runv-cache': { type: 'string', default: process.env.ATOLL_RUNV_TEST_CACHE ?? join(ROOT, '.cache', 'runv') },
  },
});

function usage(message: string): never {
  console.error(message);
  process.exit(2);
}

function whole(flag: string, min: number, max = Infinity): number {
  const value = args[flag as keyof typeof args];
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) usage(`--${flag} takes a whole number from ${min}${max < Infinity ? ` to ${max}` : ''}, got ${JSON.stringify(value)}`);
  return n;
}

const config: BenchConfig = {
  starts: whole('starts', 1),
  cold: whole('cold', 1),
  // Two at least: the per-extra-sandbox figure compares one sandbox with --clones.
  clones: whole('clones', 2, MAX_CLONES),
  reps: whole('reps', 1),
  busyboxImage: BUSYBOX_REF,
  fioImage: FIO_REF,
};
const ONLY = new Set(String(args.only).split(','));
for (const phase of ONLY) if (!(PHASES as readonly string[]).includes(phase)) usage(`--only takes a comma-separated list of ${PHASES.join(', ')}; got ${JSON.stringify(phase)}`);
const RUNV_CACHE = String(args['runv-cache']);

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/runv needs root (network namespaces, QEMU taps, runc)');
  const loadStart = loadavg()[0]!;
  const base = await mkdtemp(join(tmpdir(), 'atoll-bench-runv-'));
  onCleanup('temp dir', async () => {
    await unmountUnder(base);
    await rm(base, { recursive: true, force: true });
  });
  log(`building the busybox and fio images in ${base}`);
  const busyboxArchive = await buildImageArchive({
    ref: BUSYBOX_REF,
    files: await busyboxRootfs(join(base, 'busybox')),
    config: { Cmd: ['sh'], Env: ['PATH=/bin'], WorkingDir: '/', User: '' },
    output: join(base, 'busybox.tar'),
  });
  const fioArchive = await fioImage(FIO_REF, join(base, 'fio-rootfs'), join(base, 'fio.tar'), DATA_BYTES);
  // The volume holds the same data file as the image.
  const volume = join(base, 'volume');
  await mkdir(volume);
  await copyFile(join(base, 'fio-rootfs', IMAGE_DATA_FILE), join(volume, 'fio.dat'));
  await rm(join(base, 'fio-rootfs'), { recursive: true, force: true });
  await rm(join(base, 'busybox'), { recursive: true, force: true });

  log(`preparing the guest kernel and images in ${RUNV_CACHE}`);
  const runvCache = await privateRunvCache(RUNV_CACHE, base);
  log('starting the runtime (runc + runv) and building its VM template');
  const rt = await startRuntime(base, runvCache, [busyboxArchive, fioArchive]);
  log(`runtime ready: accelerator ${rt.ready.accel}; template ${rt.ready.templateKey} ${rt.ready.templateBuilt ? `built in ${rt.ready.templateBuildMs} ms` : 'reused'}`);
  const accelReason = await readFile(join(runvCache, 'runv', 'accel.json'), 'utf8').then((t) => String((JSON.parse(t) as { reason?: unknown }).reason ?? ''), () => '');

  const samples = ONLY.has('start') ? await startPhase(rt, config) : [];
  const memory = ONLY.has('memory') ? await memoryPhase(rt, config) : undefined;
  let cpu: CpuPhaseResult | undefined;
  let fio: FioTable | undefined;
  if (ONLY.has('cpu') || ONLY.has('fio')) {
    const pods = await workloadPods(rt, config, volume);
    if (ONLY.has('cpu')) cpu = await cpuPhase(rt, config, pods);
    if (ONLY.has('fio')) fio = await fioPhase(rt, config, pods);
    for (const pod of [pods.runc, pods.runv]) await removePod(rt.client, pod.podId);
  }
  if (interrupted) throw new Error('interrupted: no results');

  printReport({
    accel: rt.ready.accel,
    accelReason,
    load: { start: loadStart, end: loadavg()[0]! },
    template: { key: rt.ready.templateKey, buildMs: rt.ready.templateBuildMs, built: rt.ready.templateBuilt, stateBytes: rt.ready.templateStateBytes },
    reps: config.reps,
    dataMiB: DATA_BYTES / 1024 / 1024,
    starts: (['runc', 'runv-cold', 'runv-template', 'runv-pool'] as const).map((k) => summarizeStarts(samples, k)).filter((s): s is StartSummary => s !== undefined),
    memory,
    cpu,
    fio,
  });
}

cleanUpOnSignals();
let failed = false;
try {
  await main();
} catch (err) {
  failed = true;
  console.error('bench/runv failed:', err);
} finally {
  await cleanupAll();
}
process.exit(failed ? 1 : 0);
