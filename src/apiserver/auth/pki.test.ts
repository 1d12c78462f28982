import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { KUBELET_CLIENT_CN, canonicalHost, certificateHosts, ensurePki, issueClientCert, issueServingCert, signCsr, type Pki } from './pki.js';

const run = promisify(execFile);
const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'atoll-pki-test-'));
  tempDirs.push(d);
  return d;
}
after(async () => {
  for (const d of tempDirs) await rm(d, { recursive: true, force: true });
});

async function mode(path: string): Promise<number> {
  return (await stat(path)).mode & 0o777;
}

/** GET / over TLS trusting only `ca`, connecting to `host` but verifying against `servername`. */
function fetchVia(port: number, host: string, ca: string, servername?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host, port, path: '/', ca, servername, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('ensurePki', () => {
  let dir: string;
  let pki: Pki;
  before(async () => {
    dir = await tempDir();
    pki = await ensurePki(dir, { hosts: ['api.example.test', '10.9.8.7', '2001:DB8::1'] });
  });

  test('writes keys 0600 and certificates 0644', async () => {
    for (const f of ['ca.key', 'apiserver.key', 'sa.key']) assert.equal(await mode(join(dir, f)), 0o600, f);
    for (const f of ['ca.crt', 'apiserver.crt', 'sa.pub']) assert.equal(await mode(join(dir, f)), 0o644, f);
    assert.equal(await readFile(pki.caCertPath, 'utf8'), pki.caCertPem);
  });

  test('serving certificate SANs cover loopback, host addresses and extra hosts', async () => {
    const cert = new X509Certificate(pki.servingCertPem);
    const hosts = certificateHosts(cert);
    for (const h of ['localhost', '127.0.0.1', '::1', 'api.example.test', '10.9.8.7', '2001:db8::1']) {
      assert.ok(hosts.includes(canonicalHost(h)), `${h} missing from ${hosts.join(',')}`);
    }
    assert.deepEqual(hosts, pki.servingHosts);
    assert.equal(cert.checkIP('10.9.8.7'), '10.9.8.7');
    assert.equal(cert.checkHost('api.example.test'), 'api.example.test');
    assert.equal(cert.checkHost('other.example.test'), undefined);
    const { stdout } = await run('openssl', ['x509', '-in', pki.servingCertPath, '-noout', '-text']);
    assert.match(stdout, /DNS:localhost/);
    assert.match(stdout, /DNS:api\.example\.test/);
    assert.match(stdout, /IP Address:127\.0\.0\.1/);
    assert.match(stdout, /IP Address:10\.9\.8\.7/);
    assert.match(stdout, /TLS Web Server Authentication/);
    assert.ok(cert.checkIssued(new X509Certificate(pki.caCertPem)));
  });

  test('a node https server with the serving certificate is verified by a client trusting the CA', async () => {
    const server = https.createServer({ cert: pki.servingCertPem, key: pki.servingKeyPem }, (_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      assert.equal(await fetchVia(port, '127.0.0.1', pki.caCertPem), 'ok');
      assert.equal(await fetchVia(port, '127.0.0.1', pki.caCertPem, 'localhost'), 'ok');
      assert.equal(await fetchVia(port, '127.0.0.1', pki.caCertPem, 'api.example.test'), 'ok');
      await assert.rejects(fetchVia(port, '127.0.0.1', pki.caCertPem, 'not-in-cert.example'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
      const otherCa = (await ensurePki(await tempDir(), { hosts: [] })).caCertPem;
      await assert.rejects(fetchVia(port, '127.0.0.1', otherCa), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    } finally {
      server.close();
    }
  });

  test('is idempotent, and reissues only the serving certificate when the SAN set changes', async () => {
    const again = await ensurePki(dir, { hosts: ['10.9.8.7', 'api.example.test', '2001:db8:0::1'] });
    assert.equal(again.caCertPem, pki.caCertPem);
    assert.equal(again.servingCertPem, pki.servingCertPem);
    assert.equal(again.saPrivateKeyPem, pki.saPrivateKeyPem);

    const changed = await ensurePki(dir, { hosts: ['api.example.test'] });
    assert.equal(changed.caCertPem, pki.caCertPem);
    assert.notEqual(changed.servingCertPem, pki.servingCertPem);
    assert.equal(new X509Certificate(changed.servingCertPem).checkIP('10.9.8.7'), undefined);
    assert.equal(await readFile(join(dir, 'apiserver.crt'), 'utf8'), changed.servingCertPem);
    pki = await ensurePki(dir, { hosts: ['api.example.test', '10.9.8.7', '2001:DB8::1'] });
  });

  test('reissues a serving certificate whose key no longer matches', async () => {
    const d = await tempDir();
    const first = await ensurePki(d, { hosts: [] });
    const stranger = await ensurePki(await tempDir(), { hosts: [] });
    await writeFile(join(d, 'apiserver.key'), stranger.servingKeyPem);
    const second = await ensurePki(d, { hosts: [] });
    assert.notEqual(second.servingCertPem, first.servingCertPem);
    assert.ok(new X509Certificate(second.servingCertPem).checkPrivateKey(createPrivateKey(second.servingKeyPem)));
  });

  test('refuses a CA certificate that does not match its key instead of rotating the CA', async () => {
    const d = await tempDir();
    await ensurePki(d, { hosts: [] });
    const stranger = await ensurePki(await tempDir(), { hosts: [] });
    await writeFile(join(d, 'ca.key'), await readFile(stranger.caKeyPath));
    await assert.rejects(ensurePki(d, { hosts: [] }), /ca\.crt is not a CA certificate matching .*ca\.key/);
  });

  test('keeps a kubelet-client certificate for the API server, reissued when missing or foreign', async () => {
    const cert = new X509Certificate(pki.kubeletClientCertPem);
    assert.deepEqual(cert.subject.split('\n'), ['O=system:masters', `CN=${KUBELET_CLIENT_CN}`]);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.ok(cert.checkIssued(new X509Certificate(pki.caCertPem)));
    assert.equal(await mode(pki.kubeletClientKeyPath), 0o600);
    const d = await tempDir();
    const first = await ensurePki(d, { hosts: [] });
    assert.equal((await ensurePki(d, { hosts: [] })).kubeletClientCertPem, first.kubeletClientCertPem);
    await rm(first.kubeletClientCertPath);
    const reissued = await ensurePki(d, { hosts: [] });
    assert.notEqual(reissued.kubeletClientCertPem, first.kubeletClientCertPem);
    await writeFile(reissued.kubeletClientCertPath, (await issueClientCert(reissued, { cn: 'someone-else', groups: [] })).certPem);
    const fixed = await ensurePki(d, { hosts: [] });
    assert.equal(new X509Certificate(fixed.kubeletClientCertPem).subject, cert.subject);
    assert.ok(new X509Certificate(fixed.kubeletClientCertPem).checkPrivateKey(createPrivateKey(fixed.kubeletClientKeyPem)));
  });

  test('issueServingCert signs a server certificate for the given hosts', async () => {
    const { certPem, keyPem } = await issueServingCert(pki, { cn: 'system:node:n1', hosts: ['127.0.0.1', 'n1.example'] });
    const cert = new X509Certificate(certPem);
    assert.deepEqual(certificateHosts(cert), ['n1.example', '127.0.0.1']);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.ok(cert.checkPrivateKey(createPrivateKey(keyPem)));
    await assert.rejects(issueServingCert(pki, { cn: 'x', hosts: [] }), /at least one host/);
  });

  test('rejects a host that is neither an IP nor a DNS name', async () => {
    await assert.rejects(ensurePki(await tempDir(), { hosts: ['bad host!'] }), /host "bad host!" is neither an IP address nor a valid DNS name/);
  });

  test('service-account key pair signs and verifies ES256-style signatures', () => {
    const data = Buffer.from('header.payload');
    const sig = sign('sha256', data, { key: pki.saPrivateKeyPem, dsaEncoding: 'ieee-p1363' });
    assert.equal(sig.length, 64);
    assert.ok(verify('sha256', data, { key: pki.saPublicKeyPem, dsaEncoding: 'ieee-p1363' }, sig));
    assert.equal(createPublicKey(pki.saPublicKeyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1');
  });

  test('issueClientCert puts the user in CN and groups in O, for client auth only', async () => {
    const { certPem, keyPem } = await issueClientCert(pki, { cn: 'alice', groups: ['dev', 'system:masters'], days: 2 });
    const cert = new X509Certificate(certPem);
    assert.deepEqual(cert.subject.split('\n').sort(), ['CN=alice', 'O=dev', 'O=system:masters']);
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.ok(cert.checkPrivateKey(createPrivateKey(keyPem)));
    assert.ok(cert.verify(new X509Certificate(pki.caCertPem).publicKey));
    const lifetime = Date.parse(cert.validTo) - Date.parse(cert.validFrom);
    assert.equal(Math.round(lifetime / 86_400_000), 2);
    await assert.rejects(issueClientCert(pki, { cn: '', groups: [] }), /user name "" must be non-empty/);
    await assert.rejects(issueClientCert(pki, { cn: 'bob', groups: [], days: 0 }), /days must be an integer/);
  });

  test('signCsr signs the requester key with the subject and usages it is given', async () => {
    const d = await tempDir();
    await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', join(d, 'n.key')]);
    await run('openssl', ['req', '-new', '-key', join(d, 'n.key'), '-subj', '/O=system:masters/CN=evil', '-out', join(d, 'n.csr')]);
    const csrPem = await readFile(join(d, 'n.csr'), 'utf8');
    const certPem = await signCsr(pki, csrPem, {
      cn: 'system:node:edge-1',
      groups: ['system:nodes'],
      days: 30,
      usages: ['digital signature', 'key encipherment', 'client auth', 'server auth'],
      hosts: ['edge-1', '192.168.7.9'],
    });
    const cert = new X509Certificate(certPem);
    assert.deepEqual(cert.subject.split('\n').sort(), ['CN=system:node:edge-1', 'O=system:nodes']);
    assert.deepEqual([...(cert.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    assert.equal(cert.checkIP('192.168.7.9'), '192.168.7.9');
    assert.ok(cert.checkPrivateKey(createPrivateKey(await readFile(join(d, 'n.key')))));
    assert.ok(cert.checkIssued(new X509Certificate(pki.caCertPem)));

    await assert.rejects(signCsr(pki, csrPem, { cn: 'x', groups: [], days: 1, usages: ['cert sign' as never] }), /unsupported key usage "cert sign"/);
    await assert.rejects(signCsr(pki, 'garbage', { cn: 'x', groups: [], days: 1, usages: ['client auth'] }), /PEM "CERTIFICATE REQUEST"/);
    // Flip one character inside the base64 body: the self-signature no longer verifies.
    const lines = csrPem.split('\n');
    const mid = lines[3]!;
    lines[3] = mid.slice(0, 10) + (mid[10] === 'A' ? 'B' : 'A') + mid.slice(11);
    await assert.rejects(signCsr(pki, lines.join('\n'), { cn: 'x', groups: [], days: 1, usages: ['client auth'] }), /openssl req failed/);
  });
});
