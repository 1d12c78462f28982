import { randomUUID } from 'node:crypto';
import { errors, ApiError, successStatus } from '../api/errors.js';
import { keyPrefix, objectKey, groupVersion, type ResourceDef } from '../api/resources.js';
import type { KubeList, KubeObject, ObjectMeta, Status, UserInfo } from '../api/types.js';
import { applyDefaults, validateCreate, validateUpdate } from '../api/validation/index.js';
import { deepEqual } from '../api/validation/field.js';
import { trackUpdate, serverSideApply } from '../api/apply/index.js';
import { applyPatch, type PatchType } from '../api/patch/index.js';
import { fieldValidationError, validateFields, type FieldIssue, type FieldValidation } from '../api/openapi/validate.js';
import type { Schema, SchemaResolver } from '../api/openapi/schema.js';
import { StoreError, type Store, type StoredObject } from '../store/store.js';
import type { AdmissionChain, AdmissionRequest } from './admission.js';
import { strategyFor } from './strategy.js';

/** How often a patch or apply is retried when another writer moves the object underneath it. */
const PATCH_CONFLICT_RETRIES = 5;

export interface TypeSchema {
  schema: Schema;
  resolve: SchemaResolver;
}

/** Supplies the OpenAPI schema of a resource (built-in or CRD); undefined when none is known. */
export type SchemaSource = (def: ResourceDef) => TypeSchema | undefined;

export interface WriteOptions {
  user: UserInfo;
  fieldManager: string;
  dryRun: boolean;
  fieldValidation: FieldValidation;
  /** Warnings to return in `Warning` headers. */
  warnings: string[];
  /** `duplicate field "..."` messages found while decoding the body. */
  duplicateFields?: string[];
  subresource?: string;
}

export interface DeleteOptions {
  gracePeriodSeconds?: number;
  propagationPolicy?: 'Orphan' | 'Background' | 'Foreground';
  orphanDependents?: boolean;
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface ListQuery {
  /** Applied to each object; selectors are compiled by the caller. */
  filter?: (obj: KubeObject) => boolean;
  limit?: number;
  continueToken?: string;
  resourceVersion?: string;
  resourceVersionMatch?: string;
}

export interface DeleteResult {
  /** The object (pending deletion, or deleted and returned as kube does for pods) or a Status. */
  body: KubeObject | Status;
  /** False when deletion waits for finalizers or a grace period. */
  deleted: boolean;
}

interface ContinueToken {
  v: 'meta.k8s.io/v1';
  rv: number;
  start: string;
}

const SERVER_METADATA = ['uid', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'selfLink'] as const;

/**
 * The generic REST semantics of kube-apiserver on top of a Store: naming, defaulting, validation,
 * admission, optimistic concurrency, generation, managedFields, graceful deletion and finalizers.
 * HTTP handlers and in-process controllers both write through here.
 */
export class Storage {
  constructor(
    private readonly store: Store,
    private readonly schemas: SchemaSource,
    private readonly admission: AdmissionChain,
  ) {}

  async get(def: ResourceDef, namespace: string, name: string): Promise<KubeObject> {
    const found = await this.store.get(objectKey(def, namespace, name));
    if (!found) throw errors.notFound({ group: def.group, resource: def.plural, name });
    return found.object;
  }

  async list(def: ResourceDef, namespace: string, query: ListQuery = {}): Promise<KubeList> {
    const prefix = keyPrefix(def, def.namespaced ? namespace || undefined : undefined);
    let revision: number | undefined;
    let startAfter: string | undefined;
    if (query.continueToken) {
      const token = decodeContinue(query.continueToken);
      if (!token.start.startsWith(prefix)) throw errors.badRequest('continue key is not valid: does not match the request');
      revision = token.rv;
      startAfter = token.start;
    } else if (query.resourceVersionMatch === 'Exact' && query.resourceVersion) {
      revision = parseRevision(query.resourceVersion);
    }
    const limit = query.limit && query.limit > 0 ? query.limit : undefined;
    const items: KubeObject[] = [];
    let more = false;
    let lastKey: string | undefined;
    let listRevision = 0;
    try {
      for (;;) {
        const page = await this.store.list(prefix, { revision, startAfter, limit: limit ? limit - items.length : undefined });
        listRevision = page.revision;
        revision ??= page.revision;
        for (const item of page.items) {
          lastKey = item.key;
          if (!query.filter || query.filter(item.object)) items.push(item.object);
        }
        more = page.more;
        if (!more || !limit || items.length >= limit || page.items.length === 0) break;
        startAfter = lastKey;
      }
    } catch (err) {
      if (err instanceof StoreError && err.code === 'compacted') {
        if (query.continueToken) {
          throw new ApiError(410, 'Expired', 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.');
        }
        throw errors.expired(`too old resource version: ${revision} (${err.revision})`);
      }
      throw err;
    }
    const list: KubeList = {
      apiVersion: groupVersion(def),
      kind: def.listKind,
      metadata: { resourceVersion: String(listRevision) },
      items,
    };
    if (more && lastKey) list.metadata.continue = encodeContinue({ v: 'meta.k8s.io/v1', rv: listRevision, start: lastKey });
    return list;
  }

  async create(def: ResourceDef, namespace: string, body: KubeObject, opts: WriteOptions): Promise<KubeObject> {
    const obj = this.decodeNew(def, namespace, body, opts);
    const meta = obj.metadata;
    if (!meta.name) {
      if (meta.generateName) meta.name = meta.generateName + randomSuffix();
      else throw errors.invalid(def.kind, def.group, '', [{ reason: 'FieldValueRequired', message: 'name or generateName is required', field: 'metadata.name' }]);
    }
    for (const field of SERVER_METADATA) delete meta[field];
    meta.uid = randomUUID();
    meta.creationTimestamp = nowTimestamp();
    const strategy = strategyFor(def);
    if (strategy.initialStatus) obj.status = strategy.initialStatus(obj);
    strategy.prepareForCreate?.(obj, opts.user);
    if (strategy.generation) meta.generation = 1;
    applyDefaults(def, obj);
    await this.admit({ operation: 'CREATE', def, subresource: '', namespace, name: meta.name, object: obj, user: opts.user, dryRun: opts.dryRun, warnings: opts.warnings });
    this.validate(def, obj, undefined);
    this.trackFields(def, undefined, obj, opts);
    if (opts.dryRun) {
      if (await this.store.get(objectKey(def, namespace, meta.name))) throw errors.alreadyExists({ group: def.group, resource: def.plural, name: meta.name });
      return obj;
    }
    try {
      return (await this.store.create(objectKey(def, namespace, meta.name), obj)).object;
    } catch (err) {
      if (err instanceof StoreError && err.code === 'exists') throw errors.alreadyExists({ group: def.group, resource: def.plural, name: meta.name });
      throw err;
    }
  }

  /** PUT: replaces the object (or its status), guarded by metadata.resourceVersion when given. */
  async update(def: ResourceDef, namespace: string, name: string, body: KubeObject, opts: WriteOptions): Promise<{ object: KubeObject; created: boolean }> {
    const obj = this.decodeNew(def, namespace, body, opts);
    if (obj.metadata.name !== undefined && obj.metadata.name !== name) {
      throw errors.badRequest(`the name of the object (${obj.metadata.name}) does not match the name on the URL (${name})`);
    }
    obj.metadata.name = name;
    const key = objectKey(def, namespace, name);
    const current = await this.store.get(key);
    if (!current) {
      if (strategyFor(def).createOnUpdate && !opts.subresource) {
        return { object: await this.create(def, namespace, obj, opts), created: true };
      }
      throw errors.notFound({ group: def.group, resource: def.plural, name });
    }
    const wanted = obj.metadata.resourceVersion;
    if (wanted !== undefined && wanted !== '' && wanted !== String(current.modRevision)) throw this.conflict(def, name);
    return { object: await this.replace(def, current, obj, opts), created: false };
  }

  async patch(
    def: ResourceDef,
    namespace: string,
    name: string,
    type: PatchType | 'apply',
    patch: unknown,
    opts: WriteOptions & { force?: boolean },
  ): Promise<{ object: KubeObject; created: boolean }> {
    const key = objectKey(def, namespace, name);
    const typeSchema = this.schemas(def);
    for (let attempt = 0; ; attempt++) {
      const current = await this.store.get(key);
      if (type === 'apply') {
        if (!typeSchema) throw errors.internal(`no schema for ${def.plural}`);
        const applied = patch as KubeObject;
        const merged = serverSideApply(current ? structuredClone(current.object) : undefined, applied, {
          manager: opts.fieldManager,
          force: opts.force ?? false,
          apiVersion: groupVersion(def),
          subresource: opts.subresource,
          now: new Date(),
          schema: typeSchema.schema,
          resolve: typeSchema.resolve,
        });
        if (!current) {
          return { object: await this.create(def, namespace, merged, { ...opts, fieldManager: '' }), created: true };
        }
        try {
          return { object: await this.replace(def, current, merged, { ...opts, fieldManager: '' }, current.modRevision), created: false };
        } catch (err) {
          if (isConflict(err) && attempt < PATCH_CONFLICT_RETRIES) continue;
          throw err;
        }
      }
      if (!current) throw errors.notFound({ group: def.group, resource: def.plural, name });
      const patched = applyPatch(type, structuredClone(current.object), patch, typeSchema?.schema, typeSchema?.resolve) as KubeObject;
      if (patched === null || typeof patched !== 'object' || Array.isArray(patched)) {
        throw errors.badRequest('the patch must produce an object');
      }
      patched.metadata ??= {};
      // A resourceVersion in the patch is a precondition; otherwise the patch applies to whatever is current.
      const precondition = patched.metadata.resourceVersion !== String(current.modRevision) ? patched.metadata.resourceVersion : undefined;
      if (precondition !== undefined) throw this.conflict(def, name);
      try {
        return { object: await this.replace(def, current, patched, opts, current.modRevision), created: false };
      } catch (err) {
        if (isConflict(err) && attempt < PATCH_CONFLICT_RETRIES) continue;
        throw err;
      }
    }
  }

  /**
   * A change the server itself makes on behalf of a subresource (binding a pod, say): `change`
   * edits a copy of the current object, which is then stored without the update validation a
   * client's write gets. Retried on conflicts.
   */
  async mutate(def: ResourceDef, namespace: string, name: string, change: (obj: KubeObject) => void, opts: WriteOptions): Promise<KubeObject> {
    const key = objectKey(def, namespace, name);
    for (let attempt = 0; ; attempt++) {
      const current = await this.store.get(key);
      if (!current) throw errors.notFound({ group: def.group, resource: def.plural, name });
      const obj = structuredClone(current.object);
      change(obj);
      await this.admit({ operation: 'UPDATE', def, subresource: opts.subresource ?? '', namespace, name, object: obj, oldObject: current.object, user: opts.user, dryRun: opts.dryRun, warnings: opts.warnings });
      this.trackFields(def, current.object, obj, opts);
      if (opts.dryRun) return obj;
      try {
        return (await this.store.update(key, obj, current.modRevision)).object;
      } catch (err) {
        if (isConflict(err) && attempt < PATCH_CONFLICT_RETRIES) continue;
        throw err;
      }
    }
  }

  async delete(def: ResourceDef, namespace: string, name: string, options: DeleteOptions, opts: WriteOptions): Promise<DeleteResult> {
    const key = objectKey(def, namespace, name);
    for (let attempt = 0; ; attempt++) {
      const current = await this.store.get(key);
      if (!current) throw errors.notFound({ group: def.group, resource: def.plural, name });
      const obj = structuredClone(current.object);
      const pre = options.preconditions;
      if (pre?.uid && pre.uid !== obj.metadata.uid) {
        throw errors.conflict({ group: def.group, resource: def.plural, name }, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${obj.metadata.uid}`);
      }
      if (pre?.resourceVersion && pre.resourceVersion !== String(current.modRevision)) {
        throw errors.conflict({ group: def.group, resource: def.plural, name }, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${current.modRevision}`);
      }
      await this.admit({ operation: 'DELETE', def, subresource: '', namespace, name, oldObject: obj, user: opts.user, dryRun: opts.dryRun, warnings: opts.warnings });
      const outcome = this.markDeletion(def, obj, options);
      try {
        if (outcome !== 'now') {
          if (opts.dryRun) return { body: obj, deleted: false };
          if (outcome === 'unchanged') return { body: current.object, deleted: false };
          const updated = await this.store.update(key, obj, current.modRevision);
          return { body: updated.object, deleted: false };
        }
        if (opts.dryRun) return { body: obj, deleted: true };
        const gone = await this.store.delete(key, current.modRevision);
        return { body: this.deletedBody(def, gone), deleted: true };
      } catch (err) {
        if (isConflict(err) && attempt < PATCH_CONFLICT_RETRIES) continue;
        if (err instanceof StoreError && err.code === 'notfound') throw errors.notFound({ group: def.group, resource: def.plural, name });
        throw err;
      }
    }
  }

  async deleteCollection(def: ResourceDef, namespace: string, filter: ((o: KubeObject) => boolean) | undefined, options: DeleteOptions, opts: WriteOptions): Promise<KubeList> {
    const list = await this.list(def, namespace, { filter });
    const deleted: KubeObject[] = [];
    for (const item of list.items) {
      try {
        const r = await this.delete(def, item.metadata.namespace ?? '', item.metadata.name!, options, opts);
        deleted.push('metadata' in r.body && (r.body as KubeObject).kind !== 'Status' ? (r.body as KubeObject) : item);
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 404)) throw err;
      }
    }
    return { ...list, items: deleted };
  }

  /**
   * Decides whether a delete happens now or waits (grace period, finalizers, a namespace's
   * spec.finalizers), marking the object as terminating when it waits.
   */
  private markDeletion(def: ResourceDef, obj: KubeObject, options: DeleteOptions): 'now' | 'pending' | 'unchanged' {
    const meta = obj.metadata;
    const policy = options.propagationPolicy ?? (options.orphanDependents === true ? 'Orphan' : undefined);
    const finalizers = [...(meta.finalizers ?? [])];
    const require = (f: string) => {
      if (!finalizers.includes(f)) finalizers.push(f);
    };
    if (policy === 'Orphan') require('orphan');
    if (policy === 'Foreground') require('foregroundDeletion');
    const grace = strategyFor(def).gracePeriod?.(obj, options.gracePeriodSeconds) ?? 0;
    const namespaceWaits = isNamespace(def) && namespaceFinalizers(obj).length > 0;
    if (finalizers.length === 0 && grace === 0 && !namespaceWaits) return 'now';
    const before = JSON.stringify([meta.finalizers, meta.deletionTimestamp, obj.status]);
    if (finalizers.length) meta.finalizers = finalizers;
    if (namespaceWaits) obj.status = { ...(obj.status as object), phase: 'Terminating' };
    // A shorter grace period may replace a longer one, as `kubectl delete --grace-period=0 --force` does.
    if (!meta.deletionTimestamp || grace < (meta.deletionGracePeriodSeconds ?? 0)) {
      meta.deletionTimestamp = nowTimestamp(grace);
      meta.deletionGracePeriodSeconds = grace;
    }
    return JSON.stringify([meta.finalizers, meta.deletionTimestamp, obj.status]) === before ? 'unchanged' : 'pending';
  }

  private deletedBody(def: ResourceDef, gone: StoredObject): KubeObject | Status {
    if (def.group === '' && def.kind === 'Pod') return gone.object;
    const details: Status['details'] = { name: gone.object.metadata.name, kind: def.plural, uid: gone.object.metadata.uid };
    if (def.group) details.group = def.group;
    return successStatus(details);
  }

  /**
   * Writes `next` over `current` with the update rules: immutable metadata, status or main resource
   * only, generation, validation, admission, managedFields; then finishes a pending deletion whose
   * finalizers are gone.
   */
  private async replace(def: ResourceDef, current: StoredObject, next: KubeObject, opts: WriteOptions, expected = current.modRevision): Promise<KubeObject> {
    const old = current.object;
    const obj = structuredClone(next);
    const meta = obj.metadata as ObjectMeta;
    const oldMeta = old.metadata;
    // A uid in the body is a precondition, as in kube: it keeps a write meant for a deleted object
    // (e.g. a node's status patch) off the new object that took its name.
    if (meta.uid && meta.uid !== oldMeta.uid) {
      throw errors.conflict({ group: def.group, resource: def.plural, name: oldMeta.name! }, `Precondition failed: UID in precondition: ${meta.uid}, UID in object meta: ${oldMeta.uid}`);
    }
    meta.uid = oldMeta.uid;
    meta.creationTimestamp = oldMeta.creationTimestamp;
    meta.name = oldMeta.name;
    if (oldMeta.namespace) meta.namespace = oldMeta.namespace;
    meta.deletionTimestamp = oldMeta.deletionTimestamp;
    meta.deletionGracePeriodSeconds = oldMeta.deletionGracePeriodSeconds;
    if (meta.deletionTimestamp === undefined) delete meta.deletionTimestamp;
    if (meta.deletionGracePeriodSeconds === undefined) delete meta.deletionGracePeriodSeconds;
    obj.apiVersion = old.apiVersion;
    obj.kind = old.kind;
    const sub = opts.subresource ?? '';
    let result: KubeObject;
    const strategy = strategyFor(def);
    if (sub && strategy.subresourceUpdate?.[sub]) {
      result = structuredClone(old);
      strategy.subresourceUpdate[sub]!(result, obj);
    } else if (sub === 'status') {
      // Only status changes through /status: spec and metadata stay as stored.
      result = { ...structuredClone(old), status: obj.status };
    } else {
      result = obj;
      if (def.subresources.includes('status') && 'status' in old) result.status = structuredClone(old.status);
      else if (def.subresources.includes('status')) delete result.status;
      strategy.prepareForUpdate?.(result, old);
      if (oldMeta.generation !== undefined) {
        meta.generation = specChanged(old, result) ? oldMeta.generation + 1 : oldMeta.generation;
      }
      applyDefaults(def, result);
    }
    if (meta.deletionTimestamp !== undefined) {
      const added = (meta.finalizers ?? []).filter((f) => !(oldMeta.finalizers ?? []).includes(f));
      if (added.length) {
        throw errors.invalid(def.kind, def.group, meta.name!, [{ reason: 'FieldValueForbidden', message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`, field: 'metadata.finalizers' }]);
      }
    }
    await this.admit({ operation: 'UPDATE', def, subresource: sub, namespace: meta.namespace ?? '', name: meta.name!, object: result, oldObject: old, user: opts.user, dryRun: opts.dryRun, warnings: opts.warnings });
    this.validate(def, result, old);
    if (opts.fieldManager) this.trackFields(def, old, result, opts);
    else result.metadata.managedFields = result.metadata.managedFields ?? old.metadata.managedFields;
    delete result.metadata.resourceVersion;
    if (opts.dryRun) return result;
    const key = current.key;
    try {
      if (result.metadata.deletionTimestamp && !(result.metadata.finalizers?.length) && this.deletionDue(def, result)) {
        const gone = await this.store.delete(key, expected);
        return gone.object;
      }
      return (await this.store.update(key, result, expected)).object;
    } catch (err) {
      if (err instanceof StoreError && err.code === 'conflict') throw this.conflict(def, meta.name!);
      if (err instanceof StoreError && err.code === 'notfound') throw errors.notFound({ group: def.group, resource: def.plural, name: meta.name });
      throw err;
    }
  }

  /** A terminating object without finalizers goes once its grace period has no one left to wait for. */
  private deletionDue(def: ResourceDef, obj: KubeObject): boolean {
    if (isNamespace(def)) return namespaceFinalizers(obj).length === 0;
    return (obj.metadata.deletionGracePeriodSeconds ?? 0) === 0;
  }

  private decodeNew(def: ResourceDef, namespace: string, body: KubeObject, opts: WriteOptions): KubeObject {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw errors.badRequest('the request body must be a JSON or YAML object');
    const obj = structuredClone(body);
    const apiVersion = groupVersion(def);
    if (obj.kind !== undefined && obj.kind !== def.kind) {
      throw errors.badRequest(`the object provided is unrecognized (${JSON.stringify(obj.kind)} is not ${def.kind})`);
    }
    if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersion) {
      throw errors.badRequest(`the API version in the data (${obj.apiVersion}) does not match the expected API version (${apiVersion})`);
    }
    obj.apiVersion = apiVersion;
    obj.kind = def.kind;
    if (obj.metadata === undefined || obj.metadata === null) obj.metadata = {};
    if (typeof obj.metadata !== 'object' || Array.isArray(obj.metadata)) throw errors.badRequest('metadata must be an object');
    if (def.namespaced) {
      if (obj.metadata.namespace && obj.metadata.namespace !== namespace) {
        throw errors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      obj.metadata.namespace = namespace;
    } else {
      delete obj.metadata.namespace;
    }
    const typeSchema = this.schemas(def);
    // Unknown fields are dropped whatever the mode, as decoding into kube's typed structs does.
    const issues: FieldIssue[] = (opts.duplicateFields ?? []).map((message) => ({ kind: 'duplicate', path: '', message }));
    if (typeSchema) issues.push(...validateFields(obj, typeSchema.schema, typeSchema.resolve, { strictNull: def.custom, prune: true }));
    const error = fieldValidationError(def, issues, opts.fieldValidation);
    if (error) throw error;
    if (opts.fieldValidation === 'Warn') opts.warnings.push(...issues.map((i) => i.message));
    return obj;
  }

  private validate(def: ResourceDef, obj: KubeObject, old: KubeObject | undefined): void {
    const causes = old ? validateUpdate(def, obj, old) : validateCreate(def, obj);
    if (causes.length) throw errors.invalid(def.kind, def.group, obj.metadata.name ?? '', causes);
  }

  private trackFields(def: ResourceDef, old: KubeObject | undefined, obj: KubeObject, opts: WriteOptions): void {
    const typeSchema = this.schemas(def);
    if (!typeSchema || !opts.fieldManager) return;
    trackUpdate(old, obj, {
      manager: opts.fieldManager,
      apiVersion: groupVersion(def),
      subresource: opts.subresource || undefined,
      now: new Date(),
      schema: typeSchema.schema,
      resolve: typeSchema.resolve,
    });
  }

  private async admit(request: AdmissionRequest): Promise<void> {
    await this.admission.run(request);
  }

  private conflict(def: ResourceDef, name: string): ApiError {
    return errors.conflict({ group: def.group, resource: def.plural, name }, 'the object has been modified; please apply your changes to the latest version and try again');
  }
}

function isNamespace(def: ResourceDef): boolean {
  return def.group === '' && def.kind === 'Namespace';
}

function namespaceFinalizers(obj: KubeObject): string[] {
  return (obj.spec as { finalizers?: string[] } | undefined)?.finalizers ?? [];
}

function isConflict(err: unknown): boolean {
  return (err instanceof ApiError && err.code === 409 && err.reason === 'Conflict') || (err instanceof StoreError && err.code === 'conflict');
}

/** Whether anything besides metadata and status changed: kube's rule for bumping generation. */
function specChanged(old: KubeObject, next: KubeObject): boolean {
  const strip = (o: KubeObject) => {
    const { metadata: _m, status: _s, ...rest } = o;
    return rest;
  };
  return !deepEqual(strip(old), strip(next));
}

export function nowTimestamp(plusSeconds = 0): string {
  return new Date(Math.floor(Date.now() / 1000) * 1000 + plusSeconds * 1000).toISOString().replace('.000Z', 'Z');
}

const SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** Five characters from kube's alphabet without vowels or confusable digits. */
export function randomSuffix(length = 5): string {
  let s = '';
  for (let i = 0; i < length; i++) s += SUFFIX_ALPHABET[Math.floor(Math.random() * SUFFIX_ALPHABET.length)];
  return s;
}

export function parseRevision(rv: string): number {
  if (!/^\d+$/.test(rv)) throw errors.badRequest(`invalid resource version: ${JSON.stringify(rv)}`);
  return Number(rv);
}

function encodeContinue(token: ContinueToken): string {
  return Buffer.from(JSON.stringify(token)).toString('base64url');
}

function decodeContinue(raw: string): ContinueToken {
  try {
    const token = JSON.parse(Buffer.from(raw, 'base64url').toString()) as ContinueToken;
    if (token.v === 'meta.k8s.io/v1' && Number.isSafeInteger(token.rv) && typeof token.start === 'string') return token;
  } catch {
    // fall through to the error below
  }
  throw errors.badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
}
