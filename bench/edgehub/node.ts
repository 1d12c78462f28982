/**
 * The edge node side of bench/edgehub, on `atoll up --nodes 1` (node-monitor grace period shortened by
 * flag, node marked autonomous, real runc pods):
 *
 * - RSS of the agent process (EdgeHub, node agent and runtime share it): idle, with the pods, and
 *   right after each offline reboot (when its peak is the start-up with every pod at once).
 * - Link restored → node Ready in the API: the link is cut (`atoll net partition`) until the cloud
 *   sees the node NotReady and the node's EdgeHub has marked the cloud unreachable, then restored
 *   (`atoll net heal`, the same call in process, so the time starts when the link is back). What it
 *   takes depends on where in EdgeHub's probe period the link returns; the runs spread over it.
 * - Offline-reboot recovery: while partitioned, the node is fully stopped as the e2e test of issue 6
 *   does it (agent SIGKILLed, then cleanupNode: containers, processes and mounts gone, disk kept),
 *   with `up` held meanwhile so it restarts the agent only on a node that is fully down, as a reboot
 *   would. Timed from that agent's start (the supervisor's start line in its log)
 *   until every pod is Ready again as the node sees it: in its EdgeHub's cache, which holds the
 *   statuses the agent wrote offline, with containers that are not the killed ones. The cloud cannot
 *   see any of this while the link is cut. The breakdown comes from the runtime's own timestamps
 *   (sandbox created, container started) over the node's CRI socket.
 *
 * Lifecycle: `measureNode` takes the e2e tests' `up` lock (startUp), measures, and stops `up` with
 * Ctrl-C, which removes the node's containers, mounts, links and netns, even after a failure.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { agentPaths } from '../../src/agent/agent.js';
import { POD_UID_LABEL } from '../../src/agent/contracts.js';
import type { KubeObject } from '../../src/api/types.js';
import { KubeClient } from '../../src/client/client.js';
import { resource, sleep } from '../../src/client/informer.js';
import { ANNOTATION_AUTONOMY } from '../../src/controllers/autonomy.js';
import { DEFAULT_PROBE_PERIOD_MS } from '../../src/edgehub/health.js';
import { criClient } from '../../src/runtime/cri/index.js';
import { cleanupNode } from '../../src/up/cleanup.js';
import { setPartition } from '../../src/up/net.js';
import { readUpState, type UpNode } from '../../src/up/state.js';
import { startUp, type UpProcess } from '../../test/e2e/harness.js';
import { memoryOf, poll, type Memory } from './proc.js';

const PODS = resource('pods');
const NODES = resource('nodes');
const NAMESPACE = 'default';
const POD_LABEL = 'bench=edgehub';
const IMAGE = 'atoll.local/busybox:latest';
/** The example grace period, so the cloud marks a cut node NotReady within the bench. */
const GRACE_PERIOD_SECONDS = 10;
const PODS_READY_TIMEOUT_MS = 300_000;
/** NotReady after the grace period; EdgeHub offline after 3 failed probes of a 10 s period. */
const PARTITION_TIMEOUT_MS = 120_000;
const HEAL_TIMEOUT_MS = 120_000;
const RECOVERY_TIMEOUT_MS = 180_000;
/** The resolution of what is timed by polling (Ready in the API, in the node's cache). */
const TIMING_POLL_MS = 50;
const WAIT_POLL_MS = 250;
/** How much of the agent's log a failure shows. */
const AGENT_LOG_LINES = 40;

export interface HealRun {
  /** How long the link was cut before it was restored. */
  partitionedMs: number;
  /** How long after EdgeHub marked the cloud down (after its last probe) the link was restored. */
  intoProbePeriodMs: number;
  linkRestoredToEdgeHubOnlineMs: number;
  linkRestoredToNodeReadyMs: number;
}

export interface RebootRun {
  /** cleanupNode of the node (containers killed, processes killed, mounts removed): the "shutdown". */
  stopMs: number;
  /** From the agent's start, as the node sees each step. */
  toServingMs: number;
  toFirstSandboxMs: number;
  toAllSandboxesMs: number;
  toFirstContainerStartedMs: number;
  toAllContainersStartedMs: number;
  toAllReadyMs: number;
  agentMemory: Memory;
}

export interface NodeResult {
  pods: number;
  probePeriodSeconds: number;
  gracePeriodSeconds: number;
  agentMemory: { idle: Memory; withPods: Memory };
  heal: HealRun[];
  reboot: RebootRun[];
}

export interface NodeOptions {
  pods: number;
  /** Extra flags for `atoll up` (e.g. --no-runv). */
  upFlags: string[];
  /** How many times each of the heal and the reboot is measured. */
  runs: number;
  signal: AbortSignal;
  /** Progress, one line per step. */
  log(line: string): void;
}

type Json = Record<string, any>;

const readyCondition = (obj: Json) => (obj.status?.conditions as Json[] | undefined)?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
const containerIds = (pod: Json): string[] => ((pod.status?.containerStatuses as Json[] | undefined) ?? []).map((c) => String(c.containerID ?? ''));
const forever = (pod: Json) =>
  ['node.kubernetes.io/unreachable', 'node.kubernetes.io/not-ready'].every((key) =>
    ((pod.spec?.tolerations as Json[] | undefined) ?? []).some((t) => t.key === key && t.effect === 'NoExecute' && t.tolerationSeconds === undefined),
  );

function podManifest(i: number): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `edgehub-${i}`, labels: { bench: 'edgehub' } },
    spec: {
      terminationGracePeriodSeconds: 0,
      containers: [{ name: 'main', image: IMAGE, imagePullPolicy: 'IfNotPresent', command: ['sleep', '86400'] }],
    },
  };
}

/** The probe period of the agent's EdgeHub: its --probe-period flag, else EdgeHub's default. */
async function probePeriodOf(pid: number): Promise<number> {
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
  const i = argv.indexOf('--probe-period');
  return i >= 0 ? Number(argv[i + 1]) : DEFAULT_PROBE_PERIOD_MS / 1000;
}

/** Wall-clock ms of the last `--- <ISO time> start N:` line the supervisor wrote into the agent's log. */
function lastAgentStart(log: string): number | undefined {
  const starts = [...log.matchAll(/^--- (\S+) start \d+:/gm)];
  return starts.length ? Date.parse(starts[starts.length - 1]![1]!) : undefined;
}

export async function measureNode(opts: NodeOptions): Promise<NodeResult> {
  const up = await startUp(1, ['--node-monitor-grace-period', String(GRACE_PERIOD_SECONDS), ...opts.upFlags]);
  let node: UpNode | undefined;
  try {
    node = (await readUpState(up.dir))!.nodes[0]!;
    return await measureOn(up, node, opts);
  } catch (err) {
    // `up` removes the node's files when it stops: what the agent said goes with the error.
    const log = node ? await readFile(node.logFile, 'utf8').catch(() => '') : '';
    throw new Error(`${(err as Error).message}\nthe last lines of the agent's log:\n${log.split('\n').slice(-AGENT_LOG_LINES).join('\n')}`);
  } finally {
    await up.cleanup();
  }
}

async function measureOn(up: UpProcess, node: UpNode, opts: NodeOptions): Promise<NodeResult> {
  const { signal } = opts;
  const paths = agentPaths(node.dataDir);
  const client = KubeClient.fromKubeconfig(join(up.dir, 'kubeconfig'), 'bench-edgehub');
  // What the node's own agent reads: its EdgeHub's cache is kept per User-Agent component, and answers
  // offline only queries that a list the agent made covers (its pods, by spec.nodeName).
  const cache = new KubeClient({ server: `unix://${paths.edgehubSocket}` }, `atoll-agent/${node.name}`);
  const cachedPods = async () => (await cache.list(PODS, NAMESPACE, { labelSelector: POD_LABEL, fieldSelector: `spec.nodeName=${node.name}` })).items as Json[];
  const agentPid = async () => (await readUpState(up.dir))!.nodes[0]!.pid!;
  const edgeHubOnline = async () => (await cache.json<{ cloud: { healthy: boolean } }>('GET', '/healthz')).cloud.healthy;
  const nodeReady = async () => readyCondition(await client.get(NODES, undefined, node.name));
  const partition = (cut: boolean) => setPartition(up.dir, node.name, cut);
  const wait = <T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs: number) => poll(what, check, { timeoutMs, intervalMs: WAIT_POLL_MS, signal });
  const time = <T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs: number) => poll(what, check, { timeoutMs, intervalMs: TIMING_POLL_MS, signal });
  try {
    const probePeriodSeconds = await probePeriodOf(await agentPid());
    const idle = await memoryOf(await agentPid());

    await client.patch(NODES, undefined, node.name, 'merge', { metadata: { annotations: { [ANNOTATION_AUTONOMY]: 'true' } } });
    await Promise.all(Array.from({ length: opts.pods }, (_, i) => client.create(PODS, NAMESPACE, podManifest(i))));
    await wait(
      `${opts.pods} pods Ready with the autonomy controller's forever tolerations`,
      async () => {
        const pods = (await client.list(PODS, NAMESPACE, { labelSelector: POD_LABEL })).items as Json[];
        return pods.length === opts.pods && pods.every((p) => readyCondition(p) && forever(p));
      },
      PODS_READY_TIMEOUT_MS,
    );
    const withPods = await memoryOf(await agentPid());
    opts.log(`${opts.pods} pods Ready on ${node.name}; agent RSS ${JSON.stringify(withPods)} KiB`);

    const heal: HealRun[] = [];
    for (let run = 0; run < opts.runs && !signal.aborted; run++) {
      await partition(true);
      const cutAt = performance.now();
      const [, offline] = await Promise.all([
        wait('the cloud to see the node NotReady', async () => !(await nodeReady()), PARTITION_TIMEOUT_MS),
        time('the node\'s EdgeHub to mark the cloud unreachable', async () => !(await edgeHubOnline()), PARTITION_TIMEOUT_MS),
      ]);
      // EdgeHub probes a period after its last probe ended, which is when it marked the cloud down; each
      // run heals at another point of that cycle, as a real link returns at any point of it.
      const phaseMs = (run / opts.runs) * probePeriodSeconds * 1000;
      await sleep(offline.at + phaseMs - performance.now(), signal);
      await partition(false);
      const restored = performance.now();
      const [online, ready] = await Promise.all([
        time('the node\'s EdgeHub back online', edgeHubOnline, HEAL_TIMEOUT_MS),
        time('the node Ready in the API', nodeReady, HEAL_TIMEOUT_MS),
      ]);
      heal.push({
        partitionedMs: Math.round(restored - cutAt),
        intoProbePeriodMs: Math.round(restored - offline.at),
        linkRestoredToEdgeHubOnlineMs: Math.round(online.at - restored),
        linkRestoredToNodeReadyMs: Math.round(ready.at - restored),
      });
      opts.log(`heal ${run + 1}/${opts.runs}: ${JSON.stringify(heal[run])}`);
    }

    await partition(true);
    await wait('the node\'s EdgeHub to mark the cloud unreachable', async () => !(await edgeHubOnline()), PARTITION_TIMEOUT_MS);
    const reboot: RebootRun[] = [];
    for (let run = 0; run < opts.runs && !signal.aborted; run++) {
      const before = await cachedPods();
      const uids = new Set(before.map((p) => p.metadata.uid as string));
      const killed = new Set(before.flatMap(containerIds));
      const logStart = (await readFile(node.logFile, 'utf8')).length;
      const newLog = async () => (await readFile(node.logFile, 'utf8')).slice(logStart);

      // `up` (its supervisor, and the control plane the cut node cannot reach anyway) is held while the
      // node stops, so the agent it restarts boots on a node that is fully down, as after a reboot, rather
      // than racing the cleanup. Its restart back-off is not part of what is timed.
      const upPid = up.child.pid!;
      process.kill(upPid, 'SIGSTOP');
      let killedAt: number;
      let stoppedAt: number;
      try {
        process.kill(await agentPid(), 'SIGKILL');
        killedAt = Date.now();
        // What a reboot takes: every process and mount of the node; its disk stays.
        await cleanupNode(node.dataDir, { netnsPath: node.netnsPath });
        stoppedAt = Date.now();
      } finally {
        process.kill(upPid, 'SIGCONT');
      }

      let servingAt: number | undefined;
      const recovered = await time(
        `${opts.pods} pods Ready again in the node's cache, with new containers`,
        async () => {
          if (servingAt === undefined && (await newLog()).includes('is serving on')) servingAt = Date.now();
          const pods = await cachedPods();
          const fresh = (p: Json) => readyCondition(p) && containerIds(p).every((id) => id && !killed.has(id));
          return pods.length === opts.pods && pods.every(fresh) && servingAt !== undefined;
        },
        RECOVERY_TIMEOUT_MS,
      );
      const readyAt = Date.now() - (performance.now() - recovered.at);
      const startedAt = lastAgentStart(await newLog());
      if (startedAt === undefined) throw new Error(`no agent start in ${node.logFile} after the stop`);

      const steps = await runtimeSteps(paths.criSocket, uids, startedAt);
      reboot.push({
        stopMs: stoppedAt - killedAt,
        toServingMs: servingAt! - startedAt,
        toFirstSandboxMs: Math.round(steps.firstSandbox - startedAt),
        toAllSandboxesMs: Math.round(steps.lastSandbox - startedAt),
        toFirstContainerStartedMs: Math.round(steps.firstStarted - startedAt),
        toAllContainersStartedMs: Math.round(steps.lastStarted - startedAt),
        toAllReadyMs: Math.round(readyAt - startedAt),
        agentMemory: await memoryOf(await agentPid()),
      });
      opts.log(`offline reboot ${run + 1}/${opts.runs}: ${JSON.stringify(reboot[run])}`);
    }
    return { pods: opts.pods, probePeriodSeconds, gracePeriodSeconds: GRACE_PERIOD_SECONDS, agentMemory: { idle, withPods }, heal, reboot };
  } finally {
    cache.close();
    client.close();
  }
}

/** Wall-clock ms, from the runtime's records, of the first and last sandbox created and container started since `since`. */
async function runtimeSteps(socket: string, uids: Set<string>, since: number): Promise<{ firstSandbox: number; lastSandbox: number; firstStarted: number; lastStarted: number }> {
  const cri = criClient(socket);
  try {
    const nsToMs = (ns: number) => ns / 1e6;
    const { items } = await cri.ListPodSandbox({});
    const sandboxes = items.filter((s) => uids.has(s.metadata?.uid ?? '') && nsToMs(Number(s.created_at)) >= since);
    const { containers } = await cri.ListContainers({ filter: { state: { state: 'CONTAINER_RUNNING' } } });
    const ours = containers.filter((c) => uids.has(c.labels?.[POD_UID_LABEL] ?? ''));
    const started = await Promise.all(ours.map(async (c) => nsToMs(Number((await cri.ContainerStatus({ container_id: c.id })).status?.started_at))));
    const fresh = started.filter((t) => t >= since);
    if (new Set(sandboxes.map((s) => s.metadata?.uid)).size !== uids.size || fresh.length !== uids.size) {
      throw new Error(`the runtime shows ${sandboxes.length} new sandboxes and ${fresh.length} new running containers for ${uids.size} pods`);
    }
    const created = sandboxes.map((s) => nsToMs(Number(s.created_at)));
    return { firstSandbox: Math.min(...created), lastSandbox: Math.max(...created), firstStarted: Math.min(...fresh), lastStarted: Math.max(...fresh) };
  } finally {
    cri.close();
  }
}
