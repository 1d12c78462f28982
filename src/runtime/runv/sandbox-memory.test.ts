import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GUEST_OVERHEAD_MIB, MEMORY_STEP_MIB, sandboxMemoryMiB } from './sandbox-memory.js';
import { DEFAULT_MEMORY_MIB } from './vm.js';

const MIB = 1024 * 1024;

describe('runv sandbox memory', () => {
  it('gives a pod without a limit the default VM', () => {
    assert.equal(sandboxMemoryMiB(undefined), DEFAULT_MEMORY_MIB);
    assert.equal(sandboxMemoryMiB({ cpuShares: 2 }), DEFAULT_MEMORY_MIB);
    assert.equal(sandboxMemoryMiB({ memoryLimitBytes: 0 }), DEFAULT_MEMORY_MIB);
  });

  it('gives a limited pod its limit plus the guest overhead, in whole steps', () => {
    assert.equal(sandboxMemoryMiB({ memoryLimitBytes: 128 * MIB }), 128 + GUEST_OVERHEAD_MIB);
    assert.equal(sandboxMemoryMiB({ memoryLimitBytes: 100 * MIB + 1 }), 256);
    for (const limit of [1, 64 * MIB, 1000 * MIB, 3 * 1024 * MIB]) {
      const size = sandboxMemoryMiB({ memoryLimitBytes: limit });
      assert.equal(size % MEMORY_STEP_MIB, 0);
      assert.ok(size * MIB >= limit + GUEST_OVERHEAD_MIB * MIB && size * MIB < limit + (GUEST_OVERHEAD_MIB + MEMORY_STEP_MIB) * MIB + MIB, `${limit} -> ${size}`);
    }
  });
});
