import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../apiserver/auth/atomic-file.js';
import { DEFAULT_PORT } from '../apiserver/server.js';
import { KubeClient, isNotFound } from '../client/client.js';
import { resource, sleep } from '../client/informer.js';
import { ControlPlane } from '../controlplane/index.js';
import { BUSYBOX_IMAGE, BUSYBOX_WWW } from '../runtime/images/busybox.js';
import { cleanupNode } from './cleanup.js';
import { ensureRuntimeClasses, watchNodes, type NodeProgress } from './cluster.js';
import { ensureBusyboxArchive, preloadImage } from './images.js';
import { Progress } from './progress.js';
import { nodeFiles, processAlive, readUpState, UpStateError, UpStateFile, type UpNode, type UpState } from './state.js';
import { stopStale, Supervised, type Backoff } from './supervisor.js';
import { joinToken } from './token.js';
import { MAX_NODE_INDEX, planNodeLink, setupNodeLink, teardownNodeLink, type TopologyOptions } from './topology.js';

export const DEFAULT_UP_DATA_DIR = '/var/lib/atoll-up';
export const DEFAULT_UP_NODES = 2;
export const MAX_UP_NODES = MAX_NODE_INDEX;
/** After this long without every node Ready, `up` points at the agents' logs (once). */
export const NODES_HINT_AFTER_MS = 90_000;

const ATOLL_BIN = fileURLToPath(new URL('../../../bin/atoll', import.meta.url));
/**
 * V8's young generation grows to 32 MiB in a pod burst and stays resident; with 4 MiB semi-spaces an
 * agent with 20 pods stays 30-40 MiB smaller (bench/edgehub). bin/atoll passes the same to `atoll agent`.
 */
const AGENT_NODE_FLAGS = ['--max-semi-space-size=4'];
const NODES = resource('nodes');

/** What an agent needs to join the cluster `up` runs. */
export interface AgentJoin {
  /** The API server as the node reaches it: the host end of its cloud link. */
  server: string;
  caFile: string;
  /** A YAML file (mode 0600) holding `token: <bootstrap token>`, for the agent's --config. */
  tokenConfig: string;
}

export interface UpOptions {
  /** Absolute. */
  dataDir: string;
  /** Default: as many as the last run over dataDir had, else DEFAULT_UP_NODES. */
  nodes?: number;
  /** The API server's port; default: the last run's, else 6443. */
  port?: number;
  /** The control plane's node-monitor grace period and default not-ready/unreachable toleration; default its own. */
  nodeMonitorGracePeriodSeconds?: number;
  defaultTolerationSeconds?: number;
  /**
   * Whether the nodes also serve RuntimeClass `runv` (default true), and where they share the guest
   * kernel and images (default DIR/runv-cache).
   */
  runv?: boolean;
  runvCache?: string;
  /** Each node's `--runv-pool` (default 0: no idle VMs). */
  runvPool?: number;
  /** Aborting stops everything and removes what `up` made (Ctrl-C). */
  signal: AbortSignal;
  /** Names are `<prefix><i>`; default `edge-`. */
  nodeNamePrefix?: string;
  /** Netns and link prefixes, link and pod networks; default Atoll's (owner is always the data dir). */
  topology?: Omit<TopologyOptions, 'owner'>;
  /**
   * The command that runs one node's agent; `up` runs it inside the node's netns (nsenter --net).
   * Default: `atoll agent` of this installation.
   */
  agentCommand?: (node: UpNode, join: AgentJoin) => string[];
  backoff?: Partial<Backoff>;
  stopGraceMs?: number;
  /** Progress and messages; default stdout. */
  out?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Called once every node is Ready and holds the busybox image. */
  onReady?(state: UpState): void;
}

export class UpError extends Error {
  override name = 'UpError';
}

/** `atoll agent` of this installation, for each node of `options`. */
function defaultAgentCommand(options: UpOptions): (node: UpNode, agentJoin: AgentJoin) => string[] {
  const runv = options.runv === false ? ['--no-runv'] : [
    '--runv-cache', options.runvCache ?? join(options.dataDir, 'runv-cache'),
    ...(options.runvPool ? ['--runv-pool', String(options.runvPool)] : []),
  ];
  return (node, agentJoin) => [
    process.execPath, ...AGENT_NODE_FLAGS, ATOLL_BIN, 'agent',
    '--server', agentJoin.server,
    '--ca-file', agentJoin.caFile,
    '--config', agentJoin.tokenConfig,
    '--node-name', node.name,
    '--data-dir', node.dataDir,
    '--node-ip', node.nodeIP,
    '--pod-cidr', node.podCidr,
    ...runv,
  ];
}

/** Whether a process's command line is the agent `up` started for `node`. */
function isAgentOf(node: UpNode): (argv: string[]) => boolean {
  return (argv) => argv.some((a, i) => a === '--data-dir' && argv[i + 1] === node.dataDir);
}

/** Undo actions, run last-in first-out; each runs even if an earlier one failed. */
class Undo {
  private readonly actions: { what: string; run: () => Promise<void> }[] = [];
  readonly errors: Error[] = [];

  push(what: string, run: () => Promise<void>): void {
    this.actions.push({ what, run });
  }

  async runAll(): Promise<void> {
    for (const action of this.actions.splice(0).reverse()) {
      await action.run().catch((err: Error) => this.errors.push(new Error(`${action.what}: ${err.message}`)));
    }
  }
}

function planNodes(options: UpOptions, count: number): UpNode[] {
  const prefix = options.nodeNamePrefix ?? 'edge-';
  const nodes: UpNode[] = [];
  for (let i = 1; i <= count; i++) {
    const name = `${prefix}${i}`;
    nodes.push({ ...planNodeLink(name, i, { ...options.topology, owner: options.dataDir }), ...nodeFiles(options.dataDir, name) });
  }
  return nodes;
}

/** Stops the agent a crashed `up` left running for `node`, then removes everything of the node. */
async function retire(node: UpNode, graceMs: number | undefined): Promise<void> {
  if (node.pid !== undefined) await stopStale(node.pid, isAgentOf(node), graceMs);
  await cleanupNode(node.dataDir, { netnsPath: node.netnsPath });
  await teardownNodeLink(node);
}

/**
 * `atoll up`: the control plane in this process and N edge nodes, each an `atoll agent` process in its
 * own network namespace behind a veth cloud link, supervised and restarted when it exits. Resolves
 * once `signal` aborted and everything `up` made (agents, containers, mounts, links, netns) is gone;
 * the data dir keeps the cluster's state, so the next run over it resumes the same cluster.
 */
export async function runUp(options: UpOptions): Promise<void> {
  const { dataDir, signal } = options;
  const progress = new Progress(options.out ?? process.stdout);
  if (process.getuid?.() !== 0) throw new UpError('atoll up needs root: it creates network namespaces, links and mounts; run it as root');
  await mkdir(dataDir, { recursive: true, mode: 0o700 });

  const previous = await readUpState(dataDir);
  if (previous?.pid !== undefined && previous.pid !== process.pid && (await processAlive(previous.pid))) {
    throw new UpStateError(`--data-dir ${dataDir}: an atoll up is already running over it (pid ${previous.pid}); stop it first or choose another data dir`);
  }
  const count = options.nodes ?? previous?.nodes.length ?? DEFAULT_UP_NODES;
  if (!Number.isInteger(count) || count < 1 || count > MAX_UP_NODES) throw new UpError(`--nodes ${count}: want 1 to ${MAX_UP_NODES}`);
  const nodes = planNodes(options, count);
  const port = options.port ?? previous?.port ?? DEFAULT_PORT;
  const undo = new Undo();
  const supervisors: Supervised[] = [];
  const background: Promise<unknown>[] = [];
  const stopWork = new AbortController();
  const onAbort = () => stopWork.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  let failure: Error | undefined;
  const checkpoint = () => {
    if (signal.aborted) throw new UpError('stopped while starting');
  };

  try {
    // A crashed `up` leaves its agents running; they are this data dir's, found by their command line.
    for (const old of previous?.nodes ?? []) {
      const kept = nodes.find((n) => n.name === old.name);
      if (old.pid !== undefined) progress.step(`stopping the agent of ${old.name} left by an earlier atoll up (pid ${old.pid})`);
      if (kept) {
        if (old.pid !== undefined) await stopStale(old.pid, isAgentOf(old), options.stopGraceMs);
      } else {
        await retire(old, options.stopGraceMs);
      }
    }
    const state = new UpStateFile(dataDir, { version: 1, port, token: previous?.token ?? '', pid: process.pid, nodes });
    await state.update(() => undefined);
    undo.push('recording the stop in up.json', () =>
      state.update((s) => {
        delete s.pid;
        for (const n of s.nodes) delete n.pid;
      }),
    );

    progress.step(`starting the control plane on port ${port}`);
    const plane = await ControlPlane.start({
      dataDir,
      port,
      host: '0.0.0.0',
      hosts: nodes.map((n) => n.hostIP),
      nodeMonitorGracePeriodSeconds: options.nodeMonitorGracePeriodSeconds,
      defaultTolerationSeconds: options.defaultTolerationSeconds,
    });
    undo.push('stopping the control plane', () => plane.close());
    // --port 0 picks a free port; the agents and the next run need the one it picked.
    const servingPort = Number(new URL(plane.server.url).port);
    await state.update((s) => (s.port = servingPort));
    const { caPem, certPem, keyPem } = plane.server.admin;
    const client = new KubeClient({ server: plane.server.url, caPem, certPem, keyPem }, 'atoll-up');
    undo.push('closing the API client', async () => client.close());
    checkpoint();

    for (const node of nodes) {
      progress.step(`connecting ${node.name}: netns ${node.netns}, link ${node.hostLink} ${node.hostIP} ↔ ${node.nodeIP}, pods ${node.podCidr}`);
      undo.push(`removing node ${node.name}`, async () => {
        await cleanupNode(node.dataDir, { netnsPath: node.netnsPath });
        await teardownNodeLink(node);
      });
      await setupNodeLink(node);
      checkpoint();
    }

    const token = await joinToken(client, previous?.token);
    await state.update((s) => (s.token = token));
    await ensureRuntimeClasses(client);
    for (const old of previous?.nodes ?? []) {
      if (!nodes.some((n) => n.name === old.name)) await client.delete(NODES, undefined, old.name).catch((err) => (isNotFound(err) ? undefined : Promise.reject(err)));
    }
    progress.step(`preparing ${BUSYBOX_IMAGE} in ${join(dataDir, 'images')}`);
    const archive = await ensureBusyboxArchive(dataDir);
    checkpoint();

    const command = options.agentCommand ?? defaultAgentCommand(options);
    undo.push('stopping the agents', async () => {
      await Promise.all(supervisors.map((s) => s.stop()));
    });
    for (const node of nodes) {
      const tokenConfig = join(node.dataDir, 'join.yaml');
      await mkdir(node.dataDir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(tokenConfig, `token: ${token}\n`, 0o600);
      const agentJoin: AgentJoin = { server: `https://${node.hostIP}:${servingPort}`, caFile: plane.server.pki!.caCertPath, tokenConfig };
      const supervised = new Supervised({
        argv: ['nsenter', `--net=${node.netnsPath}`, '--', ...command(node, agentJoin)],
        logFile: node.logFile,
        backoff: options.backoff,
        stopGraceMs: options.stopGraceMs,
        onStart: (pid) => void state.update(() => (node.pid = pid)).catch((err: Error) => progress.line(`atoll up: cannot record ${node.name}'s agent: ${err.message}`)),
        onExit: ({ code, signal: sig, restartInMs }) =>
          progress.line(`atoll up: the agent of ${node.name} exited (${sig ?? `code ${code}`}); restarting it in ${(restartInMs / 1000).toFixed(1)} s; its log: ${node.logFile}`),
      });
      supervisors.push(supervised);
      supervised.start();
    }

    // From here on, `up` runs until stopped; readiness is reported as it comes.
    const imported = new Set<string>();
    let nodeProgress: NodeProgress = { registered: new Set(), ready: new Set() };
    let announced = false;
    const update = () => {
      if (announced || stopWork.signal.aborted) return;
      const ready = nodeProgress.ready.size;
      if (ready === nodes.length && imported.size === nodes.length) {
        announced = true;
        progress.clear();
        announce(progress, state.current, dataDir);
        options.onReady?.(state.current);
        return;
      }
      progress.step(`nodes registered ${nodeProgress.registered.size}/${nodes.length}, ready ${ready}/${nodes.length}; ${BUSYBOX_IMAGE} on ${imported.size}/${nodes.length}`);
    };
    update();
    for (const node of nodes) {
      background.push(
        preloadImage(node.adminSocket, archive, stopWork.signal, {
          onError: (err) => progress.line(`atoll up: importing ${BUSYBOX_IMAGE} into ${node.name}: ${err.message}`),
        }).then((ok) => {
          if (ok) imported.add(node.name);
          update();
        }),
      );
    }
    background.push(
      watchNodes(client, {
        names: nodes.map((n) => n.name),
        signal: stopWork.signal,
        onProgress: (p) => {
          nodeProgress = p;
          update();
        },
        onError: (err) => progress.line(`atoll up: ${err.message}`),
      }),
    );
    background.push(
      sleep(NODES_HINT_AFTER_MS, stopWork.signal).then(() => {
        if (announced || stopWork.signal.aborted) return;
        const late = nodes.filter((n) => !nodeProgress.ready.has(n.name));
        progress.line(`atoll up: still waiting for ${late.map((n) => n.name).join(', ')}; see ${late.map((n) => n.logFile).join(', ')}`);
      }),
    );
    await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
  } catch (err) {
    // Ctrl-C while starting is a stop like any other, not a failure.
    if (!signal.aborted) failure = err as Error;
  } finally {
    stopWork.abort();
    signal.removeEventListener('abort', onAbort);
    progress.clear();
    progress.line('atoll up: stopping the agents, removing containers, mounts, links and network namespaces');
    // The watch and the imports end with stopWork; the agents must stop before the nodes are removed.
    await Promise.all(background);
    await undo.runAll();
  }
  const leftovers = undo.errors.map((e) => e.message).join('\n  ');
  if (failure) {
    if (leftovers) progress.line(`atoll up: while stopping:\n  ${leftovers}`);
    throw failure;
  }
  if (leftovers) throw new UpError(`stopping left work undone:\n  ${leftovers}`);
}

function announce(progress: Progress, state: UpState, dataDir: string): void {
  const kubeconfig = join(dataDir, 'kubeconfig');
  const dirFlag = dataDir === DEFAULT_UP_DATA_DIR ? '' : ` --data-dir ${dataDir}`;
  const first = state.nodes[0]!.name;
  progress.line(
    [
      `atoll up: ${state.nodes.length} edge node${state.nodes.length === 1 ? '' : 's'} ready (${state.nodes.map((n) => n.name).join(', ')}); ${BUSYBOX_IMAGE} is preloaded on each`,
      `  kubeconfig: ${kubeconfig}`,
      '',
      'Try:',
      `  export KUBECONFIG=${kubeconfig}`,
      '  kubectl get nodes -o wide',
      `  kubectl create deployment web --image=${BUSYBOX_IMAGE} --replicas=3 -- httpd -f -p 8080 -h ${BUSYBOX_WWW}`,
      '  kubectl get pods -o wide',
      `  kubectl run client --image=${BUSYBOX_IMAGE} --restart=Never -it --rm -- wget -qO- http://<a web pod IP>:8080/`,
      `  atoll net partition ${first}${dirFlag}    # cut ${first}'s cloud link; its pods keep running`,
      `  atoll net heal ${first}${dirFlag}`,
      `  atoll images import FILE --all${dirFlag}   # load an OCI or docker save tarball on every node`,
      '',
      `Agent logs: ${join(dataDir, 'nodes', '<node>', 'agent.log')}. Press Ctrl-C to stop everything.`,
    ].join('\n'),
  );
}
