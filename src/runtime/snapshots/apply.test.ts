import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { applyLayer, LayerEntryError, type WhiteoutFormat } from './apply.js';
import { run } from './command.js';
import { buildLayer, layerStream, type FixtureEntry } from './fixture.js';
import { mountAll, unmount } from './mount.js';

async function getXattr(path: string, name: string): Promise<Buffer | undefined> {
  try {
    const out = await run('getfattr', ['-h', '-e', 'base64', '-n', name, '--', path]);
    const line = out.split('\n').find((l) => l.startsWith(`${name}=`));
    return line === undefined ? undefined : Buffer.from(line.slice(name.length + 1).replace(/^0s/, ''), 'base64');
  } catch {
    return undefined;
  }
}

const MTIME = new Date('2021-05-06T07:08:09Z');

describe('applyLayer', () => {
  let base = '';
  const targets: string[] = [];
  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'atoll-apply-'));
  });
  after(async () => {
    for (const t of targets) await unmount(t).catch(() => undefined);
    await rm(base, { recursive: true, force: true });
  });

  let n = 0;
  function dir(): string {
    const d = join(base, `d${++n}`);
    mkdirSync(d);
    return d;
  }
  async function apply(entries: FixtureEntry[], into = dir(), whiteouts: WhiteoutFormat = 'overlay'): Promise<string> {
    await applyLayer(layerStream(await buildLayer(entries)), into, { whiteouts });
    return into;
  }
  async function refused(entries: FixtureEntry[], entry: string, reason: RegExp, into = dir()): Promise<string> {
    await assert.rejects(apply(entries, into), (err: unknown) => {
      assert.ok(err instanceof LayerEntryError, `expected a LayerEntryError, got ${String(err)}`);
      assert.equal(err.entry, entry);
      assert.match(err.message, reason);
      return true;
    });
    return into;
  }

  it('unpacks every entry type with owner, mode, times and xattrs', async () => {
    const tarball = await buildLayer([
      { type: 'directory', name: 'bin/', mode: 0o1777, uid: 7, gid: 8, mtime: MTIME },
      { type: 'file', name: 'bin/su', content: 'binary', mode: 0o4755, uid: 1000, gid: 1001, mtime: MTIME },
      { type: 'file', name: 'bin/sg', content: '', mode: 0o2711 },
      { type: 'link', name: 'bin/su-again', target: 'bin/su' },
      { type: 'symlink', name: 'bin/passwd', target: '/etc/passwd', uid: 5, gid: 6 },
      { type: 'character-device', name: 'dev/null', major: 1, minor: 3, mode: 0o666 },
      { type: 'block-device', name: 'dev/loop0', major: 7, minor: 0, mode: 0o660, gid: 6 },
      { type: 'fifo', name: 'run/pipe', mode: 0o600 },
      {
        type: 'file',
        name: 'bin/ping',
        content: 'p',
        xattrs: { 'user.text': 'hello', 'user.bin': Buffer.from([0xff, 0x00, 0x80, 0xfe]), 'trusted.overlay.opaque': 'y' },
      },
      { type: 'file', name: `deep/${'n'.repeat(120)}/${'m'.repeat(120)}`, content: 'long name' },
    ]);
    const d = dir();
    const result = await applyLayer(layerStream(tarball), d);
    assert.deepEqual(result, { bytes: tarball.length, entries: 10 });

    const bin = lstatSync(join(d, 'bin'));
    assert.ok(bin.isDirectory());
    assert.equal(bin.mode & 0o7777, 0o1777);
    assert.deepEqual([bin.uid, bin.gid], [7, 8]);
    assert.equal(bin.mtime.getTime(), MTIME.getTime(), 'directory times are set after its children');

    const su = lstatSync(join(d, 'bin/su'));
    assert.equal(su.mode & 0o7777, 0o4755, 'setuid survives chown');
    assert.deepEqual([su.uid, su.gid, su.mtime.getTime()], [1000, 1001, MTIME.getTime()]);
    assert.equal(readFileSync(join(d, 'bin/su'), 'utf8'), 'binary');
    assert.equal(lstatSync(join(d, 'bin/sg')).mode & 0o7777, 0o2711);

    const again = lstatSync(join(d, 'bin/su-again'));
    assert.equal(again.ino, su.ino);
    assert.equal(again.nlink, 2);

    const link = lstatSync(join(d, 'bin/passwd'));
    assert.ok(link.isSymbolicLink());
    assert.equal(readlinkSync(join(d, 'bin/passwd')), '/etc/passwd');
    assert.deepEqual([link.uid, link.gid], [5, 6]);

    const nul = lstatSync(join(d, 'dev/null'));
    assert.ok(nul.isCharacterDevice());
    assert.equal(nul.rdev, (1 << 8) | 3);
    assert.equal(nul.mode & 0o7777, 0o666);
    const loop = lstatSync(join(d, 'dev/loop0'));
    assert.ok(loop.isBlockDevice());
    assert.equal(loop.rdev, 7 << 8);
    assert.equal(loop.gid, 6);
    assert.ok(lstatSync(join(d, 'run/pipe')).isFIFO());
    assert.equal(lstatSync(join(d, 'run')).mode & 0o7777, 0o755, 'missing parents are created 0755');

    const ping = join(d, 'bin/ping');
    assert.deepEqual(await getXattr(ping, 'user.text'), Buffer.from('hello'));
    assert.deepEqual(await getXattr(ping, 'user.bin'), Buffer.from([0xff, 0x00, 0x80, 0xfe]), 'binary xattrs are kept byte for byte');
    assert.equal(await getXattr(ping, 'trusted.overlay.opaque'), undefined, 'a layer cannot set overlay xattrs');
    assert.equal(readFileSync(join(d, 'deep', 'n'.repeat(120), 'm'.repeat(120)), 'utf8'), 'long name');
  });

  it('replaces what an earlier entry put at the same path, never following it', async () => {
    const outside = dir();
    writeFileSync(join(outside, 'secret'), 'untouched');
    const d = await apply([
      { type: 'symlink', name: 'etc', target: outside },
      { type: 'directory', name: 'etc/' },
      { type: 'file', name: 'etc/secret', content: 'in the layer' },
      { type: 'symlink', name: 'f', target: join(outside, 'secret') },
      { type: 'file', name: 'f', content: 'replaced' },
      { type: 'file', name: 'd', content: 'was a file' },
      { type: 'directory', name: 'd/' },
      { type: 'file', name: 'd/inner', content: 'now a directory' },
    ]);
    assert.equal(readFileSync(join(outside, 'secret'), 'utf8'), 'untouched');
    assert.ok(lstatSync(join(d, 'etc')).isDirectory());
    assert.equal(readFileSync(join(d, 'etc/secret'), 'utf8'), 'in the layer');
    assert.ok(lstatSync(join(d, 'f')).isFile());
    assert.equal(readFileSync(join(d, 'd/inner'), 'utf8'), 'now a directory');
  });

  describe('refuses entries that would leave the root', () => {
    let outside = '';
    before(() => {
      outside = dir();
      writeFileSync(join(outside, 'passwd'), 'root:x:0:0');
    });

    it('refuses ".." in names and hard link targets', async () => {
      await refused([{ type: 'file', name: '../x', content: 'x' }], '../x', /contains "\.\."/);
      await refused([{ type: 'file', name: 'a/../../x', content: 'x' }], 'a/../../x', /contains "\.\."/);
      await refused([{ type: 'link', name: 'h', target: '../../etc/passwd' }], 'h', /hard link target .* contains "\.\."/);
      assert.equal(existsSync(join(base, 'x')), false);
    });

    it('writes absolute names relative to the root', async () => {
      const d = await apply([{ type: 'file', name: '/etc/x', content: 'inside' }]);
      assert.equal(readFileSync(join(d, 'etc/x'), 'utf8'), 'inside');
    });

    it('never writes through a symlink, absolute or relative', async () => {
      await refused(
        [
          { type: 'symlink', name: 'a', target: outside },
          { type: 'file', name: 'a/pwned', content: 'x' },
        ],
        'a/pwned',
        /parent "a" is a symbolic link/,
      );
      await refused(
        [
          { type: 'symlink', name: 'up', target: '../..' },
          { type: 'directory', name: 'up/x/' },
        ],
        'up/x/',
        /parent "up" is a symbolic link/,
      );
      await refused(
        [
          { type: 'symlink', name: 'w', target: outside },
          { type: 'file', name: 'w/.wh.passwd' },
        ],
        'w/.wh.passwd',
        /parent "w" is a symbolic link/,
      );
      await refused(
        [
          { type: 'symlink', name: 'etc', target: outside },
          { type: 'link', name: 'stolen', target: 'etc/passwd' },
        ],
        'stolen',
        /passes through symbolic link "etc"/,
      );
      assert.deepEqual(readdirSync(outside), ['passwd']);
      assert.equal(readFileSync(join(outside, 'passwd'), 'utf8'), 'root:x:0:0');
    });

    it('refuses hard links to nothing or to a directory, and whiteouts of "." or ".."', async () => {
      await refused([{ type: 'link', name: 'h', target: 'missing' }], 'h', /does not exist in the layer/);
      await refused([{ type: 'directory', name: 'd/' }, { type: 'link', name: 'h', target: 'd' }], 'h', /is a directory/);
      await refused([{ type: 'file', name: 'x/.wh..' }], 'x/.wh..', /not a sibling entry/);
      await refused([{ type: 'file', name: 'f' }, { type: 'file', name: 'f/g' }], 'f/g', /parent "f" is not a directory/);
    });
  });

  describe('whiteouts', () => {
    const lower: FixtureEntry[] = [
      { type: 'directory', name: 'etc/' },
      { type: 'file', name: 'etc/keep', content: 'k' },
      { type: 'file', name: 'etc/gone', content: 'g' },
      { type: 'directory', name: 'olddir/' },
      { type: 'file', name: 'olddir/sub/file', content: 'o' },
      { type: 'directory', name: 'opq/' },
      { type: 'file', name: 'opq/old', content: 'o' },
      { type: 'file', name: 'opq/older/deep', content: 'o' },
      { type: 'file', name: 'opq/kept-by-upper', content: 'lower' },
    ];
    const upper: FixtureEntry[] = [
      { type: 'directory', name: 'etc/' },
      { type: 'file', name: 'etc/.wh.gone' },
      { type: 'file', name: '.wh.olddir' },
      { type: 'directory', name: 'opq/' },
      { type: 'file', name: 'opq/kept-by-upper', content: 'upper' },
      // The marker comes after a sibling of the same layer: it still hides only lower content.
      { type: 'file', name: 'opq/.wh..wh..opq' },
      { type: 'file', name: 'opq/new', content: 'n' },
      { type: 'file', name: '.wh..wh.plnk' },
    ];

    function assertMerged(root: string): void {
      assert.deepEqual(readdirSync(root).sort(), ['etc', 'opq']);
      assert.deepEqual(readdirSync(join(root, 'etc')), ['keep']);
      assert.deepEqual(readdirSync(join(root, 'opq')).sort(), ['kept-by-upper', 'new']);
      assert.equal(readFileSync(join(root, 'opq/kept-by-upper'), 'utf8'), 'upper');
    }

    it('writes overlay whiteouts and opaque directories that a real overlay mount honours', async () => {
      const l = await apply(lower);
      const u = await apply(upper);
      const gone = lstatSync(join(u, 'etc/gone'));
      assert.ok(gone.isCharacterDevice());
      assert.equal(gone.rdev, 0);
      assert.ok(lstatSync(join(u, 'olddir')).isCharacterDevice());
      assert.deepEqual(await getXattr(join(u, 'opq'), 'trusted.overlay.opaque'), Buffer.from('y'));
      assert.equal(await getXattr(join(u, 'etc'), 'trusted.overlay.opaque'), undefined);
      assert.equal(existsSync(join(u, '.wh..wh.plnk')), false, 'aufs metadata is skipped');

      const t = dir();
      targets.push(t);
      await mountAll([{ type: 'overlay', source: 'overlay', options: [`lowerdir=${u}:${l}`] }], t);
      try {
        assertMerged(t);
      } finally {
        await unmount(t);
      }
    });

    it('deletes whited-out paths when applied onto the merged tree', async () => {
      const d = await apply(lower, dir(), 'delete');
      await apply(upper, d, 'delete');
      assertMerged(d);
    });
  });

  it('reports a stream that is not a tar archive, or that fails, without hanging', async () => {
    await assert.rejects(applyLayer(Readable.from([Buffer.alloc(512, 'x')]), dir()), /not a valid tar archive/);
    const tarball = await buildLayer([{ type: 'file', name: 'big', content: Buffer.alloc(100_000) }]);
    const broken = new Readable({ read() {} });
    broken.push(tarball.subarray(0, 5000));
    setImmediate(() => broken.destroy(new Error('connection reset')));
    await assert.rejects(applyLayer(broken, dir()), /connection reset/);
    await assert.rejects(applyLayer(Readable.from([tarball.subarray(0, 5000)]), dir()), /Unexpected end of data/);
  });
});
