import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SchedulerCache } from './cache.js';
import { testPod } from './testing.js';
import type { Node } from './types.js';

const node = (name: string): Node => ({ metadata: { name }, status: { allocatable: { cpu: '4', memory: '8Gi', pods: '110' } } });

describe('SchedulerCache', () => {
  it('counts an assumed pod at once, and once only when the informer confirms it', () => {
    const cache = new SchedulerCache();
    cache.addNode(node('a'));
    const pod = testPod({ cpu: '1' });
    cache.assume(pod, 'a');
    assert.equal(cache.node('a')!.requested.milliCPU, 1000);
    assert.ok(cache.isAssumed(pod.key));
    cache.addPod(pod, 'a');
    assert.equal(cache.node('a')!.requested.milliCPU, 1000);
    assert.ok(!cache.isAssumed(pod.key));
    cache.forget(pod.key);
    assert.equal(cache.node('a')!.requested.milliCPU, 1000, 'a confirmed pod is not forgotten');
  });

  it('forgets an assumed pod whose binding failed', () => {
    const cache = new SchedulerCache();
    cache.addNode(node('a'));
    const pod = testPod({ cpu: '1' });
    cache.assume(pod, 'a');
    cache.forget(pod.key);
    assert.equal(cache.node('a')!.requested.milliCPU, 0);
    assert.equal(cache.node('a')!.pods.size, 0);
  });

  it('moves a pod the informer reports on another node than assumed', () => {
    const cache = new SchedulerCache();
    cache.addNode(node('a'));
    cache.addNode(node('b'));
    const pod = testPod({ cpu: '1' });
    cache.assume(pod, 'a');
    cache.addPod(pod, 'b');
    assert.equal(cache.node('a')!.requested.milliCPU, 0);
    assert.equal(cache.node('b')!.requested.milliCPU, 1000);
  });

  it('keeps counting pods of a node seen before its Node object, and after it is deleted', () => {
    const cache = new SchedulerCache();
    const pod = testPod({ cpu: '1' });
    cache.addPod(pod, 'late');
    assert.equal(cache.nodeList().length, 0);
    cache.addNode(node('late'));
    assert.deepEqual(cache.nodeList().map((n) => n.name), ['late']);
    assert.equal(cache.nodeList()[0]!.requested.milliCPU, 1000);
    cache.removeNode('late');
    assert.equal(cache.nodeList().length, 0);
    assert.equal(cache.node('late')!.pods.size, 1);
    assert.ok(cache.removePod(pod.key));
    assert.equal(cache.node('late'), undefined);
  });

  it('keeps per-node counts of matching pods current through moves, updates, deletions and terminations', () => {
    const cache = new SchedulerCache();
    cache.addNode(node('a'));
    cache.addNode(node('b'));
    const web = { requirements: [{ key: 'app', operator: '=' as const, values: ['web'] }] };
    const counts = (withTerminating = false) => Object.fromEntries([...cache.matchingPods('default', web, withTerminating)].map(([n, c]) => [n.name, c]));
    const first = testPod({}, {}, 'web-1', { labels: { app: 'web' } });
    cache.assume(first, 'a');
    cache.addPod(testPod({}, {}, 'db-1', { labels: { app: 'db' } }), 'a');
    cache.addPod(testPod({}, {}, 'web-elsewhere', { labels: { app: 'web' }, namespace: 'other' }), 'b');
    assert.deepEqual(counts(), { a: 1 }, 'built from the pods already there');
    const second = testPod({}, {}, 'web-2', { labels: { app: 'web' } });
    cache.assume(second, 'b');
    cache.addPod(first, 'b');
    assert.deepEqual(counts(), { b: 2 }, 'kept current as pods come and move');
    cache.addPod(testPod({}, {}, 'web-2', { labels: { app: 'web' }, deletionTimestamp: '2024-01-01T00:00:00Z' }), 'b');
    assert.deepEqual(counts(), { b: 1 });
    assert.deepEqual(counts(true), { b: 2 });
    cache.removePod(first.key);
    cache.removePod(second.key);
    assert.deepEqual(counts(), {});
    assert.deepEqual(counts(true), {});
  });

  it('groups the affinity terms of placed pods by equal term, per node', () => {
    const cache = new SchedulerCache();
    cache.addNode(node('a'));
    cache.addNode(node('b'));
    const anti = { affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app: 'web' } }, topologyKey: 'kubernetes.io/hostname' }] } } };
    const replicas = ['web-1', 'web-2', 'web-3'].map((name) => testPod({}, anti, name, { labels: { app: 'web' } }));
    cache.addPod(replicas[0]!, 'a');
    cache.addPod(replicas[1]!, 'a');
    cache.assume(replicas[2]!, 'b');
    const groups = () => [...cache.requiredAntiAffinityTermGroups()].map((g) => Object.fromEntries([...g.perNode].map(([n, c]) => [n.name, c])));
    assert.deepEqual(groups(), [{ a: 2, b: 1 }]);
    assert.equal([...cache.affinityTermGroups()].length, 1);
    // The same pod updated without its anti-affinity leaves its group.
    cache.addPod(testPod({}, {}, 'web-1', { labels: { app: 'web' } }), 'a');
    assert.deepEqual(groups(), [{ a: 1, b: 1 }]);
    cache.removePod(replicas[1]!.key);
    cache.forget(replicas[2]!.key);
    assert.deepEqual(groups(), []);
  });
});
