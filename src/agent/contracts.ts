// The seams between the node agent's parts. Each part (volumes, env, pod workers, node server,
// bootstrap) is written against these, so that the agent assembles them and EdgeHub can later put
// its cache behind ObjectSource without the parts noticing.
import type { KubeObject } from '../api/types.js';

/**
 * Labels every sandbox and container the agent creates carries, as the kubelet's do. They are the
 * contract between the pod workers (which set them) and everything that finds a pod's containers
 * through CRI alone: the node server (logs, exec), stats, and a restarted agent adopting its pods.
 */
export const POD_NAME_LABEL = 'io.kubernetes.pod.name';
export const POD_NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
export const POD_UID_LABEL = 'io.kubernetes.pod.uid';
export const CONTAINER_NAME_LABEL = 'io.kubernetes.container.name';
/** Container annotation: the container's restart count when it was created (also its CRI metadata.attempt). */
export const RESTART_COUNT_ANNOTATION = 'io.kubernetes.container.restartCount';
/** Container annotation: the pod's `terminationGracePeriodSeconds`, so a restarted agent still honours it. */
export const TERMINATION_GRACE_ANNOTATION = 'io.kubernetes.pod.terminationGracePeriod';

/**
 * Where the agent reads the objects its pods refer to. The agent backs it with its API client;
 * EdgeHub backs the same calls with its cache while the cloud is unreachable. `undefined` means the
 * object does not exist (404); any other failure throws.
 */
export interface ObjectSource {
  configMap(namespace: string, name: string): Promise<KubeObject | undefined>;
  secret(namespace: string, name: string): Promise<KubeObject | undefined>;
  /** A bound service-account token for `pod` (the TokenRequest subresource). */
  serviceAccountToken(
    pod: KubeObject,
    serviceAccount: string,
    request: { audiences: string[]; expirationSeconds: number },
  ): Promise<{ token: string; expirationTimestamp: string }>;
}

/** What the node knows about itself that the downward API and env `fieldRef` expose. */
export interface NodeFacts {
  nodeName: string;
  hostIP: string;
  /**
   * The node's allocatable resources: the default for `resourceFieldRef` limits a container leaves
   * unset, and the cap of memory-backed volumes.
   */
  allocatable: { cpu: string; memory: string; 'ephemeral-storage'?: string };
}

/**
 * A pod's container cannot be configured (missing configMap, secret or key; bad subPath...).
 * The pod worker reports it as the container's waiting reason `CreateContainerConfigError` with
 * this message, and retries on the next sync.
 */
export class ContainerConfigError extends Error {
  override readonly name = 'ContainerConfigError';
}

/** The CRI `Mount` message, snake_case as the CRI client takes it. */
export interface CriMount {
  container_path: string;
  host_path: string;
  readonly?: boolean;
  selinux_relabel?: boolean;
  /** 0 PROPAGATION_PRIVATE, 1 HOST_TO_CONTAINER, 2 BIDIRECTIONAL */
  propagation?: number;
}

/**
 * A pod's volumes on this node, under `<podsDir>/<pod uid>/volumes/<plugin>/<name>` as the kubelet lays
 * them out (`kubernetes.io~empty-dir`, `kubernetes.io~configmap`, ...): runtimes recognise volumes by it.
 *
 * Lifecycle: the pod worker calls `setUp` before the sandbox's containers are created (and again on
 * every sync, which is cheap when nothing changed); `mountsFor` then maps a container's
 * `volumeMounts` to CRI mounts; `refresh` rewrites configMap, secret, downwardAPI and projected
 * volumes in place (atomically, as the kubelet's `..data` symlink swap does) when their sources
 * change; `tearDown` removes everything once the pod's containers are gone.
 */
export interface PodVolumes {
  setUp(pod: KubeObject): Promise<void>;
  /** `env` is the container's resolved environment, which `subPathExpr` expands. */
  mountsFor(pod: KubeObject, containerName: string, env?: readonly { key: string; value: string }[]): CriMount[];
  refresh(pod: KubeObject): Promise<void>;
  tearDown(podUid: string): Promise<void>;
  /** Pod uids that have volumes on disk: what a restarted agent must clean up if the pod is gone. */
  list(): Promise<string[]>;
}
