import { createHash, createPrivateKey, createPublicKey, randomUUID, sign, verify, type KeyObject } from 'node:crypto';
import { ApiError, errors } from '../../api/errors.js';
import type { KubeObject, UserInfo } from '../../api/types.js';
import { decodeBody, readBody, sendJson } from '../http.js';
import type { ResourceContext } from '../resource-handler.js';
import { nowTimestamp } from '../storage.js';

/**
 * Service-account tokens: ES256 JWTs signed with the cluster's `sa.key`, carrying kube's claims
 * (`iss`, `sub` system:serviceaccount:<ns>:<name>, `aud`, `exp`/`iat`/`nbf`, `jti` and the
 * `kubernetes.io` claim naming the account and the pod, node or nothing the token is bound to).
 *
 * A token authenticates only while its signature, lifetime, issuer and audience check out AND the
 * objects it names still exist with the same uid, so deleting a pod or an account revokes every token
 * bound to it. Lookups go through synchronous accessors the server backs with its watch-cache indexes.
 */

export const DEFAULT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
export const SERVICE_ACCOUNT_USER_PREFIX = 'system:serviceaccount:';
export const SERVICE_ACCOUNTS_GROUP = 'system:serviceaccounts';
export const DEFAULT_TOKEN_EXPIRATION_SECONDS = 3600;
export const MIN_TOKEN_EXPIRATION_SECONDS = 600;
const MAX_TOKEN_EXPIRATION_SECONDS = 2 ** 32;
/** What a token projected by admission asks for; kube extends those (pod-bound, API audience) to a year. */
const WARN_ONLY_EXPIRATION_SECONDS = 3607;
const EXTENDED_EXPIRATION_SECONDS = 365 * 24 * 3600;
/** Clock skew tolerated on exp/nbf, and how long a deleted pod's tokens stay valid, as in kube. */
const LEEWAY_SECONDS = 60;

export interface TokenObjects {
  serviceAccount(namespace: string, name: string): KubeObject | undefined;
  pod(namespace: string, name: string): KubeObject | undefined;
  node(name: string): KubeObject | undefined;
}

export interface ServiceAccountTokensOptions {
  /** PKCS#8 PEM of the EC P-256 signing key (`Pki.saPrivateKeyPem`). */
  privateKeyPem: string;
  objects: TokenObjects;
  issuer?: string;
  /** Audiences the API server accepts; defaults to the issuer. */
  audiences?: string[];
  /** Clock, epoch milliseconds. */
  now?: () => number;
}

interface Ref {
  name: string;
  uid: string;
}

export interface TokenClaims {
  iss: string;
  sub: string;
  aud: string[];
  exp: number;
  iat: number;
  nbf: number;
  jti: string;
  'kubernetes.io': {
    namespace: string;
    serviceaccount: Ref;
    pod?: Ref;
    node?: Ref;
    warnafter?: number;
  };
}

export interface IssueOptions {
  serviceAccount: KubeObject;
  audiences?: string[];
  expirationSeconds?: number;
  pod?: KubeObject;
  node?: KubeObject;
}

export class ServiceAccountTokens {
  readonly issuer: string;
  readonly audiences: string[];
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  private readonly keyId: string;
  private readonly now: () => number;

  constructor(private readonly opts: ServiceAccountTokensOptions) {
    this.issuer = opts.issuer ?? DEFAULT_ISSUER;
    this.audiences = opts.audiences ?? [this.issuer];
    this.privateKey = createPrivateKey(opts.privateKeyPem);
    this.publicKey = createPublicKey(this.privateKey);
    const der = this.publicKey.export({ type: 'spki', format: 'der' });
    this.keyId = createHash('sha256').update(der).digest('base64url');
    this.now = opts.now ?? Date.now;
  }

  /**
   * Signs a token for the account, bound to `pod` or `node` when given. The returned expiry is the
   * requested one, even where the token itself lives longer (see WARN_ONLY_EXPIRATION_SECONDS).
   */
  issue(opts: IssueOptions): { token: string; claims: TokenClaims; expirationTimestamp: string } {
    const sa = opts.serviceAccount.metadata;
    const requested = opts.expirationSeconds ?? DEFAULT_TOKEN_EXPIRATION_SECONDS;
    const audiences = opts.audiences?.length ? opts.audiences : this.audiences;
    let lifetime = requested;
    let warnafter: number | undefined;
    const iat = Math.floor(this.now() / 1000);
    if (opts.pod && requested === WARN_ONLY_EXPIRATION_SECONDS && audiences.every((a) => this.audiences.includes(a))) {
      lifetime = EXTENDED_EXPIRATION_SECONDS;
      warnafter = iat + requested;
    }
    const k8s: TokenClaims['kubernetes.io'] = { namespace: sa.namespace!, serviceaccount: { name: sa.name!, uid: sa.uid! } };
    if (opts.node) k8s.node = { name: opts.node.metadata.name!, uid: opts.node.metadata.uid ?? '' };
    if (opts.pod) k8s.pod = { name: opts.pod.metadata.name!, uid: opts.pod.metadata.uid! };
    if (warnafter !== undefined) k8s.warnafter = warnafter;
    const claims: TokenClaims = {
      aud: audiences,
      exp: iat + lifetime,
      iat,
      iss: this.issuer,
      jti: randomUUID(),
      'kubernetes.io': k8s,
      nbf: iat,
      sub: `${SERVICE_ACCOUNT_USER_PREFIX}${sa.namespace}:${sa.name}`,
    };
    const header = { alg: 'ES256', kid: this.keyId };
    const signingInput = `${b64(header)}.${b64(claims)}`;
    const signature = sign('sha256', Buffer.from(signingInput), { key: this.privateKey, dsaEncoding: 'ieee-p1363' });
    const expirationTimestamp = new Date((iat + requested) * 1000).toISOString().replace('.000Z', 'Z');
    return { token: `${signingInput}.${signature.toString('base64url')}`, claims, expirationTimestamp };
  }

  /** The claims of a token this issuer signed that is valid now for the API's audiences, else undefined. */
  verify(token: string): TokenClaims | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const [h, p, s] = parts as [string, string, string];
    const header = parseSegment(h) as { alg?: string } | undefined;
    const claims = parseSegment(p) as TokenClaims | undefined;
    if (!header || !claims || header.alg !== 'ES256' || claims.iss !== this.issuer) return undefined;
    const signature = Buffer.from(s, 'base64url');
    if (signature.length !== 64) return undefined;
    if (!verify('sha256', Buffer.from(`${h}.${p}`), { key: this.publicKey, dsaEncoding: 'ieee-p1363' }, signature)) return undefined;
    const now = this.now() / 1000;
    if (typeof claims.exp !== 'number' || now > claims.exp + LEEWAY_SECONDS) return undefined;
    if (typeof claims.nbf === 'number' && now < claims.nbf - LEEWAY_SECONDS) return undefined;
    const aud = typeof claims.aud === 'string' ? [claims.aud] : claims.aud;
    if (!Array.isArray(aud) || !aud.some((a) => this.audiences.includes(a))) return undefined;
    const k8s = claims['kubernetes.io'];
    if (!k8s || typeof k8s.namespace !== 'string' || !k8s.serviceaccount?.name) return undefined;
    return claims;
  }

  /** A TokenAuthenticator for the Authenticator: the service account's user, or undefined. */
  authenticate(token: string): UserInfo | undefined {
    const claims = this.verify(token);
    if (!claims) return undefined;
    const { namespace, serviceaccount, pod, node } = claims['kubernetes.io'];
    if (claims.sub !== `${SERVICE_ACCOUNT_USER_PREFIX}${namespace}:${serviceaccount.name}`) return undefined;
    const sa = this.opts.objects.serviceAccount(namespace, serviceaccount.name);
    if (!sa || sa.metadata.uid !== serviceaccount.uid || this.deletedLongAgo(sa)) return undefined;
    const extra: Record<string, string[]> = { 'authentication.kubernetes.io/credential-id': [`JTI=${claims.jti}`] };
    if (pod) {
      const found = this.opts.objects.pod(namespace, pod.name);
      if (!found || found.metadata.uid !== pod.uid || this.deletedLongAgo(found)) return undefined;
      extra['authentication.kubernetes.io/pod-name'] = [pod.name];
      extra['authentication.kubernetes.io/pod-uid'] = [pod.uid];
    } else if (node) {
      const found = this.opts.objects.node(node.name);
      if (!found || found.metadata.uid !== node.uid || this.deletedLongAgo(found)) return undefined;
    }
    if (node) {
      extra['authentication.kubernetes.io/node-name'] = [node.name];
      if (node.uid) extra['authentication.kubernetes.io/node-uid'] = [node.uid];
    }
    return {
      name: claims.sub,
      uid: serviceaccount.uid,
      groups: [SERVICE_ACCOUNTS_GROUP, `${SERVICE_ACCOUNTS_GROUP}:${namespace}`],
      extra,
    };
  }

  private deletedLongAgo(obj: KubeObject): boolean {
    const at = obj.metadata.deletionTimestamp;
    return !!at && Date.parse(at) < this.now() - LEEWAY_SECONDS * 1000;
  }
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function parseSegment(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

interface TokenRequestBody {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  spec?: {
    audiences?: string[] | null;
    expirationSeconds?: number | null;
    boundObjectRef?: { kind?: string; apiVersion?: string; name?: string; uid?: string } | null;
  };
}

const TOKEN_REQUEST_KIND = 'TokenRequest';
const TOKEN_REQUEST_GROUP = 'authentication.k8s.io';
const TOKEN_REQUEST_API_VERSION = `${TOKEN_REQUEST_GROUP}/v1`;

function invalid(name: string, field: string, value: unknown, message: string): ApiError {
  return errors.invalid(TOKEN_REQUEST_KIND, TOKEN_REQUEST_GROUP, name, [{ reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(value)}: ${message}` }]);
}

/**
 * POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token: answers an authentication.k8s.io/v1
 * TokenRequest with a signed token (201), as kube's TokenREST does. Never stored.
 */
export async function serveTokenRequest(ctx: ResourceContext, tokens: ServiceAccountTokens): Promise<void> {
  const { info, storage, def } = ctx;
  if (info.verb !== 'create') throw errors.methodNotAllowed('the server does not allow this method on the requested resource');
  const decoded = decodeBody(await readBody(ctx.req), ctx.req.headers['content-type']).value;
  if (decoded === null || typeof decoded !== 'object' || Array.isArray(decoded)) throw errors.badRequest('the request body must be a TokenRequest object');
  const body = decoded as TokenRequestBody;
  if (body.kind !== undefined && body.kind !== TOKEN_REQUEST_KIND) {
    throw errors.badRequest(`the object provided is unrecognized (${JSON.stringify(body.kind)} is not ${TOKEN_REQUEST_KIND})`);
  }
  if (body.apiVersion !== undefined && body.apiVersion !== TOKEN_REQUEST_API_VERSION) {
    throw errors.badRequest(`the API version in the data (${body.apiVersion}) does not match the expected API version (${TOKEN_REQUEST_API_VERSION})`);
  }
  const name = info.name;
  const namespace = info.namespace;
  if (body.metadata?.name && body.metadata.name !== name) throw invalid(name, 'metadata.name', body.metadata.name, 'must match the service account name if specified');
  if (body.metadata?.namespace && body.metadata.namespace !== namespace) {
    throw invalid(name, 'metadata.namespace', body.metadata.namespace, 'must match the service account namespace if specified');
  }
  const sa = await storage.get(def, namespace, name);
  const spec = body.spec ?? {};
  const audiences = spec.audiences?.length ? spec.audiences : tokens.audiences;
  const expirationSeconds = spec.expirationSeconds ?? DEFAULT_TOKEN_EXPIRATION_SECONDS;
  if (!Number.isInteger(expirationSeconds)) throw invalid('', 'spec.expirationSeconds', expirationSeconds, 'must be an integer number of seconds');
  if (expirationSeconds < MIN_TOKEN_EXPIRATION_SECONDS) throw invalid('', 'spec.expirationSeconds', expirationSeconds, 'may not specify a duration less than 10 minutes');
  if (expirationSeconds > MAX_TOKEN_EXPIRATION_SECONDS) throw invalid('', 'spec.expirationSeconds', expirationSeconds, 'may not specify a duration larger than 2^32 seconds');

  const ref = spec.boundObjectRef ?? undefined;
  let pod: KubeObject | undefined;
  let node: KubeObject | undefined;
  if (ref) {
    const group = (ref.apiVersion ?? '').includes('/') ? ref.apiVersion!.split('/')[0] : '';
    const lookup = (plural: string, ns: string, objectName = ref.name ?? '') => {
      const target = ctx.registry.lookup('', 'v1', plural);
      if (!target) throw errors.internal(`resource ${plural} is not registered`);
      return storage.get(target, ns, objectName);
    };
    let uid: string | undefined;
    if (group === '' && ref.kind === 'Pod') {
      pod = await lookup('pods', namespace);
      if ((pod.spec as { serviceAccountName?: string }).serviceAccountName !== name) {
        throw errors.badRequest(`cannot bind token for serviceaccount "${name}" to pod running with different serviceaccount name.`);
      }
      uid = pod.metadata.uid;
      const nodeName = (pod.spec as { nodeName?: string }).nodeName;
      // A pod's token names its node even when the Node object is gone, as kube's does.
      if (nodeName) {
        node = await lookup('nodes', '', nodeName).catch((err: unknown) => {
          if (err instanceof ApiError && err.code === 404) return { metadata: { name: nodeName } };
          throw err;
        });
      }
    } else if (group === '' && ref.kind === 'Node') {
      node = await lookup('nodes', '');
      uid = node.metadata.uid;
    } else {
      throw errors.badRequest(`cannot bind token to object of type ${group}/${(ref.apiVersion ?? '').split('/').pop()}, Kind=${ref.kind ?? ''}`);
    }
    if (ref.uid && ref.uid !== uid) {
      throw errors.conflict(
        { group: '', resource: ref.kind!, name: ref.name },
        `the UID in the bound object reference (${ref.uid}) does not match the UID in record. The object might have been deleted and then recreated`,
      );
    }
  }
  const issued = tokens.issue({ serviceAccount: sa, audiences, expirationSeconds, pod, node });
  sendJson(ctx.res, 201, {
    kind: TOKEN_REQUEST_KIND,
    apiVersion: TOKEN_REQUEST_API_VERSION,
    metadata: { name, namespace, creationTimestamp: nowTimestamp() },
    spec: { audiences, expirationSeconds, boundObjectRef: ref ?? null },
    status: { token: issued.token, expirationTimestamp: issued.expirationTimestamp },
  });
}
