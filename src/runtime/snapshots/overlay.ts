import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { lstat, mkdir, opendir, readdir, rm } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import Database from 'better-sqlite3';
import {
  SnapshotError,
  validateLabels,
  type Info,
  type Kind,
  type Labels,
  type Mount,
  type SnapshotOptions,
  type Snapshotter,
  type Usage,
} from './snapshotter.js';

/** Bumped when the table layout changes; a database with another version is refused, not misread. */
const SCHEMA_VERSION = 1;
/** How long a call waits for another connection's lock (a debugging shell) before failing. */
const BUSY_TIMEOUT_MS = 5_000;
/** Directories under `snapshots/` that a prepare is still filling carry this prefix until renamed. */
const STAGING_PREFIX = 'new-';

export interface OverlaySnapshotterOptions {
  /**
   * Leave the directories of removed snapshots for `cleanup()` instead of deleting them in
   * `remove()`, as containerd's async removal does: removal is then instant, and a container
   * runtime can run the slow part off the hot path.
   */
  asyncRemove?: boolean;
}

interface Row {
  id: number;
  key: string;
  kind: Kind;
  parent_id: number | null;
  labels: string;
  created: number;
  updated: number;
  bytes: number | null;
  inodes: number | null;
}

/**
 * Snapshotter on overlayfs, laid out as containerd's overlay snapshotter:
 *
 *   <root>/metadata.db          SQLite: one row per snapshot, every change in one transaction
 *   <root>/snapshots/<id>/fs    the snapshot's own files (an overlay upperdir, or a plain tree)
 *   <root>/snapshots/<id>/work  overlayfs's workdir for an active snapshot
 *
 * Ids are small integers so a lowerdir list stays short; past the kernel's one-page limit on mount
 * options, `mountAll` mounts with relative lowerdirs (see mount.ts), and beyond that it fails with
 * a message naming the limit. Committing only relabels the row: the `fs` directory of an active
 * snapshot becomes a lower layer as it is.
 *
 * Crash safety: `prepare` fills a staging directory, then inserts the row and renames the
 * directory into place inside one transaction; `remove` deletes the row first and the directory
 * after. Either way a crash leaves, at worst, a directory without a row, which `cleanup()` deletes.
 * The root must not contain ',' or ':', which separate overlay options and lowerdirs.
 */
export class OverlaySnapshotter implements Snapshotter {
  private readonly db: Database.Database;
  private readonly snapshotsDir: string;
  private readonly asyncRemove: boolean;

  constructor(
    readonly root: string,
    options: OverlaySnapshotterOptions = {},
  ) {
    if (!isAbsolute(root) || /[,:]/.test(root)) {
      throw new SnapshotError('invalid', '', `overlay snapshotter root "${root}" must be absolute, without ',' or ':'`);
    }
    this.asyncRemove = options.asyncRemove ?? false;
    this.snapshotsDir = join(root, 'snapshots');
    mkdirSync(this.snapshotsDir, { recursive: true, mode: 0o700 });
    this.db = new Database(join(root, 'metadata.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version === 0) {
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS snapshots (
          id        INTEGER PRIMARY KEY AUTOINCREMENT,
          key       TEXT    NOT NULL UNIQUE,
          kind      TEXT    NOT NULL CHECK (kind IN ('Active', 'View', 'Committed')),
          parent_id INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
          labels    TEXT    NOT NULL,
          created   INTEGER NOT NULL,
          updated   INTEGER NOT NULL,
          bytes     INTEGER,
          inodes    INTEGER
        );
        CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
        PRAGMA user_version = ${SCHEMA_VERSION};
      `);
    } else if (version !== SCHEMA_VERSION) {
      this.db.close();
      throw new SnapshotError(
        'invalid',
        '',
        `${join(root, 'metadata.db')} has schema version ${version}; this build reads version ${SCHEMA_VERSION}`,
      );
    }
  }

  async stat(key: string): Promise<Info> {
    return this.info(this.row(key));
  }

  async update(key: string, labels: Readonly<Record<string, string | null>>): Promise<Info> {
    validateLabels(key, labels);
    const row = this.db.transaction(() => {
      const current = this.row(key);
      const merged = mergeLabels(this.labelsOf(current), labels);
      this.db
        .prepare('UPDATE snapshots SET labels = ?, updated = ? WHERE id = ?')
        .run(JSON.stringify(merged), Date.now(), current.id);
      return this.row(key);
    })();
    return this.info(row);
  }

  async usage(key: string): Promise<Usage> {
    const row = this.row(key);
    if (row.kind === 'Committed' && row.bytes !== null && row.inodes !== null) {
      return { bytes: row.bytes, inodes: row.inodes };
    }
    return diskUsage(this.fsDir(row.id));
  }

  async mounts(key: string): Promise<Mount[]> {
    const row = this.row(key);
    if (row.kind === 'Committed') {
      throw new SnapshotError('failed-precondition', key, `snapshot "${key}" is committed; it has no mounts of its own`);
    }
    return this.mountsOf(row);
  }

  async prepare(key: string, parent?: string, options: SnapshotOptions = {}): Promise<Mount[]> {
    return this.create('Active', key, parent, options);
  }

  async view(key: string, parent?: string, options: SnapshotOptions = {}): Promise<Mount[]> {
    return this.create('View', key, parent, options);
  }

  async commit(name: string, key: string, options: SnapshotOptions = {}): Promise<void> {
    validateKey(name);
    validateLabels(name, options.labels ?? {});
    const active = this.row(key);
    if (active.kind !== 'Active') {
      throw new SnapshotError('failed-precondition', key, `snapshot "${key}" is ${active.kind}; only an active snapshot can be committed`);
    }
    const usage = await diskUsage(this.fsDir(active.id));
    this.db.transaction(() => {
      const row = this.row(key);
      if (row.id !== active.id || row.kind !== 'Active') {
        throw new SnapshotError('failed-precondition', key, `snapshot "${key}" changed while it was being committed`);
      }
      this.assertFree(name);
      const labels = mergeLabels(this.labelsOf(row), options.labels ?? {});
      this.db
        .prepare(
          `UPDATE snapshots SET key = ?, kind = 'Committed', labels = ?, updated = ?, bytes = ?, inodes = ? WHERE id = ?`,
        )
        .run(name, JSON.stringify(labels), Date.now(), usage.bytes, usage.inodes, row.id);
    })();
  }

  async remove(key: string): Promise<void> {
    const id = this.db.transaction(() => {
      const row = this.row(key);
      const children = this.db
        .prepare('SELECT key FROM snapshots WHERE parent_id = ? ORDER BY key')
        .pluck()
        .all(row.id) as string[];
      if (children.length > 0) {
        throw new SnapshotError(
          'has-children',
          key,
          `snapshot "${key}" cannot be removed: ${children.map((c) => `"${c}"`).join(', ')} build${children.length === 1 ? 's' : ''} on it; remove ${children.length === 1 ? 'it' : 'them'} first`,
        );
      }
      this.db.prepare('DELETE FROM snapshots WHERE id = ?').run(row.id);
      return row.id;
    })();
    if (!this.asyncRemove) await rm(join(this.snapshotsDir, String(id)), { recursive: true, force: true });
  }

  async walk(): Promise<Info[]> {
    const rows = this.db.prepare('SELECT * FROM snapshots ORDER BY key').all() as Row[];
    const keys = new Map(rows.map((r) => [r.id, r.key]));
    return rows.map((r) => this.info(r, keys));
  }

  async cleanup(): Promise<void> {
    const owned = new Set((this.db.prepare('SELECT id FROM snapshots').pluck().all() as number[]).map(String));
    for (const name of await readdir(this.snapshotsDir)) {
      if (!owned.has(name)) await rm(join(this.snapshotsDir, name), { recursive: true, force: true });
    }
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  async applyTarget(key: string): Promise<string> {
    const row = this.row(key);
    if (row.kind !== 'Active') {
      throw new SnapshotError('failed-precondition', key, `snapshot "${key}" is ${row.kind}; layers are applied only to an active snapshot`);
    }
    return this.fsDir(row.id);
  }

  private async create(kind: Kind, key: string, parent: string | undefined, options: SnapshotOptions): Promise<Mount[]> {
    validateKey(key);
    validateLabels(key, options.labels ?? {});
    const staging = join(this.snapshotsDir, STAGING_PREFIX + randomBytes(8).toString('hex'));
    await mkdir(join(staging, 'fs'), { recursive: true, mode: 0o755 });
    if (kind === 'Active') await mkdir(join(staging, 'work'), { mode: 0o700 });
    try {
      const row = this.db.transaction(() => {
        this.assertFree(key);
        let parentId: number | null = null;
        if (parent !== undefined) {
          const p = this.row(parent);
          if (p.kind !== 'Committed') {
            throw new SnapshotError('failed-precondition', key, `parent "${parent}" of "${key}" is ${p.kind}; a parent must be committed`);
          }
          parentId = p.id;
        }
        const now = Date.now();
        const { lastInsertRowid } = this.db
          .prepare('INSERT INTO snapshots (key, kind, parent_id, labels, created, updated) VALUES (?, ?, ?, ?, ?, ?)')
          .run(key, kind, parentId, JSON.stringify(options.labels ?? {}), now, now);
        const id = Number(lastInsertRowid);
        const final = join(this.snapshotsDir, String(id));
        // A directory already named by a fresh id was left by a crash between rename and commit.
        if (existsSync(final)) rmSync(final, { recursive: true, force: true });
        renameSync(staging, final);
        return this.row(key);
      })();
      return this.mountsOf(row);
    } catch (err) {
      await rm(staging, { recursive: true, force: true });
      throw err;
    }
  }

  /** containerd's mount rules: bind for no or (for views) one parent, overlay otherwise. */
  private mountsOf(row: Row): Mount[] {
    const lowers = this.parentIds(row).map((id) => this.fsDir(id));
    if (row.kind === 'View') {
      if (lowers.length === 0) return [{ type: 'bind', source: this.fsDir(row.id), options: ['ro', 'rbind'] }];
      if (lowers.length === 1) return [{ type: 'bind', source: lowers[0]!, options: ['ro', 'rbind'] }];
      return [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${lowers.join(':')}`] }];
    }
    if (lowers.length === 0) return [{ type: 'bind', source: this.fsDir(row.id), options: ['rw', 'rbind'] }];
    return [
      {
        type: 'overlay',
        source: 'overlay',
        options: [
          `workdir=${join(this.snapshotsDir, String(row.id), 'work')}`,
          `upperdir=${this.fsDir(row.id)}`,
          `lowerdir=${lowers.join(':')}`,
        ],
      },
    ];
  }

  /** Ids of the parent chain, nearest first: the order overlayfs wants lowerdirs in. */
  private parentIds(row: Row): number[] {
    return this.db
      .prepare(
        `WITH RECURSIVE chain(id, parent_id, depth) AS (
           SELECT id, parent_id, 0 FROM snapshots WHERE id = ?
           UNION ALL
           SELECT s.id, s.parent_id, chain.depth + 1 FROM snapshots s JOIN chain ON s.id = chain.parent_id
         )
         SELECT id FROM chain WHERE depth > 0 ORDER BY depth`,
      )
      .pluck()
      .all(row.id) as number[];
  }

  private fsDir(id: number): string {
    return join(this.snapshotsDir, String(id), 'fs');
  }

  private row(key: string): Row {
    const row = this.db.prepare('SELECT * FROM snapshots WHERE key = ?').get(key) as Row | undefined;
    if (!row) throw new SnapshotError('not-found', key, `snapshot "${key}" does not exist`);
    return row;
  }

  private assertFree(key: string): void {
    const existing = this.db.prepare('SELECT kind FROM snapshots WHERE key = ?').pluck().get(key) as Kind | undefined;
    if (existing) throw new SnapshotError('exists', key, `snapshot "${key}" already exists (${existing})`);
  }

  private labelsOf(row: Row): Labels {
    let parsed: unknown;
    try {
      parsed = JSON.parse(row.labels);
    } catch {
      parsed = undefined;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) ||
        !Object.values(parsed).every((v) => typeof v === 'string')) {
      throw new SnapshotError('invalid', row.key, `snapshot "${row.key}": stored labels are not a JSON object of strings`);
    }
    return parsed as Labels;
  }

  private info(row: Row, keys?: ReadonlyMap<number, string>): Info {
    const info: Info = {
      key: row.key,
      kind: row.kind,
      labels: this.labelsOf(row),
      created: new Date(row.created),
      updated: new Date(row.updated),
    };
    if (row.parent_id !== null) {
      info.parent =
        keys?.get(row.parent_id) ??
        (this.db.prepare('SELECT key FROM snapshots WHERE id = ?').pluck().get(row.parent_id) as string);
    }
    return info;
  }
}

function validateKey(key: string): void {
  if (typeof key !== 'string' || key === '') throw new SnapshotError('invalid', String(key), 'a snapshot key must be a non-empty string');
}

function mergeLabels(current: Labels, patch: Readonly<Record<string, string | null>>): Labels {
  const merged: Labels = { ...current };
  for (const [name, value] of Object.entries(patch)) {
    if (value === null) delete merged[name];
    else merged[name] = value;
  }
  return merged;
}

/** Walks `dir` without following symlinks; blocks are 512-byte units whatever the filesystem. */
async function diskUsage(dir: string): Promise<Usage> {
  const seen = new Set<string>();
  let bytes = 0;
  const visit = async (path: string): Promise<void> => {
    const st = await lstat(path, { bigint: true });
    const inode = `${st.dev}:${st.ino}`;
    if (seen.has(inode)) return;
    seen.add(inode);
    bytes += Number(st.blocks) * 512;
    if (!st.isDirectory()) return;
    for await (const entry of await opendir(path)) await visit(join(path, entry.name));
  };
  await visit(dir);
  return { bytes, inodes: seen.size };
}
