import { toleratesTaint, type Toleration } from '../api/scheduling.js';
import type { KubeObject } from '../api/types.js';
import { deepEqual } from '../api/validation/field.js';
import type { KubeClient } from '../client/client.js';
import { EventRecorder } from '../client/events.js';
import { resource, type Informer } from '../client/informer.js';
import { WorkQueue } from '../client/workqueue.js';
import { defaultErrorSink, objectKey, splitKey, waitForSync, type Controller, type ErrorSink, type SharedInformers } from './controller.js';
import { TAINT_NOT_READY, TAINT_UNREACHABLE } from './node-lifecycle.js';

/**
 * Edge autonomy: a node that opts in keeps its pods through a loss of the link to the control
 * plane, because its agent runs them from its cache meanwhile.
 *
 * Opt-in, on the Node:
 * - `node.atoll.dev/autonomy: "true"` — autonomous for ever (`"false"` switches it off, and wins
 *   over a duration);
 * - `node.atoll.dev/autonomy-duration: "<seconds>"` — autonomous for that long after the node is
 *   lost; `"0"` means for ever.
 * Any other value makes the node not autonomous, and a Warning event on the Node says which
 * annotation is wrong and what it should hold.
 *
 * The autonomy controller gives every pod bound to an autonomous node NoExecute tolerations for
 * `unreachable` and `not-ready` without `tolerationSeconds` (for ever) or with the duration. That
 * is a plain pod patch, so it keeps pods on the node under any node-lifecycle controller, kube's on
 * a managed cluster included. Before the first change the pod's tolerations are saved, as JSON, in
 * `node.atoll.dev/original-tolerations`; when autonomy ends they are restored and the annotation
 * removed. DaemonSet pods (which carry for-ever tolerations already) and mirror pods are left alone.
 *
 * The API lets a pod update change an existing toleration's `tolerationSeconds` and add
 * tolerations, but never remove one (as kube does). So:
 * - autonomy edits `tolerationSeconds` of the pod's own tolerations with exactly those keys and
 *   effect NoExecute, and adds a toleration only for a key the pod had none for;
 * - restoring puts back the saved `tolerationSeconds` of the edited ones, and sets those it added
 *   to 0 — for eviction the same as having no toleration (the pod leaves as soon as the taint
 *   lands), though the added toleration stays in the spec.
 * Key-less tolerations (`operator: Exists` for every key) are not edited.
 *
 * Atoll's own node-lifecycle controller honours autonomy too, through `protectsAutonomousNode`,
 * and the endpoints controller keeps such pods' endpoints (see endpoints.ts).
 */

export const ANNOTATION_AUTONOMY = 'node.atoll.dev/autonomy';
export const ANNOTATION_AUTONOMY_DURATION = 'node.atoll.dev/autonomy-duration';
export const ANNOTATION_ORIGINAL_TOLERATIONS = 'node.atoll.dev/original-tolerations';
/** The NoExecute taints a node gets when its link or kubelet is lost. */
export const AUTONOMY_TAINTS = [TAINT_UNREACHABLE, TAINT_NOT_READY] as const;
const MIRROR_POD_ANNOTATION = 'kubernetes.io/config.mirror';
const AUTONOMY_WORKERS = 2;

/** A node's autonomy: off, on (`seconds` undefined for ever), or an annotation that does not parse. */
export type Autonomy =
  | { state: 'off' }
  | { state: 'on'; seconds?: number }
  | { state: 'invalid'; annotation: string; value: string; message: string };

/** Reads the autonomy annotations strictly. */
export function parseAutonomy(annotations: Record<string, string> | undefined): Autonomy {
  const flag = annotations?.[ANNOTATION_AUTONOMY];
  const duration = annotations?.[ANNOTATION_AUTONOMY_DURATION];
  if (flag !== undefined && flag !== 'true' && flag !== 'false') {
    return { state: 'invalid', annotation: ANNOTATION_AUTONOMY, value: flag, message: `annotation ${ANNOTATION_AUTONOMY}: invalid value ${JSON.stringify(flag)}: must be "true" or "false"; the node is not autonomous until it is fixed` };
  }
  if (flag === 'false') return { state: 'off' };
  if (duration !== undefined) {
    const seconds = /^\d+$/.test(duration) ? Number(duration) : NaN;
    if (!Number.isSafeInteger(seconds)) {
      return { state: 'invalid', annotation: ANNOTATION_AUTONOMY_DURATION, value: duration, message: `annotation ${ANNOTATION_AUTONOMY_DURATION}: invalid value ${JSON.stringify(duration)}: must be a whole number of seconds, such as "3600", or "0" for ever; the node is not autonomous until it is fixed` };
    }
    return seconds === 0 ? { state: 'on' } : { state: 'on', seconds };
  }
  return flag === 'true' ? { state: 'on' } : { state: 'off' };
}

/**
 * The node-lifecycle `protect` predicate: true while an autonomous node's pods must be kept Ready
 * and in place. Bounded autonomy ends `seconds` after the node's unreachable or not-ready NoExecute
 * taint was added.
 */
export function protectsAutonomousNode(node: KubeObject, now = Date.now()): boolean {
  const autonomy = parseAutonomy(node.metadata.annotations);
  if (autonomy.state !== 'on') return false;
  if (autonomy.seconds === undefined) return true;
  const taints = (node.spec as { taints?: { key: string; effect: string; timeAdded?: string }[] } | undefined)?.taints ?? [];
  const added = taints
    .filter((t) => t.effect === 'NoExecute' && (AUTONOMY_TAINTS as readonly string[]).includes(t.key) && t.timeAdded)
    .map((t) => Date.parse(t.timeAdded!))
    .filter((ms) => !Number.isNaN(ms));
  return !added.length || now < Math.min(...added) + autonomy.seconds * 1000;
}

/** Whether the toleration is one autonomy manages for `key`: that exact key, NoExecute, matching any value. */
function manages(t: Toleration, key: string): boolean {
  return t.key === key && t.effect === 'NoExecute' && toleratesTaint(t, { key, effect: 'NoExecute' });
}

function withSeconds(t: Toleration, seconds: number | undefined): Toleration {
  const { tolerationSeconds: _, ...rest } = t;
  return seconds === undefined ? rest : { ...rest, tolerationSeconds: seconds };
}

/** The pod's tolerations under autonomy: managed ones bounded by `seconds` (undefined: for ever). */
export function autonomousTolerations(tolerations: Toleration[], seconds: number | undefined): Toleration[] {
  const out = tolerations.map((t) => (AUTONOMY_TAINTS.some((key) => manages(t, key)) ? withSeconds(t, seconds) : t));
  for (const key of AUTONOMY_TAINTS) {
    if (!out.some((t) => manages(t, key))) out.push(withSeconds({ key, operator: 'Exists', effect: 'NoExecute' }, seconds));
  }
  return out;
}

/**
 * The pod's tolerations with autonomy undone, given the saved `original` ones. Tolerations can only
 * be appended, so the first `original.length` still line up with the saved ones.
 */
export function restoredTolerations(tolerations: Toleration[], original: Toleration[]): Toleration[] {
  return tolerations.map((t, i) => {
    if (!AUTONOMY_TAINTS.some((key) => manages(t, key))) return t;
    if (i < original.length) return withSeconds(t, original[i]!.tolerationSeconds ?? undefined);
    return t.operator === 'Exists' ? withSeconds(t, 0) : t;
  });
}

/** Parses the saved-tolerations annotation, which anyone could have edited. */
export function parseOriginalTolerations(value: string): Toleration[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw new Error(`annotation ${ANNOTATION_ORIGINAL_TOLERATIONS}: not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(parsed) || !parsed.every((t) => typeof t === 'object' && t !== null && !Array.isArray(t))) {
    throw new Error(`annotation ${ANNOTATION_ORIGINAL_TOLERATIONS}: must be a JSON array of tolerations`);
  }
  return parsed as Toleration[];
}

/** Pods autonomy leaves alone: DaemonSet pods and mirror pods of static pods. */
export function isExempt(pod: KubeObject): boolean {
  if (pod.metadata.annotations?.[MIRROR_POD_ANNOTATION] !== undefined) return true;
  return (pod.metadata.ownerReferences ?? []).some((o) => o.kind === 'DaemonSet' || o.kind === 'Node');
}

function nodeNameOf(pod: KubeObject | undefined): string | undefined {
  return (pod?.spec as { nodeName?: string } | undefined)?.nodeName || undefined;
}

export interface AutonomyControllerOptions {
  onError?: ErrorSink;
}

export class AutonomyController implements Controller {
  readonly name = 'autonomy';
  private readonly nodes: Informer;
  private readonly pods: Informer;
  private readonly queue = new WorkQueue();
  private readonly events: EventRecorder;
  /** The invalid annotation value last warned about, per node, so a heartbeat does not warn again. */
  private readonly warned = new Map<string, string>();
  private readonly onError: ErrorSink;

  constructor(
    private readonly client: KubeClient,
    informers: SharedInformers,
    options: AutonomyControllerOptions = {},
  ) {
    this.onError = options.onError ?? defaultErrorSink;
    this.events = new EventRecorder(client, 'autonomy-controller');
    this.nodes = informers.get(resource('nodes'));
    this.pods = informers.get(resource('pods'));
    this.nodes.on({
      add: (node) => this.nodeChanged(undefined, node),
      update: (old, node) => this.nodeChanged(old, node),
      delete: (node) => this.nodeChanged(node, undefined),
    });
    const pod = (p: KubeObject) => {
      if (nodeNameOf(p)) this.queue.add(objectKey(p));
    };
    this.pods.on({ add: pod, update: (_, p) => pod(p) });
  }

  async run(signal: AbortSignal): Promise<void> {
    if (!(await waitForSync(signal, this.nodes, this.pods))) return;
    for (const node of this.nodes.list()) this.warnIfInvalid(node);
    for (const pod of this.pods.list()) if (nodeNameOf(pod)) this.queue.add(objectKey(pod));
    await this.queue.run((key) => this.sync(key), signal, AUTONOMY_WORKERS, (key, err) => this.onError(this.name, key, err));
  }

  private nodeChanged(old: KubeObject | undefined, node: KubeObject | undefined): void {
    const name = (node ?? old)!.metadata.name!;
    if (!node) this.warned.delete(name);
    else this.warnIfInvalid(node);
    if (deepEqual(parseAutonomy(old?.metadata.annotations), parseAutonomy(node?.metadata.annotations))) return;
    for (const pod of this.pods.list()) if (nodeNameOf(pod) === name) this.queue.add(objectKey(pod));
  }

  private warnIfInvalid(node: KubeObject): void {
    const name = node.metadata.name!;
    const autonomy = parseAutonomy(node.metadata.annotations);
    if (autonomy.state !== 'invalid') {
      this.warned.delete(name);
      return;
    }
    const seen = `${autonomy.annotation}=${autonomy.value}`;
    if (this.warned.get(name) === seen) return;
    this.warned.set(name, seen);
    void this.events.record({ ...node, apiVersion: 'v1', kind: 'Node' }, 'Warning', 'InvalidAutonomy', autonomy.message).catch(() => undefined);
  }

  private async sync(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const pod = this.pods.get(namespace, name);
    if (!pod || pod.metadata.deletionTimestamp || isExempt(pod)) return;
    const nodeName = nodeNameOf(pod);
    const node = nodeName ? this.nodes.get(undefined, nodeName) : undefined;
    const autonomy = node ? parseAutonomy(node.metadata.annotations) : ({ state: 'off' } as const);
    const tolerations = (pod.spec as { tolerations?: Toleration[] } | undefined)?.tolerations ?? [];
    const saved = pod.metadata.annotations?.[ANNOTATION_ORIGINAL_TOLERATIONS];

    if (autonomy.state === 'on') {
      const next = autonomousTolerations(tolerations, autonomy.seconds);
      if (saved !== undefined && deepEqual(next, tolerations)) return;
      await this.patch(pod, saved ?? JSON.stringify(tolerations), next);
      return;
    }
    if (saved === undefined) return;
    let original: Toleration[];
    try {
      original = parseOriginalTolerations(saved);
    } catch (err) {
      // Retrying cannot fix a hand-edited annotation: say so on the pod and leave it as it is.
      void this.events.record(pod, 'Warning', 'AutonomyRestoreFailed', `cannot restore tolerations: ${(err as Error).message}`).catch(() => undefined);
      return;
    }
    await this.patch(pod, null, restoredTolerations(tolerations, original));
  }

  /** One merge patch, guarded by resourceVersion, so the saved copy and the change land together. */
  private async patch(pod: KubeObject, saved: string | null, tolerations: Toleration[]): Promise<void> {
    await this.client.patch(resource('pods'), pod.metadata.namespace, pod.metadata.name!, 'merge', {
      metadata: { resourceVersion: pod.metadata.resourceVersion, annotations: { [ANNOTATION_ORIGINAL_TOLERATIONS]: saved } },
      spec: { tolerations },
    });
  }
}
