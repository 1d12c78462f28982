import { CertificateRequestError, parseCertificateRequest, type CertificateRequest } from '../api/certificate-request.js';
import { NODES_GROUP, NODE_USER_PREFIX, pemOfBytes, type CertificateSigningRequest } from '../api/certificates.js';

/**
 * What the two kubelet signers accept, shared by the approving and the signing controllers so that
 * nothing is approved that would not be signed. The rules are kube's `ValidateKubeletClientCSR` and
 * `ValidateKubeletServingCSR`, with their messages.
 */

const CLIENT_USAGES = [
  ['client auth', 'digital signature', 'key encipherment'],
  ['client auth', 'digital signature'],
];
const SERVING_USAGES = [
  ['digital signature', 'key encipherment', 'server auth'],
  ['digital signature', 'server auth'],
];

function sameSet(a: string[], b: string[]): boolean {
  const set = new Set(a);
  return set.size === b.length && b.every((x) => set.has(x));
}

function usagesProblem(usages: string[], allowed: string[][]): string | undefined {
  return allowed.some((set) => sameSet(usages, set)) ? undefined : `usages did not match [${allowed[0]!.map((u) => JSON.stringify(u)).join(' ')}]`;
}

function subjectProblem(req: CertificateRequest): string | undefined {
  if (req.organizations.length !== 1 || req.organizations[0] !== NODES_GROUP) return `subject organization is not ${NODES_GROUP}`;
  if (!req.commonName.startsWith(NODE_USER_PREFIX) || req.commonName.length === NODE_USER_PREFIX.length) {
    return `subject common name does not begin with ${NODE_USER_PREFIX}`;
  }
  return undefined;
}

/** Why `req` is not a kubelet client certificate request (CN system:node:<name>, O system:nodes, no SANs), or undefined. */
export function kubeletClientProblem(req: CertificateRequest, usages: string[]): string | undefined {
  if (req.dnsNames.length) return 'DNS subjectAltNames are not allowed';
  if (req.emailAddresses.length) return 'Email subjectAltNames are not allowed';
  if (req.ipAddresses.length) return 'IP subjectAltNames are not allowed';
  if (req.uris.length) return 'URI subjectAltNames are not allowed';
  return subjectProblem(req) ?? usagesProblem(usages, CLIENT_USAGES);
}

/** Why `req` is not a kubelet serving certificate request (as above, with DNS or IP SANs only), or undefined. */
export function kubeletServingProblem(req: CertificateRequest, usages: string[]): string | undefined {
  if (req.dnsNames.length === 0 && req.ipAddresses.length === 0) return 'DNS or IP subjectAltName is required';
  if (req.emailAddresses.length) return 'Email subjectAltNames are not allowed';
  if (req.uris.length) return 'URI subjectAltNames are not allowed';
  return subjectProblem(req) ?? usagesProblem(usages, SERVING_USAGES);
}

/** The parsed `spec.request`, or the reason it does not parse. */
export function requestOf(csr: CertificateSigningRequest): CertificateRequest | string {
  try {
    return parseCertificateRequest(pemOfBytes(csr.spec.request));
  } catch (err) {
    if (err instanceof CertificateRequestError) return err.message;
    throw err;
  }
}
