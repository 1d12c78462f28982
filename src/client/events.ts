import { ApiError } from '../api/errors.js';
import type { KubeObject } from '../api/types.js';
import { resource } from './informer.js';
import type { KubeClient } from './client.js';

/** Repeats of the same event within this window update one Event's count instead of adding more. */
export const EVENT_DEDUPE_WINDOW_MS = 10 * 60_000;

interface Recorded {
  name: string;
  namespace: string;
  count: number;
  at: number;
}

/**
 * Records core/v1 Events about objects, deduplicated as kube's event correlator does: the same
 * (object, type, reason, message, source) again bumps `count` and `lastTimestamp` on one Event.
 */
export class EventRecorder {
  private readonly seen = new Map<string, Recorded>();

  constructor(
    private readonly client: KubeClient,
    private readonly component: string,
    private readonly host?: string,
  ) {}

  async record(obj: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const namespace = obj.metadata.namespace || 'default';
    const key = [obj.kind, namespace, obj.metadata.name, obj.metadata.uid, type, reason, message].join('\0');
    const now = new Date();
    const stamp = now.toISOString().replace(/\.\d+Z$/, 'Z');
    const prior = this.seen.get(key);
    try {
      if (prior && now.getTime() - prior.at < EVENT_DEDUPE_WINDOW_MS) {
        prior.count++;
        prior.at = now.getTime();
        await this.client.patch(resource('events'), prior.namespace, prior.name, 'merge', { count: prior.count, lastTimestamp: stamp });
        return;
      }
      const name = `${obj.metadata.name}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`;
      await this.client.create(resource('events'), namespace, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name, namespace },
        involvedObject: { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace, uid: obj.metadata.uid, resourceVersion: obj.metadata.resourceVersion },
        type,
        reason,
        message,
        source: this.host ? { component: this.component, host: this.host } : { component: this.component },
        reportingComponent: this.component,
        reportingInstance: this.host ?? '',
        firstTimestamp: stamp,
        lastTimestamp: stamp,
        count: 1,
      });
      this.seen.set(key, { name, namespace, count: 1, at: now.getTime() });
      if (this.seen.size > 4096) this.seen.delete(this.seen.keys().next().value!);
    } catch (err) {
      // Events are best effort: a namespace being deleted or a lost Event must not fail the caller.
      if (err instanceof ApiError && (err.code === 404 || err.code === 403)) {
        this.seen.delete(key);
        return;
      }
      throw err;
    }
  }
}
