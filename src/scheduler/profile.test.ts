import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Plugin, SKIP } from './framework.js';
import { FitError, NO_NODES_AVAILABLE, Profile, numFeasibleNodesToFind } from './profile.js';
import { defaultProfile } from './registry.js';
import { testCluster, testNode, testPod } from './testing.js';

describe('numFeasibleNodesToFind', () => {
  it('checks every node below 100, then an adaptive share of at least 100 nodes', () => {
    assert.equal(numFeasibleNodesToFind(50), 50);
    assert.equal(numFeasibleNodesToFind(100), 100);
    assert.equal(numFeasibleNodesToFind(150), 100);
    assert.equal(numFeasibleNodesToFind(1000), 420);
    assert.equal(numFeasibleNodesToFind(5000), 500);
    assert.equal(numFeasibleNodesToFind(20000), 1000);
    assert.equal(numFeasibleNodesToFind(1000, 10), 100);
  });
});

describe('FitError', () => {
  it("prints kube's sorted reason histogram, without a preemption part", () => {
    const reasons = new Map([
      ['Insufficient memory', 2],
      ['node(s) had untolerated taint {node.kubernetes.io/unreachable: }', 1],
    ]);
    assert.equal(new FitError(3, reasons).message, '0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 Insufficient memory.');
    assert.equal(new FitError(2, new Map(), { code: 'Unschedulable', reasons: ['claim not found'] }).message, '0/2 nodes are available: claim not found.');
  });
});

describe('Profile.schedulePod', () => {
  it('summarises why every node failed', () => {
    const profile = new Profile(defaultProfile());
    const nodes = [
      testNode('tainted', { taints: [{ key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' }] }),
      testNode('small-1', { allocatable: { cpu: '4', memory: '1Gi', pods: '10' } }),
      testNode('small-2', { allocatable: { cpu: '4', memory: '1Gi', pods: '10' } }),
    ];
    const result = profile.schedulePod(testPod({ cpu: '1', memory: '2Gi' }), testCluster(nodes));
    assert.ok('error' in result && result.error instanceof FitError);
    assert.equal(result.error.message, '0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 Insufficient memory.');
  });

  it('reports no nodes at all as kube does', () => {
    assert.deepEqual(new Profile(defaultProfile()).schedulePod(testPod(), testCluster([])), { error: NO_NODES_AVAILABLE });
  });

  it('picks the highest weighted score among feasible nodes', () => {
    const profile = new Profile(defaultProfile());
    const busy = testNode('busy', { pods: [testPod({ cpu: '3', memory: '6Gi' })] });
    const idle = testNode('idle');
    const soft = testNode('soft', { taints: [{ key: 'x', effect: 'PreferNoSchedule' }] });
    const cluster = testCluster([busy, soft, idle]);
    for (let i = 0; i < 5; i++) {
      const result = profile.schedulePod(testPod({ cpu: '100m' }), cluster);
      assert.ok('nodeName' in result);
      assert.equal(result.nodeName, 'idle');
    }
  });

  it('stops filtering once enough feasible nodes are found, and starts the next cycle where it stopped', () => {
    const profile = new Profile(defaultProfile());
    const nodes = testCluster(Array.from({ length: 1000 }, (_, i) => testNode(`n${i}`)));
    const first = profile.schedulePod(testPod(), nodes);
    assert.ok('nodeName' in first);
    assert.equal(first.evaluatedNodes, 420);
    assert.equal(first.feasibleNodes, 420);
    assert.ok(Number(first.nodeName.slice(1)) < 420);
    const second = profile.schedulePod(testPod(), nodes);
    assert.ok('nodeName' in second);
    assert.ok(Number(second.nodeName.slice(1)) >= 420 && Number(second.nodeName.slice(1)) < 840);
  });

  it('scores with BalancedAllocation when asked', () => {
    const profile = new Profile(defaultProfile('BalancedAllocation'));
    const alloc = { cpu: '1', memory: '1000Mi', pods: '10' };
    const cpuHeavy = testNode('cpu-heavy', { allocatable: alloc, pods: [testPod({ cpu: '600m', memory: '100Mi' })] });
    const even = testNode('even', { allocatable: alloc, pods: [testPod({ cpu: '700m', memory: '700Mi' })] });
    const result = profile.schedulePod(testPod({ cpu: '100m', memory: '100Mi' }), testCluster([cpuHeavy, even]));
    assert.ok('nodeName' in result);
    // LeastAllocated would prefer cpu-heavy (more free in total); balanced prefers even shares.
    assert.equal(result.nodeName, 'even');
  });

  it('names the plugins that ruled nodes out, and leaves out the filters of plugins whose preFilter skips', () => {
    const profile = new Profile(defaultProfile());
    const cluster = testCluster([testNode('small', { allocatable: { cpu: '1', memory: '1Gi', pods: '10' } }), testNode('tainted', { taints: [{ key: 'x', effect: 'NoSchedule' }] })]);
    const result = profile.schedulePod(testPod({ cpu: '2' }), cluster);
    assert.ok('error' in result && result.error instanceof FitError);
    assert.deepEqual([...result.error.plugins].sort(), ['NodeResourcesFit', 'TaintToleration']);

    let filtered = 0;
    const skipping = { name: 'Skipping', preFilter: () => SKIP, filter: () => (filtered++, undefined) } satisfies Plugin;
    const placed = new Profile([{ plugin: skipping, weight: 0 }]).schedulePod(testPod(), cluster);
    assert.ok('nodeName' in placed);
    assert.equal(filtered, 0);
  });
});

