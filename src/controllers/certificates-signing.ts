import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  KUBELET_SERVING_SIGNER,
  KUBE_APISERVER_CLIENT_KUBELET_SIGNER,
  bytesOfPem,
  csrCondition,
  isSettled,
  pemOfBytes,
  type CertificateSigningRequest,
  type CsrCondition,
} from '../api/certificates.js';
import type { KubeClient } from '../client/client.js';
import { resource, type Informer } from '../client/informer.js';
import { WorkQueue } from '../client/workqueue.js';
import { signCsr, type KeyUsage } from '../apiserver/auth/pki.js';
import { kubeletClientProblem, kubeletServingProblem, requestOf } from './certificates-kubelet.js';
import { defaultErrorSink, timestamp, waitForSync, type Controller, type ErrorSink, type SharedInformers } from './controller.js';

/**
 * csr-signing: issues the certificates of approved requests for the two kubelet signers with the
 * cluster CA, as kube-controller-manager's csrsigning controller does with
 * `--cluster-signing-cert-file/--cluster-signing-key-file`. It needs the CA key on its own disk, so it
 * runs only where that key is (the server's controller thread, or `atoll controller` given those flags).
 *
 * A request is signed once Approved (and not Failed, not already issued). It is checked again with
 * the same kubelet rules the approver uses, since anyone with approval rights may have approved it;
 * one that breaks them gets a `Failed` condition (reason `SignerValidationFailure`) with the reason,
 * and is never signed. The certificate keeps the request's subject and SANs and carries the
 * requested usages; it lives `durationSeconds` or the request's `expirationSeconds` if shorter,
 * rounded up to whole days (openssl's granularity; kube also treats the request as a hint), and
 * never past the CA's own expiry. It is written through the status subresource.
 */

export const CLUSTER_SIGNING_DURATION_SECONDS = 365 * 86_400;
export const SIGNER_VALIDATION_FAILURE = 'SignerValidationFailure';
const DAY_SECONDS = 86_400;
const CSR_WORKERS = 2;
const CSRS = resource('certificates.k8s.io/certificatesigningrequests');

export interface CsrSigningOptions {
  /** The CA certificate and key (PEM) that sign kubelet certificates. */
  certFile: string;
  keyFile: string;
  /** The longest lifetime of an issued certificate (default CLUSTER_SIGNING_DURATION_SECONDS). */
  durationSeconds?: number;
  onError?: ErrorSink;
}

export class CsrSigningController implements Controller {
  readonly name = 'csr-signing';
  private readonly csrs: Informer<CertificateSigningRequest>;
  private readonly queue = new WorkQueue();
  private readonly onError: ErrorSink;
  private readonly caNotAfter: number;

  /** Reads and checks the CA at once, so a wrong file fails at startup rather than per request. */
  constructor(
    private readonly client: KubeClient,
    informers: SharedInformers,
    private readonly options: CsrSigningOptions,
  ) {
    this.onError = options.onError ?? defaultErrorSink;
    this.caNotAfter = checkSigningCa(options.certFile, options.keyFile).notAfter;
    this.csrs = informers.get<CertificateSigningRequest>(CSRS);
    this.csrs.on({ add: (csr) => this.enqueue(csr), update: (_, csr) => this.enqueue(csr) });
  }

  async run(signal: AbortSignal): Promise<void> {
    if (!(await waitForSync(signal, this.csrs))) return;
    for (const csr of this.csrs.list()) this.enqueue(csr);
    await this.queue.run((name) => this.sync(name), signal, CSR_WORKERS, (name, err) => this.onError(this.name, name, err));
  }

  private enqueue(csr: CertificateSigningRequest): void {
    if (isOurs(csr) && csrCondition(csr, 'Approved') && !isSettled(csr)) this.queue.add(csr.metadata.name!);
  }

  private async sync(name: string): Promise<void> {
    const csr = this.csrs.get(undefined, name);
    if (!csr || !isOurs(csr) || !csrCondition(csr, 'Approved') || isSettled(csr)) return;
    const usages = csr.spec.usages ?? [];
    const req = requestOf(csr);
    if (typeof req === 'string') return this.fail(csr, req);
    const problem = csr.spec.signerName === KUBELET_SERVING_SIGNER ? kubeletServingProblem(req, usages) : kubeletClientProblem(req, usages);
    if (problem) return this.fail(csr, problem);
    const certPem = await signCsr({ caCertPath: this.options.certFile, caKeyPath: this.options.keyFile }, pemOfBytes(csr.spec.request), {
      cn: req.commonName,
      groups: req.organizations,
      days: this.days(csr),
      usages: usages as KeyUsage[],
      hosts: [...req.dnsNames, ...req.ipAddresses],
    });
    await this.client.update(CSRS, { ...csr, status: { ...csr.status, certificate: bytesOfPem(certPem) } }, { subresource: 'status', fieldManager: 'csr-signing' });
  }

  private days(csr: CertificateSigningRequest): number {
    const requested = Math.min(this.options.durationSeconds ?? CLUSTER_SIGNING_DURATION_SECONDS, csr.spec.expirationSeconds ?? Infinity);
    const caLeft = Math.floor((this.caNotAfter - Date.now()) / 1000 / DAY_SECONDS);
    return Math.max(1, Math.min(Math.ceil(requested / DAY_SECONDS), caLeft));
  }

  private async fail(csr: CertificateSigningRequest, message: string): Promise<void> {
    const condition: CsrCondition = { type: 'Failed', status: 'True', reason: SIGNER_VALIDATION_FAILURE, message, lastUpdateTime: timestamp() };
    const status = { ...csr.status, conditions: [...(csr.status?.conditions ?? []), condition] };
    await this.client.update(CSRS, { ...csr, status }, { subresource: 'status', fieldManager: 'csr-signing' });
  }
}

/** Reads a CA certificate and key and checks they are a CA and its key; throws naming what is wrong. */
export function checkSigningCa(certFile: string, keyFile: string): { notAfter: number } {
  let ca: X509Certificate;
  try {
    ca = new X509Certificate(readFileSync(certFile));
  } catch (err) {
    throw new Error(`cannot read the CA certificate ${certFile}: ${(err as Error).message}`);
  }
  if (!ca.ca) throw new Error(`${certFile} is not a CA certificate`);
  let matches: boolean;
  try {
    matches = ca.checkPrivateKey(createPrivateKey(readFileSync(keyFile)));
  } catch (err) {
    throw new Error(`cannot read the CA key ${keyFile}: ${(err as Error).message}`);
  }
  if (!matches) throw new Error(`${keyFile} is not the key of ${certFile}`);
  return { notAfter: Date.parse(ca.validTo) };
}

function isOurs(csr: CertificateSigningRequest): boolean {
  return csr.spec?.signerName === KUBE_APISERVER_CLIENT_KUBELET_SIGNER || csr.spec?.signerName === KUBELET_SERVING_SIGNER;
}
