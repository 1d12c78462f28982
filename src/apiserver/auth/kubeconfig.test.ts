import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { Authenticator } from './authn.js';
import { kubeconfigYaml, writeKubeconfig } from './kubeconfig.js';
import { ensurePki, issueClientCert, type Pki } from './pki.js';

describe('kubeconfig', () => {
  let dir: string;
  let pki: Pki;
  let server: https.Server;
  let port: number;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-kubeconfig-test-'));
    pki = await ensurePki(join(dir, 'pki'), { hosts: [] });
    const auth = new Authenticator({ staticTokens: [{ token: 'edge-token', user: { name: 'tok', groups: [] } }] });
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
  after(async () => {
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function whoamiWith(kc: KubeConfig): Promise<unknown> {
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    const server = new URL(kc.getCurrentCluster()!.server);
    return new Promise((resolve, reject) => {
      const req = https.request({ ...opts, host: server.hostname, port: server.port, path: '/', agent: false }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve(JSON.parse(body)));
      });
      req.on('error', reject);
      req.end();
    });
  }

  test('embeds CA and client certificate as base64 data, usable by @kubernetes/client-node', async () => {
    const { certPem, keyPem } = await issueClientCert(pki, { cn: 'admin', groups: ['system:masters'] });
    const path = join(dir, 'admin.kubeconfig');
    await writeKubeconfig(path, { server: `https://127.0.0.1:${port}`, caPem: pki.caCertPem, user: 'admin', certPem, keyPem });
    assert.equal((await stat(path)).mode & 0o777, 0o600);

    const doc = parse(await readFile(path, 'utf8'));
    assert.equal(doc['current-context'], 'atoll');
    assert.equal(Buffer.from(doc.clusters[0].cluster['certificate-authority-data'], 'base64').toString(), pki.caCertPem);
    assert.equal(Buffer.from(doc.users[0].user['client-key-data'], 'base64').toString(), keyPem);
    assert.deepEqual(doc.contexts[0], { name: 'atoll', context: { cluster: 'atoll', user: 'admin' } });

    const kc = new KubeConfig();
    kc.loadFromFile(path);
    assert.deepEqual(await whoamiWith(kc), { name: 'admin', groups: ['system:masters', 'system:authenticated'] });
  });

  test('token credentials and a custom context name', async () => {
    const kc = new KubeConfig();
    kc.loadFromString(kubeconfigYaml({ server: `https://127.0.0.1:${port}`, caPem: pki.caCertPem, user: 'edge', token: 'edge-token', context: 'edge-site' }));
    assert.equal(kc.getCurrentContext(), 'edge-site');
    assert.equal(kc.getCurrentUser()?.token, 'edge-token');
    assert.deepEqual(await whoamiWith(kc), { name: 'tok', groups: ['system:authenticated'] });
  });

  test('rejects incomplete or unsafe options', () => {
    const base = { server: 'https://127.0.0.1:6443', caPem: pki.caCertPem, user: 'u' };
    assert.throws(() => kubeconfigYaml({ ...base, server: 'http://127.0.0.1:6443', token: 't' }), /must be an https URL/);
    assert.throws(() => kubeconfigYaml({ ...base, server: 'not a url', token: 't' }), /is not a URL/);
    assert.throws(() => kubeconfigYaml(base), /a credential is required/);
    assert.throws(() => kubeconfigYaml({ ...base, certPem: 'x' }), /certPem and keyPem must be given together/);
    assert.throws(() => kubeconfigYaml({ ...base, token: 'a b' }), /token must be non-empty printable ASCII/);
  });
});
