/**
 * SPDY/3.1 framing (SPDY Protocol Draft 3 and 3.1), as far as Kubernetes' streaming needs it.
 *
 * Every frame starts with 8 bytes. A control frame: a 1 bit, the 15-bit version (3), the 16-bit
 * type, 8 bits of flags and a 24-bit payload length. A data frame: a 0 bit, the 31-bit stream id,
 * flags (FIN ends the sender's half of the stream) and the 24-bit length. Header blocks (in
 * SYN_STREAM, SYN_REPLY and HEADERS) are a 32-bit count of name/value pairs, each string behind a
 * 32-bit length, names lower-case, several values of one name joined by NUL; they travel
 * zlib-compressed (spdy-compression.ts). All numbers are big-endian.
 */

export const SPDY_VERSION = 3;
const FRAME_HEADER_BYTES = 8;
/** The 24-bit length field's limit. */
export const MAX_FRAME_PAYLOAD_BYTES = 0xff_ffff;
const STREAM_ID_MASK = 0x7fff_ffff;

export const FRAME_SYN_STREAM = 1;
export const FRAME_SYN_REPLY = 2;
export const FRAME_RST_STREAM = 3;
export const FRAME_SETTINGS = 4;
export const FRAME_PING = 6;
export const FRAME_GOAWAY = 7;
export const FRAME_HEADERS = 8;
export const FRAME_WINDOW_UPDATE = 9;

export const FLAG_FIN = 0x01;
export const FLAG_UNIDIRECTIONAL = 0x02;

/** RST_STREAM status codes. */
export const RST_PROTOCOL_ERROR = 1;
export const RST_REFUSED_STREAM = 3;
export const RST_CANCEL = 5;

/** GOAWAY status codes. */
export const GOAWAY_OK = 0;
export const GOAWAY_PROTOCOL_ERROR = 1;

export class SpdyProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpdyProtocolError';
  }
}

export type Frame =
  | { type: 'data'; streamId: number; fin: boolean; data: Buffer }
  | { type: 'syn_stream'; streamId: number; associatedId: number; priority: number; fin: boolean; unidirectional: boolean; block: Buffer }
  | { type: 'syn_reply'; streamId: number; fin: boolean; block: Buffer }
  | { type: 'headers'; streamId: number; fin: boolean; block: Buffer }
  | { type: 'rst_stream'; streamId: number; status: number }
  | { type: 'settings' }
  | { type: 'ping'; id: number }
  | { type: 'goaway'; lastGoodStreamId: number; status: number }
  | { type: 'window_update'; streamId: number; delta: number }
  | { type: 'unknown'; kind: number };

/**
 * Cuts a byte stream into frames. `push` takes whatever arrived and returns the frames it completed;
 * a partial frame waits for more bytes. Throws SpdyProtocolError on a frame that cannot be SPDY/3.
 */
export class FrameReader {
  private buffered: Buffer[] = [];
  private size = 0;

  push(chunk: Buffer): Frame[] {
    this.buffered.push(chunk);
    this.size += chunk.length;
    const frames: Frame[] = [];
    while (this.size >= FRAME_HEADER_BYTES) {
      const head = this.peek(FRAME_HEADER_BYTES);
      const length = head.readUInt32BE(4) & MAX_FRAME_PAYLOAD_BYTES;
      if (this.size < FRAME_HEADER_BYTES + length) break;
      const bytes = this.take(FRAME_HEADER_BYTES + length);
      frames.push(decodeFrame(bytes.subarray(0, FRAME_HEADER_BYTES), bytes.subarray(FRAME_HEADER_BYTES)));
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.buffered[0]!.length < n) this.buffered = [Buffer.concat(this.buffered)];
    return this.buffered[0]!.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
    this.buffered = all.length > n ? [all.subarray(n)] : [];
    this.size -= n;
    return all.subarray(0, n);
  }
}

function decodeFrame(head: Buffer, payload: Buffer): Frame {
  const flags = head[4]!;
  if ((head[0]! & 0x80) === 0) {
    const streamId = head.readUInt32BE(0) & STREAM_ID_MASK;
    if (streamId === 0) throw new SpdyProtocolError('data frame on stream 0');
    return { type: 'data', streamId, fin: (flags & FLAG_FIN) !== 0, data: payload };
  }
  const version = head.readUInt16BE(0) & 0x7fff;
  if (version !== SPDY_VERSION) throw new SpdyProtocolError(`unsupported SPDY version ${version} (this peer speaks ${SPDY_VERSION})`);
  const kind = head.readUInt16BE(2);
  const fin = (flags & FLAG_FIN) !== 0;
  const need = (bytes: number, name: string) => {
    if (payload.length < bytes) throw new SpdyProtocolError(`${name} frame of ${payload.length} bytes is too short (needs ${bytes})`);
  };
  const streamIdAt = (offset: number, name: string) => {
    const id = payload.readUInt32BE(offset) & STREAM_ID_MASK;
    if (id === 0) throw new SpdyProtocolError(`${name} frame on stream 0`);
    return id;
  };
  switch (kind) {
    case FRAME_SYN_STREAM:
      need(10, 'SYN_STREAM');
      return {
        type: 'syn_stream',
        streamId: streamIdAt(0, 'SYN_STREAM'),
        associatedId: payload.readUInt32BE(4) & STREAM_ID_MASK,
        priority: payload[8]! >> 5,
        fin,
        unidirectional: (flags & FLAG_UNIDIRECTIONAL) !== 0,
        block: payload.subarray(10),
      };
    case FRAME_SYN_REPLY:
      need(4, 'SYN_REPLY');
      return { type: 'syn_reply', streamId: streamIdAt(0, 'SYN_REPLY'), fin, block: payload.subarray(4) };
    case FRAME_HEADERS:
      need(4, 'HEADERS');
      return { type: 'headers', streamId: streamIdAt(0, 'HEADERS'), fin, block: payload.subarray(4) };
    case FRAME_RST_STREAM:
      need(8, 'RST_STREAM');
      return { type: 'rst_stream', streamId: streamIdAt(0, 'RST_STREAM'), status: payload.readUInt32BE(4) };
    case FRAME_SETTINGS:
      need(4, 'SETTINGS');
      if (payload.length < 4 + 8 * payload.readUInt32BE(0)) throw new SpdyProtocolError('SETTINGS frame shorter than its entry count');
      return { type: 'settings' };
    case FRAME_PING:
      need(4, 'PING');
      return { type: 'ping', id: payload.readUInt32BE(0) };
    case FRAME_GOAWAY:
      need(8, 'GOAWAY');
      return { type: 'goaway', lastGoodStreamId: payload.readUInt32BE(0) & STREAM_ID_MASK, status: payload.readUInt32BE(4) };
    case FRAME_WINDOW_UPDATE:
      need(8, 'WINDOW_UPDATE');
      return { type: 'window_update', streamId: payload.readUInt32BE(0) & STREAM_ID_MASK, delta: payload.readUInt32BE(4) & STREAM_ID_MASK };
    default:
      // The spec says to ignore control frames of unknown types.
      return { type: 'unknown', kind };
  }
}

function controlFrame(kind: number, flags: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(FRAME_HEADER_BYTES);
  head.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  head.writeUInt16BE(kind, 2);
  head.writeUInt32BE((((flags & 0xff) << 24) | payload.length) >>> 0, 4);
  return Buffer.concat([head, payload]);
}

export function dataFrame(streamId: number, data: Buffer, fin: boolean): Buffer {
  const head = Buffer.alloc(FRAME_HEADER_BYTES);
  head.writeUInt32BE(streamId & STREAM_ID_MASK, 0);
  head.writeUInt32BE((((fin ? FLAG_FIN : 0) << 24) | data.length) >>> 0, 4);
  return Buffer.concat([head, data]);
}

/** A SYN_STREAM opening `streamId` with a compressed header block, priority 0 (highest), no association. */
export function synStreamFrame(streamId: number, block: Buffer, fin = false): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt32BE(streamId, 0);
  return controlFrame(FRAME_SYN_STREAM, fin ? FLAG_FIN : 0, Buffer.concat([fixed, block]));
}

export function synReplyFrame(streamId: number, block: Buffer): Buffer {
  const fixed = Buffer.alloc(4);
  fixed.writeUInt32BE(streamId, 0);
  return controlFrame(FRAME_SYN_REPLY, 0, Buffer.concat([fixed, block]));
}

export function rstStreamFrame(streamId: number, status: number): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(streamId, 0);
  payload.writeUInt32BE(status, 4);
  return controlFrame(FRAME_RST_STREAM, 0, payload);
}

export function pingFrame(id: number): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(id, 0);
  return controlFrame(FRAME_PING, 0, payload);
}

export function goawayFrame(lastGoodStreamId: number, status: number): Buffer {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(lastGoodStreamId, 0);
  payload.writeUInt32BE(status, 4);
  return controlFrame(FRAME_GOAWAY, 0, payload);
}

/** Header names (lower-case) to values; several values of one name stay joined by NUL, as on the wire. */
export type SpdyHeaders = Record<string, string>;

/** The uncompressed header block of `headers`; names are lower-cased as SPDY/3 requires. */
export function encodeHeaderBlock(headers: SpdyHeaders): Buffer {
  const entries = Object.entries(headers);
  const parts: Buffer[] = [u32(entries.length)];
  for (const [name, value] of entries) {
    const n = Buffer.from(name.toLowerCase());
    const v = Buffer.from(value);
    parts.push(u32(n.length), n, u32(v.length), v);
  }
  return Buffer.concat(parts);
}

/** Parses an uncompressed header block; names are lower-cased (Go's framer does the same). */
export function decodeHeaderBlock(block: Buffer): SpdyHeaders {
  let offset = 0;
  const read = (what: string): Buffer => {
    if (offset + 4 > block.length) throw new SpdyProtocolError(`header block ends inside a ${what} length`);
    const length = block.readUInt32BE(offset);
    offset += 4;
    if (offset + length > block.length) throw new SpdyProtocolError(`header block ends inside a ${what} (${length} bytes)`);
    const bytes = block.subarray(offset, offset + length);
    offset += length;
    return bytes;
  };
  if (block.length < 4) throw new SpdyProtocolError('header block without a count');
  const count = block.readUInt32BE(0);
  offset = 4;
  const headers: SpdyHeaders = {};
  for (let i = 0; i < count; i++) {
    const name = read('name').toString('latin1').toLowerCase();
    const value = read('value').toString('utf8');
    if (name === '') throw new SpdyProtocolError('empty header name');
    if (Object.hasOwn(headers, name)) throw new SpdyProtocolError(`header ${name} appears twice`);
    headers[name] = value;
  }
  if (offset !== block.length) throw new SpdyProtocolError(`${block.length - offset} bytes after the header block's last pair`);
  return headers;
}

function u32(n: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(n);
  return bytes;
}
