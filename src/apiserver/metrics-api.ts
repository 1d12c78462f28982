// metrics.k8s.io/v1beta1 served by the API server itself, so `kubectl top` works without
// metrics-server: NodeMetrics and PodMetrics (get and list, label and field selectors), computed
// from two scrapes of each node's /metrics/resource.
import { errors } from '../api/errors.js';
import type { ResourceDef } from '../api/resources.js';
import type { KubeObject } from '../api/types.js';
import { METRICS_GROUP, METRICS_VERSION, NODE_METRICS, nodeMetrics, podMetrics, type Usage } from './metrics-resources.js';
import { usageBetween, type MetricsScraper, type ResourceSample } from './metrics-scraper.js';
import { respond, respondList, selectorFilter, type ResourceContext } from './resource-handler.js';
import type { Storage } from './storage.js';

export interface MetricsApiOptions {
  storage: Storage;
  /** The core nodes and pods resources, whose objects the metrics are of. */
  nodes: ResourceDef;
  pods: ResourceDef;
  scraper: MetricsScraper;
}

type Samples = { prev: ResourceSample; last: ResourceSample };

export class MetricsApi {
  constructor(private readonly opts: MetricsApiOptions) {}

  /** Whether a resource definition belongs to the metrics API. */
  static handles(def: ResourceDef): boolean {
    return def.group === METRICS_GROUP && def.version === METRICS_VERSION;
  }

  async serve(ctx: ResourceContext): Promise<void> {
    const { info, def } = ctx;
    if (info.subresource) throw errors.notFound({ group: def.group, resource: `${def.plural}/${info.subresource}`, name: info.name });
    if (info.verb !== 'get' && info.verb !== 'list') throw errors.methodNotAllowed('the server does not allow this method on the requested resource');
    if (info.verb === 'get') {
      // A missing node or pod is its own NotFound; one without metrics is the metrics' NotFound (metrics-server's words).
      const found =
        def === NODE_METRICS
          ? await this.nodeMetrics([await this.opts.storage.get(this.opts.nodes, '', info.name)])
          : await this.podMetrics([await this.opts.storage.get(this.opts.pods, info.namespace, info.name)]);
      if (found.length > 0) return respond(ctx, 200, found[0]!);
      const name = def === NODE_METRICS ? info.name : `${info.namespace}/${info.name}`;
      throw errors.notFound({ group: METRICS_GROUP, resource: def === NODE_METRICS ? 'nodemetrics' : 'podmetrics', name });
    }
    const items = def === NODE_METRICS ? await this.nodeMetrics(await this.selected(ctx, this.opts.nodes, '')) : await this.podMetrics(await this.selected(ctx, this.opts.pods, info.namespace));
    respondList(ctx, { kind: def.listKind, apiVersion: `${METRICS_GROUP}/${METRICS_VERSION}`, metadata: {}, items });
  }

  /** Nodes or pods matching the request's label and field selectors, judged on the objects themselves. */
  private async selected(ctx: ResourceContext, def: ResourceDef, namespace: string): Promise<KubeObject[]> {
    const filter = selectorFilter({ ...ctx, def });
    const all = (await this.opts.storage.list(def, namespace)).items;
    if (def === this.opts.nodes) this.opts.scraper.retain(new Set(all.map((n) => n.metadata.name!)));
    return filter ? all.filter(filter) : all;
  }

  private async nodeMetrics(nodes: KubeObject[]): Promise<KubeObject[]> {
    const now = Date.now();
    const out: KubeObject[] = [];
    await Promise.all(
      nodes.filter(isReady).map(async (node) => {
        const samples = await this.opts.scraper.samples(node);
        const usage = samples?.prev.node && samples.last.node ? usageBetween(samples.prev.node, samples.last.node) : undefined;
        if (usage) out.push(nodeMetrics(node, usage, now));
      }),
    );
    return out.sort((a, b) => a.metadata.name!.localeCompare(b.metadata.name!));
  }

  private async podMetrics(pods: KubeObject[]): Promise<KubeObject[]> {
    const now = Date.now();
    const byNode = new Map<string, KubeObject[]>();
    for (const pod of pods) {
      // Only running pods have metrics, as metrics-server reports them.
      const nodeName = (pod.spec as { nodeName?: string } | undefined)?.nodeName;
      const running = (pod.status as { phase?: string } | undefined)?.phase === 'Running';
      if (nodeName && running) byNode.set(nodeName, [...(byNode.get(nodeName) ?? []), pod]);
    }
    const out: KubeObject[] = [];
    await Promise.all(
      [...byNode].map(async ([nodeName, onNode]) => {
        const node = await this.opts.storage.get(this.opts.nodes, '', nodeName).catch(() => undefined);
        const samples = node && isReady(node) ? await this.opts.scraper.samples(node) : undefined;
        if (!samples) return;
        for (const pod of onNode) {
          const containers = podUsage(samples, pod);
          if (containers) out.push(podMetrics(pod, containers, now));
        }
      }),
    );
    return out.sort((a, b) => a.metadata.namespace!.localeCompare(b.metadata.namespace!) || a.metadata.name!.localeCompare(b.metadata.name!));
  }
}

/**
 * A pod's container usages, when every container it has now was also in the earlier sample (as
 * metrics-server requires); a container that restarted in between is left out.
 */
function podUsage(samples: Samples, pod: KubeObject): { name: string; usage: Usage }[] | undefined {
  const key = `${pod.metadata.namespace}/${pod.metadata.name}`;
  const last = samples.last.pods.get(key);
  const prev = samples.prev.pods.get(key);
  if (!last || !prev) return undefined;
  const containers: { name: string; usage: Usage }[] = [];
  for (const [name, point] of last) {
    const before = prev.get(name);
    if (!before) return undefined;
    const usage = usageBetween(before, point);
    if (usage) containers.push({ name, usage });
  }
  return containers.length > 0 ? containers.sort((a, b) => a.name.localeCompare(b.name)) : undefined;
}

/** Nodes that are not Ready are not scraped: an edge node cut off would only time out. */
function isReady(node: KubeObject): boolean {
  const conditions = (node.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
  return conditions.some((c) => c.type === 'Ready' && c.status === 'True');
}
