import { createHash } from 'node:crypto';
import { MalformedError, NotFoundError, UnsupportedError } from './errors.js';
import { isDigest } from './reference.js';

/** Media types of the OCI image spec and of Docker's schema2, which registries serve side by side. */
export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  ociLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  dockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  dockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;

export const INDEX_TYPES: readonly string[] = [MediaType.ociIndex, MediaType.dockerManifestList];
export const MANIFEST_TYPES: readonly string[] = [MediaType.ociManifest, MediaType.dockerManifest];

/** What a manifest request accepts, most preferred first. */
export const MANIFEST_ACCEPT = [MediaType.ociIndex, MediaType.dockerManifestList, MediaType.ociManifest, MediaType.dockerManifest].join(', ');

export type LayerCompression = 'none' | 'gzip' | 'zstd';

export function layerCompression(mediaType: string): LayerCompression {
  switch (mediaType) {
    case MediaType.ociLayer:
    case MediaType.dockerLayer:
      return 'none';
    case MediaType.ociLayerGzip:
    case MediaType.ociLayerNondistributableGzip:
    case MediaType.dockerLayerGzip:
    case MediaType.dockerForeignLayerGzip:
      return 'gzip';
    case MediaType.ociLayerZstd:
      return 'zstd';
    default:
      throw new UnsupportedError(`unsupported layer media type ${JSON.stringify(mediaType)}`);
  }
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface Index {
  schemaVersion: 2;
  mediaType: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface Manifest {
  schemaVersion: 2;
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** The parts of an OCI image config the runtime reads; the rest is kept as it came. */
export interface ImageConfig {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  author?: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    ExposedPorts?: Record<string, object>;
    Volumes?: Record<string, object>;
    Labels?: Record<string, string>;
    StopSignal?: string;
  };
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: unknown[];
  [key: string]: unknown;
}

export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseJson(bytes: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new MalformedError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isObject(value)) throw new MalformedError(`${what} is not a JSON object`);
  return value;
}

function parseDescriptor(v: unknown, what: string): Descriptor {
  if (!isObject(v)) throw new MalformedError(`${what}: descriptor is not an object`);
  const { mediaType, digest, size, platform, annotations, urls } = v;
  if (typeof mediaType !== 'string') throw new MalformedError(`${what}: descriptor has no mediaType`);
  if (typeof digest !== 'string' || !isDigest(digest)) throw new MalformedError(`${what}: descriptor digest ${JSON.stringify(digest)} is not a sha256 digest`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new MalformedError(`${what}: descriptor ${digest} has an invalid size`);
  const d: Descriptor = { mediaType, digest, size };
  if (isObject(platform)) {
    if (typeof platform.os !== 'string' || typeof platform.architecture !== 'string') {
      throw new MalformedError(`${what}: descriptor ${digest} has a platform without os/architecture`);
    }
    d.platform = { os: platform.os, architecture: platform.architecture };
    if (typeof platform.variant === 'string') d.platform.variant = platform.variant;
  }
  if (isObject(annotations)) d.annotations = annotations as Record<string, string>;
  if (Array.isArray(urls)) d.urls = urls.filter((u): u is string => typeof u === 'string');
  return d;
}

/**
 * Parses a manifest or index from its bytes. `mediaType` is the Content-Type it came with (or the
 * descriptor's), used when the document itself does not say.
 */
export function parseManifestOrIndex(bytes: Buffer, mediaType: string | undefined, what: string): { kind: 'index'; index: Index } | { kind: 'manifest'; manifest: Manifest } {
  const doc = parseJson(bytes, what);
  if (doc.schemaVersion === 1) throw new UnsupportedError(`${what} is a Docker schema1 manifest, which is not supported; push the image again with a current client`);
  if (doc.schemaVersion !== 2) throw new MalformedError(`${what} has schemaVersion ${JSON.stringify(doc.schemaVersion)}, expected 2`);
  const type = typeof doc.mediaType === 'string' ? doc.mediaType : (mediaType?.split(';')[0]?.trim() ?? '');
  const isIndex = INDEX_TYPES.includes(type) || (!MANIFEST_TYPES.includes(type) && Array.isArray(doc.manifests));
  if (isIndex) {
    if (!Array.isArray(doc.manifests)) throw new MalformedError(`${what}: index has no manifests`);
    const index: Index = {
      schemaVersion: 2,
      mediaType: type || MediaType.ociIndex,
      manifests: doc.manifests.map((m, i) => parseDescriptor(m, `${what} manifests[${i}]`)),
    };
    if (isObject(doc.annotations)) index.annotations = doc.annotations as Record<string, string>;
    return { kind: 'index', index };
  }
  if (!Array.isArray(doc.layers)) throw new MalformedError(`${what}: manifest has no layers`);
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: type || MediaType.ociManifest,
    config: parseDescriptor(doc.config, `${what} config`),
    layers: doc.layers.map((l, i) => parseDescriptor(l, `${what} layers[${i}]`)),
  };
  if (isObject(doc.annotations)) manifest.annotations = doc.annotations as Record<string, string>;
  return { kind: 'manifest', manifest };
}

export function parseImageConfig(bytes: Buffer, layerCount: number, what: string): ImageConfig {
  const doc = parseJson(bytes, what);
  const rootfs = doc.rootfs;
  if (!isObject(rootfs) || !Array.isArray(rootfs.diff_ids) || !rootfs.diff_ids.every((d) => typeof d === 'string' && isDigest(d))) {
    throw new MalformedError(`${what}: rootfs.diff_ids is missing or holds a non-sha256 digest`);
  }
  if (rootfs.diff_ids.length !== layerCount) {
    throw new MalformedError(`${what}: ${rootfs.diff_ids.length} diff_ids for ${layerCount} layers`);
  }
  if (doc.config !== undefined && doc.config !== null && !isObject(doc.config)) throw new MalformedError(`${what}: config is not an object`);
  return doc as ImageConfig;
}

const ARCH_ALIASES: Record<string, string> = { x86_64: 'amd64', x64: 'amd64', aarch64: 'arm64', armhf: 'arm', armel: 'arm' };
const DEFAULT_VARIANTS: Record<string, string> = { arm64: 'v8', arm: 'v7' };

function normaliseArch(arch: string): string {
  return ARCH_ALIASES[arch] ?? arch;
}

/** The platform of this machine, in OCI terms (linux/amd64 here). */
export function hostPlatform(): Platform {
  const architecture = normaliseArch(process.arch);
  const p: Platform = { os: 'linux', architecture };
  const variant = DEFAULT_VARIANTS[architecture];
  if (variant !== undefined) p.variant = variant;
  return p;
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/**
 * Picks the manifest for `want` from an index. The variant must match when both sides name one
 * (arm64 without a variant counts as v8); an exact variant match beats an unnamed one.
 */
export function selectPlatform(index: Index, want: Platform, what: string): Descriptor {
  const wantArch = normaliseArch(want.architecture);
  const wantVariant = want.variant ?? DEFAULT_VARIANTS[wantArch];
  let best: Descriptor | undefined;
  let bestScore = -1;
  for (const m of index.manifests) {
    if (!m.platform || !MANIFEST_TYPES.includes(m.mediaType)) continue;
    if (m.platform.os !== want.os || normaliseArch(m.platform.architecture) !== wantArch) continue;
    const variant = m.platform.variant ?? DEFAULT_VARIANTS[wantArch];
    let score: number;
    if (wantVariant === undefined || variant === undefined) score = variant === wantVariant ? 2 : 1;
    else if (variant === wantVariant) score = 2;
    else continue;
    if (score > bestScore) {
      best = m;
      bestScore = score;
    }
  }
  if (!best) {
    const offered = index.manifests.filter((m) => m.platform).map((m) => formatPlatform(m.platform!));
    throw new NotFoundError(`${what} has no manifest for ${formatPlatform({ ...want, architecture: wantArch })} (offers: ${offered.join(', ') || 'none'})`);
  }
  return best;
}
