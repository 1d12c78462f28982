import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import type { KubeObject, WatchEvent } from '../api/types.js';
import { KubeClient } from '../client/client.js';
import { resource } from '../client/informer.js';
import { startCluster, type Cluster } from '../controllers/workload-testkit.js';
import { waitFor } from '../../test/support/wait.js';

const ATOLL = fileURLToPath(new URL('../../../bin/atoll', import.meta.url));
const CONFIGMAPS = resource('configmaps');
const NS = 'crash';
const OBJECTS = 30;
/** Enough payload that every cached list is a real write, not a few bytes. */
const PAYLOAD = 'x'.repeat(2048);
/** Kill rounds; each kills EdgeHub while it caches, then checks the file and reads from it offline. */
const ROUNDS = 3;
/** Lists cached in a round before the kill, so the cache is being written when it comes. */
const LISTS_BEFORE_KILL = 15;
/** Watch events the driver takes before it relists, so lists keep coming. */
const EVENTS_PER_WATCH = 10;
/** Pause after a failed request, so a driver whose EdgeHub was killed does not spin. */
const RETRY_PAUSE_MS = 20;

/** The cloud's configmaps at resourceVersion `rv`: the initial list plus every event up to it. */
function stateAt(initial: KubeObject[], events: WatchEvent[], rv: bigint): Map<string, string> {
  const state = new Map(initial.map((o) => [o.metadata.name!, o.metadata.resourceVersion!]));
  for (const e of events) {
    if (BigInt(e.object.metadata.resourceVersion!) > rv) break;
    if (e.type === 'DELETED') state.delete(e.object.metadata.name!);
    else state.set(e.object.metadata.name!, e.object.metadata.resourceVersion!);
  }
  return state;
}

/** A loopback port nothing listens on: a cloud that cannot be reached. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Crash safety through the proxy: `atoll edgehub` runs as a child process and caches LIST and WATCH
 * answers while the cloud keeps changing; it is killed with SIGKILL mid-stream, and the cache it
 * leaves must pass SQLite's integrity check and answer offline with exactly the cloud's state at
 * the resourceVersion it reports (reconstructed from a watch the test keeps on the cloud itself).
 */
describe('EdgeHub cache under kill -9 through the proxy', () => {
  let cluster: Cluster;
  let dir: string;
  let tls: string[];
  const children = new Set<ChildProcess>();
  const stop = new AbortController();
  const initial: KubeObject[] = [];
  const seen: WatchEvent[] = [];
  let recorder: Promise<void>;
  let mutator: Promise<void>;

  /** Starts `atoll edgehub` on the shared cache and waits until it serves. */
  async function startHub(server: string, socketPath: string): Promise<{ child: ChildProcess; output: () => string; exited: Promise<NodeJS.Signals | number | null> }> {
    const child = spawn(
      process.execPath,
      [ATOLL, 'edgehub', '--server', server, ...tls, '--socket', socketPath, '--cache', join(dir, 'cache.db'), '--probe-period', '1', '--cache-components', 'kubelet', '--cache-resources', 'default'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.add(child);
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
    void exited.then(() => children.delete(child));
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('edgehub to serve', async () => {
      if (child.exitCode !== null) throw new Error(`edgehub exited ${child.exitCode}: ${out}`);
      return out.includes('serving on');
    });
    return { child, output: () => out, exited };
  }

  /** A node agent's reflector through EdgeHub: list, watch a few events, relist; counts the lists. */
  async function drive(client: KubeClient, signal: AbortSignal, onList: () => void): Promise<void> {
    while (!signal.aborted) {
      try {
        const list = await client.list(CONFIGMAPS, NS);
        onList();
        const watch = new AbortController();
        const abort = () => watch.abort();
        signal.addEventListener('abort', abort, { once: true });
        let events = 0;
        try {
          await client.watch(CONFIGMAPS, NS, { resourceVersion: list.metadata.resourceVersion }, () => ++events >= EVENTS_PER_WATCH && watch.abort(), watch.signal);
        } finally {
          signal.removeEventListener('abort', abort);
        }
      } catch {
        await sleep(RETRY_PAUSE_MS);
      }
    }
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-edgehub-crash-'));
    cluster = await startCluster();
    const admin = cluster.server.admin;
    await writeFile(join(dir, 'ca.crt'), admin.caPem);
    await writeFile(join(dir, 'admin.crt'), admin.certPem);
    await writeFile(join(dir, 'admin.key'), admin.keyPem, { mode: 0o600 });
    tls = ['--ca-file', join(dir, 'ca.crt'), '--cert-file', join(dir, 'admin.crt'), '--key-file', join(dir, 'admin.key')];
    await cluster.client.create(resource('namespaces'), undefined, { metadata: { name: NS } });
    for (let i = 0; i < OBJECTS; i++) await cluster.client.create(CONFIGMAPS, NS, { metadata: { name: `cm-${i}` }, data: { n: '0', payload: PAYLOAD } });
    const list = await cluster.client.list(CONFIGMAPS, NS);
    initial.push(...list.items);
    recorder = cluster.client.watch(CONFIGMAPS, NS, { resourceVersion: list.metadata.resourceVersion }, (e) => seen.push(e), stop.signal);
    // The cloud keeps changing: updates, and now and then a delete or a re-create.
    mutator = (async () => {
      const present = new Set(initial.map((o) => o.metadata.name!));
      for (let n = 1; !stop.signal.aborted; n++) {
        const name = `cm-${(n * 7) % OBJECTS}`;
        if (n % 5 === 0 && present.has(name)) {
          await cluster.client.delete(CONFIGMAPS, NS, name);
          present.delete(name);
        } else if (!present.has(name)) {
          await cluster.client.create(CONFIGMAPS, NS, { metadata: { name }, data: { n: String(n), payload: PAYLOAD } });
          present.add(name);
        } else {
          await cluster.client.patch(CONFIGMAPS, NS, name, 'merge', { data: { n: String(n) } });
        }
      }
    })();
  });

  after(async () => {
    stop.abort();
    for (const child of children) child.kill('SIGKILL');
    await mutator?.catch(() => undefined);
    await recorder?.catch(() => undefined);
    await cluster?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('leaves an intact cache that answers offline with the cloud\'s state at its resourceVersion', async () => {
    const socketPath = join(dir, 'edgehub.sock');
    const unreachable = `https://127.0.0.1:${await closedPort()}`;
    for (let round = 1; round <= ROUNDS; round++) {
      const online = await startHub(cluster.server.url, socketPath);
      assert.match(online.output(), /the cloud is reachable/);
      const client = new KubeClient({ server: `unix://${socketPath}` }, 'kubelet/v1.30.0');
      const driving = new AbortController();
      let lists = 0;
      const driver = drive(client, driving.signal, () => lists++);
      try {
        await waitFor(`round ${round}: ${LISTS_BEFORE_KILL} lists cached`, async () => lists >= LISTS_BEFORE_KILL);
        online.child.kill('SIGKILL');
        assert.equal(await online.exited, 'SIGKILL');
      } finally {
        driving.abort();
        await driver;
        client.close();
      }

      const raw = new Database(join(dir, 'cache.db'));
      try {
        assert.equal(raw.pragma('integrity_check', { simple: true }), 'ok', `round ${round}`);
      } finally {
        raw.close();
      }

      const offline = await startHub(unreachable, socketPath);
      const reader = new KubeClient({ server: `unix://${socketPath}` }, 'kubelet/v1.30.0');
      try {
        assert.match(offline.output(), /the cloud is unreachable/);
        const cached = await reader.list(CONFIGMAPS, NS);
        const rv = BigInt(cached.metadata.resourceVersion!);
        await waitFor(`the test's own watch to reach resourceVersion ${rv}`, async () => seen.length > 0 && BigInt(seen.at(-1)!.object.metadata.resourceVersion!) >= rv);
        const got = new Map(cached.items.map((o) => [o.metadata.name!, o.metadata.resourceVersion!]));
        assert.deepEqual(got, stateAt(initial, seen, rv), `round ${round}: the offline list is the cloud's state at ${rv}`);
        const first = cached.items[0]!;
        const one = await reader.get(CONFIGMAPS, NS, first.metadata.name!);
        assert.deepEqual(one, first, 'a cached GET agrees with the list');
      } finally {
        reader.close();
        offline.child.kill('SIGTERM');
        assert.equal(await offline.exited, 0);
      }
    }
  });
});
