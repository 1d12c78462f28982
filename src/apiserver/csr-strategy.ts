import type { CertificateSigningRequest, CsrCondition } from '../api/certificates.js';
import { errors } from '../api/errors.js';
import type { KubeObject } from '../api/types.js';
import { deepEqual, err, path } from '../api/validation/field.js';
import { nowTimestamp } from './storage.js';
import type { Strategy } from './strategy.js';

/**
 * How CertificateSigningRequests are written, as kube's csrStrategy and its status and approval
 * variants:
 *
 * - create: the requester's identity (`spec.username`, `uid`, `groups`, `extra`) comes from the
 *   authenticated user, never the body, and status starts empty: nobody creates a pre-approved CSR;
 * - the main resource: spec is immutable and status is kept (the generic status rule);
 * - `approval`: only `status.conditions` change, so approving cannot issue a certificate;
 * - `status`: everything in status but the Approved and Denied conditions, which only an approver
 *   writes; changing them here is refused (422), as kube's status validation does.
 *
 * New conditions get `lastUpdateTime` and `lastTransitionTime` stamped when the writer left them out.
 */

type Csr = CertificateSigningRequest;
const APPROVAL_TYPES = ['Approved', 'Denied'];

function conditions(obj: KubeObject): CsrCondition[] {
  return (obj as Csr).status?.conditions ?? [];
}

function stampConditions(next: KubeObject, old: KubeObject): void {
  const now = nowTimestamp();
  for (const c of conditions(next)) {
    if (c === null || typeof c !== 'object') continue;
    if (!c.lastTransitionTime) {
      const same = conditions(old).find((o) => o.type === c.type && o.status === c.status && o.lastTransitionTime);
      c.lastTransitionTime = same?.lastTransitionTime ?? now;
    }
    if (!c.lastUpdateTime) c.lastUpdateTime = now;
  }
}

export const csrStrategy: Strategy = {
  initialStatus: () => ({}),
  prepareForCreate(obj, user) {
    const spec = ((obj as Csr).spec ??= {} as Csr['spec']);
    delete spec.uid;
    delete spec.extra;
    spec.username = user.name;
    spec.groups = [...user.groups];
    if (user.uid) spec.uid = user.uid;
    if (user.extra) spec.extra = structuredClone(user.extra);
  },
  prepareForUpdate(next, old) {
    next.spec = structuredClone(old.spec);
  },
  subresourceUpdate: {
    approval(stored, next) {
      const status = (((stored as Csr).status ??= {}) as NonNullable<Csr['status']>);
      const old = structuredClone(stored);
      status.conditions = structuredClone(conditions(next));
      stampConditions(stored, old);
    },
    status(stored, next) {
      const old = structuredClone(stored);
      stored.status = structuredClone(next.status);
      stampConditions(stored, old);
      for (const type of APPROVAL_TYPES) {
        const before = conditions(old).filter((c) => c.type === type);
        const after = conditions(stored).filter((c) => c.type === type);
        if (deepEqual(before, after)) continue;
        const verb = after.length > before.length ? 'add' : after.length < before.length ? 'remove' : 'modify';
        throw errors.invalid('CertificateSigningRequest', 'certificates.k8s.io', stored.metadata.name ?? '', [
          err.forbidden(path('status', 'conditions'), `updates may not ${verb} a condition of type ${JSON.stringify(type)}; use the approval subresource`),
        ]);
      }
    },
  },
};
