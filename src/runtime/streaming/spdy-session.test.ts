import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { deflateSync } from 'node:zlib';
import { SPDY3_HEADER_DICTIONARY } from './spdy-dictionary.js';
import { FrameReader, RST_REFUSED_STREAM, decodeHeaderBlock, encodeHeaderBlock, goawayFrame, pingFrame, rstStreamFrame, type Frame } from './spdy-frames.js';
import { SpdySession, type SpdyStream } from './spdy-session.js';

function readAll(stream: SpdyStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve) => stream.once('end', () => resolve(Buffer.concat(chunks))));
}

describe('SPDY/3 framing', () => {
  it('builds the spec’s header dictionary (1423 bytes, Adler-32 e3c6a7c2 in the zlib header)', () => {
    assert.equal(SPDY3_HEADER_DICTIONARY.length, 1423);
    const zlibHeader = deflateSync(Buffer.alloc(0), { dictionary: SPDY3_HEADER_DICTIONARY }).subarray(2, 6);
    assert.equal(zlibHeader.toString('hex'), 'e3c6a7c2');
  });

  it('encodes header blocks with lower-case names and parses them back, refusing truncated ones', () => {
    const block = encodeHeaderBlock({ StreamType: 'stdout', port: '80' });
    assert.deepEqual(decodeHeaderBlock(block), { streamtype: 'stdout', port: '80' });
    assert.throws(() => decodeHeaderBlock(block.subarray(0, block.length - 1)), /ends inside a value/);
    assert.throws(() => decodeHeaderBlock(Buffer.concat([block, Buffer.from([0])])), /after the header block/);
  });

  it('cuts a byte stream into frames wherever the chunks split', () => {
    const bytes = Buffer.concat([pingFrame(7), rstStreamFrame(3, RST_REFUSED_STREAM), goawayFrame(5, 0)]);
    const reader = new FrameReader();
    const frames: Frame[] = [];
    for (const byte of bytes) frames.push(...reader.push(Buffer.from([byte])));
    assert.deepEqual(frames, [
      { type: 'ping', id: 7 },
      { type: 'rst_stream', streamId: 3, status: RST_REFUSED_STREAM },
      { type: 'goaway', lastGoodStreamId: 5, status: 0 },
    ]);
    const spdy2 = Buffer.from(pingFrame(1));
    spdy2.writeUInt16BE(0x8002, 0);
    assert.throws(() => new FrameReader().push(spdy2), /unsupported SPDY version 2/);
  });
});

describe('SpdySession over loopback TCP', () => {
  let listener: Server;
  let accepted: (socket: Socket) => void;
  const sockets: Socket[] = [];
  before(async () => {
    listener = createServer((socket) => {
      sockets.push(socket);
      accepted(socket);
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => listener.close(resolve));
  });

  async function pair(): Promise<{ client: SpdySession; server: SpdySession; raw: Socket }> {
    const serverSocket = new Promise<Socket>((resolve) => (accepted = resolve));
    const raw = connect((listener.address() as { port: number }).port, '127.0.0.1');
    sockets.push(raw);
    await new Promise((resolve) => raw.once('connect', resolve));
    return { client: new SpdySession(raw, 'client'), server: new SpdySession(await serverSocket, 'server'), raw };
  }

  it('opens streams with headers, carries data both ways and half-closes each side with FIN', async () => {
    const { client, server } = await pair();
    server.onStream = (stream) => {
      stream.accept();
      void readAll(stream).then((data) => stream.end(Buffer.concat([Buffer.from(`${stream.headers.streamtype}:`), data])));
    };
    const [a, b] = await Promise.all([client.openStream({ streamType: 'one' }), client.openStream({ streamType: 'two' })]);
    a.end('alpha');
    b.end('beta');
    assert.equal((await readAll(a)).toString(), 'one:alpha');
    assert.equal((await readAll(b)).toString(), 'two:beta');
    await client.close();
    await server.closed;
  });

  it('moves megabytes intact in both directions', async () => {
    const { client, server } = await pair();
    server.onStream = (stream) => {
      stream.accept();
      stream.pipe(stream);
    };
    const payload = randomBytes(3 * 1024 * 1024 + 17);
    const stream = await client.openStream({ streamtype: 'echo' });
    const echoed = readAll(stream);
    stream.end(payload);
    assert.ok((await echoed).equals(payload));
    client.destroy();
    await server.closed;
  });

  it('rejects openStream when the server refuses the stream, and answers pings', async () => {
    const { client, server, raw } = await pair();
    server.onStream = (stream) => stream.reset(RST_REFUSED_STREAM);
    await assert.rejects(client.openStream({ streamtype: 'nope' }), /reset SPDY stream 1 \(status 3\)/);
    const pong = new Promise<Buffer>((resolve) => raw.once('data', resolve));
    raw.write(pingFrame(9));
    assert.deepEqual(new FrameReader().push(await pong), [{ type: 'ping', id: 9 }]);
    client.destroy();
    await server.closed;
  });

  it('answers a frame that is not SPDY/3 with GOAWAY PROTOCOL_ERROR and hangs up', async () => {
    const { server, raw } = await pair();
    const received: Buffer[] = [];
    raw.on('data', (chunk: Buffer) => received.push(chunk));
    const rawClosed = new Promise((resolve) => raw.once('close', resolve));
    raw.write(Buffer.alloc(8)); // a DATA frame on stream 0
    await server.closed;
    await rawClosed;
    const frames = new FrameReader().push(Buffer.concat(received));
    assert.deepEqual(frames, [{ type: 'goaway', lastGoodStreamId: 0, status: 1 }]);
  });
});
