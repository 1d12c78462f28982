/**
 * resource.Quantity: fixed-point amounts such as "250m" CPU or "1.5Gi" memory.
 *
 * A Quantity holds its exact value as a count of nano-units (10^-9), which is the finest precision
 * Kubernetes keeps: parsing rounds anything finer up, away from zero, as kube does. It also keeps the
 * format its string was written in, because the canonical form depends on it ("1536Mi" stays binary,
 * "1500m" stays decimal). Arithmetic and comparison are exact.
 *
 * Grammar (apimachinery resource/quantity.go):
 *   <quantity>        ::= <signedNumber><suffix>
 *   <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
 *   <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
 *   <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
 *   <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>
 *   <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
 */

export type QuantityFormat = 'DecimalSI' | 'BinarySI' | 'DecimalExponent';

export interface Quantity {
  /** The exact value in units of 10^-9. */
  readonly nano: bigint;
  readonly format: QuantityFormat;
}

export class QuantityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QuantityError';
  }
}

/** kube's ErrFormatWrong / ErrNumeric / ErrSuffix texts, which validation messages repeat. */
export const QUANTITY_FORMAT_MESSAGE = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
export const QUANTITY_NUMERIC_MESSAGE = 'unable to parse numeric part of quantity';
export const QUANTITY_SUFFIX_MESSAGE = "unable to parse quantity's suffix";

const NANO_PER_UNIT = 10n ** 9n;
const NANO_PER_MILLI = 10n ** 6n;
/** Decimal exponents beyond this are refused rather than expanded into huge integers. */
const MAX_DECIMAL_EXPONENT = 1000;

const DECIMAL_SUFFIXES: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const BINARY_SUFFIXES: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const DECIMAL_SUFFIX_BY_EXPONENT = new Map(Object.entries(DECIMAL_SUFFIXES).map(([s, e]) => [e, s]));
const BINARY_SUFFIX_BY_EXPONENT = new Map(Object.entries(BINARY_SUFFIXES).map(([s, e]) => [e, s]));
const MAX_BINARY_EXPONENT = 60;

const SUFFIX_CHARS = 'eEinumkKMGTP';
const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';

interface Pieces {
  negative: boolean;
  num: string;
  denom: string;
  suffix: string;
}

/** parseQuantityString: splits sign, integer digits, fraction digits and suffix. */
function split(str: string): Pieces {
  let pos = 0;
  let negative = false;
  if (str[0] === '-' || str[0] === '+') {
    negative = str[0] === '-';
    pos++;
  }
  const numStart = pos;
  while (isDigit(str[pos])) pos++;
  const num = str.slice(numStart, pos);
  let denom = '';
  if (str[pos] === '.') {
    pos++;
    const denomStart = pos;
    while (isDigit(str[pos])) pos++;
    denom = str.slice(denomStart, pos);
  }
  // kube reads a number without digits ("-", ".", "Mi") as zero; refusing it catches typos.
  if (num === '' && denom === '') throw new QuantityError(QUANTITY_FORMAT_MESSAGE);
  const suffixStart = pos;
  while (pos < str.length && SUFFIX_CHARS.includes(str[pos]!)) pos++;
  if (str[pos] === '-' || str[pos] === '+') pos++;
  while (isDigit(str[pos])) pos++;
  if (pos !== str.length) throw new QuantityError(QUANTITY_FORMAT_MESSAGE);
  return { negative, num, denom, suffix: str.slice(suffixStart) };
}

function interpretSuffix(suffix: string): { base: 2 | 10; exponent: number; format: QuantityFormat } {
  const dec = DECIMAL_SUFFIXES[suffix];
  if (dec !== undefined) return { base: 10, exponent: dec, format: 'DecimalSI' };
  const bin = BINARY_SUFFIXES[suffix];
  if (bin !== undefined) return { base: 2, exponent: bin, format: 'BinarySI' };
  if (suffix.length > 1 && (suffix[0] === 'e' || suffix[0] === 'E') && /^[+-]?[0-9]+$/.test(suffix.slice(1))) {
    const exponent = Number(suffix.slice(1));
    if (Math.abs(exponent) > MAX_DECIMAL_EXPONENT) throw new QuantityError(`quantity exponent out of range: ${suffix}`);
    return { base: 10, exponent, format: 'DecimalExponent' };
  }
  throw new QuantityError(QUANTITY_SUFFIX_MESSAGE);
}

/** Integer division rounding away from zero, the rounding kube applies whenever it drops precision. */
function divAwayFromZero(n: bigint, d: bigint): bigint {
  const q = n / d;
  if (q * d === n) return q;
  return n < 0n ? q - 1n : q + 1n;
}

/**
 * Parses a quantity as found in JSON: a string such as "250m", "1.5Gi", "1e3", or a bare number.
 * Throws QuantityError with kube's message when it is malformed.
 */
export function parseQuantity(input: string | number): Quantity {
  const str = typeof input === 'number' ? numberToString(input) : input;
  if (str.length === 0) throw new QuantityError(QUANTITY_FORMAT_MESSAGE);
  const { negative, num, denom, suffix } = split(str);
  const { base, exponent, format } = interpretSuffix(suffix);

  // value = digits * 10^scale10 * 2^exponent2
  let digits = BigInt(num + denom);
  let scale10 = -denom.length;
  if (base === 10) scale10 += exponent;
  else digits <<= BigInt(exponent);

  const nanoScale = scale10 + 9;
  let nano = nanoScale >= 0 ? digits * 10n ** BigInt(nanoScale) : divAwayFromZero(digits, 10n ** BigInt(-nanoScale));
  if (negative) nano = -nano;
  return { nano, format };
}

/** Like parseQuantity, but undefined instead of an error. */
export function tryParseQuantity(input: string | number): Quantity | undefined {
  try {
    return parseQuantity(input);
  } catch (e) {
    if (e instanceof QuantityError) return undefined;
    throw e;
  }
}

function numberToString(n: number): string {
  if (!Number.isFinite(n)) throw new QuantityError(QUANTITY_NUMERIC_MESSAGE);
  return String(n);
}

function toBigInt(n: number | bigint): bigint {
  if (typeof n === 'bigint') return n;
  if (!Number.isInteger(n)) throw new QuantityError(`not an integer: ${n}`);
  return BigInt(n);
}

/** A quantity of `milli` thousandths, e.g. fromMilli(250) is "250m". */
export function fromMilli(milli: number | bigint, format: QuantityFormat = 'DecimalSI'): Quantity {
  return { nano: toBigInt(milli) * NANO_PER_MILLI, format };
}

/** A quantity of whole units, e.g. fromValue(1 << 30, 'BinarySI') is "1Gi". */
export function fromValue(value: number | bigint, format: QuantityFormat = 'DecimalSI'): Quantity {
  return { nano: toBigInt(value) * NANO_PER_UNIT, format };
}

export const ZERO: Quantity = Object.freeze({ nano: 0n, format: 'DecimalSI' });

export function isZero(q: Quantity): boolean {
  return q.nano === 0n;
}

/** Sum, keeping a's format unless a is zero (Quantity.Add). */
export function add(a: Quantity, b: Quantity): Quantity {
  return { nano: a.nano + b.nano, format: a.nano === 0n ? b.format : a.format };
}

/** Difference, with the same format rule as add (Quantity.Sub). */
export function sub(a: Quantity, b: Quantity): Quantity {
  return { nano: a.nano - b.nano, format: a.nano === 0n ? b.format : a.format };
}

/** Sum of many, e.g. container requests; ZERO for none. */
export function sum(quantities: Iterable<Quantity>): Quantity {
  let total = ZERO;
  for (const q of quantities) total = add(total, q);
  return total;
}

/** -1, 0 or 1 as a is less than, equal to, or greater than b. Exact. */
export function compare(a: Quantity, b: Quantity): -1 | 0 | 1 {
  return a.nano < b.nano ? -1 : a.nano > b.nano ? 1 : 0;
}

export function max(a: Quantity, b: Quantity): Quantity {
  return compare(a, b) >= 0 ? a : b;
}

/** MilliValue: thousandths, rounded away from zero ("1n" is 1). Exact as a bigint. */
export function milliValue(q: Quantity): bigint {
  return divAwayFromZero(q.nano, NANO_PER_MILLI);
}

/** Value: whole units (bytes for memory), rounded away from zero. Exact as a bigint. */
export function value(q: Quantity): bigint {
  return divAwayFromZero(q.nano, NANO_PER_UNIT);
}

/** milliValue as a number; exact below 2^53 milli-units (9 billion cores). */
export function toMilli(q: Quantity): number {
  return Number(milliValue(q));
}

/** value as a number, e.g. bytes; exact below 2^53 (8 PiB). */
export function toBytes(q: Quantity): number {
  return Number(value(q));
}

/** The approximate value as a float, for metrics and ratios. */
export function toNumber(q: Quantity): number {
  const whole = q.nano / NANO_PER_UNIT;
  return Number(whole) + Number(q.nano - whole * NANO_PER_UNIT) / 1e9;
}

/** Strips factors of `base` from n, returning what is left and how many were removed. */
function removeFactors(n: bigint, base: bigint): [bigint, number] {
  let times = 0;
  let m = n < 0n ? -n : n;
  while (m >= base && m % base === 0n) {
    m /= base;
    times++;
  }
  return [n < 0n ? -m : m, times];
}

function decimalSuffix(exponent: number, format: QuantityFormat): string {
  if (format === 'DecimalExponent') return exponent === 0 ? '' : `e${exponent}`;
  return DECIMAL_SUFFIX_BY_EXPONENT.get(exponent)!;
}

/**
 * The canonical form Kubernetes serializes (Quantity.String): no precision lost, no fraction digits,
 * the largest suffix that keeps the mantissa whole. Binary quantities under 1024 or with a fraction
 * print as decimal ("0.5Gi" is "512Mi", "1.5Ki" is "1536", "512m" stays "512m").
 */
export function formatQuantity(q: Quantity): string {
  if (q.nano === 0n) return '0';
  let format = q.format;
  if (format === 'BinarySI') {
    const small = q.nano > -1024n * NANO_PER_UNIT && q.nano < 1024n * NANO_PER_UNIT;
    if (small || q.nano % NANO_PER_UNIT !== 0n) format = 'DecimalSI';
  }
  if (format === 'BinarySI') {
    let [mantissa, times] = removeFactors(q.nano / NANO_PER_UNIT, 1024n);
    let exponent = times * 10;
    if (exponent > MAX_BINARY_EXPONENT) {
      mantissa *= 1024n ** BigInt((exponent - MAX_BINARY_EXPONENT) / 10);
      exponent = MAX_BINARY_EXPONENT;
    }
    return `${mantissa}${BINARY_SUFFIX_BY_EXPONENT.get(exponent) ?? ''}`;
  }
  let [mantissa, times] = removeFactors(q.nano, 10n);
  let exponent = times - 9;
  const adjust = ((exponent % 3) + 3) % 3;
  mantissa *= 10n ** BigInt(adjust);
  exponent -= adjust;
  if (format === 'DecimalSI' && exponent > 18) {
    mantissa *= 10n ** BigInt(exponent - 18);
    exponent = 18;
  }
  return `${mantissa}${decimalSuffix(exponent, format)}`;
}

/** Parses and re-prints in canonical form: "1000m" is "1", "0.5" is "500m". */
export function canonicalQuantity(input: string | number): string {
  return formatQuantity(parseQuantity(input));
}
