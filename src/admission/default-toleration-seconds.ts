import type { AdmissionPlugin, AdmissionRequest } from '../apiserver/admission.js';
import { isPod, podSpec, type Toleration } from './pod-request.js';

export const TAINT_NODE_NOT_READY = 'node.kubernetes.io/not-ready';
export const TAINT_NODE_UNREACHABLE = 'node.kubernetes.io/unreachable';
/** kube-apiserver's `--default-not-ready-toleration-seconds` and `--default-unreachable-toleration-seconds`. */
export const DEFAULT_TOLERATION_SECONDS = 300;

/** Whether `t` tolerates a NoExecute taint with `key`: an empty key tolerates every key, an empty effect every effect. */
function toleratesNoExecute(t: Toleration, key: string): boolean {
  return (!t.key || t.key === key) && (!t.effect || t.effect === 'NoExecute');
}

/**
 * DefaultTolerationSeconds: on pod create, adds `not-ready` and `unreachable` NoExecute tolerations
 * bounded by `seconds`, so that the pods of a lost node are evicted after that long, unless the pod
 * already tolerates those taints.
 */
export function defaultTolerationSeconds(seconds = DEFAULT_TOLERATION_SECONDS): AdmissionPlugin {
  return {
    name: 'DefaultTolerationSeconds',
    admit(req: AdmissionRequest) {
      if (req.operation !== 'CREATE' || !isPod(req)) return;
      const spec = podSpec(req.object!);
      const tolerations = Array.isArray(spec.tolerations) ? spec.tolerations : [];
      const added: Toleration[] = [];
      for (const key of [TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE]) {
        if (!tolerations.some((t) => toleratesNoExecute(t, key))) {
          added.push({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: seconds });
        }
      }
      if (added.length) spec.tolerations = [...tolerations, ...added];
    },
  };
}
