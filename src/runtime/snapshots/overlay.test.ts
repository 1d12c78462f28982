import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { MOUNT_OPTIONS_LIMIT, mountAll, unmount } from './mount.js';
import { OverlaySnapshotter } from './overlay.js';
import { SnapshotError } from './snapshotter.js';
import { snapshotterSuite } from './suite.js';

snapshotterSuite('overlay', async (root) => new OverlaySnapshotter(root));
snapshotterSuite('overlay (async remove)', async (root) => new OverlaySnapshotter(root, { asyncRemove: true }));

describe('OverlaySnapshotter', () => {
  let base = '';
  const targets: string[] = [];
  const open: OverlaySnapshotter[] = [];
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'atoll-overlay-'));
  });
  after(async () => {
    for (const t of targets) await unmount(t).catch(() => undefined);
    for (const s of open) await s.close();
    await rm(base, { recursive: true, force: true });
  });

  let n = 0;
  function fresh(options: { asyncRemove?: boolean } = {}): { s: OverlaySnapshotter; root: string } {
    const root = join(base, `r${++n}`);
    const s = new OverlaySnapshotter(root, options);
    open.push(s);
    return { s, root };
  }
  function target(): string {
    const t = join(base, `t${targets.length}`);
    mkdirSync(t);
    targets.push(t);
    return t;
  }

  it('lays snapshots out as containerd does and mounts them by its rules', async () => {
    const { s, root } = fresh();
    const dir = (id: number) => join(root, 'snapshots', String(id));
    assert.deepEqual(await s.prepare('a'), [{ type: 'bind', source: join(dir(1), 'fs'), options: ['rw', 'rbind'] }]);
    await s.commit('l1', 'a');
    await s.prepare('b', 'l1');
    await s.commit('l2', 'b');
    assert.deepEqual(await s.prepare('c', 'l2'), [
      {
        type: 'overlay',
        source: 'overlay',
        options: [`workdir=${join(dir(3), 'work')}`, `upperdir=${join(dir(3), 'fs')}`, `lowerdir=${join(dir(2), 'fs')}:${join(dir(1), 'fs')}`],
      },
    ]);
    assert.deepEqual(await s.view('v1', 'l1'), [{ type: 'bind', source: join(dir(1), 'fs'), options: ['ro', 'rbind'] }]);
    assert.deepEqual(await s.view('v2', 'l2'), [
      { type: 'overlay', source: 'overlay', options: [`lowerdir=${join(dir(2), 'fs')}:${join(dir(1), 'fs')}`] },
    ]);
    assert.equal(await s.applyTarget('c'), join(dir(3), 'fs'));
    await assert.rejects(s.applyTarget('l1'), /only to an active snapshot/);
  });

  it('mounts a chain whose lowerdir list is longer than a page, through relative paths', async () => {
    const { s } = fresh();
    const depth = 150;
    let parent: string | undefined;
    for (let i = 0; i < depth; i++) {
      const key = `k${i}`;
      const mounts = await s.prepare(key, parent);
      const dir = await s.applyTarget(key);
      writeFileSync(join(dir, `f${i}`), String(i));
      await s.commit(`layer-${i}`, key);
      parent = `layer-${i}`;
      if (i === 0) assert.equal(mounts[0]!.type, 'bind');
    }
    const mounts = await s.prepare('top', parent);
    assert.ok(mounts[0]!.options.join(',').length > MOUNT_OPTIONS_LIMIT, 'the chain should pass the page limit');
    const t = target();
    await mountAll(mounts, t);
    try {
      assert.equal(readdirSync(t).length, depth);
      assert.equal(readFileSync(join(t, 'f0'), 'utf8'), '0');
      assert.equal(readFileSync(join(t, `f${depth - 1}`), 'utf8'), String(depth - 1));
    } finally {
      await unmount(t);
    }
  });

  it('fails with a clear error when even relative lowerdirs pass the page limit', async () => {
    const t = target();
    const lowers = Array.from({ length: 600 }, (_, i) => join(base, `dir-${i}-${'x'.repeat(10)}`));
    await assert.rejects(mountAll([{ type: 'overlay', source: 'overlay', options: [`lowerdir=${lowers.join(':')}`] }], t), (err: Error) => {
      assert.match(err.message, /options are \d+ bytes even with relative lowerdirs/);
      return true;
    });
  });

  it('removes directories at once, or in cleanup() with asyncRemove', async () => {
    const { s, root } = fresh();
    await s.prepare('a');
    await s.remove('a');
    assert.deepEqual(readdirSync(join(root, 'snapshots')), []);

    const lazy = fresh({ asyncRemove: true });
    await lazy.s.prepare('a');
    await lazy.s.remove('a');
    assert.deepEqual(readdirSync(join(lazy.root, 'snapshots')), ['1']);
    await lazy.s.cleanup();
    assert.deepEqual(readdirSync(join(lazy.root, 'snapshots')), []);
  });

  it('recovers from a crash that left directories without metadata', async () => {
    const { s, root } = fresh();
    await s.prepare('kept');
    // What a crash leaves: a staging directory, and a renamed one whose transaction never committed.
    mkdirSync(join(root, 'snapshots', 'new-deadbeef', 'fs'), { recursive: true });
    mkdirSync(join(root, 'snapshots', '2', 'fs'), { recursive: true });
    writeFileSync(join(root, 'snapshots', '2', 'fs', 'stale'), 'x');
    const mounts = await s.prepare('next');
    assert.equal(mounts[0]!.source, join(root, 'snapshots', '2', 'fs'));
    assert.deepEqual(readdirSync(mounts[0]!.source), [], 'the reused id starts empty');
    await s.cleanup();
    assert.deepEqual(readdirSync(join(root, 'snapshots')).sort(), ['1', '2']);
  });

  it('refuses a root it cannot express in overlay options, and a database of another schema', async () => {
    assert.throws(() => new OverlaySnapshotter(join(base, 'a:b')), SnapshotError);
    assert.throws(() => new OverlaySnapshotter('relative/root'), /must be absolute/);
    const root = join(base, 'future');
    mkdirSync(root);
    const db = new Database(join(root, 'metadata.db'));
    db.pragma('user_version = 99');
    db.close();
    assert.throws(() => new OverlaySnapshotter(root), /schema version 99/);
    assert.ok(existsSync(join(root, 'metadata.db')));
  });
});
