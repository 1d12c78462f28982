import type { KubeObject } from '../../api/types.js';
import type { AuthConfig, CriClient } from '../../runtime/cri/index.js';
import type { NodeFacts, PodVolumes } from '../contracts.js';
import type { ClusterDns } from './cri-config.js';
import type { Dial } from './probes.js';
import type { PodStatus } from './status.js';

/** kubelet's pod resync: every pod is synced at least this often. */
export const RESYNC_PERIOD_MS = 10_000;
/** kubelet's PLEG relist period: how soon a container's exit is noticed. */
export const RELIST_PERIOD_MS = 1_000;
/** The shortest stop timeout a container gets (kubelet's minimumGracePeriodInSeconds). */
export const MIN_GRACE_SECONDS = 2;
/** Extra time a StopContainer call gets beyond the grace it passes, for the runtime's own work. */
export const STOP_CALL_MARGIN_MS = 30_000;
/** A postStart hook may run this long before it counts as failed. */
export const POST_START_TIMEOUT_SECONDS = 120;

/** What the pod workers need from the rest of the agent. */
export interface PodWorkerDeps {
  cri: CriClient;
  node: NodeFacts;
  volumes: PodVolumes;
  /** The container's environment (ContainerConfigError when a referenced object or key is missing). */
  env(pod: KubeObject, containerName: string): Promise<{ key: string; value: string }[]>;
  /** Credentials of the pod's imagePullSecrets, each naming its registry in server_address (see pullSecretsAuth). */
  pullSecrets(pod: KubeObject): Promise<AuthConfig[]>;
  /** The CRI runtime handler of the pod's RuntimeClass ('runc' without one). */
  runtimeHandler(pod: KubeObject): Promise<string>;
  /** A freshly computed status for the pod; the status manager decides whether it goes to the API. */
  podStatus(pod: KubeObject, status: PodStatus): void;
  /**
   * The pod (deleted in the API, `metadata.deletionTimestamp` set) has no containers, sandbox or
   * volumes left on the node: the agent may now delete the object for good.
   */
  podTerminated(pod: KubeObject): Promise<void>;
  recorder: { record(obj: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> };
  /** The CRI log root; each pod's log_directory is `<logRoot>/<ns>_<name>_<uid>`. */
  logRoot: string;
  /** Per-pod files of the agent (`<podsDir>/<uid>/containers/<name>/<restart>` termination logs). */
  podsDir: string;
  /** Cluster DNS for ClusterFirst pods; without it they use the node's resolver. */
  dns?: ClusterDns;
  log(line: string): void;
}

/** Timings and seams; the defaults are the kubelet's. */
export interface PodWorkersOptions {
  resyncPeriodMs?: number;
  relistPeriodMs?: number;
  crashBackoff?: { initialMs: number; maxMs: number };
  imageBackoff?: { initialMs: number; maxMs: number };
  /** How httpGet and tcpSocket probes and hooks reach pods; direct connections by default. */
  dial?: Dial;
  seccompProfileRoot?: string;
}
