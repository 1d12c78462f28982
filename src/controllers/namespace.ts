import { ApiError } from '../api/errors.js';
import type { KubeObject } from '../api/types.js';
import type { KubeClient } from '../client/client.js';
import { resource, type Informer } from '../client/informer.js';
import { WorkQueue } from '../client/workqueue.js';
import { defaultErrorSink, discoverResources, waitForSync, type Controller, type ErrorSink, type ServedResource, type SharedInformers } from './controller.js';

/**
 * The namespace controller: empties a terminating namespace, then lets the server delete it.
 *
 * A namespace being deleted keeps `deletionTimestamp` and `status.phase: Terminating` while its
 * `spec.finalizers` holds "kubernetes". For such a namespace the controller deletes every object of
 * every namespaced resource discovery lists (deletecollection where served, else one DELETE per
 * object, propagation Background), and looks again every `NAMESPACE_RECHECK_MS` until nothing is
 * left: objects with finalizers, and pods bound to nodes during their grace period, take their
 * time. Then it removes "kubernetes" through the `finalize` subresource, as kube does; a server
 * without that subresource (404) takes an ordinary update of the namespace instead.
 */

export const NAMESPACE_RECHECK_MS = 1_000;
/** Discovery is reused for this long across namespaces and passes. */
export const NAMESPACE_DISCOVERY_TTL_MS = 10_000;
const NAMESPACE_WORKERS = 2;
export const FINALIZER_KUBERNETES = 'kubernetes';

export interface NamespaceControllerOptions {
  onError?: ErrorSink;
}

export class NamespaceController implements Controller {
  readonly name = 'namespace';
  private readonly namespaces: Informer;
  private readonly queue = new WorkQueue();
  private readonly onError: ErrorSink;
  private discovered?: { at: number; resources: ServedResource[] };

  constructor(
    private readonly client: KubeClient,
    informers: SharedInformers,
    options: NamespaceControllerOptions = {},
  ) {
    this.onError = options.onError ?? defaultErrorSink;
    this.namespaces = informers.get(resource('namespaces'));
    this.namespaces.on({ add: (ns) => this.enqueue(ns), update: (_, ns) => this.enqueue(ns) });
  }

  async run(signal: AbortSignal): Promise<void> {
    if (!(await waitForSync(signal, this.namespaces))) return;
    for (const ns of this.namespaces.list()) this.enqueue(ns);
    await this.queue.run((name) => this.sync(name), signal, NAMESPACE_WORKERS, (name, err) => this.onError(this.name, name, err));
  }

  private enqueue(ns: KubeObject): void {
    if (ns.metadata.deletionTimestamp) this.queue.add(ns.metadata.name!);
  }

  private async sync(name: string): Promise<void> {
    const ns = this.namespaces.get(undefined, name);
    if (!ns?.metadata.deletionTimestamp || !specFinalizers(ns).includes(FINALIZER_KUBERNETES)) return;
    const remaining = await this.deleteContent(name);
    if (remaining) {
      this.queue.addAfter(name, NAMESPACE_RECHECK_MS);
      return;
    }
    await this.finalize(ns);
  }

  /** Deletes what is left in the namespace; returns whether anything still remains. */
  private async deleteContent(namespace: string): Promise<boolean> {
    const resources = (await this.resources()).filter((r) => r.namespaced && r.verbs.includes('list') && r.verbs.includes('delete'));
    const remaining = await Promise.all(resources.map((r) => this.deleteAll(r, namespace)));
    return remaining.some(Boolean);
  }

  private async deleteAll(r: ServedResource, namespace: string): Promise<boolean> {
    try {
      const present = await this.client.list(r, namespace, { limit: 1 });
      if (!present.items.length) return false;
      if (r.verbs.includes('deletecollection')) {
        await this.client.json('DELETE', this.client.path(r, namespace), { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' });
      } else {
        const all = await this.client.list(r, namespace);
        for (const obj of all.items) {
          if (obj.metadata.deletionTimestamp) continue;
          await this.client.delete(r, namespace, obj.metadata.name!, { propagationPolicy: 'Background' }).catch(ignoreNotFound);
        }
      }
      return (await this.client.list(r, namespace, { limit: 1 })).items.length > 0;
    } catch (err) {
      // A resource that stopped being served while we looked (a CRD deleted) holds nothing.
      if (err instanceof ApiError && (err.code === 404 || err.code === 405)) return false;
      throw err;
    }
  }

  private async resources(): Promise<ServedResource[]> {
    const now = Date.now();
    if (!this.discovered || now - this.discovered.at > NAMESPACE_DISCOVERY_TTL_MS) {
      this.discovered = { at: now, resources: await discoverResources(this.client) };
    }
    return this.discovered.resources;
  }

  private async finalize(ns: KubeObject): Promise<void> {
    const spec = { ...(ns.spec as object), finalizers: specFinalizers(ns).filter((f) => f !== FINALIZER_KUBERNETES) };
    const body = { ...ns, spec };
    const r = resource('namespaces');
    try {
      await this.client.json('PUT', this.client.path(r, undefined, ns.metadata.name, 'finalize'), body);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 404)) throw err;
      // Gone, or no finalize subresource: an update says the same where that is allowed.
      await this.client.update(r, body).catch(ignoreNotFound);
    }
  }
}

function specFinalizers(ns: KubeObject): string[] {
  return (ns.spec as { finalizers?: string[] } | undefined)?.finalizers ?? [];
}

function ignoreNotFound(err: unknown): undefined {
  if (err instanceof ApiError && err.code === 404) return undefined;
  throw err;
}
