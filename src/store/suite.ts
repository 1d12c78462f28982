import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { KubeObject } from '../api/types.js';
import { StoreError, type Store, type StoredObject, type StoreErrorCode, type StoreEvent } from './store.js';

/** How long a test waits for watch events an asynchronous store may still be delivering. */
const DELIVERY_TIMEOUT_MS = 2_000;
/** How long a test waits to be confident that an event which must not come did not come. */
const QUIET_MS = 30;
/** Enough history that a store replaying it in pages needs several of them. */
const LONG_HISTORY = 1_500;

const PODS = '/registry/core/pods/';

function podKey(namespace: string, name: string): string {
  return `${PODS}${namespace}/${name}`;
}

function pod(namespace: string, name: string, image = 'busybox'): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: name } },
    spec: { containers: [{ name: 'main', image }] },
  };
}

function imageOf(object: KubeObject): string {
  return (object.spec as { containers: { image: string }[] }).containers[0]!.image;
}

async function rejectsWith(promise: Promise<unknown>, code: StoreErrorCode, revision?: number): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof StoreError, `expected a StoreError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (revision !== undefined) assert.equal(err.revision, revision);
    return true;
  });
}

async function until(done: () => boolean, timeoutMs = DELIVERY_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
}

const quiet = () => new Promise((resolve) => setTimeout(resolve, QUIET_MS));

function revisions(events: StoreEvent[]): number[] {
  return events.map((event) => event.revision);
}

function keys(items: StoredObject[]): string[] {
  return items.map((item) => item.key);
}

/**
 * The cases every Store implementation must pass. `open` returns a fresh, empty store for each case;
 * `close` releases it (default: `store.close()`).
 */
export function storeSuite(
  name: string,
  open: () => Promise<Store>,
  close: (store: Store) => Promise<void> = (store) => store.close(),
): void {
  describe(name, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await close(store);
    });

    describe('writes', () => {
      it('gives a create the next revision as both create and mod revision', async () => {
        const before = await store.revision();
        const created = await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        assert.equal(created.key, podKey('ns', 'a'));
        assert.equal(created.createRevision, before + 1);
        assert.equal(created.modRevision, before + 1);
        assert.equal(created.object.metadata.resourceVersion, String(before + 1));
        assert.equal(await store.revision(), before + 1);
        assert.deepEqual(await store.get(podKey('ns', 'a')), created);
        assert.equal(await store.get(podKey('ns', 'b')), undefined);
      });

      it("refuses to create a live key with 'exists' and spends no revision", async () => {
        const created = await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        await rejectsWith(store.create(podKey('ns', 'a'), pod('ns', 'a', 'nginx')), 'exists');
        assert.equal(await store.revision(), created.modRevision);
        assert.equal(imageOf((await store.get(podKey('ns', 'a')))!.object), 'busybox');
      });

      it('starts a new life for a key created again after a delete', async () => {
        await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        await store.delete(podKey('ns', 'a'));
        const again = await store.create(podKey('ns', 'a'), pod('ns', 'a', 'nginx'));
        assert.equal(again.createRevision, again.modRevision);
        assert.equal(again.createRevision, await store.revision());
        assert.equal(imageOf(again.object), 'nginx');
      });

      it('updates by compare-and-swap on modRevision', async () => {
        const created = await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        const updated = await store.update(podKey('ns', 'a'), pod('ns', 'a', 'nginx'), created.modRevision);
        assert.equal(updated.modRevision, created.modRevision + 1);
        assert.equal(updated.createRevision, created.createRevision);
        assert.equal(updated.object.metadata.resourceVersion, String(updated.modRevision));
        assert.equal(imageOf(updated.object), 'nginx');

        await rejectsWith(
          store.update(podKey('ns', 'a'), pod('ns', 'a', 'redis'), created.modRevision),
          'conflict',
          updated.modRevision,
        );
        assert.deepEqual(await store.get(podKey('ns', 'a')), updated);
        assert.equal(await store.revision(), updated.modRevision);
      });

      it('reads a write that was accepted before the read, so read-modify-write does not conflict with it', async () => {
        const created = await store.create(podKey('ns', 'rmw'), pod('ns', 'rmw'));
        const first = store.update(podKey('ns', 'rmw'), pod('ns', 'rmw', 'nginx'), created.modRevision);
        const read = await store.get(podKey('ns', 'rmw'));
        assert.equal(read?.modRevision, (await first).modRevision);
        const second = await store.update(podKey('ns', 'rmw'), pod('ns', 'rmw', 'redis'), read!.modRevision);
        assert.equal(imageOf(second.object), 'redis');
      });

      it("fails to update an absent or deleted key with 'notfound'", async () => {
        await rejectsWith(store.update(podKey('ns', 'missing'), pod('ns', 'missing'), 1), 'notfound');
        const created = await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        const deleted = await store.delete(podKey('ns', 'a'));
        await rejectsWith(store.update(podKey('ns', 'a'), pod('ns', 'a'), created.modRevision), 'notfound');
        await rejectsWith(store.update(podKey('ns', 'a'), pod('ns', 'a'), deleted.modRevision), 'notfound');
        assert.equal(await store.revision(), deleted.modRevision);
      });

      it('deletes a key and returns its last value stamped with the delete revision', async () => {
        const created = await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        const updated = await store.update(podKey('ns', 'a'), pod('ns', 'a', 'nginx'), created.modRevision);
        const deleted = await store.delete(podKey('ns', 'a'));
        assert.equal(deleted.key, podKey('ns', 'a'));
        assert.equal(deleted.modRevision, updated.modRevision + 1);
        assert.equal(deleted.createRevision, created.createRevision);
        assert.equal(deleted.object.metadata.resourceVersion, String(deleted.modRevision));
        assert.equal(imageOf(deleted.object), 'nginx');
        assert.equal(await store.get(podKey('ns', 'a')), undefined);
        await rejectsWith(store.delete(podKey('ns', 'a')), 'notfound');
        await rejectsWith(store.delete(podKey('ns', 'never')), 'notfound');
        assert.equal(await store.revision(), deleted.modRevision);
      });

      it('deletes with expectedModRevision only when the key has not moved on', async () => {
        const created = await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        const updated = await store.update(podKey('ns', 'a'), pod('ns', 'a', 'nginx'), created.modRevision);
        await rejectsWith(store.delete(podKey('ns', 'a'), created.modRevision), 'conflict', updated.modRevision);
        assert.deepEqual(await store.get(podKey('ns', 'a')), updated);
        const deleted = await store.delete(podKey('ns', 'a'), updated.modRevision);
        assert.equal(deleted.modRevision, updated.modRevision + 1);
        assert.equal(await store.get(podKey('ns', 'a')), undefined);
      });

      it('grows the revision by exactly one per write across many writes', async () => {
        let last = await store.revision();
        const live = new Map<string, number>();
        for (let i = 0; i < 300; i++) {
          const key = podKey('ns', `p${i % 17}`);
          const mod = live.get(key);
          let result: StoredObject;
          if (mod === undefined) result = await store.create(key, pod('ns', `p${i % 17}`));
          else if (i % 3 === 0) result = await store.delete(key, mod);
          else result = await store.update(key, pod('ns', `p${i % 17}`, `image-${i}`), mod);
          assert.equal(result.modRevision, last + 1, `write ${i}`);
          last = result.modRevision;
          if (i % 3 === 0 && mod !== undefined) live.delete(key);
          else live.set(key, result.modRevision);
        }
        assert.equal(await store.revision(), last);
        assert.equal(await store.count(PODS), live.size);
        const listed = await store.list(PODS);
        assert.deepEqual(
          listed.items.map((item) => [item.key, item.modRevision]),
          [...live].sort(([a], [b]) => (a < b ? -1 : 1)),
        );
      });
    });

    describe('stamping', () => {
      it('stamps resourceVersion from the revision, never from the stored value', async () => {
        const input = pod('ns', 'a');
        input.metadata.resourceVersion = '12345';
        const created = await store.create(podKey('ns', 'a'), input);
        assert.equal(created.object.metadata.resourceVersion, String(created.modRevision));
        const stale = pod('ns', 'a', 'nginx');
        stale.metadata.resourceVersion = '1';
        const updated = await store.update(podKey('ns', 'a'), stale, created.modRevision);
        assert.equal(updated.object.metadata.resourceVersion, String(updated.modRevision));
        assert.equal((await store.get(podKey('ns', 'a')))!.object.metadata.resourceVersion, String(updated.modRevision));
        const [item] = (await store.list(PODS)).items;
        assert.equal(item!.object.metadata.resourceVersion, String(updated.modRevision));
      });

      it('keeps stored state apart from objects handed in or out', async () => {
        const input = pod('ns', 'a');
        const created = await store.create(podKey('ns', 'a'), input);
        (input.spec as { containers: { image: string }[] }).containers[0]!.image = 'changed-input';
        input.metadata.labels!['app'] = 'changed-input';
        (created.object.spec as { containers: { image: string }[] }).containers[0]!.image = 'changed-result';
        created.object.metadata.resourceVersion = '999';

        const got = (await store.get(podKey('ns', 'a')))!;
        assert.equal(imageOf(got.object), 'busybox');
        assert.equal(got.object.metadata.labels!['app'], 'a');
        assert.equal(got.object.metadata.resourceVersion, String(created.modRevision));
        got.object.metadata.name = 'changed-get';
        (await store.list(PODS)).items[0]!.object.metadata.name = 'changed-list';
        const [event] = await store.events(PODS, 0);
        event!.object.metadata.name = 'changed-event';

        assert.equal((await store.get(podKey('ns', 'a')))!.object.metadata.name, 'a');
        assert.equal((await store.list(PODS)).items[0]!.object.metadata.name, 'a');
        assert.equal((await store.events(PODS, 0))[0]!.object.metadata.name, 'a');
      });
    });

    describe('list and count', () => {
      it('matches only keys under the prefix, in key order', async () => {
        await store.create(podKey('ns1', 'b'), pod('ns1', 'b'));
        await store.create(podKey('ns10', 'a'), pod('ns10', 'a'));
        await store.create(podKey('ns1', 'a'), pod('ns1', 'a'));
        await store.create(podKey('ns2', 'c'), pod('ns2', 'c'));
        await store.create('/registry/core/podtemplates/ns1/a', pod('ns1', 'a'));

        const ns1 = await store.list(podKey('ns1', ''));
        assert.deepEqual(keys(ns1.items), [podKey('ns1', 'a'), podKey('ns1', 'b')]);
        assert.equal(ns1.revision, await store.revision());
        assert.equal(ns1.more, false);
        for (const item of ns1.items) {
          assert.equal(item.object.metadata.resourceVersion, String(item.modRevision));
        }
        assert.notEqual(ns1.items[0]!.modRevision, ns1.items[1]!.modRevision);

        assert.deepEqual(keys((await store.list(PODS)).items), [
          podKey('ns1', 'a'),
          podKey('ns1', 'b'),
          podKey('ns10', 'a'),
          podKey('ns2', 'c'),
        ]);
        assert.deepEqual(keys((await store.list(podKey('ns10', ''))).items), [podKey('ns10', 'a')]);
        assert.deepEqual((await store.list(podKey('ns3', ''))).items, []);
      });

      it('pages with limit and startAfter, and says whether more remain', async () => {
        for (const name of ['p3', 'p0', 'p4', 'p1', 'p2']) await store.create(podKey('ns', name), pod('ns', name));
        const prefix = podKey('ns', '');

        const first = await store.list(prefix, { limit: 2 });
        assert.deepEqual(keys(first.items), [podKey('ns', 'p0'), podKey('ns', 'p1')]);
        assert.equal(first.more, true);

        // Writes between pages must not show through a page read at the first page's revision.
        await store.delete(podKey('ns', 'p2'));
        const p3 = (await store.get(podKey('ns', 'p3')))!;
        await store.update(podKey('ns', 'p3'), pod('ns', 'p3', 'nginx'), p3.modRevision);
        await store.create(podKey('ns', 'p25'), pod('ns', 'p25'));

        const second = await store.list(prefix, { limit: 2, startAfter: podKey('ns', 'p1'), revision: first.revision });
        assert.deepEqual(keys(second.items), [podKey('ns', 'p2'), podKey('ns', 'p3')]);
        assert.equal(imageOf(second.items[1]!.object), 'busybox');
        assert.equal(second.revision, first.revision);
        assert.equal(second.more, true);

        const third = await store.list(prefix, { limit: 2, startAfter: podKey('ns', 'p3'), revision: first.revision });
        assert.deepEqual(keys(third.items), [podKey('ns', 'p4')]);
        assert.equal(third.more, false);

        const latest = await store.list(prefix, { startAfter: podKey('ns', 'p1') });
        assert.deepEqual(keys(latest.items), [podKey('ns', 'p25'), podKey('ns', 'p3'), podKey('ns', 'p4')]);
        assert.equal((await store.list(prefix, { limit: 5 })).more, false);
        assert.equal((await store.list(prefix, { limit: 4 })).more, true);
      });

      it('reads the state at a past revision, old values and deleted keys included', async () => {
        const a1 = await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        const b1 = await store.create(podKey('ns', 'b'), pod('ns', 'b'));
        const a2 = await store.update(podKey('ns', 'a'), pod('ns', 'a', 'nginx'), a1.modRevision);
        const bGone = await store.delete(podKey('ns', 'b'));
        await store.create(podKey('ns', 'c'), pod('ns', 'c'));

        const atB1 = await store.list(PODS, { revision: b1.modRevision });
        assert.equal(atB1.revision, b1.modRevision);
        assert.deepEqual(keys(atB1.items), [podKey('ns', 'a'), podKey('ns', 'b')]);
        assert.equal(imageOf(atB1.items[0]!.object), 'busybox');
        assert.equal(atB1.items[0]!.modRevision, a1.modRevision);
        assert.equal(atB1.items[0]!.object.metadata.resourceVersion, String(a1.modRevision));

        const atA2 = await store.list(PODS, { revision: a2.modRevision });
        assert.deepEqual(keys(atA2.items), [podKey('ns', 'a'), podKey('ns', 'b')]);
        assert.equal(imageOf(atA2.items[0]!.object), 'nginx');

        assert.deepEqual(keys((await store.list(PODS, { revision: bGone.modRevision })).items), [podKey('ns', 'a')]);
        assert.deepEqual(keys((await store.list(PODS)).items), [podKey('ns', 'a'), podKey('ns', 'c')]);
      });

      it('counts live keys under a prefix', async () => {
        for (const name of ['a', 'b', 'c']) await store.create(podKey('ns1', name), pod('ns1', name));
        await store.create(podKey('ns10', 'a'), pod('ns10', 'a'));
        await store.delete(podKey('ns1', 'b'));
        const c = (await store.get(podKey('ns1', 'c')))!;
        await store.update(podKey('ns1', 'c'), pod('ns1', 'c', 'nginx'), c.modRevision);
        assert.equal(await store.count(podKey('ns1', '')), 2);
        assert.equal(await store.count(podKey('ns10', '')), 1);
        assert.equal(await store.count(PODS), 3);
        assert.equal(await store.count(podKey('ns2', '')), 0);
      });
    });

    describe('events', () => {
      it('replays writes under a prefix after a revision, up to a bound, with previous values', async () => {
        const start = await store.revision();
        const added = await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        const modified = await store.update(podKey('ns', 'a'), pod('ns', 'a', 'nginx'), added.modRevision);
        await store.create(podKey('other', 'x'), pod('other', 'x'));
        const deleted = await store.delete(podKey('ns', 'a'));
        const readded = await store.create(podKey('ns', 'a'), pod('ns', 'a', 'redis'));

        const events = await store.events(podKey('ns', ''), start);
        assert.deepEqual(
          events.map((event) => [event.type, event.key, event.revision]),
          [
            ['ADDED', podKey('ns', 'a'), added.modRevision],
            ['MODIFIED', podKey('ns', 'a'), modified.modRevision],
            ['DELETED', podKey('ns', 'a'), deleted.modRevision],
            ['ADDED', podKey('ns', 'a'), readded.modRevision],
          ],
        );
        const [e1, e2, e3, e4] = events as [StoreEvent, StoreEvent, StoreEvent, StoreEvent];
        for (const event of events) assert.equal(event.object.metadata.resourceVersion, String(event.revision));
        assert.equal(e1.prevObject, undefined);
        assert.equal(imageOf(e2.object), 'nginx');
        assert.equal(imageOf(e2.prevObject!), 'busybox');
        assert.equal(e2.prevObject!.metadata.resourceVersion, String(added.modRevision));
        assert.equal(imageOf(e3.object), 'nginx');
        assert.equal(imageOf(e3.prevObject!), 'nginx');
        assert.equal(e3.prevObject!.metadata.resourceVersion, String(modified.modRevision));
        assert.equal(e4.prevObject, undefined);
        assert.equal(imageOf(e4.object), 'redis');

        assert.deepEqual(revisions(await store.events(podKey('ns', ''), start, modified.modRevision)), [
          added.modRevision,
          modified.modRevision,
        ]);
        assert.deepEqual(revisions(await store.events(PODS, added.modRevision, deleted.modRevision)), [
          modified.modRevision,
          modified.modRevision + 1,
          deleted.modRevision,
        ]);
        assert.deepEqual(await store.events(PODS, readded.modRevision), []);
      });
    });

    describe('watch', () => {
      it('replays history before resolving, then delivers live writes without a gap or duplicate', async () => {
        const a = await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        const b = await store.create(podKey('ns', 'b'), pod('ns', 'b'));
        const a2 = await store.update(podKey('ns', 'a'), pod('ns', 'a', 'nginx'), a.modRevision);
        const received: StoreEvent[] = [];
        const stop = new AbortController();
        await store.watch(PODS, a.modRevision, (event) => received.push(event), stop.signal);
        assert.deepEqual(revisions(received), [b.modRevision, a2.modRevision]);

        const c = await store.create(podKey('ns', 'c'), pod('ns', 'c'));
        await store.create('/registry/core/services/ns/s', pod('ns', 's'));
        const aGone = await store.delete(podKey('ns', 'a'));
        await until(() => received.length >= 4);
        stop.abort();
        assert.deepEqual(revisions(received), [b.modRevision, a2.modRevision, c.modRevision, aGone.modRevision]);
        const live = received[3]!;
        assert.equal(live.type, 'DELETED');
        assert.equal(live.object.metadata.resourceVersion, String(aGone.modRevision));
        assert.equal(imageOf(live.prevObject!), 'nginx');
        assert.equal(live.prevObject!.metadata.resourceVersion, String(a2.modRevision));
      });

      it('fills prevObject on live MODIFIED and DELETED events', async () => {
        const received: StoreEvent[] = [];
        const stop = new AbortController();
        await store.watch(PODS, await store.revision(), (event) => received.push(event), stop.signal);
        const added = await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        const modified = await store.update(podKey('ns', 'a'), pod('ns', 'a', 'nginx'), added.modRevision);
        await store.delete(podKey('ns', 'a'));
        await until(() => received.length >= 3);
        stop.abort();
        assert.deepEqual(
          received.map((event) => [event.type, event.prevObject?.metadata.resourceVersion]),
          [
            ['ADDED', undefined],
            ['MODIFIED', String(added.modRevision)],
            ['DELETED', String(modified.modRevision)],
          ],
        );
        assert.equal(imageOf(received[1]!.object), 'nginx');
        assert.equal(imageOf(received[1]!.prevObject!), 'busybox');
      });

      it('misses nothing and repeats nothing when writes race a starting watch', async () => {
        const start = await store.revision();
        const expected: number[] = [];
        for (let i = 0; i < LONG_HISTORY; i++) {
          expected.push((await store.create(podKey('ns', `h${i}`), pod('ns', `h${i}`))).modRevision);
          if (i % 100 === 0) await store.create(podKey('other', `h${i}`), pod('other', `h${i}`));
        }

        const writes: Promise<StoredObject>[] = [];
        const received: StoreEvent[] = [];
        const stop = new AbortController();
        const watching = store.watch(
          podKey('ns', ''),
          start,
          (event) => {
            received.push(event);
            // A write made from inside the replay, before the watch has gone live.
            if (received.length === LONG_HISTORY / 2) {
              writes.push(store.create(podKey('ns', 'from-callback'), pod('ns', 'from-callback')));
            }
          },
          stop.signal,
        );
        for (let i = 0; i < 20; i++) writes.push(store.create(podKey('ns', `burst${i}`), pod('ns', `burst${i}`)));
        let racing = true;
        const trickle = (async () => {
          for (let i = 0; racing; i++) {
            writes.push(store.create(podKey('ns', `trickle${i}`), pod('ns', `trickle${i}`)));
            await new Promise((resolve) => setImmediate(resolve));
          }
        })();
        await watching;
        racing = false;
        await trickle;
        for (let i = 0; i < 5; i++) writes.push(store.create(podKey('ns', `live${i}`), pod('ns', `live${i}`)));
        for (const written of await Promise.all(writes)) expected.push(written.modRevision);
        expected.sort((x, y) => x - y);

        await until(() => received.length >= expected.length);
        await quiet();
        stop.abort();
        assert.equal(received.length, expected.length);
        assert.deepEqual(revisions(received), expected);
      });

      it('keeps every watcher in revision order when a callback writes', async () => {
        const start = await store.revision();
        const first: StoreEvent[] = [];
        const second: StoreEvent[] = [];
        const writes: Promise<StoredObject>[] = [];
        const stop = new AbortController();
        await store.watch(
          PODS,
          start,
          (event) => {
            first.push(event);
            if (event.key === podKey('ns', 'trigger')) writes.push(store.create(podKey('ns', 'echo'), pod('ns', 'echo')));
          },
          stop.signal,
        );
        await store.watch(PODS, start, (event) => second.push(event), stop.signal);
        writes.push(store.create(podKey('ns', 'trigger'), pod('ns', 'trigger')));
        writes.push(store.create(podKey('ns', 'after'), pod('ns', 'after')));
        await until(() => writes.length === 3);
        const expected = (await Promise.all(writes)).map((written) => written.modRevision).sort((x, y) => x - y);
        await until(() => first.length >= 3 && second.length >= 3);
        await quiet();
        stop.abort();
        assert.deepEqual(revisions(first), expected);
        assert.deepEqual(revisions(second), expected);
      });

      it('delivers each write once to a watch started from another watch callback', async () => {
        const start = await store.revision();
        const outer: StoreEvent[] = [];
        const inner: StoreEvent[] = [];
        const writes: Promise<StoredObject>[] = [];
        let innerWatch: Promise<void> | undefined;
        const stop = new AbortController();
        await store.watch(
          PODS,
          start,
          (event) => {
            outer.push(event);
            if (event.key !== podKey('ns', 'trigger')) return;
            writes.push(store.create(podKey('ns', 'echo'), pod('ns', 'echo')));
            innerWatch = store.watch(PODS, start, (seen) => inner.push(seen), stop.signal);
          },
          stop.signal,
        );
        writes.push(store.create(podKey('ns', 'trigger'), pod('ns', 'trigger')));
        writes.push(store.create(podKey('ns', 'after'), pod('ns', 'after')));
        await until(() => writes.length === 3);
        const expected = (await Promise.all(writes)).map((written) => written.modRevision).sort((x, y) => x - y);
        await innerWatch;
        writes.push(store.create(podKey('ns', 'last'), pod('ns', 'last')));
        expected.push((await writes[writes.length - 1]!).modRevision);
        await until(() => outer.length >= 4 && inner.length >= 4);
        await quiet();
        stop.abort();
        assert.deepEqual(revisions(outer), expected);
        assert.deepEqual(revisions(inner), expected);
      });

      it('stops delivering once its signal aborts', async () => {
        const received: StoreEvent[] = [];
        const stop = new AbortController();
        await store.watch(PODS, await store.revision(), (event) => received.push(event), stop.signal);
        const first = await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        await until(() => received.length >= 1);
        stop.abort();
        await store.create(podKey('ns', 'b'), pod('ns', 'b'));
        await quiet();
        assert.deepEqual(revisions(received), [first.modRevision]);
      });

      it('stops replaying history when aborted from a callback', async () => {
        const start = await store.revision();
        for (let i = 0; i < 10; i++) await store.create(podKey('ns', `p${i}`), pod('ns', `p${i}`));
        const received: StoreEvent[] = [];
        const stop = new AbortController();
        await store.watch(
          PODS,
          start,
          (event) => {
            received.push(event);
            if (received.length === 3) stop.abort();
          },
          stop.signal,
        );
        await store.create(podKey('ns', 'late'), pod('ns', 'late'));
        await quiet();
        assert.deepEqual(revisions(received), [start + 1, start + 2, start + 3]);
      });

      it('delivers nothing for an already aborted signal', async () => {
        const start = await store.revision();
        await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        const received: StoreEvent[] = [];
        await store
          .watch(PODS, start, (event) => received.push(event), AbortSignal.abort())
          .catch((err: unknown) => assert.ok(!(err instanceof StoreError), String(err)));
        await store.create(podKey('ns', 'b'), pod('ns', 'b'));
        await quiet();
        assert.deepEqual(received, []);
      });
    });

    describe('compaction', () => {
      it('forgets superseded history but keeps the state at and after the compacted revision', async () => {
        const a1 = await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        const a2 = await store.update(podKey('ns', 'a'), pod('ns', 'a', 'nginx'), a1.modRevision);
        await store.create(podKey('ns', 'b'), pod('ns', 'b'));
        const bGone = await store.delete(podKey('ns', 'b'));
        const compacted = bGone.modRevision;
        const a3 = await store.update(podKey('ns', 'a'), pod('ns', 'a', 'redis'), a2.modRevision);
        const c = await store.create(podKey('ns', 'c'), pod('ns', 'c'));

        assert.equal(await store.compactedRevision(), 0);
        await store.compact(compacted);
        assert.equal(await store.compactedRevision(), compacted);

        await rejectsWith(store.list(PODS, { revision: compacted - 1 }), 'compacted', compacted);
        await rejectsWith(store.list(PODS, { revision: a1.modRevision }), 'compacted', compacted);
        await rejectsWith(store.events(PODS, compacted - 1), 'compacted', compacted);
        const early: StoreEvent[] = [];
        await rejectsWith(store.watch(PODS, a1.modRevision, (event) => early.push(event), new AbortController().signal), 'compacted', compacted);
        assert.deepEqual(early, []);

        const atCompacted = await store.list(PODS, { revision: compacted });
        assert.deepEqual(keys(atCompacted.items), [podKey('ns', 'a')]);
        assert.equal(imageOf(atCompacted.items[0]!.object), 'nginx');
        assert.equal(atCompacted.items[0]!.modRevision, a2.modRevision);

        const after = await store.events(PODS, compacted);
        assert.deepEqual(revisions(after), [a3.modRevision, c.modRevision]);
        assert.equal(after[0]!.type, 'MODIFIED');
        assert.equal(imageOf(after[0]!.prevObject!), 'nginx');
        assert.equal(after[0]!.prevObject!.metadata.resourceVersion, String(a2.modRevision));

        const replayed: StoreEvent[] = [];
        const stop = new AbortController();
        await store.watch(PODS, compacted, (event) => replayed.push(event), stop.signal);
        await until(() => replayed.length >= 2);
        stop.abort();
        assert.deepEqual(revisions(replayed), [a3.modRevision, c.modRevision]);

        const latest = await store.list(PODS);
        assert.deepEqual(
          latest.items.map((item) => [item.key, item.createRevision, item.modRevision, imageOf(item.object)]),
          [
            [podKey('ns', 'a'), a1.createRevision, a3.modRevision, 'redis'],
            [podKey('ns', 'c'), c.modRevision, c.modRevision, 'busybox'],
          ],
        );
        assert.equal(await store.get(podKey('ns', 'b')), undefined);
        assert.equal(await store.count(PODS), 2);
        const a4 = await store.update(podKey('ns', 'a'), pod('ns', 'a'), a3.modRevision);
        assert.equal(a4.createRevision, a1.createRevision);
        const b2 = await store.create(podKey('ns', 'b'), pod('ns', 'b'));
        assert.equal(b2.createRevision, b2.modRevision);
      });

      it('never reuses a revision after compacting up to a final delete', async () => {
        await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        const gone = await store.delete(podKey('ns', 'a'));
        await store.compact(gone.modRevision);
        assert.equal(await store.revision(), gone.modRevision);
        assert.deepEqual((await store.list(PODS)).items, []);
        assert.deepEqual(await store.events(PODS, gone.modRevision), []);
        const again = await store.create(podKey('ns', 'a'), pod('ns', 'a'));
        assert.equal(again.modRevision, gone.modRevision + 1);
        assert.deepEqual(
          (await store.events(PODS, gone.modRevision)).map((event) => [event.type, event.revision]),
          [['ADDED', again.modRevision]],
        );
      });
    });
  });
}
