// /metrics/cadvisor: cAdvisor's container metrics as the kubelet serves them, with its base labels
// `container`, `id`, `image`, `name`, `namespace` and `pod` on every series (empty where they do not
// apply). Series come at three levels:
//   - the node, as cAdvisor's root cgroup: id="/" and every other base label empty;
//   - each pod: id="/pod<uid>", name=<sandbox id>, container="" — pod CPU, memory and network;
//   - each container: id="/pod<uid>/<container id>", name=<container id>, image as the pod names it.
// Atoll's runtime places cgroups by its own rules (and a runv pod has none on the host), so `id` names
// the pod and container rather than a host cgroup path. Block I/O comes from the runtime's handler and
// is summed over devices: the `device` label is empty.
import type { BlockIoSample, CpuSample, MemorySample, NetworkSample, StatsSample } from '../stats-sample.js';
import { MetricsText } from './prometheus-text.js';

const NANOS_PER_SECOND = 1e9;

type Labels = Record<string, string>;
type Add = (labels: Labels, value: number, timestampMs?: number) => void;

export function cadvisorMetrics(sample: StatsSample | undefined): string {
  const out = new MetricsText();
  out.family('container_scrape_error', 'gauge', '1 if there was an error while getting container metrics, 0 otherwise')({}, sample ? 0 : 1);
  if (!sample) return out.render();
  const families = declare(out);

  const { node } = sample;
  const root: Labels = { container: '', id: '/', image: '', name: '', namespace: '', pod: '' };
  families.start(root, node.startTimeMs / 1000);
  cpu(families, root, node.cpu);
  memory(families, root, node.memory);
  if (node.network) network(families, root, node.network);

  for (const pod of sample.pods) {
    const { name, namespace, uid } = pod.podRef;
    const podLabels: Labels = { container: '', id: `/pod${uid}`, image: '', name: pod.sandboxId, namespace, pod: name };
    families.start(podLabels, pod.startTimeMs / 1000);
    if (pod.cpu) cpu(families, podLabels, pod.cpu);
    if (pod.memory) memory(families, podLabels, pod.memory);
    if (pod.network) network(families, podLabels, pod.network);
    for (const c of pod.containers) {
      const labels: Labels = { container: c.name, id: `/pod${uid}/${c.id}`, image: c.image, name: c.id, namespace, pod: name };
      families.start(labels, c.startTimeMs / 1000);
      if (c.cpu) cpu(families, labels, c.cpu);
      if (c.memory) memory(families, labels, c.memory);
      if (c.blockIo) blockIo(families, labels, c.blockIo);
    }
  }
  return out.render();
}

function declare(out: MetricsText) {
  return {
    start: out.family('container_start_time_seconds', 'gauge', 'Start time of the container since unix epoch in seconds.'),
    cpu: out.family('container_cpu_usage_seconds_total', 'counter', 'Cumulative cpu time consumed in seconds.'),
    memoryUsage: out.family('container_memory_usage_bytes', 'gauge', 'Current memory usage in bytes, including all memory regardless of when it was accessed'),
    workingSet: out.family('container_memory_working_set_bytes', 'gauge', 'Current working set in bytes.'),
    rss: out.family('container_memory_rss', 'gauge', 'Size of RSS in bytes.'),
    readBytes: out.family('container_fs_reads_bytes_total', 'counter', 'Cumulative count of bytes read'),
    writeBytes: out.family('container_fs_writes_bytes_total', 'counter', 'Cumulative count of bytes written'),
    reads: out.family('container_fs_reads_total', 'counter', 'Cumulative count of reads completed'),
    writes: out.family('container_fs_writes_total', 'counter', 'Cumulative count of writes completed'),
    rxBytes: out.family('container_network_receive_bytes_total', 'counter', 'Cumulative count of bytes received'),
    rxPackets: out.family('container_network_receive_packets_total', 'counter', 'Cumulative count of packets received'),
    rxErrors: out.family('container_network_receive_errors_total', 'counter', 'Cumulative count of errors encountered while receiving'),
    rxDropped: out.family('container_network_receive_packets_dropped_total', 'counter', 'Cumulative count of packets dropped while receiving'),
    txBytes: out.family('container_network_transmit_bytes_total', 'counter', 'Cumulative count of bytes transmitted'),
    txPackets: out.family('container_network_transmit_packets_total', 'counter', 'Cumulative count of packets transmitted'),
    txErrors: out.family('container_network_transmit_errors_total', 'counter', 'Cumulative count of errors encountered while transmitting'),
    txDropped: out.family('container_network_transmit_packets_dropped_total', 'counter', 'Cumulative count of packets dropped while transmitting'),
  };
}

type Families = ReturnType<typeof declare>;

function cpu(f: Families, labels: Labels, sample: CpuSample): void {
  // cAdvisor's per-CPU label; the kubelet turns per-CPU usage off, leaving the one "total" series.
  f.cpu({ ...labels, cpu: 'total' }, sample.usageNanoSeconds / NANOS_PER_SECOND, sample.timeMs);
}

function memory(f: Families, labels: Labels, sample: MemorySample): void {
  const optional: [Add, number | undefined][] = [
    [f.memoryUsage, sample.usageBytes],
    [f.workingSet, sample.workingSetBytes],
    [f.rss, sample.rssBytes],
  ];
  for (const [add, value] of optional) if (value !== undefined) add(labels, value, sample.timeMs);
}

function blockIo(f: Families, labels: Labels, sample: BlockIoSample): void {
  const device = { ...labels, device: '' };
  f.readBytes(device, sample.readBytes, sample.timeMs);
  f.writeBytes(device, sample.writeBytes, sample.timeMs);
  f.reads(device, sample.readOps, sample.timeMs);
  f.writes(device, sample.writeOps, sample.timeMs);
}

function network(f: Families, labels: Labels, sample: NetworkSample): void {
  for (const i of sample.interfaces) {
    const at = { ...labels, interface: i.name };
    const counters: [Add, number | undefined][] = [
      [f.rxBytes, i.rxBytes],
      [f.rxPackets, i.rxPackets],
      [f.rxErrors, i.rxErrors],
      [f.rxDropped, i.rxDropped],
      [f.txBytes, i.txBytes],
      [f.txPackets, i.txPackets],
      [f.txErrors, i.txErrors],
      [f.txDropped, i.txDropped],
    ];
    for (const [add, value] of counters) if (value !== undefined) add(at, value, sample.timeMs);
  }
}
