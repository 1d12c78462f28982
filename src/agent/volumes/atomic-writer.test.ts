import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DATA_DIR, PayloadError, writeAtomically } from './atomic-writer.js';
import type { Payload } from './types.js';

const root = await mkdtemp(join(tmpdir(), 'atoll-atomic-'));
after(() => rm(root, { recursive: true, force: true }));

let n = 0;
async function target(): Promise<string> {
  const dir = join(root, `v${n++}`);
  await mkdir(dir);
  return dir;
}

function payload(files: Record<string, string | [string, number]>): Payload {
  return new Map(
    Object.entries(files).map(([path, v]) => {
      const [text, mode] = typeof v === 'string' ? [v, 0o644] : v;
      return [path, { data: Buffer.from(text), mode }];
    }),
  );
}

/** The volume's entries that are not timestamped data directories, sorted. */
async function visible(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((e) => !/^\.\.\d/.test(e)).sort();
}

async function tsDirs(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((e) => /^\.\.\d{4}_/.test(e));
}

describe('writeAtomically', () => {
  it('lays out ..data, a timestamped dir and per-name links, with the files’ modes', async () => {
    const dir = await target();
    assert.equal(await writeAtomically(dir, payload({ a: 'A', 'sub/b': ['B', 0o400], 'sub/deeper/c': 'C' })), true);
    assert.deepEqual(await visible(dir), ['..data', 'a', 'sub']);
    const ts = await readlink(join(dir, DATA_DIR));
    assert.match(ts, /^\.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\./);
    assert.equal(await readlink(join(dir, 'a')), '..data/a');
    assert.equal(await readlink(join(dir, 'sub')), '..data/sub');
    assert.equal(await readFile(join(dir, 'sub/deeper/c'), 'utf8'), 'C');
    assert.equal((await stat(join(dir, 'sub/b'))).mode & 0o777, 0o400);
    assert.equal((await stat(join(dir, 'a'))).mode & 0o777, 0o644);
    assert.equal((await stat(join(dir, ts))).mode & 0o777, 0o755);
  });

  it('does nothing when the content is already there', async () => {
    const dir = await target();
    await writeAtomically(dir, payload({ a: 'A' }));
    const before = await readlink(join(dir, DATA_DIR));
    assert.equal(await writeAtomically(dir, payload({ a: 'A' })), false);
    assert.equal(await readlink(join(dir, DATA_DIR)), before);
  });

  it('swaps to new content, removes the old data dir and links of names that went away', async () => {
    const dir = await target();
    await writeAtomically(dir, payload({ a: 'A', gone: 'G', 'd/x': 'X' }));
    const before = await readlink(join(dir, DATA_DIR));
    assert.equal(await writeAtomically(dir, payload({ a: 'A2', 'd/y': 'Y' })), true);
    const now = await readlink(join(dir, DATA_DIR));
    assert.notEqual(now, before);
    assert.deepEqual(await tsDirs(dir), [now]);
    assert.deepEqual(await visible(dir), ['..data', 'a', 'd']);
    assert.equal(await readFile(join(dir, 'a'), 'utf8'), 'A2');
    assert.deepEqual(await readdir(join(dir, 'd')), ['y']);
  });

  it('restores missing links without rewriting current data', async () => {
    const dir = await target();
    await writeAtomically(dir, payload({ a: 'A' }));
    await rm(join(dir, 'a'));
    assert.equal(await writeAtomically(dir, payload({ a: 'A' })), false);
    assert.equal(await readFile(join(dir, 'a'), 'utf8'), 'A');
  });

  it('removes data dirs a crashed write left behind', async () => {
    const dir = await target();
    await mkdir(join(dir, '..2020_01_01_00_00_00.abc123'));
    await writeAtomically(dir, payload({ a: 'A' }));
    assert.deepEqual(await tsDirs(dir), [await readlink(join(dir, DATA_DIR))]);
  });

  it('refuses paths that would leave the volume or clash with its own names', async () => {
    const dir = await target();
    const refused: [string, string][] = [
      ['/etc/passwd', 'invalid path: must be relative path: /etc/passwd'],
      ['a/../../x', "invalid path: must not contain '..': a/../../x"],
      ['..data', "invalid path: must not start with '..': ..data"],
      ['', 'invalid path: must not be empty: ""'],
      ['x'.repeat(256), 'invalid path: filenames must be less than or equal to 255 characters'],
    ];
    for (const [path, message] of refused) {
      await assert.rejects(writeAtomically(dir, payload({ [path]: 'x' })), new PayloadError(message));
    }
    assert.deepEqual(await readdir(dir), []);
  });

  it('keeps the previous content when a write fails', async () => {
    const dir = await target();
    await writeAtomically(dir, payload({ a: 'A' }));
    const before = await readlink(join(dir, DATA_DIR));
    await assert.rejects(
      writeAtomically(dir, payload({ a: 'A2' }), async () => {
        throw new Error('chown failed');
      }),
      /chown failed/,
    );
    // A file and a directory of the same name cannot both be written.
    await assert.rejects(writeAtomically(dir, payload({ x: 'file', 'x/y': 'in dir' })));
    assert.equal(await readlink(join(dir, DATA_DIR)), before);
    assert.deepEqual(await tsDirs(dir), [before]);
    assert.equal(await readFile(join(dir, 'a'), 'utf8'), 'A');
    await assert.rejects(lstat(join(dir, '..data_tmp')), { code: 'ENOENT' });
  });
});
