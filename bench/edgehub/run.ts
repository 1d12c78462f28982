/**
 * bench/edgehub: what EdgeHub costs online, what it serves offline, and how fast an edge node comes
 * back (issue 6), each against its baseline measured in the same run.
 *
 *   node dist/bench/edgehub/run.js [--requests 500] [--runs 3] [--pods 20] [--parts latency,node] [--no-runv]
 *
 * Needs root (the node part runs `atoll up --nodes 1`, taking the e2e tests' lock so they take turns).
 * - latency: GET one pod, LIST a namespace of 50 pods, LIST with a label selector; straight to
 *   `atoll server`, through a bare forwarder (what any proxy hop costs), through a standalone
 *   `atoll edgehub` online, and through it offline (its cache). Also the standalone EdgeHub's RSS.
 *   See latency.ts.
 * - node: agent process RSS (EdgeHub included), link restored → node Ready, and offline-reboot
 *   recovery of N pods, each repeated --runs times. See node.ts. --no-runv passes `up` its flag of
 *   that name: agents that serve runc only (with runv, an agent opens it once its pods are started).
 * Targets: EdgeHub adds <= 1 ms p50 online; agent RSS <= 120 MB; recovery <= 10 s (OpenYurt: 49.86 s);
 * Ready within 2 probe periods of the link's return. Prints a table, then one JSON line.
 */
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { percentile } from '../runtime/proc.js';
import { measureLatency, type LatencyResult } from './latency.js';
import { measureNode, type NodeResult } from './node.js';
import { mib, type Memory } from './proc.js';

const TARGET_ADDED_P50_MS = 1;
const TARGET_AGENT_RSS_BYTES = 120e6;
const TARGET_RECOVERY_MS = 10_000;
const OPENYURT_RECOVERY_MS = 49_860;
/** The acceptance: Ready again within this many health-check periods of the heal. */
const HEAL_PERIODS = 2;
const PARTS = ['latency', 'node'] as const;

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '500' },
    runs: { type: 'string', default: '3' },
    pods: { type: 'string', default: '20' },
    parts: { type: 'string', default: PARTS.join(',') },
    'no-runv': { type: 'boolean', default: false },
  },
});
const positive = (flag: string, value: string, example: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${flag} ${value}: want a positive integer, e.g. --${flag} ${example}`);
    process.exit(2);
  }
  return n;
};
const REQUESTS = positive('requests', String(args.requests), '500');
const RUNS = positive('runs', String(args.runs), '3');
const POD_COUNT = positive('pods', String(args.pods), '20');
const parts = String(args.parts).split(',');
if (parts.length === 0 || parts.some((p) => !(PARTS as readonly string[]).includes(p))) {
  console.error(`--parts ${args.parts}: want a comma-separated subset of ${PARTS.join(',')}`);
  process.exit(2);
}

const ms = (v: number) => `${v.toFixed(v < 10 ? 2 : 0)} ms`;
const median = (values: number[]) => percentile(values, 50);
const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
const rssPss = (m: Memory) => `${mib(m.rssKiB)} MiB (${mib(m.pssKiB)})`;

function table(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join(' | ');
  console.log(`\n${title}\n`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('-|-'));
  for (const r of rows) console.log(line(r));
}

function printLatency(l: LatencyResult): boolean {
  const pair = (x: { p50Ms: number; p99Ms: number }) => `${ms(x.p50Ms)} / ${ms(x.p99Ms)}`;
  table(
    `EdgeHub latency p50 / p99, ${l.requests} requests each: straight to atoll server, through a bare forwarder (any proxy hop), ` +
      'through EdgeHub on a unix socket, and through it offline (from its cache)',
    ['request', 'direct', 'bare hop', 'EdgeHub online', 'added p50 (bare hop)', 'online / direct', 'EdgeHub offline', 'offline / direct', 'CPU/request bare, EdgeHub'],
    l.queries.map((q) => [
      q.query,
      pair(q.direct),
      pair(q.bareHop),
      pair(q.online),
      `${ms(q.online.p50Ms - q.direct.p50Ms)} (${ms(q.bareHop.p50Ms - q.direct.p50Ms)})`,
      `${(q.online.p50Ms / q.direct.p50Ms).toFixed(2)}x`,
      pair(q.offline),
      `${(q.offline.p50Ms / q.direct.p50Ms).toFixed(2)}x`,
      `${ms(q.cpuPerRequestMs.bareHop)}, ${ms(q.cpuPerRequestMs.edgehub)}`,
    ]),
  );
  const { idle, loaded } = l.edgehubMemory;
  console.log(`standalone atoll edgehub RSS (PSS): ${rssPss(idle)} after start, ${rssPss(loaded)} after the requests (peak RSS ${mib(loaded.peakKiB)} MiB)`);
  const ok = l.queries.every((q) => q.online.p50Ms - q.direct.p50Ms <= TARGET_ADDED_P50_MS);
  console.log(`target: EdgeHub adds <= ${TARGET_ADDED_P50_MS} ms p50 online: ${met(ok)}`);
  return ok;
}

interface NodeSummary {
  agentPeakRssMiB: number;
  healToReadyMedianMs: number;
  healToReadyWorstMs: number;
  recoveryMedianMs: number;
  recoveryWorstMs: number;
}

function summarize(n: NodeResult): NodeSummary {
  const heal = n.heal.map((h) => h.linkRestoredToNodeReadyMs);
  const recovery = n.reboot.map((r) => r.toAllReadyMs);
  return {
    agentPeakRssMiB: mib(Math.max(n.agentMemory.withPods.peakKiB, ...n.reboot.map((r) => r.agentMemory.peakKiB))),
    healToReadyMedianMs: median(heal),
    healToReadyWorstMs: Math.max(...heal),
    recoveryMedianMs: median(recovery),
    recoveryWorstMs: Math.max(...recovery),
  };
}

function printNode(n: NodeResult, sum: NodeSummary): { rss: boolean; recovery: boolean; heal: boolean } {
  console.log(
    `\nagent process RSS (EdgeHub, agent and runtime; PSS in parentheses): idle ${rssPss(n.agentMemory.idle)}; with ${n.pods} pods ${rssPss(n.agentMemory.withPods)}; ` +
      `after offline reboots ${n.reboot.map((r) => rssPss(r.agentMemory)).join(', ')}; peak ${sum.agentPeakRssMiB} MiB`,
  );
  const rss = sum.agentPeakRssMiB * 1024 * 1024 <= TARGET_AGENT_RSS_BYTES;
  console.log(`target: agent RSS <= 120 MB (${mib(TARGET_AGENT_RSS_BYTES / 1024)} MiB), peak included: ${met(rss)}`);

  table(
    `link restored -> node Ready in the API (grace period ${n.gracePeriodSeconds} s, EdgeHub probe period ${n.probePeriodSeconds} s, 2 successes to come back)`,
    ['run', 'partitioned for', 'restored after last probe', '-> EdgeHub online', '-> node Ready'],
    n.heal.map((h, i) => [String(i + 1), ms(h.partitionedMs), ms(h.intoProbePeriodMs), ms(h.linkRestoredToEdgeHubOnlineMs), ms(h.linkRestoredToNodeReadyMs)]),
  );
  const healLimit = HEAL_PERIODS * n.probePeriodSeconds * 1000;
  const heal = sum.healToReadyWorstMs <= healLimit;
  console.log(`target: Ready within ${HEAL_PERIODS} probe periods (${healLimit / 1000} s): ${met(heal)}; median ${ms(sum.healToReadyMedianMs)}, worst ${ms(sum.healToReadyWorstMs)}`);

  table(
    `offline reboot of the node with ${n.pods} pods, while partitioned: from the agent's start (times from there)`,
    ['run', 'stop (cleanup)', 'serving', 'first sandbox', 'all sandboxes', 'first container', 'all containers', 'all Ready (node\'s view)'],
    n.reboot.map((r, i) => [
      String(i + 1),
      ms(r.stopMs),
      ms(r.toServingMs),
      ms(r.toFirstSandboxMs),
      ms(r.toAllSandboxesMs),
      ms(r.toFirstContainerStartedMs),
      ms(r.toAllContainersStartedMs),
      ms(r.toAllReadyMs),
    ]),
  );
  const recovery = sum.recoveryWorstMs <= TARGET_RECOVERY_MS;
  console.log(
    `target: recovery <= ${TARGET_RECOVERY_MS / 1000} s (OpenYurt ${OPENYURT_RECOVERY_MS / 1000} s): ${met(recovery)}; ` +
      `median ${ms(sum.recoveryMedianMs)}, worst ${ms(sum.recoveryWorstMs)} (${(OPENYURT_RECOVERY_MS / sum.recoveryWorstMs).toFixed(1)}x faster than OpenYurt)`,
  );
  return { rss, recovery, heal };
}

async function main(): Promise<void> {
  const stop = new AbortController();
  // Ctrl-C: stop measuring and clean up (the `up` child gets the terminal's Ctrl-C as well).
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => stop.abort());
  // The machine may be shared: its load goes with the numbers.
  const loadBefore = loadavg().map((l) => +l.toFixed(2));
  const latency = parts.includes('latency') ? await measureLatency(REQUESTS, stop.signal) : undefined;
  const node = parts.includes('node') ? await measureNode({ pods: POD_COUNT, runs: RUNS, upFlags: args['no-runv'] ? ['--no-runv'] : [], signal: stop.signal, log: (line) => console.error(`bench/edgehub: ${line}`) }) : undefined;

  console.log('\nbench/edgehub');
  const targets: Record<string, boolean> = {};
  if (latency) targets.addedP50 = printLatency(latency);
  const summary = node && summarize(node);
  if (node && summary) Object.assign(targets, printNode(node, summary));
  const load = { before: loadBefore, after: loadavg().map((l) => +l.toFixed(2)) };
  console.log(`load average (1, 5, 15 min) before ${load.before.join(', ')}; after ${load.after.join(', ')} (${cpus().length} CPUs)`);
  console.log(JSON.stringify({ bench: 'edgehub', latency, node, summary, targets, loadAverage: load }));
}

main().catch((err: Error) => {
  console.error(err);
  process.exit(1);
});
