import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { KubeObject, UserInfo } from '../../api/types.js';

/**
 * Authentication: who is calling. Anonymous access is off, so `authenticate` returning `undefined`
 * means 401. Methods are tried in kube-apiserver's order and the first success wins:
 *
 *   1. a client certificate the TLS layer verified against the cluster CA (CN = user, O = groups);
 *   2. a bearer token, tried against the static token file, then bootstrap tokens, then any token
 *      authenticators added later (service-account JWTs).
 *
 * Every authenticated user also gets the `system:authenticated` group. The server must listen with
 * `requestCert: true, rejectUnauthorized: false` and `ca` set to the cluster CA, so that token clients
 * without a certificate can still connect while certificate clients are verified.
 */

export const AUTHENTICATED_GROUP = 'system:authenticated';
export const BOOTSTRAPPERS_GROUP = 'system:bootstrappers';
export const BOOTSTRAP_USER_PREFIX = 'system:bootstrap:';
export const BOOTSTRAP_TOKEN_SECRET_TYPE = 'bootstrap.kubernetes.io/token';
export const BOOTSTRAP_TOKEN_SECRET_PREFIX = 'bootstrap-token-';
export const BOOTSTRAP_TOKEN_NAMESPACE = 'kube-system';
const BOOTSTRAP_TOKEN = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
const BOOTSTRAP_EXTRA_GROUP = /^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$/;
const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const ANY_EXTENDED_KEY_USAGE_OID = '2.5.29.37.0';

/** Where bootstrap-token Secrets are read from; the server backs it with its in-memory object cache. */
export interface SecretSource {
  getSecret(namespace: string, name: string): KubeObject | undefined;
}

/** Resolves a bearer token to a user, or `undefined` if the token is not one it recognises. */
export type TokenAuthenticator = (token: string) => UserInfo | undefined;

export interface StaticToken {
  token: string;
  user: UserInfo;
}

export class TokenFileError extends Error {
  constructor(source: string, line: number, reason: string) {
    super(`${source}:${line}: ${reason}`);
    this.name = 'TokenFileError';
  }
}

/** Splits one CSV record (RFC 4180 quoting, no embedded newlines). Returns a reason string on error. */
function splitCsvLine(line: string): string[] | string {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (line[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= line.length) return 'unterminated quoted field';
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            value += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += line[i++];
      }
      while (line[i] === ' ' || line[i] === '\t') i++;
      if (i < line.length && line[i] !== ',') return `unexpected character after quoted field at column ${i + 1}`;
      fields.push(value);
    } else {
      const end = line.indexOf(',', i);
      const raw = end < 0 ? line.slice(i) : line.slice(i, end);
      if (raw.includes('"')) return `bare quote in unquoted field at column ${i + raw.indexOf('"') + 1}`;
      fields.push(raw.trim());
      i = end < 0 ? line.length : end;
    }
    if (i >= line.length) return fields;
    i++;
  }
}

/**
 * Parses a kube `--token-auth-file`: one `token,user,uid[,"group1,group2"]` record per line. Blank lines
 * and lines starting with `#` are skipped. Any malformed line rejects the whole file.
 */
export function parseTokenFile(text: string, source = 'token file'): StaticToken[] {
  const out: StaticToken[] = [];
  const seen = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!;
    const lineNo = n + 1;
    if (line.trim() === '' || line.trimStart().startsWith('#')) continue;
    const fields = splitCsvLine(line);
    if (typeof fields === 'string') throw new TokenFileError(source, lineNo, fields);
    if (fields.length < 3) {
      throw new TokenFileError(source, lineNo, `expected at least 3 columns (token, user name, user uid), found ${fields.length}`);
    }
    if (fields.length > 4) {
      throw new TokenFileError(source, lineNo, `expected at most 4 columns (token, user name, user uid, groups), found ${fields.length}; quote the groups column`);
    }
    const [token, name, uid, groupField] = fields as [string, string, string, string | undefined];
    if (token === '') throw new TokenFileError(source, lineNo, 'token is empty');
    if (/\s/.test(token)) throw new TokenFileError(source, lineNo, 'token contains whitespace');
    if (name === '') throw new TokenFileError(source, lineNo, 'user name is empty');
    const first = seen.get(token);
    if (first !== undefined) throw new TokenFileError(source, lineNo, `duplicate token (first seen on line ${first})`);
    seen.set(token, lineNo);
    const groups = (groupField ?? '').split(',').map((g) => g.trim()).filter((g) => g !== '');
    const user: UserInfo = { name, groups };
    if (uid !== '') user.uid = uid;
    out.push({ token, user });
  }
  return out;
}

export async function loadTokenFile(path: string): Promise<StaticToken[]> {
  return parseTokenFile(await readFile(path, 'utf8'), path);
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function withAuthenticated(user: UserInfo): UserInfo {
  return user.groups.includes(AUTHENTICATED_GROUP) ? user : { ...user, groups: [...user.groups, AUTHENTICATED_GROUP] };
}

function secretField(secret: KubeObject, key: string): string | undefined {
  const data = secret['data'];
  if (data === null || typeof data !== 'object') return undefined;
  const value = (data as Record<string, unknown>)[key];
  return typeof value === 'string' ? Buffer.from(value, 'base64').toString('utf8') : undefined;
}

/** Constant-time string equality; the length comparison leaks only the length. */
function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export interface AuthenticatorOptions {
  staticTokens?: StaticToken[];
  /** Enables bootstrap tokens when set. */
  secrets?: SecretSource;
  /** Clock for expiry checks, in epoch milliseconds. */
  now?: () => number;
}

interface CertIdentity {
  user: UserInfo | undefined;
  notAfter: number;
}

export class Authenticator {
  /** Keyed by the token's SHA-256, so the map lookup's timing says nothing about the token itself. */
  private readonly staticTokens = new Map<string, UserInfo>();
  private readonly secrets: SecretSource | undefined;
  private readonly now: () => number;
  private readonly tokenAuthenticators: TokenAuthenticator[] = [];
  /** A connection's peer certificate never changes, so it is parsed once per socket. */
  private readonly certCache = new WeakMap<TLSSocket, CertIdentity>();

  constructor(opts: AuthenticatorOptions = {}) {
    for (const t of opts.staticTokens ?? []) this.staticTokens.set(digest(t.token).toString('hex'), t.user);
    this.secrets = opts.secrets;
    this.now = opts.now ?? Date.now;
  }

  /** Adds a bearer-token method tried after static and bootstrap tokens (e.g. service-account JWTs). */
  addTokenAuthenticator(fn: TokenAuthenticator): void {
    this.tokenAuthenticators.push(fn);
  }

  authenticate(req: IncomingMessage): UserInfo | undefined {
    const fromCert = this.authenticateCertificate(req.socket as TLSSocket);
    if (fromCert) return fromCert;
    const token = bearerToken(req.headers.authorization);
    return token === undefined ? undefined : this.authenticateToken(token);
  }

  /** Resolves a bearer token; also the entry point for TokenReview. */
  authenticateToken(token: string): UserInfo | undefined {
    const user =
      this.staticTokens.get(digest(token).toString('hex')) ??
      this.authenticateBootstrapToken(token) ??
      this.tokenAuthenticators.reduce<UserInfo | undefined>((found, fn) => found ?? fn(token), undefined);
    return user && withAuthenticated(user);
  }

  private authenticateCertificate(socket: TLSSocket): UserInfo | undefined {
    if (!socket.encrypted || !socket.authorized) return undefined;
    let identity = this.certCache.get(socket);
    if (!identity) {
      identity = certIdentity(socket.getPeerCertificate());
      this.certCache.set(socket, identity);
    }
    // The handshake checked validity once; a long-lived connection must not outlive its certificate.
    if (identity.user === undefined || this.now() > identity.notAfter) return undefined;
    return identity.user;
  }

  private authenticateBootstrapToken(token: string): UserInfo | undefined {
    if (!this.secrets) return undefined;
    const m = BOOTSTRAP_TOKEN.exec(token);
    if (!m) return undefined;
    const [, id, secretPart] = m as unknown as [string, string, string];
    const secret = this.secrets.getSecret(BOOTSTRAP_TOKEN_NAMESPACE, BOOTSTRAP_TOKEN_SECRET_PREFIX + id);
    if (!secret || secret.metadata.deletionTimestamp) return undefined;
    if (secret['type'] !== BOOTSTRAP_TOKEN_SECRET_TYPE) return undefined;
    if (secretField(secret, 'token-id') !== id) return undefined;
    const expected = secretField(secret, 'token-secret');
    if (expected === undefined || !safeEqual(secretPart, expected)) return undefined;
    const expiration = secretField(secret, 'expiration');
    if (expiration !== undefined) {
      const at = Date.parse(expiration);
      if (Number.isNaN(at) || this.now() >= at) return undefined;
    }
    if (secretField(secret, 'usage-bootstrap-authentication') !== 'true') return undefined;
    const extraField = secretField(secret, 'auth-extra-groups') ?? '';
    const extra = extraField === '' ? [] : extraField.split(',');
    if (!extra.every((g) => BOOTSTRAP_EXTRA_GROUP.test(g))) return undefined;
    return { name: BOOTSTRAP_USER_PREFIX + id, groups: [...new Set([BOOTSTRAPPERS_GROUP, ...extra])].sort() };
  }
}

/** The token from `Authorization: Bearer <token>`, scheme case-insensitive as in kube. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const parts = header.trim().split(' ');
  if (parts.length < 2 || parts[0]!.toLowerCase() !== 'bearer' || parts[1] === '') return undefined;
  return parts[1];
}

function attrValues(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  return Array.isArray(v) ? v : [v];
}

function certIdentity(cert: PeerCertificate): CertIdentity {
  const notAfter = Date.parse(cert.valid_to);
  const cns = attrValues(cert.subject?.CN as string | string[] | undefined);
  const eku = cert.ext_key_usage;
  // Like Go's x509 verification in kube: a certificate without EKU may be used for anything.
  const clientUsable = !eku || eku.includes(CLIENT_AUTH_OID) || eku.includes(ANY_EXTENDED_KEY_USAGE_OID);
  if (cns.length !== 1 || cns[0] === '' || !clientUsable) return { user: undefined, notAfter };
  const groups = attrValues(cert.subject.O as string | string[] | undefined);
  return { user: withAuthenticated({ name: cns[0]!, groups }), notAfter };
}
