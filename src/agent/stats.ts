// The kubelet Summary API (/stats/summary, k8s.io/kubelet/pkg/apis/stats/v1alpha1), built from CRI
// ListPodSandboxStats / ListContainerStats and the node's own /proc.
import { readFile, stat, statfs } from 'node:fs/promises';
import type { CriClient } from '../runtime/cri/index.js';
import type { ContainerStats__Output, CpuUsage__Output, FilesystemUsage__Output, MemoryUsage__Output, NetworkUsage__Output, PodSandboxStats__Output } from '../runtime/cri/index.js';
import { POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL } from './contracts.js';

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

/** Linux reports /proc/stat times in USER_HZ ticks, 100 per second on every architecture we run on. */
const USER_HZ = 100;
const NANOS_PER_TICK = 1e9 / USER_HZ;
const NODE_CPU_ID = '<node>';

export interface SummaryStatsOptions {
  cri: CriClient;
  nodeName: string;
  /** The filesystem reported as the node's `fs` (the agent's data dir); default '/'. */
  rootDir?: string;
  /** Where /proc is read; tests may point it at a fixture. Default '/proc'. */
  procDir?: string;
}

/**
 * Builds Summary snapshots. CPU usage in nano-cores is a rate, so each call keeps the last
 * cumulative sample per node, pod and container, and reports `usageNanoCores` from the second
 * sample of each on (as the kubelet's CRI stats provider does).
 */
export class SummaryStats {
  private readonly samples = new Map<string, { timeNs: number; usageNs: number }>();

  constructor(private readonly options: SummaryStatsOptions) {}

  async summary(): Promise<Summary> {
    const { cri } = this.options;
    const [sandboxes, sandboxStats, containers, imageFs] = await Promise.all([
      cri.ListPodSandbox({}),
      cri.ListPodSandboxStats({}),
      cri.ListContainers({}),
      cri.ImageFsInfo({}),
    ]);
    const seen = new Set<string>([NODE_CPU_ID]);
    // Only sandboxes that are up count as pods on the node, as the kubelet reports them.
    const sandboxCreated = new Map(sandboxes.items.filter((s) => s.state === 'SANDBOX_READY').map((s) => [s.id, s.created_at]));
    const containerCreated = new Map(containers.containers.map((c) => [c.id, c.created_at]));
    const logPaths = new Map<string, string>();
    await Promise.all(
      containers.containers
        .filter((c) => c.state === 'CONTAINER_RUNNING')
        .map(async (c) => {
          const status = await cri.ContainerStatus({ container_id: c.id }).catch(() => undefined);
          if (status?.status?.log_path) logPaths.set(c.id, status.status.log_path);
        }),
    );

    const pods: PodSummary[] = [];
    for (const s of sandboxStats.stats) {
      const pod = await this.podSummary(s, sandboxCreated, containerCreated, logPaths, seen);
      if (pod) pods.push(pod);
    }
    const node = await this.nodeSummary(imageFs.image_filesystems[0] ?? null);
    for (const id of this.samples.keys()) if (!seen.has(id)) this.samples.delete(id);
    return { node, pods };
  }

  private async podSummary(
    s: PodSandboxStats__Output,
    sandboxCreated: Map<string, number>,
    containerCreated: Map<string, number>,
    logPaths: Map<string, string>,
    seen: Set<string>,
  ): Promise<PodSummary | undefined> {
    const attrs = s.attributes;
    if (!attrs || !s.linux || !sandboxCreated.has(attrs.id)) return undefined;
    const labels = attrs.labels ?? {};
    const meta = attrs.metadata;
    const podRef = {
      name: labels[POD_NAME_LABEL] ?? meta?.name ?? '',
      namespace: labels[POD_NAMESPACE_LABEL] ?? meta?.namespace ?? '',
      uid: labels[POD_UID_LABEL] ?? meta?.uid ?? '',
    };
    const containers: ContainerSummary[] = [];
    let ephemeralUsed = 0;
    for (const c of s.linux.containers) {
      const summary = await this.containerSummary(c, containerCreated, logPaths, seen);
      ephemeralUsed += (summary.rootfs?.usedBytes ?? 0) + (summary.logs?.usedBytes ?? 0);
      containers.push(summary);
    }
    seen.add(attrs.id);
    const pod: PodSummary = { podRef, startTime: timeOf(sandboxCreated.get(attrs.id)), containers };
    if (s.linux.cpu) pod.cpu = this.cpu(attrs.id, s.linux.cpu);
    if (s.linux.memory) pod.memory = memory(s.linux.memory);
    if (s.linux.network) pod.network = network(s.linux.network);
    const rootfs = containers.find((c) => c.rootfs)?.rootfs;
    if (rootfs) pod['ephemeral-storage'] = { ...rootfs, usedBytes: ephemeralUsed };
    return pod;
  }

  private async containerSummary(c: ContainerStats__Output, created: Map<string, number>, logPaths: Map<string, string>, seen: Set<string>): Promise<ContainerSummary> {
    const id = c.attributes?.id ?? '';
    seen.add(id);
    const summary: ContainerSummary = { name: c.attributes?.metadata?.name ?? '', startTime: timeOf(created.get(id)) };
    if (c.cpu) summary.cpu = this.cpu(id, c.cpu);
    if (c.memory) summary.memory = memory(c.memory);
    if (c.writable_layer) summary.rootfs = await filesystem(c.writable_layer);
    const logPath = logPaths.get(id);
    if (logPath) summary.logs = await fileUsage(logPath);
    return summary;
  }

  /** CPU stats with a rate from the previous sample of `id`. */
  private cpu(id: string, usage: CpuUsage__Output): CpuStats {
    const usageNs = usage.usage_core_nano_seconds?.value ?? 0;
    const timeNs = usage.timestamp || Date.now() * 1e6;
    return { time: timeOf(timeNs), ...this.rate(id, timeNs, usageNs), usageCoreNanoSeconds: usageNs };
  }

  private rate(id: string, timeNs: number, usageNs: number): { usageNanoCores?: number } {
    const previous = this.samples.get(id);
    this.samples.set(id, { timeNs, usageNs });
    if (!previous || timeNs <= previous.timeNs || usageNs < previous.usageNs) return {};
    return { usageNanoCores: Math.round(((usageNs - previous.usageNs) / (timeNs - previous.timeNs)) * 1e9) };
  }

  private async nodeSummary(imageFs: FilesystemUsage__Output | null): Promise<NodeSummary> {
    const proc = this.options.procDir ?? '/proc';
    const nowNs = Date.now() * 1e6;
    const time = timeOf(nowNs);
    const [statText, meminfo, vmstat, netdev, route] = await Promise.all([
      readFile(`${proc}/stat`, 'utf8'),
      readFile(`${proc}/meminfo`, 'utf8'),
      readFile(`${proc}/vmstat`, 'utf8'),
      readFile(`${proc}/net/dev`, 'utf8').catch(() => ''),
      readFile(`${proc}/net/route`, 'utf8').catch(() => ''),
    ]);
    const cpuStat = parseProcStat(statText);
    const usageNs = cpuStat.busyTicks * NANOS_PER_TICK;
    const mem = parseKeyValues(meminfo, 1024);
    const vm = parseKeyValues(vmstat, 1);
    const total = mem.get('MemTotal') ?? 0;
    const usage = total - (mem.get('MemFree') ?? 0);
    const workingSet = Math.max(0, usage - (mem.get('Inactive(file)') ?? 0));
    const node: NodeSummary = {
      nodeName: this.options.nodeName,
      startTime: timeOf(cpuStat.bootTimeSeconds * 1e9),
      cpu: { time, ...this.rate(NODE_CPU_ID, nowNs, usageNs), usageCoreNanoSeconds: usageNs },
      memory: {
        time,
        availableBytes: Math.max(0, total - workingSet),
        usageBytes: usage,
        workingSetBytes: workingSet,
        rssBytes: mem.get('AnonPages') ?? 0,
        pageFaults: vm.get('pgfault') ?? 0,
        majorPageFaults: vm.get('pgmajfault') ?? 0,
      },
      fs: await statFs(this.options.rootDir ?? '/', time),
    };
    const interfaces = parseNetDev(netdev).filter((i) => i.name !== 'lo');
    if (interfaces.length > 0) {
      const defaultName = defaultRouteInterface(route);
      const main = interfaces.find((i) => i.name === defaultName) ?? interfaces[0]!;
      node.network = { time, ...main, interfaces };
    }
    if (imageFs) node.runtime = { imageFs: await filesystem(imageFs) };
    return node;
  }
}

/** metav1.Time: RFC 3339 in UTC, whole seconds. */
function timeOf(nanos: number | undefined): string {
  const ms = nanos ? Math.floor(nanos / 1e6) : Date.now();
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

function memory(m: MemoryUsage__Output): MemoryStats {
  const out: MemoryStats = { time: timeOf(m.timestamp) };
  if (m.available_bytes) out.availableBytes = m.available_bytes.value;
  if (m.usage_bytes) out.usageBytes = m.usage_bytes.value;
  if (m.working_set_bytes) out.workingSetBytes = m.working_set_bytes.value;
  if (m.rss_bytes) out.rssBytes = m.rss_bytes.value;
  if (m.page_faults) out.pageFaults = m.page_faults.value;
  if (m.major_page_faults) out.majorPageFaults = m.major_page_faults.value;
  return out;
}

function network(n: NetworkUsage__Output): NetworkStats {
  const iface = (i: { name: string; rx_bytes: { value: number } | null; rx_errors: { value: number } | null; tx_bytes: { value: number } | null; tx_errors: { value: number } | null }): InterfaceStats => ({
    name: i.name,
    rxBytes: i.rx_bytes?.value ?? 0,
    rxErrors: i.rx_errors?.value ?? 0,
    txBytes: i.tx_bytes?.value ?? 0,
    txErrors: i.tx_errors?.value ?? 0,
  });
  const main = n.default_interface ? iface(n.default_interface) : { name: '' };
  return { time: timeOf(n.timestamp), ...main, interfaces: n.interfaces.map(iface) };
}

/** A CRI filesystem usage, completed with the capacity of the filesystem it names. */
async function filesystem(f: FilesystemUsage__Output): Promise<FsStats> {
  const time = timeOf(f.timestamp);
  const mountpoint = f.fs_id?.mountpoint;
  const out: FsStats = mountpoint ? await statFs(mountpoint, time).catch(() => ({ time })) : { time };
  if (f.used_bytes) out.usedBytes = f.used_bytes.value;
  if (f.inodes_used) out.inodesUsed = f.inodes_used.value;
  return out;
}

/** A log file's usage on its filesystem. */
async function fileUsage(path: string): Promise<FsStats> {
  const time = timeOf(undefined);
  const [fs, st] = await Promise.all([statFs(path, time).catch(() => ({ time })), stat(path).catch(() => undefined)]);
  return { ...fs, usedBytes: st ? st.blocks * 512 : 0, inodesUsed: st ? 1 : 0 };
}

async function statFs(path: string, time: string): Promise<FsStats> {
  const s = await statfs(path);
  return {
    time,
    availableBytes: s.bavail * s.bsize,
    capacityBytes: s.blocks * s.bsize,
    usedBytes: (s.blocks - s.bfree) * s.bsize,
    inodesFree: s.ffree,
    inodes: s.files,
    inodesUsed: s.files - s.ffree,
  };
}

/** The busy CPU time (all but idle and iowait) and boot time from /proc/stat. */
export function parseProcStat(text: string): { busyTicks: number; bootTimeSeconds: number } {
  let busyTicks = 0;
  let bootTimeSeconds = 0;
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields[0] === 'cpu') {
      // user nice system idle iowait irq softirq steal (guest time is already in user and nice)
      const [user, nice, system, , , irq, softirq, steal] = fields.slice(1).map(Number);
      busyTicks = [user, nice, system, irq, softirq, steal].reduce<number>((sum, v) => sum + (v ?? 0), 0);
    } else if (fields[0] === 'btime') {
      bootTimeSeconds = Number(fields[1]);
    }
  }
  return { busyTicks, bootTimeSeconds };
}

/** `Key: value [kB]` (meminfo) or `key value` (vmstat) lines, values times `unit`. */
function parseKeyValues(text: string, unit: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([^\s:]+):?\s+(\d+)/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]) * (line.includes(' kB') ? unit : 1));
  }
  return out;
}

/** Per-interface counters from /proc/net/dev. */
export function parseNetDev(text: string): InterfaceStats[] {
  const out: InterfaceStats[] = [];
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const v = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    // receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes packets errs ...
    out.push({ name, rxBytes: v[0] ?? 0, rxErrors: v[2] ?? 0, txBytes: v[8] ?? 0, txErrors: v[10] ?? 0 });
  }
  return out;
}

/** The interface of the default IPv4 route in /proc/net/route, if any. */
function defaultRouteInterface(text: string): string | undefined {
  for (const line of text.split('\n').slice(1)) {
    const [iface, destination, , , , , , mask] = line.trim().split(/\s+/);
    if (destination === '00000000' && mask === '00000000') return iface;
  }
  return undefined;
}
