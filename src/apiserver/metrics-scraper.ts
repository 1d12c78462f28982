// Reads nodes' /metrics/resource (the kubelet's resource metrics, which Atoll's node server serves
// too) the way metrics-server does, so the API server can serve metrics.k8s.io without it: cumulative
// CPU and working-set memory of the node and each container, two samples per node, usage from their
// difference.
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import parsePrometheusText from 'parse-prometheus-text-format';
import type { KubeObject } from '../api/types.js';
import type { Usage } from './metrics-resources.js';
import { nodeAddress } from './node-proxy.js';

/** How long one scrape may take (metrics-server's --kubelet-request-timeout). */
export const SCRAPE_TIMEOUT_MS = 10_000;
/** A sample younger than this is reused instead of scraping again (metrics-server's --metric-resolution). */
export const METRIC_RESOLUTION_MS = 15_000;
/**
 * The wait between the two scrapes of a node with no usable earlier sample, so that its first answer
 * already has a CPU rate (metrics-server instead answers nothing until its next period).
 */
export const FIRST_WINDOW_MS = 1_000;
/** An earlier sample older than this is not paired with a new one: usage is meant to be recent. */
export const MAX_WINDOW_MS = 2 * 60_000;
/** The largest /metrics/resource answer read; a node with hundreds of pods sends far less. */
const MAX_METRICS_BYTES = 16 * 1024 * 1024;

/** One cumulative reading. */
export interface Point {
  timeMs: number;
  cpuSeconds: number;
  memoryBytes: number;
  /** When the container started; a different start between two points means it restarted. */
  startTimeMs?: number;
}

/** One scrape of a node: the node's point and each container's, by "namespace/pod" then container name. */
export interface ResourceSample {
  scrapedAtMs: number;
  node?: Point;
  pods: Map<string, Map<string, Point>>;
}

export interface MetricsScraperOptions {
  /** The cluster CA and the API server's kubelet-client certificate, as for the node proxy. */
  tls: { caPem: string; certPem: string; keyPem: string };
  /** Aborted when the API server closes; a pending second scrape then gives up. */
  signal: AbortSignal;
  log?: (line: string) => void;
  /** Overrides for tests. */
  resolutionMs?: number;
  firstWindowMs?: number;
}

interface NodeEntry {
  prev?: ResourceSample;
  last?: ResourceSample;
  inflight?: Promise<void>;
}

/** The last two samples of each node, taken on demand and shared by concurrent requests. */
export class MetricsScraper {
  private readonly agent: https.Agent;
  private readonly nodes = new Map<string, NodeEntry>();
  private readonly log: (line: string) => void;

  constructor(private readonly opts: MetricsScraperOptions) {
    this.agent = new https.Agent({ keepAlive: true, ca: opts.tls.caPem, cert: opts.tls.certPem, key: opts.tls.keyPem });
    this.log = opts.log ?? ((line) => console.error(line));
  }

  close(): void {
    this.agent.destroy();
  }

  /** Forgets nodes that no longer exist. */
  retain(names: Set<string>): void {
    for (const name of this.nodes.keys()) if (!names.has(name)) this.nodes.delete(name);
  }

  /**
   * The node's two latest samples, scraping first when the last one is older than the resolution (a
   * second time, after FIRST_WINDOW_MS, when there is no recent earlier one). Undefined when the node
   * cannot be scraped: the error is logged and the node just has no metrics, as with metrics-server.
   */
  async samples(node: KubeObject): Promise<{ prev: ResourceSample; last: ResourceSample } | undefined> {
    const name = node.metadata.name!;
    let entry = this.nodes.get(name);
    if (!entry) this.nodes.set(name, (entry = {}));
    const resolution = this.opts.resolutionMs ?? METRIC_RESOLUTION_MS;
    if (!entry.inflight && (!entry.last || Date.now() - entry.last.scrapedAtMs >= resolution)) {
      const current = entry;
      current.inflight = this.refresh(node, current)
        .catch((err: Error) => {
          this.log(`apiserver: metrics: node ${name}: ${err.message}`);
          delete current.prev;
          delete current.last;
        })
        .finally(() => delete current.inflight);
    }
    await entry.inflight;
    return entry.prev && entry.last ? { prev: entry.prev, last: entry.last } : undefined;
  }

  private async refresh(node: KubeObject, entry: NodeEntry): Promise<void> {
    this.store(entry, await this.scrape(node));
    if (!entry.prev || entry.last!.scrapedAtMs - entry.prev.scrapedAtMs > MAX_WINDOW_MS) {
      await sleep(this.opts.firstWindowMs ?? FIRST_WINDOW_MS, undefined, { signal: this.opts.signal });
      this.store(entry, await this.scrape(node));
    }
  }

  private store(entry: NodeEntry, sample: ResourceSample): void {
    if (entry.last && sample.scrapedAtMs > entry.last.scrapedAtMs) entry.prev = entry.last;
    entry.last = sample;
  }

  private async scrape(node: KubeObject): Promise<ResourceSample> {
    const { host, port } = nodeAddress(node);
    const text = await new Promise<string>((resolve, reject) => {
      const req = https.get(
        { host: host.replace(/^\[(.*)\]$/, '$1'), port, path: '/metrics/resource', agent: this.agent, timeout: SCRAPE_TIMEOUT_MS, signal: this.opts.signal },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_METRICS_BYTES) req.destroy(new Error(`/metrics/resource is larger than ${MAX_METRICS_BYTES} bytes`));
            else chunks.push(chunk);
          });
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString();
            if (res.statusCode === 200) resolve(body);
            else reject(new Error(`GET https://${host}:${port}/metrics/resource answered ${res.statusCode}: ${body.slice(0, 200)}`));
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`GET https://${host}:${port}/metrics/resource: no answer within ${SCRAPE_TIMEOUT_MS} ms`)));
      req.on('error', reject);
    });
    return parseResourceMetrics(text, Date.now());
  }
}

/**
 * Parses the kubelet's resource metrics into points. Samples need their timestamps (rates are taken
 * between them); a container is kept only with both its CPU and memory, as metrics-server keeps it.
 */
export function parseResourceMetrics(text: string, scrapedAtMs: number): ResourceSample {
  let families;
  try {
    families = parsePrometheusText(text);
  } catch (err) {
    throw new Error(`/metrics/resource is not Prometheus text: ${(err as Error).message}`);
  }
  const byName = new Map(families.map((f) => [f.name, f.metrics]));
  const value = (raw: string, what: string) => {
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new Error(`/metrics/resource: ${what} is ${JSON.stringify(raw)}, not a non-negative number`);
    return n;
  };
  const stamp = (raw: string | undefined, what: string) => {
    if (raw === undefined || !/^\d+$/.test(raw)) throw new Error(`/metrics/resource: ${what} has no timestamp`);
    return Number(raw);
  };

  const sample: ResourceSample = { scrapedAtMs, pods: new Map() };
  const nodeCpu = byName.get('node_cpu_usage_seconds_total')?.[0];
  const nodeMemory = byName.get('node_memory_working_set_bytes')?.[0];
  if (nodeCpu && nodeMemory) {
    // The CPU time is the point's time: that is what the rate is taken over.
    sample.node = { timeMs: stamp(nodeCpu.timestamp_ms, 'node_cpu_usage_seconds_total'), cpuSeconds: value(nodeCpu.value, 'node CPU'), memoryBytes: value(nodeMemory.value, 'node memory') };
  }

  const key = (labels: Record<string, string> | undefined) => {
    const { namespace, pod, container } = labels ?? {};
    return namespace && pod && container ? { pod: `${namespace}/${pod}`, container } : undefined;
  };
  const partial = new Map<string, Map<string, Partial<Point>>>();
  const at = (labels: Record<string, string> | undefined): Partial<Point> | undefined => {
    const k = key(labels);
    if (!k) return undefined;
    let pod = partial.get(k.pod);
    if (!pod) partial.set(k.pod, (pod = new Map()));
    let point = pod.get(k.container);
    if (!point) pod.set(k.container, (point = {}));
    return point;
  };
  for (const m of byName.get('container_cpu_usage_seconds_total') ?? []) {
    const point = at(m.labels);
    if (!point) continue;
    point.cpuSeconds = value(m.value, 'container CPU');
    point.timeMs = stamp(m.timestamp_ms, 'container_cpu_usage_seconds_total');
  }
  for (const m of byName.get('container_memory_working_set_bytes') ?? []) {
    const point = at(m.labels);
    if (point) point.memoryBytes = value(m.value, 'container memory');
  }
  for (const m of byName.get('container_start_time_seconds') ?? []) {
    const point = at(m.labels);
    if (point) point.startTimeMs = value(m.value, 'container start time') * 1000;
  }
  for (const [pod, containers] of partial) {
    const complete = new Map<string, Point>();
    for (const [name, p] of containers) {
      if (p.timeMs !== undefined && p.cpuSeconds !== undefined && p.memoryBytes !== undefined) complete.set(name, p as Point);
    }
    if (complete.size > 0) sample.pods.set(pod, complete);
  }
  return sample;
}

/** Usage between two points of the same node or container; undefined when they cannot be compared. */
export function usageBetween(prev: Point, last: Point): Usage | undefined {
  if (last.timeMs <= prev.timeMs || last.cpuSeconds < prev.cpuSeconds) return undefined;
  if (last.startTimeMs !== undefined && prev.startTimeMs !== undefined && last.startTimeMs !== prev.startTimeMs) return undefined;
  const windowMs = last.timeMs - prev.timeMs;
  return {
    timestampMs: last.timeMs,
    windowMs,
    cpuNanoCores: ((last.cpuSeconds - prev.cpuSeconds) * 1e9) / (windowMs / 1000),
    memoryBytes: last.memoryBytes,
  };
}
