import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testNode, testPod } from '../testing.js';
import { nodeResourcesFit } from './node-resources-fit.js';

const fit = (pod: ReturnType<typeof testPod>, node: ReturnType<typeof testNode>) => nodeResourcesFit.filter!(pod, node);

describe('NodeResourcesFit filter', () => {
  it('fits requests within allocatable minus what bound pods request', () => {
    const node = testNode('n', { allocatable: { cpu: '1', memory: '1Gi', pods: '10' }, pods: [testPod({ cpu: '600m', memory: '512Mi' })] });
    assert.equal(fit(testPod({ cpu: '400m', memory: '512Mi' }), node), undefined);
    assert.deepEqual(fit(testPod({ cpu: '401m', memory: '100Mi' }), node), { code: 'Unschedulable', reasons: ['Insufficient cpu'] });
    assert.deepEqual(fit(testPod({ cpu: '500m', memory: '513Mi' }), node)?.reasons, ['Insufficient cpu', 'Insufficient memory']);
  });

  it('adds spec.overhead to the pod and to the pods already on the node', () => {
    const empty = testNode('n', { allocatable: { cpu: '1', memory: '1Gi', pods: '10' } });
    assert.equal(fit(testPod({ cpu: '800m' }), empty), undefined);
    assert.deepEqual(fit(testPod({ cpu: '800m' }, { overhead: { cpu: '300m' } }), empty)?.reasons, ['Insufficient cpu']);
    const withOverheadPod = testNode('n', { allocatable: { cpu: '1', memory: '1Gi', pods: '10' }, pods: [testPod({ cpu: '500m' }, { overhead: { cpu: '250m' } })] });
    assert.equal(fit(testPod({ cpu: '250m' }), withOverheadPod), undefined);
    assert.deepEqual(fit(testPod({ cpu: '251m' }), withOverheadPod)?.reasons, ['Insufficient cpu']);
  });

  it('takes the larger of the app containers and any init container, counting sidecars in both', () => {
    const node = testNode('n', { allocatable: { cpu: '2', memory: '8Gi', pods: '10' } });
    const init = (cpu: string, always = false) => ({ name: `i${cpu}`, restartPolicy: always ? 'Always' : undefined, resources: { requests: { cpu } } });
    // max(app 500m, init 1500m) = 1500m.
    assert.equal(fit(testPod({ cpu: '500m' }, { initContainers: [init('1500m')] }), node), undefined);
    assert.deepEqual(fit(testPod({ cpu: '500m' }, { initContainers: [init('2100m')] }), node)?.reasons, ['Insufficient cpu']);
    // A sidecar (600m) runs beside the app (500m) and beside the init container after it (1500m): max(1100m, 2100m).
    assert.deepEqual(fit(testPod({ cpu: '500m' }, { initContainers: [init('600m', true), init('1500m')] }), node)?.reasons, ['Insufficient cpu']);
    // The same init container before the sidecar does not run beside it: max(1100m, 1500m).
    assert.equal(fit(testPod({ cpu: '500m' }, { initContainers: [init('1500m'), init('600m', true)] }), node), undefined);
  });

  it('counts pods against allocatable pods even for pods requesting nothing', () => {
    const node = testNode('n', { allocatable: { cpu: '4', memory: '8Gi', pods: '2' }, pods: [testPod(), testPod()] });
    assert.deepEqual(fit(testPod(), node), { code: 'Unschedulable', reasons: ['Too many pods'] });
  });

  it('checks ephemeral storage and extended resources, which a node without them lacks', () => {
    const node = testNode('n', { allocatable: { cpu: '4', memory: '8Gi', pods: '10', 'ephemeral-storage': '10Gi', 'example.com/gpu': '1' } });
    assert.equal(fit(testPod({ 'example.com/gpu': '1', 'ephemeral-storage': '10Gi' }), node), undefined);
    assert.deepEqual(fit(testPod({ 'example.com/gpu': '2', 'ephemeral-storage': '11Gi' }), node)?.reasons, ['Insufficient ephemeral-storage', 'Insufficient example.com/gpu']);
    assert.deepEqual(fit(testPod({ 'example.com/fpga': '1' }), node)?.reasons, ['Insufficient example.com/fpga']);
    assert.equal(fit(testPod({ 'example.com/fpga': '0' }), node), undefined);
  });

  it('frees what a removed pod requested', () => {
    const bound = testPod({ cpu: '3' });
    const node = testNode('n', { pods: [bound] });
    assert.deepEqual(fit(testPod({ cpu: '2' }), node)?.reasons, ['Insufficient cpu']);
    node.removePod(bound.key);
    assert.equal(fit(testPod({ cpu: '2' }), node), undefined);
  });
});

describe('NodeResourcesFit score (LeastAllocated)', () => {
  it('scores the share left free, counting unset requests as 100m / 200Mi', () => {
    const node = testNode('n', { allocatable: { cpu: '1', memory: '1000Mi', pods: '10' } });
    // cpu (1000-500)/1000 = 50, memory (1000-200)/1000 = 80 → 65.
    assert.equal(nodeResourcesFit.score!(testPod({ cpu: '500m' }), node), 65);
    const busier = testNode('m', { allocatable: { cpu: '1', memory: '1000Mi', pods: '10' }, pods: [testPod({ cpu: '500m', memory: '500Mi' })] });
    assert.ok(nodeResourcesFit.score!(testPod({ cpu: '100m' }), busier) < nodeResourcesFit.score!(testPod({ cpu: '100m' }), node));
  });
});
