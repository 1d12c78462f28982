import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiError } from '../api/errors.js';
import type { KubeObject } from '../api/types.js';
import type { ObjectSource } from './contracts.js';
import { keepingTokens } from './offline-tokens.js';

const POD: KubeObject = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'default', uid: 'uid-1' } };
const REQUEST = { audiences: ['api'], expirationSeconds: 3607 };

describe('keepingTokens', () => {
  let dir: string;
  let answer: () => { token: string; expirationTimestamp: string };
  const cloud: ObjectSource = {
    configMap: async () => undefined,
    secret: async () => undefined,
    serviceAccountToken: async () => answer(),
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-tokens-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('hands out the last issued token while the cloud answers 503, and only then', async () => {
    const source = keepingTokens(cloud, join(dir, 'tokens'));
    answer = () => ({ token: 'first', expirationTimestamp: '2026-01-01T00:00:00Z' });
    assert.equal((await source.serviceAccountToken(POD, 'default', REQUEST)).token, 'first');
    const [file] = await readdir(join(dir, 'tokens'));
    assert.equal((await stat(join(dir, 'tokens', file!))).mode & 0o777, 0o600);

    answer = () => {
      throw new ApiError(503, 'ServiceUnavailable', 'edgehub: the node is offline');
    };
    // A new agent (after a restart) finds it on disk.
    const restarted = keepingTokens(cloud, join(dir, 'tokens'));
    assert.deepEqual(await restarted.serviceAccountToken(POD, 'default', REQUEST), { token: 'first', expirationTimestamp: '2026-01-01T00:00:00Z' });
    await assert.rejects(restarted.serviceAccountToken(POD, 'other', REQUEST), /offline/, 'nothing kept for another service account');

    answer = () => {
      throw new ApiError(403, 'Forbidden', 'no');
    };
    await assert.rejects(restarted.serviceAccountToken(POD, 'default', REQUEST), /no/, 'a refusal is not covered up');
  });
});
