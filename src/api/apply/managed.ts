import type { ManagedFieldsEntry } from '../types.js';
import { FieldSet, type FieldPath } from './fieldset.js';
import { isObject } from './shape.js';

/**
 * The decoded form of `metadata.managedFields`: one field set per manager identity. An identity is
 * what kube's BuildManagerIdentifier makes of an entry: manager, operation, subresource and, for
 * Update only, apiVersion. An applier therefore keeps one entry across apiVersions; an updater keeps
 * one per apiVersion.
 */
export interface ManagerEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  subresource?: string;
  time?: string;
  set: FieldSet;
}

export type Managed = Map<string, ManagerEntry>;

/** kube keeps at most this many Update entries; older ones fold into "ancient-changes". */
export const MAX_UPDATE_MANAGERS = 10;
export const ANCIENT_CHANGES_MANAGER = 'ancient-changes';

/** Server-set identity and bookkeeping that nobody owns (kube's stripMetaManager). */
const STRIPPED = new FieldSet([
  [{ field: 'apiVersion' }],
  [{ field: 'kind' }],
  [{ field: 'metadata' }],
  ...['name', 'namespace', 'creationTimestamp', 'selfLink', 'uid', 'clusterName', 'generation', 'managedFields', 'resourceVersion'].map(
    (f): FieldPath => [{ field: 'metadata' }, { field: f }],
  ),
]);

export function stripMeta(set: FieldSet): FieldSet {
  return set.difference(STRIPPED);
}

export function identity(manager: string, operation: 'Apply' | 'Update', apiVersion: string, subresource?: string): string {
  const id: Record<string, string> = { manager: manager || 'unknown', operation };
  if (operation === 'Update' && apiVersion) id.apiVersion = apiVersion;
  if (subresource) id.subresource = subresource;
  return JSON.stringify(id);
}

export function entryId(e: ManagerEntry): string {
  return identity(e.manager, e.operation, e.apiVersion, e.subresource);
}

/** kube's DecodeManagedFields, with its error messages. */
export function decodeManaged(entries: unknown): Managed {
  const managed: Managed = new Map();
  if (entries === undefined || entries === null) return managed;
  if (!Array.isArray(entries)) throw new Error('managedFields must be a list');
  entries.forEach((raw, i) => {
    if (!isObject(raw)) throw new Error(`managed fields entry ${i} is not an object`);
    const e = raw as ManagedFieldsEntry;
    if (e.operation !== 'Apply' && e.operation !== 'Update') throw new Error('operation must be `Apply` or `Update`');
    if (!e.apiVersion) throw new Error('apiVersion must not be empty');
    if (e.fieldsType === undefined || (e.fieldsType as string) === '') throw new Error(`missing fieldsType in managed fields entry ${i}`);
    if (e.fieldsType !== 'FieldsV1') throw new Error(`invalid fieldsType ${JSON.stringify(e.fieldsType)} in managed fields entry ${i}`);
    const entry: ManagerEntry = {
      manager: e.manager || 'unknown',
      operation: e.operation,
      apiVersion: e.apiVersion,
      set: FieldSet.fromFieldsV1(e.fieldsV1 ?? {}),
    };
    if (e.subresource) entry.subresource = e.subresource;
    if (e.time) entry.time = e.time;
    managed.set(entryId(entry), entry);
  });
  return managed;
}

function seconds(time: string | undefined): number {
  if (!time) return 0;
  const ms = Date.parse(time);
  return Number.isNaN(ms) ? 0 : Math.floor(ms / 1000);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** kube's encodeManagedFields: sorted by operation, time, manager, apiVersion, subresource. */
export function encodeManaged(managed: Managed): ManagedFieldsEntry[] | undefined {
  const entries = [...managed.values()].filter((e) => !e.set.isEmpty());
  if (entries.length === 0) return undefined;
  entries.sort(
    (p, q) =>
      cmp(p.operation, q.operation) ||
      seconds(p.time) - seconds(q.time) ||
      cmp(p.manager, q.manager) ||
      cmp(p.apiVersion, q.apiVersion) ||
      cmp(p.subresource ?? '', q.subresource ?? ''),
  );
  return entries.map((e) => {
    const out: ManagedFieldsEntry = { manager: e.manager, operation: e.operation, apiVersion: e.apiVersion };
    if (e.time) out.time = e.time;
    out.fieldsType = 'FieldsV1';
    out.fieldsV1 = e.set.toFieldsV1();
    if (e.subresource) out.subresource = e.subresource;
    return out;
  });
}

/** metav1.Time precision: whole seconds, UTC. */
export function formatTime(now: Date): string {
  return now.toISOString().replace(/\.\d+Z$/, 'Z');
}

export function dropEmpty(managed: Managed): void {
  for (const [id, e] of managed) if (e.set.isEmpty()) managed.delete(id);
}

/**
 * kube's capManagersManager: when there are more Update entries than the cap, the oldest fold into an
 * "ancient-changes" entry per apiVersion, keeping the first of each version as the bucket's seed.
 */
export function capUpdateManagers(managed: Managed, max = MAX_UPDATE_MANAGERS): void {
  const updaters = [...managed.entries()].filter(([, e]) => e.operation === 'Update').map(([id]) => id);
  if (updaters.length <= max) return;
  updaters.sort((a, b) => seconds(managed.get(a)!.time) - seconds(managed.get(b)!.time) || cmp(a, b));
  const firstOfVersion = new Map<string, string>();
  let length = updaters.length;
  for (const id of updaters) {
    if (length <= max) break;
    const entry = managed.get(id)!;
    const bucketId = identity(ANCIENT_CHANGES_MANAGER, 'Update', entry.apiVersion);
    const first = firstOfVersion.get(entry.apiVersion);
    if (first === undefined) {
      firstOfVersion.set(entry.apiVersion, id);
      continue;
    }
    if (!managed.has(bucketId)) {
      const seed = managed.get(first)!;
      managed.delete(first);
      managed.set(bucketId, { ...seed, manager: ANCIENT_CHANGES_MANAGER, subresource: undefined });
    }
    const bucket = managed.get(bucketId)!;
    managed.set(bucketId, { ...bucket, set: bucket.set.union(entry.set), time: entry.time });
    managed.delete(id);
    length--;
  }
}

/** How kube's conflict messages name a manager: `"kubectl-client-side-apply" using apps/v1`. */
export function printManager(e: ManagerEntry): string {
  let s = JSON.stringify(e.manager);
  if (e.subresource) s += ` with subresource ${JSON.stringify(e.subresource)}`;
  return e.operation === 'Update' ? `${s} using ${e.apiVersion}` : s;
}
