import {
  KUBELET_SERVING_SIGNER,
  KUBE_APISERVER_CLIENT_KUBELET_SIGNER,
  NODES_GROUP,
  csrCondition,
  isSettled,
  type CertificateSigningRequest,
  type CsrCondition,
} from '../api/certificates.js';
import type { KubeObject } from '../api/types.js';
import type { KubeClient } from '../client/client.js';
import { resource, type Informer } from '../client/informer.js';
import { WorkQueue } from '../client/workqueue.js';
import { kubeletClientProblem, kubeletServingProblem, requestOf } from './certificates-kubelet.js';
import { defaultErrorSink, timestamp, waitForSync, type Controller, type ErrorSink, type SharedInformers } from './controller.js';

/**
 * csr-approving: approves the certificate requests of nodes, as kube-controller-manager's
 * csrapproving controller does, plus their serving certificates.
 *
 * - `kubernetes.io/kube-apiserver-client-kubelet`: a request whose content is a kubelet client
 *   certificate (CN `system:node:<name>`, O `system:nodes`, no SANs, client-auth usages) is approved
 *   when a SubjectAccessReview says its requester may `create` `certificatesigningrequests/
 *   selfnodeclient` (renewing its own identity: requester = CN) or `certificatesigningrequests/
 *   nodeclient` (any node: the bootstrap-token users). The default policy grants these to
 *   `system:nodes` and `system:bootstrappers`; the review goes through the API, so the policy is
 *   whatever the cluster's authorizer says, on Atoll or on kube.
 * - `kubernetes.io/kubelet-serving`: kube leaves these to an operator, because the node chooses its
 *   own SANs. Atoll approves them when the requester is the node named in the CN (`system:node:<name>`
 *   in `system:nodes`) and the SANs are DNS names or IPs only: an edge fleet has no operator at hand,
 *   and the certificate only lets the node serve its own :10250 API, which the API server reaches
 *   with the node's address anyway. A node can at worst claim names it does not own, which grants
 *   nothing its node credentials do not already.
 *
 * Anything else is left alone: pending, for an operator or another approver (kube's behaviour), never
 * Denied. Approval is the `AutoApproved` condition, written through the approval subresource.
 */

export const APPROVAL_REASON = 'AutoApproved';
const CSR_WORKERS = 2;
const CSRS = resource('certificates.k8s.io/certificatesigningrequests');
const SUBJECT_ACCESS_REVIEWS = resource('authorization.k8s.io/subjectaccessreviews');

export interface CsrApprovingOptions {
  onError?: ErrorSink;
}

export class CsrApprovingController implements Controller {
  readonly name = 'csr-approving';
  private readonly csrs: Informer<CertificateSigningRequest>;
  private readonly queue = new WorkQueue();
  private readonly onError: ErrorSink;

  constructor(
    private readonly client: KubeClient,
    informers: SharedInformers,
    options: CsrApprovingOptions = {},
  ) {
    this.onError = options.onError ?? defaultErrorSink;
    this.csrs = informers.get<CertificateSigningRequest>(CSRS);
    this.csrs.on({ add: (csr) => this.enqueue(csr), update: (_, csr) => this.enqueue(csr) });
  }

  async run(signal: AbortSignal): Promise<void> {
    if (!(await waitForSync(signal, this.csrs))) return;
    for (const csr of this.csrs.list()) this.enqueue(csr);
    await this.queue.run((name) => this.sync(name), signal, CSR_WORKERS, (name, err) => this.onError(this.name, name, err));
  }

  private enqueue(csr: CertificateSigningRequest): void {
    if (!csrCondition(csr, 'Approved') && !isSettled(csr)) this.queue.add(csr.metadata.name!);
  }

  private async sync(name: string): Promise<void> {
    const csr = this.csrs.get(undefined, name);
    if (!csr || csrCondition(csr, 'Approved') || isSettled(csr)) return;
    const message = await this.approvalMessage(csr);
    if (message) await this.approve(csr, message);
  }

  /** Why `csr` is approved, or undefined when this controller does not approve it. */
  private async approvalMessage(csr: CertificateSigningRequest): Promise<string | undefined> {
    const { signerName, usages = [], username = '', groups = [] } = csr.spec;
    if (signerName !== KUBE_APISERVER_CLIENT_KUBELET_SIGNER && signerName !== KUBELET_SERVING_SIGNER) return undefined;
    const req = requestOf(csr);
    if (typeof req === 'string') return undefined;
    if (signerName === KUBELET_SERVING_SIGNER) {
      if (kubeletServingProblem(req, usages) || username !== req.commonName || !groups.includes(NODES_GROUP)) return undefined;
      return 'Auto approving kubelet serving certificate requested by the node it names (Atoll policy).';
    }
    if (kubeletClientProblem(req, usages)) return undefined;
    if (username === req.commonName && (await this.allowed(csr, 'selfnodeclient'))) {
      return 'Auto approving self kubelet client certificate after SubjectAccessReview.';
    }
    if (await this.allowed(csr, 'nodeclient')) return 'Auto approving kubelet client certificate after SubjectAccessReview.';
    return undefined;
  }

  /** Whether the requester may `create` `certificatesigningrequests/<subresource>`. */
  private async allowed(csr: CertificateSigningRequest, subresource: string): Promise<boolean> {
    const { username, uid, groups, extra } = csr.spec;
    const review = await this.client.create<KubeObject & { status?: { allowed?: boolean } }>(SUBJECT_ACCESS_REVIEWS, undefined, {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      metadata: {},
      spec: {
        user: username,
        uid,
        groups,
        extra,
        resourceAttributes: { group: 'certificates.k8s.io', resource: 'certificatesigningrequests', subresource, verb: 'create' },
      },
    });
    return review.status?.allowed === true;
  }

  private async approve(csr: CertificateSigningRequest, message: string): Promise<void> {
    const condition: CsrCondition = { type: 'Approved', status: 'True', reason: APPROVAL_REASON, message, lastUpdateTime: timestamp() };
    const status = { ...csr.status, conditions: [...(csr.status?.conditions ?? []), condition] };
    await this.client.update(CSRS, { ...csr, status }, { subresource: 'approval', fieldManager: 'csr-approving' });
  }
}
