// imagePullSecrets → CRI AuthConfig: the docker config a pull secret carries, and which of its
// entries apply to an image (kubelet's credentialprovider keyring rules).
import type { KubeObject } from '../../api/types.js';
import { parseReference } from '../../runtime/images/reference.js';
import type { AuthConfig } from '../../runtime/cri/index.js';
import type { ObjectSource } from '../contracts.js';
import { podSpec } from './spec.js';

const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

export class PullSecretError extends Error {
  override readonly name = 'PullSecretError';
}

interface DockerConfigEntry {
  username?: string;
  password?: string;
  auth?: string;
  email?: string;
  identitytoken?: string;
  registrytoken?: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `host[:port][/path]` of a docker config key, which may be a URL (`https://index.docker.io/v1/`). */
export function normalizeRegistryKey(key: string): string {
  let value = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/+$/, '');
  const slash = value.indexOf('/');
  const host = (slash < 0 ? value : value.slice(0, slash)).toLowerCase();
  const path = slash < 0 ? '' : value.slice(slash);
  if (DOCKER_HUB_ALIASES.has(host)) return path === '/v1' || path === '/v2' ? DOCKER_HUB : DOCKER_HUB + path;
  value = host + path;
  return value;
}

function entryAuth(server: string, entry: DockerConfigEntry): AuthConfig {
  const out: AuthConfig = { server_address: server };
  let { username, password } = entry;
  if (entry.auth && (username === undefined || password === undefined)) {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) throw new PullSecretError(`the auth of registry ${server} is not base64 of "user:password"`);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  if (username !== undefined) out.username = username;
  if (password !== undefined) out.password = password;
  if (entry.auth) out.auth = entry.auth;
  if (entry.identitytoken) out.identity_token = entry.identitytoken;
  if (entry.registrytoken) out.registry_token = entry.registrytoken;
  return out;
}

/**
 * The registry credentials in a pull secret: type `kubernetes.io/dockerconfigjson`
 * (`.dockerconfigjson`: `{"auths": {host: {...}}}`) or the legacy `kubernetes.io/dockercfg`
 * (`.dockercfg`: `{host: {...}}`). Each AuthConfig carries its registry in `server_address`.
 */
export function dockerConfigAuths(secret: KubeObject): AuthConfig[] {
  const name = `${secret.metadata.namespace}/${secret.metadata.name}`;
  const data = (secret.data ?? {}) as Record<string, string>;
  const type = secret.type as string | undefined;
  const field = data['.dockerconfigjson'] !== undefined ? '.dockerconfigjson' : data['.dockercfg'] !== undefined ? '.dockercfg' : undefined;
  if (!field) throw new PullSecretError(`secret ${name} (type ${type ?? 'Opaque'}) holds neither .dockerconfigjson nor .dockercfg`);
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(data[field]!, 'base64').toString('utf8'));
  } catch (err) {
    throw new PullSecretError(`secret ${name}: ${field} is not JSON: ${(err as Error).message}`);
  }
  const auths = field === '.dockerconfigjson' ? (isRecord(doc) ? doc.auths : undefined) : doc;
  if (!isRecord(auths)) throw new PullSecretError(`secret ${name}: ${field} has no ${field === '.dockerconfigjson' ? '"auths" object' : 'registry entries'}`);
  const out: AuthConfig[] = [];
  for (const [key, entry] of Object.entries(auths)) {
    if (!isRecord(entry)) throw new PullSecretError(`secret ${name}: the entry for ${key} is not an object`);
    out.push(entryAuth(normalizeRegistryKey(key), entry as DockerConfigEntry));
  }
  return out;
}

/**
 * Every credential of the pod's imagePullSecrets, in order. A secret that is missing or not a
 * docker config is skipped (kubelet warns and pulls without it), and reported through `warn`.
 */
export async function pullSecretsAuth(pod: KubeObject, source: ObjectSource, warn: (message: string) => void = () => undefined): Promise<AuthConfig[]> {
  const out: AuthConfig[] = [];
  for (const ref of podSpec(pod).imagePullSecrets ?? []) {
    const secret = await source.secret(pod.metadata.namespace!, ref.name);
    if (!secret) {
      warn(`Unable to retrieve some image pull secrets (${ref.name}); attempting to pull the image may not succeed.`);
      continue;
    }
    try {
      out.push(...dockerConfigAuths(secret));
    } catch (err) {
      warn((err as Error).message);
    }
  }
  return out;
}

function splitHostPort(hostPort: string): [string, string] {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hostPort);
  return m ? [m[1]!.toLowerCase(), m[2] ?? ''] : [hostPort.toLowerCase(), ''];
}

/** Host labels match one by one; a `*` label in the key matches any single label. */
function hostMatches(pattern: string, host: string): boolean {
  const p = pattern.split('.');
  const h = host.split('.');
  return p.length === h.length && p.every((label, i) => label === '*' || label === h[i]);
}

function keyMatches(key: string, domain: string, path: string): boolean {
  const slash = key.indexOf('/');
  const [keyHost, keyPort] = splitHostPort(slash < 0 ? key : key.slice(0, slash));
  const keyPath = slash < 0 ? '' : key.slice(slash + 1);
  const [host, port] = splitHostPort(domain);
  if (keyPort !== port || !hostMatches(keyHost, host)) return false;
  return keyPath === '' || path === keyPath || path.startsWith(`${keyPath}/`);
}

/**
 * The credentials that apply to `image`, most specific first (longest key). Docker Hub's aliases
 * (`index.docker.io`, `registry-1.docker.io`) count as `docker.io`.
 */
export function authsForImage(image: string, auths: readonly AuthConfig[]): AuthConfig[] {
  let domain: string;
  let path: string;
  try {
    ({ domain, path } = parseReference(image));
  } catch {
    return [];
  }
  if (DOCKER_HUB_ALIASES.has(domain)) domain = DOCKER_HUB;
  return auths
    .filter((a) => keyMatches(a.server_address ?? '', domain, path))
    .sort((a, b) => (b.server_address ?? '').length - (a.server_address ?? '').length);
}
