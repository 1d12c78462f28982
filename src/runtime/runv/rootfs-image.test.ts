import assert from 'node:assert/strict';
import { chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runTool } from './command.js';
import {
  IMAGE_DISK_FREE_BYTES, IMAGE_DISK_FREE_INODES, createContainerLayer, ensureImageDisk, imageDiskPath,
  removeContainerLayer, removeImageDisk, removeInterruptedBuilds,
} from './rootfs-image.js';

const CHAIN = `sha256:${'ab'.repeat(32)}`;
const OTHER_CHAIN = `sha256:${'cd'.repeat(32)}`;

/** Reads a file out of an ext4 image without mounting it. */
function debugfs(image: string, request: string): Promise<string> {
  return runTool('debugfs', ['-R', request, image]);
}

function superblock(text: string, field: string): number {
  const value = new RegExp(`^${field}:\\s+(\\d+)$`, 'm').exec(text)?.[1];
  assert.ok(value, `no '${field}' in dumpe2fs output`);
  return Number(value);
}

describe('runv rootfs images', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'atoll-runv-rootfs-'));
  const root = join(scratch, 'root');
  const tree = join(scratch, 'tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  mkdirSync(join(tree, 'home', 'app'), { recursive: true });
  writeFileSync(join(tree, 'etc', 'hello'), 'hello from the image\n');
  writeFileSync(join(tree, 'home', 'app', 'data'), Buffer.alloc(100_000, 7));
  chownSync(join(tree, 'home', 'app'), 1000, 1001);
  writeFileSync(join(tree, 'home', 'app', 'run.sh'), '#!/bin/sh\n', { mode: 0o750 });
  symlinkSync('/etc/hello', join(tree, 'greeting'));
  after(() => rmSync(scratch, { recursive: true, force: true }));

  it('builds an ext4 image of the tree with room to write, sparse on the host', async () => {
    const progress: string[] = [];
    const disk = await ensureImageDisk(root, CHAIN, tree, { onProgress: (line) => progress.push(line) });
    assert.equal(disk, imageDiskPath(root, CHAIN));
    assert.equal(progress.length, 1);
    assert.equal(await debugfs(disk, 'cat /etc/hello'), 'hello from the image\n');
    assert.match(await debugfs(disk, 'stat /home/app'), /User:\s+1000\s+Group:\s+1001/);
    assert.match(await debugfs(disk, 'stat /home/app/run.sh'), /Mode:\s+0750/);
    assert.match(await debugfs(disk, 'stat /greeting'), /Fast link dest: "\/etc\/hello"/);

    const sb = await runTool('dumpe2fs', ['-h', disk]);
    assert.ok(superblock(sb, 'Free blocks') * superblock(sb, 'Block size') >= IMAGE_DISK_FREE_BYTES);
    assert.ok(superblock(sb, 'Free inodes') >= IMAGE_DISK_FREE_INODES);
    assert.doesNotMatch(sb, /has_journal/);
    const info = statSync(disk);
    assert.ok(info.blocks * 512 < info.size / 10, `image takes ${info.blocks * 512} of ${info.size} bytes`);
  });

  it('reuses the cached image: no second build', async () => {
    const before = statSync(imageDiskPath(root, CHAIN));
    const progress: string[] = [];
    assert.equal(await ensureImageDisk(root, CHAIN, join(scratch, 'no-such-tree'), { onProgress: (line) => progress.push(line) }), imageDiskPath(root, CHAIN));
    assert.deepEqual(progress, []);
    assert.equal(statSync(imageDiskPath(root, CHAIN)).ino, before.ino);
  });

  it('shares one build between concurrent callers for the same chain ID', async () => {
    const progress: string[] = [];
    const disks = await Promise.all([1, 2, 3].map(() => ensureImageDisk(root, OTHER_CHAIN, tree, { onProgress: (line) => progress.push(line) })));
    assert.deepEqual(new Set(disks), new Set([imageDiskPath(root, OTHER_CHAIN)]));
    assert.equal(progress.length, 1);
    assert.deepEqual(readdirSync(join(root, 'runv', 'rootfs')).filter((name) => name.startsWith('.')), []);
  });

  it('refuses a bad chain ID or tree with a precise error and leaves nothing behind', async () => {
    await assert.rejects(ensureImageDisk(root, 'sha256:XYZ', tree), /invalid image chain ID 'sha256:XYZ': expected sha256:<64 lowercase hex digits>/);
    const missing = `sha256:${'ef'.repeat(32)}`;
    await assert.rejects(ensureImageDisk(root, missing, join(scratch, 'absent')), /image tree for sha256:ef.* is not a directory: .*absent/);
    await assert.rejects(ensureImageDisk(root, missing, 'relative/tree'), /must be an absolute path, got 'relative\/tree'/);
    const names = readdirSync(join(root, 'runv', 'rootfs'));
    assert.ok(!names.some((name) => name.startsWith('.') || name.includes('efef')), names.join(', '));
  });

  it('ignores what an interrupted build left, and clears it on request', async () => {
    const leftover = join(root, 'runv', 'rootfs', '.build-crashed');
    mkdirSync(leftover);
    writeFileSync(join(leftover, `${'12'.repeat(32)}.v1.ext4`), 'half an image');
    const chain = `sha256:${'12'.repeat(32)}`;
    const disk = await ensureImageDisk(root, chain, tree);
    assert.equal(await debugfs(disk, 'cat /etc/hello'), 'hello from the image\n');
    await removeInterruptedBuilds(root);
    assert.ok(!readdirSync(join(root, 'runv', 'rootfs')).includes('.build-crashed'));
    await removeImageDisk(root, chain);
    assert.ok(!readdirSync(join(root, 'runv', 'rootfs')).some((name) => name.startsWith('1212')));
  });

  it('creates a qcow2 container layer over the image disk, and removes it', async () => {
    const base = imageDiskPath(root, CHAIN);
    const layer = join(scratch, 'containers', 'c1', 'rootfs.qcow2');
    await createContainerLayer(base, layer);
    const info = JSON.parse(await runTool('qemu-img', ['info', '--output=json', layer])) as Record<string, unknown>;
    assert.equal(info.format, 'qcow2');
    assert.equal(info['backing-filename'], base);
    assert.equal(info['backing-filename-format'], 'raw');
    assert.equal(info['virtual-size'], statSync(base).size);
    assert.deepEqual(readdirSync(join(scratch, 'containers', 'c1')), ['rootfs.qcow2']);
    await assert.rejects(createContainerLayer(base, layer), /container layer .*rootfs.qcow2 already exists/);
    await assert.rejects(createContainerLayer(join(scratch, 'nope.ext4'), join(scratch, 'c2.qcow2')), /the image disk .*nope.ext4 for container layer .*c2.qcow2 does not exist/);
    await removeContainerLayer(layer);
    assert.deepEqual(readdirSync(join(scratch, 'containers', 'c1')), []);
  });
});
