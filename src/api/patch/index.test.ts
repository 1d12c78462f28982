import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../errors.js';
import type { Schema } from '../openapi/schema.js';
import { applyPatch, patchTypeFromContentType, UNSUPPORTED_PATCH_MESSAGE } from './index.js';

describe('patchTypeFromContentType', () => {
  it('maps the four PATCH media types, ignoring parameters and case', () => {
    assert.equal(patchTypeFromContentType('application/json-patch+json'), 'json');
    assert.equal(patchTypeFromContentType('application/merge-patch+json; charset=utf-8'), 'merge');
    assert.equal(patchTypeFromContentType('Application/Strategic-Merge-Patch+JSON'), 'strategic');
    assert.equal(patchTypeFromContentType('application/apply-patch+yaml;charset=UTF-8'), 'apply');
  });

  it('returns undefined for anything else', () => {
    assert.equal(patchTypeFromContentType('application/json'), undefined);
    assert.equal(patchTypeFromContentType(''), undefined);
    assert.equal(patchTypeFromContentType('constructor'), undefined);
  });
});

describe('applyPatch', () => {
  const cr = { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 1, tags: ['a'] } };

  it('dispatches json and merge patches', () => {
    assert.deepEqual(applyPatch('json', cr, [{ op: 'replace', path: '/spec/size', value: 2 }]), {
      ...cr,
      spec: { size: 2, tags: ['a'] },
    });
    assert.deepEqual(applyPatch('merge', cr, { spec: { tags: ['b'] } }), { ...cr, spec: { size: 1, tags: ['b'] } });
  });

  it('refuses strategic merge patch without a schema with 415, as for custom resources', () => {
    assert.throws(
      () => applyPatch('strategic', cr, { spec: { size: 2 } }),
      (err: unknown) =>
        err instanceof ApiError &&
        err.code === 415 &&
        err.reason === 'UnsupportedMediaType' &&
        err.message === UNSUPPORTED_PATCH_MESSAGE &&
        err.message ===
          'the body of the request was in an unknown format - accepted media types include: ' +
            'application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml',
    );
  });

  it('applies strategic merge patch with a schema', () => {
    const schema: Schema = {
      type: 'object',
      properties: { spec: { type: 'object', properties: { tags: { type: 'array', items: { type: 'string' }, 'x-kubernetes-patch-strategy': 'merge' } } } },
    };
    assert.deepEqual(applyPatch('strategic', cr, { spec: { tags: ['a', 'b'] } }, schema), { ...cr, spec: { size: 1, tags: ['a', 'b'] } });
  });

  it('rejects a merge patch that is not an object with 400', () => {
    assert.throws(() => applyPatch('merge', cr, ['x']), (err: unknown) => err instanceof ApiError && err.code === 400);
    assert.throws(() => applyPatch('merge', cr, null), (err: unknown) => err instanceof ApiError && err.code === 400);
  });
});
