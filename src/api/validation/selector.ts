import type { StatusCause } from '../types.js';
import { err, type FieldPath, type RenderedValue } from './field.js';
import { isRecord, str, validateLabels } from './meta.js';
import { invalidEach, isLabelValue, isQualifiedName } from './names.js';

/** metav1.LabelSelector: validation, matching, and the text kube prints for one. */

type Rec = Record<string, any>;

const OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

export function validateLabelSelector(selector: Rec, field: FieldPath): StatusCause[] {
  const causes = validateLabels(selector.matchLabels, field.child('matchLabels'));
  (Array.isArray(selector.matchExpressions) ? selector.matchExpressions : []).forEach((raw: unknown, i: number) => {
    const r: Rec = isRecord(raw) ? raw : {};
    const at = field.child('matchExpressions').index(i);
    const values: unknown[] = Array.isArray(r.values) ? r.values : [];
    switch (r.operator) {
      case 'In':
      case 'NotIn':
        if (values.length === 0) causes.push(err.required(at.child('values'), "must be specified when `operator` is 'In' or 'NotIn'"));
        break;
      case 'Exists':
      case 'DoesNotExist':
        if (values.length > 0) causes.push(err.forbidden(at.child('values'), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"));
        break;
      default:
        causes.push(err.invalid(at.child('operator'), str(r.operator), 'not a valid selector operator'));
    }
    causes.push(...invalidEach(at.child('key'), str(r.key), isQualifiedName(str(r.key))));
    values.forEach((v, j) => causes.push(...invalidEach(at.child('values').index(j), str(v), isLabelValue(str(v)))));
  });
  return causes;
}

export function selectorIsEmpty(selector: Rec): boolean {
  const labels = isRecord(selector.matchLabels) ? Object.keys(selector.matchLabels).length : 0;
  const exprs = Array.isArray(selector.matchExpressions) ? selector.matchExpressions.length : 0;
  return labels + exprs === 0;
}

/** Whether a selector that passed validation selects the given labels. */
export function selectorMatches(selector: Rec, labels: Record<string, string>): boolean {
  const matchLabels: Rec = isRecord(selector.matchLabels) ? selector.matchLabels : {};
  for (const [k, v] of Object.entries(matchLabels)) if (labels[k] !== v) return false;
  for (const raw of Array.isArray(selector.matchExpressions) ? selector.matchExpressions : []) {
    const r: Rec = isRecord(raw) ? raw : {};
    const has = Object.hasOwn(labels, str(r.key));
    const values: string[] = Array.isArray(r.values) ? r.values.map(String) : [];
    const value = labels[str(r.key)];
    if (r.operator === 'In' && !(has && values.includes(value!))) return false;
    if (r.operator === 'NotIn' && has && values.includes(value!)) return false;
    if (r.operator === 'Exists' && !has) return false;
    if (r.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

export function isValidOperatorSet(selector: Rec): boolean {
  return (Array.isArray(selector.matchExpressions) ? selector.matchExpressions : []).every((r: unknown) => isRecord(r) && OPERATORS.includes(r.operator));
}

/** The generated protobuf String() of *metav1.LabelSelector, which kube prints for a selector value. */
export function renderSelector(selector: unknown): RenderedValue {
  if (!isRecord(selector)) return { rendered: 'nil' };
  const labels: Rec = isRecord(selector.matchLabels) ? selector.matchLabels : {};
  const labelText = Object.keys(labels)
    .sort()
    .map((k) => `${k}: ${labels[k]},`)
    .join('');
  const exprs = (Array.isArray(selector.matchExpressions) ? selector.matchExpressions : [])
    .map((r: Rec) => `LabelSelectorRequirement{Key:${str(r?.key)},Operator:${str(r?.operator)},Values:[${(r?.values ?? []).join(' ')}],},`)
    .join('');
  return { rendered: `&LabelSelector{MatchLabels:map[string]string{${labelText}},MatchExpressions:[]LabelSelectorRequirement{${exprs}},}` };
}
