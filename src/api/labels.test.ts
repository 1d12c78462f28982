import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ApiError } from './errors.js';
import {
  formatLabels,
  fromLabelSelector,
  isEverything,
  matches,
  parseLabelSelector,
  selectorFromSet,
  selectorToString,
  validateLabelKey,
  validateLabelValue,
} from './labels.js';

function parseError(s: string): ApiError {
  try {
    parseLabelSelector(s);
  } catch (e) {
    assert.ok(e instanceof ApiError, `expected ApiError, got ${String(e)}`);
    assert.equal(e.code, 400);
    assert.equal(e.reason, 'BadRequest');
    return e;
  }
  assert.fail(`expected ${JSON.stringify(s)} to be rejected`);
}

describe('parseLabelSelector', () => {
  it('parses every operator and prints the canonical form sorted by key', () => {
    const sel = parseLabelSelector('tier notin (cache, db),app=web,env==prod,version!=v1,!legacy,gpu,zone in (b,a),n>3,m<10');
    assert.equal(selectorToString(sel), 'app=web,env==prod,gpu,!legacy,m<10,n>3,tier notin (cache,db),version!=v1,zone in (a,b)');
    assert.deepEqual(
      sel.requirements.map((r) => r.operator),
      ['=', '==', 'exists', '!', 'lt', 'gt', 'notin', '!=', 'in'],
    );
  });

  it('treats whitespace as a delimiter only', () => {
    assert.equal(selectorToString(parseLabelSelector('  app =  web ,\ttier in(a ,b )\n')), 'app=web,tier in (a,b)');
  });

  it('accepts prefixed keys and empty values', () => {
    const sel = parseLabelSelector('app.kubernetes.io/name=atoll,empty=,x in (,a)');
    assert.deepEqual(sel.requirements.find((r) => r.key === 'empty')?.values, ['']);
    assert.deepEqual(sel.requirements.find((r) => r.key === 'x')?.values, ['', 'a']);
    assert.ok(matches(sel, { 'app.kubernetes.io/name': 'atoll', empty: '', x: '' }));
  });

  it('reads in and notin as values after an operator', () => {
    const sel = parseLabelSelector('mode=in,other in (notin)');
    assert.ok(matches(sel, { mode: 'in', other: 'notin' }));
  });

  it('parses the empty selector as everything', () => {
    const sel = parseLabelSelector('');
    assert.ok(isEverything(sel));
    assert.ok(matches(sel, undefined));
  });

  it('reports syntax errors with kube messages', () => {
    assert.equal(parseError('app=web,').message, "found '', expected: identifier after ','");
    assert.equal(parseError('app web').message, "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt");
    assert.equal(parseError('app=web db').message, "found 'db', expected: ',' or 'end of string'");
    assert.equal(parseError('=web').message, "found '=', expected: !, identifier, or 'end of string'");
    assert.equal(parseError('app in a').message, "unable to parse requirement: found 'a' expected: '('");
    assert.equal(parseError('app in (a b)').message, "unable to parse requirement: found 'b', expected: ',' or ')'");
    assert.equal(parseError('app (a)').message, "unable to parse requirement: found '(', expected: in, notin, =, ==, !=, gt, lt");
    assert.equal(parseError('!').message, "unable to parse requirement: found '', expected: identifier");
    assert.equal(parseError('!app=x').message, "found '=', expected: ',' or 'end of string'");
  });

  it('validates keys and values as kube does', () => {
    assert.equal(
      parseError('-app=web').message,
      'unable to parse requirement: <nil>: Invalid value: "-app": name part must consist of alphanumeric characters, \'-\', \'_\' or \'.\', ' +
        "and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    );
    assert.match(parseError('app=we@b').message, /^unable to parse requirement: values\[0\]\[app\]: Invalid value: "we@b": a valid label must be an empty string/);
    assert.match(parseError(`app=${'v'.repeat(64)}`).message, /Invalid value: "v{64}": must be no more than 63 characters$/);
    assert.match(parseError(`app=-${'v'.repeat(63)}`).message, /Invalid value: "-v{63}": must be no more than 63 characters; a valid label/);
    assert.match(parseError('n>x').message, /values\[0\]: Invalid value: "x": for 'Gt', 'Lt' operators, the value must be an integer/);
  });
});

describe('matches', () => {
  const labels = { app: 'web', tier: 'frontend', replicas: '3' };

  it('applies equality and inequality, missing keys satisfying !=', () => {
    assert.ok(matches(parseLabelSelector('app=web'), labels));
    assert.ok(!matches(parseLabelSelector('app=db'), labels));
    assert.ok(matches(parseLabelSelector('env!=prod'), labels));
    assert.ok(!matches(parseLabelSelector('app!=web'), labels));
  });

  it('applies set operators, missing keys satisfying notin', () => {
    assert.ok(matches(parseLabelSelector('tier in (frontend,backend)'), labels));
    assert.ok(!matches(parseLabelSelector('env in (prod)'), labels));
    assert.ok(matches(parseLabelSelector('env notin (prod)'), labels));
    assert.ok(!matches(parseLabelSelector('tier notin (frontend)'), labels));
  });

  it('applies existence and numeric comparisons', () => {
    assert.ok(matches(parseLabelSelector('app,!env'), labels));
    assert.ok(!matches(parseLabelSelector('!app'), labels));
    assert.ok(matches(parseLabelSelector('replicas>2,replicas<4'), labels));
    assert.ok(!matches(parseLabelSelector('replicas>3'), labels));
    assert.ok(!matches(parseLabelSelector('app>1'), labels), 'a non-numeric label never satisfies gt');
  });

  it('requires every requirement', () => {
    assert.ok(!matches(parseLabelSelector('app=web,tier=backend'), labels));
  });
});

describe('fromLabelSelector', () => {
  it('combines matchLabels and matchExpressions', () => {
    const sel = fromLabelSelector({
      matchLabels: { app: 'web' },
      matchExpressions: [
        { key: 'tier', operator: 'In', values: ['frontend', 'edge'] },
        { key: 'legacy', operator: 'DoesNotExist' },
        { key: 'zone', operator: 'Exists' },
        { key: 'env', operator: 'NotIn', values: ['dev'] },
      ],
    });
    assert.equal(selectorToString(sel), 'app=web,env notin (dev),!legacy,tier in (edge,frontend),zone');
    assert.ok(matches(sel, { app: 'web', tier: 'edge', zone: 'a' }));
    assert.ok(!matches(sel, { app: 'web', tier: 'edge' }));
  });

  it('selects nothing for an absent selector and everything for an empty one', () => {
    assert.ok(!matches(fromLabelSelector(undefined), {}));
    assert.ok(!matches(fromLabelSelector(null), { a: 'b' }));
    assert.ok(matches(fromLabelSelector({}), { a: 'b' }));
  });

  it('rejects unknown operators and empty In values', () => {
    assert.throws(() => fromLabelSelector({ matchExpressions: [{ key: 'a', operator: 'Equals', values: ['b'] }] }), {
      message: '"Equals" is not a valid label selector operator',
    });
    assert.throws(() => fromLabelSelector({ matchExpressions: [{ key: 'a', operator: 'In', values: [] }] }), {
      message: "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty",
    });
    assert.throws(() => fromLabelSelector({ matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] }), {
      message: 'values: Invalid value: []string{"x"}: values set must be empty for exists and does not exist',
    });
    assert.throws(() => fromLabelSelector({ matchLabels: { 'bad key': 'x' } }), { message: /^key: Invalid value: "bad key": name part must consist/ });
  });
});

describe('label validators', () => {
  it('accepts valid keys and values', () => {
    assert.deepEqual(validateLabelKey('app'), []);
    assert.deepEqual(validateLabelKey('node-role.kubernetes.io/control-plane'), []);
    assert.deepEqual(validateLabelKey('A_b.C-1'), []);
    assert.deepEqual(validateLabelValue(''), []);
    assert.deepEqual(validateLabelValue('v1.2_3-x'), []);
    assert.deepEqual(validateLabelValue('a'.repeat(63)), []);
  });

  it('reports prefix and name problems separately', () => {
    assert.deepEqual(validateLabelKey('/a'), ['prefix part must be non-empty']);
    assert.deepEqual(validateLabelKey(''), [
      'name part must be non-empty',
      "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    ]);
    assert.equal(validateLabelKey('Example.com/a')[0]!.startsWith('prefix part a lowercase RFC 1123 subdomain'), true);
    assert.equal(validateLabelKey('a/b/c').length, 1);
    assert.ok(validateLabelKey('a/b/c')[0]!.startsWith('a qualified name must consist of alphanumeric characters'));
    assert.ok(validateLabelKey('a/b/c')[0]!.endsWith("with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
    assert.deepEqual(validateLabelKey('x'.repeat(64)), ['name part must be no more than 63 characters']);
  });

  it('limits values to 63 characters of the label alphabet', () => {
    assert.deepEqual(validateLabelValue('a'.repeat(64)), ['must be no more than 63 characters']);
    assert.equal(validateLabelValue('-a').length, 1);
    assert.equal(validateLabelValue('a b').length, 1);
  });
});

describe('selectorFromSet and formatLabels', () => {
  it('builds equality requirements', () => {
    const sel = selectorFromSet({ b: '2', a: '1' });
    assert.equal(selectorToString(sel), 'a=1,b=2');
    assert.ok(matches(sel, { a: '1', b: '2', c: '3' }));
    assert.ok(!matches(sel, { a: '1' }));
  });

  it('formats label maps sorted, <none> when empty', () => {
    assert.equal(formatLabels({ tier: 'web', app: 'x' }), 'app=x,tier=web');
    assert.equal(formatLabels({}), '<none>');
    assert.equal(formatLabels(undefined), '<none>');
  });
});
