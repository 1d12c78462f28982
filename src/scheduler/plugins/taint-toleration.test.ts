import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testNode, testPod } from '../testing.js';
import { toleratesTaint } from '../../api/scheduling.js';
import { taintToleration } from './taint-toleration.js';

describe('toleratesTaint', () => {
  const taint = { key: 'dedicated', value: 'edge', effect: 'NoSchedule' };
  it('matches key, value and effect as v1.Toleration.ToleratesTaint', () => {
    assert.ok(toleratesTaint({ key: 'dedicated', operator: 'Equal', value: 'edge', effect: 'NoSchedule' }, taint));
    assert.ok(toleratesTaint({ key: 'dedicated', value: 'edge' }, taint), 'operator defaults to Equal, empty effect matches all');
    assert.ok(toleratesTaint({ key: 'dedicated', operator: 'Exists' }, taint));
    assert.ok(toleratesTaint({ operator: 'Exists' }, taint), 'empty key with Exists matches every taint');
    assert.ok(!toleratesTaint({ key: 'dedicated', value: 'cloud' }, taint));
    assert.ok(!toleratesTaint({ key: 'dedicated', operator: 'Exists', effect: 'NoExecute' }, taint));
    assert.ok(!toleratesTaint({ key: 'other', operator: 'Exists' }, taint));
  });
});

describe('TaintToleration', () => {
  it('rejects untolerated NoSchedule and NoExecute taints, naming the first', () => {
    const node = testNode('n', { taints: [{ key: 'soft', effect: 'PreferNoSchedule' }, { key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' }, { key: 'b', value: 'v', effect: 'NoSchedule' }] });
    assert.deepEqual(taintToleration.filter!(testPod(), node), { code: 'UnschedulableAndUnresolvable', reasons: ['node(s) had untolerated taint {node.kubernetes.io/unreachable: }'] });
    const partly = testPod({}, { tolerations: [{ key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }] });
    assert.deepEqual(taintToleration.filter!(partly, node)?.reasons, ['node(s) had untolerated taint {b: v}']);
    const all = testPod({}, { tolerations: [{ operator: 'Exists' }] });
    assert.equal(taintToleration.filter!(all, node), undefined);
  });

  it('lets PreferNoSchedule through the filter but scores it lower', () => {
    const soft = testNode('soft', { taints: [{ key: 'soft', effect: 'PreferNoSchedule' }] });
    const plain = testNode('plain');
    const pod = testPod();
    assert.equal(taintToleration.filter!(pod, soft), undefined);
    const scores = [taintToleration.score!(pod, soft), taintToleration.score!(pod, plain)];
    taintToleration.normalizeScores!(scores);
    assert.deepEqual(scores, [0, 100]);
    const tolerating = testPod({}, { tolerations: [{ key: 'soft', operator: 'Exists', effect: 'PreferNoSchedule' }] });
    const same = [taintToleration.score!(tolerating, soft), taintToleration.score!(tolerating, plain)];
    taintToleration.normalizeScores!(same);
    assert.deepEqual(same, [100, 100]);
  });
});
