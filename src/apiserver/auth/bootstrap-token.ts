import { randomInt } from 'node:crypto';
import { ApiError } from '../../api/errors.js';
import type { KubeClient } from '../../client/client.js';
import { resource } from '../../client/informer.js';
import { BOOTSTRAP_TOKEN_NAMESPACE, BOOTSTRAP_TOKEN_SECRET_PREFIX, BOOTSTRAP_TOKEN_SECRET_TYPE, BOOTSTRAPPERS_GROUP } from './authn.js';

/**
 * Bootstrap tokens, as kubeadm makes them: `<id>.<secret>` (6 and 16 characters of [a-z0-9]) backed by
 * a Secret `bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token` in kube-system. The token
 * authenticates as `system:bootstrap:<id>` in `system:bootstrappers` (plus any extra groups) until its
 * expiration; authn.ts reads it. A joining node uses it once, to ask for its client certificate.
 */

/** kubeadm's default token lifetime. */
export const DEFAULT_BOOTSTRAP_TOKEN_TTL_SECONDS = 24 * 3600;
const TOKEN_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
const ID_LENGTH = 6;
const SECRET_LENGTH = 16;
/** Token ids are random; a clash with an existing token is retried this many times. */
const CREATE_ATTEMPTS = 5;
const EXTRA_GROUP = /^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$/;

export class BootstrapTokenError extends Error {
  override readonly name = 'BootstrapTokenError';
}

export interface BootstrapToken {
  id: string;
  secret: string;
}

/** Splits and checks a token; the error says which part is wrong without echoing the secret. */
export function parseBootstrapToken(s: string): BootstrapToken {
  const dot = s.indexOf('.');
  if (dot < 0) throw new BootstrapTokenError(`a bootstrap token has the form <id>.<secret> ("abcdef.0123456789abcdef"); this one has no "."`);
  const id = s.slice(0, dot);
  const secret = s.slice(dot + 1);
  if (!new RegExp(`^[a-z0-9]{${ID_LENGTH}}$`).test(id)) {
    throw new BootstrapTokenError(`the bootstrap token id ${JSON.stringify(id)} must be ${ID_LENGTH} characters of [a-z0-9]`);
  }
  if (!new RegExp(`^[a-z0-9]{${SECRET_LENGTH}}$`).test(secret)) {
    throw new BootstrapTokenError(`the secret part of bootstrap token ${id} must be ${SECRET_LENGTH} characters of [a-z0-9] (it has ${secret.length} characters)`);
  }
  return { id, secret };
}

function randomPart(length: number): string {
  let s = '';
  for (let i = 0; i < length; i++) s += TOKEN_ALPHABET[randomInt(TOKEN_ALPHABET.length)];
  return s;
}

export interface BootstrapTokenOptions {
  /** Lifetime in seconds (default DEFAULT_BOOTSTRAP_TOKEN_TTL_SECONDS); 0 means it never expires. */
  ttlSeconds?: number;
  description?: string;
  /** Extra groups, each `system:bootstrappers:<name>`; the token always has `system:bootstrappers`. */
  groups?: string[];
}

/** Creates a new bootstrap token's Secret through `client` and returns the token. */
export async function createBootstrapToken(client: KubeClient, opts: BootstrapTokenOptions = {}): Promise<string> {
  const ttl = opts.ttlSeconds ?? DEFAULT_BOOTSTRAP_TOKEN_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl < 0) throw new BootstrapTokenError(`ttlSeconds must be a non-negative integer (0: never expires), got ${ttl}`);
  const groups = [...new Set(opts.groups ?? [])].filter((g) => g !== BOOTSTRAPPERS_GROUP);
  for (const g of groups) {
    if (!EXTRA_GROUP.test(g)) throw new BootstrapTokenError(`bootstrap token group ${JSON.stringify(g)} must match ${EXTRA_GROUP.source}`);
  }
  const data: Record<string, string> = { 'usage-bootstrap-authentication': 'true', 'usage-bootstrap-signing': 'true' };
  if (ttl > 0) data['expiration'] = new Date(Date.now() + ttl * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  if (opts.description) data['description'] = opts.description;
  if (groups.length) data['auth-extra-groups'] = groups.join(',');
  for (let attempt = 1; ; attempt++) {
    const token = { id: randomPart(ID_LENGTH), secret: randomPart(SECRET_LENGTH) };
    const fields = { ...data, 'token-id': token.id, 'token-secret': token.secret };
    try {
      await client.create(resource('secrets'), BOOTSTRAP_TOKEN_NAMESPACE, {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: BOOTSTRAP_TOKEN_SECRET_PREFIX + token.id, namespace: BOOTSTRAP_TOKEN_NAMESPACE },
        type: BOOTSTRAP_TOKEN_SECRET_TYPE,
        data: Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      });
      return `${token.id}.${token.secret}`;
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 409 && attempt < CREATE_ATTEMPTS)) throw err;
    }
  }
}
