import type { KubeObject } from '../api/types.js';
import { isConflict, type KubeClient } from '../client/client.js';
import { Informer, resource } from '../client/informer.js';
import { runtimeHandlerLabel } from '../agent/node-status.js';

/** The role label `kubectl get nodes` shows in its ROLES column. */
export const EDGE_ROLE_LABEL = 'node-role.kubernetes.io/edge';
/** Labels `up` puts on its nodes; each agent labels its node with the runtime handlers it offers. */
export const UP_NODE_LABELS: Readonly<Record<string, string>> = { [EDGE_ROLE_LABEL]: '' };

const RUNTIME_CLASSES = resource('node.k8s.io/runtimeclasses');
const NODES = resource('nodes');

/**
 * What a runv pod costs beyond its containers, for the scheduler and the node's accounting
 * (RuntimeClass `overhead.podFixed`): the guest's own kernel, agent and conmons (GUEST_OVERHEAD_MIB,
 * 128 MiB, measured in runv/sandbox-memory.ts) plus QEMU's host memory, whose largest part under TCG is
 * its translated-code cache. CPU: the VMM's and guest kernel's share, as Kata's QEMU default.
 */
export const RUNV_POD_OVERHEAD = { memory: '192Mi', cpu: '250m' } as const;

/**
 * Creates RuntimeClasses `runc` and `runv` unless they exist. Each schedules onto the nodes whose
 * agent labelled them as offering its handler.
 */
export async function ensureRuntimeClasses(client: KubeClient): Promise<void> {
  const classes = [
    { name: 'runc' },
    { name: 'runv', overhead: { podFixed: RUNV_POD_OVERHEAD } },
  ];
  for (const { name, overhead } of classes) {
    try {
      await client.create(RUNTIME_CLASSES, undefined, {
        apiVersion: 'node.k8s.io/v1',
        kind: 'RuntimeClass',
        metadata: { name },
        handler: name,
        ...(overhead ? { overhead } : {}),
        scheduling: { nodeSelector: { [runtimeHandlerLabel(name)]: 'true' } },
      });
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }
}

export interface NodeProgress {
  registered: Set<string>;
  ready: Set<string>;
}

export interface WatchNodesOptions {
  /** The nodes of this `up`; other nodes are left alone. */
  names: readonly string[];
  signal: AbortSignal;
  /** Called whenever a node of `names` registers, goes away, or changes readiness. */
  onProgress?(progress: NodeProgress): void;
  onError?(err: Error): void;
}

function isReady(node: KubeObject): boolean {
  const conditions = (node['status'] as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
  return conditions.some((c) => c.type === 'Ready' && c.status === 'True');
}

/**
 * Watches the Node objects of `up`'s agents until `signal` aborts: labels each (UP_NODE_LABELS) as it
 * registers, again if it registers anew, and reports which are registered and Ready.
 */
export async function watchNodes(client: KubeClient, options: WatchNodesOptions): Promise<void> {
  const names = new Set(options.names);
  const informer = new Informer(client, NODES);
  const labelling = new Set<string>();
  let last = '';
  const report = () => {
    const nodes = informer.list().filter((n) => names.has(n.metadata.name!));
    const progress = { registered: new Set(nodes.map((n) => n.metadata.name!)), ready: new Set(nodes.filter(isReady).map((n) => n.metadata.name!)) };
    const key = `${[...progress.registered].sort().join()}|${[...progress.ready].sort().join()}`;
    if (key !== last) {
      last = key;
      options.onProgress?.(progress);
    }
  };
  const label = (node: KubeObject) => {
    const name = node.metadata.name!;
    report();
    if (!names.has(name) || labelling.has(name)) return;
    const labels = node.metadata.labels ?? {};
    if (Object.entries(UP_NODE_LABELS).every(([k, v]) => labels[k] === v)) return;
    labelling.add(name);
    client
      .patch(NODES, undefined, name, 'merge', { metadata: { labels: UP_NODE_LABELS } })
      .catch((err: Error) => options.onError?.(new Error(`labelling node ${name}: ${err.message}`)))
      .finally(() => labelling.delete(name));
  };
  informer.on({ add: label, update: (_old, node) => label(node), delete: () => report() });
  await informer.run(options.signal);
}
