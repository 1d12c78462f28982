import { CONTAINER_NAME_LABEL, POD_NAME_LABEL, POD_NAMESPACE_LABEL } from '../contracts.js';
import type { Container__Output, CriClient, PodSandbox__Output } from '../../runtime/cri/index.js';

/** A failure the node server answers with this HTTP code and a Status carrying the message. */
export class NodeRequestError extends Error {
  override readonly name = 'NodeRequestError';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The CRI containers of one pod's container, newest attempt first, found through the label contract
 * alone (the agent's pod workers set the labels), so a restarted agent finds them too.
 */
export async function containerAttempts(cri: CriClient, namespace: string, pod: string, container: string): Promise<Container__Output[]> {
  const { containers } = await cri.ListContainers({
    filter: { label_selector: { [POD_NAMESPACE_LABEL]: namespace, [POD_NAME_LABEL]: pod, [CONTAINER_NAME_LABEL]: container } },
  });
  return containers.sort((a, b) => (b.metadata?.attempt ?? 0) - (a.metadata?.attempt ?? 0) || b.created_at - a.created_at);
}

/** The container that logs are read from: the newest attempt, or the one before it for `previous`. */
export async function logContainer(cri: CriClient, namespace: string, pod: string, container: string, previous: boolean): Promise<Container__Output> {
  const attempts = await containerAttempts(cri, namespace, pod, container);
  const found = attempts[previous ? 1 : 0];
  if (found) return found;
  if (previous) throw new NodeRequestError(400, `previous terminated container "${container}" in pod "${pod}" not found`);
  throw new NodeRequestError(400, `container "${container}" in pod "${pod}" is waiting to start: ContainerCreating`);
}

/** The running container exec and attach go to. */
export async function runningContainer(cri: CriClient, namespace: string, pod: string, container: string): Promise<Container__Output> {
  const found = (await containerAttempts(cri, namespace, pod, container)).find((c) => c.state === 'CONTAINER_RUNNING');
  if (!found) throw new NodeRequestError(404, `container not found ("${container}")`);
  return found;
}

/** The pod's ready sandbox, which port forwarding enters. */
export async function readySandbox(cri: CriClient, namespace: string, pod: string): Promise<PodSandbox__Output> {
  const { items } = await cri.ListPodSandbox({
    filter: { label_selector: { [POD_NAMESPACE_LABEL]: namespace, [POD_NAME_LABEL]: pod }, state: { state: 'SANDBOX_READY' } },
  });
  const found = items.sort((a, b) => b.created_at - a.created_at)[0];
  if (!found) throw new NodeRequestError(404, `pod "${pod}" in namespace "${namespace}" has no running sandbox`);
  return found;
}
