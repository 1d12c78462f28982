import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrameDecoder, MAX_FRAME_BYTES, ProtocolError, encodeFrame, parseRequest, parseResponse } from './agent-protocol.js';

function rawFrame(body: string | Buffer): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  const header = Buffer.alloc(4);
  header.writeUInt32BE(bytes.length, 0);
  return Buffer.concat([header, bytes]);
}

describe('agent protocol frames', () => {
  it('round-trips messages split at every byte and several per chunk', () => {
    const a = { v: 1, id: 1, op: 'hello', versions: [1] };
    const b = { v: 1, id: 2, op: 'exec', argv: ['uname', '-r'], note: 'ünïcode' };
    const bytes = Buffer.concat([encodeFrame(a), encodeFrame(b)]);
    for (let split = 0; split <= bytes.length; split++) {
      const decoder = new FrameDecoder();
      const got = [...decoder.push(bytes.subarray(0, split)), ...decoder.push(bytes.subarray(split))];
      assert.deepEqual(got, [a, b]);
      assert.equal(decoder.pending, 0);
    }
  });

  it('waits for the rest of a partial frame', () => {
    const decoder = new FrameDecoder();
    assert.deepEqual(decoder.push(encodeFrame({ id: 1 }).subarray(0, 6)), []);
    assert.equal(decoder.pending, 6);
  });

  it('refuses an oversized length before buffering it, and stays broken', () => {
    const decoder = new FrameDecoder();
    const header = Buffer.alloc(4);
    header.writeUInt32BE(MAX_FRAME_BYTES + 1, 0);
    assert.throws(() => decoder.push(header), (err: unknown) => err instanceof ProtocolError && /exceeds the \d+-byte limit/.test(err.message));
    assert.throws(() => decoder.push(encodeFrame({ id: 1 })), ProtocolError);
  });

  it('refuses a body that is not JSON, or JSON that is not an object', () => {
    assert.throws(() => new FrameDecoder().push(rawFrame('{"id":')), /frame body is not JSON/);
    assert.throws(() => new FrameDecoder().push(rawFrame('[1,2]')), /not a JSON object/);
    assert.throws(() => new FrameDecoder().push(rawFrame('null')), /not a JSON object/);
    assert.throws(() => new FrameDecoder().push(rawFrame(Buffer.from([0xff, 0xfe]))), /not JSON/);
  });

  it('checks request and response envelopes with precise errors', () => {
    assert.throws(() => parseRequest({ v: 1, op: 'hello' }), /'id' must be a non-negative integer, got undefined/);
    assert.throws(() => parseRequest({ v: 1, id: -1, op: 'hello' }), /'id' must be a non-negative integer/);
    assert.throws(() => parseRequest({ v: '1', id: 3, op: 'hello' }), /request 3: 'v' must be an integer/);
    assert.throws(() => parseRequest({ v: 1, id: 3 }), /request 3: 'op' must be a string/);
    assert.equal(parseRequest({ v: 1, id: 3, op: 'exec', argv: ['x'] }).op, 'exec');
    assert.throws(() => parseResponse({ v: 1, id: 4 }), /response 4: 'ok' must be true or false/);
    assert.throws(() => parseResponse({ v: 1, id: 4, ok: true }), /'result' is missing/);
    assert.throws(() => parseResponse({ v: 1, id: 4, ok: false, error: 'x' }), /'error' must be \{code, message\}/);
    assert.deepEqual(parseResponse({ v: 1, id: 4, ok: false, error: { code: 'BadRequest', message: 'm' } }), { v: 1, id: 4, ok: false, error: { code: 'BadRequest', message: 'm' } });
  });
});
