import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { KubeObject, UserInfo } from '../../api/types.js';
import { Authenticator, bearerToken, loadTokenFile, parseTokenFile, type SecretSource } from './authn.js';
import { ensurePki, issueClientCert, type Pki } from './pki.js';

const tempDirs: string[] = [];
after(async () => {
  for (const d of tempDirs) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'atoll-authn-test-'));
  tempDirs.push(d);
  return d;
}

function fakeRequest(headers: Record<string, string>): IncomingMessage {
  return { headers, socket: { encrypted: false, authorized: false } } as unknown as IncomingMessage;
}

describe('token file', () => {
  test('parses kube --token-auth-file records', () => {
    const tokens = parseTokenFile(
      [
        '# admin tokens',
        'tok-admin,admin,uid-1,"system:masters,ops"',
        '',
        'tok-bob, bob ,uid-2',
        'tok-carol,carol,,"a,""quoted"",b"',
      ].join('\n'),
    );
    assert.deepEqual(tokens, [
      { token: 'tok-admin', user: { name: 'admin', uid: 'uid-1', groups: ['system:masters', 'ops'] } },
      { token: 'tok-bob', user: { name: 'bob', uid: 'uid-2', groups: [] } },
      { token: 'tok-carol', user: { name: 'carol', groups: ['a', '"quoted"', 'b'] } },
    ]);
  });

  test('rejects bad lines with file and line number', async () => {
    const cases: [string, string][] = [
      ['good,u,1\nonly,two', 'tokens.csv:2: expected at least 3 columns (token, user name, user uid), found 2'],
      ['t,u,1,g1,g2', 'tokens.csv:1: expected at most 4 columns (token, user name, user uid, groups), found 5; quote the groups column'],
      ['t,u,1,"g1,g2', 'tokens.csv:1: unterminated quoted field'],
      ['t,u,1,"g1"x', 'tokens.csv:1: unexpected character after quoted field at column 11'],
      ['t,u"x,1', 'tokens.csv:1: bare quote in unquoted field at column 4'],
      [',u,1', 'tokens.csv:1: token is empty'],
      ['t,,1', 'tokens.csv:1: user name is empty'],
      ['a b,u,1', 'tokens.csv:1: token contains whitespace'],
      ['t,u,1\n\nt,v,2', 'tokens.csv:3: duplicate token (first seen on line 1)'],
    ];
    for (const [text, message] of cases) {
      assert.throws(() => parseTokenFile(text, 'tokens.csv'), { name: 'TokenFileError', message }, text);
    }
    const path = join(await tempDir(), 'tokens.csv');
    await writeFile(path, 'x,y\n');
    await assert.rejects(loadTokenFile(path), { message: `${path}:1: expected at least 3 columns (token, user name, user uid), found 2` });
  });

  test('static tokens authenticate through the Authorization header', () => {
    const auth = new Authenticator({ staticTokens: parseTokenFile('secret-admin,admin,uid-1,"system:masters"') });
    assert.deepEqual(auth.authenticate(fakeRequest({ authorization: 'Bearer secret-admin' })), {
      name: 'admin',
      uid: 'uid-1',
      groups: ['system:masters', 'system:authenticated'],
    });
    assert.equal(auth.authenticate(fakeRequest({ authorization: 'Bearer secret-admiN' })), undefined);
    assert.equal(auth.authenticate(fakeRequest({ authorization: 'Basic secret-admin' })), undefined);
    assert.equal(auth.authenticate(fakeRequest({})), undefined);
  });

  test('bearerToken follows kube header parsing', () => {
    assert.equal(bearerToken('Bearer abc'), 'abc');
    assert.equal(bearerToken('  bearer abc  '), 'abc');
    assert.equal(bearerToken('Bearer abc extra'), 'abc');
    assert.equal(bearerToken('Bearer'), undefined);
    assert.equal(bearerToken('Bearer  abc'), undefined);
    assert.equal(bearerToken('Token abc'), undefined);
  });
});

describe('bootstrap tokens', () => {
  const NOW = Date.parse('2030-01-01T00:00:00Z');
  const b64 = (s: string) => Buffer.from(s).toString('base64');

  function bootstrapSecret(id: string, fields: Record<string, string>, type = 'bootstrap.kubernetes.io/token'): KubeObject {
    const data: Record<string, string> = {};
    for (const [k, v] of Object.entries(fields)) data[k] = b64(v);
    return { apiVersion: 'v1', kind: 'Secret', metadata: { name: `bootstrap-token-${id}`, namespace: 'kube-system' }, type, data };
  }

  const secrets = new Map<string, KubeObject>();
  const source: SecretSource = { getSecret: (ns, name) => secrets.get(`${ns}/${name}`) };
  const put = (s: KubeObject) => secrets.set(`kube-system/${s.metadata.name}`, s);
  const auth = new Authenticator({ secrets: source, now: () => NOW });
  const token = (id: string) => `${id}.0123456789abcdef`;

  before(() => {
    const base = { 'token-secret': '0123456789abcdef', 'usage-bootstrap-authentication': 'true' };
    put(bootstrapSecret('abcdef', { 'token-id': 'abcdef', ...base, expiration: '2030-01-02T00:00:00Z', 'auth-extra-groups': 'system:bootstrappers:atoll:edge' }));
    put(bootstrapSecret('plain1', { 'token-id': 'plain1', ...base }));
    put(bootstrapSecret('expird', { 'token-id': 'expird', ...base, expiration: '2029-12-31T23:59:59Z' }));
    put(bootstrapSecret('nouse1', { 'token-id': 'nouse1', 'token-secret': '0123456789abcdef' }));
    put(bootstrapSecret('usefal', { 'token-id': 'usefal', 'token-secret': '0123456789abcdef', 'usage-bootstrap-authentication': 'false' }));
    put(bootstrapSecret('badgrp', { 'token-id': 'badgrp', ...base, 'auth-extra-groups': 'system:masters' }));
    put(bootstrapSecret('opaque', { 'token-id': 'opaque', ...base }, 'Opaque'));
    put(bootstrapSecret('wrngid', { 'token-id': 'other1', ...base }));
  });

  test('a valid token yields system:bootstrap:<id> in system:bootstrappers plus extra groups', () => {
    assert.deepEqual(auth.authenticateToken(token('abcdef')), {
      name: 'system:bootstrap:abcdef',
      groups: ['system:bootstrappers', 'system:bootstrappers:atoll:edge', 'system:authenticated'],
    });
    assert.deepEqual(auth.authenticateToken(token('plain1'))?.groups, ['system:bootstrappers', 'system:authenticated']);
  });

  test('refuses a wrong secret, an expired token, a token without the authentication usage', () => {
    assert.equal(auth.authenticateToken('abcdef.0123456789abcdee'), undefined);
    assert.equal(auth.authenticateToken(token('expird')), undefined);
    assert.equal(auth.authenticateToken(token('nouse1')), undefined);
    assert.equal(auth.authenticateToken(token('usefal')), undefined);
  });

  test('refuses invalid extra groups, wrong secret type, mismatched token-id, unknown ids and bad formats', () => {
    assert.equal(auth.authenticateToken(token('badgrp')), undefined);
    assert.equal(auth.authenticateToken(token('opaque')), undefined);
    assert.equal(auth.authenticateToken(token('wrngid')), undefined);
    assert.equal(auth.authenticateToken(token('zzzzzz')), undefined);
    assert.equal(auth.authenticateToken('ABCDEF.0123456789abcdef'), undefined);
    assert.equal(auth.authenticateToken('abcdef.0123456789abcdef0'), undefined);
  });

  test('expiry follows the clock', () => {
    const later = new Authenticator({ secrets: source, now: () => Date.parse('2030-01-02T00:00:00Z') });
    assert.equal(later.authenticateToken(token('abcdef')), undefined);
  });

  test('a deleted secret no longer authenticates', () => {
    const s = secrets.get('kube-system/bootstrap-token-plain1')!;
    put({ ...s, metadata: { ...s.metadata, deletionTimestamp: '2029-01-01T00:00:00Z' } });
    assert.equal(auth.authenticateToken(token('plain1')), undefined);
    put(s);
  });
});

describe('pluggable token authenticators', () => {
  test('are tried after static tokens, in order', () => {
    const auth = new Authenticator({ staticTokens: [{ token: 'jwt-a', user: { name: 'static', groups: [] } }] });
    const seen: string[] = [];
    auth.addTokenAuthenticator((t) => (seen.push(`1:${t}`), t.startsWith('jwt-') ? { name: 'system:serviceaccount:ns:sa', groups: ['system:serviceaccounts'] } : undefined));
    auth.addTokenAuthenticator((t) => (seen.push(`2:${t}`), { name: 'never', groups: [] }));
    assert.equal(auth.authenticateToken('jwt-a')?.name, 'static');
    assert.deepEqual(auth.authenticateToken('jwt-b'), {
      name: 'system:serviceaccount:ns:sa',
      groups: ['system:serviceaccounts', 'system:authenticated'],
    });
    assert.equal(auth.authenticateToken('other')?.name, 'never');
    assert.deepEqual(seen, ['1:jwt-b', '1:other', '2:other']);
  });
});

describe('client certificates over TLS', () => {
  let pki: Pki;
  let foreign: Pki;
  let port: number;
  let server: https.Server;
  let clock = Date.now();

  before(async () => {
    pki = await ensurePki(await tempDir(), { hosts: [] });
    foreign = await ensurePki(await tempDir(), { hosts: [] });
    const auth = new Authenticator({ staticTokens: [{ token: 'tok', user: { name: 'token-user', groups: [] } }], now: () => clock });
    server = https.createServer(
      { cert: pki.servingCertPem, key: pki.servingKeyPem, ca: pki.caCertPem, requestCert: true, rejectUnauthorized: false },
      (req, res) => {
        const user = auth.authenticate(req);
        res.statusCode = user ? 200 : 401;
        res.end(JSON.stringify(user ?? null));
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(() => server.close());

  function whoami(opts: { cert?: string; key?: string; token?: string; agent?: https.Agent }): Promise<{ status: number; user: UserInfo | null }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
      const req = https.request(
        { host: '127.0.0.1', port, path: '/', ca: pki.caCertPem, cert: opts.cert, key: opts.key, headers, agent: opts.agent ?? false },
        (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, user: JSON.parse(body) as UserInfo | null }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  test('CN is the user and each O a group', async () => {
    const { certPem, keyPem } = await issueClientCert(pki, { cn: 'alice', groups: ['dev', 'ops'] });
    assert.deepEqual(await whoami({ cert: certPem, key: keyPem }), {
      status: 200,
      user: { name: 'alice', groups: ['dev', 'ops', 'system:authenticated'] },
    });
    const single = await issueClientCert(pki, { cn: 'system:node:edge-1', groups: ['system:nodes'] });
    assert.deepEqual((await whoami({ cert: single.certPem, key: single.keyPem })).user?.groups, ['system:nodes', 'system:authenticated']);
  });

  test('a certificate from another CA is not accepted, but a token still is', async () => {
    const { certPem, keyPem } = await issueClientCert(foreign, { cn: 'mallory', groups: ['system:masters'] });
    assert.deepEqual(await whoami({ cert: certPem, key: keyPem }), { status: 401, user: null });
    assert.equal((await whoami({ cert: certPem, key: keyPem, token: 'tok' })).user?.name, 'token-user');
  });

  test('a certificate without client-auth usage (the serving certificate) is not accepted', async () => {
    assert.deepEqual(await whoami({ cert: pki.servingCertPem, key: pki.servingKeyPem }), { status: 401, user: null });
  });

  test('no credentials at all is 401', async () => {
    assert.deepEqual(await whoami({}), { status: 401, user: null });
  });

  test('a kept-alive connection stops authenticating once its certificate expires', async () => {
    const { certPem, keyPem } = await issueClientCert(pki, { cn: 'short', groups: [], days: 1 });
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      assert.equal((await whoami({ cert: certPem, key: keyPem, agent })).user?.name, 'short');
      clock = Date.now() + 2 * 86_400_000;
      assert.equal((await whoami({ cert: certPem, key: keyPem, agent })).status, 401);
    } finally {
      clock = Date.now();
      agent.destroy();
    }
  });
});
