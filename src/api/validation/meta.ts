import type { KubeObject, ObjectMeta, StatusCause } from '../types.js';
import { err, FieldPath, deepEqual, FIELD_IMMUTABLE, IS_NEGATIVE, type BadValue } from './field.js';
import { isLabelValue, isQualifiedName, nameIsDNSLabel, type NameFn } from './names.js';

/** ObjectMeta validation as apimachinery's ValidateObjectMeta(Update) plus core's finalizer check. */

export const TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024;

const STANDARD_FINALIZERS = new Set(['kubernetes', 'orphan', 'foregroundDeletion']);

export function validateLabels(labels: unknown, field: FieldPath): StatusCause[] {
  if (!isRecord(labels)) return [];
  const causes: StatusCause[] = [];
  for (const [k, v] of Object.entries(labels)) {
    for (const msg of isQualifiedName(k)) causes.push(err.invalid(field, k, msg));
    for (const msg of isLabelValue(String(v))) causes.push(err.invalid(field, String(v), msg));
  }
  return causes;
}

export function validateAnnotations(annotations: unknown, field: FieldPath): StatusCause[] {
  if (!isRecord(annotations)) return [];
  const causes: StatusCause[] = [];
  let size = 0;
  for (const [k, v] of Object.entries(annotations)) {
    // Annotation keys are qualified names except that case does not matter.
    for (const msg of isQualifiedName(k.toLowerCase())) causes.push(err.invalid(field, k, msg));
    size += Buffer.byteLength(k) + Buffer.byteLength(String(v));
  }
  if (size > TOTAL_ANNOTATION_SIZE_LIMIT) causes.push(err.tooLong(field, TOTAL_ANNOTATION_SIZE_LIMIT));
  return causes;
}

export function validateFinalizerName(name: string, field: FieldPath): StatusCause[] {
  const causes = isQualifiedName(name).map((msg) => err.invalid(field, name, msg));
  if (!name.includes('/') && !STANDARD_FINALIZERS.has(name)) {
    causes.push(err.invalid(field, name, 'name is neither a standard finalizer name nor is it fully qualified'));
  }
  return causes;
}

function validateFinalizers(finalizers: unknown, field: FieldPath): StatusCause[] {
  if (!Array.isArray(finalizers)) return [];
  const causes: StatusCause[] = [];
  for (const f of finalizers) for (const msg of isQualifiedName(String(f))) causes.push(err.invalid(field, String(f), msg));
  if (finalizers.includes('orphan') && finalizers.includes('foregroundDeletion')) {
    causes.push(err.invalid(field, { rendered: goStringSlice(finalizers.map(String)) }, 'finalizer orphan and foregroundDeletion cannot be both set'));
  }
  finalizers.forEach((f, i) => {
    const name = String(f);
    if (!name.includes('/') && !STANDARD_FINALIZERS.has(name)) {
      causes.push(err.invalid(field.index(i), name, 'name is neither a standard finalizer name nor is it fully qualified'));
    }
  });
  return causes;
}

function validateOwnerReferences(refs: unknown, field: FieldPath): StatusCause[] {
  if (!Array.isArray(refs)) return [];
  const causes: StatusCause[] = [];
  let controller = '';
  for (const raw of refs) {
    const ref = isRecord(raw) ? raw : {};
    const apiVersion = str(ref.apiVersion);
    const version = apiVersion.includes('/') ? apiVersion.slice(apiVersion.indexOf('/') + 1) : apiVersion;
    if (!version) causes.push(err.invalid(field.child('apiVersion'), apiVersion, 'version must not be empty'));
    if (!str(ref.kind)) causes.push(err.invalid(field.child('kind'), str(ref.kind), 'must not be empty'));
    if (!str(ref.name)) causes.push(err.invalid(field.child('name'), str(ref.name), 'must not be empty'));
    if (!str(ref.uid)) causes.push(err.invalid(field.child('uid'), str(ref.uid), 'must not be empty'));
    if (ref.controller === true) {
      const name = `${str(ref.kind)}/${str(ref.name)}`;
      if (controller) {
        causes.push(
          err.invalid(field, { rendered: '[]v1.OwnerReference{...}' }, `Only one reference can have Controller set to true. Found "true" in references for ${controller} and ${name}`),
        );
      } else controller = name;
    }
  }
  return causes;
}

/** Checks shared by create and update (apimachinery's validateObjectMetaAccessorWithOptsCommon). */
function validateCommon(meta: ObjectMeta, namespaced: boolean, field: FieldPath): StatusCause[] {
  const causes: StatusCause[] = [];
  if (namespaced) {
    if (!meta.namespace) causes.push(err.required(field.child('namespace')));
    else for (const msg of nameIsDNSLabel(meta.namespace, false)) causes.push(err.invalid(field.child('namespace'), meta.namespace, msg));
  } else if (meta.namespace) {
    causes.push(err.forbidden(field.child('namespace'), 'not allowed on this type'));
  }
  if (typeof meta.generation === 'number' && meta.generation < 0) {
    causes.push(err.invalid(field.child('generation'), meta.generation, IS_NEGATIVE));
  }
  causes.push(...validateLabels(meta.labels, field.child('labels')));
  causes.push(...validateAnnotations(meta.annotations, field.child('annotations')));
  causes.push(...validateOwnerReferences(meta.ownerReferences, field.child('ownerReferences')));
  causes.push(...validateFinalizers(meta.finalizers, field.child('finalizers')));
  return causes;
}

export function validateObjectMeta(meta: ObjectMeta, namespaced: boolean, nameFn: NameFn, field = FieldPath.root('metadata')): StatusCause[] {
  const causes: StatusCause[] = [];
  if (meta.generateName) {
    for (const msg of nameFn(meta.generateName, true)) causes.push(err.invalid(field.child('generateName'), meta.generateName, msg));
  }
  if (!meta.name) {
    causes.push(err.required(field.child('name'), 'name or generateName is required'));
  } else {
    for (const msg of nameFn(meta.name, false)) causes.push(err.invalid(field.child('name'), meta.name, msg));
  }
  causes.push(...validateCommon(meta, namespaced, field));
  return causes;
}

/** Go's String() of metav1.Time, which kube prints for an immutable timestamp. */
function goTime(v: unknown): BadValue {
  if (typeof v !== 'string') return { rendered: v === undefined ? '0001-01-01 00:00:00 +0000 UTC' : String(v) };
  const d = new Date(v);
  if (Number.isNaN(d.getTime())) return v;
  return { rendered: `${d.toISOString().slice(0, 19).replace('T', ' ')} +0000 UTC` };
}

export function validateObjectMetaUpdate(meta: ObjectMeta, old: ObjectMeta, field = FieldPath.root('metadata')): StatusCause[] {
  const causes: StatusCause[] = [];
  if (old.deletionTimestamp) {
    const added = (meta.finalizers ?? []).filter((f) => !(old.finalizers ?? []).includes(f));
    if (added.length) {
      const list = goStringSlice([...new Set(added)].sort());
      causes.push(err.forbidden(field.child('finalizers'), `no new finalizers can be added if the object is being deleted, found new finalizers ${list}`));
    }
  }
  if ((meta.generation ?? 0) < (old.generation ?? 0)) {
    causes.push(err.invalid(field.child('generation'), meta.generation ?? 0, 'must not be decremented'));
  }
  const same = (a: unknown, b: unknown) => deepEqual(a ?? '', b ?? '');
  if (!same(meta.name, old.name)) causes.push(err.invalid(field.child('name'), meta.name ?? '', FIELD_IMMUTABLE));
  if (!same(meta.namespace, old.namespace)) causes.push(err.invalid(field.child('namespace'), meta.namespace ?? '', FIELD_IMMUTABLE));
  if (!same(meta.uid, old.uid)) causes.push(err.invalid(field.child('uid'), meta.uid ?? '', FIELD_IMMUTABLE));
  if (!same(meta.creationTimestamp, old.creationTimestamp)) {
    causes.push(err.invalid(field.child('creationTimestamp'), goTime(meta.creationTimestamp), FIELD_IMMUTABLE));
  }
  if (!same(meta.deletionTimestamp, old.deletionTimestamp)) {
    causes.push(err.invalid(field.child('deletionTimestamp'), meta.deletionTimestamp === undefined ? null : goTime(meta.deletionTimestamp), FIELD_IMMUTABLE));
  }
  if (!deepEqual(meta.deletionGracePeriodSeconds, old.deletionGracePeriodSeconds)) {
    causes.push(err.invalid(field.child('deletionGracePeriodSeconds'), meta.deletionGracePeriodSeconds ?? null, FIELD_IMMUTABLE));
  }
  causes.push(...validateLabels(meta.labels, field.child('labels')));
  causes.push(...validateAnnotations(meta.annotations, field.child('annotations')));
  causes.push(...validateOwnerReferences(meta.ownerReferences, field.child('ownerReferences')));
  causes.push(...validateFinalizers(meta.finalizers, field.child('finalizers')));
  return causes;
}

/** Go's `%#v` of a []string. */
export function goStringSlice(items: string[]): string {
  return `[]string{${items.map((s) => JSON.stringify(s)).join(', ')}}`;
}

export function metaOf(obj: KubeObject): ObjectMeta {
  return isRecord(obj.metadata) ? obj.metadata : {};
}

export function isRecord(v: unknown): v is Record<string, any> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function str(v: unknown): string {
  return typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v);
}
