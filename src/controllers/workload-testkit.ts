import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiServer } from '../apiserver/server.js';
import { KubeClient, isNotFound } from '../client/client.js';
import { resource } from '../client/informer.js';
import type { WorkloadController, Pod } from './workload-util.js';
import { waitFor } from '../../test/support/wait.js';

/**
 * Test support for the workload controllers: an in-process API server with an admin client, and a
 * stand-in for the kubelet that "runs" pods by writing the status a kubelet would.
 */

export const PODS = resource('pods');
export const WAIT_MS = 20_000;

export interface Cluster {
  server: ApiServer;
  client: KubeClient;
  /** Aborted by close(). */
  signal: AbortSignal;
  start(controller: WorkloadController): void;
  close(): Promise<void>;
}

export async function startCluster(): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'atoll-workloads-'));
  const server = await ApiServer.start({ dataDir: dir, port: 0, host: '127.0.0.1' });
  const client = KubeClient.fromKubeconfig(server.kubeconfigPath);
  const abort = new AbortController();
  const runs: Promise<void>[] = [];
  return {
    server,
    client,
    signal: abort.signal,
    start(controller) {
      runs.push(controller.run(abort.signal));
    },
    async close() {
      abort.abort();
      await Promise.allSettled(runs);
      client.close();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Polls until `check` returns a truthy value. */
export function eventually<T>(check: () => Promise<T | undefined | false | null>, what: string, timeoutMs = WAIT_MS): Promise<T> {
  return waitFor(what, check, timeoutMs);
}

export async function listPods(client: KubeClient, namespace: string, labelSelector?: string): Promise<Pod[]> {
  return (await client.list<Pod>(PODS, namespace, { labelSelector })).items;
}

/** Active (not terminating) pods. */
export async function livePods(client: KubeClient, namespace: string, labelSelector?: string): Promise<Pod[]> {
  return (await listPods(client, namespace, labelSelector)).filter((p) => !p.metadata.deletionTimestamp);
}

let nextIp = 1;

/** What a kubelet reports once a pod's containers run and pass readiness: Running, an IP, Ready. */
export async function runPod(client: KubeClient, pod: Pod): Promise<boolean> {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const ip = `10.244.${(nextIp >> 8) & 255}.${nextIp++ & 255}`;
  try {
    await client.patch(
      PODS,
      pod.metadata.namespace,
      pod.metadata.name!,
      'strategic',
      {
        status: {
          phase: 'Running',
          podIP: ip,
          podIPs: [{ ip }],
          startTime: now,
          conditions: [
            { type: 'Initialized', status: 'True', lastTransitionTime: now },
            { type: 'ContainersReady', status: 'True', lastTransitionTime: now },
            { type: 'Ready', status: 'True', lastTransitionTime: now },
          ],
        },
      },
      { subresource: 'status' },
    );
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

export function isReady(pod: Pod): boolean {
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** Runs every live pod that is not yet ready; returns how many. */
export async function runAllPending(client: KubeClient, namespace: string, labelSelector?: string): Promise<number> {
  let n = 0;
  for (const pod of await livePods(client, namespace, labelSelector)) if (!isReady(pod) && (await runPod(client, pod))) n++;
  return n;
}

/** A minimal container spec; grace 0 so deletes complete without a kubelet. */
export function podSpec(image = 'registry.local/app:1'): Record<string, unknown> {
  return { terminationGracePeriodSeconds: 0, containers: [{ name: 'app', image }] };
}
