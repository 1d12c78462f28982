import type { KubeObject, StatusCause } from '../types.js';
import { err, path, quote, type FieldPath } from './field.js';
import { isRecord, str, goStringSlice } from './meta.js';
import { invalidEach, nameIsDNSSubdomain, nameIsPathSegment } from './names.js';
import type { KindRules } from './registry.js';

/** rbac.authorization.k8s.io/v1: SetDefaults_Subject/_RoleBinding and pkg/apis/rbac/validation. */

type Rec = Record<string, any>;

const GROUP = 'rbac.authorization.k8s.io';

function validateRule(rule: Rec, namespaced: boolean, at: FieldPath): StatusCause[] {
  const causes: StatusCause[] = [];
  const list = (k: string): string[] => (Array.isArray(rule[k]) ? rule[k].map(String) : []);
  if (list('verbs').length === 0) causes.push(err.required(at.child('verbs'), 'verbs must contain at least one value'));
  const urls = list('nonResourceURLs');
  if (urls.length > 0) {
    if (namespaced) causes.push(err.invalid(at.child('nonResourceURLs'), { rendered: goStringSlice(urls) }, 'namespaced rules cannot apply to non-resource URLs'));
    if (list('apiGroups').length || list('resources').length || list('resourceNames').length) {
      causes.push(err.invalid(at.child('nonResourceURLs'), { rendered: goStringSlice(urls) }, 'rules cannot apply to both regular resources and non-resource URLs'));
    }
    return causes;
  }
  if (list('apiGroups').length === 0) causes.push(err.required(at.child('apiGroups'), 'resource rules must supply at least one api group'));
  if (list('resources').length === 0) causes.push(err.required(at.child('resources'), 'resource rules must supply at least one resource'));
  return causes;
}

function validateRules(obj: KubeObject, namespaced: boolean): StatusCause[] {
  const rules: unknown[] = Array.isArray(obj.rules) ? obj.rules : [];
  return rules.flatMap((r, i) => validateRule(isRecord(r) ? r : {}, namespaced, path('rules').index(i)));
}

function defaultBinding(obj: KubeObject): void {
  if (isRecord(obj.roleRef) && !obj.roleRef.apiGroup) obj.roleRef.apiGroup = GROUP;
  for (const s of Array.isArray(obj.subjects) ? obj.subjects : []) {
    if (!isRecord(s) || s.apiGroup !== undefined) continue;
    if (s.kind === 'ServiceAccount') s.apiGroup = '';
    if (s.kind === 'User' || s.kind === 'Group') s.apiGroup = GROUP;
  }
}

function validateSubject(s: Rec, namespaced: boolean, at: FieldPath): StatusCause[] {
  const causes: StatusCause[] = [];
  const name = str(s.name);
  if (!name) causes.push(err.required(at.child('name')));
  switch (s.kind) {
    case 'ServiceAccount':
      if (name) causes.push(...invalidEach(at.child('name'), name, nameIsDNSSubdomain(name, false)));
      if (s.apiGroup) causes.push(err.notSupported(at.child('apiGroup'), str(s.apiGroup), ['']));
      if (!namespaced && !s.namespace) causes.push(err.required(at.child('namespace')));
      break;
    case 'User':
    case 'Group':
      if (s.apiGroup !== GROUP) causes.push(err.notSupported(at.child('apiGroup'), str(s.apiGroup), [GROUP]));
      break;
    default:
      causes.push(err.notSupported(at.child('kind'), str(s.kind), ['ServiceAccount', 'User', 'Group']));
  }
  return causes;
}

function validateBinding(obj: KubeObject, roleKinds: string[], namespaced: boolean): StatusCause[] {
  const ref: Rec = isRecord(obj.roleRef) ? obj.roleRef : {};
  const causes: StatusCause[] = [];
  if (ref.apiGroup !== GROUP) causes.push(err.notSupported(path('roleRef', 'apiGroup'), str(ref.apiGroup), [GROUP]));
  if (!roleKinds.includes(ref.kind)) causes.push(err.notSupported(path('roleRef', 'kind'), str(ref.kind), roleKinds));
  if (!ref.name) causes.push(err.required(path('roleRef', 'name')));
  else causes.push(...invalidEach(path('roleRef', 'name'), str(ref.name), nameIsPathSegment(str(ref.name), false)));
  const subjects: unknown[] = Array.isArray(obj.subjects) ? obj.subjects : [];
  subjects.forEach((s, i) => causes.push(...validateSubject(isRecord(s) ? s : {}, namespaced, path('subjects').index(i))));
  return causes;
}

/** roleRef is immutable; kube prints the new RoleRef with Go's %#v. */
function roleRefImmutable(obj: KubeObject, old: KubeObject): StatusCause[] {
  const a: Rec = isRecord(obj.roleRef) ? obj.roleRef : {};
  const b: Rec = isRecord(old.roleRef) ? old.roleRef : {};
  if (str(a.apiGroup) === str(b.apiGroup) && str(a.kind) === str(b.kind) && str(a.name) === str(b.name)) return [];
  const shown = { rendered: `rbac.RoleRef{APIGroup:${quote(str(a.apiGroup))}, Kind:${quote(str(a.kind))}, Name:${quote(str(a.name))}}` };
  return [err.invalid(path('roleRef'), shown, 'cannot change roleRef')];
}

export const roleRules: KindRules = { group: GROUP, kind: 'Role', nameFn: nameIsPathSegment, validate: (o) => validateRules(o, true) };
export const clusterRoleRules: KindRules = { group: GROUP, kind: 'ClusterRole', nameFn: nameIsPathSegment, validate: (o) => validateRules(o, false) };

export const roleBindingRules: KindRules = {
  group: GROUP,
  kind: 'RoleBinding',
  nameFn: nameIsPathSegment,
  defaults: defaultBinding,
  validate: (o) => validateBinding(o, ['Role', 'ClusterRole'], true),
  validateUpdate: roleRefImmutable,
};

export const clusterRoleBindingRules: KindRules = {
  group: GROUP,
  kind: 'ClusterRoleBinding',
  nameFn: nameIsPathSegment,
  defaults: defaultBinding,
  validate: (o) => validateBinding(o, ['ClusterRole'], false),
  validateUpdate: roleRefImmutable,
};
