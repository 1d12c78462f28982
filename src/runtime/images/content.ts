import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestMismatchError, MalformedError, NotFoundError } from './errors.js';
import { isDigest } from './reference.js';
import { fsyncPath } from '../../apiserver/auth/atomic-file.js';

/**
 * A content-addressed blob store, laid out as containerd's: `<root>/content/blobs/sha256/<hex>`.
 *
 * A blob only ever appears under `blobs/` complete and verified: bytes go to a file under
 * `ingest/` while they are hashed, the file is fsynced, its digest checked, and only then renamed into
 * place (and the directory fsynced). A crash leaves at most a file under `ingest/`.
 *
 * A download that breaks keeps its partial file `ingest/sha256/<hex>`; the next `ingest` of the same
 * digest re-hashes what is there and asks its source to continue from that offset (an HTTP Range).
 */
export interface BlobInfo {
  digest: string;
  size: number;
}

/** Where an ingest reads from. `offset` is what it asked for; the answer says where the stream really starts (0 when a server ignored the Range). */
export type BlobSource = (offset: number) => Promise<{ stream: Readable; offset: number }>;

export interface IngestOptions {
  /** The expected size; a partial file longer than this is discarded. */
  size?: number;
  /** Called with the number of bytes of the blob held so far (resumed bytes included). */
  onProgress?: (bytes: number) => void;
  /** What the blob is, for error messages: "layer sha256:... of 127.0.0.1:5000/busybox". */
  what?: string;
}

function hexOf(digest: string): string {
  if (!isDigest(digest)) throw new MalformedError(`not a sha256 digest: ${JSON.stringify(digest)}`);
  return digest.slice('sha256:'.length);
}

async function sizeOrZero(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

function hashing(hash: Hash, onBytes?: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      onBytes?.(chunk.length);
      done(null, chunk);
    },
  });
}

export class ContentStore {
  readonly root: string;
  private readonly blobDir: string;
  private readonly ingestDir: string;
  private readonly tmpDir: string;
  private readonly locks = new Map<string, Promise<unknown>>();

  /** `root` is the image service's root; blobs live under `<root>/content`. */
  constructor(root: string) {
    this.root = join(root, 'content');
    this.blobDir = join(this.root, 'blobs', 'sha256');
    this.ingestDir = join(this.root, 'ingest', 'sha256');
    this.tmpDir = join(this.root, 'ingest', 'tmp');
  }

  path(digest: string): string {
    return join(this.blobDir, hexOf(digest));
  }

  partialPath(digest: string): string {
    return join(this.ingestDir, hexOf(digest));
  }

  async has(digest: string): Promise<boolean> {
    return this.exists(digest);
  }

  async size(digest: string): Promise<number> {
    try {
      return (await stat(this.path(digest))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`blob ${digest} not found in the content store`);
      throw err;
    }
  }

  async open(digest: string): Promise<Readable> {
    await this.size(digest);
    return createReadStream(this.path(digest));
  }

  async read(digest: string): Promise<Buffer> {
    await this.size(digest);
    return readFile(this.path(digest));
  }

  /** Bytes of an interrupted ingest kept for resume (0 when there is none). */
  async partialSize(digest: string): Promise<number> {
    return sizeOrZero(this.partialPath(digest));
  }

  /** Stores bytes already in memory; with `expected`, refuses bytes whose digest differs. */
  async put(data: Buffer, expected?: string, what = 'blob'): Promise<BlobInfo> {
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    if (expected !== undefined && expected !== digest) throw new DigestMismatchError(expected, digest, what);
    if (await this.has(digest)) return { digest, size: data.length };
    return this.exclusive(digest, async () => {
      const tmp = await this.tmpFile();
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await this.publish(tmp, digest);
      return { digest, size: data.length };
    });
  }

  /** Stores a stream whose digest is not known in advance (an archive's layer.tar). */
  async putStream(stream: Readable): Promise<BlobInfo> {
    const tmp = await this.tmpFile();
    const hash = createHash('sha256');
    let size = 0;
    try {
      await pipeline(stream, hashing(hash, (n) => (size += n)), createWriteStream(tmp));
      await fsyncPath(tmp);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    const digest = `sha256:${hash.digest('hex')}`;
    await this.exclusive(digest, async () => {
      if (await this.has(digest)) await rm(tmp, { force: true });
      else await this.publish(tmp, digest);
    });
    return { digest, size };
  }

  /**
   * Fetches a blob of known digest from `source`, resuming a partial file left by an earlier
   * attempt. On a broken stream the partial stays for the next call; on a digest or size mismatch
   * it is discarded and DigestMismatchError names both digests.
   */
  async ingest(expected: string, source: BlobSource, options: IngestOptions = {}): Promise<BlobInfo> {
    const what = options.what ?? `blob ${expected}`;
    return this.exclusive(expected, async () => {
      if (await this.has(expected)) {
        const size = await this.size(expected);
        options.onProgress?.(size);
        return { digest: expected, size };
      }
      await mkdir(this.ingestDir, { recursive: true });
      const partial = this.partialPath(expected);
      let offset = await sizeOrZero(partial);
      if (options.size !== undefined && offset > options.size) {
        await truncate(partial, 0);
        offset = 0;
      }
      let hash = createHash('sha256');
      if (offset > 0) {
        for await (const chunk of createReadStream(partial, { end: offset - 1 })) hash.update(chunk as Buffer);
      }

      let held = offset;
      options.onProgress?.(held);
      if (options.size === undefined || offset < options.size) {
        const answer = await source(offset);
        if (answer.offset !== offset) {
          if (answer.offset !== 0) {
            answer.stream.destroy();
            throw new MalformedError(`${what}: asked to resume at byte ${offset}, source started at byte ${answer.offset}`);
          }
          await truncate(partial, 0).catch(() => undefined);
          hash = createHash('sha256');
          held = 0;
        }
        await pipeline(
          answer.stream,
          hashing(hash, (n) => options.onProgress?.((held += n))),
          createWriteStream(partial, { flags: 'a' }),
        );
      }
      await fsyncPath(partial);
      const size = await sizeOrZero(partial);
      const actual = `sha256:${hash.digest('hex')}`;
      if (actual !== expected || (options.size !== undefined && size !== options.size)) {
        await rm(partial, { force: true });
        if (actual !== expected) throw new DigestMismatchError(expected, actual, what);
        throw new DigestMismatchError(`${expected} (${options.size} bytes)`, `${actual} (${size} bytes)`, what);
      }
      await this.publish(partial, expected);
      return { digest: expected, size };
    });
  }

  async delete(digest: string): Promise<void> {
    await this.exclusive(digest, () => rm(this.path(digest), { force: true }));
  }

  /** Every committed blob; partial and temporary files are not blobs. */
  async *walk(): AsyncGenerator<BlobInfo> {
    let names: string[];
    try {
      names = await readdir(this.blobDir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const name of names.sort()) {
      const digest = `sha256:${name}`;
      if (!isDigest(digest)) continue;
      const st = await stat(join(this.blobDir, name)).catch(() => undefined);
      if (st?.isFile()) yield { digest, size: st.size };
    }
  }

  /** Deletes every blob not in `referenced`, and temporary files of writes that never finished. */
  async gc(referenced: ReadonlySet<string>): Promise<BlobInfo[]> {
    const removed: BlobInfo[] = [];
    for await (const blob of this.walk()) {
      if (referenced.has(blob.digest)) continue;
      await this.delete(blob.digest);
      removed.push(blob);
    }
    return removed;
  }

  /** Deletes leftover temporary files (not resumable partials) from writes a crash interrupted. */
  async cleanTemporary(): Promise<void> {
    await rm(this.tmpDir, { recursive: true, force: true });
  }

  private async exists(digest: string): Promise<boolean> {
    try {
      await stat(this.path(digest));
      return true;
    } catch {
      return false;
    }
  }

  private async tmpFile(): Promise<string> {
    await mkdir(this.tmpDir, { recursive: true });
    return join(this.tmpDir, randomBytes(8).toString('hex'));
  }

  private async publish(file: string, digest: string): Promise<void> {
    await mkdir(this.blobDir, { recursive: true });
    await rename(file, this.path(digest));
    await fsyncPath(this.blobDir);
  }

  /** One writer per digest in this process: two pulls sharing a layer download it once. */
  private async exclusive<T>(digest: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(digest) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(digest, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(digest) === tail) this.locks.delete(digest);
    }
  }
}
