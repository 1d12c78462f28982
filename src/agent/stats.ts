// The kubelet Summary API (/stats/summary, k8s.io/kubelet/pkg/apis/stats/v1alpha1), as a view of a
// StatsSample. The API has no field for block I/O or packet counts; those are served as Prometheus
// metrics (/metrics/cadvisor) only.
import type { CpuSample, FsSample, InterfaceSample, MemorySample, NetworkSample, StatsSample } from './stats-sample.js';

export interface CpuStats {
  time: string;
  usageNanoCores?: number;
  usageCoreNanoSeconds?: number;
}

export interface MemoryStats {
  time: string;
  availableBytes?: number;
  usageBytes?: number;
  workingSetBytes?: number;
  rssBytes?: number;
  pageFaults?: number;
  majorPageFaults?: number;
}

export interface InterfaceStats {
  name: string;
  rxBytes?: number;
  rxErrors?: number;
  txBytes?: number;
  txErrors?: number;
}

export interface NetworkStats extends InterfaceStats {
  time: string;
  interfaces: InterfaceStats[];
}

export interface FsStats {
  time: string;
  availableBytes?: number;
  capacityBytes?: number;
  usedBytes?: number;
  inodesFree?: number;
  inodes?: number;
  inodesUsed?: number;
}

export interface ContainerSummary {
  name: string;
  startTime: string;
  cpu?: CpuStats;
  memory?: MemoryStats;
  rootfs?: FsStats;
  logs?: FsStats;
}

export interface PodSummary {
  podRef: { name: string; namespace: string; uid: string };
  startTime: string;
  containers: ContainerSummary[];
  cpu?: CpuStats;
  memory?: MemoryStats;
  network?: NetworkStats;
  'ephemeral-storage'?: FsStats;
}

export interface NodeSummary {
  nodeName: string;
  startTime: string;
  cpu: CpuStats;
  memory: MemoryStats;
  network?: NetworkStats;
  fs: FsStats;
  runtime?: { imageFs?: FsStats };
}

export interface Summary {
  node: NodeSummary;
  pods: PodSummary[];
}

const NODE_CPU_ID = '<node>';

/**
 * Renders Summary snapshots. CPU usage in nano-cores is a rate, so each call keeps the last
 * cumulative sample per node, pod and container, and reports `usageNanoCores` from the second
 * sample of each on (as the kubelet's CRI stats provider does).
 */
export class SummaryStats {
  private readonly samples = new Map<string, { timeMs: number; usageNs: number }>();

  summary(sample: StatsSample): Summary {
    const seen = new Set<string>([NODE_CPU_ID]);
    const pods = sample.pods.map((p): PodSummary => {
      seen.add(p.sandboxId);
      let ephemeralUsed = 0;
      const containers = p.containers.map((c): ContainerSummary => {
        seen.add(c.id);
        const summary: ContainerSummary = { name: c.name, startTime: timeOf(c.startTimeMs) };
        if (c.cpu) summary.cpu = this.cpu(c.id, c.cpu);
        if (c.memory) summary.memory = memory(c.memory);
        if (c.rootfs) summary.rootfs = fs(c.rootfs);
        if (c.logs) summary.logs = fs(c.logs);
        ephemeralUsed += (c.rootfs?.usedBytes ?? 0) + (c.logs?.usedBytes ?? 0);
        return summary;
      });
      const pod: PodSummary = { podRef: p.podRef, startTime: timeOf(p.startTimeMs), containers };
      if (p.cpu) pod.cpu = this.cpu(p.sandboxId, p.cpu);
      if (p.memory) pod.memory = memory(p.memory);
      if (p.network) pod.network = network(p.network);
      const rootfs = containers.find((c) => c.rootfs)?.rootfs;
      if (rootfs) pod['ephemeral-storage'] = { ...rootfs, usedBytes: ephemeralUsed };
      return pod;
    });
    const n = sample.node;
    const node: NodeSummary = {
      nodeName: n.nodeName,
      startTime: timeOf(n.startTimeMs),
      cpu: this.cpu(NODE_CPU_ID, n.cpu),
      memory: memory(n.memory),
      fs: fs(n.fs),
    };
    if (n.network) node.network = network(n.network);
    if (n.imageFs) node.runtime = { imageFs: fs(n.imageFs) };
    for (const id of this.samples.keys()) if (!seen.has(id)) this.samples.delete(id);
    return { node, pods };
  }

  /** CPU stats with a rate from the previous sample of `id`. */
  private cpu(id: string, usage: CpuSample): CpuStats {
    const previous = this.samples.get(id);
    this.samples.set(id, { timeMs: usage.timeMs, usageNs: usage.usageNanoSeconds });
    const out: CpuStats = { time: timeOf(usage.timeMs) };
    if (previous && usage.timeMs > previous.timeMs && usage.usageNanoSeconds >= previous.usageNs) {
      out.usageNanoCores = Math.round(((usage.usageNanoSeconds - previous.usageNs) / (usage.timeMs - previous.timeMs)) * 1e3);
    }
    out.usageCoreNanoSeconds = usage.usageNanoSeconds;
    return out;
  }
}

/** metav1.Time: RFC 3339 in UTC, whole seconds. */
function timeOf(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

function memory(m: MemorySample): MemoryStats {
  const { timeMs, ...values } = m;
  return { time: timeOf(timeMs), ...values };
}

function fs(f: FsSample): FsStats {
  const { timeMs, ...values } = f;
  return { time: timeOf(timeMs), ...values };
}

function network(n: NetworkSample): NetworkStats {
  const iface = (i: InterfaceSample): InterfaceStats => ({ name: i.name, rxBytes: i.rxBytes, rxErrors: i.rxErrors, txBytes: i.txBytes, txErrors: i.txErrors });
  const main = n.interfaces.find((i) => i.name === n.defaultInterface);
  return { time: timeOf(n.timeMs), ...(main ? iface(main) : { name: '' }), interfaces: n.interfaces.map(iface) };
}
