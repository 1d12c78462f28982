/**
 * Workloads of bench/runv, run with CRI ExecSync in a container of the fio image: CPU-bound scripts
 * timed from the host, and fio random reads.
 *
 * CPU timing is the container's own clock around the script (/proc/uptime, 10 ms steps), so that
 * starting the exec (under TCG a second or more, and noisy) is left out. The host's wall time around
 * the ExecSync, less the median ExecSync of `true`, is kept as a cross-check, and the bench measures
 * the guest clock's rate against the host's: under TCG a guest clock is only as good as its TSC.
 */
import type { CriClient } from '../../src/runtime/cri/index.js';
import { IMAGE_DATA_FILE } from './fio-image.js';

/** One exec may take this long: a CPU script under TCG runs about ten times as long as under runc. */
const EXEC_TIMEOUT_S = 300;
/** fio's measured run and the ramp before it, in seconds. */
export const FIO_RUNTIME_S = 5;
export const FIO_RAMP_S = 1;

export interface CpuWorkload {
  name: string;
  what: string;
  script: string;
}

export const CPU_WORKLOADS: readonly CpuWorkload[] = [
  { name: 'md5sum', what: `busybox md5sum of the image's data file, 4 times (read from page cache)`, script: `for i in 1 2 3 4; do md5sum ${IMAGE_DATA_FILE}; done >/dev/null` },
  { name: 'sh-loop', what: 'busybox sh arithmetic loop, 500000 iterations', script: 'i=0; while [ $i -lt 500000 ]; do i=$((i+1)); done' },
];

/** One run of `workload`: the host's wall time of the ExecSync, and the time the container's clock saw the script take, ms. */
export async function cpuRun(client: CriClient, containerId: string, workload: CpuWorkload): Promise<{ wallMs: number; inContainerMs: number }> {
  const { ms, stdout } = await exec(client, containerId, ['sh', '-c', `read a _ </proc/uptime; ${workload.script}; read b _ </proc/uptime; echo "$a $b"`]);
  const [a, b] = stdout.trim().split(' ').map(Number);
  if (!Number.isFinite(a) || !Number.isFinite(b)) throw new Error(`${workload.name} in ${containerId}: no uptimes in its output: ${stdout.slice(0, 200)}`);
  return { wallMs: ms, inContainerMs: (b! - a!) * 1000 };
}

export async function exec(client: CriClient, containerId: string, cmd: string[]): Promise<{ ms: number; stdout: string }> {
  const t0 = performance.now();
  const out = await client.ExecSync({ container_id: containerId, cmd, timeout: EXEC_TIMEOUT_S });
  const ms = performance.now() - t0;
  if (out.exit_code !== 0) throw new Error(`exec ${JSON.stringify(cmd)} in ${containerId} exited ${out.exit_code}: ${out.stderr.toString().trim()}`);
  return { ms, stdout: out.stdout.toString() };
}

export type FioMode = 'direct' | 'buffered';

export interface FioResult {
  iops: number;
  /** Mean completion latency of one read, µs. */
  meanLatUs: number;
}

/**
 * 4 KiB random reads of `file` with psync at queue depth 1 for FIO_RUNTIME_S seconds. `direct`: with
 * O_DIRECT, so no page cache in the container's kernel serves the reads; `buffered`: through it, after
 * one read of the whole file (fio's own invalidation is off).
 */
export async function fio(client: CriClient, containerId: string, file: string, mode: FioMode): Promise<FioResult> {
  if (mode === 'buffered') await exec(client, containerId, ['sh', '-c', `cat ${file} >/dev/null`]);
  const { stdout } = await exec(client, containerId, [
    'fio', '--name=randread', `--filename=${file}`, '--rw=randread', '--bs=4k', '--ioengine=psync', '--iodepth=1', '--numjobs=1',
    '--thread', '--readonly', `--direct=${mode === 'direct' ? 1 : 0}`, '--invalidate=0',
    '--time_based', `--runtime=${FIO_RUNTIME_S}`, `--ramp_time=${FIO_RAMP_S}`, '--output-format=json',
  ]);
  const start = stdout.indexOf('{');
  let report: { jobs?: { read?: { iops?: unknown; lat_ns?: { mean?: unknown } } }[] };
  try {
    report = JSON.parse(stdout.slice(start)) as typeof report;
  } catch (err) {
    throw new Error(`fio on ${file} printed no JSON report (${(err as Error).message}): ${stdout.slice(0, 400)}`);
  }
  const read = report.jobs?.[0]?.read;
  if (typeof read?.iops !== 'number' || typeof read.lat_ns?.mean !== 'number') throw new Error(`fio on ${file}: the report has no read IOPS and latency: ${stdout.slice(0, 400)}`);
  return { iops: read.iops, meanLatUs: read.lat_ns.mean / 1000 };
}
