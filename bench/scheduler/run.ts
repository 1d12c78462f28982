/**
 * bench/scheduler: how fast the scheduler places pods on hollow nodes, against the raw pod create
 * rate of the same server measured in the same run.
 *
 *   node dist/bench/scheduler/run.js [--nodes 1000] [--pods 10000] [--mode separate|in-server] [--profile DIR]
 *
 * Starts `atoll server` as its own process and registers hollow nodes (Node objects with status and
 * Leases), then:
 *   1. baseline: creates the pods from 16 clients with a schedulerName nobody serves, then deletes them;
 *   2. creates the pods again, for the default scheduler, and watches them until every one has
 *      spec.nodeName.
 * --mode in-server (default): `atoll server` as shipped, with its scheduler and controllers on threads
 *   of its own; hollow Leases are renewed every 10 s as kubelets do (100 writes/s at 1,000 nodes).
 * --mode separate: the server runs with --disable-scheduler --disable-controllers and the
 *   scheduler runs as its own process (scheduler-process.ts), so each has its own RSS; Leases are
 *   renewed once, as no node lifecycle controller reads them.
 * Latency is create response → the watch event showing spec.nodeName. RSS is read from /proc.
 * --profile writes a V8 CPU profile of the separate scheduler process into DIR.
 * Prints a table, then one JSON line. Targets (issue "scheduler"): >= 300 pods bound/s, p99
 * create→bound <= 2 s, at 1,000 nodes and 10,000 pods.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ROOT, freePort } from '../../test/e2e/harness.js';
import { ApiClient } from '../../test/support/api-client.js';
import { HOLLOW_LEASE_RENEW_MS, HollowNodes } from '../../test/support/hollow-nodes.js';
import { KubeClient } from '../../src/client/client.js';
import { resource } from '../../src/client/informer.js';

const { values: args } = parseArgs({
  options: { nodes: { type: 'string', default: '1000' }, pods: { type: 'string', default: '10000' }, mode: { type: 'string', default: 'in-server' }, profile: { type: 'string' } },
});
const NODE_COUNT = Number(args.nodes);
const POD_COUNT = Number(args.pods);
if (!Number.isInteger(NODE_COUNT) || NODE_COUNT < 1 || !Number.isInteger(POD_COUNT) || POD_COUNT < 1) {
  console.error('--nodes and --pods take positive integers');
  process.exit(2);
}
if (args.mode !== 'separate' && args.mode !== 'in-server') {
  console.error(`--mode ${args.mode}: use "separate" or "in-server"`);
  process.exit(2);
}
const SEPARATE = args.mode === 'separate';
const CLIENTS = 16;
/** Setup requests (nodes, deletes) in flight at once. */
const SETUP_PARALLELISM = 16;
/** Without a node lifecycle controller nobody reads Leases: renew once. */
const LEASE_RENEW_MS = SEPARATE ? 60 * 60_000 : HOLLOW_LEASE_RENEW_MS;
const SERVER_START_TIMEOUT_MS = 30_000;
/** Give up waiting for bindings after this long. */
const BIND_TIMEOUT_MS = 180_000;
const RSS_SAMPLE_MS = 500;
const BASELINE_NS = 'bench-baseline';
const SCHEDULED_NS = 'bench';

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function pod(name: string, schedulerName: string) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: 'bench' } },
    spec: {
      schedulerName,
      containers: [{ name: 'c', image: 'atoll.local/pause:latest', resources: { requests: { cpu: '100m', memory: '64Mi' } } }],
    },
  };
}

function rssMiB(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function inParallel(n: number, total: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < total) await work(next++);
    }),
  );
}

/** Creates the pods from CLIENTS loops; calls `created` with each name as its response arrives. */
async function createPods(api: ApiClient, namespace: string, schedulerName: string, created?: (name: string) => void): Promise<number> {
  const start = performance.now();
  await inParallel(CLIENTS, POD_COUNT, async (i) => {
    const name = `p-${i}`;
    const r = await api.request('POST', `/api/v1/namespaces/${namespace}/pods`, { body: pod(name, schedulerName) });
    if (r.status !== 201) throw new Error(`create ${name} failed: ${r.status} ${r.body}`);
    created?.(name);
  });
  return POD_COUNT / ((performance.now() - start) / 1000);
}

/** The scheduler's counters, printed by scheduler-process.ts as it exits. */
interface SchedulerStatsLine {
  attempts: number;
  bindErrors: number;
  eventsDropped: number;
}

let schedulerStats: SchedulerStatsLine | undefined;

function startScheduler(kubeconfig: string): Promise<ChildProcess> {
  const script = fileURLToPath(new URL('./scheduler-process.js', import.meta.url));
  const profile = args.profile ? ['--cpu-prof', `--cpu-prof-dir=${args.profile}`] : [];
  const child = spawn(process.execPath, [...profile, script, kubeconfig], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`scheduler exited with ${code} before syncing`)));
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('synced\n')) resolve(child);
      const stats = /^stats (.*)$/m.exec(out)?.[1];
      if (stats) schedulerStats = JSON.parse(stats) as SchedulerStatsLine;
    });
  });
}

interface AtollServer {
  child: ChildProcess;
  kubeconfig: string;
  stop(): Promise<void>;
}

/** `atoll server` on a free loopback port with a fresh data dir, as test/e2e/harness.ts starts it, plus `extra` flags. */
async function startAtollServer(extra: string[]): Promise<AtollServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'atoll-bench-scheduler-'));
  const port = await freePort();
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'atoll'), 'server', '--data-dir', dataDir, '--port', String(port), '--host', '127.0.0.1', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const stop = async () => {
    await stopProcess(child);
    await rm(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + SERVER_START_TIMEOUT_MS;
  while (!output.includes('admin kubeconfig written')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`atoll server did not come up:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, kubeconfig: join(dataDir, 'kubeconfig'), stop };
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('close', r));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

const server = await startAtollServer(SEPARATE ? ['--disable-scheduler', '--disable-controllers'] : []);
const client = KubeClient.fromKubeconfig(server.kubeconfig, 'atoll-bench');
const api = new ApiClient(server.kubeconfig, CLIENTS);
const hollow = new HollowNodes(client, LEASE_RENEW_MS);
let scheduler: ChildProcess | undefined;
const watchStop = new AbortController();
// Interrupted or crashed: take the child processes down too rather than orphan them.
const killChildren = () => {
  scheduler?.kill('SIGKILL');
  server.child.kill('SIGKILL');
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    killChildren();
    process.exit(130);
  });
}
process.once('uncaughtException', (err) => {
  killChildren();
  throw err;
});
try {
  const t0 = performance.now();
  for (const ns of [BASELINE_NS, SCHEDULED_NS]) await client.create(resource('namespaces'), undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  await inParallel(SETUP_PARALLELISM, NODE_COUNT, async (i) => {
    await hollow.add(`hollow-${String(i).padStart(4, '0')}`);
  });
  const setupSeconds = (performance.now() - t0) / 1000;

  // 1. Baseline: the same creates with nobody scheduling them, then cleared away.
  const baselineRate = await createPods(api, BASELINE_NS, 'bench-no-scheduler');
  await inParallel(SETUP_PARALLELISM, POD_COUNT, async (i) => {
    const r = await api.request('DELETE', `/api/v1/namespaces/${BASELINE_NS}/pods/p-${i}`);
    if (r.status !== 200) throw new Error(`delete failed: ${r.status} ${r.body}`);
  });

  // 2. The scheduler (in its own process, or the server's), then the same creates watched until bound.
  if (SEPARATE) scheduler = await startScheduler(server.kubeconfig);
  let serverPeak = rssMiB(server.child.pid);
  let schedulerPeak = rssMiB(scheduler?.pid);
  const sampler = setInterval(() => {
    serverPeak = Math.max(serverPeak, rssMiB(server.child.pid));
    schedulerPeak = Math.max(schedulerPeak, rssMiB(scheduler?.pid));
  }, RSS_SAMPLE_MS);

  const createdAt = new Map<string, number>();
  const boundAt = new Map<string, number>();
  let allBound: () => void = () => undefined;
  let watchError: unknown;
  const done = new Promise<void>((r) => (allBound = r));
  const list = await client.list(resource('pods'), SCHEDULED_NS, { limit: 1 });
  const watching = client.watch(
    resource('pods'),
    SCHEDULED_NS,
    { resourceVersion: list.metadata.resourceVersion },
    (event) => {
      const obj = event.object as { metadata: { name?: string }; spec?: { nodeName?: string } };
      const name = obj.metadata.name!;
      if (!obj.spec?.nodeName || boundAt.has(name)) return;
      boundAt.set(name, performance.now());
      if (boundAt.size === POD_COUNT) allBound();
    },
    watchStop.signal,
  ).catch((err: unknown) => {
    watchError = err;
    allBound();
  });
  const start = performance.now();
  const scheduledCreateRate = await createPods(api, SCHEDULED_NS, 'default-scheduler', (name) => createdAt.set(name, performance.now()));
  const timedOut = await Promise.race([done.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), BIND_TIMEOUT_MS).unref())]);
  const end = Math.max(...boundAt.values());
  clearInterval(sampler);
  watchStop.abort();
  await watching;
  if (watchError) throw new Error(`watching pods failed: ${String(watchError)}`);
  const schedulerRss = rssMiB(scheduler?.pid);
  const serverRss = rssMiB(server.child.pid);
  if (scheduler) await stopProcess(scheduler);

  const latencies = [...boundAt].map(([name, at]) => Math.max(0, at - (createdAt.get(name) ?? at)));
  const bindRate = boundAt.size / ((end - start) / 1000);
  const result = {
    mode: args.mode,
    nodes: NODE_COUNT,
    pods: POD_COUNT,
    bound: boundAt.size,
    timedOut,
    setupSeconds: Number(setupSeconds.toFixed(1)),
    baselineCreatePerSec: Math.round(baselineRate),
    createPerSecWithScheduler: Math.round(scheduledCreateRate),
    boundPerSec: Math.round(bindRate),
    latencyP50Ms: Math.round(percentile(latencies, 50)),
    latencyP99Ms: Math.round(percentile(latencies, 99)),
    latencyMaxMs: Math.round(Math.max(...latencies)),
    serverRssMiB: Math.round(serverRss),
    serverPeakRssMiB: Math.round(Math.max(serverPeak, serverRss)),
    schedulerRssMiB: Math.round(schedulerRss),
    schedulerPeakRssMiB: Math.round(Math.max(schedulerPeak, schedulerRss)),
    schedulingAttempts: schedulerStats?.attempts,
    bindErrors: schedulerStats?.bindErrors,
    scheduledEventsDropped: schedulerStats?.eventsDropped,
  };
  const rows: [string, string, string, string][] = [
    ['metric', 'value', 'vs baseline', 'target'],
    ['create pods, 16 clients, no scheduler', `${result.baselineCreatePerSec} /s`, 'baseline', ''],
    ['create pods, 16 clients, scheduler running', `${result.createPerSecWithScheduler} /s`, `${((100 * scheduledCreateRate) / baselineRate).toFixed(1)}%`, ''],
    [`pods bound (${result.bound}/${POD_COUNT} on ${NODE_COUNT} nodes)`, `${result.boundPerSec} /s`, `${((100 * bindRate) / baselineRate).toFixed(1)}%`, '>= 300 /s'],
    ['create→bound p50 / p99 / max', `${result.latencyP50Ms} / ${result.latencyP99Ms} / ${result.latencyMaxMs} ms`, '', 'p99 <= 2000 ms'],
    [SEPARATE ? 'server RSS end / peak (API only)' : 'server RSS end / peak (with scheduler, controllers)', `${result.serverRssMiB} / ${result.serverPeakRssMiB} MiB`, '', ''],
  ];
  if (SEPARATE) {
    rows.push(
      ['scheduler RSS end / peak (own process)', `${result.schedulerRssMiB} / ${result.schedulerPeakRssMiB} MiB`, '', ''],
      ['scheduling attempts / bind errors', `${result.schedulingAttempts} / ${result.bindErrors}`, '', ''],
      ['Scheduled events dropped (best effort)', `${result.scheduledEventsDropped}`, '', ''],
    );
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) console.log(`| ${r.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`);
  console.log(JSON.stringify(result));
  if (timedOut) process.exitCode = 1;
} finally {
  watchStop.abort();
  hollow.close();
  if (scheduler) await stopProcess(scheduler);
  api.close();
  client.close();
  await server.stop();
}
