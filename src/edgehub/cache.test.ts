import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import type { KubeList, KubeObject } from '../api/types.js';
import { EdgeCache, componentOf, newer, type CacheScope, type ListQuery } from './cache.js';

const PODS: CacheScope = { component: 'kubelet', group: '', version: 'v1', resource: 'pods' };

function pod(name: string, rv: number, labels: Record<string, string>, nodeName: string, namespace = 'edge'): KubeObject {
  return { metadata: { name, namespace, resourceVersion: String(rv), labels }, spec: { nodeName }, status: { phase: 'Running' } };
}

function podList(rv: number, items: KubeObject[]): KubeList {
  return { apiVersion: 'v1', kind: 'PodList', metadata: { resourceVersion: String(rv) }, items };
}

function names(list: KubeList | undefined): string[] {
  assert.ok(list, 'the cache should answer this list');
  return list.items.map((o) => o.metadata.name!).sort();
}

function query(q: Partial<ListQuery> = {}): ListQuery {
  return { ...PODS, namespace: 'edge', ...q };
}

describe('EdgeCache', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-edgecache-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('filters an unselected list by label and field selectors', () => {
    const cache = EdgeCache.open(':memory:');
    try {
      cache.putList(query(), podList(10, [pod('a', 5, { app: 'web' }, 'n1'), pod('b', 6, { app: 'web' }, 'n2'), pod('c', 7, { app: 'db' }, 'n1')]));
      assert.deepEqual(names(cache.list(query({ labelSelector: 'app=web' }))), ['a', 'b']);
      assert.deepEqual(names(cache.list(query({ fieldSelector: 'spec.nodeName=n1' }))), ['a', 'c']);
      assert.deepEqual(names(cache.list(query({ labelSelector: 'app in (web)', fieldSelector: 'spec.nodeName=n1,status.phase=Running' }))), ['a']);
      assert.deepEqual(names(cache.list(query({ labelSelector: 'app=none' }))), [], 'a covered query with no match is a real empty list');
      const full = cache.list(query())!;
      assert.equal(full.kind, 'PodList');
      assert.equal(full.metadata.resourceVersion, '10');
      const got = cache.get(PODS, 'edge', 'a');
      assert.equal(got.kind, 'hit');
      assert.equal(got.kind === 'hit' && got.object.kind, 'Pod', 'list items are stored with their kind');
      assert.deepEqual(cache.get(PODS, 'edge', 'zz'), { kind: 'absent' }, 'an unselected list proves absence');
      assert.throws(() => cache.list(query({ fieldSelector: 'spec.bogus=1' })), /field label not supported/);
    } finally {
      cache.close();
    }
  });

  it('answers only queries a stored list covers, never with an empty list', () => {
    const cache = EdgeCache.open(':memory:');
    try {
      cache.putList(query({ fieldSelector: 'spec.nodeName=n1' }), podList(10, [pod('a', 5, { app: 'web' }, 'n1'), pod('c', 7, { app: 'db' }, 'n1')]));
      assert.deepEqual(names(cache.list(query({ fieldSelector: 'spec.nodeName=n1', labelSelector: 'app=db' }))), ['c']);
      assert.equal(cache.list(query()), undefined, 'a selected list cannot answer an unselected query');
      assert.equal(cache.list(query({ fieldSelector: 'spec.nodeName=n2' })), undefined);
      assert.equal(cache.list(query({ namespace: 'other', fieldSelector: 'spec.nodeName=n1' })), undefined);
      assert.equal(cache.list({ ...query({ fieldSelector: 'spec.nodeName=n1' }), component: 'other' }), undefined, 'components do not share lists');
      assert.deepEqual(cache.get(PODS, 'edge', 'zz'), { kind: 'unknown' });
    } finally {
      cache.close();
    }
  });

  it('answers a namespace query from an all-namespaces list', () => {
    const cache = EdgeCache.open(':memory:');
    try {
      cache.putList(query({ namespace: '' }), podList(10, [pod('a', 5, {}, 'n1', 'x'), pod('b', 6, {}, 'n1', 'y')]));
      assert.deepEqual(names(cache.list(query({ namespace: 'x' }))), ['a']);
      assert.deepEqual(names(cache.list(query({ namespace: 'z' }))), []);
    } finally {
      cache.close();
    }
  });

  it('applies watch events only when newer, and keeps the list resourceVersion coherent', () => {
    const cache = EdgeCache.open(':memory:');
    try {
      const q = query();
      cache.putList(q, podList(10, [pod('a', 5, { app: 'web' }, 'n1')]));
      assert.equal(cache.applyWatchEvent(q, { type: 'ADDED', object: pod('b', 11, { app: 'web' }, 'n1') }), true);
      assert.equal(cache.applyWatchEvent(q, { type: 'MODIFIED', object: pod('a', 4, { app: 'stale' }, 'n1') }), false, 'older than stored');
      assert.equal(cache.applyWatchEvent(q, { type: 'BOOKMARK', object: { metadata: { resourceVersion: '99' } } }), false);
      cache.applyWatchEvent(q, { type: 'MODIFIED', object: pod('a', 12, { app: 'db' }, 'n1') });
      const list = cache.list(q)!;
      assert.deepEqual(names(list), ['a', 'b']);
      assert.equal(list.metadata.resourceVersion, '12');
      assert.deepEqual(names(cache.list(query({ labelSelector: 'app=web' }))), ['b']);
      cache.applyWatchEvent(q, { type: 'DELETED', object: pod('b', 13, { app: 'web' }, 'n1') });
      assert.deepEqual(names(cache.list(q)), ['a']);
      assert.deepEqual(cache.get(PODS, 'edge', 'b'), { kind: 'absent' });
    } finally {
      cache.close();
    }
  });

  it('prunes objects a newer unselected list no longer holds, including directly fetched ones', () => {
    const cache = EdgeCache.open(':memory:');
    try {
      const q = query();
      cache.putList(q, podList(10, [pod('a', 5, {}, 'n1'), pod('b', 6, {}, 'n1')]));
      cache.putObject(PODS, pod('b', 6, {}, 'n1'));
      cache.putObject(PODS, pod('late', 25, {}, 'n1'));
      cache.putList(q, podList(20, [pod('a', 5, {}, 'n1')]));
      assert.deepEqual(cache.get(PODS, 'edge', 'b'), { kind: 'absent' }, 'deleted in the cloud');
      assert.equal(cache.get(PODS, 'edge', 'late').kind, 'hit', 'written after the list, so not pruned');
    } finally {
      cache.close();
    }
  });

  it('drops objects of a selected list once nothing references them', () => {
    const cache = EdgeCache.open(':memory:');
    try {
      const q = query({ labelSelector: 'app=web' });
      cache.putList(q, podList(10, [pod('a', 5, { app: 'web' }, 'n1'), pod('b', 6, { app: 'web' }, 'n1')]));
      cache.putObject(PODS, pod('b', 6, { app: 'web' }, 'n1'));
      cache.putList(q, podList(20, []));
      assert.deepEqual(names(cache.list(q)), []);
      assert.deepEqual(cache.get(PODS, 'edge', 'a'), { kind: 'unknown' });
      assert.equal(cache.get(PODS, 'edge', 'b').kind, 'hit', 'a direct GET keeps it');
    } finally {
      cache.close();
    }
  });

  it('compares resourceVersions as integers and reads the component from the User-Agent', () => {
    assert.equal(newer('10', '9'), true);
    assert.equal(newer('9', '10'), false);
    assert.equal(newer('abc', 'abd'), true);
    assert.equal(newer('5', '5'), false);
    assert.equal(componentOf('kubelet/v1.30.0 (linux/amd64) kubernetes/abc'), 'kubelet');
    assert.equal(componentOf(undefined), 'unknown');
  });

  it('queues offline writes in order and bounds buffered Events, oldest dropped', () => {
    const cache = EdgeCache.open(':memory:');
    try {
      cache.putObject(PODS, pod('a', 5, {}, 'n1'));
      const write = { ...PODS, namespace: 'edge', name: 'a', subresource: 'status', contentType: 'application/json', userAgent: 'kubelet/1' };
      const patched = pod('a', 5, {}, 'n1');
      patched.status = { phase: 'Succeeded' };
      cache.absorbWrite({ ...write, method: 'PUT', path: '/p/1', body: '{}' }, patched);
      cache.absorbWrite({ ...write, method: 'PATCH', path: '/p/2', body: '{}' }, patched);
      cache.absorbWrite({ ...write, method: 'PUT', path: '/p/3', body: '{}' }, patched);
      assert.deepEqual(cache.queuedWrites().map((w) => w.path), ['/p/2', '/p/3'], 'a PUT replaces earlier PUTs of the object, patches stay');
      assert.equal(cache.hasQueuedWrite(PODS, 'edge', 'a'), true);
      const got = cache.get(PODS, 'edge', 'a');
      assert.equal(got.kind === 'hit' && (got.object.status as { phase: string }).phase, 'Succeeded');

      const event = { ...PODS, resource: 'events', namespace: 'edge', subresource: '', method: 'POST', contentType: 'application/json', body: '{}', userAgent: 'kubelet/1' };
      const dropped = [1, 2, 3, 4, 5].map((i) => cache.bufferEvent({ ...event, name: `e${i}`, path: `/e/${i}` }, 3));
      assert.deepEqual(dropped, [0, 0, 0, 1, 1]);
      assert.deepEqual(cache.queuedWrites().map((w) => w.path), ['/p/2', '/p/3', '/e/3', '/e/4', '/e/5']);
      cache.completeWrite(cache.queuedWrites()[0]!);
      assert.equal(cache.queueDepth(), 4);
    } finally {
      cache.close();
    }
  });

  it('keeps the count of dropped Events across restarts, and upgrades a version 1 file keeping its queue', () => {
    const path = join(dir, 'counters.db');
    const event = { ...PODS, resource: 'events', namespace: 'edge', subresource: '', method: 'POST', contentType: 'application/json', body: '{}', userAgent: 'kubelet/1' };
    let cache = EdgeCache.open(path);
    for (const i of [1, 2, 3, 4]) cache.bufferEvent({ ...event, name: `e${i}`, path: `/e/${i}` }, 2);
    assert.equal(cache.droppedEvents(), 2);
    cache.close();
    cache = EdgeCache.open(path);
    cache.bufferEvent({ ...event, name: 'e5', path: '/e/5' }, 2);
    assert.equal(cache.droppedEvents(), 3, 'counted on from where the last run stopped');
    cache.close();

    // Version 1 of the layout had no counters table.
    const raw = new Database(path);
    raw.exec('DROP TABLE counters; PRAGMA user_version = 1;');
    raw.close();
    cache = EdgeCache.open(path);
    try {
      assert.deepEqual(cache.queuedWrites().map((w) => w.path), ['/e/4', '/e/5'], 'queued writes survive the upgrade');
      assert.equal(cache.droppedEvents(), 0);
      cache.bufferEvent({ ...event, name: 'e6', path: '/e/6' }, 2);
      assert.equal(cache.droppedEvents(), 1);
    } finally {
      cache.close();
    }
  });

  it('survives kill -9 during writes with every list whole', async () => {
    const path = join(dir, 'crash.db');
    const moduleUrl = pathToFileURL(join(import.meta.dirname, 'cache.js')).href;
    // Each round replaces the list with 50 pods of one generation; a torn write would mix generations.
    const script = `
      import { EdgeCache } from ${JSON.stringify(moduleUrl)};
      const cache = EdgeCache.open(${JSON.stringify(path)});
      const q = { component: 'kubelet', group: '', version: 'v1', resource: 'pods', namespace: 'edge' };
      for (let gen = 1; ; gen++) {
        const items = Array.from({ length: 50 }, (_, j) => ({
          metadata: { name: 'p' + ((gen + j) % 80), namespace: 'edge', resourceVersion: String(gen * 100 + j), labels: { gen: String(gen) } },
        }));
        cache.putList(q, { apiVersion: 'v1', kind: 'PodList', metadata: { resourceVersion: String(gen * 100 + 99) }, items });
        cache.applyWatchEvent(q, { type: 'MODIFIED', object: { ...items[0], metadata: { ...items[0].metadata, resourceVersion: String(gen * 100 + 60) } } });
        if (gen === 20) process.stdout.write('ready\\n');
      }
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
        child.on('exit', (code) => reject(new Error(`writer exited early with ${code}`)));
      });
    } finally {
      child.kill('SIGKILL');
    }
    assert.equal(await exited, 'SIGKILL');

    const raw = new Database(path);
    try {
      assert.equal(raw.pragma('integrity_check', { simple: true }), 'ok');
    } finally {
      raw.close();
    }
    const cache = EdgeCache.open(path);
    try {
      const list = cache.list({ ...PODS, namespace: 'edge' });
      assert.ok(list);
      assert.equal(list.items.length, 50);
      const gens = new Set(list.items.map((o) => o.metadata.labels!.gen));
      assert.equal(gens.size, 1, `one generation, got ${[...gens].join(',')}`);
      const gen = Number([...gens][0]);
      assert.ok(gen >= 20);
      assert.ok(Number(list.metadata.resourceVersion) >= gen * 100 + 99);
    } finally {
      cache.close();
    }
  });
});
