import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { busyboxRootfs } from '../../src/runtime/images/busybox.js';
import { tarDirectory, writeTar } from '../../src/runtime/images/import.js';
import { MediaType, sha256Digest, type Platform } from '../../src/runtime/images/manifest.js';

/** Small images for tests, built from the host's busybox-static; nothing is fetched. */

export { BUSYBOX, BUSYBOX_APPLETS, busyboxRootfs } from '../../src/runtime/images/busybox.js';

export interface Blob {
  data: Buffer;
  digest: string;
  mediaType: string;
}

export interface TestLayer extends Blob {
  diffId: string;
}

/** An image as a registry holds it: config, layers and the manifest that ties them. */
export interface TestImage {
  config: Blob;
  layers: TestLayer[];
  manifest: Blob;
}

let busyboxTar: Promise<Buffer> | undefined;

/** The busybox rootfs as an uncompressed tar, built once per process. */
export function busyboxLayerTar(): Promise<Buffer> {
  busyboxTar ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'atoll-rootfs-'));
    try {
      return await tarDirectory(await busyboxRootfs(dir));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return busyboxTar;
}

/** A layer holding one file of `size` random bytes at `path`. */
export async function fileLayerTar(path: string, size: number): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'atoll-layer-'));
  try {
    const file = join(dir, path);
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(file, randomBytes(size));
    return await tarDirectory(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface BuildTestImageOptions {
  format?: 'oci' | 'docker';
  gzip?: boolean;
  cmd?: string[];
  /** Extra layers of random data (bytes each), after the busybox layer. */
  extraLayers?: number[];
  platform?: Platform;
  /** Use this tar instead of busybox as the first layer (a dummy image for another platform). */
  baseLayer?: Buffer;
}

export async function buildTestImage(options: BuildTestImageOptions = {}): Promise<TestImage> {
  const oci = (options.format ?? 'oci') === 'oci';
  const platform = options.platform ?? { os: 'linux', architecture: 'amd64' };
  const tars = [options.baseLayer ?? (await busyboxLayerTar())];
  for (const [i, size] of (options.extraLayers ?? []).entries()) tars.push(await fileLayerTar(`data/layer-${i}.bin`, size));
  const layers: TestLayer[] = tars.map((t) => {
    const data = options.gzip ? gzipSync(t, { level: 1 }) : t;
    const mediaType = oci ? (options.gzip ? MediaType.ociLayerGzip : MediaType.ociLayer) : options.gzip ? MediaType.dockerLayerGzip : MediaType.dockerLayer;
    return { data, digest: sha256Digest(data), mediaType, diffId: sha256Digest(t) };
  });
  const configDoc = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Cmd: options.cmd ?? ['/bin/sh'], Env: ['PATH=/bin'], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
  };
  const configData = Buffer.from(JSON.stringify(configDoc));
  const config: Blob = { data: configData, digest: sha256Digest(configData), mediaType: oci ? MediaType.ociConfig : MediaType.dockerConfig };
  const manifestType = oci ? MediaType.ociManifest : MediaType.dockerManifest;
  const manifestData = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: manifestType,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.data.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.data.length })),
    }),
  );
  return { config, layers, manifest: { data: manifestData, digest: sha256Digest(manifestData), mediaType: manifestType } };
}

/** A tiny image for a platform nobody here runs: one layer with a text file. */
export async function dummyImage(platform: Platform, format: 'oci' | 'docker' = 'oci'): Promise<TestImage> {
  return buildTestImage({ format, platform, baseLayer: await fileLayerTar('etc/dummy', 64) });
}

/** An index (OCI) or manifest list (Docker) over images, each with its platform. */
export function buildIndex(entries: { image: TestImage; platform: Platform }[], format: 'oci' | 'docker' = 'oci'): Blob {
  const mediaType = format === 'oci' ? MediaType.ociIndex : MediaType.dockerManifestList;
  const data = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: entries.map(({ image, platform }) => ({
        mediaType: image.manifest.mediaType,
        digest: image.manifest.digest,
        size: image.manifest.data.length,
        platform,
      })),
    }),
  );
  return { data, digest: sha256Digest(data), mediaType };
}

/** Writes an OCI image layout tarball holding `images`, each named by an annotation. */
export async function writeOciArchive(file: string, images: { image: TestImage; name?: string; refName?: string }[]): Promise<void> {
  const entries: [string, Buffer][] = [['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')]];
  const manifests = images.map(({ image, name, refName }) => ({
    mediaType: image.manifest.mediaType,
    digest: image.manifest.digest,
    size: image.manifest.data.length,
    annotations: {
      ...(name ? { 'io.containerd.image.name': name } : {}),
      ...(refName ? { 'org.opencontainers.image.ref.name': refName } : {}),
    },
  }));
  entries.push(['index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }))]);
  for (const { image } of images) {
    for (const blob of [image.config, ...image.layers, image.manifest]) entries.push([`blobs/sha256/${blob.digest.slice(7)}`, blob.data]);
  }
  await writeTar(file, entries);
}

/** Writes a legacy `docker save` tarball: manifest.json, repositories, <id>.json, <layer>/layer.tar. */
export async function writeDockerSaveArchive(file: string, image: TestImage, repoTags: string[]): Promise<void> {
  const configName = `${image.config.digest.slice(7)}.json`;
  const layerNames = image.layers.map((l) => `${l.diffId.slice(7)}/layer.tar`);
  const entries: [string, Buffer][] = [
    [configName, image.config.data],
    ...image.layers.map((l, i): [string, Buffer] => [layerNames[i]!, l.data]),
    ...image.layers.map((l): [string, Buffer] => [`${l.diffId.slice(7)}/VERSION`, Buffer.from('1.0')]),
    ['manifest.json', Buffer.from(JSON.stringify([{ Config: configName, RepoTags: repoTags, Layers: layerNames }]))],
  ];
  const repositories: Record<string, Record<string, string>> = {};
  for (const t of repoTags) {
    const i = t.lastIndexOf(':');
    (repositories[t.slice(0, i)] ??= {})[t.slice(i + 1)] = layerNames[layerNames.length - 1]!.split('/')[0]!;
  }
  entries.push(['repositories', Buffer.from(JSON.stringify(repositories))]);
  await writeTar(file, entries);
}
