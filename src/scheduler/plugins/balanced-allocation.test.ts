import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testNode, testPod } from '../testing.js';
import { balancedAllocation } from './balanced-allocation.js';

describe('NodeResourcesBalancedAllocation', () => {
  it('prefers the node where cpu and memory shares end up closest', () => {
    const alloc = { cpu: '1', memory: '1000Mi', pods: '10' };
    const cpuHeavy = testNode('cpu', { allocatable: alloc, pods: [testPod({ cpu: '600m', memory: '100Mi' })] });
    const even = testNode('even', { allocatable: alloc, pods: [testPod({ cpu: '300m', memory: '300Mi' })] });
    const pod = testPod({ cpu: '100m', memory: '100Mi' });
    // cpu-heavy: shares 0.7 and 0.2 → (1 - 0.25) * 100.
    assert.equal(balancedAllocation.score!(pod, cpuHeavy), 75);
    assert.equal(balancedAllocation.score!(pod, even), 100);
  });
});
