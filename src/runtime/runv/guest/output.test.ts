import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OutputBuffer } from './output.js';

const text = (data: string) => Buffer.from(data, 'base64').toString();

describe('guest output buffer', () => {
  it('numbers chunks in order with their stream and resumes after a cursor', async () => {
    const buffer = new OutputBuffer();
    buffer.push('stdout', Buffer.from('one\n'));
    buffer.push('stderr', Buffer.from('two\n'));
    buffer.push('stdout', Buffer.from('three\n'));
    const all = await buffer.read(0, 0, 1024);
    assert.deepEqual(all.chunks.map((c) => [c.seq, c.stream, text(c.data)]), [[1, 'stdout', 'one\n'], [2, 'stderr', 'two\n'], [3, 'stdout', 'three\n']]);
    assert.equal(all.dropped, 0);
    assert.equal(all.eof, false);
    const rest = await buffer.read(2, 0, 1024);
    assert.deepEqual(rest.chunks.map((c) => c.seq), [3]);
    assert.equal(rest.epoch, all.epoch);
  });

  it('drops the oldest chunks past its bound and counts them for a reader behind', async () => {
    const buffer = new OutputBuffer(10);
    for (const word of ['aaaa', 'bbbb', 'cccc', 'dddd']) buffer.push('stdout', Buffer.from(word));
    const read = await buffer.read(0, 0, 1024);
    assert.deepEqual(read.chunks.map((c) => text(c.data)), ['cccc', 'dddd']);
    assert.equal(read.dropped, 2);
    assert.equal((await buffer.read(3, 0, 1024)).dropped, 0);
  });

  it('splits a large write, returns at most maxBytes (but always one chunk), and says eof only at the end', async () => {
    const buffer = new OutputBuffer();
    buffer.push('stdout', Buffer.alloc(150 * 1024, 'x'));
    buffer.close();
    const first = await buffer.read(0, 0, 70 * 1024);
    assert.deepEqual(first.chunks.map((c) => Buffer.from(c.data, 'base64').length), [64 * 1024]);
    assert.equal(first.eof, false);
    const rest = await buffer.read(1, 0, 1024 * 1024);
    assert.deepEqual(rest.chunks.map((c) => c.seq), [2, 3]);
    assert.equal(rest.eof, true);
  });

  it('holds a long poll until output or the end arrives', async () => {
    const buffer = new OutputBuffer();
    const waiting = buffer.read(0, 60_000, 1024);
    buffer.push('stderr', Buffer.from('late'));
    assert.deepEqual((await waiting).chunks.map((c) => text(c.data)), ['late']);
    const ending = buffer.read(1, 60_000, 1024);
    buffer.close();
    assert.deepEqual(await ending.then((r) => [r.chunks.length, r.eof]), [0, true]);
  });

  it('ends a long poll when its signal aborts', async () => {
    const buffer = new OutputBuffer();
    const controller = new AbortController();
    const waiting = buffer.read(0, 60_000, 1024, controller.signal);
    controller.abort();
    assert.deepEqual((await waiting).chunks, []);
  });
});
