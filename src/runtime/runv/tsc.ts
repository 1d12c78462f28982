import { readFileSync } from 'node:fs';

/**
 * The host's TSC rate, which a TCG guest must be told. Under TCG the guest's TSC is the host's (QEMU's
 * rdtsc reads the host's counter), but the guest kernel cannot calibrate it there and hangs trying, so
 * it is given the rate on its command line (vm.ts); a wrong rate makes every guest clock run off by
 * the error (2 GHz on a 2.096 GHz host: 4.8% fast).
 *
 * The rate comes from /proc/cpuinfo's `bogomips`, not from the boot log, which may be gone: Linux
 * derives BogoMIPS from its delay timer's loops per jiffy, and that timer is the TSC on x86
 * (lpj = tsc_khz * 1000 / HZ, BogoMIPS = lpj * HZ / 500000, so tsc_khz = BogoMIPS * 500, to 5 kHz).
 * `cpu MHz` is not used: it is the current clock where the CPU reports APERF/MPERF, which turbo and
 * power saving move away from the TSC's constant rate.
 */

const CPUINFO = '/proc/cpuinfo';
/** kHz per BogoMIPS: BogoMIPS = lpj * HZ / 500000 and lpj = khz * 1000 / HZ. */
const KHZ_PER_BOGOMIPS = 500;
/** Rates outside this range are no TSC rate of a real x86 CPU: the line is something else. */
const MIN_TSC_KHZ = 100_000;
const MAX_TSC_KHZ = 10_000_000;

export class TscError extends Error {
  override name = 'TscError';
}

/** The TSC rate in kHz from the text of /proc/cpuinfo (its first CPU's `bogomips`). */
export function tscKhzFromCpuinfo(cpuinfo: string): number {
  const match = /^bogomips\s*:\s*(\d+(?:\.\d+)?)\s*$/im.exec(cpuinfo);
  if (!match) throw new TscError(`${CPUINFO} has no 'bogomips' line, so the host's TSC rate is unknown`);
  const khz = Math.round(Number(match[1]) * KHZ_PER_BOGOMIPS);
  if (khz < MIN_TSC_KHZ || khz > MAX_TSC_KHZ) {
    throw new TscError(`${CPUINFO} gives bogomips ${match[1]}, that is a TSC of ${khz} kHz, outside ${MIN_TSC_KHZ}-${MAX_TSC_KHZ} kHz`);
  }
  return khz;
}

let hostKhz: number | undefined;

/** The host's TSC rate in kHz, read once per process (it does not change while the host runs). */
export function hostTscKhz(): number {
  hostKhz ??= tscKhzFromCpuinfo(readFileSync(CPUINFO, 'utf8'));
  return hostKhz;
}
