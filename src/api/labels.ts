import { errors } from './errors.js';
import { isLabelValue as validateLabelValue, isQualifiedName as validateLabelKey } from './validation/names.js';

export { validateLabelKey, validateLabelValue };

/**
 * Label selectors as Kubernetes parses and matches them (apimachinery `labels.Parse`,
 * `metav1.LabelSelectorAsSelector`). Label keys and values are checked with the name validators of
 * src/api/validation/names.ts.
 *
 * A selector is a list of requirements that must all hold. The empty list selects everything; a
 * selector built from a missing metav1.LabelSelector (`null`/`undefined`) selects nothing.
 */

/** Operators as apimachinery's `selection.Operator` spells them. */
export type LabelOperator = 'in' | 'notin' | '=' | '==' | '!=' | 'exists' | '!' | 'gt' | 'lt';

export interface Requirement {
  readonly key: string;
  readonly operator: LabelOperator;
  /** Sorted and de-duplicated, as kube stores them; empty for `exists` and `!`. */
  readonly values: readonly string[];
}

export interface LabelSelector {
  /** Sorted by key. */
  readonly requirements: readonly Requirement[];
  /** True only for the selector of an absent metav1.LabelSelector, which matches no object. */
  readonly matchesNothing?: boolean;
}

/** The metav1.LabelSelector object form used in workload specs. */
export interface LabelSelectorObject {
  matchLabels?: Record<string, string> | null;
  matchExpressions?: Array<{ key: string; operator: string; values?: string[] | null }> | null;
}

export const EVERYTHING: LabelSelector = Object.freeze({ requirements: Object.freeze([]) as readonly Requirement[] });
export const NOTHING: LabelSelector = Object.freeze({ requirements: Object.freeze([]) as readonly Requirement[], matchesNothing: true });

// ---- requirement construction (labels.NewRequirement) ----

/** Go's %q for the strings that reach error messages. */
function quote(s: string): string {
  return JSON.stringify(s);
}

function goStringSlice(values: readonly string[]): string {
  return `[]string{${values.map(quote).join(', ')}}`;
}

/** One field.Error rendered as `<path>: Invalid value: <value>: <detail>`. */
function invalid(path: string, value: string, detail: string): string {
  return `${path}: Invalid value: ${value}: ${detail}`;
}

/** field.ErrorList.ToAggregate().Error(): one message alone, several in brackets; duplicates dropped. */
function aggregate(msgs: string[]): string {
  const unique = [...new Set(msgs)];
  return unique.length === 1 ? unique[0]! : `[${unique.join(', ')}]`;
}

const INT64_RE = /^[+-]?[0-9]+$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

function parseInt64(s: string): bigint | undefined {
  if (!INT64_RE.test(s)) return undefined;
  const n = BigInt(s);
  return n < INT64_MIN || n > INT64_MAX ? undefined : n;
}

/** labels.NewRequirement: the requirement, or kube's aggregated error message when it is invalid. */
function newRequirement(key: string, operator: LabelOperator, values: string[]): Requirement | string {
  const errs: string[] = [];
  const keyErrs = validateLabelKey(key);
  if (keyErrs.length > 0) errs.push(invalid('key', quote(key), keyErrs.join('; ')));
  switch (operator) {
    case 'in':
    case 'notin':
      if (values.length === 0) errs.push(invalid('values', goStringSlice(values), "for 'in', 'notin' operators, values set can't be empty"));
      break;
    case '=':
    case '==':
    case '!=':
      if (values.length !== 1) errs.push(invalid('values', goStringSlice(values), 'exact-match compatibility requires one single value'));
      break;
    case 'exists':
    case '!':
      if (values.length !== 0) errs.push(invalid('values', goStringSlice(values), 'values set must be empty for exists and does not exist'));
      break;
    case 'gt':
    case 'lt':
      if (values.length !== 1) errs.push(invalid('values', goStringSlice(values), "for 'Gt', 'Lt' operators, exactly one value is required"));
      values.forEach((v, i) => {
        if (parseInt64(v) === undefined) errs.push(invalid(`values[${i}]`, quote(v), "for 'Gt', 'Lt' operators, the value must be an integer"));
      });
      break;
  }
  values.forEach((v, i) => {
    const valueErrs = validateLabelValue(v);
    if (valueErrs.length > 0) errs.push(invalid(`values[${i}][${key}]`, quote(v), valueErrs.join('; ')));
  });
  return errs.length > 0 ? aggregate(errs) : { key, operator, values };
}

function sortedUnique(values: Iterable<string>): string[] {
  return [...new Set(values)].sort(compareStrings);
}

/** Byte-wise ordering, as Go's sort.Strings. */
function compareStrings(a: string, b: string): number {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return Buffer.compare(ba, bb);
}

function sortByKey(reqs: Requirement[]): Requirement[] {
  return reqs.sort((a, b) => compareStrings(a.key, b.key));
}

// ---- lexer and parser (labels.Parse) ----

type Token =
  | 'eos'
  | ')'
  | ','
  | '!'
  | '=='
  | '='
  | '>'
  | 'identifier'
  | 'in'
  | '<'
  | '!='
  | 'notin'
  | '(';

const LITERAL_TOKENS: Record<string, Token> = {
  ')': ')',
  ',': ',',
  '!': '!',
  '==': '==',
  '=': '=',
  '>': '>',
  in: 'in',
  '<': '<',
  '!=': '!=',
  notin: 'notin',
  '(': '(',
};

interface Item {
  tok: Token;
  lit: string;
}

const isWhitespace = (ch: string): boolean => ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n';
const isSpecial = (ch: string): boolean => '=!(),><'.includes(ch);

function lex(s: string): Item[] {
  const items: Item[] = [];
  let pos = 0;
  for (;;) {
    while (pos < s.length && isWhitespace(s[pos]!)) pos++;
    if (pos >= s.length) {
      items.push({ tok: 'eos', lit: '' });
      return items;
    }
    if (isSpecial(s[pos]!)) {
      // Longest run of special characters that still forms a token, as kube's scanSpecialSymbol. Each
      // special character is a token by itself, so the run always yields one.
      let buffer = '';
      let last: Item | undefined;
      while (pos < s.length && isSpecial(s[pos]!)) {
        buffer += s[pos];
        const tok = LITERAL_TOKENS[buffer];
        if (!tok) break;
        last = { tok, lit: buffer };
        pos++;
      }
      items.push(last!);
    } else {
      const start = pos;
      while (pos < s.length && !isSpecial(s[pos]!) && !isWhitespace(s[pos]!)) pos++;
      const lit = s.slice(start, pos);
      items.push({ tok: LITERAL_TOKENS[lit] ?? 'identifier', lit });
    }
  }
}

const BINARY_OPERATORS = ['in', 'notin', '=', '==', '!=', 'gt', 'lt'];

class SelectorSyntaxError extends Error {}

class Parser {
  private position = 0;
  constructor(private readonly items: Item[]) {}

  /** In value position the keywords `in` and `notin` are plain identifiers. */
  private lookahead(values: boolean): Item {
    const it = this.items[Math.min(this.position, this.items.length - 1)]!;
    return values && (it.tok === 'in' || it.tok === 'notin') ? { tok: 'identifier', lit: it.lit } : it;
  }

  private consume(values: boolean): Item {
    const it = this.lookahead(values);
    this.position++;
    return it;
  }

  parse(): Requirement[] {
    const reqs: Requirement[] = [];
    for (;;) {
      const { tok, lit } = this.lookahead(true);
      if (tok === 'identifier' || tok === '!') {
        reqs.push(this.parseRequirement());
        const next = this.consume(true);
        if (next.tok === 'eos') return reqs;
        if (next.tok === ',') {
          const after = this.lookahead(true);
          if (after.tok !== 'identifier' && after.tok !== '!') {
            throw new SelectorSyntaxError(`found '${after.lit}', expected: identifier after ','`);
          }
        } else {
          throw new SelectorSyntaxError(`found '${next.lit}', expected: ',' or 'end of string'`);
        }
      } else if (tok === 'eos') {
        return reqs;
      } else {
        throw new SelectorSyntaxError(`found '${lit}', expected: !, identifier, or 'end of string'`);
      }
    }
  }

  private parseRequirement(): Requirement {
    let operator: LabelOperator | undefined;
    let it = this.consume(true);
    if (it.tok === '!') {
      operator = '!';
      it = this.consume(true);
    }
    if (it.tok !== 'identifier') throw requirementError(`found '${it.lit}', expected: identifier`);
    const key = it.lit;
    const keyErrs = validateLabelKey(key);
    if (keyErrs.length > 0) throw requirementError(invalid('<nil>', quote(key), keyErrs.join('; ')));
    const next = this.lookahead(true).tok;
    if (operator === undefined && (next === 'eos' || next === ',')) operator = 'exists';
    if (operator === 'exists' || operator === '!') return checked(newRequirement(key, operator, []));

    const opItem = this.consume(false);
    const op = OPERATOR_TOKENS[opItem.tok];
    if (!op) throw requirementError(`found '${opItem.lit}', expected: ${BINARY_OPERATORS.join(', ')}`);
    const values = op === 'in' || op === 'notin' ? this.parseValues() : this.parseExactValue();
    return checked(newRequirement(key, op, sortedUnique(values)));
  }

  private parseValues(): string[] {
    const open = this.consume(true);
    if (open.tok !== '(') throw requirementError(`found '${open.lit}' expected: '('`);
    const { tok, lit } = this.lookahead(true);
    if (tok === 'identifier' || tok === ',') {
      const values = this.parseIdentifiersList();
      if (this.consume(true).tok !== ')') throw requirementError(`found '${lit}', expected: ')'`);
      return values;
    }
    if (tok === ')') {
      this.consume(true);
      return [''];
    }
    throw requirementError(`found '${lit}', expected: ',', ')' or identifier`);
  }

  private parseIdentifiersList(): string[] {
    const values = new Set<string>();
    for (;;) {
      const { tok, lit } = this.consume(true);
      if (tok === 'identifier') {
        values.add(lit);
        const next = this.lookahead(true);
        if (next.tok === ',') continue;
        if (next.tok === ')') return [...values];
        throw requirementError(`found '${next.lit}', expected: ',' or ')'`);
      } else if (tok === ',') {
        // Empty elements ("(,a)", "(a,,b)", "(a,)") stand for the empty value.
        if (values.size === 0) values.add('');
        const next = this.lookahead(true).tok;
        if (next === ')') {
          values.add('');
          return [...values];
        }
        if (next === ',') {
          this.consume(true);
          values.add('');
        }
      } else {
        throw requirementError(`found '${lit}', expected: ',', or identifier`);
      }
    }
  }

  private parseExactValue(): string[] {
    const { tok } = this.lookahead(true);
    if (tok === 'eos' || tok === ',') return [''];
    const it = this.consume(true);
    if (it.tok === 'identifier') return [it.lit];
    throw requirementError(`found '${it.lit}', expected: identifier`);
  }
}

const OPERATOR_TOKENS: Partial<Record<Token, LabelOperator>> = {
  in: 'in',
  '=': '=',
  '==': '==',
  '>': 'gt',
  '<': 'lt',
  notin: 'notin',
  '!=': '!=',
};

function requirementError(msg: string): SelectorSyntaxError {
  return new SelectorSyntaxError(`unable to parse requirement: ${msg}`);
}

function checked(r: Requirement | string): Requirement {
  if (typeof r === 'string') throw requirementError(r);
  return r;
}

/**
 * Parses the `labelSelector` query parameter. Throws a 400 BadRequest carrying kube's message, e.g.
 * `unable to parse requirement: found '', expected: identifier`.
 */
export function parseLabelSelector(s: string): LabelSelector {
  try {
    return { requirements: sortByKey(new Parser(lex(s)).parse()) };
  } catch (e) {
    if (e instanceof SelectorSyntaxError) throw errors.badRequest(e.message);
    throw e;
  }
}

// ---- metav1.LabelSelector ----

const EXPRESSION_OPERATORS: Record<string, LabelOperator> = { In: 'in', NotIn: 'notin', Exists: 'exists', DoesNotExist: '!' };

/**
 * metav1.LabelSelectorAsSelector: an absent selector selects nothing, an empty one everything.
 * Throws a 400 BadRequest for an unknown operator or invalid key/values, with kube's message.
 */
export function fromLabelSelector(obj: LabelSelectorObject | null | undefined): LabelSelector {
  if (obj === null || obj === undefined) return NOTHING;
  const reqs: Requirement[] = [];
  for (const [k, v] of Object.entries(obj.matchLabels ?? {})) {
    const r = newRequirement(k, '=', [v]);
    if (typeof r === 'string') throw errors.badRequest(r);
    reqs.push(r);
  }
  for (const expr of obj.matchExpressions ?? []) {
    const op = EXPRESSION_OPERATORS[expr.operator];
    if (!op) throw errors.badRequest(`${quote(expr.operator)} is not a valid label selector operator`);
    const r = newRequirement(expr.key, op, op === 'in' || op === 'notin' ? sortedUnique(expr.values ?? []) : [...(expr.values ?? [])]);
    if (typeof r === 'string') throw errors.badRequest(r);
    reqs.push(r);
  }
  return { requirements: sortByKey(reqs) };
}

/** labels.SelectorFromSet: every key must equal its value; the empty set selects everything. */
export function selectorFromSet(set: Record<string, string> | null | undefined): LabelSelector {
  const reqs = Object.entries(set ?? {}).map(([key, v]): Requirement => ({ key, operator: '=', values: [v] }));
  return { requirements: sortByKey(reqs) };
}

/** True when the selector places no restriction (the empty, not the absent, selector). */
export function isEverything(sel: LabelSelector): boolean {
  return !sel.matchesNothing && sel.requirements.length === 0;
}

// ---- matching ----

function requirementMatches(r: Requirement, labels: Record<string, string>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, r.key);
  switch (r.operator) {
    case 'in':
    case '=':
    case '==':
      return has && r.values.includes(labels[r.key]!);
    case 'notin':
    case '!=':
      return !has || !r.values.includes(labels[r.key]!);
    case 'exists':
      return has;
    case '!':
      return !has;
    case 'gt':
    case 'lt': {
      if (!has || r.values.length !== 1) return false;
      const actual = parseInt64(labels[r.key]!);
      const bound = parseInt64(r.values[0]!);
      if (actual === undefined || bound === undefined) return false;
      return r.operator === 'gt' ? actual > bound : actual < bound;
    }
  }
}

export function matches(sel: LabelSelector, labels: Record<string, string> | undefined | null): boolean {
  if (sel.matchesNothing) return false;
  const set = labels ?? {};
  return sel.requirements.every((r) => requirementMatches(r, set));
}

// ---- printing ----

function requirementToString(r: Requirement): string {
  const prefix = r.operator === '!' ? '!' : '';
  switch (r.operator) {
    case 'exists':
    case '!':
      return `${prefix}${r.key}`;
    case 'in':
    case 'notin':
      return `${r.key} ${r.operator} (${r.values.join(',')})`;
    case 'gt':
      return `${r.key}>${r.values.join(',')}`;
    case 'lt':
      return `${r.key}<${r.values.join(',')}`;
    default:
      return `${r.key}${r.operator}${r.values.join(',')}`;
  }
}

/** The canonical string kube prints for a selector, e.g. `app=web,tier in (a,b),!legacy`. */
export function selectorToString(sel: LabelSelector): string {
  return sel.requirements.map(requirementToString).join(',');
}

/** labels.FormatLabels: `k=v` pairs sorted by key, or `<none>` for an empty set. */
export function formatLabels(set: Record<string, string> | null | undefined): string {
  const keys = Object.keys(set ?? {}).sort(compareStrings);
  if (keys.length === 0) return '<none>';
  return keys.map((k) => `${k}=${set![k]}`).join(',');
}
