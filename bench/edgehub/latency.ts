/**
 * GET and LIST latency through a standalone `atoll edgehub` (its own process, on a unix socket, as the
 * node agent reaches its EdgeHub) in front of `atoll server`, against the same requests sent straight
 * to the server in the same run; then again with the cloud cut off, served from EdgeHub's cache.
 *
 * A second baseline is a bare forwarder (forwarder.ts) on a unix socket in front of the same server:
 * the cost of any proxy hop on this machine, so EdgeHub's own share of what it adds can be told apart.
 * Each target gets its requests back to back (so work a proxy does after answering, such as writing
 * its cache, delays the next request as it would for a real client), in blocks that rotate between
 * the targets, so load from elsewhere on a shared machine hits all of them alike. CPU time per request
 * of both proxies (from /proc) is reported as well: it depends far less on that load than latency.
 *
 * The cut is a SIGSTOP of the API server: its sockets stay open and new connections are accepted by
 * the kernel but never answered, which is what a blackholed link looks like to EdgeHub, with no
 * forwarder added to the online path being measured. SIGCONT undoes it.
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubeObject } from '../../src/api/types.js';
import { KubeClient } from '../../src/client/client.js';
import { resource } from '../../src/client/informer.js';
import { ROOT, startServer } from '../../test/e2e/harness.js';
import { ApiClient } from '../../test/support/api-client.js';
import { percentile } from '../runtime/proc.js';
import { cpuMs, memoryOf, poll, startChild, type Child, type Memory } from './proc.js';

const ATOLL = join(ROOT, 'bin', 'atoll');
const FORWARDER = fileURLToPath(new URL('./forwarder.js', import.meta.url));
const PODS = resource('pods');
const NAMESPACE = 'bench-edgehub';
/** Pods in the listed namespace; every fifth matches the selector. */
const POD_COUNT = 50;
const SELECTOR = 'tier=t0';
/** EdgeHub's probe period here: the shortest the CLI allows, so the cut is noticed quickly. */
const PROBE_PERIOD_SECONDS = 1;
/** Requests per query and target before measuring: lazy code, TLS sessions, the cache's first rows. */
const WARMUP = 50;
/** Back-to-back requests to one target before the next target's turn. */
const BLOCK = 25;
const CHILD_START_TIMEOUT_MS = 30_000;
/** 3 failed probes of at most 2 s each, a period apart, plus slack. */
const OFFLINE_TIMEOUT_MS = 30_000;
const POLL_MS = 100;
const STOP_GRACE_MS = 5_000;
/** The component whose cache is read offline is the one that warmed it: EdgeHub keys it by User-Agent. */
const USER_AGENT = 'atoll-agent/bench';

export interface Latency {
  p50Ms: number;
  p99Ms: number;
}

export interface QueryLatency {
  query: string;
  items: number;
  direct: Latency;
  /** Through the bare forwarder. */
  bareHop: Latency;
  online: Latency;
  offline: Latency;
  /** CPU time per request of each proxy process, all threads, online. */
  cpuPerRequestMs: { bareHop: number; edgehub: number };
}

export interface LatencyResult {
  requests: number;
  queries: QueryLatency[];
  /** The standalone EdgeHub process after start, and after all the requests above. */
  edgehubMemory: { idle: Memory; loaded: Memory };
  probePeriodSeconds: number;
}

interface Query {
  name: string;
  /** Sends the request and returns how many objects came back. */
  send(client: KubeClient): Promise<number>;
  expected: number;
}

const QUERIES: Query[] = [
  { name: 'GET one pod', send: async (c) => ((await c.get(PODS, NAMESPACE, 'p-0')).metadata.name === 'p-0' ? 1 : 0), expected: 1 },
  { name: `LIST ${POD_COUNT} pods in a namespace`, send: async (c) => (await c.list(PODS, NAMESPACE)).items.length, expected: POD_COUNT },
  { name: `LIST with labelSelector ${SELECTOR}`, send: async (c) => (await c.list(PODS, NAMESPACE, { labelSelector: SELECTOR })).items.length, expected: POD_COUNT / 5 },
];

function pod(i: number): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `p-${i}`, labels: { app: 'bench', tier: `t${i % 5}` } },
    spec: { nodeName: 'edge-bench', containers: [{ name: 'main', image: 'atoll.local/busybox:latest', command: ['sleep', '86400'] }] },
  };
}

interface Target {
  name: string;
  client: KubeClient;
  /** The proxy process, whose CPU time is counted. */
  pid?: number;
}

/** `n` back-to-back requests; a wrong answer fails the bench rather than timing a broken path. */
async function block(target: Target, q: Query, n: number, into: number[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const items = await q.send(target.client);
    into.push(performance.now() - t0);
    if (items !== q.expected) throw new Error(`${q.name} (${target.name}): ${items} objects, want ${q.expected}`);
  }
}

/** Rotates blocks of requests between the targets; returns each target's latencies and proxy CPU time. */
async function measure(targets: Target[], q: Query, requests: number, signal: AbortSignal): Promise<{ samples: number[]; cpuMs: number }[]> {
  const results = targets.map(() => ({ samples: [] as number[], cpuMs: 0 }));
  for (const t of targets) await block(t, q, WARMUP, []);
  for (let done = 0; done < requests && !signal.aborted; done += BLOCK) {
    for (const [i, t] of targets.entries()) {
      const before = t.pid ? await cpuMs(t.pid) : 0;
      await block(t, q, Math.min(BLOCK, requests - done), results[i]!.samples);
      if (t.pid) results[i]!.cpuMs += (await cpuMs(t.pid)) - before;
    }
  }
  return results;
}

const summary = (samples: number[]): Latency => ({ p50Ms: +percentile(samples, 50).toFixed(3), p99Ms: +percentile(samples, 99).toFixed(3) });

export async function measureLatency(requests: number, signal: AbortSignal): Promise<LatencyResult> {
  const dir = await mkdtemp(join(tmpdir(), 'atoll-bench-edgehub-'));
  await chmod(dir, 0o700);
  const server = await startServer(['--disable-controllers', '--disable-scheduler']);
  const serverPid = server.child.pid!;
  let stopped = false;
  const children: Child[] = [];
  const clients: KubeClient[] = [];
  try {
    const admin = new ApiClient(server.kubeconfig);
    admin.close();
    const files = { ca: join(dir, 'ca.crt'), cert: join(dir, 'client.crt'), key: join(dir, 'client.key') };
    await writeFile(files.ca, admin.ca);
    await writeFile(files.cert, admin.cert);
    await writeFile(files.key, admin.key, { mode: 0o600 });

    const direct = new KubeClient({ server: server.url, caPem: admin.ca, certPem: admin.cert, keyPem: admin.key }, USER_AGENT);
    clients.push(direct);
    await direct.create(resource('namespaces'), undefined, { metadata: { name: NAMESPACE } });
    for (let i = 0; i < POD_COUNT; i++) await direct.create(PODS, NAMESPACE, pod(i));

    const hubSocket = join(dir, 'edgehub.sock');
    const hub = await startChild(
      [ATOLL, 'edgehub', '--server', server.url, '--ca-file', files.ca, '--cert-file', files.cert, '--key-file', files.key,
        '--cache', join(dir, 'cache.db'), '--socket', hubSocket, '--probe-period', String(PROBE_PERIOD_SECONDS)],
      'serving on',
      { timeoutMs: CHILD_START_TIMEOUT_MS, signal },
    );
    children.push(hub);
    const bareSocket = join(dir, 'forwarder.sock');
    const bare = await startChild([FORWARDER, bareSocket, server.url, files.ca, files.cert, files.key], 'forwarding', { timeoutMs: CHILD_START_TIMEOUT_MS, signal });
    children.push(bare);
    const idle = await memoryOf(hub.process.pid!);
    const viaHub = new KubeClient({ server: `unix://${hubSocket}` }, USER_AGENT);
    const viaBare = new KubeClient({ server: `unix://${bareSocket}` }, USER_AGENT);
    clients.push(viaHub, viaBare);
    const targets: Target[] = [
      { name: 'direct', client: direct },
      { name: 'bare hop', client: viaBare, pid: bare.process.pid },
      { name: 'EdgeHub online', client: viaHub, pid: hub.process.pid },
    ];
    const online = new Map<Query, { samples: number[]; cpuMs: number }[]>();
    for (const q of QUERIES) online.set(q, await measure(targets, q, requests, signal));

    process.kill(serverPid, 'SIGSTOP');
    stopped = true;
    await poll('EdgeHub to mark the cloud unhealthy', async () => !(await viaHub.json<{ cloud: { healthy: boolean } }>('GET', '/healthz')).cloud.healthy, {
      timeoutMs: OFFLINE_TIMEOUT_MS,
      intervalMs: POLL_MS,
      signal,
    });
    const offline = new Map<Query, number[]>();
    for (const q of QUERIES) offline.set(q, (await measure([{ name: 'EdgeHub offline', client: viaHub }], q, requests, signal))[0]!.samples);
    const loaded = await memoryOf(hub.process.pid!);

    return {
      requests,
      queries: QUERIES.map((q) => {
        const [d, b, h] = online.get(q)!;
        return {
          query: q.name,
          items: q.expected,
          direct: summary(d!.samples),
          bareHop: summary(b!.samples),
          online: summary(h!.samples),
          offline: summary(offline.get(q)!),
          cpuPerRequestMs: { bareHop: +(b!.cpuMs / b!.samples.length).toFixed(3), edgehub: +(h!.cpuMs / h!.samples.length).toFixed(3) },
        };
      }),
      edgehubMemory: { idle, loaded },
      probePeriodSeconds: PROBE_PERIOD_SECONDS,
    };
  } finally {
    for (const c of clients) c.close();
    if (stopped) process.kill(serverPid, 'SIGCONT');
    for (const c of children) await c.stop('SIGINT', STOP_GRACE_MS);
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
