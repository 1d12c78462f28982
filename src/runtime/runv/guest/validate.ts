import type { AgentErrorCode } from '../agent-protocol.js';

/** An answer the agent sends as `{ok: false, error: {code, message}}`. */
export class AgentError extends Error {
  constructor(readonly code: AgentErrorCode, message: string) {
    super(message);
  }
}

/**
 * Checks on request arguments. Each throws AgentError('BadRequest') naming the field, since the
 * message is all a host-side caller sees of what it sent wrong.
 */
function bad(field: string, what: string, value: unknown): never {
  throw new AgentError('BadRequest', `'${field}' must be ${what}, got ${JSON.stringify(value) ?? 'undefined'}`);
}

export function string(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '') bad(field, 'a non-empty string', value);
  return value;
}

export function optionalString(value: unknown, field: string): string | undefined {
  return value === undefined ? undefined : string(value, field);
}

export function absolutePath(value: unknown, field: string): string {
  const path = string(value, field);
  if (!path.startsWith('/') || path.split('/').includes('..') || path.includes('\0')) bad(field, 'an absolute path without ".."', value);
  return path;
}

export function integer(value: unknown, field: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) bad(field, `an integer in [${min}, ${max}]`, value);
  return value as number;
}

export function optionalInteger(value: unknown, field: string, min?: number, max?: number): number | undefined {
  return value === undefined ? undefined : integer(value, field, min, max);
}

export function optionalBoolean(value: unknown, field: string): boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') bad(field, 'a boolean', value);
  return value as boolean | undefined;
}

export function stringArray(value: unknown, field: string, nonEmpty = false): string[] {
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string') || (nonEmpty && value.length === 0)) {
    bad(field, `${nonEmpty ? 'a non-empty' : 'an'} array of strings`, value);
  }
  return value as string[];
}

export function optionalStringArray(value: unknown, field: string): string[] | undefined {
  return value === undefined ? undefined : stringArray(value, field);
}

export function object(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad(field, 'an object', value);
  return value as Record<string, unknown>;
}

/** `NAME=value` entries, as an environment's are written. */
export function envEntries(value: unknown, field: string): string[] {
  const entries = value === undefined ? [] : stringArray(value, field);
  for (const entry of entries) if (entry.indexOf('=') <= 0) bad(`${field}[]`, 'NAME=value', entry);
  return entries;
}

/** Base64 text, decoded; `limit` bounds the decoded size. */
export function base64(value: unknown, field: string, limit: number): Buffer {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) bad(field, 'base64 text', typeof value === 'string' ? `${value.slice(0, 32)}…` : value);
  const bytes = Buffer.from(value, 'base64');
  if (bytes.length > limit) bad(field, `at most ${limit} bytes once decoded`, `${bytes.length} bytes`);
  return bytes;
}

/** A signal by name (`SIGTERM`) or number, as kill(2) takes it. */
export function signalValue(value: unknown, field: string): string | number {
  if (typeof value === 'string' && /^SIG[A-Z0-9+-]+$/.test(value)) return value;
  if (Number.isSafeInteger(value) && (value as number) > 0 && (value as number) < 65) return value as number;
  return bad(field, "a signal name like 'SIGTERM' or a number from 1 to 64", value);
}
