// /metrics/resource: the kubelet's resource metrics (pkg/kubelet/metrics/collectors/resource_metrics.go),
// which metrics-server and Atoll's own metrics.k8s.io API scrape. Cumulative CPU and working-set
// memory of the node, each pod and each container, each stamped with when it was read.
import type { StatsSample } from '../stats-sample.js';
import { MetricsText } from './prometheus-text.js';

const NANOS_PER_SECOND = 1e9;

/** The text for a sample, or for a failed one (`undefined`): then only resource_scrape_error 1, as the kubelet answers. */
export function resourceMetrics(sample: StatsSample | undefined): string {
  const out = new MetricsText();
  const scrapeError = out.family('resource_scrape_error', 'gauge', '[STABLE] 1 if there was an error while getting container metrics, 0 otherwise');
  scrapeError({}, sample ? 0 : 1);
  if (!sample) return out.render();

  const nodeCpu = out.family('node_cpu_usage_seconds_total', 'counter', '[STABLE] Cumulative cpu time consumed by the node in core-seconds');
  const nodeMemory = out.family('node_memory_working_set_bytes', 'gauge', '[STABLE] Current working set of the node in bytes');
  const podCpu = out.family('pod_cpu_usage_seconds_total', 'counter', '[STABLE] Cumulative cpu time consumed by the pod in core-seconds');
  const podMemory = out.family('pod_memory_working_set_bytes', 'gauge', '[STABLE] Current working set of the pod in bytes');
  const containerCpu = out.family('container_cpu_usage_seconds_total', 'counter', '[STABLE] Cumulative cpu time consumed by the container in core-seconds');
  const containerMemory = out.family('container_memory_working_set_bytes', 'gauge', '[STABLE] Current working set of the container in bytes');
  const containerStart = out.family('container_start_time_seconds', 'gauge', '[STABLE] Start time of the container since unix epoch in seconds');

  const { node } = sample;
  nodeCpu({}, node.cpu.usageNanoSeconds / NANOS_PER_SECOND, node.cpu.timeMs);
  if (node.memory.workingSetBytes !== undefined) nodeMemory({}, node.memory.workingSetBytes, node.memory.timeMs);
  for (const pod of sample.pods) {
    const podLabels = { pod: pod.podRef.name, namespace: pod.podRef.namespace };
    for (const c of pod.containers) {
      const labels = { container: c.name, ...podLabels };
      if (c.startTimeMs > 0) containerStart(labels, c.startTimeMs / 1000);
      if (c.cpu) containerCpu(labels, c.cpu.usageNanoSeconds / NANOS_PER_SECOND, c.cpu.timeMs);
      if (c.memory?.workingSetBytes !== undefined) containerMemory(labels, c.memory.workingSetBytes, c.memory.timeMs);
    }
    if (pod.cpu) podCpu(podLabels, pod.cpu.usageNanoSeconds / NANOS_PER_SECOND, pod.cpu.timeMs);
    if (pod.memory?.workingSetBytes !== undefined) podMemory(podLabels, pod.memory.workingSetBytes, pod.memory.timeMs);
  }
  return out.render();
}
