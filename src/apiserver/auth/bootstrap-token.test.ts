import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiError } from '../../api/errors.js';
import type { KubeObject } from '../../api/types.js';
import { KubeClient } from '../../client/client.js';
import { resource } from '../../client/informer.js';
import { ApiServer } from '../server.js';
import { BootstrapTokenError, createBootstrapToken, parseBootstrapToken } from './bootstrap-token.js';

const SECRETS = resource('secrets');
const REVIEWS = resource('authentication.k8s.io/selfsubjectreviews');

describe('parseBootstrapToken', () => {
  it('splits a well-formed token', () => {
    assert.deepEqual(parseBootstrapToken('abcdef.0123456789abcdef'), { id: 'abcdef', secret: '0123456789abcdef' });
  });

  it('names the part that is wrong', () => {
    assert.throws(() => parseBootstrapToken('abcdef0123456789abcdef'), { name: 'BootstrapTokenError', message: /no "\."/ });
    assert.throws(() => parseBootstrapToken('ABCDEF.0123456789abcdef'), /token id "ABCDEF" must be 6 characters of \[a-z0-9\]/);
    assert.throws(() => parseBootstrapToken('abcde.0123456789abcdef'), /token id "abcde" must be 6/);
    assert.throws(() => parseBootstrapToken('abcdef.0123456789abcde'), /secret part of bootstrap token abcdef must be 16 characters of \[a-z0-9\] \(it has 15 characters\)/);
    // The secret part never appears in the message.
    assert.throws(() => parseBootstrapToken('abcdef.0123456789ABCDEF'), (err: Error) => !err.message.includes('0123456789ABCDEF'));
  });
});

describe('createBootstrapToken', () => {
  let dir: string;
  let server: ApiServer;
  let admin: KubeClient;
  const clients: KubeClient[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-bootstrap-token-'));
    server = await ApiServer.start({ dataDir: dir, port: 0, host: '127.0.0.1' });
    admin = KubeClient.fromKubeconfig(server.kubeconfigPath);
  });

  after(async () => {
    for (const c of clients) c.close();
    admin?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const withToken = (token: string) => {
    const c = new KubeClient({ server: server.url, caPem: server.admin.caPem, token });
    clients.push(c);
    return c;
  };
  const whoAmI = (token: string) =>
    withToken(token).create<KubeObject & { status: { userInfo: { username: string; groups: string[] } } }>(REVIEWS, undefined, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'SelfSubjectReview',
      metadata: {},
    });
  const field = (secret: KubeObject, key: string) => {
    const v = (secret['data'] as Record<string, string>)[key];
    return v === undefined ? undefined : Buffer.from(v, 'base64').toString();
  };

  it('makes a kubeadm-style token Secret that authenticates as system:bootstrap:<id> until it expires', async () => {
    const before = Date.now();
    const token = await createBootstrapToken(admin, { ttlSeconds: 600, description: 'edge join', groups: ['system:bootstrappers:edge'] });
    const { id, secret } = parseBootstrapToken(token);
    const stored = await admin.get(SECRETS, 'kube-system', `bootstrap-token-${id}`);
    assert.equal(stored['type'], 'bootstrap.kubernetes.io/token');
    assert.equal(field(stored, 'token-id'), id);
    assert.equal(field(stored, 'token-secret'), secret);
    assert.equal(field(stored, 'usage-bootstrap-authentication'), 'true');
    assert.equal(field(stored, 'usage-bootstrap-signing'), 'true');
    assert.equal(field(stored, 'description'), 'edge join');
    assert.equal(field(stored, 'auth-extra-groups'), 'system:bootstrappers:edge');
    const expires = Date.parse(field(stored, 'expiration')!);
    assert.ok(expires >= before + 599_000 && expires <= Date.now() + 600_000, `expiration ${field(stored, 'expiration')} is about 600 s away`);

    const review = await whoAmI(token);
    assert.equal(review.status.userInfo.username, `system:bootstrap:${id}`);
    assert.deepEqual(review.status.userInfo.groups.sort(), ['system:authenticated', 'system:bootstrappers', 'system:bootstrappers:edge']);

    // The authenticator refuses the token once its expiration has passed.
    const past = new Date(Date.now() - 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    await admin.patch(SECRETS, 'kube-system', `bootstrap-token-${id}`, 'merge', { data: { expiration: Buffer.from(past).toString('base64') } });
    await assert.rejects(whoAmI(token), (err: unknown) => err instanceof ApiError && err.code === 401);
  });

  it('makes a token without expiration for ttlSeconds 0, and refuses bad options', async () => {
    const token = await createBootstrapToken(admin, { ttlSeconds: 0 });
    const stored = await admin.get(SECRETS, 'kube-system', `bootstrap-token-${parseBootstrapToken(token).id}`);
    assert.equal(field(stored, 'expiration'), undefined);
    assert.equal((await whoAmI(token)).status.userInfo.username, `system:bootstrap:${parseBootstrapToken(token).id}`);

    await assert.rejects(createBootstrapToken(admin, { groups: ['system:masters'] }), (err: unknown) =>
      err instanceof BootstrapTokenError && /group "system:masters" must match/.test(err.message));
    await assert.rejects(createBootstrapToken(admin, { ttlSeconds: -1 }), /ttlSeconds must be a non-negative integer/);
  });
});
