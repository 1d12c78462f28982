import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import type { KubeObject } from '../../api/types.js';
import { DEFAULT_ISSUER, ServiceAccountTokens, type TokenObjects } from './service-account-token.js';

const keyPem = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const KEY = keyPem();

const sa: KubeObject = { metadata: { name: 'robot', namespace: 'apps', uid: 'sa-uid' } };
const boundPod: KubeObject = { metadata: { name: 'web', namespace: 'apps', uid: 'pod-uid' }, spec: { serviceAccountName: 'robot', nodeName: 'n1' } };
const node: KubeObject = { metadata: { name: 'n1', uid: 'node-uid' } };

function setup(objects: Partial<{ sa: KubeObject; pod: KubeObject; node: KubeObject }> = { sa, pod: boundPod, node }, now = () => Date.now()) {
  const lookup: TokenObjects = {
    serviceAccount: (ns, name) => (objects.sa && ns === 'apps' && name === objects.sa.metadata.name ? objects.sa : undefined),
    pod: (ns, name) => (objects.pod && ns === 'apps' && name === objects.pod.metadata.name ? objects.pod : undefined),
    node: (name) => (objects.node && name === objects.node.metadata.name ? objects.node : undefined),
  };
  return new ServiceAccountTokens({ privateKeyPem: KEY, objects: lookup, now });
}

function decode(token: string): { header: Record<string, unknown>; claims: Record<string, any> } {
  const [h, p] = token.split('.');
  return { header: JSON.parse(Buffer.from(h!, 'base64url').toString()), claims: JSON.parse(Buffer.from(p!, 'base64url').toString()) };
}

describe('service-account tokens', () => {
  it("signs ES256 JWTs with kube's claims", () => {
    const tokens = setup();
    const { token, expirationTimestamp } = tokens.issue({ serviceAccount: sa, expirationSeconds: 600 });
    const { header, claims } = decode(token);
    assert.equal(header.alg, 'ES256');
    assert.match(String(header.kid), /^[A-Za-z0-9_-]{43}$/);
    assert.equal(claims.iss, DEFAULT_ISSUER);
    assert.equal(claims.sub, 'system:serviceaccount:apps:robot');
    assert.deepEqual(claims.aud, [DEFAULT_ISSUER]);
    assert.equal(claims.exp - claims.iat, 600);
    assert.equal(claims.nbf, claims.iat);
    assert.match(claims.jti, /^[0-9a-f-]{36}$/);
    assert.deepEqual(claims['kubernetes.io'], { namespace: 'apps', serviceaccount: { name: 'robot', uid: 'sa-uid' } });
    assert.equal(Date.parse(expirationTimestamp) / 1000, claims.exp);
  });

  it('authenticates a valid token as the service account', () => {
    const tokens = setup();
    const user = tokens.authenticate(tokens.issue({ serviceAccount: sa }).token);
    assert.deepEqual(user && { name: user.name, uid: user.uid, groups: user.groups }, {
      name: 'system:serviceaccount:apps:robot',
      uid: 'sa-uid',
      groups: ['system:serviceaccounts', 'system:serviceaccounts:apps'],
    });
    assert.match(user!.extra!['authentication.kubernetes.io/credential-id']![0]!, /^JTI=/);
  });

  it('refuses tampered, foreign, expired and wrong-audience tokens', () => {
    const tokens = setup();
    const { token } = tokens.issue({ serviceAccount: sa });
    const [h, p, s] = token.split('.') as [string, string, string];
    const forged = Buffer.from(JSON.stringify({ ...decode(token).claims, sub: 'system:serviceaccount:apps:admin' })).toString('base64url');
    assert.equal(tokens.authenticate(`${h}.${forged}.${s}`), undefined, 'changed claims');
    assert.equal(tokens.authenticate(`${h}.${p}.${Buffer.alloc(64).toString('base64url')}`), undefined, 'bad signature');
    assert.equal(tokens.authenticate('not-a-jwt'), undefined);
    const other = new ServiceAccountTokens({ privateKeyPem: keyPem(), objects: { serviceAccount: () => sa, pod: () => undefined, node: () => undefined } });
    assert.equal(tokens.authenticate(other.issue({ serviceAccount: sa }).token), undefined, 'another key');
    assert.equal(tokens.authenticate(tokens.issue({ serviceAccount: sa, audiences: ['vault'] }).token), undefined, 'another audience');
    const past = setup(undefined, () => Date.now() - 3 * 3600_000);
    assert.equal(tokens.authenticate(past.issue({ serviceAccount: sa, expirationSeconds: 3600 }).token), undefined, 'expired');
    const future = setup(undefined, () => Date.now() + 3600_000);
    assert.equal(tokens.authenticate(future.issue({ serviceAccount: sa }).token), undefined, 'not yet valid');
    const elsewhere = new ServiceAccountTokens({ privateKeyPem: KEY, issuer: 'https://other', objects: { serviceAccount: () => sa, pod: () => undefined, node: () => undefined } });
    assert.equal(tokens.authenticate(elsewhere.issue({ serviceAccount: sa, audiences: [DEFAULT_ISSUER] }).token), undefined, 'another issuer');
  });

  it('stops authenticating once the account is deleted or recreated', () => {
    const { token } = setup().issue({ serviceAccount: sa });
    assert.equal(setup({}).authenticate(token), undefined);
    assert.equal(setup({ sa: { metadata: { ...sa.metadata, uid: 'new-uid' } } }).authenticate(token), undefined);
  });

  it('binds to a pod: its name, uid and node are claimed, and the pod must still exist', () => {
    const tokens = setup();
    const { token, claims } = tokens.issue({ serviceAccount: sa, pod: boundPod, node });
    assert.deepEqual(claims['kubernetes.io'].pod, { name: 'web', uid: 'pod-uid' });
    assert.deepEqual(claims['kubernetes.io'].node, { name: 'n1', uid: 'node-uid' });
    const user = tokens.authenticate(token)!;
    assert.deepEqual(user.extra!['authentication.kubernetes.io/pod-name'], ['web']);
    assert.deepEqual(user.extra!['authentication.kubernetes.io/node-name'], ['n1']);
    assert.equal(setup({ sa, node }).authenticate(token), undefined, 'pod deleted');
    assert.equal(setup({ sa, pod: { ...boundPod, metadata: { ...boundPod.metadata, uid: 'other' } } }).authenticate(token), undefined, 'pod recreated');
    const longGone = { ...boundPod, metadata: { ...boundPod.metadata, deletionTimestamp: new Date(Date.now() - 120_000).toISOString() } };
    assert.equal(setup({ sa, pod: longGone }).authenticate(token), undefined, 'pod terminating for over a minute');
  });

  it("extends the admission default's 3607 s to a year for pod-bound tokens, warning after the hour", () => {
    const { claims, expirationTimestamp } = setup().issue({ serviceAccount: sa, pod: boundPod, expirationSeconds: 3607 });
    assert.equal(claims.exp - claims.iat, 365 * 24 * 3600);
    assert.equal(claims['kubernetes.io'].warnafter, claims.iat + 3607);
    assert.equal(Date.parse(expirationTimestamp) / 1000, claims.iat + 3607);
    const unbound = setup().issue({ serviceAccount: sa, expirationSeconds: 3607 }).claims;
    assert.equal(unbound.exp - unbound.iat, 3607);
  });
});
