import type { KubeObject, StatusCause } from '../types.js';
import type { NameFn } from './names.js';

/**
 * One kind's defaulting and validation, registered under `${group}/${kind}` ("/Pod" for core).
 *
 * The API server calls `defaults` on every write (kube's SetDefaults_*), then `validate` on the
 * defaulted object; on create also `validateCreate`, on update also `validateUpdate` with the stored
 * object. ObjectMeta checks are generic and run around these; a kind only states how its names
 * are formed.
 */
export interface KindRules {
  group: string;
  kind: string;
  /** How metadata.name (and generateName) must look; DNS-1123 subdomain when absent. */
  nameFn?: NameFn;
  defaults?(obj: KubeObject): void;
  validate?(obj: KubeObject): StatusCause[];
  validateCreate?(obj: KubeObject): StatusCause[];
  validateUpdate?(obj: KubeObject, old: KubeObject): StatusCause[];
}

export type Registry = ReadonlyMap<string, KindRules>;

export function ruleKey(group: string, kind: string): string {
  return `${group}/${kind}`;
}

export function buildRegistry(rules: readonly KindRules[]): Registry {
  const map = new Map<string, KindRules>();
  for (const r of rules) {
    const key = ruleKey(r.group, r.kind);
    if (map.has(key)) throw new Error(`validation rules for ${key} registered twice`);
    map.set(key, r);
  }
  return map;
}
