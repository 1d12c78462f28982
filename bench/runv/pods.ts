/** Pods over CRI for bench/runv: sandboxes and containers, each CRI call timed, and their removal. */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { CriClient, PodSandboxConfig } from '../../src/runtime/cri/index.js';

export type Handler = 'runc' | 'runv';

export interface ContainerConfig {
  image: string;
  command: string[];
  /** Host directories bound into the container (runv: over the sandbox's 9p share). */
  mounts?: { hostPath: string; containerPath: string; readonly: boolean }[];
}

export interface Sandbox {
  podId: string;
  config: PodSandboxConfig;
  /** RunPodSandbox, ms. */
  sandboxMs: number;
  /** When RunPodSandbox was called and when it returned, as performance.timeOrigin + performance.now(): comparable across processes. */
  sandboxAt: { began: number; ended: number };
}

export interface Pod extends Sandbox {
  containerId: string;
  /** CreateContainer, ms. */
  createMs: number;
  /** StartContainer, ms. */
  startMs: number;
  /** RunPodSandbox through StartContainer: the pod's first container is running. */
  firstContainerMs: number;
}

const suffix = randomBytes(3).toString('hex');

/** Wall-clock milliseconds with performance.now()'s resolution. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

export async function runSandbox(client: CriClient, logRoot: string, name: string, handler: Handler): Promise<Sandbox> {
  const uid = `uid-${name}-${suffix}`;
  const config: PodSandboxConfig = {
    metadata: { name, namespace: 'bench-runv', uid, attempt: 0 },
    hostname: name,
    log_directory: join(logRoot, `bench-runv_${name}_${uid}`),
    labels: { app: 'bench-runv' },
  };
  const began = now();
  const { pod_sandbox_id: podId } = await client.RunPodSandbox({ config, runtime_handler: handler });
  const ended = now();
  return { podId, config, sandboxMs: ended - began, sandboxAt: { began, ended } };
}

/** Creates and starts the sandbox's container `main`, timing each call. */
export async function startContainer(client: CriClient, sandbox: Sandbox, spec: ContainerConfig): Promise<{ containerId: string; createMs: number; startMs: number }> {
  const t0 = performance.now();
  const { container_id: containerId } = await client.CreateContainer({
    pod_sandbox_id: sandbox.podId,
    config: {
      metadata: { name: 'main', attempt: 0 },
      image: { image: spec.image },
      command: spec.command,
      log_path: 'main/0.log',
      mounts: (spec.mounts ?? []).map((m) => ({ host_path: m.hostPath, container_path: m.containerPath, readonly: m.readonly })),
    },
    sandbox_config: sandbox.config,
  });
  const t1 = performance.now();
  await client.StartContainer({ container_id: containerId });
  return { containerId, createMs: t1 - t0, startMs: performance.now() - t1 };
}

/** A sandbox with one running container. A failure leaves the pod to removeAllPods. */
export async function runPod(client: CriClient, logRoot: string, name: string, handler: Handler, spec: ContainerConfig): Promise<Pod> {
  const sandbox = await runSandbox(client, logRoot, name, handler);
  const container = await startContainer(client, sandbox, spec);
  return { ...sandbox, ...container, firstContainerMs: sandbox.sandboxMs + container.createMs + container.startMs };
}

export async function removePod(client: CriClient, podId: string, timeoutMs?: number): Promise<void> {
  await client.StopPodSandbox({ pod_sandbox_id: podId }, { timeoutMs });
  await client.RemovePodSandbox({ pod_sandbox_id: podId }, { timeoutMs });
}

/** Removes every pod the runtime lists; failures are reported through `log` and do not stop the others. */
export async function removeAllPods(client: CriClient, log: (line: string) => void, timeoutMs?: number): Promise<void> {
  const list = await client.ListPodSandbox({}, { timeoutMs });
  for (const s of list.items ?? []) await removePod(client, s.id, timeoutMs).catch((err: unknown) => log(`removing pod ${s.id}: ${String(err)}`));
}
