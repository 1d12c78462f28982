import type { EndpointState } from './health.js';
import type { ReplayResult } from './offline-writes.js';

/**
 * EdgeHub's Prometheus metrics in the text exposition format (version 0.0.4). A handful of counters
 * and gauges do not justify a dependency; prom-client can replace this if more components need it.
 */

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type CacheResult = 'hit' | 'miss';
export type Direction = 'to_cloud' | 'from_cloud';
/** How an upgrade request (exec, attach, port-forward) ended: relayed to the cloud, or refused here. */
export type UpgradeResult = 'relayed' | 'offline' | 'unreachable' | 'unauthorized';

/** What the cache holds that the metrics report; kept there so a restart does not reset it. */
export interface StoredCounts {
  queueDepth: number;
  droppedEvents: number;
}

export class EdgeHubMetrics {
  private readonly cacheRequests = new Map<string, number>();
  private readonly bytes: Record<Direction, number> = { to_cloud: 0, from_cloud: 0 };
  private cacheWriteErrors = 0;
  private heldWatches = 0;
  private readonly replays = new Map<ReplayResult, number>();
  private absorbedWrites = 0;
  private readonly upgrades = new Map<UpgradeResult, number>();

  /** An offline read answered from cache (hit) or refused because nothing covers it (miss). */
  cacheRequest(resource: string, result: CacheResult): void {
    const k = `${resource}\u0000${result}`;
    this.cacheRequests.set(k, (this.cacheRequests.get(k) ?? 0) + 1);
  }

  proxied(direction: Direction, n: number): void {
    this.bytes[direction] += n;
  }

  cacheWriteError(): void {
    this.cacheWriteErrors++;
  }

  watchHeld(delta: 1 | -1): void {
    this.heldWatches += delta;
  }

  writeAbsorbed(): void {
    this.absorbedWrites++;
  }

  upgraded(result: UpgradeResult): void {
    this.upgrades.set(result, (this.upgrades.get(result) ?? 0) + 1);
  }

  replayed(result: ReplayResult): void {
    this.replays.set(result, (this.replays.get(result) ?? 0) + 1);
  }

  render(endpoints: readonly EndpointState[], stored: StoredCounts): string {
    const out: string[] = [];
    const family = (name: string, type: 'gauge' | 'counter', help: string, samples: [Record<string, string>, number][]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, v] of samples) out.push(`${name}${formatLabels(labels)} ${v}`);
    };
    family('edgehub_cloud_healthy', 'gauge', 'Whether any cloud endpoint is healthy (1) or the node runs on its cache (0).', [
      [{}, endpoints.some((e) => e.healthy) ? 1 : 0],
    ]);
    family('edgehub_upstream_healthy', 'gauge', 'Health of each configured cloud endpoint.', endpoints.map((e) => [{ endpoint: e.url }, e.healthy ? 1 : 0]));
    family(
      'edgehub_cache_requests_total',
      'counter',
      'Offline reads answered from the cache (hit) or refused for lack of cached data (miss).',
      [...this.cacheRequests].map(([k, v]) => {
        const [resource, result] = k.split('\u0000');
        return [{ resource: resource!, result: result! }, v];
      }),
    );
    family('edgehub_proxied_bytes_total', 'counter', 'Body bytes relayed between local clients and the cloud.', [
      [{ direction: 'to_cloud' }, this.bytes.to_cloud],
      [{ direction: 'from_cloud' }, this.bytes.from_cloud],
    ]);
    family('edgehub_cache_write_errors_total', 'counter', 'Cloud answers that could not be written to the cache.', [[{}, this.cacheWriteErrors]]);
    family('edgehub_write_queue_depth', 'gauge', 'Writes accepted offline and not yet replayed to the cloud.', [[{}, stored.queueDepth]]);
    family('edgehub_offline_writes_total', 'counter', 'Writes accepted locally while offline.', [[{}, this.absorbedWrites]]);
    family('edgehub_dropped_events_total', 'counter', 'Events recorded offline and dropped, oldest first, to bound the buffer (kept across restarts).', [
      [{}, stored.droppedEvents],
    ]);
    family('edgehub_replayed_writes_total', 'counter', 'Queued writes replayed to the cloud, by outcome.', [...this.replays].map(([result, v]) => [{ result }, v]));
    family('edgehub_upgrade_requests_total', 'counter', 'Upgrade requests (exec, attach, port-forward), by outcome.', [...this.upgrades].map(([result, v]) => [{ result }, v]));
    family('edgehub_offline_watches', 'gauge', 'Watches held open while the cloud is unreachable.', [[{}, this.heldWatches]]);
    return out.join('\n') + '\n';
  }
}

function formatLabels(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}
