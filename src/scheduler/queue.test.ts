import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { POD_MAX_IN_UNSCHEDULABLE_MS, SchedulingQueue, backoffDuration } from './queue.js';
import { testPod } from './testing.js';

describe('backoffDuration', () => {
  it('starts at 1 s and doubles up to 10 s', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(backoffDuration), [1000, 2000, 4000, 8000, 10000, 10000]);
  });
});

describe('SchedulingQueue', () => {
  it('pops higher priority first, then older', () => {
    let now = 0;
    const q = new SchedulingQueue(() => now++);
    const low = testPod({}, {}, 'low');
    const high = testPod({}, { priority: 100 }, 'high');
    const low2 = testPod({}, {}, 'low2');
    q.add(low);
    q.add(low2);
    q.add(high);
    assert.deepEqual([q.pop(), q.pop(), q.pop(), q.pop()].map((e) => e?.info.name), ['high', 'low', 'low2', undefined]);
  });

  it('skips pods deleted while queued', () => {
    const q = new SchedulingQueue();
    const a = testPod({}, {}, 'gone');
    q.add(a);
    q.delete(a.key);
    assert.equal(q.pop(), undefined);
  });

  it('keeps unschedulable pods until a cluster event, then backs them off or activates them', () => {
    mock.timers.enable({ apis: ['setTimeout'] });
    try {
      let now = 0;
      const q = new SchedulingQueue(() => now);
      const pod = testPod({}, {}, 'waiting');
      q.add(pod);
      const entry = q.pop()!;
      q.unschedulable(entry);
      assert.equal(q.pop(), undefined);
      assert.equal(q.state(pod.key), 'unschedulable');

      now = 400;
      q.moveAllToActiveOrBackoff();
      assert.equal(q.state(pod.key), 'backoff', 'the first back-off (1 s) has not run out');
      mock.timers.tick(599);
      assert.equal(q.state(pod.key), 'backoff');
      mock.timers.tick(1);
      assert.equal(q.state(pod.key), 'active');
      const again = q.pop()!;
      assert.equal(again.attempts, 2);

      q.unschedulable(again);
      now += 5000;
      q.moveAllToActiveOrBackoff();
      assert.equal(q.state(pod.key), 'active', 'the second back-off (2 s) has run out');
    } finally {
      mock.timers.reset();
    }
  });

  it('retries a pod when its spec changes, but not for status updates', () => {
    let now = 0;
    const q = new SchedulingQueue(() => now);
    const pod = testPod({}, { nodeSelector: { zone: 'a' } }, 'changing');
    q.add(pod);
    q.unschedulable(q.pop()!);
    now = 60_000;
    q.add(testPod({}, { nodeSelector: { zone: 'a' } }, 'changing'));
    assert.equal(q.state(pod.key), 'unschedulable');
    q.add(testPod({}, { nodeSelector: { zone: 'b' } }, 'changing'));
    assert.equal(q.state(pod.key), 'active');
  });

  it('flushes pods left unschedulable for five minutes', () => {
    let now = 0;
    const q = new SchedulingQueue(() => now);
    const pod = testPod({}, {}, 'forgotten');
    q.add(pod);
    q.unschedulable(q.pop()!);
    now = POD_MAX_IN_UNSCHEDULABLE_MS;
    q.flushUnschedulableLeftover();
    assert.equal(q.state(pod.key), 'unschedulable');
    now += 1;
    q.flushUnschedulableLeftover();
    assert.equal(q.state(pod.key), 'active');
  });

  it('retries on a placed pod only the pods that plugins caring about placed pods ruled out', () => {
    let now = 0;
    const q = new SchedulingQueue(() => now);
    const spread = testPod({}, {}, 'spread');
    const big = testPod({}, {}, 'big');
    q.add(spread);
    q.add(big);
    q.unschedulable(q.pop()!, new Set(['NodeAffinity', 'PodTopologySpread']));
    q.unschedulable(q.pop()!, new Set(['NodeResourcesFit']));
    now = 60_000;
    q.moveRejectedByToActiveOrBackoff(['InterPodAffinity', 'PodTopologySpread']);
    assert.equal(q.state(spread.key), 'active');
    assert.equal(q.state(big.key), 'unschedulable');
  });
});

