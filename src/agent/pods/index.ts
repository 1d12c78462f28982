// The node agent's pod workers: sandboxes and containers over CRI, probes, restarts, termination,
// and the pod status they report.
export { PodWorkers } from './workers.js';
export { RESYNC_PERIOD_MS, RELIST_PERIOD_MS, MIN_GRACE_SECONDS } from './deps.js';
export type { PodWorkerDeps, PodWorkersOptions } from './deps.js';
export { StatusManager, STATUS_RETRY_INITIAL_MS, STATUS_RETRY_MAX_MS } from './status-manager.js';
export { computePodStatus, podPhase, apiTime } from './status.js';
export type { PodStatus, ContainerStatus, ContainerState, PodCondition, StatusInput, StartFailure, ProbeState } from './status.js';
export { pullSecretsAuth, dockerConfigAuths, authsForImage, PullSecretError } from './pull-secrets.js';
export type { ClusterDns } from './cri-config.js';
export { directDial, type Dial } from './probes.js';
export { CRASH_BACKOFF_INITIAL_MS, CRASH_BACKOFF_MAX_MS, IMAGE_BACKOFF_INITIAL_MS, IMAGE_BACKOFF_MAX_MS } from './backoff.js';
