import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MetricsText } from './prometheus-text.js';

describe('Prometheus text', () => {
  it('sorts families and label names, escapes, stamps, and leaves out empty families', () => {
    const out = new MetricsText();
    const b = out.family('b_total', 'counter', 'Help with \\ and\nnewline');
    out.family('empty', 'gauge', 'never written');
    const a = out.family('a', 'gauge', 'A gauge');
    b({ pod: 'p"1', container: 'c\\\n' }, 1.5, 1700000000123.7);
    a({}, 1e21);
    a({ x: '' }, NaN);
    assert.equal(
      out.render(),
      [
        '# HELP a A gauge',
        '# TYPE a gauge',
        'a 1e+21',
        'a{x=""} NaN',
        '# HELP b_total Help with \\\\ and\\nnewline',
        '# TYPE b_total counter',
        'b_total{container="c\\\\\\n",pod="p\\"1"} 1.5 1700000000123',
        '',
      ].join('\n'),
    );
    assert.equal(new MetricsText().render(), '');
  });
});
