import { createHash } from 'node:crypto';
import { lstat, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { emptyRegistriesConfig, planEndpoints, type Endpoint, type RegistriesConfig, type RegistryAuth } from './config.js';
import { ContentStore } from './content.js';
import {
  asImageError,
  DigestMismatchError,
  ImageInUseError,
  MalformedError,
  NotFoundError,
  PullError,
  UnsupportedError,
  type PullAttempt,
} from './errors.js';
import {
  hostPlatform,
  layerCompression,
  parseImageConfig,
  parseManifestOrIndex,
  selectPlatform,
  type Descriptor,
  type ImageConfig,
  type Manifest,
  type Platform,
} from './manifest.js';
import { digestedName, formatReference, isDigest, parseReference, taggedName, type Reference } from './reference.js';
import { RegistryClient, TokenCache } from './registry.js';

/**
 * The node's images: registry pulls and archive imports land here as blobs in a ContentStore plus
 * one JSON record per image (`<root>/images/<config hex>.json`, written atomically).
 *
 * An image is known by its id (the config digest), by its tags (`docker.io/library/busybox:latest`)
 * and by its repo digests (`docker.io/library/busybox@sha256:<manifest or index digest>`). A tag
 * belongs to one image; pulling it again moves it. Removing the last tag (or the id) removes the
 * record and garbage-collects the blobs no other record uses.
 */
export interface LayerDescriptor {
  digest: string;
  mediaType: string;
  size: number;
}

export interface Image {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  /** Bytes of content: config plus layers as stored (compressed). */
  size: number;
  config: ImageConfig;
  manifestDigest: string;
  manifestMediaType: string;
  layers: LayerDescriptor[];
  diffIds: string[];
}

export interface PullProgress {
  reference: string;
  endpoint: string;
  digest: string;
  bytes: number;
  total: number;
}

export interface PullOptions {
  /** Credentials for the image's own registry (CRI's AuthConfig); mirrors use their configured auth. */
  auth?: RegistryAuth;
  onProgress?: (progress: PullProgress) => void;
  signal?: AbortSignal;
}

export type InUse = (imageId: string) => boolean | Promise<boolean>;

export interface ImageStoreOptions {
  /** Root of the snapshotter, reported by fsInfo beside the content store. */
  snapshots?: string;
  registries?: RegistriesConfig;
  /** The platform picked from indexes; defaults to this machine's. */
  platform?: Platform;
  parallelDownloads?: number;
  /** Only mirrors, never the origin, for registries that have mirrors. */
  disableDefaultEndpoint?: boolean;
  /** Refuses removal of an image a container uses. */
  inUse?: InUse;
}

export interface LayerStream {
  diffId: string;
  digest: string;
  mediaType: string;
  /** The layer as an uncompressed tar; errors at the end if it does not hash to diffId. */
  open(): Promise<Readable>;
}

export interface FsUsage {
  mountpoint: string;
  usedBytes: number;
  inodesUsed: number;
}

/** What an importer or a pull hands to commit once every blob is in the content store. */
export interface ImageCommit {
  manifestDigest: string;
  manifest: Manifest;
  config: ImageConfig;
  repoTags: string[];
  repoDigests: string[];
}

export const DEFAULT_PARALLEL_DOWNLOADS = 3;
const ID_PREFIX_MIN = 12;

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (next < items.length && failed === undefined) {
      const i = next++;
      try {
        results[i] = await fn(items[i]!);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
  return results;
}

function validateRecord(value: unknown, file: string): Image {
  const v = value as Partial<Image> | null;
  const ok =
    typeof v === 'object' && v !== null &&
    typeof v.id === 'string' && isDigest(v.id) &&
    Array.isArray(v.repoTags) && Array.isArray(v.repoDigests) &&
    typeof v.manifestDigest === 'string' && Array.isArray(v.layers) && Array.isArray(v.diffIds) &&
    v.layers.length === v.diffIds.length && typeof v.config === 'object';
  if (!ok) throw new MalformedError(`image record ${file} is malformed; remove it and pull the image again`);
  return v as Image;
}

function diffIdCheck(expected: string, what: string): Transform {
  const hash = createHash('sha256');
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      done(null, chunk);
    },
    flush(done) {
      const actual = `sha256:${hash.digest('hex')}`;
      done(actual === expected ? null : new DigestMismatchError(expected, actual, what));
    },
  });
}

/**
 * The registry name of node-local images (`atoll.local/busybox:latest`, which `atoll up` imports on every
 * node). Nothing is pulled for it, so pods using it run with no registry at all, as edge sites need.
 */
export const LOCAL_DOMAIN = 'atoll.local';

export class ImageStore {
  readonly root: string;
  readonly content: ContentStore;
  private readonly recordDir: string;
  private readonly options: ImageStoreOptions;
  private readonly registries: RegistriesConfig;
  private readonly tokens = new TokenCache();
  private images: Map<string, Image> | undefined;
  private loading: Promise<Map<string, Image>> | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** Blobs an unfinished pull or import has written but no record references yet; gc keeps them. */
  private readonly leases = new Map<string, number>();

  constructor(root: string, options: ImageStoreOptions = {}) {
    this.root = root;
    this.options = options;
    this.registries = options.registries ?? emptyRegistriesConfig();
    this.content = new ContentStore(root);
    this.recordDir = join(root, 'images');
  }

  async list(): Promise<Image[]> {
    const images = await this.load();
    return [...images.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  /** By id, id prefix (12+ hex), tag or repo digest; undefined when there is no such image. */
  async status(refOrId: string): Promise<Image | undefined> {
    return (await this.resolve(refOrId))?.image;
  }

  async pull(reference: string, options: PullOptions = {}): Promise<Image> {
    const ref = parseReference(reference);
    const display = formatReference(ref);
    if (ref.domain === LOCAL_DOMAIN) {
      // No registry serves this name: a pull (e.g. policy Always for a :latest tag) is satisfied by the import.
      const local = await this.status(display);
      if (local) return local;
      throw new NotFoundError(`image ${JSON.stringify(display)} is not on this node: ${LOCAL_DOMAIN} images are loaded with \`atoll images import\`, never pulled`);
    }
    const plan = planEndpoints(this.registries, ref, this.options.disableDefaultEndpoint ? { disableDefaultEndpoint: true } : {});
    const attempts: PullAttempt[] = [];
    for (const planned of plan) {
      const endpoint: Endpoint = !planned.mirror && options.auth ? { ...planned, auth: options.auth } : planned;
      try {
        return await this.pullFrom(endpoint, ref, display, options);
      } catch (err) {
        attempts.push({ endpoint: endpoint.apiRoot, repository: endpoint.repository, error: asImageError(err) });
        if (options.signal?.aborted) break;
      }
    }
    if (attempts.length === 1) throw attempts[0]!.error;
    throw new PullError(display, attempts);
  }

  /**
   * Removes a tag or repo digest, or the whole image when given its id. When nothing names the
   * image any more its record goes, unless `inUse` says a container uses it.
   */
  async remove(refOrId: string, inUse: InUse | undefined = this.options.inUse): Promise<void> {
    await this.exclusive(async () => {
      const found = await this.resolve(refOrId);
      if (!found) throw new NotFoundError(`image ${JSON.stringify(refOrId)} not found`);
      const { image, by, name } = found;
      const next: Image = { ...image, repoTags: [...image.repoTags], repoDigests: [...image.repoDigests] };
      if (by === 'tag') next.repoTags = next.repoTags.filter((t) => t !== name);
      if (by === 'digest') next.repoDigests = next.repoDigests.filter((d) => d !== name);
      const whole = by === 'id' || (by === 'tag' && next.repoTags.length === 0) || (next.repoTags.length === 0 && next.repoDigests.length === 0);
      if (!whole) {
        await this.writeRecord(next);
        return;
      }
      if (inUse && (await inUse(image.id))) throw new ImageInUseError(image.id, refOrId);
      await rm(this.recordPath(image.id), { force: true });
      (await this.load()).delete(image.id);
      await this.gc();
    });
  }

  /** Disk used by the content store and the snapshots (blocks actually allocated, hard links once). */
  async fsInfo(): Promise<FsUsage[]> {
    const roots = [this.content.root, ...(this.options.snapshots ? [this.options.snapshots] : [])];
    return Promise.all(roots.map(async (mountpoint) => ({ mountpoint, ...(await diskUsage(mountpoint)) })));
  }

  layerStreams(image: Image): LayerStream[] {
    return image.layers.map((layer, i) => {
      const diffId = image.diffIds[i]!;
      return {
        diffId,
        digest: layer.digest,
        mediaType: layer.mediaType,
        open: async (): Promise<Readable> => {
          const compression = layerCompression(layer.mediaType);
          if (compression === 'zstd') throw new UnsupportedError(`layer ${layer.digest} is zstd-compressed, which this runtime does not unpack`);
          const raw = await this.content.open(layer.digest);
          const what = `uncompressed layer ${layer.digest} of image ${image.id}`;
          const check = diffIdCheck(diffId, what);
          const forward = (err: Error): void => {
            check.destroy(err);
          };
          if (compression === 'none') {
            raw.on('error', forward);
            return raw.pipe(check);
          }
          const gunzip = createGunzip();
          raw.on('error', forward);
          gunzip.on('error', (err) => check.destroy(new MalformedError(`${what}: bad gzip data: ${err.message}`)));
          return raw.pipe(gunzip).pipe(check);
        },
      };
    });
  }

  /** Records an image whose blobs are all in the content store; moves its tags from other images. */
  async commit(input: ImageCommit): Promise<Image> {
    return this.exclusive(async () => {
      const { manifest, config } = input;
      for (const d of [manifest.config, ...manifest.layers]) {
        if (!(await this.content.has(d.digest))) throw new NotFoundError(`blob ${d.digest} of image ${manifest.config.digest} is not in the content store`);
      }
      const images = await this.load();
      const id = manifest.config.digest;
      const existing = images.get(id);
      const image: Image = {
        id,
        repoTags: [...new Set([...(existing?.repoTags ?? []), ...input.repoTags])],
        repoDigests: [...new Set([...(existing?.repoDigests ?? []), ...input.repoDigests])],
        size: manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0),
        config,
        manifestDigest: input.manifestDigest,
        manifestMediaType: manifest.mediaType,
        layers: manifest.layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size })),
        diffIds: config.rootfs.diff_ids,
      };
      for (const other of images.values()) {
        if (other.id === id) continue;
        const tags = other.repoTags.filter((t) => !input.repoTags.includes(t));
        if (tags.length !== other.repoTags.length) await this.writeRecord({ ...other, repoTags: tags });
      }
      await this.writeRecord(image);
      return image;
    });
  }

  /** Deletes blobs that no record and no running pull or import uses. */
  async gc(): Promise<void> {
    const referenced = new Set(this.leases.keys());
    for (const image of (await this.load()).values()) {
      referenced.add(image.id);
      referenced.add(image.manifestDigest);
      for (const l of image.layers) referenced.add(l.digest);
      for (const d of image.repoDigests) referenced.add(d.slice(d.lastIndexOf('@') + 1));
    }
    await this.content.gc(referenced);
  }

  /** Keeps `digests` from gc until the returned release is called. */
  lease(digests: Iterable<string>): () => void {
    const held = [...digests];
    for (const d of held) this.leases.set(d, (this.leases.get(d) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const d of held) {
        const n = (this.leases.get(d) ?? 1) - 1;
        if (n <= 0) this.leases.delete(d);
        else this.leases.set(d, n);
      }
    };
  }

  private async pullFrom(endpoint: Endpoint, ref: Reference, display: string, options: PullOptions): Promise<Image> {
    const client = new RegistryClient(endpoint, { tokens: this.tokens, ...(options.signal ? { signal: options.signal } : {}) });
    const leased: (() => void)[] = [];
    const hold = (...digests: string[]): void => {
      leased.push(this.lease(digests));
    };
    try {
      const top = await client.getManifest(ref.digest ?? ref.tag!);
      hold(top.digest);
      await this.content.put(top.bytes, top.digest, `manifest of ${display}`);
      const what = `${display} from ${endpoint.host}`;
      let parsed = parseManifestOrIndex(top.bytes, top.mediaType, `manifest ${top.digest} of ${what}`);
      let manifestDigest = top.digest;
      if (parsed.kind === 'index') {
        const chosen = selectPlatform(parsed.index, this.options.platform ?? hostPlatform(), `index ${top.digest} of ${what}`);
        const fetched = await client.getManifest(chosen.digest);
        if (fetched.digest !== chosen.digest) throw new DigestMismatchError(chosen.digest, fetched.digest, `platform manifest of ${what}`);
        hold(fetched.digest);
        await this.content.put(fetched.bytes, fetched.digest, `manifest of ${display}`);
        parsed = parseManifestOrIndex(fetched.bytes, chosen.mediaType, `manifest ${chosen.digest} of ${what}`);
        if (parsed.kind !== 'manifest') throw new MalformedError(`index ${top.digest} of ${what} points at another index for its platform`);
        manifestDigest = fetched.digest;
      }
      const manifest = parsed.manifest;
      for (const layer of manifest.layers) {
        if (layerCompression(layer.mediaType) === 'zstd') throw new UnsupportedError(`layer ${layer.digest} of ${what} is zstd-compressed, which this runtime does not unpack`);
      }
      hold(manifest.config.digest, ...manifest.layers.map((l) => l.digest));
      const configBytes = await client.getBlob(manifest.config, this.content, `config ${manifest.config.digest} of ${what}`);
      const config = parseImageConfig(configBytes, manifest.layers.length, `config ${manifest.config.digest} of ${what}`);
      await mapLimit(manifest.layers, this.options.parallelDownloads ?? DEFAULT_PARALLEL_DOWNLOADS, (layer: Descriptor) =>
        client.fetchBlob(layer, this.content, {
          what: `layer ${layer.digest} of ${what}`,
          ...(options.onProgress
            ? { onProgress: (bytes: number) => options.onProgress!({ reference: display, endpoint: endpoint.apiRoot, digest: layer.digest, bytes, total: layer.size }) }
            : {}),
        }),
      );
      const tag = ref.digest === undefined ? taggedName(ref) : undefined;
      return await this.commit({
        manifestDigest,
        manifest,
        config,
        repoTags: tag ? [tag] : [],
        repoDigests: [digestedName(ref, top.digest)],
      });
    } finally {
      for (const release of leased) release();
    }
  }

  private async resolve(refOrId: string): Promise<{ image: Image; by: 'id' | 'tag' | 'digest'; name: string } | undefined> {
    const images = await this.load();
    const bare = refOrId.startsWith('sha256:') ? refOrId.slice('sha256:'.length) : refOrId;
    if (/^[a-f0-9]{64}$/.test(bare)) {
      const image = images.get(`sha256:${bare}`);
      if (image) return { image, by: 'id', name: image.id };
    }
    let ref: Reference | undefined;
    try {
      if (!refOrId.startsWith('sha256:')) ref = parseReference(refOrId);
    } catch {
      ref = undefined;
    }
    if (ref) {
      if (ref.digest !== undefined) {
        const name = digestedName(ref, ref.digest);
        for (const image of images.values()) if (image.repoDigests.includes(name)) return { image, by: 'digest', name };
      } else {
        const name = taggedName(ref)!;
        for (const image of images.values()) if (image.repoTags.includes(name)) return { image, by: 'tag', name };
      }
    }
    if (bare.length >= ID_PREFIX_MIN && /^[a-f0-9]+$/.test(bare)) {
      const matches = [...images.values()].filter((i) => i.id.startsWith(`sha256:${bare}`));
      if (matches.length === 1) return { image: matches[0]!, by: 'id', name: matches[0]!.id };
    }
    return undefined;
  }

  private recordPath(id: string): string {
    return join(this.recordDir, `${id.slice('sha256:'.length)}.json`);
  }

  private async writeRecord(image: Image): Promise<void> {
    await mkdir(this.recordDir, { recursive: true });
    const path = this.recordPath(image.id);
    const tmp = `${path}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(image, null, 2));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    const dir = await open(this.recordDir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    (await this.load()).set(image.id, image);
  }

  private load(): Promise<Map<string, Image>> {
    if (this.images) return Promise.resolve(this.images);
    this.loading ??= (async () => {
      const images = new Map<string, Image>();
      let names: string[] = [];
      try {
        names = await readdir(this.recordDir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      for (const name of names) {
        const file = join(this.recordDir, name);
        if (name.endsWith('.tmp')) {
          await rm(file, { force: true });
          continue;
        }
        if (!name.endsWith('.json')) continue;
        let parsed: unknown;
        try {
          parsed = JSON.parse(await readFile(file, 'utf8'));
        } catch {
          throw new MalformedError(`image record ${file} is not valid JSON; remove it and pull the image again`);
        }
        const image = validateRecord(parsed, file);
        images.set(image.id, image);
      }
      await this.content.cleanTemporary();
      this.images = images;
      return images;
    })();
    return this.loading;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

async function diskUsage(root: string): Promise<{ usedBytes: number; inodesUsed: number }> {
  const seen = new Set<string>();
  let usedBytes = 0;
  const walk = async (path: string): Promise<void> => {
    let st;
    try {
      st = await lstat(path);
    } catch {
      return;
    }
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) return;
    seen.add(key);
    usedBytes += st.blocks * 512;
    if (!st.isDirectory()) return;
    let entries: string[];
    try {
      entries = await readdir(path);
    } catch {
      return;
    }
    for (const e of entries) await walk(join(path, e));
  };
  await walk(root);
  return { usedBytes, inodesUsed: seen.size };
}
