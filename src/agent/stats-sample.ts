// One reading of what the node server reports: the node from /proc, each ready pod and its running
// containers from CRI, and, when asked, what only the runtime's admin socket carries (block I/O and
// interface packet counters). The Summary API and the Prometheus endpoints are views of one sample.
import { readFile, stat, statfs } from 'node:fs/promises';
import { fetchExtendedStats, type ExtendedStats } from '../runtime/admin.js';
import type { CriClient } from '../runtime/cri/index.js';
import type { ContainerStats__Output, CpuUsage__Output, FilesystemUsage__Output, MemoryUsage__Output, NetworkUsage__Output, PodSandboxStats__Output } from '../runtime/cri/index.js';
import { POD_NAME_LABEL, POD_NAMESPACE_LABEL, POD_UID_LABEL } from './contracts.js';

/** Linux reports /proc/stat times in USER_HZ ticks, 100 per second on every architecture we run on. */
const USER_HZ = 100;
const NANOS_PER_TICK = 1e9 / USER_HZ;
/** How long a scrape waits for the runtime's admin socket before reporting without its extras. */
export const EXTENDED_STATS_TIMEOUT_MS = 5_000;

/** Cumulative CPU time in core-nanoseconds, read at `timeMs`. */
export interface CpuSample {
  timeMs: number;
  usageNanoSeconds: number;
}

export interface MemorySample {
  timeMs: number;
  availableBytes?: number;
  usageBytes?: number;
  workingSetBytes?: number;
  rssBytes?: number;
  pageFaults?: number;
  majorPageFaults?: number;
}

/** Cumulative interface counters; packets and drops only where the source has them. */
export interface InterfaceSample {
  name: string;
  rxBytes: number;
  rxErrors: number;
  txBytes: number;
  txErrors: number;
  rxPackets?: number;
  rxDropped?: number;
  txPackets?: number;
  txDropped?: number;
}

export interface NetworkSample {
  timeMs: number;
  /** The interface of the default route, when known. */
  defaultInterface?: string;
  interfaces: InterfaceSample[];
}

export interface FsSample {
  timeMs: number;
  availableBytes?: number;
  capacityBytes?: number;
  usedBytes?: number;
  inodesFree?: number;
  inodes?: number;
  inodesUsed?: number;
}

/** Block I/O since the container started, summed over devices. */
export interface BlockIoSample {
  timeMs: number;
  readBytes: number;
  writeBytes: number;
  readOps: number;
  writeOps: number;
}

export interface ContainerSample {
  /** The CRI container id. */
  id: string;
  name: string;
  /** The image as the pod named it. */
  image: string;
  startTimeMs: number;
  cpu?: CpuSample;
  memory?: MemorySample;
  blockIo?: BlockIoSample;
  rootfs?: FsSample;
  logs?: FsSample;
}

export interface PodSample {
  podRef: { name: string; namespace: string; uid: string };
  sandboxId: string;
  startTimeMs: number;
  cpu?: CpuSample;
  memory?: MemorySample;
  network?: NetworkSample;
  containers: ContainerSample[];
}

export interface NodeSample {
  nodeName: string;
  /** Boot time: when the node's cumulative counters started. */
  startTimeMs: number;
  cpu: CpuSample;
  memory: MemorySample;
  network?: NetworkSample;
  fs: FsSample;
  imageFs?: FsSample;
}

export interface StatsSample {
  node: NodeSample;
  pods: PodSample[];
}

export interface NodeSamplerOptions {
  cri: CriClient;
  nodeName: string;
  /** The filesystem reported as the node's `fs` (the agent's data dir); default '/'. */
  rootDir?: string;
  /** Where /proc is read; tests may point it at a fixture. Default '/proc'. */
  procDir?: string;
  /** The runtime's admin socket, for block I/O and packet counters; without it they are left out. */
  adminSocket?: string;
  log?: (line: string) => void;
}

/** Takes StatsSamples of one node. */
export class NodeSampler {
  /** Whether the last extended read failed, so a lasting failure is logged once, not per scrape. */
  private extendedFailing = false;

  constructor(private readonly options: NodeSamplerOptions) {}

  /** Reads the node and its pods; `extended` adds what only the runtime's admin socket has. */
  async sample(opts: { extended?: boolean } = {}): Promise<StatsSample> {
    const { cri } = this.options;
    const [sandboxes, sandboxStats, containers, imageFs, extended] = await Promise.all([
      cri.ListPodSandbox({}),
      cri.ListPodSandboxStats({}),
      cri.ListContainers({}),
      cri.ImageFsInfo({}),
      opts.extended ? this.extendedStats() : undefined,
    ]);
    // Only sandboxes that are up count as pods on the node, as the kubelet reports them.
    const sandboxCreated = new Map(sandboxes.items.filter((s) => s.state === 'SANDBOX_READY').map((s) => [s.id, s.created_at]));
    const containerInfo = new Map(containers.containers.map((c) => [c.id, { created: c.created_at, image: c.image?.user_specified_image || c.image?.image || '' }]));
    const logPaths = new Map<string, string>();
    await Promise.all(
      containers.containers
        .filter((c) => c.state === 'CONTAINER_RUNNING')
        .map(async (c) => {
          const status = await cri.ContainerStatus({ container_id: c.id }).catch(() => undefined);
          if (status?.status?.log_path) logPaths.set(c.id, status.status.log_path);
        }),
    );
    const blockIo = new Map((extended?.containers ?? []).filter((c) => c.blockIo).map((c) => [c.id, { timeMs: c.timestamp, ...c.blockIo! }]));
    const podInterfaces = new Map((extended?.sandboxes ?? []).map((s) => [s.id, s]));

    const pods: PodSample[] = [];
    for (const s of sandboxStats.stats) {
      const attrs = s.attributes;
      if (!attrs || !s.linux || !sandboxCreated.has(attrs.id)) continue;
      const podContainers = await Promise.all(
        s.linux.containers.map((c) => containerSample(c, containerInfo, logPaths.get(c.attributes?.id ?? ''), blockIo)),
      );
      pods.push(podSample(s, sandboxCreated.get(attrs.id)!, podContainers, podInterfaces.get(attrs.id)));
    }
    return { node: await this.nodeSample(imageFs.image_filesystems[0] ?? null), pods };
  }

  private async extendedStats(): Promise<ExtendedStats | undefined> {
    const { adminSocket, log = (line: string) => console.error(line) } = this.options;
    if (!adminSocket) return undefined;
    try {
      const stats = await fetchExtendedStats(adminSocket, EXTENDED_STATS_TIMEOUT_MS);
      this.extendedFailing = false;
      return stats;
    } catch (err) {
      if (!this.extendedFailing) log(`node stats: no block I/O or packet counters from the runtime (${adminSocket}): ${(err as Error).message}`);
      this.extendedFailing = true;
      return undefined;
    }
  }

  private async nodeSample(imageFs: FilesystemUsage__Output | null): Promise<NodeSample> {
    const proc = this.options.procDir ?? '/proc';
    const timeMs = Date.now();
    const [statText, meminfo, vmstat, netdev, route] = await Promise.all([
      readFile(`${proc}/stat`, 'utf8'),
      readFile(`${proc}/meminfo`, 'utf8'),
      readFile(`${proc}/vmstat`, 'utf8'),
      readFile(`${proc}/net/dev`, 'utf8').catch(() => ''),
      readFile(`${proc}/net/route`, 'utf8').catch(() => ''),
    ]);
    const cpuStat = parseProcStat(statText);
    const mem = parseKeyValues(meminfo, 1024);
    const vm = parseKeyValues(vmstat, 1);
    const total = mem.get('MemTotal') ?? 0;
    const usage = total - (mem.get('MemFree') ?? 0);
    const workingSet = Math.max(0, usage - (mem.get('Inactive(file)') ?? 0));
    const node: NodeSample = {
      nodeName: this.options.nodeName,
      startTimeMs: cpuStat.bootTimeSeconds * 1000,
      cpu: { timeMs, usageNanoSeconds: cpuStat.busyTicks * NANOS_PER_TICK },
      memory: {
        timeMs,
        availableBytes: Math.max(0, total - workingSet),
        usageBytes: usage,
        workingSetBytes: workingSet,
        rssBytes: mem.get('AnonPages') ?? 0,
        pageFaults: vm.get('pgfault') ?? 0,
        majorPageFaults: vm.get('pgmajfault') ?? 0,
      },
      fs: await statFs(this.options.rootDir ?? '/', timeMs),
    };
    const interfaces = parseNetDev(netdev).filter((i) => i.name !== 'lo');
    if (interfaces.length > 0) {
      const defaultName = defaultRouteInterface(route);
      node.network = { timeMs, defaultInterface: interfaces.some((i) => i.name === defaultName) ? defaultName : interfaces[0]!.name, interfaces };
    }
    if (imageFs) node.imageFs = await filesystem(imageFs);
    return node;
  }
}

function podSample(
  s: PodSandboxStats__Output,
  startTimeNs: number,
  containers: ContainerSample[],
  extendedNetwork: ExtendedStats['sandboxes'][number] | undefined,
): PodSample {
  const attrs = s.attributes!;
  const labels = attrs.labels ?? {};
  const meta = attrs.metadata;
  const pod: PodSample = {
    podRef: {
      name: labels[POD_NAME_LABEL] ?? meta?.name ?? '',
      namespace: labels[POD_NAMESPACE_LABEL] ?? meta?.namespace ?? '',
      uid: labels[POD_UID_LABEL] ?? meta?.uid ?? '',
    },
    sandboxId: attrs.id,
    startTimeMs: msOf(startTimeNs),
    containers,
  };
  const linux = s.linux!;
  if (linux.cpu) pod.cpu = cpu(linux.cpu);
  if (linux.memory) pod.memory = memory(linux.memory);
  // The admin socket's counters are the same interfaces with packets and drops added.
  if (extendedNetwork) {
    const defaultInterface = linux.network?.default_interface?.name || extendedNetwork.interfaces[0]?.name;
    pod.network = { timeMs: extendedNetwork.timestamp, defaultInterface, interfaces: extendedNetwork.interfaces };
  } else if (linux.network) {
    pod.network = network(linux.network);
  }
  return pod;
}

async function containerSample(
  c: ContainerStats__Output,
  info: Map<string, { created: number; image: string }>,
  logPath: string | undefined,
  blockIo: Map<string, BlockIoSample>,
): Promise<ContainerSample> {
  const id = c.attributes?.id ?? '';
  const known = info.get(id);
  const sample: ContainerSample = { id, name: c.attributes?.metadata?.name ?? '', image: known?.image ?? '', startTimeMs: msOf(known?.created) };
  if (c.cpu) sample.cpu = cpu(c.cpu);
  if (c.memory) sample.memory = memory(c.memory);
  const io = blockIo.get(id);
  if (io) sample.blockIo = io;
  if (c.writable_layer) sample.rootfs = await filesystem(c.writable_layer);
  if (logPath) sample.logs = await fileUsage(logPath);
  return sample;
}

/** CRI timestamps are nanoseconds; absent ones read as now. */
function msOf(nanos: number | undefined): number {
  return nanos ? Math.floor(nanos / 1e6) : Date.now();
}

function cpu(usage: CpuUsage__Output): CpuSample {
  return { timeMs: msOf(usage.timestamp), usageNanoSeconds: usage.usage_core_nano_seconds?.value ?? 0 };
}

function memory(m: MemoryUsage__Output): MemorySample {
  const out: MemorySample = { timeMs: msOf(m.timestamp) };
  if (m.available_bytes) out.availableBytes = m.available_bytes.value;
  if (m.usage_bytes) out.usageBytes = m.usage_bytes.value;
  if (m.working_set_bytes) out.workingSetBytes = m.working_set_bytes.value;
  if (m.rss_bytes) out.rssBytes = m.rss_bytes.value;
  if (m.page_faults) out.pageFaults = m.page_faults.value;
  if (m.major_page_faults) out.majorPageFaults = m.major_page_faults.value;
  return out;
}

function network(n: NetworkUsage__Output): NetworkSample {
  const iface = (i: { name: string; rx_bytes: { value: number } | null; rx_errors: { value: number } | null; tx_bytes: { value: number } | null; tx_errors: { value: number } | null }): InterfaceSample => ({
    name: i.name,
    rxBytes: i.rx_bytes?.value ?? 0,
    rxErrors: i.rx_errors?.value ?? 0,
    txBytes: i.tx_bytes?.value ?? 0,
    txErrors: i.tx_errors?.value ?? 0,
  });
  const interfaces = n.interfaces.map(iface);
  if (n.default_interface && !interfaces.some((i) => i.name === n.default_interface!.name)) interfaces.unshift(iface(n.default_interface));
  return { timeMs: msOf(n.timestamp), defaultInterface: n.default_interface?.name, interfaces };
}

/** A CRI filesystem usage, completed with the capacity of the filesystem it names. */
async function filesystem(f: FilesystemUsage__Output): Promise<FsSample> {
  const timeMs = msOf(f.timestamp);
  const mountpoint = f.fs_id?.mountpoint;
  const out: FsSample = mountpoint ? await statFs(mountpoint, timeMs).catch(() => ({ timeMs })) : { timeMs };
  if (f.used_bytes) out.usedBytes = f.used_bytes.value;
  if (f.inodes_used) out.inodesUsed = f.inodes_used.value;
  return out;
}

/** A log file's usage on its filesystem. */
async function fileUsage(path: string): Promise<FsSample> {
  const timeMs = Date.now();
  const [fs, st] = await Promise.all([statFs(path, timeMs).catch(() => ({ timeMs })), stat(path).catch(() => undefined)]);
  return { ...fs, usedBytes: st ? st.blocks * 512 : 0, inodesUsed: st ? 1 : 0 };
}

async function statFs(path: string, timeMs: number): Promise<FsSample> {
  const s = await statfs(path);
  return {
    timeMs,
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
export function parseNetDev(text: string): InterfaceSample[] {
  const out: InterfaceSample[] = [];
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const v = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    // receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes packets errs drop ...
    out.push({
      name,
      rxBytes: v[0] ?? 0,
      rxPackets: v[1] ?? 0,
      rxErrors: v[2] ?? 0,
      rxDropped: v[3] ?? 0,
      txBytes: v[8] ?? 0,
      txPackets: v[9] ?? 0,
      txErrors: v[10] ?? 0,
      txDropped: v[11] ?? 0,
    });
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
