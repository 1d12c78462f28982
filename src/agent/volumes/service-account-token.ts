import type { KubeObject } from '../../api/types.js';
import type { ObjectSource } from '../contracts.js';

/** A token is replaced once this share of its life has passed (the kubelet's token manager: within 20% of expiry). */
export const TOKEN_REFRESH_FRACTION = 0.8;
/** However long a token was issued for, it is replaced after a day (the token manager's maxTTL). */
export const TOKEN_MAX_AGE_MS = 24 * 60 * 60 * 1000;
/** The TokenRequest default lifetime, when a projection names none. */
export const DEFAULT_TOKEN_EXPIRATION_SECONDS = 3600;

interface CachedToken {
  token: string;
  refreshAt: number;
}

export interface TokenRequestSpec {
  serviceAccount: string;
  audiences: string[];
  expirationSeconds: number;
}

/**
 * Bound service-account tokens for projected volumes, kept until they need refreshing, so a sync
 * that comes before that rewrites nothing. The refresh point is measured from when the token was
 * fetched, on this node's clock, so clock skew with the issuer does not shorten or stretch it.
 */
export class ServiceAccountTokens {
  private readonly cache = new Map<string, CachedToken>();

  constructor(
    private readonly source: ObjectSource,
    private readonly now: () => number = Date.now,
  ) {}

  async get(pod: KubeObject, spec: TokenRequestSpec): Promise<string> {
    const key = [pod.metadata.uid, spec.serviceAccount, spec.audiences.join(','), spec.expirationSeconds].join('|');
    const cached = this.cache.get(key);
    const fetchedAt = this.now();
    if (cached && fetchedAt < cached.refreshAt) return cached.token;
    const issued = await this.source.serviceAccountToken(pod, spec.serviceAccount, { audiences: spec.audiences, expirationSeconds: spec.expirationSeconds });
    const expiresAt = Date.parse(issued.expirationTimestamp);
    const lifetime = Number.isNaN(expiresAt) ? spec.expirationSeconds * 1000 : Math.max(0, expiresAt - fetchedAt);
    const refreshAt = fetchedAt + Math.min(lifetime * TOKEN_REFRESH_FRACTION, TOKEN_MAX_AGE_MS);
    this.cache.set(key, { token: issued.token, refreshAt });
    return issued.token;
  }

  /** Drops the tokens of a pod that is gone. */
  forget(podUid: string): void {
    for (const key of this.cache.keys()) if (key.startsWith(podUid + '|')) this.cache.delete(key);
  }
}
