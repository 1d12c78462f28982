import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { MAX_POOL_SIZE } from '../runtime/runv/pool-size.js';

/** A CLI mistake: the message names the flag and how to fix it. Printed without a stack trace. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * Every flag has a config-file form: `--config FILE` names a YAML file whose keys are the flag names
 * (`data-dir: /var/lib/atoll`). Flags given on the command line win over the file.
 */
export function withConfigFile<T extends Record<string, unknown>>(flags: T, known: string[], given: (name: string) => boolean): T {
  const path = flags.config as string | undefined;
  if (!path) return flags;
  let doc: unknown;
  try {
    doc = parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new UsageError(`--config ${path}: cannot read the file: ${(err as Error).message.split('\n')[0]}; pass a readable YAML file`);
  }
  if (doc === null || doc === undefined) return flags;
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new UsageError(`--config ${path}: the file must be a YAML mapping of flag names to values`);
  const out: Record<string, unknown> = { ...flags };
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    if (!known.includes(key)) {
      throw new UsageError(`--config ${path}: unknown key "${key}"; valid keys are the flag names: ${known.join(', ')}`);
    }
    const prop = key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!given(prop)) out[prop] = typeof value === 'number' ? String(value) : value;
  }
  return out as T;
}

export function parsePort(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new UsageError(`${flag} ${value}: not a port; give a number from 0 (any free port) to 65535`);
  return n;
}

/** `--runv-pool N`: how many idle VMs runv keeps restored (runtime/runv/pool.ts), 0 for none. */
export function parseRunvPool(value: string, flag = '--runv-pool'): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > MAX_POOL_SIZE) throw new UsageError(`${flag} ${value}: give a whole number of idle VMs from 0 (none) to ${MAX_POOL_SIZE}`);
  return n;
}

export function parseSeconds(value: string, flag: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag} ${value}: not a number of seconds; give a whole number such as 50`);
  return Number(value);
}

/** A comma-separated list whose items must come from `allowed`. */
export function parseList(value: string, flag: string, allowed: readonly string[]): string[] {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = items.filter((i) => !allowed.includes(i));
  if (unknown.length) throw new UsageError(`${flag}: unknown ${unknown.map((u) => `"${u}"`).join(', ')}; choose from ${allowed.join(', ')}`);
  return items;
}
