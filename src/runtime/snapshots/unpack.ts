import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline, Transform, type Readable } from 'node:stream';
import { applyLayer } from './apply.js';
import { mountAll, unmount } from './mount.js';
import { SnapshotError, type Info, type Snapshotter } from './snapshotter.js';

/**
 * Marks a committed snapshot as an unpacked image layer, holding the layer's diffID. `gc` only
 * ever removes snapshots carrying it: those can be unpacked again from the content store.
 */
export const LAYER_LABEL = 'atoll.io/snapshot.diff-id';

/** Where a snapshotter without `applyTarget` gets its snapshot mounted while a layer is applied. */
const MOUNT_PREFIX = 'atoll-unpack-';

export interface Layer {
  /** sha256 of the uncompressed layer tar, `sha256:<64 hex>` (the image config's rootfs.diff_ids). */
  diffId: string;
  /** The uncompressed tar stream; called only when the layer is not unpacked yet. */
  open(): Promise<Readable>;
}

/** A layer's content does not hash to the diffID the image promised. */
export class DiffIdMismatchError extends Error {
  constructor(
    readonly expected: string,
    readonly actual: string,
    readonly layer: number,
  ) {
    super(`layer ${layer}: uncompressed content is ${actual}, but the image declares diffID ${expected}`);
    this.name = 'DiffIdMismatchError';
  }
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** The OCI chainIDs of a layer stack: chainID(L0) = diffID(L0), chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const [i, diffId] of diffIds.entries()) {
    if (!DIGEST.test(diffId)) throw new Error(`layer ${i}: diffID "${diffId}" is not sha256:<64 lowercase hex>`);
    const previous = out.at(-1);
    out.push(previous === undefined ? diffId : 'sha256:' + createHash('sha256').update(`${previous} ${diffId}`).digest('hex'));
  }
  return out;
}

/**
 * Unpacks an image's layers, bottom first, into committed snapshots named by chainID, and returns
 * the top chainID (the parent for a container's `prepare`). A layer whose chainID is already
 * committed is skipped without being opened. Each new layer is applied into a fresh active
 * snapshot while its stream is hashed; only if the hash equals the diffID is it committed, so a
 * committed chainID always holds verified content. On any failure the active snapshot is removed.
 */
export async function unpackLayers(snapshotter: Snapshotter, layers: readonly Layer[]): Promise<string> {
  if (layers.length === 0) throw new Error('an image needs at least one layer to unpack');
  const chain = chainIds(layers.map((l) => l.diffId));
  let parent: string | undefined;
  for (const [i, layer] of layers.entries()) {
    const chainId = chain[i]!;
    if (!(await isCommitted(snapshotter, chainId))) await unpackOne(snapshotter, layer, i, chainId, parent);
    parent = chainId;
  }
  return parent!;
}

async function unpackOne(snapshotter: Snapshotter, layer: Layer, index: number, chainId: string, parent: string | undefined): Promise<void> {
  const key = `extract-${randomBytes(6).toString('hex')} ${chainId}`;
  const mounts = await snapshotter.prepare(key, parent, { labels: { [LAYER_LABEL]: layer.diffId } });
  try {
    const source = await layer.open();
    const hash = createHash('sha256');
    const hashed = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    // Errors reach applyLayer through `hashed`, which pipeline destroys with the source's error.
    pipeline(source, hashed, () => undefined);
    if (snapshotter.applyTarget) {
      await applyLayer(hashed, await snapshotter.applyTarget(key), { whiteouts: 'overlay' });
    } else {
      const target = await mkdtemp(join(tmpdir(), MOUNT_PREFIX));
      try {
        await mountAll(mounts, target);
        try {
          await applyLayer(hashed, target, { whiteouts: 'delete' });
        } finally {
          await unmount(target);
        }
      } finally {
        await rmdir(target);
      }
    }
    const actual = 'sha256:' + hash.digest('hex');
    if (actual !== layer.diffId) throw new DiffIdMismatchError(layer.diffId, actual, index);
    try {
      await snapshotter.commit(chainId, key);
    } catch (err) {
      // Another unpack of the same image committed this layer first; its result is as good.
      if (!(err instanceof SnapshotError && err.code === 'exists')) throw err;
      await snapshotter.remove(key);
    }
  } catch (err) {
    await snapshotter.remove(key).catch(() => undefined);
    throw err;
  }
}

async function isCommitted(snapshotter: Snapshotter, key: string): Promise<boolean> {
  try {
    const info = await snapshotter.stat(key);
    if (info.kind !== 'Committed') {
      throw new SnapshotError('failed-precondition', key, `snapshot "${key}" exists but is ${info.kind}, not a committed layer`);
    }
    return true;
  } catch (err) {
    if (err instanceof SnapshotError && err.code === 'not-found') return false;
    throw err;
  }
}

/**
 * Removes unpacked layers (snapshots labelled LAYER_LABEL) that no one needs: those not named in
 * `keep` and not an ancestor of a kept snapshot or of any other snapshot (active, view, or a
 * committed one gc does not own). Children go before parents. Returns the removed names; the
 * storage behind them is freed by the snapshotter's `cleanup()`, which gc calls last.
 */
export async function gc(snapshotter: Snapshotter, keep: ReadonlySet<string>): Promise<string[]> {
  const all = await snapshotter.walk();
  const byKey = new Map(all.map((s) => [s.key, s]));
  const needed = new Set<string>();
  const markChain = (info: Info | undefined): void => {
    for (let s = info; s && !needed.has(s.key); s = s.parent === undefined ? undefined : byKey.get(s.parent)) needed.add(s.key);
  };
  for (const s of all) {
    if (keep.has(s.key) || !isLayer(s)) markChain(s);
  }
  const doomed = all.filter((s) => !needed.has(s.key));
  const removed: string[] = [];
  const depth = (s: Info): number => (s.parent === undefined ? 0 : 1 + depth(byKey.get(s.parent)!));
  for (const s of doomed.sort((a, b) => depth(b) - depth(a))) {
    await snapshotter.remove(s.key);
    removed.push(s.key);
  }
  await snapshotter.cleanup();
  return removed;
}

function isLayer(info: Info): boolean {
  return info.kind === 'Committed' && info.labels[LAYER_LABEL] !== undefined;
}
