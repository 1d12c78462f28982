import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testNode, testPod } from '../testing.js';
import { NODE_NAME_REASON, nodeName } from './node-name.js';
import { NODE_UNSCHEDULABLE_REASON, nodeUnschedulable } from './node-unschedulable.js';

describe('NodeUnschedulable', () => {
  it('keeps pods off cordoned nodes unless they tolerate the unschedulable taint', () => {
    const cordoned = testNode('n', { unschedulable: true });
    assert.deepEqual(nodeUnschedulable.filter!(testPod(), cordoned), { code: 'UnschedulableAndUnresolvable', reasons: [NODE_UNSCHEDULABLE_REASON] });
    assert.equal(nodeUnschedulable.filter!(testPod(), testNode('m')), undefined);
    const tolerating = testPod({}, { tolerations: [{ key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' }] });
    assert.equal(nodeUnschedulable.filter!(tolerating, cordoned), undefined);
  });
});

describe('NodeName', () => {
  it('fits a pod naming a node only on that node', () => {
    assert.equal(nodeName.filter!(testPod({}, { nodeName: 'a' }), testNode('a')), undefined);
    assert.deepEqual(nodeName.filter!(testPod({}, { nodeName: 'a' }), testNode('b'))?.reasons, [NODE_NAME_REASON]);
    assert.equal(nodeName.filter!(testPod(), testNode('b')), undefined);
  });
});
