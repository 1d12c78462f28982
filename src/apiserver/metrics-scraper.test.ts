import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseResourceMetrics, usageBetween } from './metrics-scraper.js';

const TEXT = `# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 100.5 1700000000000
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 2e+09 1700000000000
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="default",pod="web"} 1.25 1700000000100
container_cpu_usage_seconds_total{container="half",namespace="default",pod="web"} 3 1700000000100
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="app",namespace="default",pod="web"} 4096 1700000000100
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="app",namespace="default",pod="web"} 1.6999e+09
# TYPE resource_scrape_error gauge
resource_scrape_error 0
`;

describe('resource metrics scraping', () => {
  it('reads node and container points, keeping containers with both cpu and memory', () => {
    const sample = parseResourceMetrics(TEXT, 42);
    assert.equal(sample.scrapedAtMs, 42);
    assert.deepEqual(sample.node, { timeMs: 1700000000000, cpuSeconds: 100.5, memoryBytes: 2e9 });
    assert.deepEqual([...sample.pods.keys()], ['default/web']);
    assert.deepEqual(Object.fromEntries(sample.pods.get('default/web')!), {
      app: { cpuSeconds: 1.25, timeMs: 1700000000100, memoryBytes: 4096, startTimeMs: 1.6999e12 },
    });
  });

  it('refuses samples without timestamps or with bad values', () => {
    assert.throws(() => parseResourceMetrics('node_cpu_usage_seconds_total 1\nnode_memory_working_set_bytes 1 5\n', 0), /node_cpu_usage_seconds_total has no timestamp/);
    assert.throws(() => parseResourceMetrics('node_cpu_usage_seconds_total -1 5\nnode_memory_working_set_bytes 1 5\n', 0), /node CPU is "-1", not a non-negative number/);
  });

  it('takes usage over the window between two points, and none across a restart or a reset', () => {
    const prev = { timeMs: 10_000, cpuSeconds: 1, memoryBytes: 100, startTimeMs: 1 };
    const last = { timeMs: 12_000, cpuSeconds: 1.5, memoryBytes: 200, startTimeMs: 1 };
    assert.deepEqual(usageBetween(prev, last), { timestampMs: 12_000, windowMs: 2000, cpuNanoCores: 250_000_000, memoryBytes: 200 });
    assert.equal(usageBetween(prev, { ...last, startTimeMs: 2 }), undefined);
    assert.equal(usageBetween(prev, { ...last, cpuSeconds: 0.5 }), undefined);
    assert.equal(usageBetween(prev, { ...last, timeMs: 10_000 }), undefined);
  });
});
