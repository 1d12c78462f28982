import Database from 'better-sqlite3';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { KubeObject } from '../api/types.js';
import { StoreError, type ListOptions, type ListResult, type Store, type StoredObject, type StoreEvent } from './store.js';

/** Revisions of history kept by `compactOlderThan()` when the caller names no other number. */
export const DEFAULT_HISTORY_LIMIT = 10_000;
/** How often `compactPeriodically` trims history unless told otherwise. */
export const DEFAULT_COMPACTION_PERIOD_MS = 60_000;
/** How long a write waits for another connection's lock (a backup, a debugging shell) before failing. */
const BUSY_TIMEOUT_MS = 5_000;
/** Rows a starting watch replays between yields to the event loop, so a long backlog cannot stall writers. */
const REPLAY_PAGE = 512;
/** Bumped when the table layout changes; a file with another version is refused rather than misread. */
const SCHEMA_VERSION = 1;

export interface SqliteStoreOptions {
  /** Revisions of history `compactOlderThan()` keeps by default. */
  historyLimit?: number;
}

/** One row of the log: a write. A delete row carries the value it removed. */
interface LogRow {
  rev: number;
  key: string;
  created: number;
  prev: number;
  deleted: number;
  value: string;
}

/** A write waiting for the group commit. */
interface PendingWrite {
  row: LogRow;
  prevValue: string | null;
  resolve(stored: StoredObject): void;
  reject(err: unknown): void;
}

/** A log row joined with the value it replaced, enough to build a StoreEvent. */
interface ChangeRow extends LogRow {
  prevValue: string | null;
}

interface Watcher {
  prefix: string;
  /** The last revision handed to onEvent; guards against delivering anything twice. */
  delivered: number;
  onEvent: (event: StoreEvent) => void;
  end(): void;
}

/**
 * Store on SQLite, modelled on kine: one append-only `log` table where every write is a row, and a
 * key's value is its latest row. The newest revision lives in memory and continues from the file
 * on open, so one process owns a database file; watches see only that process's writes.
 *
 * Watches are delivered synchronously after each commit, through a queue, so a callback that
 * writes cannot make another watcher see revisions out of order.
 */
export class SqliteStore implements Store {
  private rev: number;
  private compacted: number;
  private readonly watchers = new Set<Watcher>();
  private readonly pending: ChangeRow[] = [];
  private dispatching = false;
  private readonly stopTimers = new AbortController();

  private readonly sql: ReturnType<typeof prepare>;
  private readonly insert: (rows: LogRow[]) => void;
  /** The last revision handed out; above `rev` while a batch awaits its commit. */
  private next: number;
  /** Writes waiting for the group commit, and the newest of them per key. */
  private batch: PendingWrite[] = [];
  private readonly batchByKey = new Map<string, LogRow>();
  private readonly compactRange: (from: number, to: number) => void;

  private constructor(
    private readonly db: Database.Database,
    readonly historyLimit: number,
  ) {
    this.sql = prepare(db);
    this.compacted = (this.sql.getCompacted.get() as { value: number }).value;
    const latest = (this.sql.maxRev.get() as { rev: number | null }).rev ?? 0;
    // Compaction may have removed the newest row (a delete), so the compacted mark also bounds it.
    this.rev = this.next = Math.max(latest, this.compacted);
    this.insert = db.transaction((rows: LogRow[]) => {
      for (const row of rows) this.sql.insert.run(row);
    }).immediate;
    this.compactRange = db.transaction((from: number, to: number) => {
      this.sql.deleteSuperseded.run({ from, to });
      this.sql.deleteTombstones.run({ from, to });
      this.sql.setCompacted.run(to);
    }).immediate;
  }

  /** Opens (creating if needed) the store at `path`; ':memory:' gives a private in-memory store. */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    const historyLimit = options.historyLimit ?? DEFAULT_HISTORY_LIMIT;
    if (!Number.isSafeInteger(historyLimit) || historyLimit < 1) {
      throw new RangeError(`historyLimit must be a positive integer, got ${historyLimit}`);
    }
    const db = new Database(path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      migrate(db, path);
      return new SqliteStore(db, historyLimit);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  async revision(): Promise<number> {
    return this.rev;
  }

  async compactedRevision(): Promise<number> {
    return this.compacted;
  }

  async get(key: string): Promise<StoredObject | undefined> {
    // A write to this key awaits the group commit (scheduled before us): read once it has landed, so
    // that a read-modify-write built on this read does not conflict with a write already accepted.
    if (this.batchByKey.has(key)) await new Promise((resolve) => setImmediate(resolve));
    const row = this.latest(key);
    return row && !row.deleted ? stored(row) : undefined;
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListResult> {
    const at = options.revision ?? this.rev;
    this.requireHistory(prefix, at);
    if (at > this.rev) throw new RangeError(`revision ${at} is newer than the store's revision ${this.rev}`);
    const limit = options.limit && options.limit > 0 ? options.limit : undefined;
    const rows = this.sql.list.all({
      start: prefix,
      end: prefixEnd(prefix),
      after: options.startAfter ?? '',
      at,
      limit: limit === undefined ? -1 : limit + 1,
    }) as LogRow[];
    const more = limit !== undefined && rows.length > limit;
    if (more) rows.pop();
    return { items: rows.map(stored), revision: at, more };
  }

  async count(prefix: string): Promise<number> {
    return (this.sql.count.get({ start: prefix, end: prefixEnd(prefix) }) as { n: number }).n;
  }

  async create(key: string, object: KubeObject): Promise<StoredObject> {
    const latest = this.newest(key);
    if (latest && !latest.deleted) {
      throw new StoreError('exists', key, `${key} already exists`);
    }
    const rev = this.next + 1;
    const row: LogRow = { rev, key, created: rev, prev: latest?.rev ?? 0, deleted: 0, value: serialize(object) };
    return this.commit(row, null);
  }

  async update(key: string, object: KubeObject, expectedModRevision: number): Promise<StoredObject> {
    const latest = this.live(key, expectedModRevision);
    const rev = this.next + 1;
    const row: LogRow = { rev, key, created: latest.created, prev: latest.rev, deleted: 0, value: serialize(object) };
    return this.commit(row, latest.value);
  }

  async delete(key: string, expectedModRevision?: number): Promise<StoredObject> {
    const latest = this.live(key, expectedModRevision);
    const rev = this.next + 1;
    const row: LogRow = { rev, key, created: latest.created, prev: latest.rev, deleted: 1, value: latest.value };
    return this.commit(row, latest.value);
  }

  async events(prefix: string, afterRevision: number, uptoRevision?: number): Promise<StoreEvent[]> {
    this.requireHistory(prefix, afterRevision);
    return this.changes(prefix, afterRevision, uptoRevision ?? this.rev, -1).map(toEvent);
  }

  /**
   * Resolves once the history after `afterRevision` has been delivered and live writes are flowing,
   * so a caller that awaits it knows later writes will reach `onEvent`.
   */
  async watch(
    prefix: string,
    afterRevision: number,
    onEvent: (event: StoreEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    this.requireHistory(prefix, afterRevision);
    const watcher: Watcher = {
      prefix,
      delivered: afterRevision,
      onEvent,
      end: () => {
        this.watchers.delete(watcher);
        signal.removeEventListener('abort', watcher.end);
      },
    };
    if (signal.aborted) return;
    signal.addEventListener('abort', watcher.end, { once: true });
    try {
      // Replay until a read reaches the newest revision with nothing written since; joining the
      // live set in that same synchronous step leaves no gap. Writes made by onEvent itself, or
      // while we yield, land in the log and are picked up by the next page.
      for (;;) {
        this.requireHistory(prefix, watcher.delivered);
        const upto = this.rev;
        const rows = this.changes(prefix, watcher.delivered, upto, REPLAY_PAGE);
        const scanned = rows.length === REPLAY_PAGE ? rows[rows.length - 1]!.rev : upto;
        for (const row of rows) {
          if (signal.aborted) return;
          watcher.delivered = row.rev;
          onEvent(toEvent(row));
        }
        watcher.delivered = scanned;
        if (signal.aborted) return;
        if (this.rev === scanned) break;
        await yieldToEventLoop();
      }
    } catch (err) {
      watcher.end();
      throw err;
    }
    this.watchers.add(watcher);
  }

  /**
   * Forgets history at or below `revision` that a later write at or below it superseded, and every
   * trace of keys whose latest write at or below it was a delete. The state at `revision` stays
   * readable; anything older fails with 'compacted'. Compacting at or below the current mark does
   * nothing, so callers need not coordinate.
   */
  async compact(revision: number): Promise<void> {
    if (revision > this.rev) {
      throw new RangeError(`cannot compact revision ${revision}: the store's revision is ${this.rev}`);
    }
    if (revision <= this.compacted) return;
    this.compactRange(this.compacted, revision);
    this.compacted = revision;
  }

  /** Compacts everything but the newest `keepRevisions` revisions (default: the history limit). */
  async compactOlderThan(keepRevisions = this.historyLimit): Promise<void> {
    const target = this.rev - keepRevisions;
    if (target > this.compacted) await this.compact(target);
  }

  /** Runs `compactOlderThan()` every `periodMs` until `signal` aborts or the store closes. */
  compactPeriodically(signal: AbortSignal, periodMs = DEFAULT_COMPACTION_PERIOD_MS): void {
    // A failed round (say, another connection holding the lock) is retried next period.
    const round = () =>
      this.compactOlderThan().catch((err: Error) => process.emitWarning(`store compaction failed: ${err.message}`));
    const timer = setInterval(round, periodMs);
    timer.unref();
    const stop = () => clearInterval(timer);
    signal.addEventListener('abort', stop, { once: true });
    this.stopTimers.signal.addEventListener('abort', stop, { once: true });
  }

  async close(): Promise<void> {
    if (!this.db.open) return;
    this.flush();
    this.stopTimers.abort();
    for (const watcher of this.watchers) watcher.end();
    this.db.close();
  }

  private latest(key: string): LogRow | undefined {
    return this.sql.latest.get(key) as LogRow | undefined;
  }

  /** The key's newest row including writes awaiting commit: what the next write builds on. */
  private newest(key: string): LogRow | undefined {
    return this.batchByKey.get(key) ?? this.latest(key);
  }

  /** The key's newest row, which must be live and, if asked, at `expectedModRevision`. */
  private live(key: string, expectedModRevision: number | undefined): LogRow {
    const latest = this.newest(key);
    if (!latest || latest.deleted) throw new StoreError('notfound', key, `${key} not found`);
    if (expectedModRevision !== undefined && latest.rev !== expectedModRevision) {
      throw new StoreError(
        'conflict',
        key,
        `${key} is at revision ${latest.rev}, not ${expectedModRevision}`,
        latest.rev,
      );
    }
    return latest;
  }

  /**
   * Group commit: writes made in the same turn of the event loop share one transaction, committed
   * before the loop goes on; each write's promise settles only after that commit. Readers see only
   * committed revisions; writers see the batch, so compare-and-swap stays exact.
   */
  private commit(row: LogRow, prevValue: string | null): Promise<StoredObject> {
    this.next = row.rev;
    this.batchByKey.set(row.key, row);
    if (this.batch.length === 0) setImmediate(() => this.flush());
    return new Promise((resolve, reject) => this.batch.push({ row, prevValue, resolve, reject }));
  }

  private flush(): void {
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.batchByKey.clear();
    try {
      this.insert(batch.map((w) => w.row));
    } catch (err) {
      this.next = this.rev;
      for (const w of batch) w.reject(err);
      return;
    }
    this.rev = this.next;
    for (const w of batch) {
      if (this.watchers.size > 0) this.publish({ ...w.row, prevValue: w.prevValue });
      w.resolve(stored(w.row));
    }
  }

  private publish(change: ChangeRow): void {
    this.pending.push(change);
    if (this.dispatching) return;
    this.dispatching = true;
    try {
      for (let i = 0; i < this.pending.length; i++) {
        const next = this.pending[i]!;
        for (const watcher of this.watchers) this.deliver(watcher, next);
      }
    } finally {
      this.pending.length = 0;
      this.dispatching = false;
    }
  }

  private deliver(watcher: Watcher, change: ChangeRow): void {
    if (change.rev <= watcher.delivered || !change.key.startsWith(watcher.prefix)) return;
    watcher.delivered = change.rev;
    try {
      watcher.onEvent(toEvent(change));
    } catch (err) {
      // The write has committed and other watchers still need it, so the error cannot go to the
      // writer. A watcher that missed an event must not carry on, and the failure must be seen.
      watcher.end();
      queueMicrotask(() => {
        throw err;
      });
    }
  }

  private changes(prefix: string, after: number, upto: number, limit: number): ChangeRow[] {
    return this.sql.changes.all({ start: prefix, end: prefixEnd(prefix), after, upto, limit }) as ChangeRow[];
  }

  private requireHistory(prefix: string, revision: number): void {
    if (revision < this.compacted) {
      throw new StoreError(
        'compacted',
        prefix,
        `revision ${revision} has been compacted; the oldest available is ${this.compacted}`,
        this.compacted,
      );
    }
  }
}

function migrate(db: Database.Database, path: string): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version === SCHEMA_VERSION) return;
  if (version !== 0) {
    throw new Error(`${path}: store schema version ${version} is not supported (expected ${SCHEMA_VERSION})`);
  }
  db.transaction(() => {
    db.exec(`
      CREATE TABLE log (
        rev INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        created INTEGER NOT NULL,
        prev INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        value TEXT NOT NULL
      );
      CREATE INDEX log_key_rev ON log (key, rev);
      CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT INTO meta (name, value) VALUES ('compacted', 0);
      PRAGMA user_version = ${SCHEMA_VERSION};
    `);
  }).immediate();
}

function prepare(db: Database.Database) {
  return {
    maxRev: db.prepare('SELECT max(rev) AS rev FROM log'),
    getCompacted: db.prepare(`SELECT value FROM meta WHERE name = 'compacted'`),
    setCompacted: db.prepare(`UPDATE meta SET value = ? WHERE name = 'compacted'`),
    insert: db.prepare(
      'INSERT INTO log (rev, key, created, prev, deleted, value) VALUES (@rev, @key, @created, @prev, @deleted, @value)',
    ),
    latest: db.prepare('SELECT rev, key, created, prev, deleted, value FROM log WHERE key = ? ORDER BY rev DESC LIMIT 1'),
    // The correlated form walks keys in index order and stops at LIMIT, which paging relies on.
    list: db.prepare(`
      SELECT l.rev, l.key, l.created, l.prev, l.deleted, l.value FROM log AS l
      WHERE l.key >= @start AND l.key < @end AND l.key > @after AND l.deleted = 0
        AND l.rev = (SELECT max(m.rev) FROM log AS m WHERE m.key = l.key AND m.rev <= @at)
      ORDER BY l.key LIMIT @limit`),
    count: db.prepare(`
      SELECT count(*) AS n FROM log AS l
      WHERE l.key >= @start AND l.key < @end AND l.deleted = 0
        AND NOT EXISTS (SELECT 1 FROM log AS n WHERE n.key = l.key AND n.rev > l.rev)`),
    // A create's prev may be a compacted-away delete, and a delete row already holds the old value,
    // so only updates look up the row they replaced.
    changes: db.prepare(`
      SELECT l.rev, l.key, l.created, l.prev, l.deleted, l.value, p.value AS prevValue
      FROM log AS l LEFT JOIN log AS p ON p.rev = l.prev AND l.deleted = 0 AND l.created <> l.rev
      WHERE l.rev > @after AND l.rev <= @upto AND l.key >= @start AND l.key < @end
      ORDER BY l.rev LIMIT @limit`),
    // Only keys written in (from, to] can have rows newly superseded; older survivors were already
    // the latest at or below `from`.
    deleteSuperseded: db.prepare(`
      DELETE FROM log WHERE rev IN (
        SELECT o.rev FROM log AS o
        WHERE o.key IN (SELECT key FROM log WHERE rev > @from AND rev <= @to)
          AND o.rev < (SELECT max(m.rev) FROM log AS m WHERE m.key = o.key AND m.rev <= @to))`),
    // After the step above a delete row at or below `to` is its key's only row there.
    deleteTombstones: db.prepare('DELETE FROM log WHERE rev > @from AND rev <= @to AND deleted = 1'),
  };
}

/** The smallest value above every key that starts with `prefix`, in SQLite's UTF-8 byte order. */
function prefixEnd(prefix: string): string | Buffer {
  const points = Array.from(prefix);
  while (points.length > 0) {
    let next = points.pop()!.codePointAt(0)! + 1;
    if (next === 0xd800) next = 0xe000;
    if (next <= 0x10ffff) return points.join('') + String.fromCodePoint(next);
  }
  // SQLite orders every TEXT value before every BLOB, so this bounds nothing.
  return Buffer.from([0xff]);
}

/** Stored JSON leaves out resourceVersion: it is the row's revision, stamped on the way out. */
function serialize(object: KubeObject): string {
  const { resourceVersion: _, ...metadata } = object.metadata;
  return JSON.stringify({ ...object, metadata });
}

function stamp(json: string, revision: number): KubeObject {
  const object = JSON.parse(json) as KubeObject;
  object.metadata.resourceVersion = String(revision);
  return object;
}

function stored(row: LogRow): StoredObject {
  return { key: row.key, object: stamp(row.value, row.rev), createRevision: row.created, modRevision: row.rev };
}

function toEvent(row: ChangeRow): StoreEvent {
  const object = stamp(row.value, row.rev);
  if (row.deleted) return { type: 'DELETED', key: row.key, revision: row.rev, object, prevObject: stamp(row.value, row.prev) };
  if (row.created === row.rev) return { type: 'ADDED', key: row.key, revision: row.rev, object };
  return { type: 'MODIFIED', key: row.key, revision: row.rev, object, prevObject: stamp(row.prevValue!, row.prev) };
}
