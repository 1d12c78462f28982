import { ApiError, errors } from '../api/errors.js';
import type { KubeObject } from '../api/types.js';
import type { Toleration } from '../api/scheduling.js';

export type { Toleration };
import type { AdmissionRequest } from '../apiserver/admission.js';

/** The parts of a Pod the admission plugins read and write; everything else is carried along untouched. */
export interface PodSpec {
  containers?: Container[];
  initContainers?: Container[];
  ephemeralContainers?: Container[];
  volumes?: Volume[];
  tolerations?: Toleration[];
  nodeSelector?: Record<string, string>;
  overhead?: Record<string, string>;
  runtimeClassName?: string;
  serviceAccountName?: string;
  serviceAccount?: string;
  automountServiceAccountToken?: boolean;
  imagePullSecrets?: { name?: string }[];
  nodeName?: string;
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  os?: { name?: string };
  securityContext?: PodSecurityContext;
  [field: string]: unknown;
}

export interface Container {
  name: string;
  ports?: { hostPort?: number; containerPort?: number }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  securityContext?: SecurityContext;
  [field: string]: unknown;
}

export interface Volume {
  name: string;
  [source: string]: unknown;
}

export interface SeccompProfile {
  type?: string;
  localhostProfile?: string;
}

export interface SeLinuxOptions {
  user?: string;
  role?: string;
  type?: string;
  level?: string;
}

interface CommonSecurityContext {
  runAsUser?: number;
  runAsNonRoot?: boolean;
  seccompProfile?: SeccompProfile;
  appArmorProfile?: { type?: string };
  seLinuxOptions?: SeLinuxOptions;
  windowsOptions?: { hostProcess?: boolean };
}

export interface SecurityContext extends CommonSecurityContext {
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  procMount?: string;
}

export interface PodSecurityContext extends CommonSecurityContext {
  sysctls?: { name: string; value?: string }[];
}

/** True for a write to a Pod itself (not one of its subresources). */
export function isPod(req: AdmissionRequest): boolean {
  return req.def.group === '' && req.def.kind === 'Pod' && req.subresource === '' && req.object !== undefined;
}

/** The spec of the pod in a request, created empty when absent so plugins can write into it. */
export function podSpec(pod: KubeObject): PodSpec {
  if (pod.spec === null || typeof pod.spec !== 'object') pod.spec = {};
  return pod.spec as PodSpec;
}

/**
 * 403 as kube's `admission.NewForbidden` words it: `<resource> "<name>" is forbidden: <reason>`,
 * or `<resource> is forbidden: <reason>` when the object has no name yet.
 */
export function admissionForbidden(req: AdmissionRequest, reason: string): ApiError {
  const resource = req.def.group ? `${req.def.plural}.${req.def.group}` : req.def.plural;
  const name = req.name || req.object?.metadata.name || '';
  const message = name ? `${resource} "${name}" is forbidden: ${reason}` : `${resource} is forbidden: ${reason}`;
  return errors.forbidden({ group: req.def.group, resource: req.def.plural, name: name || undefined }, message);
}
