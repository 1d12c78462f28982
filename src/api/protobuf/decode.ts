import { errors } from '../errors.js';
import { unpack, type Field, type Scalar } from './field.js';
import { KINDS, MESSAGES } from './schema.js';
import { WireError, WireReader, WireType, wireTypeName } from './wire.js';

/** Every Kubernetes protobuf body starts with these four bytes, then a runtime.Unknown envelope. */
export const MAGIC = Uint8Array.of(0x6b, 0x38, 0x73, 0x00);
/** Messages nested deeper than this are refused (JSONSchemaProps is recursive). */
export const MAX_NESTING = 100;

/** Kinds every group version registers, decoded from any apiVersion. */
const SHARED_KINDS: Readonly<Record<string, string>> = {
  DeleteOptions: 'meta.v1.DeleteOptions',
  Status: 'meta.v1.Status',
};

const WIRE_TYPE: Record<Scalar, number> = {
  string: WireType.LEN,
  bytes: WireType.LEN,
  bool: WireType.VARINT,
  int32: WireType.VARINT,
  int64: WireType.VARINT,
  uint32: WireType.VARINT,
  uint64: WireType.VARINT,
  double: WireType.I64,
  float: WireType.I32,
};
const ZERO: Record<Scalar, unknown> = { string: '', bytes: '', bool: false, int32: 0, int64: 0, uint32: 0, uint64: 0, double: 0, float: 0 };
const EMPTY = new Uint8Array(0);
const MIN_INT32 = -(2 ** 31);
const INT32_RANGE = 2 ** 32;

type Fields = Record<string, unknown>;

/**
 * Messages whose JSON form is not an object of their fields. Each gets its fields decoded without
 * dropping zeros, with bytes left as bytes, and returns the JSON value (undefined: leave the field out).
 */
const SPECIAL: Readonly<Record<string, (f: Fields, d: Decoder) => unknown>> = {
  'meta.v1.Time': (f, d) => d.time(f, false),
  'meta.v1.MicroTime': (f, d) => d.time(f, true),
  'resource.Quantity': (f) => f['string'] ?? '0',
  'intstr.IntOrString': (f, d) => d.intOrString(f),
  'runtime.RawExtension': (f, d) => d.embedded(f['raw'] as Uint8Array | undefined),
  'meta.v1.FieldsV1': (f, d) => d.json(f['Raw'] as Uint8Array | undefined),
  'apiextensions.v1.JSON': (f, d) => d.json(f['raw'] as Uint8Array | undefined),
  // The three shapes below follow the MarshalJSON methods of their Go types.
  'apiextensions.v1.JSONSchemaPropsOrArray': (f) => f['jSONSchemas'] ?? f['schema'],
  'apiextensions.v1.JSONSchemaPropsOrBool': (f) => f['schema'] ?? f['allows'] === true,
  'apiextensions.v1.JSONSchemaPropsOrStringArray': (f) => f['property'] ?? f['schema'],
  // `type ExtraValue []string`: a list in JSON, a message with one repeated field in protobuf.
  'authentication.v1.ExtraValue': (f) => f['items'] ?? [],
  'authorization.v1.ExtraValue': (f) => f['items'] ?? [],
  'certificates.v1.ExtraValue': (f) => f['items'] ?? [],
};

const tables = new Map<string, Map<number, Field>>();

function table(type: string): Map<number, Field> | undefined {
  let t = tables.get(type);
  if (!t) {
    const defs = MESSAGES[type];
    if (!defs) return undefined;
    t = new Map(defs.map((d) => [d[0], unpack(d)]));
    tables.set(type, t);
  }
  return t;
}

/** The message a `raw` of this apiVersion and kind holds, if it is one we decode. */
export function messageFor(apiVersion: string, kind: string): string | undefined {
  return KINDS[`${apiVersion}/${kind}`] ?? SHARED_KINDS[kind];
}

export function hasMagic(body: Uint8Array): boolean {
  return body.length >= MAGIC.length && MAGIC.every((b, i) => body[i] === b);
}

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === '' || v === 0 || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && v !== null && Object.keys(v).length === 0;
}

/**
 * Turns protobuf bytes into the object kube's JSON encoding of the same Go value would give, following
 * the table in schema.ts. Fields the table does not know are skipped, as any protobuf reader does.
 * One Decoder decodes one body: it keeps the path to the field being read, for error messages.
 */
export class Decoder {
  private readonly path: string[] = [];
  private depth = 0;

  /** A whole body: magic, runtime.Unknown envelope, then the object its typeMeta names. */
  object(body: Uint8Array): Record<string, unknown> {
    try {
      return this.envelope(body);
    } catch (e) {
      if (e instanceof WireError) throw this.fail(e.message);
      throw e;
    }
  }

  /** One message of a type in schema.ts, without an envelope. */
  message(type: string, bytes: Uint8Array): unknown {
    if (++this.depth > MAX_NESTING) throw this.fail(`messages nested deeper than ${MAX_NESTING}`);
    const special = SPECIAL[type];
    const fields = this.fields(type, bytes, special !== undefined);
    this.depth--;
    return special ? special(fields, this) : fields;
  }

  time(f: Fields, micro: boolean): string | undefined {
    const seconds = (f['seconds'] as number | undefined) ?? 0;
    const nanos = (f['nanos'] as number | undefined) ?? 0;
    if (seconds === 0 && nanos === 0) return undefined;
    if (nanos < 0 || nanos > 999_999_999) throw this.fail(`timestamp nanos ${nanos} out of range`);
    const date = new Date(seconds * 1000);
    const year = date.getUTCFullYear();
    if (Number.isNaN(date.getTime()) || year < 0 || year > 9999) throw this.fail(`timestamp seconds ${seconds} outside years 0-9999`);
    const base = date.toISOString().slice(0, 19);
    return micro ? `${base}.${String(Math.floor(nanos / 1000)).padStart(6, '0')}Z` : `${base}Z`;
  }

  intOrString(f: Fields): number | string {
    const type = (f['type'] as number | undefined) ?? 0;
    if (type === 0) return (f['intVal'] as number | undefined) ?? 0;
    if (type === 1) return (f['strVal'] as string | undefined) ?? '';
    throw this.fail(`IntOrString type ${type} is neither 0 (int) nor 1 (string)`);
  }

  /** runtime.RawExtension bytes: JSON, or (rarely) a nested protobuf body. */
  embedded(raw: Uint8Array | undefined): unknown {
    if (raw && hasMagic(raw)) {
      if (++this.depth > MAX_NESTING) throw this.fail(`messages nested deeper than ${MAX_NESTING}`);
      const obj = this.envelope(raw);
      this.depth--;
      return obj;
    }
    return this.json(raw);
  }

  json(raw: Uint8Array | undefined): unknown {
    if (!raw || raw.length === 0) return undefined;
    try {
      return JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString('utf8'));
    } catch (e) {
      throw this.fail(`embedded JSON does not parse: ${(e as Error).message}`);
    }
  }

  private envelope(body: Uint8Array): Record<string, unknown> {
    if (!hasMagic(body)) throw errors.badRequest('protobuf body does not start with the Kubernetes prefix "k8s\\x00"');
    const unknown = this.fields('runtime.Unknown', body.subarray(MAGIC.length), true);
    const typeMeta = (unknown['typeMeta'] ?? {}) as { apiVersion?: string; kind?: string };
    const encoding = unknown['contentEncoding'] as string | undefined;
    const contentType = unknown['contentType'] as string | undefined;
    if (encoding) throw errors.unsupportedMediaType(`protobuf envelope content encoding "${encoding}" is not supported`);
    if (contentType && !isProtobufMediaType(contentType)) {
      throw errors.unsupportedMediaType(`protobuf envelope content type "${contentType}" is not supported`);
    }
    const { apiVersion = '', kind = '' } = typeMeta;
    if (!kind) throw errors.badRequest('protobuf envelope has no kind');
    const type = messageFor(apiVersion, kind);
    if (!type) throw errors.badRequest(`no kind "${kind}" is registered for version "${apiVersion}" in protobuf decoding`);
    this.path.push(kind);
    const obj = this.message(type, (unknown['raw'] as Uint8Array | undefined) ?? EMPTY) as Fields;
    this.path.pop();
    return { apiVersion, kind, ...obj };
  }

  /** A message's fields keyed by JSON name. `raw`: keep zeros and leave bytes as bytes (for SPECIAL). */
  private fields(type: string, bytes: Uint8Array, raw: boolean): Fields {
    const t = table(type);
    if (!t) throw this.fail(`no protobuf schema for message ${type}`);
    const out: Fields = {};
    const r = new WireReader(bytes);
    while (!r.done) {
      const [number, wireType] = r.tag();
      const f = t.get(number);
      if (!f) {
        r.skip(wireType);
        continue;
      }
      if (f.map) {
        this.path.push(`.${f.json}`);
        this.expect(wireType, WireType.LEN);
        const [key, value] = this.mapEntry(f, r.bytes(), raw);
        const map = (out[f.json] ??= {}) as Fields;
        // A plain assignment to "__proto__" would replace the object's prototype instead.
        if (key === '__proto__') Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
        else map[key] = value;
      } else if (f.repeated) {
        const list = (out[f.json] ??= []) as unknown[];
        this.path.push(`.${f.json}[${list.length}]`);
        if (f.scalar && wireType === WireType.LEN && WIRE_TYPE[f.scalar] !== WireType.LEN) {
          const packed = new WireReader(r.bytes());
          while (!packed.done) list.push(this.scalar(f.scalar, WIRE_TYPE[f.scalar], packed, raw));
        } else {
          list.push(this.value(f, wireType, r, raw) ?? null);
        }
      } else {
        this.path.push(`.${f.json}`);
        const value = this.value(f, wireType, r, raw);
        if (f.inline) Object.assign(out, value);
        else if (value !== undefined && (raw || f.keep || !isEmpty(value))) out[f.json] = value;
        else delete out[f.json];
      }
      this.path.pop();
    }
    return out;
  }

  private value(f: Field, wireType: number, r: WireReader, raw: boolean): unknown {
    if (f.scalar) return this.scalar(f.scalar, wireType, r, raw);
    this.expect(wireType, WireType.LEN);
    return this.message(f.message!, r.bytes());
  }

  private mapEntry(f: Field, bytes: Uint8Array, raw: boolean): [string, unknown] {
    const r = new WireReader(bytes);
    let key = '';
    let value: unknown;
    while (!r.done) {
      const [number, wireType] = r.tag();
      if (number === 1) key = this.scalar('string', wireType, r, raw) as string;
      else if (number === 2) value = this.value(f, wireType, r, raw);
      else r.skip(wireType);
    }
    if (value === undefined) value = f.scalar ? ZERO[f.scalar] : this.message(f.message!, EMPTY);
    return [key, value ?? null];
  }

  private scalar(type: Scalar, wireType: number, r: WireReader, raw: boolean): unknown {
    this.expect(wireType, WIRE_TYPE[type]);
    switch (type) {
      case 'string':
        return r.string();
      case 'bytes':
        return raw ? r.bytes() : r.base64();
      case 'bool':
        return r.varint() != 0;
      case 'int32': {
        // Negative int32s arrive sign-extended to 64 bits; keep the low 32, as Go does.
        const v = r.varint();
        if (typeof v === 'bigint') return Number(BigInt.asIntN(32, v));
        const low = v % INT32_RANGE;
        return low >= -MIN_INT32 ? low - INT32_RANGE : low;
      }
      case 'uint32': {
        const v = r.varint();
        return typeof v === 'bigint' ? Number(BigInt.asUintN(32, v)) : v % INT32_RANGE;
      }
      case 'int64': {
        const v = r.varint();
        return typeof v === 'number' ? v : this.safe(BigInt.asIntN(64, v));
      }
      case 'uint64': {
        const v = r.varint();
        return typeof v === 'number' ? v : this.safe(v);
      }
      case 'double':
        return this.finite(r.double());
      case 'float':
        return this.finite(r.float());
    }
  }

  private safe(v: bigint): number {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
      throw this.fail(`integer ${v} is outside the range JSON numbers hold exactly`);
    }
    return Number(v);
  }

  private finite(v: number): number {
    if (!Number.isFinite(v)) throw this.fail(`number ${v} has no JSON form`);
    return v;
  }

  private expect(actual: number, expected: number): void {
    if (actual !== expected) throw this.fail(`${wireTypeName(actual)} value where ${wireTypeName(expected)} was expected`);
  }

  private fail(message: string) {
    const where = this.path.join('');
    return errors.badRequest(`invalid protobuf body${where ? ` at ${where}` : ''}: ${message}`);
  }
}

/** application/vnd.kubernetes.protobuf, parameters ignored. */
export function isProtobufMediaType(contentType: string): boolean {
  return contentType.split(';')[0]!.trim().toLowerCase() === 'application/vnd.kubernetes.protobuf';
}
