import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import type { KubeObject } from '../api/types.js';
import { SqliteStore } from './sqlite.js';
import { StoreError, type StoreEvent } from './store.js';
import { storeSuite } from './suite.js';

const dir = mkdtempSync(join(tmpdir(), 'atoll-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
const freshFile = () => join(dir, `state-${++files}.db`);

function pod(name: string): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'ns' }, spec: { nodeName: 'edge-1' } };
}

const key = (name: string) => `/registry/core/pods/ns/${name}`;

/** Reads the database file the way an operator's sqlite3 shell would, beside the open store. */
function inspect<T>(path: string, read: (db: Database.Database) => T): T {
  const db = new Database(path, { readonly: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

storeSuite('SqliteStore in memory', async () => SqliteStore.open(':memory:'));
storeSuite('SqliteStore on a file', async () => SqliteStore.open(freshFile()));

describe('SqliteStore', () => {
  it('starts at revision 0 with nothing compacted', async () => {
    const store = SqliteStore.open(':memory:');
    assert.equal(await store.revision(), 0);
    assert.equal(await store.compactedRevision(), 0);
    assert.deepEqual(await store.list('/registry/'), { items: [], revision: 0, more: false });
    await store.close();
  });

  it('keeps data, revisions and the compacted mark across a reopen', async () => {
    const path = freshFile();
    const first = SqliteStore.open(path);
    const a = await first.create(key('a'), pod('a'));
    await first.update(key('a'), pod('a'), a.modRevision);
    await first.create(key('b'), pod('b'));
    const gone = await first.delete(key('b'));
    await first.compact(gone.modRevision);
    await first.close();

    const second = SqliteStore.open(path);
    assert.equal(await second.revision(), gone.modRevision);
    assert.equal(await second.compactedRevision(), gone.modRevision);
    assert.deepEqual(
      (await second.list('/registry/')).items.map((item) => [item.key, item.modRevision]),
      [[key('a'), a.modRevision + 1]],
    );
    await assert.rejects(second.list('/registry/', { revision: a.modRevision }), StoreError);
    const c = await second.create(key('c'), pod('c'));
    assert.equal(c.modRevision, gone.modRevision + 1);
    await second.close();
  });

  it('runs in WAL mode', async () => {
    const path = freshFile();
    const store = SqliteStore.open(path);
    await store.create(key('a'), pod('a'));
    assert.equal(inspect(path, (db) => db.pragma('journal_mode', { simple: true })), 'wal');
    await store.close();
  });

  it('keeps resourceVersion out of the stored JSON', async () => {
    const path = freshFile();
    const store = SqliteStore.open(path);
    const input = pod('a');
    input.metadata.resourceVersion = '12345';
    await store.create(key('a'), input);
    const stored = inspect(path, (db) => db.prepare('SELECT value FROM log').pluck().get() as string);
    assert.deepEqual(JSON.parse(stored), pod('a'));
    await store.close();
  });

  it('removes superseded rows and deleted keys from the file when compacting', async () => {
    const path = freshFile();
    const store = SqliteStore.open(path);
    const a = await store.create(key('a'), pod('a'));
    await store.update(key('a'), pod('a'), a.modRevision);
    await store.create(key('b'), pod('b'));
    const bGone = await store.delete(key('b'));
    await store.create(key('c'), pod('c'));
    const rows = () => inspect(path, (db) => db.prepare('SELECT rev, key FROM log ORDER BY rev').all());

    await store.compact(bGone.modRevision);
    assert.deepEqual(rows(), [
      { rev: a.modRevision + 1, key: key('a') },
      { rev: bGone.modRevision + 1, key: key('c') },
    ]);
    await store.compact(bGone.modRevision - 1);
    assert.equal(await store.compactedRevision(), bGone.modRevision);
    await store.close();
  });

  it('compacts all but the newest revisions, by default the history limit', async () => {
    const store = SqliteStore.open(':memory:', { historyLimit: 10 });
    for (let i = 0; i < 30; i++) await store.create(key(`p${i}`), pod(`p${i}`));
    await store.compactOlderThan();
    assert.equal(await store.compactedRevision(), 20);
    await store.compactOlderThan(5);
    assert.equal(await store.compactedRevision(), 25);
    await store.compactOlderThan(100);
    assert.equal(await store.compactedRevision(), 25);
    await store.close();
  });

  it('compacts on a timer until its signal aborts', async () => {
    const store = SqliteStore.open(':memory:', { historyLimit: 2 });
    for (let i = 0; i < 10; i++) await store.create(key(`p${i}`), pod(`p${i}`));
    const stop = new AbortController();
    store.compactPeriodically(stop.signal, 5);
    const deadline = Date.now() + 2_000;
    while ((await store.compactedRevision()) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(await store.compactedRevision(), 8);
    stop.abort();
    for (let i = 10; i < 20; i++) await store.create(key(`p${i}`), pod(`p${i}`));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(await store.compactedRevision(), 8);
    await store.close();
  });

  it('fails a watch whose history is compacted while it replays', async () => {
    const store = SqliteStore.open(':memory:');
    for (let i = 0; i < 2_000; i++) await store.create(key(`p${i}`), pod(`p${i}`));
    const received: StoreEvent[] = [];
    let compacting: Promise<void> | undefined;
    const watching = store.watch(
      '/registry/',
      0,
      (event) => {
        received.push(event);
        if (received.length === 1) compacting = store.compact(1_500);
      },
      new AbortController().signal,
    );
    await assert.rejects(watching, (err: unknown) => err instanceof StoreError && err.code === 'compacted');
    await compacting;
    assert.deepEqual(
      received.map((event) => event.revision),
      Array.from(received, (_, i) => i + 1),
    );
    await store.close();
  });

  it('refuses revisions from the future', async () => {
    const store = SqliteStore.open(':memory:');
    await store.create(key('a'), pod('a'));
    await assert.rejects(store.list('/registry/', { revision: 2 }), RangeError);
    await assert.rejects(store.compact(2), RangeError);
    await store.close();
  });

  it('refuses a file with an unknown schema version', async () => {
    const path = freshFile();
    const db = new Database(path);
    db.pragma('user_version = 99');
    db.close();
    assert.throws(() => SqliteStore.open(path), /schema version 99/);
  });

  it('creates at a raw rate far above what the API server needs', async (t) => {
    const store = SqliteStore.open(freshFile());
    const creates = 20_000;
    const started = process.hrtime.bigint();
    for (let i = 0; i < creates; i++) await store.create(key(`p${i}`), pod(`p${i}`));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    t.diagnostic(`${creates} creates on a file in ${seconds.toFixed(2)} s: ${Math.round(creates / seconds)}/s`);
    assert.equal(await store.count('/registry/core/pods/ns/'), creates);
    await store.close();
  });
});
