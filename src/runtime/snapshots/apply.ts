import { constants } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, readdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import tar from 'tar-stream';
import { CommandError, run } from './command.js';

/**
 * How deletions in a layer are written:
 *   - 'overlay': into an empty overlay upperdir. `.wh.<name>` becomes a 0/0 character device
 *     `<name>` and `.wh..wh..opq` the xattr trusted.overlay.opaque=y on its directory, so the
 *     deletion shows when the directory is mounted over the parent layers.
 *   - 'delete': into a tree that already holds the parent layers (a mounted snapshot). The
 *     whited-out path is deleted, and an opaque directory loses everything this layer did not write.
 */
export type WhiteoutFormat = 'overlay' | 'delete';

export interface ApplyOptions {
  whiteouts?: WhiteoutFormat;
}

export interface ApplyResult {
  /** Bytes of the (uncompressed) tar stream read, end-of-archive padding included. */
  bytes: number;
  /** Archive entries applied, whiteouts included. */
  entries: number;
}

/** A layer entry that cannot be applied; `entry` is its name as written in the archive. */
export class LayerEntryError extends Error {
  constructor(
    readonly entry: string,
    readonly reason: string,
    cause?: unknown,
  ) {
    super(`layer entry "${entry}": ${reason}`, { cause });
    this.name = 'LayerEntryError';
  }
}

const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
/** aufs keeps its own bookkeeping under `.wh..wh.` names (`.wh..wh.plnk`); they are not content. */
const AUFS_META_PREFIX = '.wh..wh.';
const OPAQUE_XATTR = 'trusted.overlay.opaque';
/**
 * overlayfs's own xattrs (opaque, redirect, metacopy, origin) steer lookups in the lower layers.
 * A layer states deletions with whiteout files; overlay xattrs it carries are dropped, so it cannot
 * point a lookup at another layer's files.
 */
const OVERLAY_XATTR_PREFIX = 'trusted.overlay.';

/** tar-stream attaches the entry's PAX records, decoded as UTF-8 text, as `pax`. */
type EntryHeader = tar.Header & { pax?: Record<string, string> | null };

interface Times {
  atime: Date;
  mtime: Date;
}

/**
 * Unpacks one OCI image layer (an uncompressed tar stream) into `dir`, with ownership, modes
 * (setuid, setgid and sticky included), times and xattrs, as containerd's applier does.
 *
 * Paths are relative to `dir`. A leading "/" is dropped (as GNU tar and containerd do), so
 * `/etc/x` lands in `<dir>/etc/x`; a ".." component anywhere is refused. Nothing is ever written
 * through a symlink: every existing component of an entry's parent path is checked with lstat and
 * must be a real directory, missing ones are created (mode 0755), and the entry itself replaces
 * whatever was at its path without following it. A hard link's target must be an entry of this
 * layer or of `dir` reached the same way. Symlinks themselves may point anywhere; they are
 * resolved inside the container at run time, never here.
 *
 * Metadata is applied after content in the order that keeps it: owner, then mode (chown clears
 * setuid bits), then xattrs (chown clears security.capability), then times; directory times last
 * of all, after their children were written. Devices and fifos are made with mknod(1) and xattrs
 * set with setfattr(1) (Debian package `attr`), since Node has neither call.
 *
 * `dir` must be owned by the caller: the checks assume no other process changes it meanwhile.
 * The stream is read to its end, so a caller hashing it sees every byte. Errors name the entry.
 */
export async function applyLayer(input: Readable, dir: string, options: ApplyOptions = {}): Promise<ApplyResult> {
  const layer = new LayerWriter(dir, options.whiteouts ?? 'overlay');
  const extract = tar.extract();
  const rawXattrs = captureRawPaxXattrs(extract);
  let bytes = 0;
  let entries = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      callback(null, chunk);
    },
  });
  // tar-stream's streams are streamx streams, which Node's pipe() feeds but stream.pipeline()
  // cannot track; errors are therefore wired by hand, and the first one wins.
  await new Promise<void>((resolve, reject) => {
    let failed = false;
    const fail = (err: unknown): void => {
      if (failed) return;
      failed = true;
      input.unpipe(counter);
      counter.unpipe();
      input.destroy();
      counter.destroy();
      extract.destroy();
      reject(err);
    };
    extract.on('entry', (entry, content, next) => {
      entries++;
      const header: EntryHeader = entry as EntryHeader;
      // A truncated archive fails the entry's stream too; extract's own 'error' reports it.
      content.on('error', () => undefined);
      layer.apply(header, content as AsyncIterable<Buffer>, header.pax ? rawXattrs.get(header.pax) : undefined).then(() => {
        content.resume();
        next();
      }, fail);
    });
    extract.on('finish', () => layer.finish().then(resolve, fail));
    extract.on('error', (err: Error) => fail(new Error(`layer is not a valid tar archive: ${err.message}`, { cause: err })));
    input.on('error', fail);
    counter.on('error', fail);
    input.pipe(counter).pipe(extract as unknown as NodeJS.WritableStream);
  });
  return { bytes, entries };
}

class LayerWriter {
  /** Every path this layer wrote (and parents it created): what an opaque directory keeps in 'delete' mode. */
  private readonly written = new Set<string>();
  private readonly dirTimes = new Map<string, Times>();

  constructor(
    private readonly root: string,
    private readonly format: WhiteoutFormat,
  ) {}

  async apply(header: EntryHeader, content: AsyncIterable<Buffer>, raw: Map<string, Buffer> | undefined): Promise<void> {
    const name = header.name;
    const parts = entryPath(name, name);
    const base = parts.at(-1);
    if (base === undefined) {
      // The layer's root ("./"): its metadata belongs to the snapshot, not to the layer.
      return;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) return this.whiteout(name, parts.slice(0, -1), base);

    await this.parents(name, parts.slice(0, -1));
    const rel = parts.join('/');
    const path = join(this.root, rel);
    const existing = await lstatOrUndefined(path);
    const isDir = header.type === 'directory';
    if (existing && !(isDir && existing.isDirectory())) await rm(path, { recursive: true, force: true });
    this.forget(rel);
    this.written.add(rel);

    const fail = (reason: string) => (err: unknown) => {
      throw new LayerEntryError(name, `${reason}: ${describe(err)}`, err);
    };
    switch (header.type) {
      case 'file':
      case 'contiguous-file': {
        const handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
          .catch(fail('cannot create file'));
        try {
          for await (const chunk of content) await handle.write(chunk);
        } catch (err) {
          fail('cannot write file')(err);
        } finally {
          await handle.close();
        }
        break;
      }
      case 'directory':
        if (!existing?.isDirectory()) await mkdir(path, 0o700).catch(fail('cannot create directory'));
        break;
      case 'symlink':
        await symlink(header.linkname ?? '', path).catch(fail('cannot create symlink'));
        break;
      case 'link': {
        const target = await this.linkTarget(name, header.linkname ?? '');
        await link(target, path).catch(fail(`cannot hard-link to "${header.linkname}"`));
        // The link shares the inode its target's own entry already gave metadata to.
        return;
      }
      case 'character-device':
      case 'block-device':
        await run('mknod', [path, header.type === 'character-device' ? 'c' : 'b', String(header.devmajor ?? 0), String(header.devminor ?? 0)])
          .catch(fail('mknod failed'));
        break;
      case 'fifo':
        await run('mknod', [path, 'p']).catch(fail('mknod failed'));
        break;
      default:
        throw new LayerEntryError(name, `unsupported tar entry type "${header.type}"`);
    }

    await lchown(path, header.uid ?? 0, header.gid ?? 0).catch(fail('cannot set owner'));
    if (header.type !== 'symlink') await chmod(path, (header.mode ?? 0o644) & 0o7777).catch(fail('cannot set mode'));
    for (const [xattr, value] of xattrsOf(header, raw)) {
      await setXattr(path, xattr, value).catch(fail(`cannot set xattr ${xattr}`));
    }
    const times = timesOf(header);
    if (isDir) this.dirTimes.set(rel, times);
    else await lutimes(path, times.atime, times.mtime).catch(fail('cannot set times'));
  }

  /** Sets directory times once nothing more is written into them. */
  async finish(): Promise<void> {
    for (const [rel, times] of this.dirTimes) {
      const path = join(this.root, rel);
      if ((await lstatOrUndefined(path))?.isDirectory()) await lutimes(path, times.atime, times.mtime);
    }
  }

  private async whiteout(name: string, parentParts: string[], base: string): Promise<void> {
    if (base.startsWith(AUFS_META_PREFIX) && base !== OPAQUE_MARKER) return;
    await this.parents(name, parentParts);
    const parentRel = parentParts.join('/');
    const parent = join(this.root, parentRel);
    if (base === OPAQUE_MARKER) {
      if (this.format === 'overlay') {
        await setXattr(parent, OPAQUE_XATTR, Buffer.from('y')).catch((err: unknown) => {
          throw new LayerEntryError(name, `cannot mark "${parentRel || '.'}" opaque: ${describe(err)}`, err);
        });
      } else {
        await this.prune(parentRel);
      }
      return;
    }
    const victim = base.slice(WHITEOUT_PREFIX.length);
    if (victim === '' || victim === '.' || victim === '..') {
      throw new LayerEntryError(name, `whiteout names "${victim}", which is not a sibling entry`);
    }
    const rel = parentRel === '' ? victim : `${parentRel}/${victim}`;
    const path = join(this.root, rel);
    await rm(path, { recursive: true, force: true });
    this.forget(rel);
    if (this.format === 'overlay') {
      await run('mknod', [path, 'c', '0', '0']).catch((err: unknown) => {
        throw new LayerEntryError(name, `cannot create overlay whiteout "${rel}": ${describe(err)}`, err);
      });
    }
  }

  /** In 'delete' mode an opaque directory keeps only what this layer wrote below it. */
  private async prune(rel: string): Promise<void> {
    for (const child of await readdir(join(this.root, rel))) {
      const childRel = rel === '' ? child : `${rel}/${child}`;
      if (!this.written.has(childRel)) {
        await rm(join(this.root, childRel), { recursive: true, force: true });
      } else if ((await lstat(join(this.root, childRel))).isDirectory()) {
        await this.prune(childRel);
      }
    }
  }

  /** Makes sure every parent component is a real directory, creating missing ones. */
  private async parents(name: string, parts: string[]): Promise<void> {
    let rel = '';
    for (const part of parts) {
      rel = rel === '' ? part : `${rel}/${part}`;
      const path = join(this.root, rel);
      const st = await lstatOrUndefined(path);
      if (st === undefined) {
        await mkdir(path, 0o755);
        this.written.add(rel);
      } else if (st.isSymbolicLink()) {
        throw new LayerEntryError(name, `parent "${rel}" is a symbolic link; refusing to write through it`);
      } else if (!st.isDirectory()) {
        throw new LayerEntryError(name, `parent "${rel}" is not a directory`);
      } else if (this.format === 'delete') {
        this.written.add(rel);
      }
    }
  }

  /** Resolves a hard link's target inside the root, never through a symlink. */
  private async linkTarget(name: string, linkname: string): Promise<string> {
    const parts = entryPath(name, linkname, 'hard link target');
    if (parts.length === 0) throw new LayerEntryError(name, 'hard link to the layer root');
    let rel = '';
    for (const [i, part] of parts.entries()) {
      rel = rel === '' ? part : `${rel}/${part}`;
      const st = await lstatOrUndefined(join(this.root, rel));
      if (st === undefined) throw new LayerEntryError(name, `hard link target "${linkname}" does not exist in the layer`);
      const last = i === parts.length - 1;
      if (!last && st.isSymbolicLink()) {
        throw new LayerEntryError(name, `hard link target "${linkname}" passes through symbolic link "${rel}"`);
      }
      if (!last && !st.isDirectory()) throw new LayerEntryError(name, `hard link target "${linkname}": "${rel}" is not a directory`);
      if (last && st.isDirectory()) throw new LayerEntryError(name, `hard link target "${linkname}" is a directory`);
    }
    return join(this.root, rel);
  }

  /** A path replaced or deleted takes its pending directory times with it. */
  private forget(rel: string): void {
    for (const pending of this.dirTimes.keys()) {
      if (pending === rel || pending.startsWith(rel + '/')) this.dirTimes.delete(pending);
    }
  }
}

/** Splits an archive path into components, refusing any that would climb out of the root. */
function entryPath(entry: string, path: string, what = 'path'): string[] {
  if (path.includes('\0')) throw new LayerEntryError(entry, `${what} contains a NUL byte`);
  const parts: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new LayerEntryError(entry, `${what} "${path}" contains "..", which could leave the root`);
    parts.push(part);
  }
  return parts;
}

function timesOf(header: EntryHeader): Times {
  const pax = header.pax ?? {};
  const mtime = paxTime(pax['mtime']) ?? header.mtime ?? new Date(0);
  return { mtime, atime: paxTime(pax['atime']) ?? mtime };
}

/** PAX times are decimal seconds, possibly fractional; they are more precise than the ustar field. */
function paxTime(value: string | undefined): Date | undefined {
  if (value === undefined || !/^-?\d+(\.\d+)?$/.test(value)) return undefined;
  return new Date(Math.round(Number(value) * 1000));
}

/**
 * Xattrs from the entry's PAX records, `SCHILY.xattr.<name>` (raw value, as Go and GNU tar write)
 * and `LIBARCHIVE.xattr.<url-encoded name>` (base64 value, as bsdtar writes).
 */
function xattrsOf(header: EntryHeader, raw: Map<string, Buffer> | undefined): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  for (const [key, text] of Object.entries(header.pax ?? {})) {
    let name: string;
    let value: Buffer;
    if (key.startsWith('SCHILY.xattr.')) {
      name = key.slice('SCHILY.xattr.'.length);
      value = raw?.get(key) ?? Buffer.from(text, 'utf8');
    } else if (key.startsWith('LIBARCHIVE.xattr.')) {
      name = decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length));
      value = Buffer.from(text, 'base64');
    } else {
      continue;
    }
    if (name === '' || name.startsWith(OVERLAY_XATTR_PREFIX)) continue;
    out.push([name, value]);
  }
  return out;
}

/**
 * tar-stream decodes PAX values as UTF-8, which mangles binary xattrs such as security.capability.
 * This keeps each PAX header's raw record bytes, keyed by the decoded object tar-stream hands out
 * as `header.pax`. It relies on tar-stream 3's `_decodeLongHeader`; if that ever disappears, values
 * fall back to the decoded text, which is exact for every textual xattr.
 */
function captureRawPaxXattrs(extract: tar.Extract): WeakMap<object, Map<string, Buffer>> {
  const byPax = new WeakMap<object, Map<string, Buffer>>();
  const internals = extract as unknown as {
    _decodeLongHeader?: (buf: Buffer) => void;
    _header?: { type?: string };
    _pax?: object | null;
  };
  const original = internals._decodeLongHeader;
  if (typeof original !== 'function') return byPax;
  internals._decodeLongHeader = function (this: typeof internals, buf: Buffer): void {
    original.call(this, buf);
    if (this._header?.type === 'pax-header' && this._pax) byPax.set(this._pax, parsePaxXattrs(buf));
  };
  return byPax;
}

/** PAX records are `<length> <key>=<value>\n`, the length counting the whole record in bytes. */
function parsePaxXattrs(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let offset = 0;
  while (offset < buf.length) {
    const space = buf.indexOf(0x20, offset);
    if (space < 0) break;
    const length = Number(buf.subarray(offset, space).toString('latin1'));
    if (!Number.isInteger(length) || length <= 0 || offset + length > buf.length) break;
    const record = buf.subarray(space + 1, offset + length - 1);
    const eq = record.indexOf(0x3d);
    if (eq > 0) {
      const key = record.subarray(0, eq).toString('utf8');
      if (key.startsWith('SCHILY.xattr.')) out.set(key, Buffer.from(record.subarray(eq + 1)));
    }
    offset += length;
  }
  return out;
}

/** setfattr(1) with -h never follows a symlink; `0s` marks the value as base64, so any bytes pass. */
async function setXattr(path: string, name: string, value: Buffer): Promise<void> {
  await run('setfattr', ['-h', '-n', name, '-v', `0s${value.toString('base64')}`, '--', path]);
}

async function lstatOrUndefined(path: string) {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function describe(err: unknown): string {
  if (err instanceof CommandError) return err.stderr.trim() || err.message;
  return err instanceof Error ? err.message : String(err);
}
