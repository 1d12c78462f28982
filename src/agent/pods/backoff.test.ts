import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff, goDuration } from './backoff.js';

describe('Backoff', () => {
  it('starts at the initial delay, doubles to the cap, and starts over after twice the cap untouched', () => {
    let now = 0;
    const b = new Backoff(10_000, 300_000, () => now);
    assert.equal(b.inBackoffSince('k', now), false);
    const seen: number[] = [];
    for (let i = 0; i < 7; i++) {
      b.next('k');
      seen.push(b.get('k'));
    }
    assert.deepEqual(seen, [10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
    now = 1_000;
    assert.equal(b.inBackoffSince('k', 0), true, 'a container that finished 1 s ago waits');
    now = 300_001;
    assert.equal(b.inBackoffSince('k', 0), false, 'the delay has passed');
    now = 600_001 + 1;
    b.next('k');
    assert.equal(b.get('k'), 10_000, 'ten quiet minutes reset it');
  });

  it('tracks back-off since the last failure for pulls', () => {
    let now = 0;
    const b = new Backoff(1_000, 4_000, () => now);
    b.next('img');
    assert.equal(b.inBackoffSinceUpdate('img'), true);
    assert.equal(b.endsAt('img'), 1_000);
    now = 1_000;
    assert.equal(b.inBackoffSinceUpdate('img'), false);
    b.resetPrefix('im');
    assert.equal(b.get('img'), 0);
  });
});

describe('goDuration', () => {
  it('prints durations as Go does', () => {
    assert.equal(goDuration(10_000), '10s');
    assert.equal(goDuration(80_000), '1m20s');
    assert.equal(goDuration(300_000), '5m0s');
    assert.equal(goDuration(1_500), '1.5s');
    assert.equal(goDuration(250), '250ms');
    assert.equal(goDuration(3_600_000), '1h0m0s');
  });
});
