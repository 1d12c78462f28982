import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { mountAll, unmount } from './mount.js';
import { SnapshotError, type Mount, type Snapshotter, type SnapshotErrorCode } from './snapshotter.js';

/**
 * Opens a snapshotter on `root`. Called again with the same root, it must open the same
 * snapshots: that is how the suite checks that metadata survives a restart.
 */
export type SnapshotterFactory = (root: string) => Promise<Snapshotter>;

const MiB = 1 << 20;

async function rejectsWith(promise: Promise<unknown>, code: SnapshotErrorCode, mentions?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof SnapshotError, `expected a SnapshotError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (mentions) assert.match(err.message, mentions);
    return true;
  });
}

/**
 * The contract every Snapshotter keeps, checked through real mounts (so it needs root). Each test
 * works in its own root; mounts and directories are removed in after() even when a test fails.
 */
export function snapshotterSuite(name: string, factory: SnapshotterFactory): void {
  describe(`Snapshotter contract: ${name}`, () => {
    let base = '';
    const targets: string[] = [];
    const open: Snapshotter[] = [];

    before(async () => {
      base = await mkdtemp(join(tmpdir(), 'atoll-snap-suite-'));
    });
    after(async () => {
      for (const t of targets) await unmount(t).catch(() => undefined);
      for (const s of open) await s.close().catch(() => undefined);
      await rm(base, { recursive: true, force: true });
    });

    let roots = 0;
    async function fresh(): Promise<{ s: Snapshotter; root: string }> {
      const root = join(base, `root-${++roots}`);
      mkdirSync(root);
      const s = await factory(root);
      open.push(s);
      return { s, root };
    }

    async function reopen(root: string, old: Snapshotter): Promise<Snapshotter> {
      await old.close();
      const s = await factory(root);
      open.push(s);
      return s;
    }

    /** Mounts, runs `fn` on the mounted tree, and always unmounts. */
    async function within<T>(mounts: Mount[], fn: (dir: string) => T | Promise<T>): Promise<T> {
      const target = join(base, `mnt-${targets.length}`);
      mkdirSync(target);
      targets.push(target);
      await mountAll(mounts, target);
      try {
        return await fn(target);
      } finally {
        await unmount(target);
      }
    }

    /** Commits a snapshot on `parent` holding the given files (path -> content; null deletes). */
    async function layer(s: Snapshotter, name: string, parent: string | undefined, files: Record<string, string | null>): Promise<void> {
      const key = `${name}-active`;
      await within(await s.prepare(key, parent), (dir) => {
        for (const [path, content] of Object.entries(files)) {
          const full = join(dir, path);
          if (content === null) {
            rmSync(full, { recursive: true });
          } else {
            mkdirSync(join(full, '..'), { recursive: true });
            writeFileSync(full, content);
          }
        }
      });
      await s.commit(name, key);
    }

    const read = (dir: string, path: string): string | undefined =>
      existsSync(join(dir, path)) ? readFileSync(join(dir, path), 'utf8') : undefined;

    it('prepares an empty writable snapshot and commits it into a parent', async () => {
      const { s } = await fresh();
      const mounts = await s.prepare('a', undefined);
      assert.deepEqual(await s.mounts('a'), mounts);
      await within(mounts, (dir) => {
        assert.deepEqual(readdirSync(dir), []);
        writeFileSync(join(dir, 'hello'), 'world');
      });
      assert.equal((await s.stat('a')).kind, 'Active');
      await s.commit('base', 'a');
      await rejectsWith(s.stat('a'), 'not-found');
      const info = await s.stat('base');
      assert.equal(info.kind, 'Committed');
      assert.equal(info.parent, undefined);
      await rejectsWith(s.mounts('base'), 'failed-precondition');
      await within(await s.view('look', 'base'), (dir) => assert.equal(read(dir, 'hello'), 'world'));
    });

    it('shows every parent in the chain, and keeps writes and deletions in the child', async () => {
      const { s } = await fresh();
      await layer(s, 'l1', undefined, { a: 'a1', b: 'b1', 'd/x': 'x1' });
      await layer(s, 'l2', 'l1', { a: null, b: 'b2', c: 'c2' });
      await layer(s, 'l3', 'l2', { e: 'e3' });
      assert.equal((await s.stat('l3')).parent, 'l2');

      await within(await s.view('v3', 'l3'), (dir) => {
        assert.deepEqual(readdirSync(dir).sort(), ['b', 'c', 'd', 'e']);
        assert.equal(read(dir, 'b'), 'b2');
        assert.equal(read(dir, 'd/x'), 'x1');
      });
      await within(await s.view('v1', 'l1'), (dir) => {
        assert.deepEqual(readdirSync(dir).sort(), ['a', 'b', 'd']);
        assert.equal(read(dir, 'a'), 'a1');
        assert.equal(read(dir, 'b'), 'b1');
      });

      const child = await s.prepare('work', 'l3');
      await within(child, (dir) => {
        writeFileSync(join(dir, 'new'), 'n');
        writeFileSync(join(dir, 'b'), 'changed');
        unlinkSync(join(dir, 'c'));
        rmSync(join(dir, 'd'), { recursive: true });
      });
      await within(child, (dir) => {
        assert.deepEqual(readdirSync(dir).sort(), ['b', 'e', 'new']);
        assert.equal(read(dir, 'b'), 'changed');
      });
      await within(await s.view('v3b', 'l3'), (dir) => {
        assert.deepEqual(readdirSync(dir).sort(), ['b', 'c', 'd', 'e']);
        assert.equal(read(dir, 'b'), 'b2');
      });
    });

    it('hides a deleted directory\'s old contents when a child recreates it', async () => {
      const { s } = await fresh();
      await layer(s, 'l1', undefined, { 'd/old': 'o', 'd/sub/deep': 'x' });
      await layer(s, 'l2', 'l1', { d: null });
      await layer(s, 'l3', 'l2', { 'd/new': 'n' });
      await within(await s.view('v', 'l3'), (dir) => assert.deepEqual(readdirSync(join(dir, 'd')), ['new']));
    });

    it('keeps sibling snapshots on one parent independent', async () => {
      const { s } = await fresh();
      await layer(s, 'l1', undefined, { shared: 's' });
      const left = await s.prepare('left', 'l1');
      const right = await s.prepare('right', 'l1');
      await within(left, (dir) => writeFileSync(join(dir, 'only-left'), 'l'));
      await within(right, (dir) => {
        assert.equal(read(dir, 'only-left'), undefined);
        assert.equal(read(dir, 'shared'), 's');
      });
    });

    it('makes views read-only, with or without a parent', async () => {
      const { s } = await fresh();
      await within(await s.view('empty', undefined), (dir) => {
        assert.deepEqual(readdirSync(dir), []);
        assert.throws(() => writeFileSync(join(dir, 'x'), 'x'), { code: 'EROFS' });
      });
      await layer(s, 'l1', undefined, { f: '1' });
      await layer(s, 'l2', 'l1', { g: '2' });
      for (const [key, parent] of [['one', 'l1'], ['chain', 'l2']] as const) {
        await within(await s.view(key, parent), (dir) => {
          assert.equal(read(dir, 'f'), '1');
          assert.throws(() => writeFileSync(join(dir, 'f'), 'x'), { code: 'EROFS' }, `view on ${parent}`);
        });
        assert.equal((await s.stat(key)).kind, 'View');
      }
      await rejectsWith(s.commit('never', 'one'), 'failed-precondition', /View/);
    });

    it('refuses to remove a snapshot while another builds on it', async () => {
      const { s } = await fresh();
      await layer(s, 'l1', undefined, { f: '1' });
      await s.prepare('child', 'l1');
      await s.view('peek', 'l1');
      await rejectsWith(s.remove('l1'), 'has-children', /"child".*"peek"/);
      assert.equal((await s.stat('l1')).kind, 'Committed');
      await s.remove('child');
      await s.remove('peek');
      await s.remove('l1');
      await rejectsWith(s.stat('l1'), 'not-found');
      await s.cleanup();
      assert.deepEqual(await s.walk(), []);
    });

    it('rejects bad keys, parents and commits with precise errors', async () => {
      const { s } = await fresh();
      await layer(s, 'l1', undefined, {});
      await s.prepare('busy', 'l1');
      await rejectsWith(s.prepare('busy', undefined), 'exists', /"busy"/);
      await rejectsWith(s.view('l1', undefined), 'exists', /"l1"/);
      await rejectsWith(s.prepare('x', 'missing'), 'not-found', /"missing"/);
      await rejectsWith(s.prepare('x', 'busy'), 'failed-precondition', /must be committed/);
      await rejectsWith(s.commit('l1', 'busy'), 'exists', /"l1"/);
      await rejectsWith(s.commit('c', 'nope'), 'not-found', /"nope"/);
      await rejectsWith(s.commit('c', 'l1'), 'failed-precondition');
      await rejectsWith(s.prepare('', undefined), 'invalid');
      await rejectsWith(s.remove('nope'), 'not-found');
      await rejectsWith(s.usage('nope'), 'not-found');
      await rejectsWith(s.update('nope', { a: 'b' }), 'not-found');
      await rejectsWith(s.prepare('big', undefined, { labels: { big: 'x'.repeat(5000) } }), 'invalid', /"big"/);
      assert.deepEqual((await s.walk()).map((i) => i.key), ['busy', 'l1']);
    });

    it('stats, updates labels and walks', async () => {
      const { s } = await fresh();
      const before = Date.now();
      await s.prepare('a', undefined, { labels: { team: 'edge', stage: 'unpack' } });
      await s.commit('base', 'a', { labels: { stage: 'done' } });
      await s.prepare('top', 'base');
      const info = await s.stat('base');
      assert.deepEqual(info.labels, { team: 'edge', stage: 'done' });
      assert.ok(info.created.getTime() >= before - 1000 && info.created.getTime() <= Date.now());
      const updated = await s.update('base', { team: null, owner: 'gc' });
      assert.deepEqual(updated.labels, { stage: 'done', owner: 'gc' });
      assert.ok(updated.updated.getTime() >= info.updated.getTime());
      assert.deepEqual((await s.stat('base')).labels, { stage: 'done', owner: 'gc' });
      const all = await s.walk();
      assert.deepEqual(
        all.map((i) => [i.key, i.kind, i.parent]),
        [
          ['base', 'Committed', undefined],
          ['top', 'Active', 'base'],
        ],
      );
    });

    it('keeps every snapshot, label and file across a re-open', async () => {
      const { s: first, root } = await fresh();
      await layer(first, 'l1', undefined, { f: 'one' });
      await layer(first, 'l2', 'l1', { g: 'two' });
      await first.prepare('live', 'l2', { labels: { pod: 'web' } });
      await within(await first.mounts('live'), (dir) => writeFileSync(join(dir, 'h'), 'three'));
      const walked = await first.walk();

      const s = await reopen(root, first);
      assert.deepEqual(await s.walk(), walked);
      assert.deepEqual((await s.stat('live')).labels, { pod: 'web' });
      await within(await s.mounts('live'), (dir) => {
        assert.deepEqual([read(dir, 'f'), read(dir, 'g'), read(dir, 'h')], ['one', 'two', 'three']);
      });
      await s.commit('l3', 'live');
      assert.equal((await s.stat('l3')).parent, 'l2');
    });

    it('measures the usage of a snapshot alone, not its parents', async () => {
      const { s } = await fresh();
      await within(await s.prepare('a', undefined), (dir) => {
        writeFileSync(join(dir, 'big'), randomBytes(MiB));
        mkdirSync(join(dir, 'd'));
        writeFileSync(join(dir, 'd', 'small'), 'x');
      });
      const active = await s.usage('a');
      assert.ok(active.bytes >= MiB, `active usage ${active.bytes} bytes`);
      assert.ok(active.inodes >= 3, `active usage ${active.inodes} inodes`);
      await s.commit('l1', 'a');
      assert.deepEqual(await s.usage('l1'), active);

      await s.prepare('child', 'l1');
      const empty = await s.usage('child');
      assert.ok(empty.bytes < MiB, `an empty child holds ${empty.bytes} bytes`);
      await within(await s.mounts('child'), (dir) => writeFileSync(join(dir, 'more'), randomBytes(2 * MiB)));
      const grown = await s.usage('child');
      assert.ok(grown.bytes >= 2 * MiB && grown.bytes < 3 * MiB, `child usage ${grown.bytes} bytes`);
    });

    it('cleans up the storage of removed snapshots', async () => {
      const { s } = await fresh();
      await layer(s, 'l1', undefined, { f: randomBytes(MiB).toString('hex') });
      await s.prepare('gone', 'l1');
      await s.remove('gone');
      await s.remove('l1');
      await s.cleanup();
      await s.cleanup();
      assert.deepEqual(await s.walk(), []);
      await layer(s, 'again', undefined, { f: 'fresh' });
      await within(await s.view('v', 'again'), (dir) => assert.deepEqual(readdirSync(dir), ['f']));
    });
  });
}
