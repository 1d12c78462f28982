import Database from 'better-sqlite3';
import { fieldMatcher, fieldSelectorToString, parseFieldSelector, type FieldSelector } from '../api/fields.js';
import { matches, parseLabelSelector, selectorToString, type LabelSelector } from '../api/labels.js';
import { BUILTIN_RESOURCES, type ResourceDef } from '../api/resources.js';
import type { KubeList, KubeObject, WatchEvent } from '../api/types.js';

/**
 * EdgeHub's cache of what the cloud answered, kept per client component (the User-Agent up to its
 * first '/'), because each component sees the API with its own credentials and selectors.
 *
 * Lifecycle of an entry:
 *   - a GET answer is stored with `putObject` (a "direct" object);
 *   - a LIST answer is stored with `putList`: the list's membership is replaced atomically and its
 *     objects upserted; a list without selectors is authoritative for its namespace scope, so cached
 *     objects it no longer contains (deleted in the cloud, e.g. while offline) are pruned;
 *   - WATCH events that follow the list go through `applyWatchEvent`, which updates objects and the
 *     membership of the list with the same scope and selectors;
 *   - offline, `get` and `list` answer from what is stored. `list` answers only when a stored list
 *     covers the query (same or wider namespace, a subset of its selector terms); otherwise it returns
 *     undefined, never an empty list, because an empty pod list makes a node agent kill its pods.
 *
 * The same database holds the queue of writes accepted while offline (`absorbWrite`), written in one
 * transaction with the object as the local answer left it, and removed as each is replayed; and the
 * count of Events dropped from the bounded buffer, kept in the transaction that drops them so a
 * restart neither loses nor double-counts any.
 *
 * Objects are written only when newer than what is stored (resourceVersions compared as integers when
 * both are numeric). Every write is one SQLite transaction in a WAL database, so a crash at any point
 * leaves the previous or the next state.
 *
 * Durability differs by what is written. Cached answers commit without an fsync (synchronous NORMAL):
 * a power cut may take the last few back to an older, still consistent state, which the cloud can
 * answer again, and an fsync per answer would block the event loop of every proxied request. The
 * queue of writes accepted offline exists nowhere else, so its transactions (absorb, buffer, replay
 * done) commit with synchronous FULL: the WAL, earlier cached answers included, is fsynced before
 * the call returns.
 */

/**
 * Bumped when the table layout changes. A file of an older version this code knows how to upgrade is
 * upgraded in place, keeping its queued writes; any other is rebuilt (it is only a cache).
 */
const SCHEMA_VERSION = 2;
/** The `counters` row of Events dropped from the bounded buffer. */
const DROPPED_EVENTS = 'dropped_events';
/** How long a write waits for another connection's lock (e.g. a debugging shell) before failing. */
const BUSY_TIMEOUT_MS = 5_000;

/** Which component's view of which resource. */
export interface CacheScope {
  component: string;
  group: string;
  version: string;
  /** plural, e.g. "pods" */
  resource: string;
}

/** A list or watch query: the namespace ('' for all or cluster-scoped) and its selectors as sent. */
export interface ListQuery extends CacheScope {
  namespace: string;
  labelSelector?: string;
  fieldSelector?: string;
}

/** A write accepted locally while offline, replayed to the cloud in `seq` order on reconnect. */
export interface QueuedWrite {
  seq: number;
  component: string;
  group: string;
  version: string;
  resource: string;
  namespace: string;
  name: string;
  subresource: string;
  /** PUT or PATCH */
  method: string;
  path: string;
  contentType: string;
  body: string;
  userAgent: string;
}

export type NewWrite = Omit<QueuedWrite, 'seq'>;

export type Lookup = { kind: 'hit'; object: KubeObject } | { kind: 'absent' } | { kind: 'unknown' };

interface ObjectRow {
  namespace: string;
  name: string;
  rv: string;
  direct: number;
  json: string;
}

interface WriteRow {
  seq: number;
  component: string;
  grp: string;
  version: string;
  resource: string;
  namespace: string;
  name: string;
  subresource: string;
  method: string;
  path: string;
  content_type: string;
  body: string;
  user_agent: string;
}

interface ListRow {
  namespace: string;
  selector: string;
  labels: string;
  fields: string;
  rv: string;
  kind: string;
  api_version: string;
}

export class EdgeCache {
  private readonly sql: ReturnType<typeof prepare>;
  private readonly txPutObject: (scope: CacheScope, obj: KubeObject, direct: boolean) => boolean;
  private readonly txPutList: (query: ListQuery, list: KubeList) => void;
  private readonly txApplyWatchEvent: (query: ListQuery, event: WatchEvent) => boolean;
  private readonly txAbsorb: (write: NewWrite, result: KubeObject) => number;
  private readonly txBufferEvent: (write: NewWrite, max: number) => number;

  private constructor(private readonly db: Database.Database) {
    this.sql = prepare(db);
    this.txPutObject = db.transaction((scope: CacheScope, obj: KubeObject, direct: boolean) => this.upsert(scope, obj, direct)).immediate;
    this.txPutList = db.transaction((query: ListQuery, list: KubeList) => this.replaceList(query, list)).immediate;
    this.txApplyWatchEvent = db.transaction((query: ListQuery, event: WatchEvent) => this.applyEvent(query, event)).immediate;
    this.txAbsorb = db.transaction((write: NewWrite, result: KubeObject) => {
      const target = { ...scopeParams(write), namespace: write.namespace, name: write.name };
      // A full replacement makes earlier replacements of the same object moot; patches are kept in order.
      if (write.method === 'PUT') this.sql.dropQueuedPuts.run({ ...target, subresource: write.subresource });
      this.sql.putObject.run({ ...target, rv: result.metadata.resourceVersion ?? '', direct: 1, json: JSON.stringify(result) });
      return this.enqueue(write);
    }).immediate;
    this.txBufferEvent = db.transaction((write: NewWrite, max: number) => {
      this.enqueue(write);
      const dropped = this.sql.dropOldEvents.run({ max }).changes;
      if (dropped > 0) this.sql.addToCounter.run({ name: DROPPED_EVENTS, n: dropped });
      return dropped;
    }).immediate;
  }

  /** Opens (creating if needed) the cache at `path`; ':memory:' gives a private one. */
  static open(path: string): EdgeCache {
    const db = new Database(path);
    try {
      db.pragma('journal_mode = WAL');
      // FULL while migrating: an upgrade carries the queued writes over.
      db.pragma('synchronous = FULL');
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      migrate(db);
      db.pragma('synchronous = NORMAL');
      return new EdgeCache(db);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  close(): void {
    this.db.close();
  }

  /** Stores a GET answer; returns whether it was newer than what was stored. */
  putObject(scope: CacheScope, obj: KubeObject): boolean {
    return this.txPutObject(scope, obj, true);
  }

  /** Stores a complete (unpaginated) LIST answer for `query`. */
  putList(query: ListQuery, list: KubeList): void {
    this.txPutList(normalize(query), list);
  }

  /** Applies one event of a watch made with `query`; returns whether anything changed. */
  applyWatchEvent(query: ListQuery, event: WatchEvent): boolean {
    if (event.type !== 'ADDED' && event.type !== 'MODIFIED' && event.type !== 'DELETED') return false;
    return this.txApplyWatchEvent(normalize(query), event);
  }

  /** A cached object; 'absent' when an unselected list covering its namespace does not hold it. */
  get(scope: CacheScope, namespace: string, name: string): Lookup {
    const row = this.sql.getObject.get({ ...scopeParams(scope), namespace, name }) as ObjectRow | undefined;
    if (row) return { kind: 'hit', object: JSON.parse(row.json) as KubeObject };
    const lists = this.sql.listsFor.all({ ...scopeParams(scope), namespace }) as ListRow[];
    return lists.some((l) => l.labels === '' && l.fields === '') ? { kind: 'absent' } : { kind: 'unknown' };
  }

  /**
   * The answer to a LIST from cache, selectors applied, or undefined when no stored list covers the
   * query. Throws a 400 ApiError for a selector the API server would reject.
   */
  list(query: ListQuery): KubeList | undefined {
    const q = normalize(query);
    const labels = parseLabelSelector(q.labelSelector ?? '');
    const fields = parseFieldSelector(q.fieldSelector ?? '');
    const fieldMatch = fieldMatcher(resourceDef(q), fields);
    let best: ListRow | undefined;
    for (const l of this.sql.listsFor.all({ ...scopeParams(q), namespace: q.namespace }) as ListRow[]) {
      if (!covers(l, labels, fields)) continue;
      if (!best || newer(l.rv, best.rv)) best = l;
    }
    if (!best) return undefined;
    const rows = this.sql.members.all({ ...scopeParams(q), scope: best.namespace, selector: best.selector }) as ObjectRow[];
    let rv = best.rv;
    const items: KubeObject[] = [];
    for (const row of rows) {
      const obj = JSON.parse(row.json) as KubeObject;
      if (q.namespace && row.namespace !== q.namespace) continue;
      if (!matches(labels, obj.metadata.labels) || !fieldMatch(obj)) continue;
      items.push(obj);
      if (newer(row.rv, rv)) rv = row.rv;
    }
    return { apiVersion: best.api_version, kind: best.kind, metadata: { resourceVersion: rv }, items };
  }

  /**
   * Records a write accepted while offline: the object as the local answer left it, and the request to
   * replay, in one transaction. Returns the write's position in the queue.
   */
  absorbWrite(write: NewWrite, result: KubeObject): number {
    return this.durably(() => this.txAbsorb(write, result));
  }

  /**
   * Queues an Event created while offline, keeping at most `max` queued Events: the oldest beyond that
   * are dropped, and added to `droppedEvents()`. Returns how many were dropped.
   */
  bufferEvent(write: NewWrite, max: number): number {
    return this.durably(() => this.txBufferEvent(write, max));
  }

  /** Forgets an object the cloud answered 404 for. */
  forget(scope: CacheScope, namespace: string, name: string): void {
    this.db.transaction(() => this.remove(scope, namespace, name)).immediate();
  }

  /** Queued writes, oldest first. */
  queuedWrites(): QueuedWrite[] {
    return (this.sql.queued.all() as WriteRow[]).map((r) => ({
      seq: r.seq, component: r.component, group: r.grp, version: r.version, resource: r.resource, namespace: r.namespace, name: r.name,
      subresource: r.subresource, method: r.method, path: r.path, contentType: r.content_type, body: r.body, userAgent: r.user_agent,
    }));
  }

  /** Whether writes to this object still wait for replay, so a new one must queue behind them. */
  hasQueuedWrite(scope: CacheScope, namespace: string, name: string): boolean {
    return this.sql.queuedFor.get({ ...scopeParams(scope), namespace, name }) !== undefined;
  }

  queueDepth(): number {
    return (this.sql.queueDepth.get() as { n: number }).n;
  }

  /** Events dropped from the bounded buffer over the cache's whole life, across restarts. */
  droppedEvents(): number {
    return (this.sql.counter.get(DROPPED_EVENTS) as { value: number } | undefined)?.value ?? 0;
  }

  /** Removes a replayed (or abandoned) write and stores the cloud's answer, if any, in one transaction. */
  completeWrite(write: QueuedWrite, answer?: KubeObject): void {
    this.durably(() =>
      this.db.transaction(() => {
        this.sql.dequeue.run(write.seq);
        if (answer) this.upsert(write, answer, true);
      }).immediate(),
    );
  }

  /**
   * Runs one transaction of the offline queue with synchronous FULL, so it is on disk when this
   * returns. SQLite takes the setting only outside a transaction, hence around it rather than inside,
   * and applies it when the pragma is compiled, so it is not a statement prepared once.
   */
  private durably<T>(tx: () => T): T {
    this.db.pragma('synchronous = FULL');
    try {
      return tx();
    } finally {
      this.db.pragma('synchronous = NORMAL');
    }
  }

  private enqueue(write: NewWrite): number {
    const row = {
      ...scopeParams(write), namespace: write.namespace, name: write.name, subresource: write.subresource, method: write.method,
      path: write.path, content_type: write.contentType, body: write.body, user_agent: write.userAgent,
    };
    return Number(this.sql.enqueue.run(row).lastInsertRowid);
  }

  private upsert(scope: CacheScope, obj: KubeObject, direct: boolean): boolean {
    const namespace = obj.metadata.namespace ?? '';
    const name = obj.metadata.name ?? '';
    const rv = obj.metadata.resourceVersion ?? '';
    const old = this.sql.getObject.get({ ...scopeParams(scope), namespace, name }) as ObjectRow | undefined;
    if (old && !newer(rv, old.rv)) {
      if (direct && !old.direct) this.sql.markDirect.run({ ...scopeParams(scope), namespace, name });
      return false;
    }
    this.sql.putObject.run({ ...scopeParams(scope), namespace, name, rv, direct: direct || old?.direct ? 1 : 0, json: JSON.stringify(obj) });
    return true;
  }

  private replaceList(q: ListQuery, list: KubeList): void {
    const params = scopeParams(q);
    const listKey = { ...params, scope: q.namespace, selector: selectorKey(q) };
    const rv = list.metadata.resourceVersion ?? '';
    const itemKind = list.kind.replace(/List$/, '');
    const old = new Set((this.sql.memberKeys.all(listKey) as { namespace: string; name: string }[]).map(key));
    this.sql.clearMembers.run(listKey);
    this.sql.putList.run({ ...listKey, labels: q.labelSelector ?? '', fields: q.fieldSelector ?? '', rv, kind: list.kind, api_version: list.apiVersion });
    const current = new Set<string>();
    for (const item of list.items) {
      const obj: KubeObject = { apiVersion: list.apiVersion, kind: itemKind, ...item };
      this.upsert(q, obj, false);
      const member = { ...listKey, namespace: obj.metadata.namespace ?? '', name: obj.metadata.name ?? '' };
      this.sql.addMember.run(member);
      current.add(key(member));
    }
    if (!q.labelSelector && !q.fieldSelector) {
      // Authoritative for the scope: what it lacks is gone from the cloud, unless written after it.
      for (const row of this.sql.objectsIn.all({ ...params, namespace: q.namespace }) as ObjectRow[]) {
        if (!current.has(key(row)) && !newer(row.rv, rv)) this.remove(q, row.namespace, row.name);
      }
    } else {
      for (const k of old) {
        if (current.has(k)) continue;
        const [namespace, name] = splitKey(k);
        this.pruneIfUnreferenced(q, namespace, name);
      }
    }
  }

  private applyEvent(q: ListQuery, event: WatchEvent): boolean {
    const obj = event.object;
    const namespace = obj.metadata.namespace ?? '';
    const name = obj.metadata.name ?? '';
    const rv = obj.metadata.resourceVersion ?? '';
    const params = scopeParams(q);
    const listKey = { ...params, scope: q.namespace, selector: selectorKey(q) };
    const list = this.sql.getList.get(listKey) as ListRow | undefined;
    const old = this.sql.getObject.get({ ...params, namespace, name }) as ObjectRow | undefined;
    if (old && !newer(rv, old.rv)) return false;
    if (list && newer(rv, list.rv)) this.sql.setListRv.run({ ...listKey, rv });
    if (event.type === 'DELETED') {
      if (!q.labelSelector && !q.fieldSelector) {
        this.remove(q, namespace, name);
      } else {
        // In a selected watch DELETED may only mean "no longer matches": keep the object for other lists.
        this.sql.removeMember.run({ ...listKey, namespace, name });
        if (old) this.upsert(q, obj, false);
        this.pruneIfUnreferenced(q, namespace, name);
      }
      return true;
    }
    this.upsert(q, obj, false);
    if (list) this.sql.addMember.run({ ...listKey, namespace, name });
    return true;
  }

  private remove(scope: CacheScope, namespace: string, name: string): void {
    const p = { ...scopeParams(scope), namespace, name };
    this.sql.deleteObject.run(p);
    this.sql.deleteMemberships.run(p);
  }

  private pruneIfUnreferenced(scope: CacheScope, namespace: string, name: string): void {
    const p = { ...scopeParams(scope), namespace, name };
    const row = this.sql.getObject.get(p) as ObjectRow | undefined;
    if (row && !row.direct && !this.sql.referenced.get(p)) this.sql.deleteObject.run(p);
  }
}

/** Whether `obj` belongs in the answer to `query` (namespace and selectors); throws 400 for a bad selector. */
export function queryMatches(query: ListQuery, obj: KubeObject): boolean {
  if (query.namespace && obj.metadata.namespace !== query.namespace) return false;
  const fields = fieldMatcher(resourceDef(query), parseFieldSelector(query.fieldSelector ?? ''));
  return matches(parseLabelSelector(query.labelSelector ?? ''), obj.metadata.labels) && fields(obj);
}

/** True when `a` is a later resourceVersion than `b`: integers when both are numeric, else any change. */
export function newer(a: string, b: string | undefined): boolean {
  if (b === undefined) return true;
  if (/^\d+$/.test(a) && /^\d+$/.test(b)) return BigInt(a) > BigInt(b);
  return a !== b;
}

/** The client component a request belongs to: its User-Agent up to the first '/'. */
export function componentOf(userAgent: string | undefined): string {
  const c = (userAgent ?? '').split('/')[0]!.trim();
  return c || 'unknown';
}

function normalize(q: ListQuery): ListQuery {
  return {
    ...q,
    labelSelector: selectorToString(parseLabelSelector(q.labelSelector ?? '')),
    fieldSelector: fieldSelectorToString(parseFieldSelector(q.fieldSelector ?? '')),
  };
}

function selectorKey(q: ListQuery): string {
  return `${q.labelSelector ?? ''}|${q.fieldSelector ?? ''}`;
}

/** A stored list covers a query when every one of its selector terms is also one of the query's. */
function covers(l: ListRow, labels: LabelSelector, fields: FieldSelector): boolean {
  const have = (terms: readonly unknown[]) => new Set(terms.map((t) => JSON.stringify(t)));
  const ql = have(labels.requirements);
  const qf = have(fields.requirements);
  return (
    parseLabelSelector(l.labels).requirements.every((r) => ql.has(JSON.stringify(r))) &&
    parseFieldSelector(l.fields).requirements.every((r) => qf.has(JSON.stringify(r)))
  );
}

/** Built-in resources know their extra field selectors; others support metadata.name/namespace only. */
function resourceDef(scope: CacheScope): ResourceDef {
  const def = BUILTIN_RESOURCES.find((d) => d.group === scope.group && d.version === scope.version && d.plural === scope.resource);
  return def ?? ({ group: scope.group, version: scope.version, plural: scope.resource } as ResourceDef);
}

function scopeParams(s: CacheScope) {
  return { component: s.component, grp: s.group, version: s.version, resource: s.resource };
}

function key(o: { namespace: string; name: string }): string {
  return `${o.namespace}/${o.name}`;
}

function splitKey(k: string): [string, string] {
  const i = k.indexOf('/');
  return [k.slice(0, i), k.slice(i + 1)];
}

const COUNTERS_TABLE = 'CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID';

function migrate(db: Database.Database): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version === SCHEMA_VERSION) return;
  if (version === 1) {
    // Version 1 lacked only the counters.
    db.transaction(() => db.exec(`${COUNTERS_TABLE}; PRAGMA user_version = ${SCHEMA_VERSION};`)).immediate();
    return;
  }
  db.transaction(() => {
    db.exec(`
      DROP TABLE IF EXISTS objects;
      DROP TABLE IF EXISTS lists;
      DROP TABLE IF EXISTS members;
      DROP TABLE IF EXISTS writes;
      DROP TABLE IF EXISTS counters;
      CREATE TABLE objects (
        component TEXT NOT NULL, grp TEXT NOT NULL, version TEXT NOT NULL, resource TEXT NOT NULL,
        namespace TEXT NOT NULL, name TEXT NOT NULL, rv TEXT NOT NULL, direct INTEGER NOT NULL, json TEXT NOT NULL,
        PRIMARY KEY (component, grp, version, resource, namespace, name)
      ) WITHOUT ROWID;
      CREATE TABLE lists (
        component TEXT NOT NULL, grp TEXT NOT NULL, version TEXT NOT NULL, resource TEXT NOT NULL,
        namespace TEXT NOT NULL, selector TEXT NOT NULL, labels TEXT NOT NULL, fields TEXT NOT NULL,
        rv TEXT NOT NULL, kind TEXT NOT NULL, api_version TEXT NOT NULL,
        PRIMARY KEY (component, grp, version, resource, namespace, selector)
      ) WITHOUT ROWID;
      CREATE TABLE members (
        component TEXT NOT NULL, grp TEXT NOT NULL, version TEXT NOT NULL, resource TEXT NOT NULL,
        scope TEXT NOT NULL, selector TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
        PRIMARY KEY (component, grp, version, resource, scope, selector, namespace, name)
      ) WITHOUT ROWID;
      CREATE TABLE writes (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        component TEXT NOT NULL, grp TEXT NOT NULL, version TEXT NOT NULL, resource TEXT NOT NULL,
        namespace TEXT NOT NULL, name TEXT NOT NULL, subresource TEXT NOT NULL, method TEXT NOT NULL,
        path TEXT NOT NULL, content_type TEXT NOT NULL, body TEXT NOT NULL, user_agent TEXT NOT NULL
      );
      CREATE INDEX members_object ON members (component, grp, version, resource, namespace, name);
      ${COUNTERS_TABLE};
      PRAGMA user_version = ${SCHEMA_VERSION};
    `);
  }).immediate();
}

function prepare(db: Database.Database) {
  const scope = 'component = @component AND grp = @grp AND version = @version AND resource = @resource';
  const list = `${scope} AND scope = @scope AND selector = @selector`;
  return {
    getObject: db.prepare(`SELECT namespace, name, rv, direct, json FROM objects WHERE ${scope} AND namespace = @namespace AND name = @name`),
    putObject: db.prepare(`INSERT OR REPLACE INTO objects (component, grp, version, resource, namespace, name, rv, direct, json)
      VALUES (@component, @grp, @version, @resource, @namespace, @name, @rv, @direct, @json)`),
    markDirect: db.prepare(`UPDATE objects SET direct = 1 WHERE ${scope} AND namespace = @namespace AND name = @name`),
    deleteObject: db.prepare(`DELETE FROM objects WHERE ${scope} AND namespace = @namespace AND name = @name`),
    objectsIn: db.prepare(`SELECT namespace, name, rv, direct, json FROM objects WHERE ${scope} AND (@namespace = '' OR namespace = @namespace)`),
    getList: db.prepare(`SELECT namespace, selector, labels, fields, rv, kind, api_version FROM lists
      WHERE ${scope} AND namespace = @scope AND selector = @selector`),
    listsFor: db.prepare(`SELECT namespace, selector, labels, fields, rv, kind, api_version FROM lists
      WHERE ${scope} AND (namespace = '' OR namespace = @namespace)`),
    putList: db.prepare(`INSERT OR REPLACE INTO lists (component, grp, version, resource, namespace, selector, labels, fields, rv, kind, api_version)
      VALUES (@component, @grp, @version, @resource, @scope, @selector, @labels, @fields, @rv, @kind, @api_version)`),
    setListRv: db.prepare(`UPDATE lists SET rv = @rv WHERE ${scope} AND namespace = @scope AND selector = @selector`),
    memberKeys: db.prepare(`SELECT namespace, name FROM members WHERE ${list}`),
    members: db.prepare(`SELECT o.namespace, o.name, o.rv, o.direct, o.json FROM members AS m JOIN objects AS o
      ON o.component = m.component AND o.grp = m.grp AND o.version = m.version AND o.resource = m.resource
        AND o.namespace = m.namespace AND o.name = m.name
      WHERE m.component = @component AND m.grp = @grp AND m.version = @version AND m.resource = @resource
        AND m.scope = @scope AND m.selector = @selector
      ORDER BY o.namespace, o.name`),
    clearMembers: db.prepare(`DELETE FROM members WHERE ${list}`),
    addMember: db.prepare(`INSERT OR IGNORE INTO members (component, grp, version, resource, scope, selector, namespace, name)
      VALUES (@component, @grp, @version, @resource, @scope, @selector, @namespace, @name)`),
    removeMember: db.prepare(`DELETE FROM members WHERE ${list} AND namespace = @namespace AND name = @name`),
    deleteMemberships: db.prepare(`DELETE FROM members WHERE ${scope} AND namespace = @namespace AND name = @name`),
    enqueue: db.prepare(`INSERT INTO writes (component, grp, version, resource, namespace, name, subresource, method, path, content_type, body, user_agent)
      VALUES (@component, @grp, @version, @resource, @namespace, @name, @subresource, @method, @path, @content_type, @body, @user_agent)`),
    dropQueuedPuts: db.prepare(`DELETE FROM writes WHERE ${scope} AND namespace = @namespace AND name = @name AND subresource = @subresource AND method = 'PUT'`),
    queued: db.prepare('SELECT * FROM writes ORDER BY seq'),
    queuedFor: db.prepare(`SELECT 1 FROM writes WHERE ${scope} AND namespace = @namespace AND name = @name LIMIT 1`),
    queueDepth: db.prepare('SELECT count(*) AS n FROM writes'),
    dequeue: db.prepare('DELETE FROM writes WHERE seq = ?'),
    dropOldEvents: db.prepare(`DELETE FROM writes WHERE seq IN (
      SELECT seq FROM writes WHERE resource = 'events' AND method = 'POST' ORDER BY seq DESC LIMIT -1 OFFSET @max)`),
    counter: db.prepare('SELECT value FROM counters WHERE name = ?'),
    addToCounter: db.prepare(`INSERT INTO counters (name, value) VALUES (@name, @n)
      ON CONFLICT (name) DO UPDATE SET value = value + excluded.value`),
    referenced: db.prepare(`SELECT 1 FROM members WHERE ${scope} AND namespace = @namespace AND name = @name LIMIT 1`),
  };
}
