import { randomBytes } from 'node:crypto';

/** How long an issued streaming URL stays valid unless used (kubelet's CacheTTL). */
export const TOKEN_TTL_MS = 60_000;
/** Outstanding tokens at most; beyond this a request is refused rather than growing memory (kubelet's MaxInFlight). */
export const MAX_PENDING_TOKENS = 1_000;
const TOKEN_BYTES = 16;

export class TokenCacheFullError extends Error {
  constructor() {
    super(`too many pending streaming requests (at most ${MAX_PENDING_TOKENS})`);
    this.name = 'TokenCacheFullError';
  }
}

/**
 * Single-use tokens for pending streaming requests: `issue` stores a request under a fresh random
 * token, `take` hands it out once and forgets it. Tokens not taken expire after `ttlMs`.
 */
export class TokenCache<T> {
  private readonly pending = new Map<string, { value: T; expires: number }>();

  constructor(
    private readonly ttlMs = TOKEN_TTL_MS,
    private readonly now: () => number = Date.now,
  ) {}

  issue(value: T): string {
    this.sweep();
    if (this.pending.size >= MAX_PENDING_TOKENS) throw new TokenCacheFullError();
    const token = randomBytes(TOKEN_BYTES).toString('base64url');
    this.pending.set(token, { value, expires: this.now() + this.ttlMs });
    return token;
  }

  /** Whether `token` names a live request, without using it up. */
  has(token: string): boolean {
    const entry = this.pending.get(token);
    return entry !== undefined && entry.expires > this.now();
  }

  take(token: string): T | undefined {
    const entry = this.pending.get(token);
    this.pending.delete(token);
    return entry && entry.expires > this.now() ? entry.value : undefined;
  }

  private sweep(): void {
    const now = this.now();
    for (const [token, entry] of this.pending) if (entry.expires <= now) this.pending.delete(token);
  }
}
