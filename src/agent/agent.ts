import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setMaxListeners } from 'node:events';
import { ApiError } from '../api/errors.js';
import type { KubeObject } from '../api/types.js';
import { KubeClient } from '../client/client.js';
import { EventRecorder } from '../client/events.js';
import { Informer, resource, sleep } from '../client/informer.js';
import { EdgeHub } from '../edgehub/proxy.js';
import { criClient, type CriClient } from '../runtime/cri/client.js';
import { NodeRuntime } from '../runtime/node-runtime.js';
import { apiObjectSource } from './api-source.js';
import { joinCluster } from './bootstrap.js';
import type { NodeFacts } from './contracts.js';
import { resolveEnv } from './env.js';
import { NodeHeartbeat } from './heartbeat.js';
import { hostCapacity } from './node-status.js';
import { keepingTokens } from './offline-tokens.js';
import { PodWorkers, StatusManager, pullSecretsAuth } from './pods/index.js';
import { startNodeServer } from './server/index.js';
import { PodVolumeManager } from './volumes/index.js';

/** The kubelet's port. */
export const DEFAULT_AGENT_PORT = 10250;
const RUNTIME_CLASSES = resource('node.k8s.io/runtimeclasses');
/** The longest runv waits, after the node serves, for the pods it already has to be started. */
const RUNV_OPEN_MAX_DELAY_MS = 20_000;

export interface AgentOptions {
  /** The cloud API servers' URLs, preferred first; the node joins through the first. */
  servers: string[];
  /** The cluster CA the server's certificate must chain to. */
  caPem: string;
  /** Bootstrap token; needed only while the node has no valid client certificate. */
  token?: string;
  nodeName: string;
  /** Everything the node keeps: certificates, runtime state, pod volumes, logs. */
  dataDir: string;
  nodeIP: string;
  podCidr: string;
  /** The node server's address and port (kubelet's :10250). */
  address: string;
  port: number;
  registriesFile?: string;
  /** How often EdgeHub probes the cloud; default its own (10 s). */
  probePeriodMs?: number;
  /**
   * Serve RuntimeClass handler `runv` (a microVM per pod) beside runc; `cacheRoot` is where the guest
   * kernel and images are kept (shared by the nodes of one machine), `pool` how many idle VMs it keeps
   * restored (runv/pool.ts; default 0). Absent: runc only.
   */
  runv?: { cacheRoot?: string; pool?: number };
  log?: (line: string) => void;
}

/** The layout of an agent's data dir (DESIGN: nodes/<node>/...). */
export function agentPaths(dataDir: string) {
  return {
    certs: join(dataDir, 'pki'),
    runtime: join(dataDir, 'runtime'),
    run: join(dataDir, 'run'),
    criSocket: join(dataDir, 'run', 'cri.sock'),
    adminSocket: join(dataDir, 'run', 'admin.sock'),
    edgehubSocket: join(dataDir, 'run', 'edgehub.sock'),
    edgehubCache: join(dataDir, 'edgehub', 'cache.db'),
    tokens: join(dataDir, 'tokens'),
    logs: join(dataDir, 'logs', 'pods'),
    pods: join(dataDir, 'pods'),
  };
}

/** EdgeHub's socket admits only the agent's own user. */
const EDGEHUB_SOCKET_MODE = 0o600;

/**
 * `atoll agent`: one edge node. It joins the cluster (bootstrap token → CSR → client and serving
 * certificates), runs the CRI runtime in-process and drives it over its CRI socket, registers and
 * heartbeats its Node, runs the pods bound to it, and serves the node API on :10250.
 *
 * Every API call goes through an embedded EdgeHub on `run/edgehub.sock`, with the node's client
 * certificate, so the node keeps working on its cache while the cloud is unreachable: it starts
 * offline from certificates and cache on disk, registration and heartbeats retry in the background,
 * and pods adopted from the runtime (or started again from cached specs) keep running.
 *
 * Stopping the agent (or killing it) never stops a container: the runtime's containers live under
 * conmon, and the next agent adopts them.
 */
export class NodeAgent {
  private readonly stop = new AbortController();
  private readonly loops: Promise<unknown>[] = [];

  private constructor(
    readonly client: KubeClient,
    readonly runtime: NodeRuntime,
    readonly cri: CriClient,
    readonly workers: PodWorkers,
    private readonly server: { close(): Promise<void> },
    private readonly statuses: StatusManager,
    readonly hub: EdgeHub,
  ) {
    setMaxListeners(0, this.stop.signal);
  }

  static async start(opts: AgentOptions): Promise<NodeAgent> {
    const log = opts.log ?? ((line: string) => console.error(line));
    const paths = agentPaths(opts.dataDir);
    await mkdir(opts.dataDir, { recursive: true });
    if (opts.servers.length === 0) throw new Error('no cloud API server given');
    const creds = await joinCluster({
      server: opts.servers[0]!,
      caPem: opts.caPem,
      token: opts.token,
      nodeName: opts.nodeName,
      certDir: paths.certs,
      servingHosts: [opts.nodeIP, opts.nodeName],
      log,
    });
    await mkdir(paths.run, { recursive: true, mode: 0o700 });
    await mkdir(dirname(paths.edgehubCache), { recursive: true, mode: 0o700 });
    // The runtime recovers its containers while EdgeHub's first probe round decides whether the cloud
    // is reachable: offline, that round waits out the probe timeout, which a rebooted node need not lose.
    const [hubStart, runtimeStart] = await Promise.allSettled([
      EdgeHub.start({
        endpoints: opts.servers,
        credentials: { caPem: opts.caPem, certPem: creds.client.certPem, keyPem: creds.client.keyPem },
        cachePath: paths.edgehubCache,
        listen: { socketPath: paths.edgehubSocket, socketMode: EDGEHUB_SOCKET_MODE },
        health: opts.probePeriodMs === undefined ? undefined : { periodMs: opts.probePeriodMs },
      }),
      NodeRuntime.start({
        socket: paths.criSocket,
        adminSocket: paths.adminSocket,
        root: paths.runtime,
        runDir: paths.run,
        logRoot: paths.logs,
        registriesFile: opts.registriesFile,
        network: { subnet: opts.podCidr, ipForward: true },
        // runv takes seconds to open; the node's runc pods start first (see `offerRunv`).
        ...(opts.runv ? { runv: opts.runv, deferRunv: true } : {}),
        log,
      }),
    ]);
    if (hubStart.status === 'rejected' || runtimeStart.status === 'rejected') {
      if (hubStart.status === 'fulfilled') await hubStart.value.close();
      if (runtimeStart.status === 'fulfilled') await runtimeStart.value.close();
      throw hubStart.status === 'rejected' ? hubStart.reason : (runtimeStart as PromiseRejectedResult).reason;
    }
    const hub = hubStart.value;
    const runtime = runtimeStart.value;
    if (!hub.health.healthy) log(`atoll agent: the cloud (${opts.servers.join(', ')}) is unreachable; running on the EdgeHub cache`);
    const client = new KubeClient({ server: hub.url }, `atoll-agent/${opts.nodeName}`);
    const cri = criClient(runtime.socketPath);
    // Usually undefined: runv opens later (`offerRunv`) unless it had VMs to adopt.
    const runvAtStart = runtime.runv;
    try {
      const version = await cri.Version({});
      const heartbeat = new NodeHeartbeat(
        client,
        {
          nodeName: opts.nodeName,
          nodeIP: opts.nodeIP,
          port: opts.port,
          podCidr: opts.podCidr,
          handlers: [runtime.handler.name, ...(runvAtStart ? [runvAtStart.name] : [])],
          pendingHandlers: opts.runv && !runvAtStart ? ['runv'] : [],
          ...(runvAtStart ? { accelerator: runvAtStart.accel } : {}),
          runtimeVersion: `${version.runtime_name}://${version.runtime_version}`,
          dataDir: opts.dataDir,
        },
        log,
        () => hub.health.healthy,
      );
      const capacity = await hostCapacity(opts.dataDir);
      const facts: NodeFacts = { nodeName: opts.nodeName, hostIP: opts.nodeIP, allocatable: { cpu: capacity.cpu!, memory: capacity.memory! } };
      const source = keepingTokens(apiObjectSource(client), paths.tokens);
      const recorder = new EventRecorder(client, 'kubelet', opts.nodeName);
      const statuses = new StatusManager(client, log);
      const workers = new PodWorkers({
        cri,
        node: facts,
        volumes: new PodVolumeManager(paths.pods, source, facts, { log }),
        env: (pod, container) => resolveEnv(pod, container, source, facts),
        pullSecrets: (pod) => pullSecretsAuth(pod, source),
        runtimeHandler: (pod) => runtimeHandlerOf(client, pod),
        podStatus: (pod, status) => statuses.set(pod, status),
        podTerminated: (pod) => deletePod(client, pod),
        recorder,
        logRoot: paths.logs,
        podsDir: paths.pods,
        log,
      });
      await workers.adopt();
      const informer = new Informer(client, resource('pods'), { fieldSelector: `spec.nodeName=${opts.nodeName}` });
      informer.on({
        add: (pod) => workers.update(pod),
        update: (_, pod) => workers.update(pod),
        delete: (pod) => {
          workers.remove(pod);
          statuses.forget(pod.metadata.uid!);
        },
      });
      const server = await startNodeServer({
        address: opts.address,
        port: opts.port,
        tls: { certPem: creds.serving.certPem, keyPem: creds.serving.keyPem, caPem: opts.caPem },
        cri,
        client,
        pods: () => informer.list(),
        rootDir: opts.dataDir,
        adminSocket: paths.adminSocket,
        nodeName: opts.nodeName,
        log,
      });
      const agent = new NodeAgent(client, runtime, cri, workers, server, statuses, hub);
      agent.loops.push(heartbeat.run(agent.stop.signal), informer.run(agent.stop.signal));
      // Back online: the cloud has marked the node Unknown meanwhile; a fresh heartbeat makes it Ready at once.
      const unsubscribe = hub.health.onChange((current, previous) => {
        if (current !== undefined && previous === undefined) heartbeat.nudge();
      });
      agent.stop.signal.addEventListener('abort', unsubscribe, { once: true });
      await informer.waitForSync();
      await workers.removeOrphans();
      if (opts.runv && !runvAtStart) agent.loops.push(offerRunv(runtime, workers, heartbeat, agent.stop.signal));
      log(`atoll agent: node ${opts.nodeName} is serving on ${opts.address}:${opts.port}`);
      return agent;
    } catch (err) {
      cri.close();
      await runtime.close();
      client.close();
      await hub.close();
      throw err;
    }
  }

  /** Stops the agent and the runtime; the containers keep running. */
  async close(): Promise<void> {
    this.stop.abort();
    await Promise.allSettled(this.loops);
    await this.workers.stop();
    this.statuses.stop();
    await this.server.close();
    this.cri.close();
    await this.runtime.close();
    this.client.close();
    await this.hub.close();
  }
}

/**
 * Opens runv once the pods the node already has are started, or after RUNV_OPEN_MAX_DELAY_MS when
 * their syncs keep the workers busy (sooner still when a runv pod asks for it), then offers it: the
 * Node's labels and status.runtimeHandlers gain runv. If it cannot open, its labels go.
 */
async function offerRunv(runtime: NodeRuntime, workers: PodWorkers, heartbeat: NodeHeartbeat, signal: AbortSignal): Promise<void> {
  // Stopping the agent must not wait for any step; closing the runtime then ends the open.
  const stopped = new Promise<'stopped'>((resolve) => signal.addEventListener('abort', () => resolve('stopped'), { once: true }));
  const waited = new AbortController();
  const started = await Promise.race([workers.idle(), sleep(RUNV_OPEN_MAX_DELAY_MS, waited.signal), stopped]);
  waited.abort();
  if (started === 'stopped') return;
  const runv = await Promise.race([runtime.openRunv(), stopped]);
  if (runv === 'stopped') return;
  if (runv) heartbeat.offerHandler(runv.name, runv.accel);
  else heartbeat.withdrawHandler('runv');
}

async function runtimeHandlerOf(client: KubeClient, pod: KubeObject): Promise<string> {
  const className = (pod.spec as { runtimeClassName?: string }).runtimeClassName;
  if (!className) return 'runc';
  const rc = await client.get(RUNTIME_CLASSES, undefined, className);
  return String((rc as unknown as { handler: string }).handler);
}

/** The last step of a pod's termination: the agent deletes the object once its containers are gone. */
async function deletePod(client: KubeClient, pod: KubeObject): Promise<void> {
  try {
    await client.delete(resource('pods'), pod.metadata.namespace, pod.metadata.name!, { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata.uid } });
  } catch (err) {
    if (!(err instanceof ApiError && (err.code === 404 || err.code === 409))) throw err;
  }
}
