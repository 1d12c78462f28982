import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { MalformedError } from './errors.js';
import type { Reference } from './reference.js';

/**
 * Registry mirrors, rewrites, credentials and TLS settings, read from a file in K3s's
 * `registries.yaml` format:
 *
 *     mirrors:
 *       docker.io:
 *         endpoint: ["http://127.0.0.1:5000", "https://mirror.example:5000"]
 *         rewrite: {"^library/(.*)": "mirrored/$1"}
 *     configs:
 *       "mirror.example:5000":
 *         auth: {username: u, password: p}
 *         tls: {ca_file: /etc/ssl/mirror-ca.pem, insecure_skip_verify: false}
 *
 * A pull tries the mirror endpoints of the reference's registry in order (a mirror named `*` applies
 * to every registry), then the registry itself. Rewrites apply to mirrors only, as in K3s. Writing
 * an `http://` endpoint is the explicit insecure-registry setting; without a scheme an endpoint is
 * https unless its host is loopback.
 */
export interface RegistryAuth {
  username?: string;
  password?: string;
  /** base64 of `username:password`, as in a Docker config file. */
  auth?: string;
  /** A bearer token used as is, skipping the token endpoint. */
  registryToken?: string;
}

export interface RegistryTLS {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  insecureSkipVerify?: boolean;
}

export interface Mirror {
  endpoints: string[];
  rewrites: { pattern: RegExp; replacement: string }[];
}

export interface RegistriesConfig {
  mirrors: Map<string, Mirror>;
  configs: Map<string, { auth?: RegistryAuth; tls?: RegistryTLS }>;
}

/** One place a pull can fetch from: the API root, how to reach it, and the repository name there. */
export interface Endpoint {
  /** `http://127.0.0.1:5000/v2` */
  apiRoot: string;
  /** host[:port] as written in a reference or config key */
  host: string;
  scheme: 'http' | 'https';
  repository: string;
  mirror: boolean;
  auth?: RegistryAuth;
  tls?: RegistryTLS;
}

const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io';
const WILDCARD = '*';

export function emptyRegistriesConfig(): RegistriesConfig {
  return { mirrors: new Map(), configs: new Map() };
}

/** localhost, 127.0.0.0/8 and ::1, with or without a port. */
export function isLoopbackHost(hostPort: string): boolean {
  let host = hostPort;
  if (host.startsWith('[')) host = host.slice(1, host.indexOf(']'));
  else if (isIP(host) !== 6) host = host.replace(/:\d+$/, '');
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optionalString(v: unknown, where: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw new MalformedError(`${where} must be a string`);
  return v;
}

export function parseRegistriesConfig(text: string, source: string): RegistriesConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new MalformedError(`${source}: not valid YAML: ${(err as Error).message}`);
  }
  const config = emptyRegistriesConfig();
  if (doc === null || doc === undefined) return config;
  if (!isObject(doc)) throw new MalformedError(`${source}: top level must be a mapping with mirrors and configs`);
  for (const key of Object.keys(doc)) {
    if (key !== 'mirrors' && key !== 'configs') throw new MalformedError(`${source}: unknown key ${JSON.stringify(key)} (expected mirrors, configs)`);
  }
  const mirrors = doc.mirrors ?? {};
  if (!isObject(mirrors)) throw new MalformedError(`${source}: mirrors must be a mapping of registry host to {endpoint, rewrite}`);
  for (const [registry, value] of Object.entries(mirrors)) {
    const where = `${source}: mirrors[${JSON.stringify(registry)}]`;
    if (!isObject(value)) throw new MalformedError(`${where} must be a mapping`);
    const endpoints = value.endpoint ?? [];
    if (!Array.isArray(endpoints) || !endpoints.every((e) => typeof e === 'string' && e !== '')) {
      throw new MalformedError(`${where}.endpoint must be a list of URLs`);
    }
    for (const e of endpoints) parseEndpointUrl(e as string, `${where}.endpoint`);
    const rewrites: Mirror['rewrites'] = [];
    const rewrite = value.rewrite ?? {};
    if (!isObject(rewrite)) throw new MalformedError(`${where}.rewrite must be a mapping of regular expression to replacement`);
    for (const [pattern, replacement] of Object.entries(rewrite)) {
      if (typeof replacement !== 'string') throw new MalformedError(`${where}.rewrite[${JSON.stringify(pattern)}] must be a string`);
      try {
        rewrites.push({ pattern: new RegExp(pattern), replacement });
      } catch (err) {
        throw new MalformedError(`${where}.rewrite: bad regular expression ${JSON.stringify(pattern)}: ${(err as Error).message}`);
      }
    }
    config.mirrors.set(registry, { endpoints: endpoints as string[], rewrites });
  }
  const configs = doc.configs ?? {};
  if (!isObject(configs)) throw new MalformedError(`${source}: configs must be a mapping of registry host to {auth, tls}`);
  for (const [host, value] of Object.entries(configs)) {
    const where = `${source}: configs[${JSON.stringify(host)}]`;
    if (!isObject(value)) throw new MalformedError(`${where} must be a mapping`);
    const entry: { auth?: RegistryAuth; tls?: RegistryTLS } = {};
    if (value.auth !== undefined && value.auth !== null) {
      if (!isObject(value.auth)) throw new MalformedError(`${where}.auth must be a mapping`);
      const a = value.auth;
      entry.auth = {};
      const username = optionalString(a.username, `${where}.auth.username`);
      const password = optionalString(a.password, `${where}.auth.password`);
      const auth = optionalString(a.auth, `${where}.auth.auth`);
      const token = optionalString(a.identity_token, `${where}.auth.identity_token`);
      if (username !== undefined) entry.auth.username = username;
      if (password !== undefined) entry.auth.password = password;
      if (auth !== undefined) entry.auth.auth = auth;
      if (token !== undefined) entry.auth.registryToken = token;
    }
    if (value.tls !== undefined && value.tls !== null) {
      if (!isObject(value.tls)) throw new MalformedError(`${where}.tls must be a mapping`);
      const t = value.tls;
      entry.tls = {};
      const ca = optionalString(t.ca_file, `${where}.tls.ca_file`);
      const cert = optionalString(t.cert_file, `${where}.tls.cert_file`);
      const key = optionalString(t.key_file, `${where}.tls.key_file`);
      if (ca !== undefined) entry.tls.caFile = ca;
      if (cert !== undefined) entry.tls.certFile = cert;
      if (key !== undefined) entry.tls.keyFile = key;
      if (t.insecure_skip_verify !== undefined) {
        if (typeof t.insecure_skip_verify !== 'boolean') throw new MalformedError(`${where}.tls.insecure_skip_verify must be true or false`);
        entry.tls.insecureSkipVerify = t.insecure_skip_verify;
      }
    }
    config.configs.set(host, entry);
  }
  return config;
}

/** Reads a registries.yaml; a missing file is an empty configuration. */
export async function loadRegistriesConfig(file: string): Promise<RegistriesConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyRegistriesConfig();
    throw err;
  }
  return parseRegistriesConfig(text, file);
}

function parseEndpointUrl(endpoint: string, where: string): { scheme: 'http' | 'https'; host: string; apiRoot: string } {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `${isLoopbackHost(endpoint.split('/')[0]!) ? 'http' : 'https'}://${endpoint}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new MalformedError(`${where}: ${JSON.stringify(endpoint)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new MalformedError(`${where}: ${JSON.stringify(endpoint)} must be http or https`);
  const path = url.pathname.replace(/\/+$/, '');
  const apiPath = path.endsWith('/v2') ? path : `${path}/v2`;
  return { scheme: url.protocol === 'http:' ? 'http' : 'https', host: url.host, apiRoot: `${url.protocol}//${url.host}${apiPath}` };
}

function configFor(config: RegistriesConfig, host: string): { auth?: RegistryAuth; tls?: RegistryTLS } {
  return config.configs.get(host) ?? config.configs.get(WILDCARD) ?? {};
}

function rewrite(path: string, mirror: Mirror): string {
  for (const r of mirror.rewrites) {
    if (r.pattern.test(path)) return path.replace(r.pattern, r.replacement);
  }
  return path;
}

export interface PlanOptions {
  /** Pull only from mirrors, never the origin (K3s's --disable-default-registry-endpoint); applies only to registries with mirrors. */
  disableDefaultEndpoint?: boolean;
}

/** The endpoints a pull of `ref` tries, in order: mirrors, then the origin. */
export function planEndpoints(config: RegistriesConfig, ref: Reference, options: PlanOptions = {}): Endpoint[] {
  const plan: Endpoint[] = [];
  const mirror = config.mirrors.get(ref.domain) ?? config.mirrors.get(WILDCARD);
  for (const e of mirror?.endpoints ?? []) {
    const url = parseEndpointUrl(e, `mirror of ${ref.domain}`);
    plan.push({ ...url, repository: rewrite(ref.path, mirror!), mirror: true, ...configFor(config, url.host) });
  }
  if (mirror && mirror.endpoints.length > 0 && options.disableDefaultEndpoint) return plan;
  const originHost = ref.domain === 'docker.io' ? DOCKER_HUB_ENDPOINT : ref.domain;
  const origin = `${isLoopbackHost(originHost) ? 'http' : 'https'}://${originHost}/v2`;
  if (!plan.some((p) => p.apiRoot === origin && p.repository === ref.path)) {
    const settings = config.configs.get(ref.domain) ?? configFor(config, originHost);
    plan.push({ apiRoot: origin, host: originHost, scheme: origin.startsWith('http:') ? 'http' : 'https', repository: ref.path, mirror: false, ...settings });
  }
  return plan;
}
