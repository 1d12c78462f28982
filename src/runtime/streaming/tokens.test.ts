import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_PENDING_TOKENS, TokenCache, TokenCacheFullError } from './tokens.js';

describe('TokenCache', () => {
  it('hands a request out once, under an unguessable URL-safe token', () => {
    const cache = new TokenCache<string>();
    const token = cache.issue('exec');
    assert.match(token, /^[A-Za-z0-9_-]{22}$/);
    assert.notEqual(cache.issue('exec'), token);
    assert.equal(cache.has(token), true);
    assert.equal(cache.take(token), 'exec');
    assert.equal(cache.has(token), false);
    assert.equal(cache.take(token), undefined);
  });

  it('expires tokens after the TTL', () => {
    let now = 1_000;
    const cache = new TokenCache<string>(60_000, () => now);
    const token = cache.issue('exec');
    now += 59_999;
    assert.equal(cache.has(token), true);
    now += 1;
    assert.equal(cache.has(token), false);
    assert.equal(cache.take(token), undefined);
  });

  it('refuses new tokens while too many are pending, and frees expired ones', () => {
    let now = 0;
    const cache = new TokenCache<number>(10, () => now);
    for (let i = 0; i < MAX_PENDING_TOKENS; i++) cache.issue(i);
    assert.throws(() => cache.issue(-1), TokenCacheFullError);
    now = 10;
    assert.doesNotThrow(() => cache.issue(-1));
  });
});
