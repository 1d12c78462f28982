import { errors } from './errors.js';
import type { ResourceDef } from './resources.js';
import type { KubeObject } from './types.js';

/**
 * Field selectors as Kubernetes parses them (apimachinery `fields.ParseSelector`): comma-separated
 * `field=value`, `field==value` or `field!=value` terms that must all hold. Values may escape `\`, `,`
 * and `=` with a backslash; field names cannot be escaped. There are no set operators.
 */

export type FieldOperator = '=' | '==' | '!=';

export interface FieldRequirement {
  readonly field: string;
  readonly operator: FieldOperator;
  /** Unescaped. */
  readonly value: string;
}

export interface FieldSelector {
  readonly requirements: readonly FieldRequirement[];
}

/** Checked first to last at each position, so `!=` and `==` win over `=`. */
const TERM_OPERATORS: FieldOperator[] = ['!=', '==', '='];

/** Splits on commas that are not escaped; escapes are kept for unescapeValue. */
function splitTerms(selector: string): string[] {
  if (selector.length === 0) return [];
  const terms: string[] = [];
  let start = 0;
  let inSlash = false;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (inSlash) inSlash = false;
    else if (c === '\\') inSlash = true;
    else if (c === ',') {
      terms.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(selector.slice(start));
  return terms;
}

function splitTerm(term: string): { field: string; operator: FieldOperator; rhs: string } | undefined {
  for (let i = 0; i < term.length; i++) {
    for (const op of TERM_OPERATORS) {
      if (term.startsWith(op, i)) return { field: term.slice(0, i), operator: op, rhs: term.slice(i + op.length) };
    }
  }
  return undefined;
}

/** fields.UnescapeValue, with kube's messages (which print an unescaped rune as its code point). */
export function unescapeFieldValue(s: string): string {
  if (!/[\\,=]/.test(s)) return s;
  let out = '';
  let inSlash = false;
  for (const c of s) {
    if (inSlash) {
      if (c !== '\\' && c !== ',' && c !== '=') {
        throw errors.badRequest(`invalid field selector: invalid escape sequence: \\${c}`);
      }
      out += c;
      inSlash = false;
    } else if (c === '\\') {
      inSlash = true;
    } else if (c === ',' || c === '=') {
      throw errors.badRequest(`invalid field selector: unescaped character in value: ${c.codePointAt(0)}`);
    } else {
      out += c;
    }
  }
  if (inSlash) throw errors.badRequest('invalid field selector: invalid escape sequence: \\');
  return out;
}

/** fields.EscapeValue. */
export function escapeFieldValue(s: string): string {
  return s.replace(/[\\,=]/g, (c) => `\\${c}`);
}

/**
 * Parses the `fieldSelector` query parameter. Throws a 400 BadRequest with kube's message, e.g.
 * `invalid selector: 'a'; can't understand 'a'`. Terms are kept sorted, as kube sorts them.
 */
export function parseFieldSelector(s: string): FieldSelector {
  const parts = splitTerms(s).sort();
  const requirements: FieldRequirement[] = [];
  for (const part of parts) {
    if (part === '') continue;
    const term = splitTerm(part);
    if (!term) throw errors.badRequest(`invalid selector: '${s}'; can't understand '${part}'`);
    requirements.push({ field: term.field, operator: term.operator, value: unescapeFieldValue(term.rhs) });
  }
  return { requirements };
}

export function fieldSelectorToString(sel: FieldSelector): string {
  return sel.requirements.map((r) => `${r.field}${r.operator === '!=' ? '!=' : '='}${escapeFieldValue(r.value)}`).join(',');
}

type FieldGetter = (obj: KubeObject) => string;

function getterFor(def: ResourceDef, field: string): FieldGetter | undefined {
  if (field === 'metadata.name') return (o) => o.metadata?.name ?? '';
  if (field === 'metadata.namespace') return (o) => o.metadata?.namespace ?? '';
  const custom = def.fieldSelectors?.[field];
  if (!custom) return undefined;
  return (o) => custom(o as Record<string, unknown>) ?? '';
}

/**
 * A predicate for objects of `def`. Every kind supports metadata.name and metadata.namespace, plus
 * the fields in def.fieldSelectors; any other field is a 400 `field label not supported: <field>`,
 * raised here rather than at match time. A field the object leaves unset reads as "".
 */
export function fieldMatcher(def: ResourceDef, sel: FieldSelector): (obj: KubeObject) => boolean {
  const checks = sel.requirements.map((r) => {
    const get = getterFor(def, r.field);
    if (!get) throw errors.badRequest(`field label not supported: ${r.field}`);
    return r.operator === '!=' ? (o: KubeObject) => get(o) !== r.value : (o: KubeObject) => get(o) === r.value;
  });
  return (obj) => checks.every((check) => check(obj));
}

/** The value the selector requires `field` to equal, if it pins one (e.g. spec.nodeName for a kubelet). */
export function requiresExactMatch(sel: FieldSelector, field: string): string | undefined {
  for (const r of sel.requirements) if (r.field === field && r.operator !== '!=') return r.value;
  return undefined;
}
