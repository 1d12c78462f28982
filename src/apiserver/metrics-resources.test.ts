import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { goDuration, nodeMetrics, podMetrics } from './metrics-resources.js';

describe('metrics.k8s.io objects', () => {
  it('writes windows as Go durations', () => {
    assert.deepEqual([0, 850, 1000, 15_020, 60_500, 7_203_000].map(goDuration), ['0s', '850ms', '1s', '15.02s', '1m0.5s', '2h0m3s']);
  });

  it('builds NodeMetrics and PodMetrics with canonical quantities, the earliest window of a pod', () => {
    const now = Date.parse('2025-01-01T00:00:10Z');
    const usage = { timestampMs: Date.parse('2025-01-01T00:00:05Z'), windowMs: 15_000, cpuNanoCores: 250_000_000.4, memoryBytes: 3 * 1024 * 1024 };
    assert.deepEqual(nodeMetrics({ metadata: { name: 'n1', labels: { a: 'b' } } }, usage, now), {
      kind: 'NodeMetrics',
      apiVersion: 'metrics.k8s.io/v1beta1',
      metadata: { name: 'n1', creationTimestamp: '2025-01-01T00:00:10Z', labels: { a: 'b' } },
      timestamp: '2025-01-01T00:00:05Z',
      window: '15s',
      usage: { cpu: '250m', memory: '3Mi' },
    });
    const earlier = { ...usage, timestampMs: usage.timestampMs - 1000, windowMs: 14_000, cpuNanoCores: 1234, memoryBytes: 1000 };
    const pod = podMetrics({ metadata: { name: 'p', namespace: 'ns' } }, [{ name: 'a', usage }, { name: 'b', usage: earlier }], now);
    assert.equal(pod.timestamp, '2025-01-01T00:00:04Z');
    assert.equal(pod.window, '14s');
    assert.deepEqual(pod.containers, [{ name: 'a', usage: { cpu: '250m', memory: '3Mi' } }, { name: 'b', usage: { cpu: '1234n', memory: '1k' } }]);
  });
});
