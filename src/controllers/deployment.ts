import { ApiError } from '../api/errors.js';
import { matches, type LabelSelectorObject } from '../api/labels.js';
import type { KubeObject } from '../api/types.js';
import type { KubeClient } from '../client/client.js';
import { EventRecorder } from '../client/events.js';
import { type Informer, resource } from '../client/informer.js';
import type { SharedInformers } from './controller.js';
import { WorkQueue } from '../client/workqueue.js';
import type { ReplicaSet } from './replicaset.js';
import {
  claimObjects,
  controllerRefOf,
  findCondition,
  isNotFound,
  keyOf,
  newControllerRef,
  parseTime,
  recheckOwner,
  resolveControllerRef,
  scaledValue,
  selectorOf,
  semanticEqual,
  setCondition,
  splitKey,
  informerFor,
  startInformers,
  templateHash,
  timestamp,
  type Pod,
  type PodTemplate,
  type WorkloadController,
  type WorkloadStatusCondition,
} from './workload-util.js';

/**
 * The Deployment controller (kube's pkg/controller/deployment). A Deployment owns one ReplicaSet per
 * pod template it has run, named `<deployment>-<pod-template-hash>` and labelled with that hash.
 * The "new" ReplicaSet is the oldest one whose template equals the Deployment's (ignoring the hash
 * label), so `kubectl rollout undo`, which copies an old ReplicaSet's template back, reuses it and
 * gives it the next revision number.
 *
 * Each sync, in kube's order:
 *   deleted → status only; paused → scale and clean up only; a replicas change (the desired-replicas
 *   annotation of an active ReplicaSet differs) → proportional scaling; otherwise a rollout step:
 *   RollingUpdate scales the new ReplicaSet up within maxSurge and old ones down within
 *   maxUnavailable, Recreate scales old ones to zero, waits for their pods to go, then scales up.
 * Status carries kube's Progressing/Available conditions and reasons, which `kubectl rollout status`
 * reads, and progressDeadlineSeconds turns a stalled rollout into ProgressDeadlineExceeded.
 */

export const REVISION_ANNOTATION = 'deployment.kubernetes.io/revision';
export const REVISION_HISTORY_ANNOTATION = 'deployment.kubernetes.io/revision-history';
export const DESIRED_REPLICAS_ANNOTATION = 'deployment.kubernetes.io/desired-replicas';
export const MAX_REPLICAS_ANNOTATION = 'deployment.kubernetes.io/max-replicas';
export const POD_TEMPLATE_HASH_LABEL = 'pod-template-hash';

/** Deployment annotations that are not copied to its ReplicaSets (and back by rollout undo). */
const ANNOTATIONS_TO_SKIP = new Set([
  'kubectl.kubernetes.io/last-applied-configuration',
  REVISION_ANNOTATION,
  REVISION_HISTORY_ANNOTATION,
  DESIRED_REPLICAS_ANNOTATION,
  MAX_REPLICAS_ANNOTATION,
  'deprecated.deployment.rollback.to',
]);
/** The revision-history annotation is trimmed to this many characters. */
const MAX_REVISION_HISTORY_CHARS = 2000;

export const Reasons = {
  NewReplicaSetCreated: 'NewReplicaSetCreated',
  FoundNewReplicaSet: 'FoundNewReplicaSet',
  ReplicaSetUpdated: 'ReplicaSetUpdated',
  NewReplicaSetAvailable: 'NewReplicaSetAvailable',
  ProgressDeadlineExceeded: 'ProgressDeadlineExceeded',
  FailedReplicaSetCreate: 'ReplicaSetCreateError',
  DeploymentPaused: 'DeploymentPaused',
  DeploymentResumed: 'DeploymentResumed',
  MinimumReplicasAvailable: 'MinimumReplicasAvailable',
  MinimumReplicasUnavailable: 'MinimumReplicasUnavailable',
} as const;

/** progressDeadlineSeconds of MaxInt32 means "no deadline". */
const NO_DEADLINE = 2 ** 31 - 1;
const DEFAULT_WORKERS = 5;

export interface DeploymentSpec {
  replicas?: number;
  selector?: LabelSelectorObject;
  template?: PodTemplate;
  strategy?: { type?: string; rollingUpdate?: { maxSurge?: number | string; maxUnavailable?: number | string } };
  minReadySeconds?: number;
  revisionHistoryLimit?: number;
  paused?: boolean;
  progressDeadlineSeconds?: number;
}

export interface DeploymentStatus {
  observedGeneration?: number;
  replicas?: number;
  updatedReplicas?: number;
  readyReplicas?: number;
  availableReplicas?: number;
  unavailableReplicas?: number;
  collisionCount?: number;
  conditions?: WorkloadStatusCondition[];
}

export interface Deployment extends KubeObject {
  spec: DeploymentSpec;
  status?: DeploymentStatus;
}

export interface DeploymentControllerOptions {
  /** Informers shared with the other controllers of the process; absent, the controller runs its own. */
  informers?: SharedInformers;
  workers?: number;
  onError?: (key: string, err: unknown) => void;
}

const DEPLOYMENTS = resource('apps/deployments');
const RS = resource('apps/replicasets');
const PODS = resource('pods');

// ---- pure helpers from kube's deployment util ----

const replicasOf = (rs: ReplicaSet | Deployment): number => rs.spec.replicas ?? 1;
const isRollingUpdate = (d: Deployment): boolean => (d.spec.strategy?.type ?? 'RollingUpdate') === 'RollingUpdate';

/** [maxSurge, maxUnavailable] resolved against replicas; both zero means one unavailable (ResolveFenceposts). */
export function resolveFenceposts(maxSurge: number | string | undefined, maxUnavailable: number | string | undefined, desired: number): [number, number] {
  const surge = scaledValue(maxSurge ?? '25%', desired, true);
  const unavailable = scaledValue(maxUnavailable ?? '25%', desired, false);
  return surge === 0 && unavailable === 0 ? [0, 1] : [surge, unavailable];
}

export function maxSurge(d: Deployment): number {
  if (!isRollingUpdate(d)) return 0;
  const ru = d.spec.strategy?.rollingUpdate;
  return resolveFenceposts(ru?.maxSurge, ru?.maxUnavailable, replicasOf(d))[0];
}

export function maxUnavailable(d: Deployment): number {
  const desired = replicasOf(d);
  if (!isRollingUpdate(d) || desired === 0) return 0;
  const ru = d.spec.strategy?.rollingUpdate;
  return Math.min(resolveFenceposts(ru?.maxSurge, ru?.maxUnavailable, desired)[1], desired);
}

export function revisionOf(obj: KubeObject): number {
  const v = obj.metadata.annotations?.[REVISION_ANNOTATION];
  const n = v === undefined ? 0 : Number(v);
  return Number.isInteger(n) ? n : 0;
}

function byCreation(a: KubeObject, b: KubeObject): number {
  const d = parseTime(a.metadata.creationTimestamp) - parseTime(b.metadata.creationTimestamp);
  return d !== 0 ? d : a.metadata.name! < b.metadata.name! ? -1 : a.metadata.name! > b.metadata.name! ? 1 : 0;
}

/** Templates equal once the pod-template-hash label is ignored (EqualIgnoreHash). */
export function equalIgnoreHash(a: PodTemplate | undefined, b: PodTemplate | undefined): boolean {
  const strip = (t: PodTemplate | undefined): PodTemplate => {
    const c = structuredClone(t ?? {});
    if (c.metadata?.labels) delete c.metadata.labels[POD_TEMPLATE_HASH_LABEL];
    return c;
  };
  return semanticEqual(strip(a), strip(b));
}

/** The oldest ReplicaSet whose template is the Deployment's (FindNewReplicaSet). */
export function findNewReplicaSet(d: Deployment, rsList: ReplicaSet[]): ReplicaSet | undefined {
  return [...rsList].sort(byCreation).find((rs) => equalIgnoreHash(rs.spec.template, d.spec.template));
}

const sumReplicas = (list: ReplicaSet[]) => list.reduce((n, rs) => n + replicasOf(rs), 0);
const sumActual = (list: ReplicaSet[]) => list.reduce((n, rs) => n + (rs.status?.replicas ?? 0), 0);
const sumReady = (list: ReplicaSet[]) => list.reduce((n, rs) => n + (rs.status?.readyReplicas ?? 0), 0);
const sumAvailable = (list: ReplicaSet[]) => list.reduce((n, rs) => n + (rs.status?.availableReplicas ?? 0), 0);
const active = (list: ReplicaSet[]) => list.filter((rs) => replicasOf(rs) > 0);

/** How many replicas the new ReplicaSet may have now (NewRSNewReplicas). */
export function newRSNewReplicas(d: Deployment, allRSs: ReplicaSet[], newRS: ReplicaSet): number {
  if (!isRollingUpdate(d)) return replicasOf(d);
  const maxTotal = replicasOf(d) + maxSurge(d);
  const current = sumReplicas(allRSs);
  if (current >= maxTotal) return replicasOf(newRS);
  const up = Math.min(maxTotal - current, replicasOf(d) - replicasOf(newRS));
  return replicasOf(newRS) + up;
}

function annotationInt(rs: ReplicaSet, key: string): number | undefined {
  const v = rs.metadata.annotations?.[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isInteger(n) ? n : undefined;
}

function replicasAnnotationsNeedUpdate(rs: ReplicaSet, desired: number, max: number): boolean {
  return annotationInt(rs, DESIRED_REPLICAS_ANNOTATION) !== desired || annotationInt(rs, MAX_REPLICAS_ANNOTATION) !== max;
}

function setReplicasAnnotations(rs: ReplicaSet, desired: number, max: number): boolean {
  if (!replicasAnnotationsNeedUpdate(rs, desired, max)) return false;
  const ann = (rs.metadata.annotations ??= {});
  ann[DESIRED_REPLICAS_ANNOTATION] = String(desired);
  ann[MAX_REPLICAS_ANNOTATION] = String(max);
  return true;
}

/** Go's math.Round: halves away from zero. */
const roundHalfAway = (x: number) => Math.sign(x) * Math.round(Math.abs(x));

/** The share of a proportional scale that falls to one ReplicaSet (GetReplicaSetProportion). */
function proportion(rs: ReplicaSet, d: Deployment, toAdd: number, added: number): number {
  if (replicasOf(rs) === 0 || toAdd === 0 || toAdd === added) return 0;
  let fraction: number;
  if (replicasOf(d) === 0) {
    fraction = -replicasOf(rs);
  } else {
    const maxNow = replicasOf(d) + maxSurge(d);
    let before = annotationInt(rs, MAX_REPLICAS_ANNOTATION) ?? 0;
    if (before === 0) before = d.status?.replicas ?? 0;
    fraction = before === 0 ? 0 : roundHalfAway((replicasOf(rs) * maxNow) / before) - replicasOf(rs);
  }
  const allowed = toAdd - added;
  return toAdd > 0 ? Math.min(fraction, allowed) : Math.max(fraction, allowed);
}

function hasProgressDeadline(d: Deployment): boolean {
  const s = d.spec.progressDeadlineSeconds;
  return s !== undefined && s !== null && s !== NO_DEADLINE;
}

function deploymentComplete(d: Deployment, st: DeploymentStatus): boolean {
  const n = replicasOf(d);
  return (st.updatedReplicas ?? 0) === n && (st.replicas ?? 0) === n && (st.availableReplicas ?? 0) === n && (st.observedGeneration ?? 0) >= (d.metadata.generation ?? 0);
}

function deploymentProgressing(d: Deployment, st: DeploymentStatus): boolean {
  const old = d.status ?? {};
  const oldOld = (old.replicas ?? 0) - (old.updatedReplicas ?? 0);
  const newOld = (st.replicas ?? 0) - (st.updatedReplicas ?? 0);
  return (
    (st.updatedReplicas ?? 0) > (old.updatedReplicas ?? 0) ||
    newOld < oldOld ||
    (st.readyReplicas ?? 0) > (old.readyReplicas ?? 0) ||
    (st.availableReplicas ?? 0) > (old.availableReplicas ?? 0)
  );
}

function deploymentTimedOut(d: Deployment, st: DeploymentStatus, now = Date.now()): boolean {
  if (!hasProgressDeadline(d)) return false;
  const c = findCondition(st.conditions, 'Progressing');
  if (!c || c.reason === Reasons.NewReplicaSetAvailable) return false;
  if (c.reason === Reasons.ProgressDeadlineExceeded) return true;
  return parseTime(c.lastUpdateTime) + d.spec.progressDeadlineSeconds! * 1000 < now;
}

function condition(type: string, status: string, reason: string, message: string): WorkloadStatusCondition {
  const now = timestamp();
  return { type, status, lastUpdateTime: now, lastTransitionTime: now, reason, message };
}

// ---- the controller ----

export class DeploymentController implements WorkloadController {
  readonly name = 'deployment';
  readonly deployments: Informer<Deployment>;
  readonly replicaSets: Informer<ReplicaSet>;
  readonly pods: Informer<Pod>;
  private readonly queue = new WorkQueue();
  readonly events: EventRecorder;

  constructor(
    readonly client: KubeClient,
    private readonly options: DeploymentControllerOptions = {},
  ) {
    this.deployments = informerFor<Deployment>(client, DEPLOYMENTS, options.informers);
    this.replicaSets = informerFor<ReplicaSet>(client, RS, options.informers);
    this.pods = informerFor<Pod>(client, PODS, options.informers);
    this.events = new EventRecorder(client, 'deployment-controller');
    this.deployments.on({ add: (d) => this.enqueue(d), update: (_o, d) => this.enqueue(d), delete: (d) => this.enqueue(d) });
    this.replicaSets.on({
      add: (rs) => this.replicaSetChanged(undefined, rs),
      update: (old, rs) => this.replicaSetChanged(old, rs),
      delete: (rs) => this.replicaSetChanged(undefined, rs),
    });
    this.pods.on({ delete: (pod) => this.podDeleted(pod) });
  }

  async run(signal: AbortSignal): Promise<void> {
    const runs = await startInformers([this.deployments, this.replicaSets, this.pods], signal, Boolean(this.options.informers));
    await Promise.all([...runs, this.queue.run((key) => this.sync(key), signal, this.options.workers ?? DEFAULT_WORKERS, this.options.onError)]);
  }

  enqueue(d: KubeObject): void {
    this.queue.add(keyOf(d));
  }

  enqueueAfter(d: KubeObject, ms: number): void {
    this.queue.addAfter(keyOf(d), ms);
  }

  private owner(rs: KubeObject): Deployment | undefined {
    return resolveControllerRef(this.deployments, rs, 'Deployment');
  }

  private replicaSetChanged(old: ReplicaSet | undefined, rs: ReplicaSet): void {
    const oldRef = old && controllerRefOf(old);
    const ref = controllerRefOf(rs);
    if (old && oldRef && oldRef.uid !== ref?.uid) {
      const prior = this.owner(old);
      if (prior) this.enqueue(prior);
    }
    if (ref) {
      const d = this.owner(rs);
      if (d) this.enqueue(d);
      return;
    }
    // An orphan: every Deployment that could adopt it takes a look.
    for (const d of this.deployments.list(rs.metadata.namespace)) if (matches(selectorOf(d), rs.metadata.labels)) this.enqueue(d);
  }

  /** Recreate waits for old pods to be gone, so their deletion is news to it. */
  private podDeleted(pod: Pod): void {
    const rs = resolveControllerRef(this.replicaSets, pod, 'ReplicaSet');
    const d = rs && this.owner(rs);
    if (d && !isRollingUpdate(d)) this.enqueue(d);
  }

  private async sync(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const cached = this.deployments.get(namespace, name);
    if (!cached) return;
    const d = structuredClone(cached);
    const selector = selectorOf(d);
    const owned = this.replicaSets.list(namespace);
    const ref = newControllerRef(d, 'apps/v1', 'Deployment');
    const rsList = await claimObjects(this.client, RS, d, ref, selector, owned, recheckOwner(this.client, DEPLOYMENTS, d));
    await new Rollout(this, d, rsList).sync();
  }

  /** Pods of the Deployment's ReplicaSets, by ReplicaSet uid (for Recreate). */
  podsByReplicaSet(namespace: string | undefined, rsList: ReplicaSet[]): Map<string, Pod[]> {
    const uids = new Set(rsList.map((rs) => rs.metadata.uid!));
    const out = new Map<string, Pod[]>();
    for (const pod of this.pods.list(namespace)) {
      const uid = controllerRefOf(pod)?.uid;
      if (uid && uids.has(uid)) out.set(uid, [...(out.get(uid) ?? []), pod]);
    }
    return out;
  }
}

/**
 * One sync of one Deployment. It keeps the Deployment and its ReplicaSets as last written, so a
 * later step never writes from an object an earlier step already replaced.
 */
class Rollout {
  constructor(
    private readonly c: DeploymentController,
    private d: Deployment,
    private rsList: ReplicaSet[],
  ) {}

  private get client(): KubeClient {
    return this.c.client;
  }

  async sync(): Promise<void> {
    const d = this.d;
    if (d.metadata.deletionTimestamp) {
      const { newRS, oldRSs } = await this.allReplicaSets(false);
      return this.syncStatus(newRS, oldRSs);
    }
    await this.checkPausedConditions();
    if (this.d.spec.paused) return this.scaleOnly();
    if (await this.isScalingEvent()) return this.scaleOnly();
    return isRollingUpdate(this.d) ? this.rolloutRolling() : this.rolloutRecreate();
  }

  // ---- ReplicaSets and revisions ----

  private replace(rs: ReplicaSet): ReplicaSet {
    this.rsList = this.rsList.map((o) => (o.metadata.uid === rs.metadata.uid ? rs : o));
    return rs;
  }

  private current(rs: ReplicaSet): ReplicaSet {
    return this.rsList.find((o) => o.metadata.uid === rs.metadata.uid) ?? rs;
  }

  /** getAllReplicaSetsAndSyncRevision: the new ReplicaSet (created if asked) and all the others. */
  private async allReplicaSets(create: boolean): Promise<{ newRS?: ReplicaSet; oldRSs: ReplicaSet[] }> {
    const existing = findNewReplicaSet(this.d, this.rsList);
    const oldRSs = () => this.rsList.filter((rs) => rs.metadata.uid !== existing?.metadata.uid);
    const maxOld = Math.max(0, ...oldRSs().map(revisionOf));
    const newRevision = maxOld + 1;
    if (existing) return { newRS: await this.syncExistingNewRS(existing, newRevision), oldRSs: oldRSs() };
    if (!create) return { oldRSs: oldRSs() };
    const created = await this.createNewRS(newRevision);
    return { newRS: created, oldRSs: this.rsList.filter((rs) => rs.metadata.uid !== created.metadata.uid) };
  }

  /** Copies the Deployment's annotations and revision onto the new ReplicaSet (setNewReplicaSetAnnotations). */
  private setNewRSAnnotations(rs: ReplicaSet, newRevision: number, exists: boolean): boolean {
    const ann = (rs.metadata.annotations ??= {});
    let changed = false;
    for (const [k, v] of Object.entries(this.d.metadata.annotations ?? {})) {
      if (ANNOTATIONS_TO_SKIP.has(k) || ann[k] === v) continue;
      ann[k] = v;
      changed = true;
    }
    const oldRevision = ann[REVISION_ANNOTATION];
    const oldInt = oldRevision === undefined ? 0 : Number(oldRevision);
    if (!Number.isInteger(oldInt)) return changed;
    if (oldInt < newRevision) {
      ann[REVISION_ANNOTATION] = String(newRevision);
      changed = true;
      // A ReplicaSet brought back by a rollback keeps the revisions it had, for `rollout history`.
      if (oldRevision !== undefined) {
        const history = ann[REVISION_HISTORY_ANNOTATION] ? ann[REVISION_HISTORY_ANNOTATION].split(',') : [];
        history.push(oldRevision);
        while (history.join(',').length > MAX_REVISION_HISTORY_CHARS && history.length > 1) history.shift();
        ann[REVISION_HISTORY_ANNOTATION] = history.join(',');
      }
    }
    if (!exists && setReplicasAnnotations(rs, replicasOf(this.d), replicasOf(this.d) + maxSurge(this.d))) changed = true;
    return changed;
  }

  private async syncExistingNewRS(existing: ReplicaSet, newRevision: number): Promise<ReplicaSet> {
    let rs = existing;
    const copy = structuredClone(existing);
    const annotationsChanged = this.setNewRSAnnotations(copy, newRevision, true);
    const minReady = this.d.spec.minReadySeconds ?? 0;
    if (annotationsChanged || (copy.spec.minReadySeconds ?? 0) !== minReady) {
      copy.spec.minReadySeconds = minReady;
      rs = this.replace(await this.client.update<ReplicaSet>(RS, copy));
    }
    await this.setDeploymentRevision(rs.metadata.annotations?.[REVISION_ANNOTATION]);
    if (hasProgressDeadline(this.d) && !findCondition(this.d.status?.conditions, 'Progressing')) {
      const conditions = setCondition(this.d.status?.conditions ?? [], condition('Progressing', 'True', Reasons.FoundNewReplicaSet, `Found new replica set "${rs.metadata.name}"`));
      await this.writeStatus({ ...this.d.status, conditions });
    }
    return rs;
  }

  private async createNewRS(newRevision: number): Promise<ReplicaSet> {
    const d = this.d;
    const hash = templateHash(d.spec.template, d.status?.collisionCount);
    const template = structuredClone(d.spec.template ?? {});
    template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, [POD_TEMPLATE_HASH_LABEL]: hash } };
    const selector = structuredClone(d.spec.selector ?? {});
    selector.matchLabels = { ...selector.matchLabels, [POD_TEMPLATE_HASH_LABEL]: hash };
    const rs: ReplicaSet = {
      apiVersion: 'apps/v1',
      kind: 'ReplicaSet',
      metadata: {
        name: `${d.metadata.name}-${hash}`,
        namespace: d.metadata.namespace,
        labels: { ...template.metadata.labels },
        annotations: {},
        ownerReferences: [newControllerRef(d, 'apps/v1', 'Deployment')],
      },
      spec: { replicas: 0, minReadySeconds: d.spec.minReadySeconds ?? 0, selector, template },
    };
    rs.spec.replicas = newRSNewReplicas(d, [...this.rsList, rs], rs);
    this.setNewRSAnnotations(rs, newRevision, false);
    let created: ReplicaSet;
    let alreadyExisted = false;
    try {
      created = await this.client.create<ReplicaSet>(RS, d.metadata.namespace, rs);
    } catch (err) {
      if (err instanceof ApiError && err.reason === 'AlreadyExists') {
        const found = await this.client.get<ReplicaSet>(RS, d.metadata.namespace, rs.metadata.name!);
        if (controllerRefOf(found)?.uid === d.metadata.uid && equalIgnoreHash(found.spec.template, d.spec.template)) {
          created = found;
          alreadyExisted = true;
        } else {
          // A different template hashed to the same name: bump collisionCount and try again next sync.
          await this.writeStatus({ ...d.status, collisionCount: (d.status?.collisionCount ?? 0) + 1 });
          throw err;
        }
      } else {
        if (hasProgressDeadline(d)) {
          const msg = `Failed to create new replica set "${rs.metadata.name}": ${(err as Error).message}`;
          const conditions = setCondition(d.status?.conditions ?? [], condition('Progressing', 'False', Reasons.FailedReplicaSetCreate, msg));
          await this.writeStatus({ ...d.status, conditions });
        }
        throw err;
      }
    }
    this.rsList = [...this.rsList.filter((o) => o.metadata.uid !== created.metadata.uid), created];
    if (!alreadyExisted && replicasOf(created) > 0) this.event('Normal', 'ScalingReplicaSet', `Scaled up replica set ${created.metadata.name} from 0 to ${replicasOf(created)}`);
    await this.setDeploymentRevision(String(newRevision));
    if (!alreadyExisted && hasProgressDeadline(this.d)) {
      const conditions = setCondition(this.d.status?.conditions ?? [], condition('Progressing', 'True', Reasons.NewReplicaSetCreated, `Created new replica set "${created.metadata.name}"`));
      await this.writeStatus({ ...this.d.status, conditions });
    }
    return created;
  }

  /** The Deployment carries the revision of its new ReplicaSet (SetDeploymentRevision). */
  private async setDeploymentRevision(revision: string | undefined): Promise<void> {
    if (revision === undefined || this.d.metadata.annotations?.[REVISION_ANNOTATION] === revision) return;
    const status = this.d.status;
    this.d = await this.client.patch<Deployment>(DEPLOYMENTS, this.d.metadata.namespace, this.d.metadata.name!, 'merge', {
      metadata: { resourceVersion: this.d.metadata.resourceVersion, annotations: { [REVISION_ANNOTATION]: revision } },
    });
    this.d.status = status;
  }

  // ---- scaling ----

  private async scaleReplicaSet(rs: ReplicaSet, newScale: number, operation: string): Promise<{ scaled: boolean; rs: ReplicaSet }> {
    rs = this.current(rs);
    const sizeChanged = replicasOf(rs) !== newScale;
    const desired = replicasOf(this.d);
    const max = desired + maxSurge(this.d);
    if (!sizeChanged && !replicasAnnotationsNeedUpdate(rs, desired, max)) return { scaled: false, rs };
    const copy = structuredClone(rs);
    const from = replicasOf(rs);
    copy.spec.replicas = newScale;
    setReplicasAnnotations(copy, desired, max);
    const updated = this.replace(await this.client.update<ReplicaSet>(RS, copy));
    if (sizeChanged) this.event('Normal', 'ScalingReplicaSet', `Scaled ${operation} replica set ${rs.metadata.name} from ${from} to ${newScale}`);
    return { scaled: sizeChanged, rs: updated };
  }

  private async scaleAndRecord(rs: ReplicaSet, newScale: number): Promise<{ scaled: boolean; rs: ReplicaSet }> {
    rs = this.current(rs);
    if (replicasOf(rs) === newScale) return { scaled: false, rs };
    return this.scaleReplicaSet(rs, newScale, replicasOf(rs) < newScale ? 'up' : 'down');
  }

  private async isScalingEvent(): Promise<boolean> {
    const { newRS, oldRSs } = await this.allReplicaSets(false);
    const all = newRS ? [...oldRSs, newRS] : oldRSs;
    return active(all).some((rs) => {
      const desired = annotationInt(rs, DESIRED_REPLICAS_ANNOTATION);
      return desired !== undefined && desired !== replicasOf(this.d);
    });
  }

  /** sync(): scale to the current replicas (proportionally during a rollout), clean up if paused, update status. */
  private async scaleOnly(): Promise<void> {
    const { newRS, oldRSs } = await this.allReplicaSets(false);
    await this.scale(newRS, oldRSs);
    if (this.d.spec.paused) await this.cleanup(oldRSs.map((rs) => this.current(rs)));
    await this.syncStatus(newRS && this.current(newRS), oldRSs.map((rs) => this.current(rs)));
  }

  private async scale(newRS: ReplicaSet | undefined, oldRSs: ReplicaSet[]): Promise<void> {
    const d = this.d;
    const desired = replicasOf(d);
    const olderFirst = [...oldRSs].sort(byCreation).reverse();
    const candidates = active(newRS ? [...olderFirst, newRS] : olderFirst);
    // One active ReplicaSet (or none: then the newest) simply takes the full count.
    const single = candidates.length === 1 ? candidates[0] : candidates.length === 0 ? newRS ?? olderFirst[0] : undefined;
    if (candidates.length <= 1) {
      if (single && replicasOf(single) !== desired) await this.scaleAndRecord(single, desired);
      return;
    }
    if (newRS && isSaturated(d, newRS)) {
      for (const old of active(oldRSs)) await this.scaleAndRecord(old, 0);
      return;
    }
    if (!isRollingUpdate(d)) return;
    const allowed = desired > 0 ? desired + maxSurge(d) : 0;
    const toAdd = allowed - sumReplicas(candidates);
    const ordered = [...candidates].sort((a, b) => {
      if (replicasOf(a) !== replicasOf(b)) return replicasOf(b) - replicasOf(a);
      // Equal sizes: scale newer ones up first, older ones down first.
      return toAdd > 0 ? byCreation(b, a) : byCreation(a, b);
    });
    const sizes = new Map<string, number>();
    let added = 0;
    for (const rs of ordered) {
      const p = toAdd !== 0 ? proportion(rs, d, toAdd, added) : 0;
      sizes.set(rs.metadata.uid!, replicasOf(rs) + p);
      added += p;
    }
    for (const [i, rs] of ordered.entries()) {
      let size = sizes.get(rs.metadata.uid!)!;
      if (i === 0 && toAdd !== 0) size = Math.max(0, size + toAdd - added);
      await this.scaleReplicaSet(rs, size, toAdd > 0 ? 'up' : 'down');
    }
  }

  // ---- RollingUpdate ----

  private async rolloutRolling(): Promise<void> {
    const { newRS, oldRSs } = await this.allReplicaSets(true);
    const newOne = newRS!;
    if (await this.reconcileNewReplicaSet(newOne)) return this.syncRolloutStatus(this.current(newOne), this.fresh(oldRSs));
    if (await this.reconcileOldReplicaSets(this.fresh(oldRSs), this.current(newOne))) return this.syncRolloutStatus(this.current(newOne), this.fresh(oldRSs));
    if (deploymentComplete(this.d, this.d.status ?? {})) await this.cleanup(this.fresh(oldRSs));
    return this.syncRolloutStatus(this.current(newOne), this.fresh(oldRSs));
  }

  private fresh(list: ReplicaSet[]): ReplicaSet[] {
    return list.map((rs) => this.current(rs));
  }

  private async reconcileNewReplicaSet(newRS: ReplicaSet): Promise<boolean> {
    const desired = replicasOf(this.d);
    if (replicasOf(newRS) === desired) return false;
    if (replicasOf(newRS) > desired) return (await this.scaleAndRecord(newRS, desired)).scaled;
    return (await this.scaleAndRecord(newRS, newRSNewReplicas(this.d, this.rsList, newRS))).scaled;
  }

  private async reconcileOldReplicaSets(oldRSs: ReplicaSet[], newRS: ReplicaSet): Promise<boolean> {
    if (sumReplicas(oldRSs) === 0) return false;
    const d = this.d;
    const minAvailable = replicasOf(d) - maxUnavailable(d);
    const newUnavailable = replicasOf(newRS) - (newRS.status?.availableReplicas ?? 0);
    const maxScaledDown = sumReplicas(this.rsList) - minAvailable - newUnavailable;
    if (maxScaledDown <= 0) return false;
    // Unhealthy old replicas go first: removing them costs no availability.
    let cleaned = 0;
    for (const rs of [...oldRSs].sort(byCreation)) {
      if (cleaned >= maxScaledDown) break;
      const avail = rs.status?.availableReplicas ?? 0;
      if (replicasOf(rs) === 0 || replicasOf(rs) === avail) continue;
      const n = Math.min(maxScaledDown - cleaned, replicasOf(rs) - avail);
      await this.scaleAndRecord(rs, replicasOf(rs) - n);
      cleaned += n;
    }
    const scaledDown = await this.scaleDownOldForRollingUpdate(this.fresh(oldRSs));
    return cleaned + scaledDown > 0;
  }

  private async scaleDownOldForRollingUpdate(oldRSs: ReplicaSet[]): Promise<number> {
    const d = this.d;
    const minAvailable = replicasOf(d) - maxUnavailable(d);
    const available = sumAvailable(this.rsList);
    if (available <= minAvailable) return 0;
    const total = available - minAvailable;
    let done = 0;
    for (const rs of [...oldRSs].sort(byCreation)) {
      if (done >= total) break;
      if (replicasOf(rs) === 0) continue;
      const n = Math.min(replicasOf(rs), total - done);
      await this.scaleAndRecord(rs, replicasOf(rs) - n);
      done += n;
    }
    return done;
  }

  // ---- Recreate ----

  private async rolloutRecreate(): Promise<void> {
    let { newRS, oldRSs } = await this.allReplicaSets(false);
    let scaledDown = false;
    for (const rs of active(oldRSs)) if ((await this.scaleAndRecord(rs, 0)).scaled) scaledDown = true;
    if (scaledDown) return this.syncRolloutStatus(newRS && this.current(newRS), this.fresh(oldRSs));
    if (this.oldPodsRunning(newRS, this.fresh(oldRSs))) return this.syncRolloutStatus(newRS && this.current(newRS), this.fresh(oldRSs));
    if (!newRS) ({ newRS, oldRSs } = await this.allReplicaSets(true));
    await this.scaleAndRecord(newRS!, replicasOf(this.d));
    if (deploymentComplete(this.d, this.d.status ?? {})) await this.cleanup(this.fresh(oldRSs));
    return this.syncRolloutStatus(this.current(newRS!), this.fresh(oldRSs));
  }

  private oldPodsRunning(newRS: ReplicaSet | undefined, oldRSs: ReplicaSet[]): boolean {
    if (sumActual(oldRSs) > 0) return true;
    for (const [uid, pods] of this.c.podsByReplicaSet(this.d.metadata.namespace, this.rsList)) {
      if (uid === newRS?.metadata.uid) continue;
      if (pods.some((p) => p.status?.phase !== 'Failed' && p.status?.phase !== 'Succeeded')) return true;
    }
    return false;
  }

  // ---- history ----

  /** Deletes the oldest fully scaled-down ReplicaSets beyond revisionHistoryLimit. */
  private async cleanup(oldRSs: ReplicaSet[]): Promise<void> {
    const limit = this.d.spec.revisionHistoryLimit;
    if (limit === undefined || limit === null) return;
    const cleanable = oldRSs.filter((rs) => !rs.metadata.deletionTimestamp);
    const diff = cleanable.length - limit;
    if (diff <= 0) return;
    cleanable.sort((a, b) => revisionOf(a) - revisionOf(b) || byCreation(a, b));
    for (const rs of cleanable.slice(0, diff)) {
      if ((rs.status?.replicas ?? 0) !== 0 || replicasOf(rs) !== 0 || (rs.metadata.generation ?? 0) > (rs.status?.observedGeneration ?? 0)) continue;
      try {
        await this.client.delete(RS, rs.metadata.namespace, rs.metadata.name!, { preconditions: { uid: rs.metadata.uid } });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }

  // ---- status ----

  private calculateStatus(newRS: ReplicaSet | undefined, oldRSs: ReplicaSet[]): DeploymentStatus {
    const d = this.d;
    const all = newRS ? [...oldRSs, newRS] : oldRSs;
    const available = sumAvailable(all);
    const status: DeploymentStatus = {
      observedGeneration: d.metadata.generation,
      replicas: sumActual(all),
      updatedReplicas: newRS ? newRS.status?.replicas ?? 0 : 0,
      readyReplicas: sumReady(all),
      availableReplicas: available,
      unavailableReplicas: Math.max(0, sumReplicas(all) - available),
    };
    if (d.status?.collisionCount !== undefined) status.collisionCount = d.status.collisionCount;
    let conditions = [...(d.status?.conditions ?? [])];
    conditions =
      available >= replicasOf(d) - maxUnavailable(d)
        ? setCondition(conditions, condition('Available', 'True', Reasons.MinimumReplicasAvailable, 'Deployment has minimum availability.'))
        : setCondition(conditions, condition('Available', 'False', Reasons.MinimumReplicasUnavailable, 'Deployment does not have minimum availability.'));
    status.conditions = conditions;
    return status;
  }

  /** syncDeploymentStatus: status without progress estimation (scaling, paused, deleted). */
  private async syncStatus(newRS: ReplicaSet | undefined, oldRSs: ReplicaSet[]): Promise<void> {
    const st = this.calculateStatus(newRS, oldRSs);
    if (!statusEqual(this.d.status, st)) await this.writeStatus(st);
  }

  private async syncRolloutStatus(newRS: ReplicaSet | undefined, oldRSs: ReplicaSet[]): Promise<void> {
    const d = this.d;
    const st = this.calculateStatus(newRS, oldRSs);
    let conditions = st.conditions ?? [];
    if (!hasProgressDeadline(d)) conditions = conditions.filter((c) => c.type !== 'Progressing');
    const cur = findCondition(d.status?.conditions, 'Progressing');
    const complete = st.replicas === st.updatedReplicas && cur?.reason === Reasons.NewReplicaSetAvailable;
    if (hasProgressDeadline(d) && !complete) {
      const rsName = newRS?.metadata.name;
      if (deploymentComplete(d, st)) {
        const msg = rsName ? `ReplicaSet "${rsName}" has successfully progressed.` : `Deployment "${d.metadata.name}" has successfully progressed.`;
        conditions = setCondition(conditions, condition('Progressing', 'True', Reasons.NewReplicaSetAvailable, msg));
      } else if (deploymentProgressing(d, st)) {
        const msg = rsName ? `ReplicaSet "${rsName}" is progressing.` : `Deployment "${d.metadata.name}" is progressing.`;
        const next = condition('Progressing', 'True', Reasons.ReplicaSetUpdated, msg);
        // Progress refreshes lastUpdateTime even when the reason stays the same.
        if (cur?.status === 'True') next.lastTransitionTime = cur.lastTransitionTime;
        conditions = [...conditions.filter((c) => c.type !== 'Progressing'), next];
      } else if (deploymentTimedOut(d, { ...st, conditions })) {
        const msg = rsName ? `ReplicaSet "${rsName}" has timed out progressing.` : `Deployment "${d.metadata.name}" has timed out progressing.`;
        conditions = setCondition(conditions, condition('Progressing', 'False', Reasons.ProgressDeadlineExceeded, msg));
      }
    }
    const failure = replicaFailure(newRS, oldRSs);
    conditions = failure ? setCondition(conditions, failure) : conditions.filter((c) => c.type !== 'ReplicaFailure');
    st.conditions = conditions;
    if (statusEqual(d.status, st)) {
      this.requeueIfStuck(st);
      return;
    }
    await this.writeStatus(st);
  }

  /** Without news, a stalled rollout must still be looked at when its deadline passes. */
  private requeueIfStuck(st: DeploymentStatus): void {
    const d = this.d;
    const cur = findCondition(d.status?.conditions, 'Progressing');
    if (!hasProgressDeadline(d) || !cur) return;
    if (deploymentComplete(d, st) || cur.reason === Reasons.ProgressDeadlineExceeded) return;
    const after = parseTime(cur.lastUpdateTime) + d.spec.progressDeadlineSeconds! * 1000 - Date.now();
    this.c.enqueueAfter(d, Math.max(after, 0) + 1000);
  }

  private async writeStatus(status: DeploymentStatus): Promise<void> {
    const updated = await this.client.update<Deployment>(DEPLOYMENTS, { ...this.d, status }, { subresource: 'status' });
    this.d = updated;
  }

  private async checkPausedConditions(): Promise<void> {
    const d = this.d;
    if (!hasProgressDeadline(d)) return;
    const cur = findCondition(d.status?.conditions, 'Progressing');
    if (cur?.reason === Reasons.ProgressDeadlineExceeded) return;
    const pausedNoted = cur?.reason === Reasons.DeploymentPaused;
    let next: WorkloadStatusCondition | undefined;
    if (d.spec.paused && !pausedNoted) next = condition('Progressing', 'Unknown', Reasons.DeploymentPaused, 'Deployment is paused');
    else if (!d.spec.paused && pausedNoted) next = condition('Progressing', 'Unknown', Reasons.DeploymentResumed, 'Deployment is resumed');
    if (next) await this.writeStatus({ ...d.status, conditions: setCondition(d.status?.conditions ?? [], next) });
  }

  private event(type: 'Normal' | 'Warning', reason: string, message: string): void {
    void this.c.events.record(this.d, type, reason, message).catch(() => undefined);
  }
}

/** The new ReplicaSet is at full size and fully available (IsSaturated). */
function isSaturated(d: Deployment, rs: ReplicaSet): boolean {
  const desired = replicasOf(d);
  return replicasOf(rs) === desired && annotationInt(rs, DESIRED_REPLICAS_ANNOTATION) === desired && (rs.status?.availableReplicas ?? 0) === desired;
}

/** A ReplicaSet's ReplicaFailure, the new one's first, as a Deployment condition. */
function replicaFailure(newRS: ReplicaSet | undefined, oldRSs: ReplicaSet[]): WorkloadStatusCondition | undefined {
  for (const rs of newRS ? [newRS, ...oldRSs] : oldRSs) {
    const c = findCondition(rs.status?.conditions, 'ReplicaFailure');
    if (c) return { type: 'ReplicaFailure', status: c.status, reason: c.reason, message: c.message, lastUpdateTime: c.lastTransitionTime, lastTransitionTime: c.lastTransitionTime };
  }
  return undefined;
}

function statusEqual(a: DeploymentStatus | undefined, b: DeploymentStatus): boolean {
  const norm = (s: DeploymentStatus | undefined) => ({
    observedGeneration: s?.observedGeneration ?? 0,
    replicas: s?.replicas ?? 0,
    updatedReplicas: s?.updatedReplicas ?? 0,
    readyReplicas: s?.readyReplicas ?? 0,
    availableReplicas: s?.availableReplicas ?? 0,
    unavailableReplicas: s?.unavailableReplicas ?? 0,
    collisionCount: s?.collisionCount,
    conditions: s?.conditions ?? [],
  });
  return semanticEqual(norm(a), norm(b));
}
