import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { buildLayer, layerStream, type FixtureEntry } from './fixture.js';
import { mountAll, unmount } from './mount.js';
import { OverlaySnapshotter } from './overlay.js';
import type { Snapshotter } from './snapshotter.js';
import { chainIds, DiffIdMismatchError, gc, LAYER_LABEL, unpackLayers, type Layer } from './unpack.js';

const sha256 = (data: string | Buffer) => 'sha256:' + createHash('sha256').update(data).digest('hex');

interface TestLayer extends Layer {
  opened: number;
}

async function testLayer(entries: FixtureEntry[], declared?: string): Promise<TestLayer> {
  const tarball = await buildLayer(entries);
  const layer: TestLayer = {
    diffId: declared ?? sha256(tarball),
    opened: 0,
    async open() {
      layer.opened++;
      return layerStream(tarball);
    },
  };
  return layer;
}

/** The same snapshotter without `applyTarget`, as a block snapshotter would be. */
function withoutApplyTarget(s: OverlaySnapshotter): Snapshotter {
  return {
    stat: (k) => s.stat(k),
    update: (k, l) => s.update(k, l),
    usage: (k) => s.usage(k),
    mounts: (k) => s.mounts(k),
    prepare: (k, p, o) => s.prepare(k, p, o),
    view: (k, p, o) => s.view(k, p, o),
    commit: (n, k, o) => s.commit(n, k, o),
    remove: (k) => s.remove(k),
    walk: () => s.walk(),
    cleanup: () => s.cleanup(),
    close: () => s.close(),
  };
}

describe('chainIds', () => {
  it('follows the OCI definition', () => {
    const [a, b, c] = [sha256('a'), sha256('b'), sha256('c')];
    const ab = sha256(`${a} ${b}`);
    assert.deepEqual(chainIds([a, b, c]), [a, ab, sha256(`${ab} ${c}`)]);
    assert.throws(() => chainIds([a, 'sha256:ABC']), /layer 1: diffID "sha256:ABC"/);
  });
});

describe('unpackLayers and gc', () => {
  let base = '';
  const targets: string[] = [];
  const open: Snapshotter[] = [];
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'atoll-unpack-'));
  });
  after(async () => {
    for (const t of targets) await unmount(t).catch(() => undefined);
    for (const s of open) await s.close();
    await rm(base, { recursive: true, force: true });
  });

  let n = 0;
  function fresh(): OverlaySnapshotter {
    const s = new OverlaySnapshotter(join(base, `r${++n}`));
    open.push(s);
    return s;
  }
  async function look<T>(s: Snapshotter, parent: string, fn: (dir: string) => T): Promise<T> {
    const key = `look-${++n}`;
    const t = await mkdtemp(join(base, 'mnt-'));
    targets.push(t);
    await mountAll(await s.view(key, parent), t);
    try {
      return fn(t);
    } finally {
      await unmount(t);
      await s.remove(key);
    }
  }

  const base1: FixtureEntry[] = [
    { type: 'directory', name: 'etc/' },
    { type: 'file', name: 'etc/os-release', content: 'atoll' },
    { type: 'file', name: 'etc/old', content: 'old' },
    { type: 'file', name: 'var/cache/x', content: 'x' },
  ];
  const app: FixtureEntry[] = [
    { type: 'file', name: 'etc/.wh.old' },
    { type: 'directory', name: 'var/cache/' },
    { type: 'file', name: 'var/cache/.wh..wh..opq' },
    { type: 'file', name: 'app', content: 'app', mode: 0o755 },
  ];

  for (const [label, wrap] of [
    ['into the upper directory', (s: OverlaySnapshotter): Snapshotter => s],
    ['through a mount, for snapshotters without applyTarget', withoutApplyTarget],
  ] as const) {
    it(`unpacks layers ${label}, named by chainID, and skips those already there`, async () => {
      const s = wrap(fresh());
      const layers = [await testLayer(base1), await testLayer(app)];
      const top = await unpackLayers(s, layers);
      const chain = chainIds(layers.map((l) => l.diffId));
      assert.equal(top, chain[1]);
      const walked = await s.walk();
      assert.deepEqual(
        walked.map((i) => [i.key, i.kind, i.parent, i.labels[LAYER_LABEL]]).sort(),
        [
          [chain[0], 'Committed', undefined, layers[0]!.diffId],
          [chain[1], 'Committed', chain[0], layers[1]!.diffId],
        ].sort(),
      );
      await look(s, top, (dir) => {
        assert.deepEqual(readdirSync(dir).sort(), ['app', 'etc', 'var']);
        assert.deepEqual(readdirSync(join(dir, 'etc')), ['os-release']);
        assert.deepEqual(readdirSync(join(dir, 'var/cache')), []);
        assert.equal(readFileSync(join(dir, 'app'), 'utf8'), 'app');
      });

      assert.equal(await unpackLayers(s, layers), top);
      assert.deepEqual(layers.map((l) => l.opened), [1, 1], 'committed layers are not opened again');
    });
  }

  it('refuses a layer whose content does not match its diffID, and leaves nothing of it', async () => {
    const s = fresh();
    const good = await testLayer(base1);
    const claimed = sha256('something else');
    const bad = await testLayer(app, claimed);
    const actual = sha256(await buildLayer(app));
    await assert.rejects(unpackLayers(s, [good, bad]), (err: unknown) => {
      assert.ok(err instanceof DiffIdMismatchError);
      assert.equal(err.layer, 1);
      assert.ok(err.message.includes(claimed) && err.message.includes(actual), err.message);
      return true;
    });
    assert.deepEqual((await s.walk()).map((i) => i.key), [good.diffId], 'only the verified layer is committed');
    await s.cleanup();
    assert.deepEqual(readdirSync(join(s.root, 'snapshots')), ['1']);
  });

  it('removes the half-applied snapshot when the layer stream fails', async () => {
    const s = fresh();
    const layer: Layer = {
      diffId: sha256('never read whole'),
      async open() {
        const r = new Readable({ read() {} });
        r.push((await buildLayer(base1)).subarray(0, 700));
        setImmediate(() => r.destroy(new Error('registry went away')));
        return r;
      },
    };
    await assert.rejects(unpackLayers(s, [layer]), /registry went away/);
    assert.deepEqual(await s.walk(), []);
  });

  it('garbage-collects layers nothing keeps, children before parents', async () => {
    const s = fresh();
    const l0 = await testLayer(base1);
    const imageA = await unpackLayers(s, [l0, await testLayer(app)]);
    const imageB = await unpackLayers(s, [l0, await testLayer([{ type: 'file', name: 'b', content: 'b' }])]);
    const imageC = await unpackLayers(s, [l0, await testLayer([{ type: 'file', name: 'c', content: 'c' }])]);
    const imageD = await unpackLayers(s, [await testLayer([{ type: 'file', name: 'd', content: 'd' }])]);
    await s.prepare('container-on-c', imageC);
    // A committed snapshot gc did not unpack (no layer label) is never its to remove.
    await s.prepare('checkpoint-active');
    await s.commit('checkpoint', 'checkpoint-active');

    const removed = await gc(s, new Set([imageB]));
    assert.deepEqual(removed.sort(), [imageA, imageD].sort());
    assert.deepEqual(
      (await s.walk()).map((i) => i.key).sort(),
      ['checkpoint', 'container-on-c', l0.diffId, imageB, imageC].sort(),
    );
    await s.remove('container-on-c');
    const rest = await gc(s, new Set());
    assert.deepEqual(rest.slice(0, 2).sort(), [imageB, imageC].sort());
    assert.equal(rest[2], l0.diffId, 'the shared base layer goes after its children');
    assert.deepEqual((await s.walk()).map((i) => i.key), ['checkpoint']);
    assert.deepEqual(readdirSync(join(s.root, 'snapshots')).length, 1, 'gc ran cleanup');
  });
});
