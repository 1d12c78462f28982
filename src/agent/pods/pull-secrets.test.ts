import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject } from '../../api/types.js';
import { MemorySource } from '../volumes/testing.js';
import { authsForImage, dockerConfigAuths, normalizeRegistryKey, pullSecretsAuth, PullSecretError } from './pull-secrets.js';

function secret(name: string, field: string, doc: unknown): KubeObject {
  return { metadata: { namespace: 'ns', name }, type: 'kubernetes.io/dockerconfigjson', data: { [field]: Buffer.from(JSON.stringify(doc)).toString('base64') } };
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('dockerConfigAuths', () => {
  it('reads .dockerconfigjson auths, decoding `auth` into username and password', () => {
    const auths = dockerConfigAuths(
      secret('s', '.dockerconfigjson', {
        auths: {
          'https://index.docker.io/v1/': { auth: b64('hub:pw') },
          'registry.example.com:5000': { username: 'u', password: 'p' },
          'ghcr.io/team': { identitytoken: 'tok' },
        },
      }),
    );
    assert.deepEqual(auths, [
      { server_address: 'docker.io', username: 'hub', password: 'pw', auth: b64('hub:pw') },
      { server_address: 'registry.example.com:5000', username: 'u', password: 'p' },
      { server_address: 'ghcr.io/team', identity_token: 'tok' },
    ]);
  });

  it('reads the legacy .dockercfg form', () => {
    assert.deepEqual(dockerConfigAuths(secret('s', '.dockercfg', { 'quay.io': { username: 'a', password: 'b' } })), [{ server_address: 'quay.io', username: 'a', password: 'b' }]);
  });

  it('refuses secrets that are not docker configs, naming them', () => {
    assert.throws(() => dockerConfigAuths({ metadata: { namespace: 'ns', name: 'x' }, data: { token: 'eA==' } }), (e: unknown) => e instanceof PullSecretError && /ns\/x/.test(e.message));
    assert.throws(() => dockerConfigAuths(secret('y', '.dockerconfigjson', { nope: 1 })), /"auths"/);
    assert.throws(() => dockerConfigAuths(secret('z', '.dockerconfigjson', { auths: { h: { auth: b64('nocolon') } } })), /user:password/);
  });

  it('normalizes registry keys', () => {
    assert.equal(normalizeRegistryKey('https://index.docker.io/v1/'), 'docker.io');
    assert.equal(normalizeRegistryKey('registry-1.docker.io'), 'docker.io');
    assert.equal(normalizeRegistryKey('http://Reg.Example.com:5000/'), 'reg.example.com:5000');
  });
});

describe('authsForImage', () => {
  const auths = [
    { server_address: 'docker.io', username: 'hub' },
    { server_address: 'reg.example.com:5000', username: 'port' },
    { server_address: '*.example.org', username: 'wild' },
    { server_address: 'ghcr.io/team', username: 'team' },
    { server_address: 'ghcr.io', username: 'ghcr' },
  ];
  const users = (image: string) => authsForImage(image, auths).map((a) => a.username);

  it('matches by registry host, port, wildcard label and path prefix, most specific first', () => {
    assert.deepEqual(users('busybox'), ['hub']);
    assert.deepEqual(users('index.docker.io/library/busybox:1'), ['hub']);
    assert.deepEqual(users('reg.example.com:5000/app:1'), ['port']);
    assert.deepEqual(users('reg.example.com/app:1'), [], 'the port must match');
    assert.deepEqual(users('a.example.org/app'), ['wild']);
    assert.deepEqual(users('a.b.example.org/app'), [], 'a * label matches one label');
    assert.deepEqual(users('ghcr.io/team/app'), ['team', 'ghcr']);
    assert.deepEqual(users('ghcr.io/teammate/app'), ['ghcr']);
    assert.deepEqual(users('not a reference'), []);
  });
});

describe('pullSecretsAuth', () => {
  it('collects the pod secrets in order and skips missing or malformed ones with a warning', async () => {
    const source = new MemorySource();
    source.putSecret('ns', 'good', { '.dockerconfigjson': JSON.stringify({ auths: { 'reg.local:5000': { username: 'u', password: 'p' } } }) });
    source.putSecret('ns', 'bad', { other: 'x' });
    const warnings: string[] = [];
    const pod: KubeObject = { metadata: { namespace: 'ns', name: 'p' }, spec: { containers: [], imagePullSecrets: [{ name: 'missing' }, { name: 'bad' }, { name: 'good' }] } };
    const auths = await pullSecretsAuth(pod, source, (w) => warnings.push(w));
    assert.deepEqual(auths, [{ server_address: 'reg.local:5000', username: 'u', password: 'p' }]);
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /missing/);
    assert.match(warnings[1]!, /ns\/bad/);
  });
});
