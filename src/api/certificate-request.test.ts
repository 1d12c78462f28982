import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createCertificateRequest, newEcKey } from '../apiserver/auth/pki.js';
import { CertificateRequestError, certificateChainProblem, parseCertificateRequest, pemBlocks } from './certificate-request.js';

describe('parseCertificateRequest', () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-csr-parse-'));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the subject and SANs of an EC request and checks its signature', async () => {
    const key = await newEcKey();
    const pem = await createCertificateRequest(key.keyPem, { cn: 'system:node:n1', groups: ['system:nodes'], hosts: ['n1.example', '10.0.0.7', '::1'] });
    const req = parseCertificateRequest(pem);
    assert.equal(req.commonName, 'system:node:n1');
    assert.deepEqual(req.organizations, ['system:nodes']);
    assert.deepEqual(req.dnsNames, ['n1.example']);
    assert.deepEqual(req.ipAddresses, ['10.0.0.7', '0:0:0:0:0:0:0:1']);
    assert.deepEqual(req.emailAddresses, []);
    assert.equal(req.publicKey.asymmetricKeyType, 'ec');
  });

  it('reads RSA and Ed25519 requests, several organizations, email and URI SANs (made by the openssl CLI)', async () => {
    for (const [type, opts] of [['rsa', { modulusLength: 2048 }], ['ed25519', {}]] as const) {
      const { privateKey } = generateKeyPairSync(type as 'rsa', opts as { modulusLength: number });
      const keyPath = join(dir, `${type}.key`);
      await writeFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
      const pem = execFileSync('openssl', [
        'req', '-new', '-key', keyPath, '-subj', '/O=a/O=b/CN=someone',
        '-addext', 'subjectAltName=email:x@example.com,URI:spiffe://c/d',
      ]).toString();
      const req = parseCertificateRequest(pem);
      assert.equal(req.commonName, 'someone');
      assert.deepEqual(req.organizations, ['a', 'b']);
      assert.deepEqual(req.emailAddresses, ['x@example.com']);
      assert.deepEqual(req.uris, ['spiffe://c/d']);
    }
  });

  it('refuses a request whose signature does not verify, and malformed input, with a precise error', async () => {
    const key = await newEcKey();
    const pem = await createCertificateRequest(key.keyPem, { cn: 'x', groups: [] });
    const der = pemBlocks(pem)[0]!.der;
    // Flip a bit inside the common name: the structure stays valid, the signature no longer matches.
    const at = der.indexOf(Buffer.from('x'), 10);
    der[at] ^= 0x01;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    assert.throws(() => parseCertificateRequest(tampered), { name: 'CertificateRequestError', message: /signature does not verify/ });
    assert.throws(() => parseCertificateRequest('hello'), /expected exactly one PEM block, found 0/);
    assert.throws(() => parseCertificateRequest(key.keyPem), /PEM block type must be CERTIFICATE REQUEST, found PRIVATE KEY/);
    const truncated = `-----BEGIN CERTIFICATE REQUEST-----\n${der.subarray(0, 40).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    assert.throws(() => parseCertificateRequest(truncated), CertificateRequestError);
  });

  it('tells whether a status.certificate is a chain of CERTIFICATE blocks', async () => {
    const key = await newEcKey();
    const csr = await createCertificateRequest(key.keyPem, { cn: 'x', groups: [] });
    const keyPath = join(dir, 'self.key');
    await writeFile(keyPath, key.keyPem);
    const cert = execFileSync('openssl', ['req', '-x509', '-key', keyPath, '-subj', '/CN=x', '-days', '1']).toString();
    assert.equal(certificateChainProblem(cert), undefined);
    assert.equal(certificateChainProblem(cert + cert), undefined);
    assert.match(certificateChainProblem(csr)!, /only CERTIFICATE PEM blocks are allowed/);
    assert.match(certificateChainProblem('nothing')!, /at least one CERTIFICATE/);
  });
});
