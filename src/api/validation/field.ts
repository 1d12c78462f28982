import type { StatusCause } from '../types.js';

/**
 * Field paths and causes in the exact shape Kubernetes' `field.Error` produces: a cause's message is
 * kube's `ErrorBody()` (type string, the bad value, then the detail), its field is `Path.String()`.
 */

export class FieldPath {
  private constructor(private readonly text: string) {}

  static root(name: string): FieldPath {
    return new FieldPath(name);
  }

  child(...names: string[]): FieldPath {
    let text = this.text;
    for (const name of names) text = text === '' ? name : `${text}.${name}`;
    return new FieldPath(text);
  }

  index(i: number): FieldPath {
    return new FieldPath(`${this.text}[${i}]`);
  }

  key(k: string): FieldPath {
    return new FieldPath(`${this.text}[${k}]`);
  }

  toString(): string {
    return this.text;
  }
}

export const path = (...names: string[]): FieldPath => FieldPath.root('').child(...names);

/**
 * A value already rendered the way Go's `%#v` or a `String()` method would print it, for the few
 * causes whose bad value is a struct or map rather than a scalar.
 */
export interface RenderedValue {
  rendered: string;
}

export type BadValue = string | number | boolean | null | undefined | RenderedValue;

/** Go's `%q` for the printable strings Kubernetes objects carry; JSON escaping agrees with it there. */
export function quote(s: string): string {
  return JSON.stringify(s);
}

function render(value: BadValue): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return value.rendered;
}

function cause(reason: string, field: FieldPath, message: string): StatusCause {
  return { reason, message, field: field.toString() };
}

function withDetail(head: string, detail: string): string {
  return detail ? `${head}: ${detail}` : head;
}

export const err = {
  required(field: FieldPath, detail = ''): StatusCause {
    return cause('FieldValueRequired', field, withDetail('Required value', detail));
  },
  invalid(field: FieldPath, value: BadValue, detail: string): StatusCause {
    return cause('FieldValueInvalid', field, withDetail(`Invalid value: ${render(value)}`, detail));
  },
  notSupported(field: FieldPath, value: BadValue, supported: readonly string[]): StatusCause {
    const detail = supported.length ? `supported values: ${supported.map(quote).join(', ')}` : '';
    return cause('FieldValueNotSupported', field, withDetail(`Unsupported value: ${render(value)}`, detail));
  },
  duplicate(field: FieldPath, value: BadValue, detail = ''): StatusCause {
    return cause('FieldValueDuplicate', field, withDetail(`Duplicate value: ${render(value)}`, detail));
  },
  notFound(field: FieldPath, value: BadValue): StatusCause {
    return cause('FieldValueNotFound', field, `Not found: ${render(value)}`);
  },
  forbidden(field: FieldPath, detail: string): StatusCause {
    return cause('FieldValueForbidden', field, withDetail('Forbidden', detail));
  },
  tooLong(field: FieldPath, maxBytes: number): StatusCause {
    return cause('FieldValueTooLong', field, `Too long: must have at most ${maxBytes} bytes`);
  },
};

export const FIELD_IMMUTABLE = 'field is immutable';
export const IS_NEGATIVE = 'must be greater than or equal to 0';

/** Go's `%#v` of a `map[string]string`: keys sorted, `{"k":"v", "k2":"v2"}`. */
export function goStringMap(m: Record<string, string> | undefined): RenderedValue {
  if (!m) return { rendered: 'map[string]string(nil)' };
  const body = Object.keys(m)
    .sort()
    .map((k) => `${quote(k)}:${quote(m[k]!)}`)
    .join(', ');
  return { rendered: `map[string]string{${body}}` };
}

export function immutable(field: FieldPath, next: BadValue, prev: BadValue): StatusCause[] {
  return deepEqual(next, prev) ? [] : [err.invalid(field, next, FIELD_IMMUTABLE)];
}

/** Structural equality of JSON values; `undefined` and an absent key are equal. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => deepEqual(x, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ao), ...Object.keys(bo)]);
  for (const k of keys) if (!deepEqual(ao[k], bo[k])) return false;
  return true;
}
