import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  KUBELET_SERVING_SIGNER,
  KUBE_APISERVER_CLIENT_KUBELET_SIGNER,
  NODES_GROUP,
  NODE_USER_PREFIX,
  bytesOfPem,
  csrCondition,
  isSettled,
  pemOfBytes,
  type CertificateSigningRequest,
} from '../api/certificates.js';
import { ApiError } from '../api/errors.js';
import { isDNS1123Subdomain } from '../api/validation/names.js';
import { writeFileAtomic } from '../apiserver/auth/atomic-file.js';
import { BootstrapTokenError, parseBootstrapToken } from '../apiserver/auth/bootstrap-token.js';
import { canonicalHost, certificateHosts, createCertificateRequest, newEcKey, readIfExists, type IssuedCert } from '../apiserver/auth/pki.js';
import { KubeClient, type Credentials } from '../client/client.js';
import { resource } from '../client/informer.js';

/**
 * How a node gets its credentials, as the kubelet's TLS bootstrap does:
 *
 * 1. Client certificate. One in `certDir` that the cluster CA issued to `system:node:<name>` (O
 *    `system:nodes`) with more than CERT_RENEW_BEFORE_MS left is used as it is, without the server:
 *    a node restarting offline still has its identity. One about to expire is renewed with itself
 *    (the approver's self-renewal path), and kept while still valid if renewal fails. Otherwise
 *    the node makes an EC P-256 key and a CSR for signer `kubernetes.io/kube-apiserver-client-kubelet`,
 *    sends it authenticated by the bootstrap token, and waits for the certificate.
 * 2. Serving certificate, for the node's :10250 API: reused and renewed on the same terms when its
 *    SANs are exactly `servingHosts`, else requested (signer `kubernetes.io/kubelet-serving`) with
 *    the client certificate.
 *
 * The cluster's csr-approving and csr-signing controllers approve and sign both. A Denied or Failed
 * request, or none within CSR_WAIT_TIMEOUT_MS, is an error naming the reason. Keys are written 0600
 * before their certificates, each with write-then-rename, so a crash leaves a pair that either fits
 * or is replaced on the next start.
 */

export const CLIENT_CERT_FILE = 'kubelet-client.crt';
export const CLIENT_KEY_FILE = 'kubelet-client.key';
export const SERVING_CERT_FILE = 'kubelet-serving.crt';
export const SERVING_KEY_FILE = 'kubelet-serving.key';
/** A certificate with less life than this left is renewed instead of reused. */
export const CERT_RENEW_BEFORE_MS = 24 * 3600_000;
/** How long a join waits for a request to be approved and signed. */
export const CSR_WAIT_TIMEOUT_MS = 15 * 60_000;
/** A pending request's watch is renewed this often, re-reading the request each time. */
const CSR_WATCH_SECONDS = 30;
/** Pause before watching again after a watch failed. */
const CSR_WATCH_RETRY_MS = 1_000;
const CSR_NAME_PREFIX = 'node-csr-';
const CLIENT_USAGES = ['digital signature', 'client auth'];
const SERVING_USAGES = ['digital signature', 'key encipherment', 'server auth'];
const CSRS = resource('certificates.k8s.io/certificatesigningrequests');
const TOKEN_REJECTED =
  'the bootstrap token was rejected (401): check --token; its Secret kube-system/bootstrap-token-<id> must exist and not be expired';
const CERT_REJECTED = 'the node client certificate was rejected (401): delete it from the certificate directory and join again with a bootstrap token';

export interface JoinOptions {
  /** The API server's https URL. */
  server: string;
  /** The cluster CA (PEM): verifies the server and every certificate on disk or issued. */
  caPem: string;
  /** A bootstrap token (`<id>.<secret>`); needed only when there is no usable client certificate. */
  token?: string;
  nodeName: string;
  certDir: string;
  /** DNS names and IPs the node's serving certificate must carry. */
  servingHosts: string[];
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface NodeCredentials {
  client: IssuedCert;
  serving: IssuedCert;
}

export class JoinError extends Error {
  override readonly name = 'JoinError';
}

interface Wanted {
  cn: string;
  groups: string[];
  /** Canonical, sorted SANs; absent for a client certificate. */
  hosts?: string[];
}

type Fit = { state: 'fresh' | 'expiring'; creds: IssuedCert; notAfter: string } | undefined;

export async function joinCluster(opts: JoinOptions): Promise<NodeCredentials> {
  const log = opts.log ?? (() => {});
  const nameProblems = isDNS1123Subdomain(opts.nodeName);
  if (nameProblems.length) throw new JoinError(`node name ${JSON.stringify(opts.nodeName)} is invalid: ${nameProblems.join('; ')}`);
  let server: URL;
  try {
    server = new URL(opts.server);
  } catch {
    throw new JoinError(`server ${JSON.stringify(opts.server)} is not a URL; pass https://<host>:<port>`);
  }
  if (server.protocol !== 'https:') throw new JoinError(`server ${opts.server} must be an https:// URL`);
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(opts.caPem);
  } catch {
    throw new JoinError('the cluster CA is not a PEM certificate');
  }
  if (opts.servingHosts.length === 0) throw new JoinError('servingHosts is empty: the serving certificate needs at least one DNS name or IP');
  let hosts: string[];
  try {
    hosts = sortHosts(opts.servingHosts.map(canonicalHost));
  } catch (err) {
    throw new JoinError(`servingHosts: ${(err as Error).message}`);
  }
  await mkdir(opts.certDir, { recursive: true, mode: 0o700 });

  const identity = { cn: NODE_USER_PREFIX + opts.nodeName, groups: [NODES_GROUP] };
  const files = {
    client: { cert: join(opts.certDir, CLIENT_CERT_FILE), key: join(opts.certDir, CLIENT_KEY_FILE) },
    serving: { cert: join(opts.certDir, SERVING_CERT_FILE), key: join(opts.certDir, SERVING_KEY_FILE) },
  };
  const request = (credentials: Credentials, unauthorized: string, signerName: string, usages: string[], wanted: Wanted) =>
    withClient(credentials, (client) => requestCertificate(client, ca, { unauthorized, signerName, usages, wanted, signal: opts.signal, log }));

  // Renewing needs the server; an offline node keeps a still-valid certificate rather than fail.
  const renewOrKeep = async (what: string, old: NonNullable<Fit>, renew: () => Promise<IssuedCert>): Promise<IssuedCert> => {
    log(`bootstrap: the ${what} certificate expires ${old.notAfter}; renewing it`);
    try {
      return await renew();
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      log(`bootstrap: renewing the ${what} certificate failed (${(err as Error).message}); using it until it expires`);
      return old.creds;
    }
  };

  let client: IssuedCert;
  const onDisk = await fitting(files.client, ca, identity);
  if (onDisk?.state === 'fresh') {
    log(`bootstrap: reusing the client certificate in ${opts.certDir} (valid until ${onDisk.notAfter})`);
    client = onDisk.creds;
  } else if (onDisk) {
    client = await renewOrKeep('client', onDisk, async () => {
      const renewed = await request({ server: opts.server, caPem: opts.caPem, ...certCredentials(onDisk.creds) }, CERT_REJECTED, KUBE_APISERVER_CLIENT_KUBELET_SIGNER, CLIENT_USAGES, identity);
      await store(files.client, renewed);
      return renewed;
    });
  } else {
    if (opts.token === undefined) {
      throw new JoinError(`--token: required, since ${opts.certDir} holds no usable client certificate for ${identity.cn}`);
    }
    try {
      parseBootstrapToken(opts.token);
    } catch (err) {
      if (err instanceof BootstrapTokenError) throw new JoinError(`--token: ${err.message}`);
      throw err;
    }
    log(`bootstrap: requesting a client certificate for ${identity.cn} with the bootstrap token`);
    client = await request({ server: opts.server, caPem: opts.caPem, token: opts.token }, TOKEN_REJECTED, KUBE_APISERVER_CLIENT_KUBELET_SIGNER, CLIENT_USAGES, identity);
    await store(files.client, client);
  }

  const servingWanted = { ...identity, hosts };
  const requestServing = async () => {
    log(`bootstrap: requesting a serving certificate for ${hosts.join(', ')}`);
    const issued = await request({ server: opts.server, caPem: opts.caPem, ...certCredentials(client) }, CERT_REJECTED, KUBELET_SERVING_SIGNER, SERVING_USAGES, servingWanted);
    await store(files.serving, issued);
    return issued;
  };
  let serving: IssuedCert;
  const servingOnDisk = await fitting(files.serving, ca, servingWanted);
  if (servingOnDisk?.state === 'fresh') {
    log(`bootstrap: reusing the serving certificate in ${opts.certDir} (valid until ${servingOnDisk.notAfter})`);
    serving = servingOnDisk.creds;
  } else if (servingOnDisk) {
    serving = await renewOrKeep('serving', servingOnDisk, requestServing);
  } else {
    serving = await requestServing();
  }
  return { client, serving };
}

function certCredentials(creds: IssuedCert): Pick<Credentials, 'certPem' | 'keyPem'> {
  return { certPem: creds.certPem, keyPem: creds.keyPem };
}

async function withClient<T>(credentials: Credentials, fn: (client: KubeClient) => Promise<T>): Promise<T> {
  const client = new KubeClient(credentials, 'atoll-agent-bootstrap');
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

function sortHosts(hosts: string[]): string[] {
  return [...new Set(hosts)].sort();
}

/** Node's `X509Certificate.subject` as attribute/value pairs. */
function subjectOf(cert: X509Certificate): { cn: string[]; o: string[] } {
  const out = { cn: [] as string[], o: [] as string[] };
  for (const line of cert.subject.split('\n')) {
    const eq = line.indexOf('=');
    if (line.slice(0, eq) === 'CN') out.cn.push(line.slice(eq + 1));
    if (line.slice(0, eq) === 'O') out.o.push(line.slice(eq + 1));
  }
  return out;
}

/** Why `certPem` is not the certificate `wanted` from `ca` for `keyPem`, or undefined if it is. */
function mismatch(certPem: string, keyPem: string, ca: X509Certificate, wanted: Wanted): string | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return 'it does not match its key';
  } catch (err) {
    return `it does not parse: ${(err as Error).message}`;
  }
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return 'the cluster CA did not issue it';
  const subject = subjectOf(cert);
  if (subject.cn.length !== 1 || subject.cn[0] !== wanted.cn) return `its common name is ${subject.cn.join(',')}, not ${wanted.cn}`;
  if (subject.o.slice().sort().join(',') !== wanted.groups.slice().sort().join(',')) return `its organizations are ${subject.o.join(',')}, not ${wanted.groups.join(',')}`;
  if (wanted.hosts && sortHosts(certificateHosts(cert)).join(',') !== wanted.hosts.join(',')) return 'its subject alternative names differ';
  if (Date.parse(cert.validTo) <= Date.now()) return `it expired ${cert.validTo}`;
  return undefined;
}

/** A usable certificate and key on disk, and whether it is due for renewal. */
async function fitting(paths: { cert: string; key: string }, ca: X509Certificate, wanted: Wanted): Promise<Fit> {
  const [certPem, keyPem] = await Promise.all([readIfExists(paths.cert), readIfExists(paths.key)]);
  if (certPem === undefined || keyPem === undefined || mismatch(certPem, keyPem, ca, wanted)) return undefined;
  const notAfter = new X509Certificate(certPem).validTo;
  const state = Date.parse(notAfter) - Date.now() < CERT_RENEW_BEFORE_MS ? 'expiring' : 'fresh';
  return { state, creds: { certPem, keyPem }, notAfter };
}

async function store(paths: { cert: string; key: string }, creds: IssuedCert): Promise<void> {
  await writeFileAtomic(paths.key, creds.keyPem, 0o600);
  await writeFileAtomic(paths.cert, creds.certPem, 0o644);
}

interface CertificateRequestPlan {
  /** What to say when the server refuses the credential the request is sent with. */
  unauthorized: string;
  signerName: string;
  usages: string[];
  wanted: Wanted;
  signal?: AbortSignal;
  log: (line: string) => void;
}

/** Creates a CSR for a new key, waits for its certificate, and checks what came back. */
async function requestCertificate(client: KubeClient, ca: X509Certificate, plan: CertificateRequestPlan): Promise<IssuedCert> {
  const key = await newEcKey();
  const csrPem = await createCertificateRequest(key.keyPem, { cn: plan.wanted.cn, groups: plan.wanted.groups, hosts: plan.wanted.hosts });
  let created: CertificateSigningRequest;
  try {
    created = await client.create<CertificateSigningRequest>(CSRS, undefined, {
      apiVersion: 'certificates.k8s.io/v1',
      kind: 'CertificateSigningRequest',
      metadata: { generateName: CSR_NAME_PREFIX },
      spec: { request: bytesOfPem(csrPem), signerName: plan.signerName, usages: plan.usages },
    });
  } catch (err) {
    if (err instanceof ApiError && err.code === 401) throw new JoinError(plan.unauthorized);
    if (err instanceof ApiError && err.code === 403) throw new JoinError(`the server refused to take a certificate signing request (403): ${err.message}`);
    throw err;
  }
  const name = created.metadata.name!;
  plan.log(`bootstrap: created certificate signing request ${name} (${plan.signerName}); waiting for approval and signing`);
  const certPem = await waitForCertificate(client, created, plan.signal);
  const problem = mismatch(certPem, key.keyPem, ca, plan.wanted);
  if (problem) throw new JoinError(`the certificate issued for ${name} is unusable: ${problem}`);
  plan.log(`bootstrap: ${name} issued, valid until ${new X509Certificate(certPem).validTo}`);
  return { certPem, keyPem: key.keyPem };
}

/** The certificate of `csr` once issued; throws when it is Denied or Failed, on timeout, or on abort. */
async function waitForCertificate(client: KubeClient, csr: CertificateSigningRequest, signal?: AbortSignal): Promise<string> {
  const name = csr.metadata.name!;
  const timeout = AbortSignal.timeout(CSR_WAIT_TIMEOUT_MS);
  const stop = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let current = csr;
  for (;;) {
    const issued = outcome(current);
    if (issued) return issued;
    signal?.throwIfAborted();
    if (timeout.aborted) {
      throw new JoinError(
        `certificate signing request ${name} was not approved and signed within ${CSR_WAIT_TIMEOUT_MS / 60_000} minutes: ` +
          `check that the cluster runs csr-approving and csr-signing, or approve it with kubectl certificate approve ${name}`,
      );
    }
    // Watch until the request settles or the watch ends, then re-read it: a lost event costs one period.
    // A broken watch is not fatal: the re-read below fails too if the server is really gone.
    const settled = new AbortController();
    let broken = false;
    await client
      .watch(
        CSRS,
        undefined,
        { fieldSelector: `metadata.name=${name}`, resourceVersion: current.metadata.resourceVersion, timeoutSeconds: CSR_WATCH_SECONDS },
        (event) => {
          if (event.type !== 'ADDED' && event.type !== 'MODIFIED') return;
          current = event.object as CertificateSigningRequest;
          if (isSettled(current)) settled.abort();
        },
        AbortSignal.any([stop, settled.signal]),
      )
      .catch(() => {
        broken = true;
      });
    if (!settled.signal.aborted && !stop.aborted) current = await client.get<CertificateSigningRequest>(CSRS, undefined, name);
    if (broken) await sleep(CSR_WATCH_RETRY_MS, undefined, { signal: stop }).catch(() => undefined);
  }
}

/** The issued PEM, undefined while pending; throws for a Denied or Failed request. */
function outcome(csr: CertificateSigningRequest): string | undefined {
  const name = csr.metadata.name!;
  for (const type of ['Denied', 'Failed'] as const) {
    const c = csrCondition(csr, type);
    if (c) throw new JoinError(`certificate signing request ${name} was ${type.toLowerCase()}: ${c.reason ?? 'no reason given'}${c.message ? `: ${c.message}` : ''}`);
  }
  return csr.status?.certificate ? pemOfBytes(csr.status.certificate) : undefined;
}
