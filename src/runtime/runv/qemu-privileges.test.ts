import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { QEMU_CAPABILITIES, withQemuPrivileges } from './qemu-privileges.js';

const run = promisify(execFile);

async function statusUnder(hugePages: boolean): Promise<Map<string, string>> {
  const [file, ...args] = [...withQemuPrivileges({ hugePages }), 'cat', '/proc/self/status'];
  const { stdout } = await run(file!, args);
  return new Map(stdout.trim().split('\n').map((line) => {
    const [key = '', value = ''] = line.split(':\t');
    return [key, value.trim()];
  }));
}

describe('QEMU privileges', () => {
  const kept = Object.values(QEMU_CAPABILITIES).reduce((mask, cap) => mask | (1n << BigInt(cap)), 0n);

  it('keeps only the 9p share capabilities, in the bounding and effective sets, with no_new_privs', async () => {
    const status = await statusUnder(true);
    assert.equal(BigInt(`0x${status.get('CapBnd')}`), kept);
    assert.equal(BigInt(`0x${status.get('CapEff')}`), kept);
    assert.equal(BigInt(`0x${status.get('CapPrm')}`), kept);
    assert.equal(status.get('NoNewPrivs'), '1');
    assert.equal(status.get('THP_enabled'), '1');
  });

  it('turns transparent huge pages off when asked', async () => {
    assert.equal((await statusUnder(false)).get('THP_enabled'), '0');
  });

  it('fails the start, naming the step, when the command cannot be run', async () => {
    const [file, ...args] = [...withQemuPrivileges({ hugePages: true }), '/no/such/qemu'];
    await assert.rejects(run(file!, args), (err: { stderr: string }) => /exec \/no\/such\/qemu: No such file/.test(err.stderr));
  });
});
