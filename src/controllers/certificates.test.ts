import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kubectl, type Kubectl } from '../../test/e2e/harness.js';
import { waitFor } from '../../test/support/wait.js';
import {
  KUBELET_SERVING_SIGNER,
  KUBE_APISERVER_CLIENT_KUBELET_SIGNER,
  bytesOfPem,
  csrCondition,
  pemOfBytes,
  type CertificateSigningRequest,
} from '../api/certificates.js';
import { ApiError } from '../api/errors.js';
import { createBootstrapToken } from '../apiserver/auth/bootstrap-token.js';
import { certificateHosts, createCertificateRequest, issueClientCert, newEcKey } from '../apiserver/auth/pki.js';
import { ApiServer } from '../apiserver/server.js';
import { KubeClient } from '../client/client.js';
import { resource } from '../client/informer.js';
import { APPROVAL_REASON } from './certificates-approving.js';
import { SIGNER_VALIDATION_FAILURE } from './certificates-signing.js';
import { runControllers } from './manager.js';

const CSRS = resource('certificates.k8s.io/certificatesigningrequests');
const CLIENT_USAGES = ['digital signature', 'client auth'];
const SERVING_USAGES = ['digital signature', 'key encipherment', 'server auth'];

async function csrBody(name: string, signerName: string, usages: string[], subject: { cn: string; groups: string[]; hosts?: string[] }) {
  const key = await newEcKey();
  const request = await createCertificateRequest(key.keyPem, subject);
  return { apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name }, spec: { request: bytesOfPem(request), signerName, usages } };
}

function isInvalid(err: unknown, pattern: RegExp): boolean {
  return err instanceof ApiError && err.code === 422 && err.reason === 'Invalid' && pattern.test(err.message);
}

describe('certificate controllers and the CSR API', () => {
  let dir: string;
  let server: ApiServer;
  let admin: KubeClient;
  let bootstrapper: KubeClient;
  let node1: KubeClient;
  let k: Kubectl;
  const stop = new AbortController();
  let controllers: Promise<void>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-csr-controllers-'));
    server = await ApiServer.start({ dataDir: dir, port: 0, host: '127.0.0.1' });
    admin = KubeClient.fromKubeconfig(server.kubeconfigPath);
    bootstrapper = new KubeClient({ server: server.url, caPem: server.admin.caPem, token: await createBootstrapToken(admin) });
    const n1 = await issueClientCert(server.pki!, { cn: 'system:node:n1', groups: ['system:nodes'] });
    node1 = new KubeClient({ server: server.url, caPem: server.admin.caPem, ...n1 });
    k = await kubectl(server.kubeconfigPath);
    controllers = runControllers(admin, {
      signal: stop.signal,
      controllers: ['csr-approving', 'csr-signing'],
      clusterSigningCertFile: server.pki!.caCertPath,
      clusterSigningKeyFile: server.pki!.caKeyPath,
    });
  });

  after(async () => {
    stop.abort();
    await controllers;
    await k?.cleanup();
    for (const c of [admin, bootstrapper, node1]) c?.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const issued = (name: string) =>
    waitFor(`${name} to be issued`, async () => {
      const csr = await admin.get<CertificateSigningRequest>(CSRS, undefined, name);
      return csr.status?.certificate ? csr : undefined;
    });

  it('records the requester from authentication, not from the body', async () => {
    const body = await csrBody('forged', 'example.com/widgets', CLIENT_USAGES, { cn: 'x', groups: [] });
    const created = await bootstrapper.create<CertificateSigningRequest>(CSRS, undefined, {
      ...body,
      spec: { ...body.spec, username: 'kubernetes-admin', groups: ['system:masters'] },
      status: { conditions: [{ type: 'Approved', status: 'True' }] },
    });
    assert.match(created.spec.username!, /^system:bootstrap:[a-z0-9]{6}$/);
    assert.deepEqual(created.spec.groups!.sort(), ['system:authenticated', 'system:bootstrappers']);
    assert.deepEqual(created.status?.conditions ?? [], [], 'a CSR cannot be created approved');
  });

  it('auto-approves and signs kubelet client requests from bootstrappers and from the node itself, and nothing else', async () => {
    // Left pending: a client CSR whose CN is not a node, one node asking for another's identity, a serving CSR from a bootstrapper.
    await bootstrapper.create(CSRS, undefined, await csrBody('wrong-cn', KUBE_APISERVER_CLIENT_KUBELET_SIGNER, CLIENT_USAGES, { cn: 'someone', groups: ['system:nodes'] }));
    await node1.create(CSRS, undefined, await csrBody('other-node', KUBE_APISERVER_CLIENT_KUBELET_SIGNER, CLIENT_USAGES, { cn: 'system:node:n2', groups: ['system:nodes'] }));
    await bootstrapper.create(CSRS, undefined, await csrBody('serving-by-token', KUBELET_SERVING_SIGNER, SERVING_USAGES, { cn: 'system:node:n1', groups: ['system:nodes'], hosts: ['10.1.2.3'] }));

    await bootstrapper.create(CSRS, undefined, await csrBody('join', KUBE_APISERVER_CLIENT_KUBELET_SIGNER, CLIENT_USAGES, { cn: 'system:node:n7', groups: ['system:nodes'] }));
    await node1.create(CSRS, undefined, await csrBody('renew', KUBE_APISERVER_CLIENT_KUBELET_SIGNER, CLIENT_USAGES, { cn: 'system:node:n1', groups: ['system:nodes'] }));
    await node1.create(CSRS, undefined, await csrBody('serving', KUBELET_SERVING_SIGNER, SERVING_USAGES, { cn: 'system:node:n1', groups: ['system:nodes'], hosts: ['n1.edge', '10.1.2.3'] }));

    const join = await issued('join');
    assert.equal(csrCondition(join, 'Approved')?.reason, APPROVAL_REASON);
    assert.match(csrCondition(join, 'Approved')!.message!, /^Auto approving kubelet client certificate after SubjectAccessReview/);
    const cert = new X509Certificate(pemOfBytes(join.status!.certificate));
    assert.equal(cert.subject, 'O=system:nodes\nCN=system:node:n7');
    assert.ok(cert.checkIssued(new X509Certificate(server.admin.caPem)));
    assert.deepEqual(cert.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'client auth only');

    const renew = await issued('renew');
    assert.match(csrCondition(renew, 'Approved')!.message!, /^Auto approving self kubelet client certificate/);

    const serving = await issued('serving');
    const servingCert = new X509Certificate(pemOfBytes(serving.status!.certificate));
    assert.deepEqual(certificateHosts(servingCert), ['n1.edge', '10.1.2.3']);
    assert.deepEqual(servingCert.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'server auth only');

    // The three above were queued first; by now the approver has judged them and left them pending.
    for (const name of ['wrong-cn', 'other-node', 'serving-by-token']) {
      const csr = await admin.get<CertificateSigningRequest>(CSRS, undefined, name);
      assert.deepEqual(csr.status?.conditions ?? [], [], `${name} stays pending`);
      assert.equal(csr.status?.certificate, undefined);
    }
  });

  it('marks an approved request that breaks the kubelet rules Failed instead of signing it', async () => {
    await admin.create(CSRS, undefined, await csrBody('bad-client', KUBE_APISERVER_CLIENT_KUBELET_SIGNER, CLIENT_USAGES, { cn: 'bob', groups: ['system:nodes'] }));
    await k('certificate', 'approve', 'bad-client');
    const failed = await waitFor('bad-client to fail', async () => csrCondition(await admin.get<CertificateSigningRequest>(CSRS, undefined, 'bad-client'), 'Failed'));
    assert.equal(failed.reason, SIGNER_VALIDATION_FAILURE);
    assert.equal(failed.message, 'subject common name does not begin with system:node:');
    const csr = await admin.get<CertificateSigningRequest>(CSRS, undefined, 'bad-client');
    assert.equal(csr.status?.certificate, undefined);
  });

  it('serves the approval subresource to kubectl certificate approve/deny, and refuses Approved with Denied', async () => {
    await admin.create(CSRS, undefined, await csrBody('widget-a', 'example.com/widgets', ['client auth'], { cn: 'a', groups: [] }));
    await admin.create(CSRS, undefined, await csrBody('widget-b', 'example.com/widgets', ['client auth'], { cn: 'b', groups: [] }));
    assert.match(await k('certificate', 'approve', 'widget-a'), /certificatesigningrequest.certificates.k8s.io\/widget-a approved/);
    assert.match(await k('certificate', 'deny', 'widget-b'), /widget-b denied/);
    const a = await admin.get<CertificateSigningRequest>(CSRS, undefined, 'widget-a');
    assert.equal(csrCondition(a, 'Approved')?.reason, 'KubectlApprove');
    assert.ok(csrCondition(a, 'Approved')?.lastTransitionTime, 'the server stamps lastTransitionTime');
    assert.equal(csrCondition(await admin.get<CertificateSigningRequest>(CSRS, undefined, 'widget-b'), 'Denied')?.reason, 'KubectlDeny');
    const table = await k('get', 'csr', 'widget-a', 'widget-b');
    assert.match(table, /widget-a\s.*Approved/);
    assert.match(table, /widget-b\s.*Denied/);

    // Both conditions at once: 422, whichever way it is sent.
    const both = { ...a, status: { conditions: [...a.status!.conditions!, { type: 'Denied', status: 'True', reason: 'Changed', message: 'mind' }] } };
    await assert.rejects(admin.update(CSRS, both, { subresource: 'approval' }), (err) => isInvalid(err, /Approved and Denied conditions are mutually exclusive/));
    const denyAgain = await k.result('certificate', 'deny', 'widget-a');
    assert.notEqual(denyAgain.code, 0);
    assert.match(denyAgain.stderr, /mutually exclusive|already/);
    // An approval cannot be taken back either.
    await assert.rejects(admin.update(CSRS, { ...a, status: { conditions: [] } }, { subresource: 'approval' }), (err) => isInvalid(err, /may not remove a condition of type "Approved"/));
  });

  it('writes status.certificate only through status, and approval only through approval', async () => {
    await admin.create(CSRS, undefined, await csrBody('widget-c', 'example.com/widgets', ['client auth'], { cn: 'c', groups: [] }));
    const c = await admin.get<CertificateSigningRequest>(CSRS, undefined, 'widget-c');
    const fake = bytesOfPem((await issueClientCert(server.pki!, { cn: 'c', groups: [] })).certPem);

    const viaMain = await admin.update(CSRS, { ...c, spec: { ...c.spec, signerName: 'example.com/other' }, status: { certificate: fake } });
    assert.equal(viaMain.status?.certificate, undefined, 'the main resource keeps status');
    assert.equal(viaMain.spec.signerName, 'example.com/widgets', 'spec is immutable');
    const viaApproval = await admin.update(CSRS, { ...viaMain, status: { certificate: fake, conditions: [{ type: 'Approved', status: 'True', reason: 'R' }] } }, { subresource: 'approval' });
    assert.equal(viaApproval.status?.certificate, undefined, 'approval writes conditions only');
    assert.equal(csrCondition(viaApproval, 'Approved')?.reason, 'R');

    await assert.rejects(admin.update(CSRS, { ...viaApproval, status: { ...viaApproval.status, conditions: [] } }, { subresource: 'status' }), (err) =>
      isInvalid(err, /may not remove a condition of type "Approved"/));
    await assert.rejects(
      admin.update(CSRS, { ...viaApproval, status: { ...viaApproval.status, conditions: [...viaApproval.status!.conditions!, { type: 'Denied', status: 'True' }] } }, { subresource: 'status' }),
      (err) => isInvalid(err, /updates may not add a condition of type "Denied"/),
    );
    await assert.rejects(admin.update(CSRS, { ...viaApproval, status: { ...viaApproval.status, certificate: bytesOfPem('junk') } }, { subresource: 'status' }), (err) =>
      isInvalid(err, /status.certificate: Invalid value: "<certificate data>": must contain at least one CERTIFICATE PEM block/));
    const signed = await admin.update(CSRS, { ...viaApproval, status: { ...viaApproval.status, certificate: fake } }, { subresource: 'status' });
    assert.equal(signed.status?.certificate, fake);
    await assert.rejects(admin.update(CSRS, { ...signed, status: { ...signed.status, certificate: bytesOfPem(server.admin.certPem) } }, { subresource: 'status' }), (err) =>
      isInvalid(err, /updates may not modify existing certificate content/));
  });

  it('refuses a CSR whose request is not a signed PKCS#10 request', async () => {
    const body = await csrBody('garbage', 'example.com/widgets', ['client auth'], { cn: 'g', groups: [] });
    await assert.rejects(admin.create(CSRS, undefined, { ...body, spec: { ...body.spec, request: bytesOfPem('not a request') } }), (err) =>
      isInvalid(err, /spec.request: Invalid value: "<request data>": expected exactly one PEM block, found 0/));
    await assert.rejects(admin.create(CSRS, undefined, { ...body, spec: { ...body.spec, signerName: 'widgets', usages: ['client auth', 'client auth'] } }), (err) =>
      isInvalid(err, /spec.usages\[1\]: Duplicate value: "client auth".*spec.signerName: Invalid value: "widgets": must be a fully qualified domain and path/));
  });
});
