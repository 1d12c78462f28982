/**
 * Server-side apply and managedFields tracking, after Kubernetes' structured-merge-diff.
 *
 * Every write records who set which fields. Ordinary writes (create, update, patch) go through
 * `trackUpdate`: the fields the write changed become owned by its manager under an `Update` entry and
 * leave every other manager's set. Apply requests (`application/apply-patch+yaml`) go through
 * `serverSideApply`: the applied configuration is merged into the live object, its fields become
 * exactly the applier's `Apply` entry, fields the applier applied before but dropped now are removed
 * unless someone else owns them, and changing a value another manager owns is a 409 conflict unless
 * the request forces it.
 */
import { isDeepStrictEqual } from 'node:util';
import { ApiError, errors } from '../errors.js';
import type { Schema, SchemaResolver } from '../openapi/schema.js';
import { parseApiVersion, type KubeObject } from '../types.js';
import { FieldPathError, FieldSet, fieldSetOf, goJson, pathString, type FieldPath } from './fieldset.js';
import {
  capUpdateManagers,
  decodeManaged,
  dropEmpty,
  encodeManaged,
  entryId,
  formatTime,
  identity,
  printManager,
  stripMeta,
  type Managed,
  type ManagerEntry,
} from './managed.js';
import { isObject, resolveFully } from './shape.js';
import { compareValues, mergeValues, removeFields } from './typed.js';

export { FieldSet, fieldSetOf, pathString, FieldPathError } from './fieldset.js';
export type { FieldPath, PathElement } from './fieldset.js';
export { MAX_UPDATE_MANAGERS } from './managed.js';

export interface TrackOptions {
  manager: string;
  /** The version the request used, e.g. "apps/v1". */
  apiVersion: string;
  subresource?: string;
  now: Date;
  schema: Schema;
  resolve: SchemaResolver;
}

export interface ApplyOptions extends TrackOptions {
  force: boolean;
  /** The kind served at the URL; defaults to the schema's x-kubernetes-group-version-kind, then the live kind. */
  kind?: string;
  /** The name in the URL; defaults to the live object's name. */
  name?: string;
}

export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';
/** The Update manager that inherits every field of an object first applied to without managedFields. */
export const BEFORE_FIRST_APPLY_MANAGER = 'before-first-apply';
/** kubectl's own server-side apply manager; only it migrates client-side apply state. */
const KUBECTL_MANAGER = 'kubectl';
const FIELD_MANAGER_MAX_LENGTH = 128;
const TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024;

/**
 * The manager name kube uses when a request names none: the User-Agent up to its first "/", without
 * unprintable characters, cut to 128 bytes.
 */
export function defaultManager(userAgent?: string): string {
  const prefix = (userAgent ?? '').split('/')[0];
  let out = '';
  let bytes = 0;
  for (const ch of prefix) {
    if (/[\p{C}\p{Zl}\p{Zp}]/u.test(ch) || (/\p{Zs}/u.test(ch) && ch !== ' ')) continue;
    const len = Buffer.byteLength(ch);
    if (bytes + len > FIELD_MANAGER_MAX_LENGTH) break;
    out += ch;
    bytes += len;
  }
  return out;
}

function withoutManagedFields(obj: KubeObject): KubeObject {
  const copy = structuredClone(obj);
  if (isObject(copy.metadata)) delete copy.metadata.managedFields;
  return copy;
}

function emptyLike(obj: KubeObject): KubeObject {
  const out: KubeObject = { metadata: {} };
  if (obj.apiVersion !== undefined) out.apiVersion = obj.apiVersion;
  if (obj.kind !== undefined) out.kind = obj.kind;
  return out;
}

function decodeOrEmpty(entries: unknown): Managed {
  try {
    return decodeManaged(entries);
  } catch {
    return new Map();
  }
}

/** kube's isResetManagedFields: `[]` or `[{}]` asks for managedFields to be cleared. */
function isReset(entries: unknown): boolean {
  if (!Array.isArray(entries)) return false;
  return entries.length === 0 || (entries.length === 1 && isObject(entries[0]) && Object.keys(entries[0]).length === 0);
}

function setManagedFields(obj: KubeObject, managed: Managed): void {
  const encoded = encodeManaged(managed);
  if (encoded) obj.metadata.managedFields = encoded;
  else delete obj.metadata.managedFields;
}

/**
 * Records an ordinary write (operation Update) in `updated.metadata.managedFields`. `live` is the
 * stored object, undefined on create. managedFields sent with the write replace the stored ones when
 * they decode (kube lets clients edit them); `[]` or `[{}]` clears them; subresource writes always
 * keep the stored ones. An existing object nobody tracks yet stays untracked until its first apply.
 */
export function trackUpdate(live: KubeObject | undefined, updated: KubeObject, opts: TrackOptions): void {
  const provided = updated.metadata.managedFields;
  let managed: Managed;
  if (opts.subresource) managed = decodeOrEmpty(live?.metadata.managedFields);
  else if (isReset(provided)) managed = new Map();
  else {
    managed = decodeOrEmpty(provided);
    if (managed.size === 0) managed = decodeOrEmpty(live?.metadata.managedFields);
  }
  if (live && managed.size === 0 && live.metadata.uid) {
    delete updated.metadata.managedFields;
    return;
  }
  const before = live ? withoutManagedFields(live) : emptyLike(updated);
  recordUpdate(managed, before, withoutManagedFields(updated), opts.manager, opts);
  capUpdateManagers(managed);
  setManagedFields(updated, managed);
}

/** kube's managedFieldsUpdater.Update: what changed joins the manager's entry and leaves the others. */
function recordUpdate(managed: Managed, before: KubeObject, after: KubeObject, manager: string, opts: TrackOptions): void {
  const c = compareValues(before, after, opts.schema, opts.resolve);
  const changed = c.added.union(c.modified);
  for (const e of managed.values()) e.set = e.set.difference(changed).difference(c.removed);
  const current = stripMeta(changed.difference(c.removed));
  if (!current.isEmpty()) {
    const id = identity(manager, 'Update', opts.apiVersion, opts.subresource);
    const previous = managed.get(id);
    const entry: ManagerEntry = {
      manager: manager || 'unknown',
      operation: 'Update',
      apiVersion: opts.apiVersion,
      time: formatTime(opts.now),
      set: previous ? current.union(previous.set) : current,
    };
    if (opts.subresource) entry.subresource = opts.subresource;
    managed.set(id, entry);
  }
  dropEmpty(managed);
}

function expectedKind(opts: ApplyOptions, live: KubeObject | undefined): string | undefined {
  if (opts.kind) return opts.kind;
  const gvks = resolveFully(opts.schema, opts.resolve)?.['x-kubernetes-group-version-kind'];
  const { group, version } = parseApiVersion(opts.apiVersion);
  const match = gvks?.find((g) => g.group === group && g.version === version);
  return match?.kind ?? live?.kind;
}

function gvkString(apiVersion: string, kind: string): string {
  const { group, version } = parseApiVersion(apiVersion);
  return `${group}/${version}, Kind=${kind}`;
}

interface Conflict {
  entry: ManagerEntry;
  path: FieldPath;
}

/** Conflicts found by one apply attempt, before kubectl's last-applied allowance is considered. */
class Conflicts extends Error {
  constructor(readonly conflicts: Conflict[]) {
    super('apply conflicts');
  }
}

/** kube's NewConflictError: one line for one conflict, a list grouped by manager for several. */
function conflictError(conflicts: Conflict[]): ApiError {
  conflicts.sort((a, b) => (entryId(a.entry) < entryId(b.entry) ? -1 : entryId(a.entry) > entryId(b.entry) ? 1 : 0));
  const causes = conflicts.map((c) => ({
    reason: 'FieldManagerConflict',
    message: `conflict with ${printManager(c.entry)}`,
    field: pathString(c.path),
  }));
  let message: string;
  if (conflicts.length === 1) {
    message = `Apply failed with 1 conflict: conflict with ${printManager(conflicts[0].entry)}: ${pathString(conflicts[0].path)}`;
  } else {
    const lines: string[] = [];
    let last: string | undefined;
    for (const c of conflicts) {
      const id = entryId(c.entry);
      if (id !== last) lines.push(`conflicts with ${printManager(c.entry)}:`);
      last = id;
      lines.push(`- ${pathString(c.path)}`);
    }
    message = `Apply failed with ${conflicts.length} conflicts: ${lines.join('\n')}`;
  }
  return new ApiError(409, 'Conflict', message, { causes });
}

/**
 * kube's lastAppliedManager: when kubectl moves an object from client-side to server-side apply, the
 * fields whose live value still equals the last-applied annotation are not conflicts.
 */
function allowedFromLastApplied(live: KubeObject, opts: ApplyOptions): FieldSet | undefined {
  const text = live.metadata.annotations?.[LAST_APPLIED_ANNOTATION];
  if (!text) return undefined;
  try {
    const last = JSON.parse(text) as unknown;
    if (!isObject(last) || last.apiVersion !== opts.apiVersion) return undefined;
    const set = fieldSetOf(last, opts.schema, opts.resolve);
    const c = compareValues(last, withoutManagedFields(live), opts.schema, opts.resolve);
    return set.difference(c.modified).difference(c.added).difference(c.removed);
  } catch {
    return undefined;
  }
}

/** kube's lastAppliedUpdater: kubectl's server-side apply keeps an existing annotation current. */
function syncLastApplied(obj: KubeObject, applied: KubeObject): void {
  const annotations = obj.metadata.annotations;
  if (!annotations?.[LAST_APPLIED_ANNOTATION]) return;
  const config = structuredClone(applied);
  if (config.metadata.annotations) {
    delete config.metadata.annotations[LAST_APPLIED_ANNOTATION];
    if (Object.keys(config.metadata.annotations).length === 0) delete config.metadata.annotations;
  }
  const next: Record<string, string> = { ...annotations, [LAST_APPLIED_ANNOTATION]: `${goJson(config)}\n` };
  const size = Object.entries(next).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
  if (size > TOTAL_ANNOTATION_SIZE_LIMIT) delete next[LAST_APPLIED_ANNOTATION];
  obj.metadata.annotations = next;
}

/**
 * Applies `applied` (an apply-patch body) to `live` (undefined to create) for `opts.manager` and
 * returns the object to store, with managedFields updated. Neither input is modified. Throws
 * ApiError 400 for a wrong apiVersion/kind, managedFields in the body or a name that is not the
 * URL's, 409 Conflict for fields another manager owns (unless `force`), 500 for a body whose lists
 * do not fit the schema.
 */
export function serverSideApply(live: KubeObject | undefined, applied: KubeObject, opts: ApplyOptions): KubeObject {
  const config = structuredClone(applied);
  if (!isObject(config.metadata)) config.metadata = {};
  const kind = expectedKind(opts, live);
  const appliedApiVersion = typeof config.apiVersion === 'string' ? config.apiVersion : '';
  const appliedKind = typeof config.kind === 'string' ? config.kind : '';
  if (appliedApiVersion !== opts.apiVersion || !appliedKind || (kind !== undefined && appliedKind !== kind)) {
    throw errors.badRequest(`invalid object type: ${gvkString(appliedApiVersion, appliedKind)}`);
  }
  if (config.metadata.managedFields !== undefined && config.metadata.managedFields !== null) {
    throw errors.badRequest('metadata.managedFields must be nil');
  }
  delete config.metadata.managedFields;

  let managed: Managed;
  try {
    managed = decodeManaged(live?.metadata.managedFields);
  } catch (err) {
    throw new ApiError(500, 'InternalError', `failed to decode managed fields: ${(err as Error).message}`);
  }
  const base = live ? withoutManagedFields(live) : emptyLike(config);
  if (live && managed.size === 0) {
    // skipNonAppliedManager: whatever the object held before tracking began belongs to someone.
    recordUpdate(managed, emptyLike(config), base, BEFORE_FIRST_APPLY_MANAGER, opts);
  }

  let appliedSet: FieldSet;
  let merged: KubeObject;
  try {
    appliedSet = fieldSetOf(config, opts.schema, opts.resolve, { rejectDuplicates: true });
    merged = mergeValues(base, config, opts.schema, opts.resolve) as KubeObject;
  } catch (err) {
    if (!(err instanceof FieldPathError)) throw err;
    const ns = config.metadata.namespace ?? '';
    const name = config.metadata.name ?? '';
    throw new ApiError(500, 'InternalError', `failed to create typed patch object (${ns}/${name}; ${gvkString(opts.apiVersion, appliedKind)}): ${err.message}`);
  }

  const result = applyOwnership(managed, base, merged, appliedSet, opts, live);

  const expectedName = opts.name ?? live?.metadata.name;
  if (expectedName !== undefined && result.metadata.name !== expectedName) {
    throw errors.badRequest(`the name of the object (${result.metadata.name ?? ''}) does not match the name on the URL (${expectedName})`);
  }
  if (opts.manager === KUBECTL_MANAGER) syncLastApplied(result, config);
  return result;
}

function applyOwnership(
  original: Managed,
  base: KubeObject,
  mergedIn: KubeObject,
  appliedSet: FieldSet,
  opts: ApplyOptions,
  live: KubeObject | undefined,
): KubeObject {
  const attempt = (force: boolean): { object: KubeObject; managed: Managed } => {
    const managed: Managed = new Map([...original].map(([id, e]) => [id, { ...e }]));
    const selfId = identity(opts.manager, 'Apply', opts.apiVersion, opts.subresource);
    const previous = managed.get(selfId);
    const self: ManagerEntry = { manager: opts.manager || 'unknown', operation: 'Apply', apiVersion: opts.apiVersion, set: appliedSet };
    if (opts.subresource) self.subresource = opts.subresource;
    managed.set(selfId, self);

    let merged = mergedIn;
    if (previous && !previous.set.isEmpty()) {
      // Fields this applier dropped since last time go, unless some manager (itself included) still owns them.
      let owned = new FieldSet();
      for (const e of managed.values()) owned = owned.union(e.set);
      merged = removeFields(merged, previous.set.difference(owned), opts.schema, opts.resolve) as KubeObject;
    }

    const c = compareValues(base, merged, opts.schema, opts.resolve);
    const changed = c.added.union(c.modified);
    const conflicts: Conflict[] = [];
    for (const [id, e] of managed) {
      if (id === selfId) continue;
      const clash = e.set.intersection(changed);
      for (const path of clash.paths()) conflicts.push({ entry: e, path });
    }
    if (conflicts.length > 0 && !force) throw new Conflicts(conflicts);
    for (const [id, e] of managed) {
      if (id === selfId) continue;
      e.set = e.set.difference(changed).difference(c.removed);
    }
    self.set = stripMeta(self.set);
    dropEmpty(managed);

    const unchanged = isDeepStrictEqual(base, merged);
    if (previous && unchanged && previous.set.equals(self.set)) self.time = previous.time;
    else self.time = formatTime(opts.now);
    capUpdateManagers(managed);
    const object = structuredClone(unchanged ? base : merged);
    return { object, managed };
  };

  let outcome: { object: KubeObject; managed: Managed };
  try {
    outcome = attempt(opts.force);
  } catch (err) {
    if (!(err instanceof Conflicts)) throw err;
    const conflicts = err.conflicts;
    const allowed = opts.manager === KUBECTL_MANAGER && live ? allowedFromLastApplied(live, opts) : undefined;
    const remaining = allowed ? conflicts.filter((c) => !allowed.has(c.path)) : conflicts;
    if (remaining.length > 0) throw conflictError(remaining);
    outcome = attempt(true);
  }
  setManagedFields(outcome.object, outcome.managed);
  return outcome.object;
}
