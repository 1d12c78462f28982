import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ContentStore } from './content.js';
import { DigestMismatchError } from './errors.js';

const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A source that serves `data` from the asked offset, optionally breaking after `breakAfter` bytes. */
function source(data: Buffer, opts: { breakAfter?: number; ignoreRange?: boolean; seen?: number[] } = {}) {
  return async (offset: number) => {
    opts.seen?.push(offset);
    const start = opts.ignoreRange ? 0 : offset;
    const body = data.subarray(start);
    if (opts.breakAfter === undefined) return { stream: Readable.from([body]), offset: start };
    const cut = body.subarray(0, opts.breakAfter);
    let sent = false;
    const stream = new Readable({
      read() {
        if (!sent) {
          sent = true;
          this.push(cut);
        } else {
          setTimeout(() => this.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })), 20);
        }
      },
    });
    return { stream, offset: start };
  };
}

describe('ContentStore', () => {
  let root: string;
  let store: ContentStore;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'atoll-content-'));
    store = new ContentStore(root);
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('puts, reads, sizes, walks and deletes blobs at content/blobs/sha256/<hex>', async () => {
    const data = Buffer.from('hello content');
    const info = await store.put(data);
    assert.equal(info.digest, digestOf(data));
    assert.equal(store.path(info.digest), join(root, 'content', 'blobs', 'sha256', info.digest.slice(7)));
    assert.ok(await store.has(info.digest));
    assert.equal(await store.size(info.digest), data.length);
    assert.deepEqual(await store.read(info.digest), data);
    const walked = [];
    for await (const b of store.walk()) walked.push(b);
    assert.ok(walked.some((b) => b.digest === info.digest && b.size === data.length));
    await store.delete(info.digest);
    assert.equal(await store.has(info.digest), false);
    await assert.rejects(store.size(info.digest), { code: 'NotFound' });
  });

  it('refuses bytes that do not match the expected digest and leaves no blob', async () => {
    const expected = digestOf(Buffer.from('one thing'));
    await assert.rejects(store.put(Buffer.from('another'), expected), (err: unknown) => {
      assert.ok(err instanceof DigestMismatchError);
      assert.equal(err.expected, expected);
      assert.equal(err.actual, digestOf(Buffer.from('another')));
      return true;
    });
    assert.equal(await store.has(expected), false);
  });

  it('keeps a broken download as a partial file and resumes it from that offset', async () => {
    const data = randomBytes(100_000);
    const digest = digestOf(data);
    await assert.rejects(store.ingest(digest, source(data, { breakAfter: 30_000 }), { size: data.length }), /aborted/);
    assert.equal(await store.has(digest), false, 'no blob from a broken download');
    const held = await store.partialSize(digest);
    assert.ok(held > 0 && held <= 30_000, `partial holds ${held} bytes`);
    const seen: number[] = [];
    const info = await store.ingest(digest, source(data, { seen }), { size: data.length });
    assert.deepEqual(seen, [held], 'the second attempt asked for the rest only');
    assert.equal(info.size, data.length);
    assert.deepEqual(await store.read(digest), data);
    assert.equal(await store.partialSize(digest), 0, 'partial renamed into place');
  });

  it('starts over when the source ignores the range', async () => {
    const data = randomBytes(50_000);
    const digest = digestOf(data);
    await assert.rejects(store.ingest(digest, source(data, { breakAfter: 10_000 }), { size: data.length }));
    await store.ingest(digest, source(data, { ignoreRange: true }), { size: data.length });
    assert.deepEqual(await store.read(digest), data);
  });

  it('discards a partial whose bytes are corrupt and names both digests', async () => {
    const data = randomBytes(20_000);
    const digest = digestOf(data);
    await mkdir(join(root, 'content', 'ingest', 'sha256'), { recursive: true });
    // A crash-era partial with wrong bytes: the resumed ingest must not trust it.
    await writeFile(store.partialPath(digest), randomBytes(5_000));
    await assert.rejects(store.ingest(digest, source(data), { size: data.length }), (err: unknown) => {
      assert.ok(err instanceof DigestMismatchError);
      assert.equal(err.expected, digest);
      assert.notEqual(err.actual, digest);
      return true;
    });
    assert.equal(await store.has(digest), false);
    assert.equal(await store.partialSize(digest), 0);
    await store.ingest(digest, source(data), { size: data.length });
    assert.ok(await store.has(digest));
  });

  it('does not list temporary files as blobs, and cleans them', async () => {
    await mkdir(join(root, 'content', 'ingest', 'tmp'), { recursive: true });
    await writeFile(join(root, 'content', 'ingest', 'tmp', 'crash-leftover'), 'half');
    await writeFile(join(root, 'content', 'blobs', 'sha256', 'not-a-digest'), 'x');
    for await (const b of store.walk()) assert.match(b.digest, /^sha256:[a-f0-9]{64}$/);
    await store.cleanTemporary();
    await assert.rejects(stat(join(root, 'content', 'ingest', 'tmp')), { code: 'ENOENT' });
  });

  it('downloads a blob once when two ingests race', async () => {
    const data = randomBytes(10_000);
    const digest = digestOf(data);
    const seen: number[] = [];
    await Promise.all([store.ingest(digest, source(data, { seen })), store.ingest(digest, source(data, { seen }))]);
    assert.equal(seen.length, 1);
  });

  it('garbage-collects unreferenced blobs only', async () => {
    const keep = await store.put(Buffer.from('keep me'));
    const drop = await store.put(Buffer.from('drop me'));
    const removed = await store.gc(new Set([keep.digest]));
    assert.ok(removed.some((b) => b.digest === drop.digest));
    assert.ok(await store.has(keep.digest));
    assert.equal(await store.has(drop.digest), false);
    const left = await readdir(join(root, 'content', 'blobs', 'sha256'));
    assert.ok(left.includes(keep.digest.slice(7)));
  });
});
