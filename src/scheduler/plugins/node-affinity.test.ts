import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeSelectorTerm } from '../types.js';
import { testNode, testPod } from '../testing.js';
import { NODE_AFFINITY_REASON, nodeAffinity } from './node-affinity.js';

const fits = (spec: Parameters<typeof testPod>[1], node = testNode('edge-7', { labels: { zone: 'a', gen: '5', 'atoll.dev/runtime': 'runv' } })) =>
  nodeAffinity.filter!(testPod({}, spec), node) === undefined;

const required = (...nodeSelectorTerms: NodeSelectorTerm[]) => ({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms } } } });

describe('NodeAffinity filter', () => {
  it('requires every nodeSelector label, such as one merged from a RuntimeClass', () => {
    assert.ok(fits({ nodeSelector: { zone: 'a', 'atoll.dev/runtime': 'runv' } }));
    assert.ok(!fits({ nodeSelector: { zone: 'a', 'atoll.dev/runtime': 'runc' } }));
    const status = nodeAffinity.filter!(testPod({}, { nodeSelector: { zone: 'b' } }), testNode('n', { labels: { zone: 'a' } }));
    assert.deepEqual(status, { code: 'UnschedulableAndUnresolvable', reasons: [NODE_AFFINITY_REASON] });
  });

  it('matches In, NotIn, Exists, DoesNotExist, Gt and Lt expressions', () => {
    assert.ok(fits(required({ matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }] })));
    assert.ok(!fits(required({ matchExpressions: [{ key: 'zone', operator: 'NotIn', values: ['a'] }] })));
    assert.ok(fits(required({ matchExpressions: [{ key: 'missing', operator: 'NotIn', values: ['a'] }] })));
    assert.ok(fits(required({ matchExpressions: [{ key: 'zone', operator: 'Exists' }] })));
    assert.ok(!fits(required({ matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] })));
    assert.ok(fits(required({ matchExpressions: [{ key: 'gen', operator: 'Gt', values: ['4'] }] })));
    assert.ok(!fits(required({ matchExpressions: [{ key: 'gen', operator: 'Lt', values: ['5'] }] })));
    assert.ok(!fits(required({ matchExpressions: [{ key: 'zone', operator: 'Gt', values: ['1'] }] })), 'a non-integer label never compares');
  });

  it('ANDs requirements within a term and ORs the terms', () => {
    const zoneA = { key: 'zone', operator: 'In', values: ['a'] };
    const gen9 = { key: 'gen', operator: 'In', values: ['9'] };
    assert.ok(!fits(required({ matchExpressions: [zoneA, gen9] })));
    assert.ok(fits(required({ matchExpressions: [gen9] }, { matchExpressions: [zoneA] })));
  });

  it('matches metadata.name through matchFields, and nothing for an empty term', () => {
    assert.ok(fits(required({ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['edge-7'] }] })));
    assert.ok(!fits(required({ matchFields: [{ key: 'metadata.name', operator: 'NotIn', values: ['edge-7'] }] })));
    assert.ok(!fits(required({})));
    assert.ok(!fits(required()));
  });

  it('scores the summed weight of the preferred terms a node matches', () => {
    const pod = testPod({}, { affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [
      { weight: 10, preference: { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] } },
      { weight: 30, preference: { matchExpressions: [{ key: 'gpu', operator: 'Exists' }] } },
    ] } } });
    const scores = [nodeAffinity.score!(pod, testNode('a', { labels: { zone: 'a' } })), nodeAffinity.score!(pod, testNode('b', { labels: { zone: 'a', gpu: '1' } })), nodeAffinity.score!(pod, testNode('c'))];
    assert.deepEqual(scores, [10, 40, 0]);
    nodeAffinity.normalizeScores!(scores);
    assert.deepEqual(scores, [25, 100, 0]);
  });
});
