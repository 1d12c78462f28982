// A pod's CRI PodSandboxConfig and a container's ContainerConfig, built as the kubelet builds them
// (kuberuntime_sandbox.go, kuberuntime_container_linux.go). Pure, so their rules are unit-tested.
import { join } from 'node:path';
import { parseQuantity, toBytes, toMilli, tryParseQuantity } from '../../api/quantity.js';
import type { KubeObject } from '../../api/types.js';
import { podQosClass } from '../../apiserver/strategy.js';
import type {
  ContainerConfig,
  DNSConfig,
  KeyValue,
  LinuxContainerResources,
  LinuxContainerSecurityContext,
  PodSandboxConfig,
  PortMapping,
  SecurityProfile,
} from '../../runtime/cri/index.js';
import {
  CONTAINER_NAME_LABEL,
  POD_NAME_LABEL,
  POD_NAMESPACE_LABEL,
  POD_UID_LABEL,
  RESTART_COUNT_ANNOTATION,
  TERMINATION_GRACE_ANNOTATION,
  type CriMount,
  type NodeFacts,
} from '../contracts.js';
import {
  CONTAINER_HASH_ANNOTATION,
  INIT_CONTAINER_ANNOTATION,
  TERMINATION_LOG_FILE_ANNOTATION,
  TERMINATION_MESSAGE_PATH_ANNOTATION,
  TERMINATION_MESSAGE_POLICY_ANNOTATION,
} from './observed.js';
import {
  containerHash,
  containerLogPath,
  podLogDirectory,
  podSpec,
  DEFAULT_TERMINATION_GRACE_SECONDS,
  type Container,
  type SeccompProfile,
} from './spec.js';

/** kubelet's cpu.shares floor (MinShares) and the CFS period it uses for limits. */
export const MIN_CPU_SHARES = 2;
export const CPU_PERIOD_US = 100_000;
/** kubelet: the smallest quota the kernel accepts (MinQuotaPeriod, 1 ms). */
export const MIN_CPU_QUOTA_US = 1_000;
/** kubelet's OOM score adjustments by QoS class (pkg/kubelet/qos/policy.go). */
export const GUARANTEED_OOM_SCORE_ADJ = -997;
export const BEST_EFFORT_OOM_SCORE_ADJ = 1000;
/** Where `Localhost` seccomp profiles are looked up, as kubelet's <root-dir>/seccomp. */
export const DEFAULT_SECCOMP_PROFILE_ROOT = '/var/lib/kubelet/seccomp';
/** A pod hostname is a DNS label. */
const MAX_HOSTNAME_LENGTH = 63;
const DNS_NDOTS = 5;
const DEFAULT_TERMINATION_MESSAGE_PATH = '/dev/termination-log';

/** The cluster DNS the agent points ClusterFirst pods at. */
export interface ClusterDns {
  servers: string[];
  /** Searches after the pod's own `<ns>.svc.<clusterDomain>, svc.<clusterDomain>, <clusterDomain>`. */
  searches: string[];
  /** e.g. `cluster.local`; when set, the namespace-relative searches come first. */
  clusterDomain?: string;
}

export function podLabels(pod: KubeObject): Record<string, string> {
  return {
    ...(pod.metadata.labels ?? {}),
    [POD_NAME_LABEL]: pod.metadata.name!,
    [POD_NAMESPACE_LABEL]: pod.metadata.namespace!,
    [POD_UID_LABEL]: pod.metadata.uid!,
  };
}

/** The pod's hostname: spec.hostname, else its name, cut to a DNS label as kubelet's GeneratePodHostNameAndDomain does. */
export function podHostname(pod: KubeObject, node: NodeFacts): string {
  const spec = podSpec(pod);
  if (spec.hostNetwork) return node.nodeName;
  const name = spec.hostname || pod.metadata.name!;
  return name.length > MAX_HOSTNAME_LENGTH ? name.slice(0, MAX_HOSTNAME_LENGTH).replace(/[-.]+$/, '') : name;
}

/** kubelet's dns.go: ClusterFirst (falling back to the host's resolver without cluster DNS), Default, None, plus dnsConfig. */
export function dnsConfig(pod: KubeObject, cluster: ClusterDns | undefined): DNSConfig | undefined {
  const spec = podSpec(pod);
  let policy = spec.dnsPolicy ?? 'ClusterFirst';
  if (policy === 'ClusterFirst' && spec.hostNetwork) policy = 'Default';
  if (policy === 'ClusterFirstWithHostNet') policy = 'ClusterFirst';
  if (policy === 'ClusterFirst' && !cluster) policy = 'Default';
  const out = { servers: [] as string[], searches: [] as string[], options: [] as string[] };
  if (policy === 'ClusterFirst' && cluster) {
    out.servers.push(...cluster.servers);
    const domain = cluster.clusterDomain;
    if (domain) out.searches.push(`${pod.metadata.namespace}.svc.${domain}`, `svc.${domain}`, domain);
    out.searches.push(...cluster.searches);
    out.options.push(`ndots:${DNS_NDOTS}`);
  }
  const extra = spec.dnsConfig;
  if (extra) {
    out.servers.push(...(extra.nameservers ?? []));
    out.searches.push(...(extra.searches ?? []));
    for (const o of extra.options ?? []) {
      const rendered = o.value !== undefined ? `${o.name}:${o.value}` : o.name;
      const existing = out.options.findIndex((x) => x.split(':')[0] === o.name);
      if (existing >= 0) out.options[existing] = rendered;
      else out.options.push(rendered);
    }
  }
  if (out.servers.length === 0 && out.searches.length === 0 && out.options.length === 0) return undefined;
  out.servers = [...new Set(out.servers)];
  out.searches = [...new Set(out.searches)];
  return out;
}

function portMappings(pod: KubeObject): PortMapping[] {
  const out: PortMapping[] = [];
  for (const c of podSpec(pod).containers) {
    for (const p of c.ports ?? []) {
      if (!p.hostPort) continue;
      out.push({ protocol: p.protocol ?? 'TCP', container_port: p.containerPort, host_port: p.hostPort, host_ip: p.hostIP ?? '' });
    }
  }
  return out;
}

function seccompProfile(profile: SeccompProfile | undefined, root: string): SecurityProfile {
  switch (profile?.type) {
    case 'Unconfined':
      return { profile_type: 'Unconfined' };
    case 'Localhost':
      return { profile_type: 'Localhost', localhost_ref: join(root, profile.localhostProfile ?? '') };
    default:
      // Atoll runs every pod under the runtime's default profile unless it asks otherwise, as
      // kubelet does with --seccomp-default.
      return { profile_type: 'RuntimeDefault' };
  }
}

export interface SandboxConfigInput {
  pod: KubeObject;
  node: NodeFacts;
  logRoot: string;
  attempt: number;
  dns?: ClusterDns;
  seccompProfileRoot?: string;
}

export function sandboxConfig(input: SandboxConfigInput): PodSandboxConfig {
  const { pod } = input;
  const spec = podSpec(pod);
  const sc = spec.securityContext ?? {};
  const allContainers = [...(spec.initContainers ?? []), ...spec.containers];
  const config: PodSandboxConfig = {
    metadata: { name: pod.metadata.name, namespace: pod.metadata.namespace, uid: pod.metadata.uid, attempt: input.attempt },
    hostname: podHostname(pod, input.node),
    log_directory: podLogDirectory(input.logRoot, { namespace: pod.metadata.namespace!, name: pod.metadata.name!, uid: pod.metadata.uid! }),
    port_mappings: portMappings(pod),
    labels: podLabels(pod),
    annotations: { ...(pod.metadata.annotations ?? {}) },
    linux: {
      security_context: {
        namespace_options: {
          network: spec.hostNetwork ? 'NODE' : 'POD',
          pid: spec.hostPID ? 'NODE' : spec.shareProcessNamespace ? 'POD' : 'CONTAINER',
          ipc: spec.hostIPC ? 'NODE' : 'POD',
        },
        privileged: allContainers.some((c) => c.securityContext?.privileged === true),
        seccomp: seccompProfile(sc.seccompProfile, input.seccompProfileRoot ?? DEFAULT_SECCOMP_PROFILE_ROOT),
        ...(sc.runAsUser !== undefined ? { run_as_user: { value: sc.runAsUser } } : {}),
        ...(sc.runAsGroup !== undefined ? { run_as_group: { value: sc.runAsGroup } } : {}),
        ...(sc.supplementalGroups?.length || sc.fsGroup !== undefined
          ? { supplemental_groups: [...(sc.fsGroup !== undefined ? [sc.fsGroup] : []), ...(sc.supplementalGroups ?? [])] }
          : {}),
      },
      sysctls: Object.fromEntries((sc.sysctls ?? []).map((s) => [s.name, s.value])),
    },
  };
  const dns = dnsConfig(pod, input.dns);
  if (dns) config.dns_config = dns;
  return config;
}

function quantityOf(list: Record<string, string | number> | undefined, name: string): ReturnType<typeof parseQuantity> | undefined {
  const v = list?.[name];
  return v === undefined ? undefined : tryParseQuantity(v);
}

/** kubelet's MilliCPUToShares: requests → cpu.shares, never below 2. */
export function cpuShares(milliCpu: number): number {
  if (milliCpu === 0) return MIN_CPU_SHARES;
  return Math.max(MIN_CPU_SHARES, Math.floor((milliCpu * 1024) / 1000));
}

/** kubelet's MilliCPUToQuota: limits → CFS quota over a 100 ms period; 0 means unlimited. */
export function cpuQuota(milliCpu: number, periodUs = CPU_PERIOD_US): number {
  if (milliCpu === 0) return 0;
  return Math.max(MIN_CPU_QUOTA_US, Math.floor((milliCpu * periodUs) / 1000));
}

/** kubelet's GetContainerOOMScoreAdjust: by QoS class, Burstable scaled by the memory request's share of the node. */
export function oomScoreAdj(pod: KubeObject, container: Container, node: NodeFacts): number {
  const qos = (pod.status as { qosClass?: string } | undefined)?.qosClass || podQosClass(pod);
  if (qos === 'Guaranteed') return GUARANTEED_OOM_SCORE_ADJ;
  if (qos === 'BestEffort') return BEST_EFFORT_OOM_SCORE_ADJ;
  const request = quantityOf(container.resources?.requests, 'memory');
  const capacity = toBytes(parseQuantity(node.allocatable.memory));
  const memoryRequest = request ? toBytes(request) : 0;
  if (capacity <= 0) return BEST_EFFORT_OOM_SCORE_ADJ - 1;
  let adj = BEST_EFFORT_OOM_SCORE_ADJ - Math.floor((1000 * memoryRequest) / capacity);
  if (adj < 1000 + GUARANTEED_OOM_SCORE_ADJ) adj = 1000 + GUARANTEED_OOM_SCORE_ADJ;
  if (adj === BEST_EFFORT_OOM_SCORE_ADJ) adj -= 1;
  return adj;
}

export function containerResources(pod: KubeObject, container: Container, node: NodeFacts): LinuxContainerResources {
  const cpuRequest = quantityOf(container.resources?.requests, 'cpu') ?? quantityOf(container.resources?.limits, 'cpu');
  const cpuLimit = quantityOf(container.resources?.limits, 'cpu');
  const memoryLimit = quantityOf(container.resources?.limits, 'memory');
  const out: LinuxContainerResources = {
    cpu_shares: cpuShares(cpuRequest ? toMilli(cpuRequest) : 0),
    oom_score_adj: oomScoreAdj(pod, container, node),
  };
  if (cpuLimit && toMilli(cpuLimit) > 0) {
    out.cpu_period = CPU_PERIOD_US;
    out.cpu_quota = cpuQuota(toMilli(cpuLimit));
  }
  if (memoryLimit && toBytes(memoryLimit) > 0) out.memory_limit_in_bytes = toBytes(memoryLimit);
  return out;
}

export function containerSecurity(pod: KubeObject, container: Container, seccompRoot = DEFAULT_SECCOMP_PROFILE_ROOT): LinuxContainerSecurityContext {
  const pc = podSpec(pod).securityContext ?? {};
  const sc = container.securityContext ?? {};
  const out: LinuxContainerSecurityContext = {
    privileged: sc.privileged === true,
    readonly_rootfs: sc.readOnlyRootFilesystem === true,
    // kubelet's AddNoNewPrivileges: only an explicit allowPrivilegeEscalation: false asks for it.
    no_new_privs: sc.allowPrivilegeEscalation === false,
    seccomp: seccompProfile(sc.seccompProfile ?? pc.seccompProfile, seccompRoot),
  };
  const uid = sc.runAsUser ?? pc.runAsUser;
  const gid = sc.runAsGroup ?? pc.runAsGroup;
  if (uid !== undefined) out.run_as_user = { value: uid };
  if (gid !== undefined) out.run_as_group = { value: gid };
  const groups = [...(pc.fsGroup !== undefined ? [pc.fsGroup] : []), ...(pc.supplementalGroups ?? [])];
  if (groups.length > 0) out.supplemental_groups = groups;
  if (sc.capabilities) out.capabilities = { add_capabilities: sc.capabilities.add ?? [], drop_capabilities: sc.capabilities.drop ?? [] };
  return out;
}

export interface ContainerConfigInput {
  pod: KubeObject;
  container: Container;
  init: boolean;
  restartCount: number;
  /** The image as the runtime knows it (its id after a pull). */
  imageRef: string;
  envs: KeyValue[];
  mounts: CriMount[];
  /** The host file bound at terminationMessagePath. */
  terminationLogFile: string;
  node: NodeFacts;
  seccompProfileRoot?: string;
}

export function containerConfig(input: ContainerConfigInput): ContainerConfig {
  const { pod, container } = input;
  const spec = podSpec(pod);
  const messagePath = container.terminationMessagePath || DEFAULT_TERMINATION_MESSAGE_PATH;
  const mounts: CriMount[] = [...input.mounts];
  if (!mounts.some((m) => m.container_path === messagePath)) mounts.push({ container_path: messagePath, host_path: input.terminationLogFile });
  const config: ContainerConfig = {
    metadata: { name: container.name, attempt: input.restartCount },
    image: { image: input.imageRef, user_specified_image: container.image ?? '' },
    command: container.command ?? [],
    args: container.args ?? [],
    working_dir: container.workingDir ?? '',
    envs: input.envs,
    mounts: mounts.map((m) => ({ ...m, propagation: (m.propagation ?? 0) as 0 | 1 | 2 })),
    labels: {
      [POD_NAME_LABEL]: pod.metadata.name!,
      [POD_NAMESPACE_LABEL]: pod.metadata.namespace!,
      [POD_UID_LABEL]: pod.metadata.uid!,
      [CONTAINER_NAME_LABEL]: container.name,
    },
    annotations: {
      [RESTART_COUNT_ANNOTATION]: String(input.restartCount),
      [TERMINATION_GRACE_ANNOTATION]: String(spec.terminationGracePeriodSeconds ?? DEFAULT_TERMINATION_GRACE_SECONDS),
      [CONTAINER_HASH_ANNOTATION]: containerHash(container),
      [TERMINATION_MESSAGE_PATH_ANNOTATION]: messagePath,
      [TERMINATION_MESSAGE_POLICY_ANNOTATION]: container.terminationMessagePolicy ?? 'File',
      [TERMINATION_LOG_FILE_ANNOTATION]: input.terminationLogFile,
      [INIT_CONTAINER_ANNOTATION]: String(input.init),
    },
    log_path: containerLogPath(container.name, input.restartCount),
    stdin: container.stdin === true,
    stdin_once: container.stdinOnce === true,
    tty: container.tty === true,
    linux: {
      resources: containerResources(pod, container, input.node),
      security_context: containerSecurity(pod, container, input.seccompProfileRoot),
    },
  };
  return config;
}
