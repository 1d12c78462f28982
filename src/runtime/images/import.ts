import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, open, readdir, readFile, readlink, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar, { type Header } from 'tar-stream';
import type { BlobInfo } from './content.js';
import { DigestMismatchError, ImageError, MalformedError, NotFoundError } from './errors.js';
import {
  hostPlatform,
  MediaType,
  parseImageConfig,
  parseManifestOrIndex,
  selectPlatform,
  sha256Digest,
  type Descriptor,
  type Manifest,
  type Platform,
} from './manifest.js';
import { digestedName, parseReference, taggedName } from './reference.js';
import type { Image, ImageStore } from './store.js';

/**
 * Air-gapped image transfer: `importArchive` loads an OCI image-layout tarball or a `docker save`
 * tarball (gzipped or not) into an ImageStore, and `buildImageArchive` writes an OCI image layout
 * from a directory tree, which is how `atoll up` makes atoll.local/busybox from the host's
 * busybox-static.
 */

export const ANNOTATION_CONTAINERD_NAME = 'io.containerd.image.name';
export const ANNOTATION_REF_NAME = 'org.opencontainers.image.ref.name';
/** Metadata files in an archive (index.json, manifest.json, configs) are read into memory up to this size. */
const METADATA_MAX_BYTES = 16 << 20;
/** Archive entries carry this mtime so the same tree always gives the same image id. */
const FIXED_MTIME = new Date(0);

interface ArchiveContents {
  /** Small files by normalised path. */
  files: Map<string, Buffer>;
  /** Blobs stored from the archive by normalised path. */
  blobs: Map<string, BlobInfo>;
  /** Symlinks by normalised path → normalised target. */
  links: Map<string, string>;
}

function normalise(name: string): string {
  return posix.normalize(name).replace(/^(\.\/)+/, '').replace(/^\/+/, '').replace(/\/+$/, '');
}

async function readAll(stream: AsyncIterable<Buffer | Uint8Array>, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += chunk.length;
    if (size > limit) throw new MalformedError(`${what} is larger than ${limit} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

async function openArchive(file: string): Promise<Readable> {
  const fh = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'ENOENT' ? new NotFoundError(`archive ${file} does not exist`) : err;
  });
  const magic = Buffer.alloc(2);
  try {
    await fh.read(magic, 0, 2, 0);
  } finally {
    await fh.close();
  }
  const raw = createReadStream(file);
  if (magic[0] !== 0x1f || magic[1] !== 0x8b) return raw;
  const gunzip = createGunzip();
  raw.on('error', (err) => gunzip.destroy(err));
  return raw.pipe(gunzip);
}

async function readArchive(store: ImageStore, file: string, hold: (digest: string) => void): Promise<ArchiveContents> {
  const contents: ArchiveContents = { files: new Map(), blobs: new Map(), links: new Map() };
  const extract = tar.extract();
  const source = await openArchive(file);
  const feeding = pipeline(source, extract).catch((err: Error) => {
    throw new MalformedError(`${file} is not a readable tar archive: ${err.message}`);
  });
  try {
    for await (const entry of extract) {
      const name = normalise(entry.header.name);
      const type = entry.header.type;
      if (type === 'symlink' && entry.header.linkname) {
        contents.links.set(name, normalise(posix.join(posix.dirname(name), entry.header.linkname)));
      } else if (type === 'link' && entry.header.linkname) {
        contents.links.set(name, normalise(entry.header.linkname));
      } else if (type === 'file' || type === 'contiguous-file') {
        const blob = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(name);
        if (blob) {
          const digest = `sha256:${blob[1]}`;
          hold(digest);
          const info = await store.content.ingest(digest, async () => ({ stream: Readable.from(entry), offset: 0 }), {
            size: entry.header.size ?? 0,
            what: `blob ${name} of ${file}`,
          });
          contents.blobs.set(name, info);
        } else if (name.endsWith('.tar') || name.endsWith('.tar.gz')) {
          const info = await store.content.putStream(Readable.from(entry));
          hold(info.digest);
          contents.blobs.set(name, info);
        } else if ((entry.header.size ?? 0) <= METADATA_MAX_BYTES) {
          contents.files.set(name, await readAll(entry as unknown as AsyncIterable<Buffer>, METADATA_MAX_BYTES, `${name} in ${file}`));
        }
      }
      // Whatever was not read (an existing blob, an unused file) is skipped.
      entry.resume();
    }
    await feeding;
  } catch (err) {
    source.destroy();
    await feeding.catch(() => undefined);
    if (err instanceof ImageError || (err as NodeJS.ErrnoException).code !== undefined) throw err;
    throw new MalformedError(`${file} is not a readable tar archive: ${(err as Error).message}`);
  }
  return contents;
}

function resolveLink(contents: ArchiveContents, name: string): string {
  let path = normalise(name);
  for (let hops = 0; contents.links.has(path) && hops < 16; hops++) path = contents.links.get(path)!;
  return path;
}

function jsonFile(contents: ArchiveContents, name: string, file: string): unknown {
  const bytes = contents.files.get(resolveLink(contents, name));
  if (!bytes) throw new MalformedError(`${file} lacks ${name}`);
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new MalformedError(`${name} in ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

async function isGzip(store: ImageStore, digest: string): Promise<boolean> {
  const fh = await open(store.content.path(digest), 'r');
  try {
    const magic = Buffer.alloc(2);
    const { bytesRead } = await fh.read(magic, 0, 2, 0);
    return bytesRead === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
  } finally {
    await fh.close();
  }
}

function fullName(annotations: Record<string, string> | undefined): string | undefined {
  const name = annotations?.[ANNOTATION_CONTAINERD_NAME] ?? annotations?.[ANNOTATION_REF_NAME];
  // A bare ref.name ("latest") is only a tag, which names nothing without a repository.
  if (name === undefined || !/[/:]/.test(name)) return undefined;
  return name;
}

async function importDocker(store: ImageStore, contents: ArchiveContents, file: string): Promise<Image[]> {
  const entries = jsonFile(contents, 'manifest.json', file);
  if (!Array.isArray(entries)) throw new MalformedError(`manifest.json in ${file} is not a list`);
  const images: Image[] = [];
  for (const [i, raw] of entries.entries()) {
    const e = raw as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
    const where = `manifest.json[${i}] in ${file}`;
    if (typeof e.Config !== 'string' || !Array.isArray(e.Layers) || !e.Layers.every((l) => typeof l === 'string')) {
      throw new MalformedError(`${where} needs Config and Layers`);
    }
    const configPath = resolveLink(contents, e.Config);
    const configBytes = contents.files.get(configPath) ?? (contents.blobs.has(configPath) ? await store.content.read(contents.blobs.get(configPath)!.digest) : undefined);
    if (!configBytes) throw new MalformedError(`${where}: config ${e.Config} is not in the archive`);
    const configInfo = await store.content.put(configBytes);
    const config = parseImageConfig(configBytes, e.Layers.length, `config ${e.Config} of ${file}`);
    const layers: Descriptor[] = [];
    for (const [j, layerPath] of (e.Layers as string[]).entries()) {
      const blob = contents.blobs.get(resolveLink(contents, layerPath));
      if (!blob) throw new MalformedError(`${where}: layer ${layerPath} is not in the archive`);
      const gzip = await isGzip(store, blob.digest);
      if (!gzip && blob.digest !== config.rootfs.diff_ids[j]) throw new DigestMismatchError(config.rootfs.diff_ids[j]!, blob.digest, `layer ${layerPath} of ${file}`);
      layers.push({ mediaType: gzip ? MediaType.dockerLayerGzip : MediaType.dockerLayer, digest: blob.digest, size: blob.size });
    }
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MediaType.dockerManifest,
      config: { mediaType: MediaType.dockerConfig, digest: configInfo.digest, size: configInfo.size },
      layers,
    };
    const manifestInfo = await store.content.put(Buffer.from(JSON.stringify(manifest)));
    const tags = Array.isArray(e.RepoTags) ? e.RepoTags.filter((t): t is string => typeof t === 'string') : [];
    const repoTags = tags.map((t) => taggedName(parseReference(t))).filter((t): t is string => t !== undefined);
    images.push(await store.commit({ manifestDigest: manifestInfo.digest, manifest, config, repoTags, repoDigests: [] }));
  }
  return images;
}

async function importOci(store: ImageStore, contents: ArchiveContents, file: string, platform: Platform): Promise<Image[]> {
  const layout = contents.files.get('oci-layout');
  if (layout) {
    const version = (JSON.parse(layout.toString('utf8')) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
    if (version !== '1.0.0') throw new MalformedError(`oci-layout in ${file} has imageLayoutVersion ${JSON.stringify(version)}, expected "1.0.0"`);
  }
  const indexBytes = contents.files.get('index.json')!;
  const top = parseManifestOrIndex(indexBytes, MediaType.ociIndex, `index.json of ${file}`);
  if (top.kind !== 'index') throw new MalformedError(`index.json of ${file} is not an image index`);
  const images: Image[] = [];
  const blob = async (d: Descriptor, what: string): Promise<Buffer> => {
    if (!(await store.content.has(d.digest))) throw new MalformedError(`${what} ${d.digest} is not in ${file}`);
    const bytes = await store.content.read(d.digest);
    if (sha256Digest(bytes) !== d.digest) throw new DigestMismatchError(d.digest, sha256Digest(bytes), what);
    return bytes;
  };
  for (const desc of top.index.manifests) {
    let parsed = parseManifestOrIndex(await blob(desc, 'manifest'), desc.mediaType, `manifest ${desc.digest} of ${file}`);
    let manifestDigest = desc.digest;
    if (parsed.kind === 'index') {
      const chosen = selectPlatform(parsed.index, platform, `index ${desc.digest} of ${file}`);
      parsed = parseManifestOrIndex(await blob(chosen, 'manifest'), chosen.mediaType, `manifest ${chosen.digest} of ${file}`);
      if (parsed.kind !== 'manifest') throw new MalformedError(`index ${desc.digest} of ${file} nests another index for its platform`);
      manifestDigest = chosen.digest;
    }
    const manifest = parsed.manifest;
    const config = parseImageConfig(await blob(manifest.config, 'config'), manifest.layers.length, `config ${manifest.config.digest} of ${file}`);
    for (const layer of manifest.layers) {
      if (!(await store.content.has(layer.digest))) throw new MalformedError(`layer ${layer.digest} is not in ${file}`);
    }
    const name = fullName(desc.annotations);
    const ref = name === undefined ? undefined : parseReference(name);
    const tag = ref && ref.digest === undefined ? taggedName(ref) : undefined;
    images.push(
      await store.commit({
        manifestDigest,
        manifest,
        config,
        repoTags: tag ? [tag] : [],
        repoDigests: ref ? [digestedName(ref, desc.digest)] : [],
      }),
    );
  }
  return images;
}

/** Loads every image of an OCI image-layout or `docker save` tarball into `store`. */
export async function importArchive(store: ImageStore, file: string, options: { platform?: Platform } = {}): Promise<Image[]> {
  const releases: (() => void)[] = [];
  try {
    const contents = await readArchive(store, file, (digest) => {
      releases.push(store.lease([digest]));
    });
    if (contents.files.has('manifest.json')) return await importDocker(store, contents, file);
    if (contents.files.has('index.json')) return await importOci(store, contents, file, options.platform ?? hostPlatform());
    throw new MalformedError(`${file} is neither an OCI image layout (no index.json) nor a docker save archive (no manifest.json)`);
  } finally {
    for (const release of releases) release();
  }
}

/** A tar of `dir` with root ownership and a fixed mtime, hard links kept; for small trees such as a busybox rootfs. */
export async function tarDirectory(dir: string): Promise<Buffer> {
  const pack = tar.pack();
  const collected = readAll(pack as unknown as AsyncIterable<Buffer>, Number.MAX_SAFE_INTEGER, `tar of ${dir}`);
  const inodes = new Map<string, string>();
  const add = (header: Partial<Header> & { name: string }, body?: Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      pack.entry(header, body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    });
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(dir, path));
      const base = { name: path, mode: st.mode & 0o7777, uid: 0, gid: 0, mtime: FIXED_MTIME };
      if (st.isDirectory()) {
        await add({ ...base, type: 'directory' });
        await walk(path);
      } else if (st.isSymbolicLink()) {
        await add({ ...base, type: 'symlink', linkname: await readlink(join(dir, path)) });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? inodes.get(key) : undefined;
        if (first !== undefined) {
          await add({ ...base, type: 'link', linkname: first });
        } else {
          inodes.set(key, path);
          await add({ ...base, type: 'file' }, await readFile(join(dir, path)));
        }
      }
    }
  };
  await walk('');
  pack.finalize();
  return collected;
}

export interface BuildImageOptions {
  /** The image's name, as it will be tagged on import: `atoll.local/busybox:latest`. */
  ref: string;
  /** Directory whose tree becomes the image's single layer. */
  files: string;
  config: { Entrypoint?: string[]; Cmd: string[]; Env: string[]; WorkingDir: string; User: string };
  platform?: Platform;
  /** Where to write the archive; a new file in the temp directory by default. */
  output?: string;
}

/** Writes an OCI image-layout tarball holding one image built from a directory tree. Returns its path. */
export async function buildImageArchive(options: BuildImageOptions): Promise<string> {
  const ref = parseReference(options.ref);
  const tag = taggedName(ref);
  if (!tag || ref.digest !== undefined) throw new MalformedError(`buildImageArchive needs a tagged reference without digest, got ${JSON.stringify(options.ref)}`);
  const platform = options.platform ?? hostPlatform();
  const layer = await tarDirectory(options.files);
  const diffId = sha256Digest(layer);
  const imageConfig = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: {
      ...(options.config.Entrypoint ? { Entrypoint: options.config.Entrypoint } : {}),
      Cmd: options.config.Cmd,
      Env: options.config.Env,
      WorkingDir: options.config.WorkingDir,
      User: options.config.User,
    },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created: FIXED_MTIME.toISOString(), created_by: `atoll: ${options.files}` }],
  };
  const config = Buffer.from(JSON.stringify(imageConfig));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: sha256Digest(config), size: config.length },
      layers: [{ mediaType: MediaType.ociLayer, digest: diffId, size: layer.length }],
    }),
  );
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        {
          mediaType: MediaType.ociManifest,
          digest: sha256Digest(manifest),
          size: manifest.length,
          platform,
          annotations: { [ANNOTATION_CONTAINERD_NAME]: tag, [ANNOTATION_REF_NAME]: ref.tag! },
        },
      ],
    }),
  );
  const output = options.output ?? join(tmpdir(), `atoll-image-${randomBytes(6).toString('hex')}.tar`);
  const tmp = join(dirname(output), `.${randomBytes(6).toString('hex')}.tmp`);
  await writeTar(tmp, [
    ['oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' }))],
    ['index.json', index],
    ...[layer, config, manifest].map((b): [string, Buffer] => [`blobs/sha256/${sha256Digest(b).slice(7)}`, b]),
  ]);
  await rename(tmp, output).catch(async (err: unknown) => {
    await rm(tmp, { force: true });
    throw err;
  });
  return output;
}

/** Writes a tar of in-memory files (directories are implied by their paths). */
export async function writeTar(file: string, entries: [string, Buffer][]): Promise<void> {
  const pack = tar.pack();
  const writing = pipeline(Readable.from(pack), createWriteStream(file));
  const dirs = new Set<string>();
  for (const [name, body] of entries) {
    for (let d = posix.dirname(name); d !== '.' && !dirs.has(d); d = posix.dirname(d)) {
      dirs.add(d);
      pack.entry({ name: `${d}/`, type: 'directory', mode: 0o755, mtime: FIXED_MTIME });
    }
    pack.entry({ name, mode: 0o644, mtime: FIXED_MTIME, size: body.length }, body);
  }
  pack.finalize();
  await writing;
  const fh = await open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

