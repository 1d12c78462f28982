/**
 * bench/apiserver: throughput and latency of `atoll server`, measured against the raw SQLite insert
 * rate of the same machine in the same run.
 *
 *   node dist/bench/apiserver/run.js [--pods 10000] [--watchers 1000]
 *
 * Prints a table, then one JSON line. Targets (issue "API server"): >= 2,000 creates/s with 16
 * clients, GET p99 <= 5 ms, watch fan-out p99 <= 100 ms to 1,000 watchers, RSS <= 300 MB at 10,000 pods.
 */
import Database from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startServer } from '../../test/e2e/harness.js';
import { ApiClient } from '../../test/support/api-client.js';

const { values: args } = parseArgs({ options: { pods: { type: 'string', default: '10000' }, watchers: { type: 'string', default: '1000' } } });
const POD_COUNT = Number(args.pods);
const WATCHERS = Number(args.watchers);
const CLIENTS = 16;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function pod(name: string) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: 'bench', shard: String(name.length % 7) } },
    spec: { containers: [{ name: 'c', image: 'atoll.local/busybox:latest', command: ['sleep', '3600'], resources: { requests: { cpu: '10m', memory: '16Mi' } } }] },
  };
}

/** The physical floor: one-row transactions into a WAL SQLite file with the server's pragmas. */
async function rawSqliteInsertRate(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'atoll-bench-sqlite-'));
  try {
    const db = new Database(join(dir, 'raw.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec('CREATE TABLE log (rev INTEGER PRIMARY KEY, key TEXT NOT NULL, value TEXT NOT NULL); CREATE INDEX log_key ON log(key, rev)');
    const insert = db.prepare('INSERT INTO log (key, value) VALUES (?, ?)');
    const value = JSON.stringify(pod('raw'));
    const n = 20_000;
    const start = performance.now();
    for (let i = 0; i < n; i++) db.transaction(() => insert.run(`/registry/core/pods/raw/p${i}`, value))();
    const rate = n / ((performance.now() - start) / 1000);
    db.close();
    return rate;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function createThroughput(c: ApiClient, namespace: string, total: number): Promise<{ rate: number; p50: number; p99: number }> {
  let next = 0;
  const latencies: number[] = [];
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (next < total) {
        const i = next++;
        const t0 = performance.now();
        const r = await c.request('POST', `/api/v1/namespaces/${namespace}/pods`, { body: pod(`p-${i}`) });
        latencies.push(performance.now() - t0);
        if (r.status !== 201) throw new Error(`create failed: ${r.status} ${r.body}`);
      }
    }),
  );
  return { rate: total / ((performance.now() - start) / 1000), p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function getLatency(c: ApiClient, namespace: string, n: number): Promise<{ p50: number; p99: number; rate: number }> {
  const latencies: number[] = [];
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await c.request('GET', `/api/v1/namespaces/${namespace}/pods/p-${i % 1000}`);
    latencies.push(performance.now() - t0);
    if (r.status !== 200) throw new Error(`get failed: ${r.status}`);
  }
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), rate: n / ((performance.now() - start) / 1000) };
}

async function listThroughput(c: ApiClient, namespace: string, n: number): Promise<{ perSecond: number; items: number; p50: number }> {
  const latencies: number[] = [];
  let items = 0;
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await c.request('GET', `/api/v1/namespaces/${namespace}/pods?limit=500`);
    latencies.push(performance.now() - t0);
    items = (JSON.parse(r.body) as { items: unknown[] }).items.length;
  }
  return { perSecond: n / ((performance.now() - start) / 1000), items, p50: percentile(latencies, 50) };
}

/** Opens `count` watches, then creates objects one by one and times each event's arrival at every watcher. */
async function watchFanout(c: ApiClient, count: number, events: number): Promise<{ p50: number; p99: number; max: number; delivered: number }> {
  const ns = 'bench-watch';
  await c.request('POST', '/api/v1/namespaces', { body: { metadata: { name: ns } } });
  const list = JSON.parse((await c.request('GET', `/api/v1/namespaces/${ns}/configmaps`)).body) as { metadata: { resourceVersion: string } };
  const sent = new Map<string, number>();
  const latencies: number[] = [];
  let delivered = 0;
  const agent = new https.Agent({ keepAlive: false, maxSockets: Infinity, ca: c.ca, cert: c.cert, key: c.key });
  const requests: ReturnType<typeof https.request>[] = [];
  let ready = 0;
  await new Promise<void>((resolve, reject) => {
    for (let i = 0; i < count; i++) {
      const req = https.request(
        { host: c.base.hostname, port: c.base.port, path: `/api/v1/namespaces/${ns}/configmaps?watch=true&resourceVersion=${list.metadata.resourceVersion}`, agent },
        (res) => {
          if (++ready === count) resolve();
          let buf = '';
          res.on('data', (d: Buffer) => {
            const now = performance.now();
            buf += d.toString();
            let nl;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl);
              buf = buf.slice(nl + 1);
              const name = (JSON.parse(line) as { object: { metadata: { name: string } } }).object.metadata.name;
              const t = sent.get(name);
              if (t !== undefined) {
                latencies.push(now - t);
                delivered++;
              }
            }
          });
        },
      );
      req.on('error', reject);
      req.end();
      requests.push(req);
    }
  });
  for (let i = 0; i < events; i++) {
    const name = `w-${i}`;
    sent.set(name, performance.now());
    await c.request('POST', `/api/v1/namespaces/${ns}/configmaps`, { body: { metadata: { name } } });
    const deadline = Date.now() + 5000;
    while (delivered < (i + 1) * count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  }
  for (const r of requests) r.destroy();
  agent.destroy();
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: Math.max(...latencies), delivered };
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

async function main(): Promise<void> {
  const sqlite = await rawSqliteInsertRate();
  // The API server alone: controllers and scheduler would add their own writes to what is measured.
  const server = await startServer(['--disable-controllers', '--disable-scheduler']);
  try {
    const c = new ApiClient(server.kubeconfig, CLIENTS);
    await c.request('POST', '/api/v1/namespaces', { body: { metadata: { name: 'bench' } } });
    const creates = await createThroughput(c, 'bench', POD_COUNT);
    const rss = rssMiB(server.child.pid!);
    const gets = await getLatency(c, 'bench', 5000);
    const lists = await listThroughput(c, 'bench', 20);
    const fanout = await watchFanout(c, WATCHERS, 20);
    c.close();

    const rows: [string, string, string, string][] = [
      ['raw SQLite insert (1 row/txn, WAL)', `${sqlite.toFixed(0)} /s`, 'baseline', ''],
      [`create pods, ${CLIENTS} clients`, `${creates.rate.toFixed(0)} /s`, `${((creates.rate / sqlite) * 100).toFixed(1)}% of raw`, '>= 2000 /s'],
      ['create latency p50 / p99', `${creates.p50.toFixed(2)} / ${creates.p99.toFixed(2)} ms`, '', ''],
      ['GET pod p50 / p99', `${gets.p50.toFixed(2)} / ${gets.p99.toFixed(2)} ms`, `${gets.rate.toFixed(0)} /s sequential`, 'p99 <= 5 ms'],
      [`LIST ${lists.items} pods (limit=500)`, `${lists.perSecond.toFixed(1)} /s`, `p50 ${lists.p50.toFixed(1)} ms`, ''],
      [`watch fan-out to ${WATCHERS} watchers p50 / p99`, `${fanout.p50.toFixed(1)} / ${fanout.p99.toFixed(1)} ms`, `max ${fanout.max.toFixed(1)} ms, ${fanout.delivered} events`, 'p99 <= 100 ms'],
      [`server RSS with ${POD_COUNT} pods`, `${rss.toFixed(0)} MiB`, '', '<= 300 MB'],
    ];
    const w = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]!.length), ['metric', 'value', 'vs baseline', 'target'][i]!.length));
    const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i]!)).join(' | ');
    console.log(line(['metric', 'value', 'vs baseline', 'target']));
    console.log(w.map((n) => '-'.repeat(n)).join('-|-'));
    for (const r of rows) console.log(line(r));
    console.log(
      JSON.stringify({
        bench: 'apiserver',
        baseline: { sqliteInsertsPerSec: Math.round(sqlite) },
        createsPerSec: Math.round(creates.rate),
        createRatioToSqlite: +(creates.rate / sqlite).toFixed(3),
        createLatencyMs: { p50: +creates.p50.toFixed(2), p99: +creates.p99.toFixed(2) },
        getLatencyMs: { p50: +gets.p50.toFixed(2), p99: +gets.p99.toFixed(2) },
        listPerSec: +lists.perSecond.toFixed(1),
        watchFanoutMs: { watchers: WATCHERS, p50: +fanout.p50.toFixed(1), p99: +fanout.p99.toFixed(1), max: +fanout.max.toFixed(1) },
        rssMiB: { pods: POD_COUNT, rss: Math.round(rss) },
      }),
    );
  } finally {
    await server.stop();
  }
}

await main();
