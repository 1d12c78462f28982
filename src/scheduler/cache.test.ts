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
});
