import { matches, type LabelSelector, type Requirement } from './labels.js';

/**
 * The core/v1 scheduling vocabulary shared by the scheduler, the DaemonSet and node-lifecycle
 * controllers and admission: taints, tolerations and node selector terms, with the matching rules
 * of k8s.io/api's helpers. Kept in Kubernetes' JSON field names, so objects are used as they arrive.
 */

export type TaintEffect = 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';

export interface Taint {
  key: string;
  value?: string;
  effect: TaintEffect | string;
  timeAdded?: string;
}

export interface Toleration {
  key?: string;
  operator?: 'Exists' | 'Equal' | string;
  value?: string;
  effect?: TaintEffect | string;
  tolerationSeconds?: number;
}

export interface NodeSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist' | 'Gt' | 'Lt' | string;
  values?: string[];
}

export interface NodeSelectorTerm {
  matchExpressions?: NodeSelectorRequirement[];
  matchFields?: NodeSelectorRequirement[];
}

export interface NodeAffinity {
  requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms?: NodeSelectorTerm[] };
  preferredDuringSchedulingIgnoredDuringExecution?: { weight: number; preference: NodeSelectorTerm }[];
}

/** v1.Toleration.ToleratesTaint: an empty key with Exists tolerates every key; an empty effect every effect. */
export function toleratesTaint(t: Toleration, taint: Taint): boolean {
  if (t.effect && t.effect !== taint.effect) return false;
  if (t.key && t.key !== taint.key) return false;
  switch (t.operator ?? 'Equal') {
    case 'Exists':
      return true;
    case 'Equal':
    case '':
      return (t.value ?? '') === (taint.value ?? '');
    default:
      return false;
  }
}

export function isTolerated(tolerations: readonly Toleration[], taint: Taint): boolean {
  return tolerations.some((t) => toleratesTaint(t, taint));
}

/** A node selector term compiled to label selectors; `names` is matchFields metadata.name. */
export interface CompiledTerm {
  labels: LabelSelector;
  names?: { operator: 'In' | 'NotIn'; values: readonly string[] }[];
  /** A term with an operator kube does not know, or no requirement at all, matches no node. */
  matchesNothing: boolean;
}

const KUBE_OPERATORS: Record<string, Requirement['operator']> = { In: 'in', NotIn: 'notin', Exists: 'exists', DoesNotExist: '!', Gt: 'gt', Lt: 'lt' };

/** nodeaffinity's NodeSelectorRequirementsAsSelector, compiled once. */
export function compileTerm(term: NodeSelectorTerm): CompiledTerm {
  const exprs = term.matchExpressions ?? [];
  const fields = term.matchFields ?? [];
  let nothing = exprs.length === 0 && fields.length === 0;
  const requirements: Requirement[] = [];
  for (const e of exprs) {
    const op = KUBE_OPERATORS[e.operator];
    if (!op) nothing = true;
    else requirements.push({ key: e.key, operator: op, values: [...(e.values ?? [])] });
  }
  const names: CompiledTerm['names'] = [];
  for (const f of fields) {
    if (f.key !== 'metadata.name' || (f.operator !== 'In' && f.operator !== 'NotIn')) nothing = true;
    else names.push({ operator: f.operator, values: f.values ?? [] });
  }
  return { labels: { requirements }, names: names.length ? names : undefined, matchesNothing: nothing };
}

/** Whether a node with these labels and this name satisfies a compiled term. */
export function termMatches(term: CompiledTerm, labels: Record<string, string> | undefined, nodeName: string): boolean {
  if (term.matchesNothing || !matches(term.labels, labels)) return false;
  for (const n of term.names ?? []) {
    if (n.values.includes(nodeName) !== (n.operator === 'In')) return false;
  }
  return true;
}
