import { CertificateRequestError, certificateChainProblem, parseCertificateRequest } from '../certificate-request.js';
import { KEY_USAGES, pemOfBytes, type CsrCondition } from '../certificates.js';
import type { KubeObject, StatusCause } from '../types.js';
import { err, path, type FieldPath } from './field.js';
import { isRecord, str } from './meta.js';
import { DNS1123_SUBDOMAIN_MAX, isDNS1123Label, isDNS1123Subdomain } from './names.js';
import type { KindRules } from './registry.js';

/**
 * CertificateSigningRequest validation, as kube's `pkg/apis/certificates/validation`: the request
 * must parse and carry a valid self-signature, usages and signerName must be well formed, Approved
 * and Denied exclude each other, and once set neither those conditions nor the certificate can be
 * taken back. Which subresource may change which part is the storage strategy's business
 * (csr-strategy.ts); these rules hold for every write.
 */

/** Condition types that may only be "True" when present. */
const TRUE_ONLY = ['Approved', 'Denied', 'Failed'];
const STATUS_VALUES = ['True', 'False', 'Unknown'];
/** kube refuses shorter certificate lifetimes than this. */
export const MIN_EXPIRATION_SECONDS = 600;

type Rec = Record<string, any>;

function conditionsOf(obj: KubeObject): CsrCondition[] {
  const status = isRecord(obj.status) ? obj.status : {};
  return Array.isArray(status.conditions) ? (status.conditions as CsrCondition[]) : [];
}

function certificateOf(obj: KubeObject): string {
  return isRecord(obj.status) ? str(obj.status.certificate) : '';
}

/** kube's ValidateSignerName: `<domain with a dot>/<path of DNS subdomains>`, short enough for an RBAC resourceName. */
export function validateSignerName(at: FieldPath, signerName: string): StatusCause[] {
  if (signerName === '') return [err.required(at)];
  const segments = signerName.split('/');
  if (segments.length !== 2) return [err.invalid(at, signerName, "must be a fully qualified domain and path of the form 'example.com/signer-name'")];
  const [domain, name] = segments as [string, string];
  const causes: StatusCause[] = [];
  if (domain.length > DNS1123_SUBDOMAIN_MAX) causes.push(err.tooLong(at, DNS1123_SUBDOMAIN_MAX));
  const labels = domain.split('.');
  for (const label of labels) {
    const problems = isDNS1123Label(label);
    for (const p of problems) causes.push(err.invalid(at, domain, `validating label ${JSON.stringify(label)}: ${p}`));
    if (problems.length) break;
  }
  if (labels.length < 2) causes.push(err.invalid(at, domain, 'should be a domain with at least two segments separated by dots'));
  for (const component of name.split('.')) {
    for (const p of isDNS1123Subdomain(component)) causes.push(err.invalid(at, name, `validating component ${JSON.stringify(component)}: ${p}`));
  }
  const maxPath = DNS1123_SUBDOMAIN_MAX - domain.length - 1;
  if (name.length > maxPath) causes.push(err.tooLong(at, maxPath));
  return causes;
}

function validateConditions(conditions: CsrCondition[]): StatusCause[] {
  const at = path('status', 'conditions');
  const causes: StatusCause[] = [];
  const seen = new Set<string>();
  let approved = false;
  let denied = false;
  conditions.forEach((c, i) => {
    const type = str(c?.type);
    const status = str(c?.status);
    if (type === '') causes.push(err.required(at.index(i).child('type')));
    const allowed = TRUE_ONLY.includes(type) ? ['True'] : STATUS_VALUES;
    if (status === '') causes.push(err.required(at.index(i).child('status')));
    else if (!allowed.includes(status)) causes.push(err.notSupported(at.index(i).child('status'), status, allowed));
    if (type === 'Approved') approved = true;
    if (type === 'Denied') denied = true;
    if ((type === 'Approved' && denied) || (type === 'Denied' && approved)) {
      causes.push(err.invalid(at.index(i).child('type'), type, 'Approved and Denied conditions are mutually exclusive'));
    }
    if (seen.has(type)) causes.push(err.duplicate(at.index(i).child('type'), type));
    seen.add(type);
  });
  return causes;
}

function validateSpec(spec: Rec): StatusCause[] {
  const at = path('spec');
  const causes: StatusCause[] = [];
  try {
    parseCertificateRequest(pemOfBytes(str(spec.request)));
  } catch (e) {
    if (!(e instanceof CertificateRequestError)) throw e;
    causes.push(err.invalid(at.child('request'), '<request data>', e.message));
  }
  const usages: unknown[] = Array.isArray(spec.usages) ? spec.usages : [];
  if (usages.length === 0) causes.push(err.required(at.child('usages')));
  const seen = new Set<string>();
  usages.forEach((u, i) => {
    const usage = str(u);
    if (!(KEY_USAGES as readonly string[]).includes(usage)) causes.push(err.notSupported(at.child('usages').index(i), usage, [...KEY_USAGES].sort()));
    if (seen.has(usage)) causes.push(err.duplicate(at.child('usages').index(i), usage));
    seen.add(usage);
  });
  causes.push(...validateSignerName(at.child('signerName'), str(spec.signerName)));
  const exp = spec.expirationSeconds;
  if (exp !== undefined && exp !== null && (typeof exp !== 'number' || !Number.isInteger(exp) || exp < MIN_EXPIRATION_SECONDS)) {
    causes.push(err.invalid(at.child('expirationSeconds'), typeof exp === 'number' ? exp : str(exp), `may not specify a duration less than ${MIN_EXPIRATION_SECONDS} seconds (10 minutes)`));
  }
  return causes;
}

function count(conditions: CsrCondition[], type: string): number {
  return conditions.filter((c) => c?.type === type).length;
}

export const certificateSigningRequestRules: KindRules = {
  group: 'certificates.k8s.io',
  kind: 'CertificateSigningRequest',
  // "We don't care what you call your certificate requests" (kube).
  nameFn: () => [],
  validate(obj) {
    return [...validateSpec(isRecord(obj.spec) ? obj.spec : {}), ...validateConditions(conditionsOf(obj))];
  },
  validateUpdate(obj, old) {
    const causes: StatusCause[] = [];
    const next = conditionsOf(obj);
    const prev = conditionsOf(old);
    for (const type of TRUE_ONLY) {
      if (count(next, type) < count(prev, type)) {
        causes.push(err.forbidden(path('status', 'conditions'), `updates may not remove a condition of type ${JSON.stringify(type)}`));
      }
    }
    const cert = certificateOf(obj);
    const oldCert = certificateOf(old);
    if (cert !== oldCert) {
      if (oldCert !== '') causes.push(err.forbidden(path('status', 'certificate'), 'updates may not modify existing certificate content'));
      const problem = cert === '' ? undefined : certificateChainProblem(pemOfBytes(cert));
      if (problem) causes.push(err.invalid(path('status', 'certificate'), '<certificate data>', problem));
    }
    return causes;
  },
};
