import { fromLabelSelector, matches, type LabelSelectorObject as LabelSelector } from '../../api/labels.js';
import type { KubeObject, UserInfo } from '../../api/types.js';

/**
 * Role-based access control, evaluated as kube-apiserver's RBAC authorizer does:
 *
 * - members of `system:masters` may do anything;
 * - otherwise every ClusterRoleBinding is consulted, then (for namespaced requests) every RoleBinding in
 *   the request's namespace; a binding applies when one of its subjects is the user, one of the user's
 *   groups, or the user's service account;
 * - the bound role's rules allow the request when verb, API group, resource (with `res/sub`, `* /sub`
 *   and `*` forms) and resource name all match, or for non-resource requests verb and URL (`*` suffix
 *   is a prefix match);
 * - a ClusterRole with an aggregationRule has, as kube's aggregation controller would give it, the
 *   union of the rules of every other ClusterRole its selectors match (recursively).
 *
 * There is no deny: anything no rule allows is refused.
 */

export interface RequestAttributes {
  verb: string;
  apiGroup: string;
  /** Plural resource, e.g. "pods"; empty for non-resource requests. */
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  /** URL path, for non-resource requests. */
  path?: string;
  resourceRequest: boolean;
}

export interface Decision {
  allowed: boolean;
  reason: string;
}

/** The RBAC objects, read on every decision; the server backs this with its in-memory cache. */
export interface RbacSource {
  roles(namespace: string): KubeObject[];
  roleBindings(namespace: string): KubeObject[];
  clusterRoles(): KubeObject[];
  clusterRoleBindings(): KubeObject[];
  clusterRole(name: string): KubeObject | undefined;
  role(namespace: string, name: string): KubeObject | undefined;
}

export const SUPERUSER_GROUP = 'system:masters';
const SERVICE_ACCOUNT_PREFIX = 'system:serviceaccount:';

interface PolicyRule {
  verbs: string[];
  apiGroups: string[];
  resources: string[];
  resourceNames: string[];
  nonResourceURLs: string[];
}

interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

function rulesOf(role: KubeObject): PolicyRule[] {
  const rules = Array.isArray(role['rules']) ? (role['rules'] as Record<string, unknown>[]) : [];
  return rules.map((r) => ({
    verbs: strings(r['verbs']),
    apiGroups: strings(r['apiGroups']),
    resources: strings(r['resources']),
    resourceNames: strings(r['resourceNames']),
    nonResourceURLs: strings(r['nonResourceURLs']),
  }));
}

function subjectsOf(binding: KubeObject): Subject[] {
  return Array.isArray(binding['subjects']) ? (binding['subjects'] as Subject[]) : [];
}

function roleRefOf(binding: KubeObject): { kind: string; name: string } {
  const ref = (binding['roleRef'] ?? {}) as { kind?: string; name?: string };
  return { kind: ref.kind ?? '', name: ref.name ?? '' };
}

export function serviceAccountUsername(namespace: string, name: string): string {
  return `${SERVICE_ACCOUNT_PREFIX}${namespace}:${name}`;
}

/** Whether `subject` names the user; `bindingNamespace` defaults a ServiceAccount subject's namespace. */
function appliesTo(user: UserInfo, subject: Subject, bindingNamespace: string): boolean {
  switch (subject.kind) {
    case 'User':
      return user.name === subject.name;
    case 'Group':
      return user.groups.includes(subject.name);
    case 'ServiceAccount': {
      const ns = subject.namespace || bindingNamespace;
      return ns !== '' && user.name === serviceAccountUsername(ns, subject.name);
    }
    default:
      return false;
  }
}

function describeSubject(subject: Subject, bindingNamespace: string): string {
  if (subject.kind === 'ServiceAccount') {
    return `${subject.kind} ${JSON.stringify(`${subject.name}/${subject.namespace || bindingNamespace}`)}`;
  }
  return `${subject.kind} ${JSON.stringify(subject.name)}`;
}

function resourceMatches(rule: PolicyRule, combined: string, subresource: string): boolean {
  return rule.resources.some(
    (r) => r === '*' || r === combined || (subresource !== '' && r === `*/${subresource}`),
  );
}

function urlMatches(rule: PolicyRule, path: string): boolean {
  return rule.nonResourceURLs.some((u) => u === '*' || u === path || (u.endsWith('*') && path.startsWith(u.replace(/\*+$/, ''))));
}

export function ruleAllows(rule: PolicyRule, attrs: RequestAttributes): boolean {
  const verbOk = rule.verbs.some((v) => v === '*' || v === attrs.verb);
  if (!verbOk) return false;
  if (!attrs.resourceRequest) return urlMatches(rule, attrs.path ?? '');
  const sub = attrs.subresource ?? '';
  const combined = sub === '' ? attrs.resource : `${attrs.resource}/${sub}`;
  return (
    rule.apiGroups.some((g) => g === '*' || g === attrs.apiGroup) &&
    resourceMatches(rule, combined, sub) &&
    (rule.resourceNames.length === 0 || rule.resourceNames.includes(attrs.name ?? ''))
  );
}

export function selectorMatches(selector: LabelSelector, labels: Record<string, string>): boolean {
  try {
    return matches(fromLabelSelector(selector), labels);
  } catch {
    // A malformed selector in a stored ClusterRole selects nothing rather than failing every request.
    return false;
  }
}

const notFound = (kind: string, name: string) => `${kind}.rbac.authorization.k8s.io ${JSON.stringify(name)} not found`;

export class RbacAuthorizer {
  constructor(private readonly source: RbacSource) {}

  authorize(user: UserInfo, attrs: RequestAttributes): Decision {
    if (user.groups.includes(SUPERUSER_GROUP)) return { allowed: true, reason: `superuser group "${SUPERUSER_GROUP}"` };
    const errors: string[] = [];
    const aggregated = new Map<string, PolicyRule[]>();

    for (const binding of this.source.clusterRoleBindings()) {
      const subject = subjectsOf(binding).find((s) => appliesTo(user, s, ''));
      if (!subject) continue;
      const ref = roleRefOf(binding);
      if (ref.kind !== 'ClusterRole') {
        errors.push(`unsupported role reference kind: ${JSON.stringify(ref.kind)}`);
        continue;
      }
      const rules = this.clusterRoleRules(ref.name, aggregated);
      if (rules === undefined) {
        errors.push(notFound('clusterrole', ref.name));
        continue;
      }
      if (rules.some((r) => ruleAllows(r, attrs))) {
        return {
          allowed: true,
          reason: `RBAC: allowed by ClusterRoleBinding ${JSON.stringify(binding.metadata.name ?? '')} of ClusterRole ${JSON.stringify(ref.name)} to ${describeSubject(subject, '')}`,
        };
      }
    }

    const ns = attrs.namespace ?? '';
    if (ns !== '') {
      for (const binding of this.source.roleBindings(ns)) {
        const subject = subjectsOf(binding).find((s) => appliesTo(user, s, ns));
        if (!subject) continue;
        const ref = roleRefOf(binding);
        let rules: PolicyRule[] | undefined;
        if (ref.kind === 'ClusterRole') {
          rules = this.clusterRoleRules(ref.name, aggregated);
          if (rules === undefined) errors.push(notFound('clusterrole', ref.name));
        } else if (ref.kind === 'Role') {
          const role = this.source.role(ns, ref.name);
          rules = role && rulesOf(role);
          if (rules === undefined) errors.push(notFound('role', ref.name));
        } else {
          errors.push(`unsupported role reference kind: ${JSON.stringify(ref.kind)}`);
        }
        if (rules?.some((r) => ruleAllows(r, attrs))) {
          return {
            allowed: true,
            reason: `RBAC: allowed by RoleBinding ${JSON.stringify(`${binding.metadata.name ?? ''}/${ns}`)} of ${ref.kind} ${JSON.stringify(ref.name)} to ${describeSubject(subject, ns)}`,
          };
        }
      }
    }
    // kube prints its error list with Go's %v on a slice: "[a b]".
    return { allowed: false, reason: errors.length ? `RBAC: [${errors.join(' ')}]` : '' };
  }

  /**
   * A ClusterRole's effective rules. For an aggregated role these are the union of the selected roles'
   * effective rules (its own `rules` are what kube's controller would overwrite). `undefined` if absent.
   */
  private clusterRoleRules(name: string, memo: Map<string, PolicyRule[]>, visiting = new Set<string>()): PolicyRule[] | undefined {
    const cached = memo.get(name);
    if (cached) return cached;
    const role = this.source.clusterRole(name);
    if (!role) return undefined;
    const aggregation = role['aggregationRule'] as { clusterRoleSelectors?: LabelSelector[] } | undefined;
    const selectors = aggregation?.clusterRoleSelectors;
    if (!selectors) {
      const rules = rulesOf(role);
      memo.set(name, rules);
      return rules;
    }
    visiting.add(name);
    const rules: PolicyRule[] = [];
    for (const other of this.source.clusterRoles()) {
      const otherName = other.metadata.name ?? '';
      if (visiting.has(otherName)) continue;
      const labels = other.metadata.labels ?? {};
      if (!selectors.some((s) => selectorMatches(s, labels))) continue;
      rules.push(...(this.clusterRoleRules(otherName, memo, visiting) ?? []));
    }
    visiting.delete(name);
    memo.set(name, rules);
    return rules;
  }
}

/** Replaces what could make a plain-text error look like HTML, as kube's response writer does. */
function sanitize(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * The message of kube's 403 Status for a refused request, e.g.
 * `pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "other"`.
 * `reason` is the Decision's reason, appended as kube does when non-empty.
 */
export function forbiddenMessage(user: UserInfo, attrs: RequestAttributes, reason = ''): string {
  const q = JSON.stringify;
  let detail: string;
  if (!attrs.resourceRequest) {
    detail = `User ${q(user.name)} cannot ${attrs.verb} path ${q(attrs.path ?? '')}`;
  } else {
    const resource = attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource;
    const scope = attrs.namespace ? `in the namespace ${q(attrs.namespace)}` : 'at the cluster scope';
    detail = `User ${q(user.name)} cannot ${attrs.verb} resource ${q(resource)} in API group ${q(attrs.apiGroup)} ${scope}`;
  }
  detail = sanitize(detail);
  if (reason !== '') detail += `: ${reason}`;
  if (!attrs.resourceRequest || attrs.resource === '') return `forbidden: ${detail}`;
  const qualified = attrs.apiGroup ? `${attrs.resource}.${attrs.apiGroup}` : attrs.resource;
  return attrs.name ? `${qualified} ${q(attrs.name)} is forbidden: ${detail}` : `${qualified} is forbidden: ${detail}`;
}
