import { join } from 'node:path';
import { CONTAINER_NAME_LABEL, POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL, RESTART_COUNT_ANNOTATION } from '../../src/agent/contracts.js';
import type { KubeObject } from '../../src/api/types.js';
import type { PodSandboxConfig } from '../../src/runtime/cri/index.js';
import type { TestRuntime } from './node-runtime.js';

/** A pod started straight through CRI with the agent's label contract, as the pod workers would. */
export interface CriPod {
  namespace: string;
  name: string;
  uid: string;
  sandboxId: string;
  config: PodSandboxConfig;
}

export async function runCriPod(rt: TestRuntime, namespace: string, name: string, uid: string): Promise<CriPod> {
  const labels = { [POD_NAME_LABEL]: name, [POD_NAMESPACE_LABEL]: namespace, [POD_UID_LABEL]: uid };
  const config: PodSandboxConfig = {
    metadata: { name, namespace, uid, attempt: 0 },
    hostname: name,
    log_directory: join(rt.logRoot, `${namespace}_${name}_${uid}`),
    labels,
  };
  const { pod_sandbox_id: sandboxId } = await rt.cri.RunPodSandbox({ config });
  return { namespace, name, uid, sandboxId, config };
}

/** Creates and starts attempt `attempt` of container `name`, logging to `<name>/<attempt>.log`. */
export async function startCriContainer(rt: TestRuntime, pod: CriPod, name: string, command: string[], attempt = 0): Promise<string> {
  const { container_id: id } = await rt.cri.CreateContainer({
    pod_sandbox_id: pod.sandboxId,
    sandbox_config: pod.config,
    config: {
      metadata: { name, attempt },
      image: { image: rt.image },
      command,
      log_path: `${name}/${attempt}.log`,
      labels: { ...pod.config.labels, [CONTAINER_NAME_LABEL]: name },
      annotations: { [RESTART_COUNT_ANNOTATION]: String(attempt) },
    },
  });
  await rt.cri.StartContainer({ container_id: id });
  return id;
}

/** The Pod object the API would hold for `pod`, bound to `nodeName`, with these containers. */
export function podObject(pod: CriPod, nodeName: string, containers: string[], image: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: pod.name, namespace: pod.namespace, uid: pod.uid },
    spec: { nodeName, containers: containers.map((name) => ({ name, image })) },
  };
}
