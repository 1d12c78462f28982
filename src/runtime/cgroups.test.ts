import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { cgroupAt, cgroupExists, cgroupMode, childCgroups, oomKillCount, parseBlkioRecursive, parseIoStat, readBlockIo, readStats, removeCgroup } from './cgroups.js';

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
    assert.deepEqual(await readBlockIo(child), { readBytes: 0, writeBytes: 0, readOps: 0, writeOps: 0 });
    removeCgroup(parent);
    assert.equal(cgroupExists(child), false);
    assert.equal(await oomKillCount(child), 0, 'a missing cgroup has no OOM kills');
  });

  it('sums block I/O over devices in the v1 blkio and v2 io.stat formats', () => {
    const v1 = ['8:0 Read 4096', '8:0 Write 8192', '8:0 Sync 8192', '8:0 Async 4096', '8:0 Discard 0', '8:0 Total 12288', '254:0 Read 1', '254:0 Write 2', 'Total 12291', ''].join('\n');
    assert.deepEqual(parseBlkioRecursive(v1), { read: 4097, write: 8194 });
    assert.deepEqual(parseBlkioRecursive('Total 0\n'), { read: 0, write: 0 });
    const v2 = '254:0 rbytes=4096 wbytes=1048576 rios=1 wios=16 dbytes=0 dios=0\n8:0 rbytes=10 wbytes=20 rios=3 wios=4 dbytes=0 dios=0\n';
    assert.deepEqual(parseIoStat(v2), { readBytes: 4106, writeBytes: 1048596, readOps: 4, writeOps: 20 });
    assert.deepEqual(parseIoStat(''), { readBytes: 0, writeBytes: 0, readOps: 0, writeOps: 0 });
  });
});
