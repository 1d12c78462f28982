import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from '../../test/support/wait.js';
import { parseCertificateRequest } from '../api/certificate-request.js';
import { pemOfBytes, type CertificateSigningRequest } from '../api/certificates.js';
import { ApiError } from '../api/errors.js';
import { createBootstrapToken } from '../apiserver/auth/bootstrap-token.js';
import { certificateHosts, issueClientCert } from '../apiserver/auth/pki.js';
import { KubeClient } from '../client/client.js';
import { resource } from '../client/informer.js';
import { ControlPlane } from '../controlplane/index.js';
import { CLIENT_CERT_FILE, CLIENT_KEY_FILE, JoinError, SERVING_KEY_FILE, joinCluster, type JoinOptions } from './bootstrap.js';

const CSRS = resource('certificates.k8s.io/certificatesigningrequests');
const WRONG_TOKEN = 'zzzzzz.zzzzzzzzzzzzzzzz';

describe('joinCluster', () => {
  let dir: string;
  let plane: ControlPlane;
  let admin: KubeClient;
  let token: string;
  const clients: KubeClient[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-join-'));
    // The real arrangement: csr-approving and csr-signing on the control plane's controller thread.
    plane = await ControlPlane.start({ dataDir: join(dir, 'server'), port: 0, host: '127.0.0.1', controllerNames: ['csr-approving', 'csr-signing'], scheduler: false });
    admin = KubeClient.fromKubeconfig(plane.server.kubeconfigPath);
    token = await createBootstrapToken(admin, { description: 'bootstrap.test' });
  });

  after(async () => {
    for (const c of clients) c.close();
    admin?.close();
    await plane?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const options = (nodeName: string, extra: Partial<JoinOptions> = {}): JoinOptions => ({
    server: plane.server.url,
    caPem: plane.server.admin.caPem,
    token,
    nodeName,
    certDir: join(dir, nodeName, 'pki'),
    servingHosts: ['127.0.0.1', `${nodeName}.edge`],
    ...extra,
  });
  const csrCount = async () => (await admin.list(CSRS)).items.length;

  it('joins with a bootstrap token: a client certificate that authenticates as the node, and a serving certificate', async () => {
    const lines: string[] = [];
    const creds = await joinCluster({ ...options('edge-1'), log: (l) => lines.push(l) });

    const cert = new X509Certificate(creds.client.certPem);
    assert.equal(cert.subject, 'O=system:nodes\nCN=system:node:edge-1');
    assert.ok(cert.checkIssued(new X509Certificate(plane.server.admin.caPem)));
    const serving = new X509Certificate(creds.serving.certPem);
    assert.equal(serving.subject, 'O=system:nodes\nCN=system:node:edge-1');
    assert.deepEqual(certificateHosts(serving), ['edge-1.edge', '127.0.0.1']);
    for (const file of [CLIENT_KEY_FILE, SERVING_KEY_FILE]) assert.equal((await stat(join(options('edge-1').certDir, file))).mode & 0o777, 0o600, file);
    assert.ok(lines.some((l) => /with the bootstrap token/.test(l)), lines.join('\n'));

    // The certificate is the node's identity: it reads its Node and lists pods, and may not delete nodes.
    await admin.create(resource('nodes'), undefined, { apiVersion: 'v1', kind: 'Node', metadata: { name: 'edge-1' } });
    const asNode = new KubeClient({ server: plane.server.url, caPem: plane.server.admin.caPem, certPem: creds.client.certPem, keyPem: creds.client.keyPem });
    clients.push(asNode);
    assert.equal((await asNode.get(resource('nodes'), undefined, 'edge-1')).metadata.name, 'edge-1');
    assert.ok(Array.isArray((await asNode.list(resource('pods'))).items));
    await assert.rejects(asNode.delete(resource('nodes'), undefined, 'edge-1'), (err) => err instanceof ApiError && err.code === 403 && /system:node:edge-1/.test(err.message));
  });

  it('reuses the certificates on disk without using the token, and renews only what no longer fits', async () => {
    const first = await joinCluster(options('edge-2'));
    const count = await csrCount();
    const again = await joinCluster(options('edge-2', { token: WRONG_TOKEN }));
    assert.deepEqual(again, first, 'the same credentials, read back from disk');
    assert.deepEqual(await joinCluster(options('edge-2', { token: undefined })), first, 'no token needed at all');
    assert.equal(await csrCount(), count, 'no request was made');

    // New serving addresses: a new serving certificate, requested with the client certificate, not the token.
    const moved = await joinCluster(options('edge-2', { token: WRONG_TOKEN, servingHosts: ['127.0.0.2'] }));
    assert.equal(moved.client.certPem, first.client.certPem);
    assert.deepEqual(certificateHosts(new X509Certificate(moved.serving.certPem)), ['127.0.0.2']);
    assert.equal(await csrCount(), count + 1);
  });

  it('renews a certificate about to expire with itself, and keeps it while the server cannot be reached', async () => {
    const certDir = options('edge-5').certDir;
    await mkdir(certDir, { recursive: true });
    // One day of life is inside CERT_RENEW_BEFORE_MS.
    const expiring = await issueClientCert(plane.server.pki!, { cn: 'system:node:edge-5', groups: ['system:nodes'], days: 1 });
    await writeFile(join(certDir, CLIENT_KEY_FILE), expiring.keyPem, { mode: 0o600 });
    await writeFile(join(certDir, CLIENT_CERT_FILE), expiring.certPem);

    const offline = await joinCluster(options('edge-5', { token: undefined, server: 'https://127.0.0.1:1' })).catch((err: Error) => err);
    // Offline, the client certificate is kept; the serving one cannot be had, which is the error.
    assert.ok(offline instanceof Error && /ECONNREFUSED/.test(offline.message), String(offline));
    assert.equal(await readFile(join(certDir, CLIENT_CERT_FILE), 'utf8'), expiring.certPem);

    const lines: string[] = [];
    const renewed = await joinCluster({ ...options('edge-5', { token: undefined }), log: (l) => lines.push(l) });
    assert.notEqual(renewed.client.certPem, expiring.certPem);
    assert.ok(Date.parse(new X509Certificate(renewed.client.certPem).validTo) > Date.now() + 300 * 86_400_000);
    assert.equal(new X509Certificate(renewed.client.certPem).subject, 'O=system:nodes\nCN=system:node:edge-5');
    assert.ok(lines.some((l) => /client certificate expires .*; renewing it/.test(l)), lines.join('\n'));
    const csrs = (await admin.list<CertificateSigningRequest>(CSRS)).items.filter((c) => c.spec.username === 'system:node:edge-5');
    assert.ok(csrs.some((c) => /self kubelet client certificate/.test(c.status?.conditions?.[0]?.message ?? '')), 'approved as a self-renewal');
  });

  it('fails at once on a rejected or malformed token, and on invalid options', async () => {
    await assert.rejects(joinCluster(options('edge-3', { token: WRONG_TOKEN })), (err) =>
      err instanceof JoinError && /^the bootstrap token was rejected \(401\): check --token/.test(err.message));
    await assert.rejects(joinCluster(options('edge-3', { token: 'not-a-token' })), (err) => err instanceof JoinError && /^--token: a bootstrap token has the form/.test(err.message));
    await assert.rejects(joinCluster(options('edge-3', { token: undefined })), (err) => err instanceof JoinError && /^--token: required, since .* holds no usable client certificate/.test(err.message));
    await assert.rejects(joinCluster(options('Edge_3')), (err) => err instanceof JoinError && /node name "Edge_3" is invalid/.test(err.message));
    await assert.rejects(joinCluster(options('edge-3', { servingHosts: ['bad host'] })), (err) => err instanceof JoinError && /^servingHosts: host "bad host"/.test(err.message));
    await assert.rejects(joinCluster(options('edge-3', { server: 'http://127.0.0.1:1' })), /must be an https:\/\/ URL/);
  });

  it('reports a denied request with its reason, and approves nothing its requester may not ask for', async () => {
    // Without the nodeclient grant, the approver's SubjectAccessReview says no and the request waits.
    await admin.delete(resource('rbac.authorization.k8s.io/clusterrolebindings'), undefined, 'system:certificates.k8s.io:certificatesigningrequests:nodeclient');
    const joining = joinCluster(options('edge-4'));
    joining.catch(() => {});
    const pending = await waitFor('the join request of edge-4', async () =>
      (await admin.list<CertificateSigningRequest>(CSRS)).items.find((c) => parseCertificateRequest(pemOfBytes(c.spec.request)).commonName === 'system:node:edge-4'));
    assert.equal(pending.status?.conditions, undefined);
    await admin.update(CSRS, { ...pending, status: { conditions: [{ type: 'Denied', status: 'True', reason: 'NotOnTheList', message: 'edge-4 is not expected' }] } }, { subresource: 'approval' });
    await assert.rejects(joining, (err) =>
      err instanceof JoinError && err.message === `certificate signing request ${pending.metadata.name} was denied: NotOnTheList: edge-4 is not expected`);
  });
});
