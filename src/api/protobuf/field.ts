/**
 * How schema.ts describes a protobuf field: `[number, JSON name, type, flags?]`.
 *
 * Types are a scalar, `message:<Name>`, or `map<string,<scalar | message:Name>>`. Flags:
 * - `r`: repeated.
 * - `k`: keep the value even when it is zero or empty. Set where the Go field is a pointer, so that
 *   go-to-protobuf writes it only when it was set (`replicas: 0`, `emptyDir: {}`), plus a few
 *   non-pointer fields whose zero the API server must see. Every other singular field is written by Go
 *   even when zero, and its zero is dropped, as `omitempty` would drop it from JSON.
 * - `i`: inline. Go embeds the struct without a JSON name, so its fields join the parent object.
 */
export type Scalar = 'string' | 'bytes' | 'bool' | 'int32' | 'int64' | 'uint32' | 'uint64' | 'double' | 'float';
export type FieldType = Scalar | `message:${string}` | `map<string,${Scalar}>` | `map<string,message:${string}>`;
export type FieldDef = readonly [number: number, json: string, type: FieldType, flags?: string];

/** A FieldDef unpacked for the decoder. */
export interface Field {
  number: number;
  json: string;
  /** The scalar type, for scalars, repeated scalars and scalar map values. */
  scalar?: Scalar;
  /** The message name, for messages, repeated messages and message map values. */
  message?: string;
  map: boolean;
  repeated: boolean;
  keep: boolean;
  inline: boolean;
}

const MAP_TYPE = /^map<string,(.+)>$/;
const MESSAGE_PREFIX = 'message:';

export function unpack([number, json, type, flags = '']: FieldDef): Field {
  const mapMatch = MAP_TYPE.exec(type);
  const element = mapMatch ? mapMatch[1]! : type;
  const field: Field = {
    number,
    json,
    map: mapMatch !== null,
    repeated: flags.includes('r'),
    keep: flags.includes('k'),
    inline: flags.includes('i'),
  };
  if (element.startsWith(MESSAGE_PREFIX)) field.message = element.slice(MESSAGE_PREFIX.length);
  else field.scalar = element as Scalar;
  return field;
}
