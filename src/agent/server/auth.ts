import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { bearerToken } from '../../apiserver/auth/authn.js';
import { KUBELET_CLIENT_CN, KUBELET_CLIENT_GROUPS } from '../../apiserver/auth/pki.js';
import type { UserInfo } from '../../api/types.js';
import type { KubeClient } from '../../client/client.js';

/** How long a TokenReview answer is reused (the kubelet's --authentication-token-webhook-cache-ttl). */
export const TOKEN_CACHE_TTL_MS = 2 * 60_000;
/** How long an allowed / denied SubjectAccessReview is reused (the kubelet's webhook authorizer defaults). */
export const ALLOWED_CACHE_TTL_MS = 5 * 60_000;
export const DENIED_CACHE_TTL_MS = 30_000;
/** Bounds each cache, so a flood of distinct tokens cannot grow memory without limit. */
const MAX_CACHE_ENTRIES = 1024;

/** What the node server asks authorization about, as the kubelet builds it from a request. */
export interface NodeRequestAttributes {
  verb: string;
  /** `proxy`, `stats`, `log`, `metrics` or `spec` on the resource `nodes`. */
  subresource: string;
  name: string;
}

export type Decision = { allowed: true; user: UserInfo } | { allowed: false; code: 401 | 403; message: string };

/**
 * The node server's authentication and authorization, as the kubelet does them with
 * `--client-ca-file` and webhook mode:
 *   - a client certificate verified against the cluster CA names the user (CN) and groups (O); the API
 *     server's own kubelet-client identity is let in without a further question;
 *   - a bearer token is resolved with a TokenReview on the API server;
 *   - anyone else is 401; an authenticated user is then checked with a SubjectAccessReview on
 *     `nodes/<subresource>` and refused with 403 when not allowed.
 * Without an API client only the API server's certificate gets in.
 */
export class NodeAuthorizer {
  private readonly tokens = new TtlCache<UserInfo | null>();
  private readonly reviews = new TtlCache<boolean>();

  constructor(private readonly client: KubeClient | undefined) {}

  async check(req: IncomingMessage, attrs: NodeRequestAttributes): Promise<Decision> {
    const user = (await this.authenticate(req)) ?? undefined;
    if (!user) return { allowed: false, code: 401, message: 'Unauthorized' };
    if (user.name === KUBELET_CLIENT_CN && KUBELET_CLIENT_GROUPS.every((g) => user.groups.includes(g))) return { allowed: true, user };
    if (await this.authorize(user, attrs)) return { allowed: true, user };
    return {
      allowed: false,
      code: 403,
      message: `Forbidden (user=${user.name}, verb=${attrs.verb}, resource=nodes, subresource=${attrs.subresource})`,
    };
  }

  private async authenticate(req: IncomingMessage): Promise<UserInfo | null> {
    const socket = req.socket as TLSSocket;
    if (socket.authorized) return certificateUser(socket.getPeerCertificate());
    const token = bearerToken(req.headers.authorization);
    if (token === undefined || !this.client) return null;
    // Keyed by digest: the cache holds no usable credential.
    const digest = createHash('sha256').update(token).digest('hex');
    const cached = this.tokens.get(digest);
    if (cached !== undefined) return cached;
    const review = await this.client.json<{ status?: { authenticated?: boolean; user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> } } }>(
      'POST',
      '/apis/authentication.k8s.io/v1/tokenreviews',
      { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } },
    );
    const u = review.status?.user;
    const user = review.status?.authenticated && u?.username ? { name: u.username, uid: u.uid, groups: u.groups ?? [], extra: u.extra } : null;
    this.tokens.set(digest, user, TOKEN_CACHE_TTL_MS);
    return user;
  }

  private async authorize(user: UserInfo, attrs: NodeRequestAttributes): Promise<boolean> {
    if (!this.client) return false;
    const key = JSON.stringify([user.name, user.uid, [...user.groups].sort(), attrs.verb, attrs.subresource, attrs.name]);
    const cached = this.reviews.get(key);
    if (cached !== undefined) return cached;
    const review = await this.client.json<{ status?: { allowed?: boolean } }>('POST', '/apis/authorization.k8s.io/v1/subjectaccessreviews', {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: user.name,
        uid: user.uid,
        groups: user.groups,
        extra: user.extra,
        resourceAttributes: { verb: attrs.verb, resource: 'nodes', subresource: attrs.subresource, name: attrs.name },
      },
    });
    const allowed = review.status?.allowed === true;
    this.reviews.set(key, allowed, allowed ? ALLOWED_CACHE_TTL_MS : DENIED_CACHE_TTL_MS);
    return allowed;
  }
}

/** The kubelet's mapping of a request to authorization attributes (server/auth.go). */
export function requestAttributes(method: string, path: string, nodeName: string): NodeRequestAttributes {
  const verbs: Record<string, string> = { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
  const first = path.split('/')[1] ?? '';
  const subresource = first === 'stats' ? 'stats' : first === 'metrics' ? 'metrics' : first === 'logs' ? 'log' : first === 'spec' ? 'spec' : 'proxy';
  return { verb: verbs[method.toUpperCase()] ?? method.toLowerCase(), subresource, name: nodeName };
}

function values(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const ANY_EXTENDED_KEY_USAGE_OID = '2.5.29.37.0';

function certificateUser(cert: PeerCertificate): UserInfo | null {
  const cns = values(cert.subject?.CN as string | string[] | undefined);
  if (cns.length !== 1 || !cns[0]) return null;
  const eku = cert.ext_key_usage;
  if (eku && !eku.includes(CLIENT_AUTH_OID) && !eku.includes(ANY_EXTENDED_KEY_USAGE_OID)) return null;
  return { name: cns[0], groups: [...values(cert.subject.O as string | string[] | undefined), 'system:authenticated'] };
}

class TtlCache<T> {
  private readonly entries = new Map<string, { value: T; expires: number }>();

  get(key: string): T | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (Date.now() >= entry.expires) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: T, ttlMs: number): void {
    if (this.entries.size >= MAX_CACHE_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { value, expires: Date.now() + ttlMs });
  }
}
