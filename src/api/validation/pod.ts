import type { KubeObject, StatusCause } from '../types.js';
import { err, deepEqual, path, FieldPath } from './field.js';
import { isRecord } from './meta.js';
import { inclusiveRangeError } from './names.js';
import { arr, defaultPodExtras, defaultPodSpec } from './podspec-defaults.js';
import { validatePodSpec, validateTolerations } from './podspec.js';
import type { KindRules } from './registry.js';

type Rec = Record<string, any>;

const UPDATABLE_POD_SPEC_FIELDS = [
  '`spec.containers[*].image`',
  '`spec.initContainers[*].image`',
  '`spec.activeDeadlineSeconds`',
  '`spec.tolerations` (only additions to existing tolerations)',
  '`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
];
export const POD_UPDATE_FORBIDDEN = `pod updates may not change fields other than ${UPDATABLE_POD_SPEC_FIELDS.join(',')}`;
const MAX_INT32 = 2147483647;

function specOf(obj: KubeObject): Rec {
  if (!isRecord(obj.spec)) obj.spec = {};
  return obj.spec as Rec;
}

function validatePod(pod: KubeObject): StatusCause[] {
  const spec = specOf(pod);
  const specPath = path('spec');
  const causes = validatePodSpec(spec, specPath, { resourceIsPod: true });
  for (const list of ['containers', 'initContainers'] as const) {
    arr(spec[list]).forEach((c, i) => {
      const image = isRecord(c) && typeof c.image === 'string' ? c.image : '';
      if (image !== image.trim()) causes.push(err.invalid(specPath.child(list).index(i).child('image'), image, 'must not have leading or trailing whitespace'));
    });
  }
  return causes;
}

function validatePodCreate(pod: KubeObject): StatusCause[] {
  const spec = specOf(pod);
  const causes: StatusCause[] = [];
  if (arr(spec.ephemeralContainers).length > 0) causes.push(err.forbidden(path('spec', 'ephemeralContainers'), 'cannot be set on create'));
  if (spec.nodeName && arr(spec.schedulingGates).length > 0) {
    causes.push(err.forbidden(path('spec', 'nodeName'), 'cannot be set until all schedulingGates have been cleared'));
  }
  return causes;
}

function containerUpdates(next: unknown[], prev: unknown[], field: FieldPath): { causes: StatusCause[]; stop: boolean } {
  if (next.length !== prev.length) return { causes: [err.forbidden(field, 'pod updates may not add or remove containers')], stop: true };
  const causes: StatusCause[] = [];
  next.forEach((c, i) => {
    if (!isRecord(c) || !c.image) causes.push(err.required(field.index(i).child('image')));
  });
  return { causes, stop: false };
}

function onlyAddedTolerations(next: unknown[], prev: unknown[], field: FieldPath): StatusCause[] {
  for (const old of prev) {
    const found = next.some((t) => isRecord(t) && isRecord(old) && deepEqual({ ...old, tolerationSeconds: t.tolerationSeconds }, t));
    if (!found) return [err.forbidden(field, 'existing toleration can not be modified except its tolerationSeconds')];
  }
  return validateTolerations(next, field);
}

/** A short account of what differs, in place of the go-cmp diff kube appends. */
function specDiff(prev: Rec, next: Rec, at = 'spec'): string[] {
  if (deepEqual(prev, next)) return [];
  if (isRecord(prev) && isRecord(next)) {
    return [...new Set([...Object.keys(prev), ...Object.keys(next)])].flatMap((k) => specDiff(prev[k], next[k], `${at}.${k}`));
  }
  if (Array.isArray(prev) && Array.isArray(next) && prev.length === next.length) {
    return prev.flatMap((p, i) => specDiff(p, next[i], `${at}[${i}]`));
  }
  return [`- ${at}: ${JSON.stringify(prev) ?? 'null'}`, `+ ${at}: ${JSON.stringify(next) ?? 'null'}`];
}

function validatePodUpdate(pod: KubeObject, old: KubeObject): StatusCause[] {
  const spec = specOf(pod);
  const oldSpec = specOf(old);
  const specPath = path('spec');
  const causes: StatusCause[] = [];
  for (const list of ['containers', 'initContainers'] as const) {
    const r = containerUpdates(arr(spec[list]), arr(oldSpec[list]), specPath.child(list));
    causes.push(...r.causes);
    if (r.stop) return causes;
  }
  const ads = spec.activeDeadlineSeconds;
  if (ads !== undefined && ads !== null) {
    if (ads < 0 || ads > MAX_INT32) return [...causes, err.invalid(specPath.child('activeDeadlineSeconds'), ads, inclusiveRangeError(0, MAX_INT32))];
    if (typeof oldSpec.activeDeadlineSeconds === 'number' && oldSpec.activeDeadlineSeconds < ads) {
      return [...causes, err.invalid(specPath.child('activeDeadlineSeconds'), ads, 'must be less than or equal to previous value')];
    }
  } else if (oldSpec.activeDeadlineSeconds !== undefined && oldSpec.activeDeadlineSeconds !== null) {
    causes.push(err.invalid(specPath.child('activeDeadlineSeconds'), null, 'must not update from a positive integer to nil value'));
  }
  causes.push(...onlyAddedTolerations(arr(spec.tolerations), arr(oldSpec.tolerations), specPath.child('tolerations')));
  const gates = arr(spec.schedulingGates);
  const oldGates = new Set(arr(oldSpec.schedulingGates).map((g) => (isRecord(g) ? g.name : undefined)));
  gates.forEach((g, i) => {
    const name = isRecord(g) ? g.name : undefined;
    if (!oldGates.has(name)) {
      causes.push(err.forbidden(specPath.child('schedulingGates').index(i).child('name'), `only deletion is allowed, but found new scheduling gate '${name}'`));
    }
  });
  if (deepEqual(spec, oldSpec)) return causes;

  const munged: Rec = structuredClone(spec);
  for (const list of ['containers', 'initContainers'] as const) {
    if (Array.isArray(munged[list])) {
      const oldList = arr(oldSpec[list]) as Rec[];
      munged[list] = munged[list].map((c: Rec, i: number) => ({ ...c, image: oldList[i]?.image }));
    }
  }
  munged.activeDeadlineSeconds = oldSpec.activeDeadlineSeconds;
  munged.schedulingGates = oldSpec.schedulingGates;
  munged.tolerations = oldSpec.tolerations;
  if (typeof oldSpec.terminationGracePeriodSeconds === 'number' && oldSpec.terminationGracePeriodSeconds < 0 && munged.terminationGracePeriodSeconds === 1) {
    munged.terminationGracePeriodSeconds = oldSpec.terminationGracePeriodSeconds;
  }
  if (!deepEqual(munged, oldSpec)) {
    causes.push(err.forbidden(specPath, `${POD_UPDATE_FORBIDDEN}\n${specDiff(oldSpec, munged).join('\n')}`));
  }
  return causes;
}

export const podRules: KindRules = {
  group: '',
  kind: 'Pod',
  defaults(pod) {
    const spec = specOf(pod);
    defaultPodSpec(spec);
    defaultPodExtras(spec);
  },
  validate: validatePod,
  validateCreate: validatePodCreate,
  validateUpdate: validatePodUpdate,
};
