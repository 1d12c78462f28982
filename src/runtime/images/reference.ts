import { InvalidReferenceError } from './errors.js';

/**
 * Image references, normalised as Docker does: `busybox` is `docker.io/library/busybox:latest`,
 * `host:5000/a/b@sha256:...` keeps its registry and has no tag, and a reference may carry both a
 * tag and a digest (the digest then decides what is pulled).
 */
export interface Reference {
  /** Registry host, with port if any: `docker.io`, `127.0.0.1:5000`, `[::1]:5000`. */
  domain: string;
  /** Repository path inside the registry: `library/busybox`. */
  path: string;
  tag?: string;
  digest?: string;
}

export const DEFAULT_DOMAIN = 'docker.io';
export const DEFAULT_TAG = 'latest';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_REPO_PREFIX = 'library/';
const NAME_MAX_LENGTH = 255;

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const PATH_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const SHA256_RE = /^sha256:[a-f0-9]{64}$/;
const BARE_ID_RE = /^[a-f0-9]{64}$/;

export function isDigest(value: string): boolean {
  return SHA256_RE.test(value);
}

export function parseReference(input: string): Reference {
  const fail = (reason: string): never => {
    throw new InvalidReferenceError(input, reason);
  };
  if (input === '') fail('empty reference');
  if (input.trim() !== input) fail('leading or trailing whitespace');
  if (BARE_ID_RE.test(input)) fail('a 64-character hex string is an image ID, not a reference');

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) fail(`malformed digest ${JSON.stringify(digest)}`);
    if (digest.startsWith('sha256:') && !SHA256_RE.test(digest)) {
      fail('sha256 digest must be 64 lowercase hex characters');
    }
    if (!digest.startsWith('sha256:')) fail(`unsupported digest algorithm in ${JSON.stringify(digest)}`);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) fail(`malformed tag ${JSON.stringify(tag)}`);
  }
  if (rest === '') fail('missing repository name');

  let domain: string;
  let path: string;
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  if (slash < 0 || (!/[.:]/.test(first) && first !== 'localhost' && first.toLowerCase() === first)) {
    domain = DEFAULT_DOMAIN;
    path = rest;
  } else {
    domain = first;
    path = rest.slice(slash + 1);
    if (!DOMAIN_RE.test(domain)) fail(`malformed registry host ${JSON.stringify(domain)}`);
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = OFFICIAL_REPO_PREFIX + path;

  for (const component of path.split('/')) {
    if (component === '') fail('empty path component');
    if (component.toLowerCase() !== component) fail('repository name must be lowercase');
    if (!PATH_COMPONENT_RE.test(component)) fail(`malformed path component ${JSON.stringify(component)}`);
  }
  if (domain.length + 1 + path.length > NAME_MAX_LENGTH) fail(`repository name longer than ${NAME_MAX_LENGTH} characters`);

  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  const ref: Reference = { domain, path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** `docker.io/library/busybox` */
export function repositoryName(ref: Pick<Reference, 'domain' | 'path'>): string {
  return `${ref.domain}/${ref.path}`;
}

/** The full normalised string: `docker.io/library/busybox:latest`, `h:5000/a@sha256:...`, or both. */
export function formatReference(ref: Reference): string {
  let s = repositoryName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** `docker.io/library/busybox:latest`, or undefined when the reference has no tag. */
export function taggedName(ref: Reference): string | undefined {
  return ref.tag === undefined ? undefined : `${repositoryName(ref)}:${ref.tag}`;
}

export function digestedName(ref: Pick<Reference, 'domain' | 'path'>, digest: string): string {
  return `${repositoryName(ref)}@${digest}`;
}
