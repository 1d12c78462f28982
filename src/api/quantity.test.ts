import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  add,
  canonicalQuantity,
  compare,
  formatQuantity,
  fromMilli,
  fromValue,
  milliValue,
  parseQuantity,
  QUANTITY_FORMAT_MESSAGE,
  QUANTITY_SUFFIX_MESSAGE,
  QuantityError,
  sub,
  sum,
  toBytes,
  toMilli,
  toNumber,
  tryParseQuantity,
  value,
} from './quantity.js';

describe('parseQuantity', () => {
  it('reads decimal SI suffixes exactly', () => {
    assert.equal(parseQuantity('250m').nano, 250_000_000n);
    assert.equal(parseQuantity('1').nano, 1_000_000_000n);
    assert.equal(parseQuantity('2k').nano, 2_000n * 10n ** 9n);
    assert.equal(parseQuantity('3M').nano, 3n * 10n ** 15n);
    assert.equal(parseQuantity('1E').nano, 10n ** 27n);
    assert.equal(parseQuantity('5n').nano, 5n);
    assert.equal(parseQuantity('7u').nano, 7_000n);
    assert.equal(parseQuantity('1k').format, 'DecimalSI');
  });

  it('reads binary SI suffixes exactly', () => {
    assert.equal(toBytes(parseQuantity('1Ki')), 1024);
    assert.equal(toBytes(parseQuantity('1.5Gi')), 1.5 * 2 ** 30);
    assert.equal(value(parseQuantity('2Ei')), 2n * 2n ** 60n);
    assert.equal(parseQuantity('64Mi').format, 'BinarySI');
  });

  it('reads exponents, signs and fractions', () => {
    assert.equal(toBytes(parseQuantity('1e3')), 1000);
    assert.equal(toBytes(parseQuantity('1E3')), 1000, 'E followed by digits is an exponent, not exa');
    assert.equal(parseQuantity('1e3').format, 'DecimalExponent');
    assert.equal(toMilli(parseQuantity('1.5e-3')), 2, 'milli values round up');
    assert.equal(parseQuantity('-1.5').nano, -1_500_000_000n);
    assert.equal(parseQuantity('+2').nano, 2_000_000_000n);
    assert.equal(parseQuantity('.5').nano, 500_000_000n);
    assert.equal(parseQuantity('5.').nano, 5_000_000_000n);
    assert.equal(parseQuantity('007').nano, 7_000_000_000n);
  });

  it('accepts JSON numbers', () => {
    assert.equal(toMilli(parseQuantity(2)), 2000);
    assert.equal(toMilli(parseQuantity(0.1)), 100);
    assert.equal(toBytes(parseQuantity(1e21)), 1e21);
  });

  it('rounds precision finer than nano up, away from zero', () => {
    assert.equal(parseQuantity('0.1n').nano, 1n);
    assert.equal(parseQuantity('1.0000000001').nano, 1_000_000_001n);
    assert.equal(parseQuantity('-0.1n').nano, -1n);
  });

  it('rejects malformed input with kube messages', () => {
    for (const bad of ['', ' 1', '1 ', 'abc', '1.2.3', '--1', '1Mix', '1Gb', '-', '.', 'Mi']) {
      assert.throws(() => parseQuantity(bad), { name: 'QuantityError', message: QUANTITY_FORMAT_MESSAGE }, JSON.stringify(bad));
    }
    for (const bad of ['1K', '1ki', '1e', '1mi', '1Ki5']) {
      assert.throws(() => parseQuantity(bad), { name: 'QuantityError', message: QUANTITY_SUFFIX_MESSAGE }, JSON.stringify(bad));
    }
    assert.throws(() => parseQuantity(Number.NaN), QuantityError);
    assert.equal(tryParseQuantity('x'), undefined);
    assert.equal(tryParseQuantity('100m')?.nano, 100_000_000n);
  });
});

describe('formatQuantity', () => {
  const cases: Array<[string, string]> = [
    ['0', '0'],
    ['0m', '0'],
    ['0Gi', '0'],
    ['1000m', '1'],
    ['1500m', '1500m'],
    ['0.5', '500m'],
    ['1.5', '1500m'],
    ['100m', '100m'],
    ['2000', '2k'],
    ['1500', '1500'],
    ['12000000', '12M'],
    ['1536Mi', '1536Mi'],
    ['1.5Gi', '1536Mi'],
    ['1024Ki', '1Mi'],
    ['1024Mi', '1Gi'],
    ['0.5Gi', '512Mi'],
    ['1.5Ki', '1536'],
    ['512', '512'],
    ['100Ki', '100Ki'],
    ['1e3', '1e3'],
    ['1.5e3', '1500'],
    ['1e-3', '1e-3'],
    ['1.5e-3', '1500e-6'],
    ['12e6', '12e6'],
    ['-1.5', '-1500m'],
    ['-2Gi', '-2Gi'],
    ['0.1n', '1n'],
    ['1000000u', '1'],
    ['1000E', '1000E'],
  ];
  for (const [input, canonical] of cases) {
    it(`${input} → ${canonical}`, () => {
      assert.equal(canonicalQuantity(input), canonical);
    });
  }

  it('prints binary quantities with a fraction of a byte as decimal', () => {
    assert.equal(formatQuantity(add(parseQuantity('1Gi'), parseQuantity('500m'))), '1073741824500m');
  });
});

describe('arithmetic and comparison', () => {
  it('compares across formats exactly', () => {
    assert.equal(compare(parseQuantity('1'), parseQuantity('1000m')), 0);
    assert.equal(compare(parseQuantity('1Gi'), parseQuantity('1G')), 1);
    assert.equal(compare(parseQuantity('999m'), parseQuantity('1')), -1);
    assert.equal(compare(parseQuantity('1e3'), parseQuantity('1k')), 0);
    assert.equal(compare(parseQuantity('-1'), parseQuantity('0')), -1);
  });

  it('sums container requests and pod overhead against allocatable', () => {
    const requests = sum(['250m', '500m', '100m'].map((q) => parseQuantity(q)));
    const withOverhead = add(requests, parseQuantity('50m'));
    assert.equal(formatQuantity(withOverhead), '900m');
    assert.equal(toMilli(withOverhead), 900);
    assert.equal(compare(withOverhead, parseQuantity('1')), -1);
    assert.equal(compare(add(withOverhead, parseQuantity('101m')), parseQuantity('1')), 1);
    const memory = sum(['1.5Gi', '512Mi'].map((q) => parseQuantity(q)));
    assert.equal(formatQuantity(memory), '2Gi');
    assert.equal(toBytes(memory), 2 * 2 ** 30);
  });

  it('keeps the first operand format unless it is zero', () => {
    assert.equal(add(parseQuantity('1Gi'), parseQuantity('1G')).format, 'BinarySI');
    assert.equal(add(parseQuantity('0'), parseQuantity('1Gi')).format, 'BinarySI');
    assert.equal(formatQuantity(sub(parseQuantity('2Gi'), parseQuantity('1Gi'))), '1Gi');
    assert.equal(formatQuantity(sub(parseQuantity('1'), parseQuantity('1500m'))), '-500m');
  });

  it('rounds milli and whole values away from zero', () => {
    assert.equal(milliValue(parseQuantity('1n')), 1n);
    assert.equal(milliValue(parseQuantity('-1n')), -1n);
    assert.equal(value(parseQuantity('100m')), 1n);
    assert.equal(value(parseQuantity('2')), 2n);
    assert.equal(toNumber(parseQuantity('1500m')), 1.5);
  });

  it('builds quantities from numbers', () => {
    assert.equal(formatQuantity(fromMilli(250)), '250m');
    assert.equal(formatQuantity(fromMilli(3000)), '3');
    assert.equal(formatQuantity(fromValue(2 ** 30, 'BinarySI')), '1Gi');
    assert.equal(formatQuantity(fromValue(1_000_000)), '1M');
    assert.throws(() => fromMilli(1.5), QuantityError);
  });
});
