import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyMergePatch } from './merge.js';

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

describe('applyMergePatch (RFC 7386)', () => {
  // The examples of RFC 7386 appendix A.
  const cases: [unknown, unknown, unknown][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, expected] of cases) {
    it(`${JSON.stringify(target)} + ${JSON.stringify(patch)}`, () => {
      assert.deepEqual(applyMergePatch(target, patch), expected);
    });
  }

  it('removes a label and adds another, as kubectl label does', () => {
    const pod = { metadata: { name: 'p', labels: { a: '1', b: '2' } }, spec: { nodeName: 'n1' } };
    const out = applyMergePatch(pod, { metadata: { labels: { a: null, c: '3' } } });
    assert.deepEqual(out, { metadata: { name: 'p', labels: { b: '2', c: '3' } }, spec: { nodeName: 'n1' } });
  });

  it('replaces arrays whole rather than merging them', () => {
    const out = applyMergePatch({ spec: { containers: [{ name: 'a' }, { name: 'b' }] } }, { spec: { containers: [{ name: 'c' }] } });
    assert.deepEqual(out, { spec: { containers: [{ name: 'c' }] } });
  });

  it('neither mutates its inputs nor shares structure with them', () => {
    const target = deepFreeze({ a: { b: 1 }, keep: { deep: [1] } });
    const patch = deepFreeze({ a: { c: { d: 2 } }, list: [{ x: 1 }] });
    const out = applyMergePatch(target, patch) as Record<string, any>;
    assert.deepEqual(out, { a: { b: 1, c: { d: 2 } }, keep: { deep: [1] }, list: [{ x: 1 }] });
    out.a.c.d = 3;
    out.list[0].x = 2;
    out.keep.deep.push(2);
    assert.deepEqual(patch, { a: { c: { d: 2 } }, list: [{ x: 1 }] });
    assert.deepEqual(target, { a: { b: 1 }, keep: { deep: [1] } });
  });

  it('treats a __proto__ key as data, not as the prototype', () => {
    const patch = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}');
    const out = applyMergePatch({}, patch) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.equal((out as { polluted?: boolean }).polluted, undefined);
    assert.deepEqual(Object.keys(out), ['__proto__', 'a']);
  });
});
