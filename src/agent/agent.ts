import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setMaxListeners } from 'node:events';
import { ApiError } from '../api/errors.js';
import type { KubeObject } from '../api/types.js';
import { KubeClient } from '../client/client.js';
import { EventRecorder } from '../client/events.js';
import { Informer, resource } from '../client/informer.js';
import { criClient, type CriClient } from '../runtime/cri/client.js';
import { NodeRuntime } from '../runtime/node-runtime.js';
import { apiObjectSource } from './api-source.js';
import { joinCluster } from './bootstrap.js';
import type { NodeFacts } from './contracts.js';
import { resolveEnv } from './env.js';
import { NodeHeartbeat } from './heartbeat.js';
import { hostCapacity } from './node-status.js';
import { PodWorkers, StatusManager, pullSecretsAuth } from './pods/index.js';
import { startNodeServer } from './server/index.js';
import { PodVolumeManager } from './volumes/index.js';

/** The kubelet's port. */
export const DEFAULT_AGENT_PORT = 10250;
const RUNTIME_CLASSES = resource('node.k8s.io/runtimeclasses');

export interface AgentOptions {
  /** The API server's URL. */
  server: string;
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
    logs: join(dataDir, 'logs', 'pods'),
    pods: join(dataDir, 'pods'),
  };
}

/**
 * `atoll agent`: one edge node. It joins the cluster (bootstrap token → CSR → client and serving
 * certificates), runs the CRI runtime in-process and drives it over its CRI socket, registers and
 * heartbeats its Node, runs the pods bound to it, and serves the node API on :10250.
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
  ) {
    setMaxListeners(0, this.stop.signal);
  }

  static async start(opts: AgentOptions): Promise<NodeAgent> {
    const log = opts.log ?? ((line: string) => console.error(line));
    const paths = agentPaths(opts.dataDir);
    await mkdir(opts.dataDir, { recursive: true });
    const creds = await joinCluster({
      server: opts.server,
      caPem: opts.caPem,
      token: opts.token,
      nodeName: opts.nodeName,
      certDir: paths.certs,
      servingHosts: [opts.nodeIP, opts.nodeName],
      log,
    });
    const client = new KubeClient({ server: opts.server, caPem: opts.caPem, certPem: creds.client.certPem, keyPem: creds.client.keyPem }, `atoll-agent/${opts.nodeName}`);
    const runtime = await NodeRuntime.start({
      socket: paths.criSocket,
      adminSocket: paths.adminSocket,
      root: paths.runtime,
      runDir: paths.run,
      logRoot: paths.logs,
      registriesFile: opts.registriesFile,
      network: { subnet: opts.podCidr, ipForward: true },
      log,
    });
    const cri = criClient(runtime.socketPath);
    try {
      const version = await cri.Version({});
      const heartbeat = new NodeHeartbeat(
        client,
        {
          nodeName: opts.nodeName,
          nodeIP: opts.nodeIP,
          port: opts.port,
          podCidr: opts.podCidr,
          handlers: [runtime.handler.name],
          runtimeVersion: `${version.runtime_name}://${version.runtime_version}`,
          dataDir: opts.dataDir,
        },
        log,
      );
      await heartbeat.register();
      const capacity = await hostCapacity(opts.dataDir);
      const facts: NodeFacts = { nodeName: opts.nodeName, hostIP: opts.nodeIP, allocatable: { cpu: capacity.cpu!, memory: capacity.memory! } };
      const source = apiObjectSource(client);
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
        nodeName: opts.nodeName,
        log,
      });
      const agent = new NodeAgent(client, runtime, cri, workers, server, statuses);
      agent.loops.push(heartbeat.run(agent.stop.signal), informer.run(agent.stop.signal));
      await informer.waitForSync();
      await workers.removeOrphans();
      log(`atoll agent: node ${opts.nodeName} is serving on ${opts.address}:${opts.port}`);
      return agent;
    } catch (err) {
      cri.close();
      await runtime.close();
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
  }
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
