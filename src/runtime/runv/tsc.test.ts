import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { TscError, hostTscKhz, tscKhzFromCpuinfo } from './tsc.js';

describe('host TSC rate', () => {
  it('is BogoMIPS * 500 kHz, from the first CPU', () => {
    const cpuinfo = 'processor\t: 0\nmodel name\t: AMD EPYC\ncpu MHz\t\t: 2096.010\nbogomips\t: 4192.02\n\nprocessor\t: 1\nbogomips\t: 4192.04\n';
    assert.equal(tscKhzFromCpuinfo(cpuinfo), 2_096_010);
  });

  it('refuses a cpuinfo without bogomips, or with a rate no TSC has, naming the value', () => {
    assert.throws(() => tscKhzFromCpuinfo('processor\t: 0\ncpu MHz\t\t: 2096.010\n'), (err: unknown) => err instanceof TscError && /no 'bogomips' line/.test(err.message));
    assert.throws(() => tscKhzFromCpuinfo('bogomips\t: 48.00\n'), /bogomips 48.00, that is a TSC of 24000 kHz, outside/);
  });

  it("reads this host's rate, which agrees with its cpu MHz where that is the TSC's", () => {
    const khz = hostTscKhz();
    assert.equal(hostTscKhz(), khz);
    const cpuMhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]);
    console.log(`host TSC: ${khz} kHz (cpu MHz ${cpuMhz})`);
    // Only a bound: a CPU with turbo reports its current clock as cpu MHz.
    if (Number.isFinite(cpuMhz)) assert.ok(Math.abs(khz / 1000 / cpuMhz - 1) < 0.5, `TSC ${khz} kHz is far from cpu MHz ${cpuMhz}`);
  });
});
