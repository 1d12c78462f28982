import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { RuntimeError } from '../handler.js';
import { mountAll, unmount } from '../snapshots/mount.js';
import { runTool } from './command.js';
import { EMPTY_DIR_DISK_BYTES, createEmptyDirDisk, emptyDirBacking, emptyDirOf } from './empty-dir.js';

const work = mkdtempSync(join(tmpdir(), 'atoll-runv-ed-'));
const tmpfsDir = join(work, 'pods', 'u', 'volumes', 'kubernetes.io~empty-dir', 'ram');
after(async () => {
  await unmount(tmpfsDir).catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
});

describe('emptyDirOf', () => {
  const base = '/var/lib/atoll/pods/uid-1/volumes/kubernetes.io~empty-dir';

  it('finds the emptyDir a path lies in, and the subPath below it', () => {
    assert.deepEqual(emptyDirOf(`${base}/cache`, 'c'), { name: 'cache', hostDir: `${base}/cache`, subPath: '' });
    assert.deepEqual(emptyDirOf(`${base}/cache/`, 'c'), { name: 'cache', hostDir: `${base}/cache`, subPath: '' });
    assert.deepEqual(emptyDirOf(`${base}/cache/logs//app`, 'c'), { name: 'cache', hostDir: `${base}/cache`, subPath: 'logs/app' });
    // A subPath that looks like another emptyDir is still a subPath of the first.
    assert.deepEqual(emptyDirOf(`${base}/cache/volumes/kubernetes.io~empty-dir/other`, 'c')?.subPath, 'volumes/kubernetes.io~empty-dir/other');
  });

  it('leaves other paths alone', () => {
    for (const path of [
      '/var/lib/atoll/pods/uid-1/volumes/kubernetes.io~configmap/cfg',
      '/var/lib/atoll/pods/uid-1/volumes/kubernetes.io~empty-dir',
      '/var/lib/atoll/pods/uid-1/kubernetes.io~empty-dir/cache',
      '/srv/data',
    ]) {
      assert.equal(emptyDirOf(path, 'c'), undefined, path);
    }
  });

  it('refuses a volume name that is not a DNS-1123 label and dot segments, precisely', () => {
    assert.throws(() => emptyDirOf(`${base}/Cache`, 'container c'), (err: unknown) => err instanceof RuntimeError && err.code === 'InvalidArgument' && /container c: .*"Cache" is not a DNS-1123 label/.test(err.message));
    assert.throws(() => emptyDirOf(`${base}/cache/a/../../x`, 'container c'), (err: unknown) => err instanceof RuntimeError && err.code === 'InvalidArgument' && /'\.' or '\.\.'/.test(err.message));
  });
});

describe('emptyDirBacking', () => {
  it('is a disk with the directory’s mode and owner, or memory of the host tmpfs’s size', async () => {
    const onDisk = join(work, 'disk');
    mkdirSync(onDisk);
    chmodSync(onDisk, 0o2777);
    assert.deepEqual(await emptyDirBacking(onDisk, 'c'), { medium: 'disk', mode: 0o2777, uid: process.getuid!(), gid: process.getgid!() });
    mkdirSync(tmpfsDir, { recursive: true });
    await mountAll([{ type: 'tmpfs', source: 'tmpfs', options: ['size=3m', 'mode=0777'] }], tmpfsDir);
    assert.deepEqual(await emptyDirBacking(tmpfsDir, 'c'), { medium: 'memory', sizeBytes: 3 * 1024 * 1024, mode: 0o777, uid: 0, gid: 0 });
    await assert.rejects(emptyDirBacking(join(work, 'absent'), 'container c'), (err: unknown) => err instanceof RuntimeError && err.code === 'InvalidArgument' && /container c: emptyDir .* is missing/.test(err.message));
  });
});

describe('createEmptyDirDisk', () => {
  it('makes a sparse ext4 disk whose empty root has the volume’s mode and owner', async () => {
    const file = join(work, 'disks', 'scratch.ext4');
    await createEmptyDirDisk(file, { mode: 0o2777, uid: 0, gid: 4321 });
    const info = statSync(file);
    assert.equal(info.size, EMPTY_DIR_DISK_BYTES);
    assert.ok(info.blocks * 512 < 16 * 1024 * 1024, `sparse: ${info.blocks * 512} bytes allocated`);
    const root = await runTool('debugfs', ['-R', 'stat /', file]);
    assert.match(root, /Mode:\s+02777/);
    assert.match(root, /User:\s+0\s+Group:\s+4321/);
    assert.equal((await runTool('debugfs', ['-R', 'ls /', file])).replace(/\s+/g, ' ').trim(), '2 (12) . 2 (4072) ..');
    await runTool('e2fsck', ['-fn', file]);
    assert.deepEqual(readdirSync(join(work, 'disks')), ['scratch.ext4'], 'no temp file is left');
  });
});
