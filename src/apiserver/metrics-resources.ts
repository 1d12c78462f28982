// The resource metrics API (metrics.k8s.io/v1beta1, k8s.io/metrics) as the API server serves it
// itself: its two read-only kinds, their OpenAPI schemas, and their objects.
import { customResourceSchemas } from '../api/openapi/documents.js';
import { ref } from '../api/openapi/generate.js';
import type { Schema } from '../api/openapi/schema.js';
import { formatQuantity, fromValue } from '../api/quantity.js';
import type { ResourceDef } from '../api/resources.js';
import type { KubeObject } from '../api/types.js';

export const METRICS_GROUP = 'metrics.k8s.io';
export const METRICS_VERSION = 'v1beta1';
const API_VERSION = `${METRICS_GROUP}/${METRICS_VERSION}`;

/** As metrics-server registers them: get and list only, no singular name. */
function metricsDef(kind: 'NodeMetrics' | 'PodMetrics', plural: 'nodes' | 'pods', namespaced: boolean): ResourceDef {
  return {
    group: METRICS_GROUP,
    version: METRICS_VERSION,
    kind,
    listKind: `${kind}List`,
    plural,
    singular: '',
    namespaced,
    subresources: [],
    verbs: ['get', 'list'],
    schemaName: `io.k8s.metrics.pkg.apis.metrics.${METRICS_VERSION}.${kind}`,
  };
}

export const NODE_METRICS = metricsDef('NodeMetrics', 'nodes', false);
export const POD_METRICS = metricsDef('PodMetrics', 'pods', true);
export const METRICS_RESOURCES: readonly ResourceDef[] = [NODE_METRICS, POD_METRICS];

const TIME = 'io.k8s.apimachinery.pkg.apis.meta.v1.Time';
const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';
const USAGE: Schema = {
  description: 'The memory and CPU usage.',
  type: 'object',
  additionalProperties: ref(QUANTITY),
};
const WINDOW: Schema = { description: 'The window over which usage was computed, a Go duration such as "15.02s".', type: 'string' };
const TIMESTAMP: Schema = { allOf: [ref(TIME)], description: 'The end of the window over which usage was computed.' };

/** Component schemas of both kinds and their lists, for the metrics.k8s.io OpenAPI document. */
export const METRICS_SCHEMAS: Record<string, Schema> = {
  ...customResourceSchemas(NODE_METRICS, {
    description: 'NodeMetrics sets resource usage metrics of a node.',
    type: 'object',
    properties: { timestamp: TIMESTAMP, window: WINDOW, usage: USAGE },
    required: ['timestamp', 'window', 'usage'],
  }),
  ...customResourceSchemas(POD_METRICS, {
    description: 'PodMetrics sets resource usage metrics of a pod.',
    type: 'object',
    properties: {
      timestamp: TIMESTAMP,
      window: WINDOW,
      containers: {
        description: 'Metrics for all containers are collected within the same time window.',
        type: 'array',
        items: {
          description: 'ContainerMetrics sets resource usage metrics of a container.',
          type: 'object',
          properties: { name: { description: 'Container name corresponding to the one from pod.spec.containers.', type: 'string' }, usage: USAGE },
          required: ['name', 'usage'],
        },
      },
    },
    required: ['timestamp', 'window', 'containers'],
  }),
};

/** Usage over a window: CPU in nano-cores, memory as working-set bytes. */
export interface Usage {
  timestampMs: number;
  windowMs: number;
  cpuNanoCores: number;
  memoryBytes: number;
}

export function nodeMetrics(node: KubeObject, usage: Usage, nowMs: number): KubeObject {
  return {
    kind: 'NodeMetrics',
    apiVersion: API_VERSION,
    metadata: metadataFor(node, nowMs),
    timestamp: metaTime(usage.timestampMs),
    window: goDuration(usage.windowMs),
    usage: resourceList(usage),
  };
}

/** A pod's metrics: its containers' usages, stamped with the earliest of their windows, as metrics-server does. */
export function podMetrics(pod: KubeObject, containers: { name: string; usage: Usage }[], nowMs: number): KubeObject {
  const earliest = containers.reduce((a, b) => (b.usage.timestampMs < a.usage.timestampMs ? b : a)).usage;
  return {
    kind: 'PodMetrics',
    apiVersion: API_VERSION,
    metadata: metadataFor(pod, nowMs),
    timestamp: metaTime(earliest.timestampMs),
    window: goDuration(earliest.windowMs),
    containers: containers.map((c) => ({ name: c.name, usage: resourceList(c.usage) })),
  };
}

/** The object's name, namespace and labels; created now, as metrics-server makes them per request. */
function metadataFor(obj: KubeObject, nowMs: number): KubeObject['metadata'] {
  const metadata: KubeObject['metadata'] = { name: obj.metadata.name };
  if (obj.metadata.namespace) metadata.namespace = obj.metadata.namespace;
  metadata.creationTimestamp = metaTime(nowMs);
  if (obj.metadata.labels) metadata.labels = obj.metadata.labels;
  return metadata;
}

function resourceList(usage: Usage): Record<string, string> {
  return {
    cpu: formatQuantity({ nano: BigInt(Math.max(0, Math.round(usage.cpuNanoCores))), format: 'DecimalSI' }),
    memory: formatQuantity(fromValue(Math.max(0, Math.round(usage.memoryBytes)), 'BinarySI')),
  };
}

/** metav1.Time: RFC 3339 in UTC, whole seconds. */
function metaTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

/** Go's time.Duration.String for a non-negative duration in milliseconds: "850ms", "15.02s", "1m0.5s", "2h0m3s". */
export function goDuration(ms: number): string {
  const whole = Math.round(ms);
  if (whole === 0) return '0s';
  if (whole < 1000) return `${whole}ms`;
  const hours = Math.floor(whole / 3_600_000);
  const minutes = Math.floor((whole % 3_600_000) / 60_000);
  const seconds = (whole % 60_000) / 1000;
  const secondsText = `${seconds.toFixed(3).replace(/\.?0+$/, '')}s`;
  if (hours > 0) return `${hours}h${minutes}m${secondsText}`;
  if (minutes > 0) return `${minutes}m${secondsText}`;
  return secondsText;
}
