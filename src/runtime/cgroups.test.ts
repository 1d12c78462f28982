import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { cgroupAt, cgroupExists, cgroupMode, childCgroups, oomKillCount, readStats, removeCgroup } from './cgroups.js';

const parent = cgroupAt(`/atoll-cgroups-test-${process.pid}`);
after(() => removeCgroup(parent));

describe('cgroups', () => {
  it('detects the layout from /sys/fs/cgroup', () => {
    const unified = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((line) => line.split(' ')[4] === '/sys/fs/cgroup' && line.includes(' - cgroup2 '));
    assert.equal(cgroupMode(), unified ? 'v2' : 'v1');
  });

  it('reads stats of an empty cgroup, lists children and removes the tree', async () => {
    const child = cgroupAt(`${parent.path}/busy`);
    for (const dir of child.directories()) mkdirSync(dir, { recursive: true });
    assert.ok(cgroupExists(child));
    assert.deepEqual(childCgroups(parent), ['busy']);
    const stats = await readStats(child);
    assert.equal(stats.pids, 0);
    assert.equal(typeof stats.cpuUsageNanoseconds, 'bigint');
    assert.ok(stats.memoryWorkingSetBytes <= stats.memoryUsageBytes);
    assert.equal(await oomKillCount(child), 0);
    removeCgroup(parent);
    assert.equal(cgroupExists(child), false);
    assert.equal(await oomKillCount(child), 0, 'a missing cgroup has no OOM kills');
  });
});
