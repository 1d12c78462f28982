/**
 * Snapshotter keeps container filesystems as stacks of snapshots, the model of containerd's
 * `core/snapshots`. A snapshotter never mounts anything itself: it answers with `Mount`s that the
 * caller mounts (with `mountAll`) wherever it needs the filesystem, and unmounts when done.
 *
 * Kinds and lifecycle
 * -------------------
 * Every snapshot has a key, unique across all kinds. It is one of:
 *   - Active: writable. `prepare(key, parent)` creates it on top of a committed parent (or empty).
 *   - View: read-only. `view(key, parent)` creates it; it can never be committed.
 *   - Committed: immutable. `commit(name, key)` turns an active snapshot into a committed one
 *     named `name`; the active key is gone afterwards. Only committed snapshots can be parents.
 *
 * A snapshot cannot be removed while another snapshot names it as parent, so a chain is removed
 * from the top down. Removing drops the metadata at once; the directories or devices behind it go
 * then, or at the latest in `cleanup()` (which also clears what a crash left half-created).
 *
 * Worked example: unpacking an image of two layers and running a container on it
 *
 *   m = prepare("extract-1", undefined)       Active, empty         -> [bind <dir> rw]
 *   mountAll(m, "/tmp/x"); untar layer 0 into /tmp/x; unmount("/tmp/x")
 *   commit("sha256:c0", "extract-1")           Committed "sha256:c0" ("extract-1" is gone)
 *   m = prepare("extract-2", "sha256:c0")      Active on c0          -> [overlay lower=c0]
 *   ... untar layer 1 ...
 *   commit("sha256:c1", "extract-2")           Committed "sha256:c1", parent "sha256:c0"
 *   m = prepare("ctr-web", "sha256:c1")        the container's writable rootfs
 *   view("inspect", "sha256:c1")               a read-only look at the image
 *   remove("sha256:c1")                        refused: "ctr-web" and "inspect" are its children
 *   remove("ctr-web"); remove("inspect"); remove("sha256:c1"); remove("sha256:c0")
 *
 * Writes through an active snapshot's mounts are never visible in its parent or in siblings.
 * Deleting a file that a parent holds is recorded in the child (an overlay whiteout), so the file
 * is gone only in the child and its descendants.
 *
 * Metadata (keys, kinds, parents, labels, times, committed usage) is persisted under the
 * snapshotter's root so a new instance on the same root sees the same snapshots; a crash in the
 * middle of any call leaves the state from before the call or after it. One instance owns a root.
 */
export interface Snapshotter {
  /** Information about one snapshot; SnapshotError 'not-found' if there is none. */
  stat(key: string): Promise<Info>;
  /**
   * Merges `labels` into the snapshot's labels; a `null` value deletes that label. Returns the
   * updated information.
   */
  update(key: string, labels: Readonly<Record<string, string | null>>): Promise<Info>;
  /**
   * Disk space the snapshot itself holds, not counting its parents. Active snapshots are measured
   * on every call; committed ones were measured once, at commit.
   */
  usage(key: string): Promise<Usage>;
  /** The mounts that present an active snapshot or view; a committed snapshot has none. */
  mounts(key: string): Promise<Mount[]>;

  /** Creates an active snapshot on committed `parent`, or empty without one; returns its mounts. */
  prepare(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]>;
  /** Creates a read-only view of committed `parent` (empty without one); returns its mounts. */
  view(key: string, parent?: string, options?: SnapshotOptions): Promise<Mount[]>;
  /**
   * Turns active snapshot `key` into committed snapshot `name`. The caller must have unmounted
   * everything of `key` first. Labels given here are merged into those the active one had.
   */
  commit(name: string, key: string, options?: SnapshotOptions): Promise<void>;
  /** Removes a snapshot of any kind; SnapshotError 'has-children' while a snapshot builds on it. */
  remove(key: string): Promise<void>;

  /** Every snapshot, ordered by key. */
  walk(): Promise<Info[]>;
  /** Deletes storage that no snapshot owns: that of removed snapshots and of interrupted calls. */
  cleanup(): Promise<void>;
  /** Releases the metadata store. The instance is unusable afterwards; snapshots stay on disk. */
  close(): Promise<void>;

  /**
   * A directory where a layer for active snapshot `key` can be unpacked directly in overlay
   * format (whiteouts as 0/0 character devices, opaque directories as an xattr), when the
   * snapshotter has one. Without this method, a caller mounts the snapshot and unpacks into the
   * merged tree, turning whiteouts into deletions.
   */
  applyTarget?(key: string): Promise<string>;
}

export type Kind = 'Active' | 'View' | 'Committed';

export type Labels = Record<string, string>;

export interface Info {
  /** The key of an active snapshot or view, the name of a committed one. */
  key: string;
  kind: Kind;
  /** The committed snapshot this one builds on. */
  parent?: string;
  labels: Labels;
  created: Date;
  updated: Date;
}

export interface Usage {
  /** Bytes allocated on disk (blocks, so sparse files count what they occupy). */
  bytes: number;
  /** Files, directories and other inodes, each hard-linked inode once. */
  inodes: number;
}

export interface SnapshotOptions {
  labels?: Labels;
}

/**
 * One mount(2), as containerd describes it: `type` is the filesystem ("overlay", "bind", "ext4"),
 * `source` what is mounted, `options` the comma-separated mount options, one per element.
 * Mounts are applied in order on the same target.
 */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

export type SnapshotErrorCode = 'not-found' | 'exists' | 'has-children' | 'failed-precondition' | 'invalid';

export class SnapshotError extends Error {
  constructor(
    readonly code: SnapshotErrorCode,
    readonly key: string,
    message: string,
  ) {
    super(message);
    this.name = 'SnapshotError';
  }
}

/** containerd's bound: label keys and values together may not pass 4 KiB each. */
export const MAX_LABEL_BYTES = 4096;

/** Checks caller-given labels; throws SnapshotError 'invalid' naming the offending label. */
export function validateLabels(key: string, labels: Readonly<Record<string, string | null>>): void {
  for (const [name, value] of Object.entries(labels)) {
    if (name === '') throw new SnapshotError('invalid', key, `snapshot "${key}": a label name is empty`);
    if (value !== null && typeof value !== 'string') {
      throw new SnapshotError('invalid', key, `snapshot "${key}": label "${name}" must be a string`);
    }
    const size = Buffer.byteLength(name) + Buffer.byteLength(value ?? '');
    if (size > MAX_LABEL_BYTES) {
      throw new SnapshotError(
        'invalid',
        key,
        `snapshot "${key}": label "${name}" is ${size} bytes, more than the ${MAX_LABEL_BYTES} allowed`,
      );
    }
  }
}
