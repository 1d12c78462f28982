import type { KubeObject } from './types.js';

/**
 * The `certificates.k8s.io/v1` CertificateSigningRequest as Atoll's server, controllers and node
 * agent read it. `spec.request` and `status.certificate` are Go `[]byte` fields: base64 of PEM text
 * in JSON.
 */

export const KUBE_APISERVER_CLIENT_KUBELET_SIGNER = 'kubernetes.io/kube-apiserver-client-kubelet';
export const KUBELET_SERVING_SIGNER = 'kubernetes.io/kubelet-serving';

export const NODE_USER_PREFIX = 'system:node:';
export const NODES_GROUP = 'system:nodes';

export type CsrConditionType = 'Approved' | 'Denied' | 'Failed';

export interface CsrCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastUpdateTime?: string;
  lastTransitionTime?: string;
}

export interface CsrSpec {
  request: string;
  signerName: string;
  usages?: string[];
  expirationSeconds?: number;
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface CertificateSigningRequest extends KubeObject {
  spec: CsrSpec;
  status?: { conditions?: CsrCondition[]; certificate?: string };
}

/** Every KeyUsage value kube accepts in `spec.usages`. */
export const KEY_USAGES = [
  'signing', 'digital signature', 'content commitment', 'key encipherment', 'key agreement', 'data encipherment',
  'cert sign', 'crl sign', 'encipher only', 'decipher only', 'any', 'server auth', 'client auth', 'code signing',
  'email protection', 's/mime', 'ipsec end system', 'ipsec tunnel', 'ipsec user', 'timestamping', 'ocsp signing',
  'microsoft sgc', 'netscape sgc',
] as const;

export function csrCondition(csr: CertificateSigningRequest, type: CsrConditionType): CsrCondition | undefined {
  return csr.status?.conditions?.find((c) => c.type === type);
}

/** The PEM text of a base64 `[]byte` field. */
export function pemOfBytes(field: string | undefined): string {
  return Buffer.from(field ?? '', 'base64').toString('utf8');
}

/** The base64 `[]byte` form of PEM text. */
export function bytesOfPem(pem: string): string {
  return Buffer.from(pem, 'utf8').toString('base64');
}

/** A CSR nobody needs to act on any more: denied, failed, or already issued. */
export function isSettled(csr: CertificateSigningRequest): boolean {
  return Boolean(csrCondition(csr, 'Denied') || csrCondition(csr, 'Failed') || csr.status?.certificate);
}
