// The parts of a Pod the pod workers read, typed, and the small facts derived from them.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { KubeObject } from '../../api/types.js';
import { imageTag } from '../../api/validation/podspec-defaults.js';

export interface ExecAction {
  command?: string[];
}

export interface HTTPHeader {
  name: string;
  value: string;
}

export interface HTTPGetAction {
  path?: string;
  port: number | string;
  host?: string;
  scheme?: 'HTTP' | 'HTTPS';
  httpHeaders?: HTTPHeader[];
}

export interface TCPSocketAction {
  port: number | string;
  host?: string;
}

/** A probe or lifecycle handler: exactly one action is set. */
export interface Handler {
  exec?: ExecAction;
  httpGet?: HTTPGetAction;
  tcpSocket?: TCPSocketAction;
  sleep?: { seconds: number };
}

export interface Probe extends Handler {
  initialDelaySeconds?: number;
  timeoutSeconds?: number;
  periodSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
  terminationGracePeriodSeconds?: number;
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  hostPort?: number;
  hostIP?: string;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
}

export interface SeccompProfile {
  type: 'RuntimeDefault' | 'Unconfined' | 'Localhost';
  localhostProfile?: string;
}

export interface SecurityContext {
  privileged?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  seccompProfile?: SeccompProfile;
}

export interface PodSecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  supplementalGroups?: number[];
  fsGroup?: number;
  sysctls?: { name: string; value: string }[];
  seccompProfile?: SeccompProfile;
}

export type ResourceList = Record<string, string | number>;

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  ports?: ContainerPort[];
  resources?: { requests?: ResourceList; limits?: ResourceList };
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: { postStart?: Handler; preStop?: Handler };
  terminationMessagePath?: string;
  terminationMessagePolicy?: 'File' | 'FallbackToLogsOnError';
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  securityContext?: SecurityContext;
  stdin?: boolean;
  stdinOnce?: boolean;
  tty?: boolean;
}

export interface PodSpec {
  nodeName?: string;
  containers: Container[];
  initContainers?: Container[];
  restartPolicy?: 'Always' | 'OnFailure' | 'Never';
  terminationGracePeriodSeconds?: number;
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  shareProcessNamespace?: boolean;
  hostname?: string;
  subdomain?: string;
  dnsPolicy?: 'ClusterFirst' | 'ClusterFirstWithHostNet' | 'Default' | 'None';
  dnsConfig?: { nameservers?: string[]; searches?: string[]; options?: { name: string; value?: string }[] };
  securityContext?: PodSecurityContext;
  readinessGates?: { conditionType: string }[];
  runtimeClassName?: string;
  imagePullSecrets?: { name: string }[];
}

export type Phase = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';

export function podSpec(pod: KubeObject): PodSpec {
  return pod.spec as PodSpec;
}

/** Events need the object's kind, which list items do not carry. */
export function asPod(pod: KubeObject): KubeObject {
  return pod.kind ? pod : { ...pod, apiVersion: 'v1', kind: 'Pod' };
}

export function restartPolicy(pod: KubeObject): 'Always' | 'OnFailure' | 'Never' {
  return podSpec(pod).restartPolicy ?? 'Always';
}

/** kubelet's format.Pod: `name_namespace(uid)`, the form its messages name a pod by. */
export function formatPod(pod: KubeObject): string {
  return `${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})`;
}

export const DEFAULT_TERMINATION_GRACE_SECONDS = 30;

/** The grace a pod's containers get when it is deleted: the deletion's own, else the spec's. */
export function deletionGraceSeconds(pod: KubeObject): number {
  return pod.metadata.deletionGracePeriodSeconds ?? podSpec(pod).terminationGracePeriodSeconds ?? DEFAULT_TERMINATION_GRACE_SECONDS;
}

/** The grace a container gets when the pod itself goes on (liveness failure, definition change). */
export function containerGraceSeconds(pod: KubeObject, probe?: Probe): number {
  return probe?.terminationGracePeriodSeconds ?? podSpec(pod).terminationGracePeriodSeconds ?? DEFAULT_TERMINATION_GRACE_SECONDS;
}

export function isTerminating(pod: KubeObject): boolean {
  return Boolean(pod.metadata.deletionTimestamp);
}

/** The CRI log_directory of a pod: `<logRoot>/<ns>_<name>_<uid>` (DESIGN's CRI log layout). */
export function podLogDirectory(logRoot: string, pod: { namespace: string; name: string; uid: string }): string {
  return join(logRoot, `${pod.namespace}_${pod.name}_${pod.uid}`);
}

/** The CRI log_path of one container instance, relative to the pod's log_directory. */
export function containerLogPath(containerName: string, restartCount: number): string {
  return join(containerName, `${restartCount}.log`);
}

/** Where a container instance's termination-message file lives on the node. */
export function terminationLogFile(podsDir: string, uid: string, containerName: string, restartCount: number): string {
  return join(podsDir, uid, 'containers', containerName, String(restartCount));
}

/** The image pull policy the API server defaults: Always for `:latest` or no tag, else IfNotPresent. */
export function pullPolicy(container: Container): 'Always' | 'IfNotPresent' | 'Never' {
  if (container.imagePullPolicy) return container.imagePullPolicy;
  return container.image && imageTag(container.image) === 'latest' ? 'Always' : 'IfNotPresent';
}

/**
 * A digest of the container's definition, kept as a container annotation: a running container
 * whose definition changed (a bare pod's image was updated) is restarted, as kubelet does with its
 * container hash. Resources are left out, since they may change in place.
 */
export function containerHash(container: Container): string {
  const { resources: _resources, ...rest } = container;
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex').slice(0, 16);
}

/** The port a probe or hook names, resolving a named port against the container's ports. */
export function resolvePort(port: number | string, container: Container): number {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  const found = container.ports?.find((p) => p.name === port);
  if (!found) throw new Error(`couldn't find port ${JSON.stringify(port)} in container ${container.name}`);
  return found.containerPort;
}
