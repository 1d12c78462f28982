import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../errors.js';
import { applyJsonPatch, JSON_PATCH_REJECTED, MAX_JSON_PATCH_OPERATIONS } from './json.js';

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

function rejectsWith(code: number, reason: string, message?: RegExp, cause?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof ApiError, `expected ApiError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.equal(err.reason, reason);
    if (message) assert.match(err.message, message);
    if (cause) assert.match(err.details?.causes?.[0]?.message ?? '', cause);
    return true;
  };
}

const pod = () => ({
  metadata: { name: 'p', labels: { app: 'web' } },
  spec: { containers: [{ name: 'a', image: 'a:1' }, { name: 'b', image: 'b:1' }] },
});

describe('applyJsonPatch (RFC 6902)', () => {
  it('applies add, remove, replace, move, copy and test in order', () => {
    const out = applyJsonPatch(pod(), [
      { op: 'test', path: '/metadata/name', value: 'p' },
      { op: 'add', path: '/metadata/labels/tier', value: 'front' },
      { op: 'replace', path: '/spec/containers/0/image', value: 'a:2' },
      { op: 'remove', path: '/spec/containers/1' },
      { op: 'copy', from: '/metadata/labels/app', path: '/metadata/annotations' },
      { op: 'move', from: '/metadata/annotations', path: '/metadata/labels/copied' },
      { op: 'add', path: '/spec/containers/-', value: { name: 'c', image: 'c:1' } },
    ]);
    assert.deepEqual(out, {
      metadata: { name: 'p', labels: { app: 'web', tier: 'front', copied: 'web' } },
      spec: { containers: [{ name: 'a', image: 'a:2' }, { name: 'c', image: 'c:1' }] },
    });
  });

  it('escapes "/" and "~" in keys as ~1 and ~0', () => {
    const out = applyJsonPatch(pod(), [{ op: 'add', path: '/metadata/labels/example.com~1team~0x', value: 'y' }]);
    assert.deepEqual((out as any).metadata.labels, { app: 'web', 'example.com/team~x': 'y' });
  });

  it('rejects a failing test op with 422 Invalid and the apiserver message', () => {
    assert.throws(
      () => applyJsonPatch(pod(), [{ op: 'test', path: '/metadata/name', value: 'other' }]),
      rejectsWith(422, 'Invalid', new RegExp(`^${JSON_PATCH_REJECTED}$`), /operation 0 \(test \/metadata\/name\)/),
    );
  });

  it('rejects an unknown op, including the library-only _get, with 422', () => {
    assert.throws(() => applyJsonPatch(pod(), [{ op: 'bogus', path: '/a' }]), rejectsWith(422, 'Invalid', undefined, /unexpected op "bogus"/));
    assert.throws(() => applyJsonPatch(pod(), [{ op: '_get', path: '/a', value: 1 }]), rejectsWith(422, 'Invalid'));
    assert.throws(() => applyJsonPatch(pod(), [{ path: '/a', value: 1 }]), rejectsWith(422, 'Invalid', undefined, /unexpected op null/));
  });

  it('rejects operations missing path, from or value with 422', () => {
    assert.throws(() => applyJsonPatch(pod(), [{ op: 'remove' }]), rejectsWith(422, 'Invalid', undefined, /missing path/));
    assert.throws(() => applyJsonPatch(pod(), [{ op: 'move', path: '/x' }]), rejectsWith(422, 'Invalid', undefined, /missing from/));
    assert.throws(() => applyJsonPatch(pod(), [{ op: 'add', path: '/x' }]), rejectsWith(422, 'Invalid', undefined, /missing value/));
    assert.throws(() => applyJsonPatch(pod(), [{ op: 'add', path: 'x', value: 1 }]), rejectsWith(422, 'Invalid'));
  });

  it('rejects paths that do not resolve with 422', () => {
    assert.throws(() => applyJsonPatch(pod(), [{ op: 'replace', path: '/spec/nodeName', value: 'n' }]), rejectsWith(422, 'Invalid'));
    assert.throws(() => applyJsonPatch(pod(), [{ op: 'remove', path: '/spec/containers/5' }]), rejectsWith(422, 'Invalid'));
    assert.throws(() => applyJsonPatch(pod(), [{ op: 'add', path: '/spec/missing/deep', value: 1 }]), rejectsWith(422, 'Invalid'));
  });

  it('keeps the document out of error details', () => {
    assert.throws(
      () => applyJsonPatch({ secret: 'hunter2' }, [{ op: 'test', path: '/secret', value: 'x' }]),
      (err: unknown) => err instanceof ApiError && !JSON.stringify(err.toStatus()).includes('hunter2'),
    );
  });

  it('rejects a body that is not a list of operation objects with 400', () => {
    assert.throws(() => applyJsonPatch(pod(), { op: 'add', path: '/a', value: 1 }), rejectsWith(400, 'BadRequest', /JSON array/));
    assert.throws(() => applyJsonPatch(pod(), ['add']), rejectsWith(400, 'BadRequest', /operation 0 is not a JSON object/));
    assert.throws(() => applyJsonPatch(pod(), null), rejectsWith(400, 'BadRequest'));
  });

  it('refuses more operations than the apiserver allows with 413', () => {
    const ops = Array.from({ length: MAX_JSON_PATCH_OPERATIONS + 1 }, () => ({ op: 'test', path: '/metadata/name', value: 'p' }));
    assert.throws(() => applyJsonPatch(pod(), ops), rejectsWith(413, 'RequestEntityTooLarge', /got 10001/));
  });

  it('does not mutate the document or the operations, nor share values with them', () => {
    const doc = deepFreeze(pod());
    const ops = deepFreeze([{ op: 'add', path: '/spec/extra', value: { nested: { n: 1 } } }]);
    const out = applyJsonPatch(doc, ops) as any;
    out.spec.extra.nested.n = 2;
    out.metadata.labels.app = 'changed';
    assert.deepEqual(ops, [{ op: 'add', path: '/spec/extra', value: { nested: { n: 1 } } }]);
    assert.deepEqual(doc, pod());
  });
});
