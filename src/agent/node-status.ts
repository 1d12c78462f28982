import { execFile } from 'node:child_process';
import { readFile, statfs } from 'node:fs/promises';
import { arch, cpus, release } from 'node:os';
import { promisify } from 'node:util';
import type { KubeObject } from '../api/types.js';

const run = promisify(execFile);

/** The most pods a node takes, the kubelet's default --max-pods. */
export const MAX_PODS = 110;
/** What a kubelet of this level would report; some clients pick behaviour from it. */
export const AGENT_VERSION = 'v1.32.0-atoll';

export interface NodeIdentity {
  nodeName: string;
  nodeIP: string;
  /** The node server's port, published as status.daemonEndpoints.kubeletEndpoint. */
  port: number;
  podCidr: string;
  /** Runtime handlers the node offers ('runc', 'runv'). */
  handlers: string[];
  /**
   * Handlers still opening (runv, for seconds after the agent starts): not offered yet, but the Node
   * keeps whatever labels it has for them, so a restart neither flaps them nor needs a Node update
   * (which EdgeHub refuses offline) before the node can report status.
   */
  pendingHandlers?: string[];
  /** What runv's VMs run on, when the node offers runv. */
  accelerator?: 'kvm' | 'tcg';
  /** `<runtime_name>://<version>` from CRI Version. */
  runtimeVersion: string;
  /** Where the node keeps its state; its filesystem is the node's ephemeral storage. */
  dataDir: string;
}

/** Set to `true` on nodes whose runtime offers handler `<name>`; RuntimeClasses select nodes by it. */
export function runtimeHandlerLabel(handler: string): string {
  return `atoll.io/runtime-${handler}`;
}

/** Whether the node's runv VMs use KVM (`true`) or TCG (`false`). */
export const KVM_LABEL = 'atoll.dev/kvm';

/** Labels the agent owns on its Node; others' labels (roles) are left alone. */
export function nodeLabels(id: NodeIdentity): Record<string, string> {
  return {
    ...Object.fromEntries(id.handlers.map((h) => [runtimeHandlerLabel(h), 'true'])),
    ...(id.accelerator ? { [KVM_LABEL]: String(id.accelerator === 'kvm') } : {}),
    'kubernetes.io/hostname': id.nodeName,
    'kubernetes.io/os': 'linux',
    'kubernetes.io/arch': goArch(arch()),
    'beta.kubernetes.io/os': 'linux',
    'beta.kubernetes.io/arch': goArch(arch()),
  };
}

function goArch(nodeArch: string): string {
  return ({ x64: 'amd64', ia32: '386' } as Record<string, string>)[nodeArch] ?? nodeArch;
}

export async function hostCapacity(dataDir: string): Promise<Record<string, string>> {
  const meminfo = await readFile('/proc/meminfo', 'utf8');
  const memKiB = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  const fs = await statfs(dataDir);
  return {
    cpu: String(cpus().length),
    memory: `${memKiB}Ki`,
    pods: String(MAX_PODS),
    'ephemeral-storage': `${Math.floor((fs.blocks * fs.bsize) / 1024)}Ki`,
  };
}

async function osImage(): Promise<string> {
  const text = await readFile('/etc/os-release', 'utf8').catch(() => '');
  return /^PRETTY_NAME="?([^"\n]*)"?/m.exec(text)?.[1] ?? 'Linux';
}

async function firstLine(path: string): Promise<string> {
  return (await readFile(path, 'utf8').catch(() => '')).trim();
}

/** status.nodeInfo: what `kubectl get nodes -o wide` and `describe node` show. */
export async function nodeInfo(id: NodeIdentity): Promise<Record<string, string>> {
  const machineID = await firstLine('/etc/machine-id');
  return {
    machineID,
    systemUUID: (await firstLine('/sys/class/dmi/id/product_uuid')) || machineID,
    bootID: await firstLine('/proc/sys/kernel/random/boot_id'),
    kernelVersion: release(),
    osImage: await osImage(),
    containerRuntimeVersion: id.runtimeVersion,
    kubeletVersion: AGENT_VERSION,
    kubeProxyVersion: '',
    operatingSystem: 'linux',
    architecture: goArch(arch()),
  };
}

type Condition = { type: string; status: string; reason: string; message: string; lastHeartbeatTime?: string; lastTransitionTime?: string };

/** The node conditions the agent reports; pressure conditions come from the host's own numbers. */
export async function nodeConditions(dataDir: string): Promise<Condition[]> {
  const meminfo = await readFile('/proc/meminfo', 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(meminfo)?.[1] ?? 0);
  // The kubelet's default hard eviction thresholds: memory.available<100Mi, nodefs.available<10%.
  const memoryPressure = kib('MemAvailable') < 100 * 1024;
  const fs = await statfs(dataDir);
  const diskPressure = fs.bavail < fs.blocks * 0.1;
  const flag = (type: string, on: boolean, reasons: [string, string], messages: [string, string]): Condition => ({
    type,
    status: on ? 'True' : 'False',
    reason: reasons[on ? 0 : 1],
    message: messages[on ? 0 : 1],
  });
  return [
    flag('MemoryPressure', memoryPressure, ['KubeletHasInsufficientMemory', 'KubeletHasSufficientMemory'], ['kubelet has insufficient memory available', 'kubelet has sufficient memory available']),
    flag('DiskPressure', diskPressure, ['KubeletHasDiskPressure', 'KubeletHasNoDiskPressure'], ['kubelet has disk pressure', 'kubelet has no disk pressure']),
    flag('PIDPressure', false, ['KubeletHasInsufficientPID', 'KubeletHasSufficientPID'], ['kubelet has insufficient PID available', 'kubelet has sufficient PID available']),
    { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' },
  ];
}

/** The condition saying whether the node runs on its EdgeHub cache because the cloud is unreachable. */
export const AUTONOMOUS_CONDITION = 'Autonomous';

export function autonomousCondition(cloudReachable: boolean): Condition {
  return cloudReachable
    ? { type: AUTONOMOUS_CONDITION, status: 'False', reason: 'CloudReachable', message: 'the node reaches the cloud API server' }
    : { type: AUTONOMOUS_CONDITION, status: 'True', reason: 'CloudUnreachable', message: 'the cloud API server is unreachable; the node runs on its EdgeHub cache' };
}

/**
 * Merges freshly measured conditions into the node's current ones. A condition keeps its
 * lastTransitionTime while its status stays; `heartbeat` becomes every condition's
 * lastHeartbeatTime (the node-lifecycle controller reads the Ready one).
 */
export function mergeConditions(current: Condition[] | undefined, fresh: Condition[], heartbeat: string): Condition[] {
  return fresh.map((c) => {
    const prior = current?.find((p) => p.type === c.type);
    const lastTransitionTime = prior && prior.status === c.status ? prior.lastTransitionTime : heartbeat;
    return { ...c, lastHeartbeatTime: heartbeat, lastTransitionTime };
  });
}

/** The node's status without conditions: what changes rarely (capacity, addresses, info, handlers). */
export async function nodeStatusBody(id: NodeIdentity): Promise<Record<string, unknown>> {
  const capacity = await hostCapacity(id.dataDir);
  return {
    capacity,
    allocatable: capacity,
    addresses: [
      { type: 'InternalIP', address: id.nodeIP },
      { type: 'Hostname', address: id.nodeName },
    ],
    daemonEndpoints: { kubeletEndpoint: { Port: id.port } },
    nodeInfo: await nodeInfo(id),
    runtimeHandlers: id.handlers.map((name) => ({ name, features: { recursiveReadOnlyMounts: false, userNamespaces: false } })),
  };
}

/**
 * The labels without the runtime labels the agent owns: a handler the node no longer offers (runv that
 * cannot open after a restart) must not keep attracting its pods. Those of pending handlers stay.
 */
function withoutRuntimeLabels(labels: Record<string, string>, pending: readonly string[]): Record<string, string> {
  const kept = new Set(pending.map(runtimeHandlerLabel));
  // The accelerator label belongs to runv, the one handler that opens late.
  if (pending.length > 0) kept.add(KVM_LABEL);
  return Object.fromEntries(Object.entries(labels).filter(([key]) => kept.has(key) || (!key.startsWith(runtimeHandlerLabel('')) && key !== KVM_LABEL)));
}

/** The Node object a new agent registers. */
export function nodeObject(id: NodeIdentity, existing?: KubeObject): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      ...(existing?.metadata ?? {}),
      name: id.nodeName,
      labels: { ...withoutRuntimeLabels(existing?.metadata.labels ?? {}, id.pendingHandlers ?? []), ...nodeLabels(id) },
    },
    spec: { ...((existing?.spec as object) ?? {}), podCIDR: id.podCidr, podCIDRs: [id.podCidr] },
  };
}

/** The IPv4 address of the interface holding the default route, for --node-ip's default. */
export async function defaultRouteAddress(): Promise<string | undefined> {
  const routes = JSON.parse((await run('ip', ['-j', '-4', 'route', 'show', 'default'])).stdout || '[]') as { dev?: string }[];
  const dev = routes[0]?.dev;
  if (!dev) return undefined;
  const addrs = JSON.parse((await run('ip', ['-j', '-4', 'addr', 'show', 'dev', dev])).stdout || '[]') as { addr_info?: { local?: string }[] }[];
  return addrs[0]?.addr_info?.[0]?.local;
}
