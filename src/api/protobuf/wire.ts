/**
 * The protobuf wire format, read side only: tags, varints, fixed-width numbers and length-delimited
 * bytes, each checked against the end of the buffer. Anything malformed throws a WireError naming the
 * byte offset; nothing here allocates more than the input or loops without consuming input.
 */

export const WireType = { VARINT: 0, I64: 1, LEN: 2, START_GROUP: 3, END_GROUP: 4, I32: 5 } as const;

const WIRE_TYPE_NAMES = ['varint', 'fixed64', 'length-delimited', 'start-group', 'end-group', 'fixed32', '6', '7'];
const MAX_VARINT_BYTES = 10;
const MAX_FIELD_NUMBER = 2 ** 29 - 1;

export class WireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WireError';
  }
}

export function wireTypeName(wireType: number): string {
  return WIRE_TYPE_NAMES[wireType] ?? String(wireType);
}

/** Varints up to this many bytes (49 bits) are summed as plain numbers; longer ones go through BigInt. */
const NUMBER_VARINT_BYTES = 7;
const POW7 = Array.from({ length: NUMBER_VARINT_BYTES }, (_, i) => 2 ** (7 * i));

export class WireReader {
  private readonly buf: Buffer;
  private pos = 0;

  constructor(bytes: Uint8Array) {
    this.buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  }

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  /** The next field's number and wire type. */
  tag(): [field: number, wireType: number] {
    const at = this.pos;
    const key = this.varint();
    if (typeof key !== 'number' || key > 0xffffffff) throw new WireError(`invalid field number ${BigInt(key) >> 3n} at byte ${at}`);
    const field = key >>> 3;
    const wireType = key & 7;
    if (field === 0 || field > MAX_FIELD_NUMBER) throw new WireError(`invalid field number ${field} at byte ${at}`);
    if (wireType > WireType.I32) throw new WireError(`invalid wire type ${wireType} at byte ${at}`);
    return [field, wireType];
  }

  /** An unsigned varint of up to 64 bits: a number below 2^49, a bigint above. */
  varint(): number | bigint {
    const at = this.pos;
    let value = 0;
    for (let i = 0; i < NUMBER_VARINT_BYTES; i++) {
      if (this.pos >= this.buf.length) throw new WireError(`truncated varint at byte ${at}`);
      const b = this.buf[this.pos++]!;
      value += (b & 0x7f) * POW7[i]!;
      if (b < 0x80) return value;
    }
    this.pos = at;
    return this.bigVarint();
  }

  /** A length-delimited field's bytes (a view, not a copy). */
  bytes(): Buffer {
    const [start, end] = this.span();
    return this.buf.subarray(start, end);
  }

  /** A length-delimited field as UTF-8 text; invalid sequences become U+FFFD, as Go's JSON encoder does. */
  string(): string {
    const [start, end] = this.span();
    return this.buf.toString('utf8', start, end);
  }

  /** A length-delimited field as base64, the JSON form of Go's []byte. */
  base64(): string {
    const [start, end] = this.span();
    return this.buf.toString('base64', start, end);
  }

  /** Eight little-endian bytes as a double. */
  double(): number {
    this.need(8);
    this.pos += 8;
    return this.buf.readDoubleLE(this.pos - 8);
  }

  /** Four little-endian bytes as a float. */
  float(): number {
    this.need(4);
    this.pos += 4;
    return this.buf.readFloatLE(this.pos - 4);
  }

  /** Steps over a field of an unknown number. Groups (deprecated, never written by Kubernetes) are refused. */
  skip(wireType: number): void {
    switch (wireType) {
      case WireType.VARINT:
        this.varint();
        return;
      case WireType.I64:
        this.need(8);
        this.pos += 8;
        return;
      case WireType.LEN:
        this.span();
        return;
      case WireType.I32:
        this.need(4);
        this.pos += 4;
        return;
      default:
        throw new WireError(`unsupported ${wireTypeName(wireType)} field at byte ${this.pos}`);
    }
  }

  private bigVarint(): bigint {
    const at = this.pos;
    let value = 0n;
    for (let i = 0; i < MAX_VARINT_BYTES; i++) {
      if (this.pos >= this.buf.length) throw new WireError(`truncated varint at byte ${at}`);
      const b = this.buf[this.pos++]!;
      value |= BigInt(b & 0x7f) << BigInt(7 * i);
      if (b < 0x80) return BigInt.asUintN(64, value);
    }
    throw new WireError(`varint longer than ${MAX_VARINT_BYTES} bytes at byte ${at}`);
  }

  private span(): [start: number, end: number] {
    const at = this.pos;
    const length = this.varint();
    const left = this.buf.length - this.pos;
    if (length > left) throw new WireError(`length ${length} at byte ${at} runs past the end of its message (${left} bytes left)`);
    const start = this.pos;
    this.pos += Number(length);
    return [start, this.pos];
  }

  private need(size: number): void {
    if (this.buf.length - this.pos < size) throw new WireError(`truncated ${size * 8}-bit value at byte ${this.pos}`);
  }
}
