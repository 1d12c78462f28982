import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { matches, selectorToString } from '../api/labels.js';
import { Listers } from './listers.js';
import { labeledPod } from './testing.js';

describe('Listers.defaultSpreadSelector', () => {
  it("merges the selectors of the Services selecting the pod with its controlling ReplicaSet's", () => {
    const listers = new Listers();
    listers.setService({ metadata: { name: 'web', namespace: 'default' }, spec: { selector: { app: 'web' } } });
    listers.setService({ metadata: { name: 'canary', namespace: 'default' }, spec: { selector: { app: 'web', track: 'canary' } } });
    listers.setService({ metadata: { name: 'headless', namespace: 'default' }, spec: {} });
    listers.setReplicaSet({ metadata: { name: 'web-7d9', namespace: 'default' }, spec: { selector: { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'pod-template-hash', operator: 'In', values: ['7d9'] }] } } });
    const owner = { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9', uid: 'u', controller: true };
    const pod = labeledPod({ app: 'web', 'pod-template-hash': '7d9' }, {}, { ownerReferences: [owner] });
    const selector = listers.defaultSpreadSelector(pod);
    assert.ok(matches(selector, { app: 'web', 'pod-template-hash': '7d9', track: 'stable' }));
    assert.ok(!matches(selector, { app: 'web', 'pod-template-hash': '5c1' }), 'a sibling of another revision is not counted');
    listers.deleteReplicaSet({ metadata: { name: 'web-7d9', namespace: 'default' } });
    assert.equal(selectorToString(listers.defaultSpreadSelector(pod)), 'app=web');
    assert.equal(selectorToString(listers.defaultSpreadSelector(labeledPod({ app: 'db' }))), '');
  });
});
