/**
 * bench/pods: API create → Running of real runc pods on `atoll up --nodes 1`, against the CRI-level pod
 * start of the same node's runtime measured in the same run (the baseline: what the agent adds on top).
 *
 *   node dist/bench/pods/run.js [--counts 1,10,50]
 *
 * Needs root. For each count N: N pods (busybox `sleep`, image atoll.local/busybox:latest, imported by
 * `up`) are created at once through the API; each pod's latency runs from its create call to the
 * watch event that shows it Running with its container ready. Throughput is N over the time from the
 * first create to the last Running. Between rounds the pods are deleted and awaited.
 * Baseline: RunPodSandbox + CreateContainer + StartContainer of the same image on the node's CRI
 * socket, one pod at a time (as bench/runtime does), N = the largest count.
 * Memory: RSS of the agent process (node agent and runtime share it) idle and with the largest round
 * running, plus the conmon processes of that node.
 * Target (issue 5): create→Running p50 <= 1.5 s. Prints a table, then one JSON line.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import type { KubeObject, WatchEvent } from '../../src/api/types.js';
import { KubeClient } from '../../src/client/client.js';
import { resource } from '../../src/client/informer.js';
import { criClient } from '../../src/runtime/cri/index.js';
import { percentile } from '../runtime/proc.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ATOLL = join(ROOT, 'bin', 'atoll');
const PODS = resource('pods');
const IMAGE = 'atoll.local/busybox:latest';
const UP_TIMEOUT_MS = 240_000;
const ROUND_TIMEOUT_MS = 300_000;
const NAMESPACE = 'default';

const { values: args } = parseArgs({ options: { counts: { type: 'string', default: '1,10,50' } } });
const COUNTS = String(args.counts).split(',').map(Number);
if (COUNTS.some((n) => !Number.isInteger(n) || n < 1)) {
  console.error('--counts takes comma-separated positive integers, e.g. 1,10,50');
  process.exit(2);
}

type Round = { pods: number; p50Ms: number; p99Ms: number; podsPerSecond: number };

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
}

/** RSS of the conmon processes whose command line names this node's data dir. */
async function conmonRssKiB(nodeDir: string): Promise<{ count: number; kib: number }> {
  let count = 0;
  let kib = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.startsWith('conmon\0') && !cmdline.includes('/conmon\0')) continue;
    if (!cmdline.includes(nodeDir)) continue;
    count++;
    kib += await rssKiB(Number(entry));
  }
  return { count, kib };
}

function podManifest(name: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { bench: 'pods' } },
    spec: {
      terminationGracePeriodSeconds: 0,
      containers: [{ name: 'main', image: IMAGE, imagePullPolicy: 'IfNotPresent', command: ['sleep', '86400'] }],
    },
  };
}

const running = (pod: KubeObject) => {
  const status = pod.status as { phase?: string; containerStatuses?: { ready?: boolean }[] } | undefined;
  return status?.phase === 'Running' && (status.containerStatuses ?? []).every((c) => c.ready);
};

async function measureRound(client: KubeClient, n: number, round: number): Promise<Round> {
  const names = Array.from({ length: n }, (_, i) => `bench-${round}-${i}`);
  const created = new Map<string, number>();
  const done = new Map<string, number>();
  const stop = new AbortController();
  const all = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`round of ${n}: only ${done.size} pods Running after ${ROUND_TIMEOUT_MS} ms`)), ROUND_TIMEOUT_MS);
    const onEvent = (event: WatchEvent) => {
      const pod = event.object as KubeObject;
      const name = pod.metadata?.name;
      if (!name || !created.has(name) || done.has(name) || !running(pod)) return;
      done.set(name, performance.now());
      if (done.size === n) {
        clearTimeout(timer);
        resolve();
      }
    };
    client.watch(PODS, NAMESPACE, { labelSelector: 'bench=pods' }, onEvent, stop.signal).catch(() => undefined);
  });
  await new Promise((r) => setTimeout(r, 200));
  const first = performance.now();
  await Promise.all(
    names.map(async (name) => {
      created.set(name, performance.now());
      await client.create(PODS, NAMESPACE, podManifest(name));
    }),
  );
  await all;
  stop.abort();
  const last = Math.max(...done.values());
  const latencies = names.map((name) => done.get(name)! - created.get(name)!);
  return { pods: n, p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99), podsPerSecond: n / ((last - first) / 1000) };
}

async function deleteAll(client: KubeClient): Promise<void> {
  const list = await client.list(PODS, NAMESPACE, { labelSelector: 'bench=pods' });
  await Promise.all(list.items.map((p) => client.delete(PODS, NAMESPACE, p.metadata.name!, { gracePeriodSeconds: 0 }).catch(() => undefined)));
  const deadline = Date.now() + ROUND_TIMEOUT_MS;
  while ((await client.list(PODS, NAMESPACE, { labelSelector: 'bench=pods' })).items.length > 0) {
    if (Date.now() > deadline) throw new Error('bench pods were not deleted in time');
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The baseline: CRI pod start on the node's own runtime socket, one pod at a time. */
async function criBaseline(socket: string, n: number): Promise<{ p50Ms: number; p99Ms: number }> {
  const cri = criClient(socket);
  const latencies: number[] = [];
  const sandboxes: string[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const uid = randomBytes(8).toString('hex');
      const config = { metadata: { name: `cri-${i}`, namespace: 'bench-cri', uid, attempt: 0 }, hostname: `cri-${i}`, linux: {} };
      const t0 = performance.now();
      const { pod_sandbox_id } = await cri.RunPodSandbox({ config });
      sandboxes.push(pod_sandbox_id);
      const { container_id } = await cri.CreateContainer({
        pod_sandbox_id,
        config: { metadata: { name: 'main', attempt: 0 }, image: { image: IMAGE }, command: ['sleep', '86400'] },
        sandbox_config: config,
      });
      await cri.StartContainer({ container_id });
      latencies.push(performance.now() - t0);
    }
  } finally {
    for (const id of sandboxes) {
      await cri.StopPodSandbox({ pod_sandbox_id: id }).catch(() => undefined);
      await cri.RemovePodSandbox({ pod_sandbox_id: id }).catch(() => undefined);
    }
    cri.close();
  }
  return { p50Ms: percentile(latencies, 50), p99Ms: percentile(latencies, 99) };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'atoll-bench-pods-'));
  const port = await freePort();
  let output = '';
  const up: ChildProcess = spawn(process.execPath, [ATOLL, 'up', '--nodes', '1', '--data-dir', dir, '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  up.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  up.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const stopUp = async () => {
    if (up.exitCode !== null || up.signalCode !== null) return;
    const exited = new Promise((r) => up.once('exit', r));
    up.kill('SIGINT');
    await exited;
  };
  try {
    const deadline = Date.now() + UP_TIMEOUT_MS;
    while (!output.includes('kubectl get nodes')) {
      if (up.exitCode !== null) throw new Error(`atoll up exited:\n${output}`);
      if (Date.now() > deadline) throw new Error(`atoll up did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const client = KubeClient.fromKubeconfig(join(dir, 'kubeconfig'), 'bench-pods');
    const state = JSON.parse(await readFile(join(dir, 'up.json'), 'utf8')) as { nodes: { name: string; pid: number; dataDir: string }[] };
    const node = state.nodes[0]!;
    while (!((await client.list(resource('nodes'))).items as KubeObject[]).some((n) => (n.status as { conditions?: { type: string; status: string }[] })?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'))) {
      await new Promise((r) => setTimeout(r, 250));
    }
    // Warm-up: the first pod pays for lazy code and the image's first unpack.
    await measureRound(client, 1, 0);
    await deleteAll(client);
    const idleRss = await rssKiB(node.pid);
    const rounds: Round[] = [];
    let loaded = { agentKiB: 0, conmon: { count: 0, kib: 0 } };
    for (const [i, n] of COUNTS.entries()) {
      rounds.push(await measureRound(client, n, i + 1));
      if (n === Math.max(...COUNTS)) loaded = { agentKiB: await rssKiB(node.pid), conmon: await conmonRssKiB(node.dataDir) };
      await deleteAll(client);
    }
    const baseline = await criBaseline(join(node.dataDir, 'run', 'cri.sock'), Math.max(...COUNTS));
    client.close();

    const fmt = (ms: number) => `${ms.toFixed(0)} ms`;
    console.log('\nbench/pods: API create -> Running on `atoll up --nodes 1` (real runc pods)\n');
    console.log(['pods', 'p50', 'p99', 'pods/s', 'p50 / CRI p50'].join('\t'));
    for (const r of rounds) console.log([r.pods, fmt(r.p50Ms), fmt(r.p99Ms), r.podsPerSecond.toFixed(1), `${(r.p50Ms / baseline.p50Ms).toFixed(2)}x`].join('\t'));
    console.log(`CRI baseline (RunPodSandbox+Create+Start, sequential, ${Math.max(...COUNTS)} pods): p50 ${fmt(baseline.p50Ms)}, p99 ${fmt(baseline.p99Ms)}`);
    console.log(`agent+runtime RSS: idle ${(idleRss / 1024).toFixed(1)} MiB, with ${Math.max(...COUNTS)} pods ${(loaded.agentKiB / 1024).toFixed(1)} MiB; conmon: ${loaded.conmon.count} x ${(loaded.conmon.kib / Math.max(1, loaded.conmon.count) / 1024).toFixed(2)} MiB`);
    const p50 = rounds.find((r) => r.pods === 1)?.p50Ms ?? rounds[0]!.p50Ms;
    console.log(`target: create->Running p50 <= 1500 ms: ${rounds.every((r) => r.p50Ms <= 1500) ? 'met' : 'MISSED'}`);
    console.log(JSON.stringify({ bench: 'pods', rounds, criBaseline: baseline, rss: { idleKiB: idleRss, loadedKiB: loaded.agentKiB, conmon: loaded.conmon }, singlePodP50Ms: p50 }));
  } finally {
    await stopUp();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(err);
  process.exit(1);
});
