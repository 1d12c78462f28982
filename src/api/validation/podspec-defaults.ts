import { isRecord } from './meta.js';

/**
 * Pod spec defaulting as kube's SetDefaults_PodSpec, _Container, _Probe, _Volume and friends
 * (pkg/apis/core/v1/defaults.go). Pod templates in workloads get exactly this; bare Pods get it plus
 * defaultPodExtras.
 */

type Rec = Record<string, any>;

export const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS = 30;
export const DEFAULT_FILE_MODE = 0o644;
const DEFAULT_PROBE = { timeoutSeconds: 1, periodSeconds: 10, successThreshold: 1, failureThreshold: 3 };

function setIfAbsent(obj: Rec, key: string, value: unknown): void {
  if (obj[key] === undefined || obj[key] === null || obj[key] === '') obj[key] = value;
}

/** The tag kube's image-name parser yields: "latest" when neither tag nor digest is given. */
export function imageTag(image: string): string {
  const at = image.indexOf('@');
  const digest = at >= 0;
  const name = digest ? image.slice(0, at) : image;
  const colon = name.lastIndexOf(':');
  const tag = colon > name.lastIndexOf('/') ? name.slice(colon + 1) : '';
  if (tag) return tag;
  return digest ? '' : 'latest';
}

function defaultHTTPGet(action: unknown): void {
  if (!isRecord(action)) return;
  setIfAbsent(action, 'path', '/');
  setIfAbsent(action, 'scheme', 'HTTP');
}

function defaultProbe(probe: unknown): void {
  if (!isRecord(probe)) return;
  for (const [k, v] of Object.entries(DEFAULT_PROBE)) if (!probe[k]) probe[k] = v;
  defaultHTTPGet(probe.httpGet);
}

function defaultFieldRef(holder: unknown): void {
  if (isRecord(holder) && isRecord(holder.fieldRef)) setIfAbsent(holder.fieldRef, 'apiVersion', 'v1');
}

function defaultContainer(c: Rec): void {
  setIfAbsent(c, 'terminationMessagePath', '/dev/termination-log');
  setIfAbsent(c, 'terminationMessagePolicy', 'File');
  if (!c.imagePullPolicy) {
    // An unparsable (e.g. empty) image yields no tag in kube, hence IfNotPresent.
    const image = typeof c.image === 'string' ? c.image : '';
    c.imagePullPolicy = image && imageTag(image) === 'latest' ? 'Always' : 'IfNotPresent';
  }
  if (!isRecord(c.resources)) c.resources = {};
  for (const p of arr(c.ports)) if (isRecord(p)) setIfAbsent(p, 'protocol', 'TCP');
  for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) defaultProbe(c[probe]);
  if (isRecord(c.lifecycle)) for (const h of ['postStart', 'preStop']) if (isRecord(c.lifecycle[h])) defaultHTTPGet(c.lifecycle[h].httpGet);
  for (const e of arr(c.env)) if (isRecord(e)) defaultFieldRef(e.valueFrom);
}

/** The keys of VolumeSource, in the order kube's validateVolumeSource checks them. */
export const VOLUME_SOURCES = [
  'emptyDir', 'hostPath', 'gitRepo', 'gcePersistentDisk', 'awsElasticBlockStore', 'secret', 'nfs', 'iscsi', 'glusterfs',
  'flocker', 'persistentVolumeClaim', 'rbd', 'cinder', 'cephfs', 'quobyte', 'downwardAPI', 'fc', 'flexVolume', 'configMap',
  'azureFile', 'vsphereVolume', 'photonPersistentDisk', 'portworxVolume', 'azureDisk', 'storageos', 'projected', 'scaleIO',
  'csi', 'ephemeral', 'image',
] as const;

function defaultVolume(v: Rec): void {
  if (!VOLUME_SOURCES.some((k) => v[k] !== undefined && v[k] !== null)) v.emptyDir = {};
  for (const k of ['secret', 'configMap', 'downwardAPI', 'projected']) {
    if (isRecord(v[k]) && v[k].defaultMode === undefined) v[k].defaultMode = DEFAULT_FILE_MODE;
  }
  if (isRecord(v.hostPath) && v.hostPath.type === undefined) v.hostPath.type = '';
  if (isRecord(v.downwardAPI)) for (const item of arr(v.downwardAPI.items)) defaultFieldRef(item);
  if (isRecord(v.projected)) {
    for (const src of arr(v.projected.sources)) {
      if (isRecord(src) && isRecord(src.downwardAPI)) for (const item of arr(src.downwardAPI.items)) defaultFieldRef(item);
      if (isRecord(src) && isRecord(src.serviceAccountToken)) setIfAbsent(src.serviceAccountToken, 'expirationSeconds', 3600);
    }
  }
}

export function defaultPodSpec(spec: Rec): void {
  setIfAbsent(spec, 'dnsPolicy', 'ClusterFirst');
  setIfAbsent(spec, 'restartPolicy', 'Always');
  if (!isRecord(spec.securityContext)) spec.securityContext = {};
  if (spec.terminationGracePeriodSeconds === undefined || spec.terminationGracePeriodSeconds === null) {
    spec.terminationGracePeriodSeconds = DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS;
  }
  setIfAbsent(spec, 'schedulerName', 'default-scheduler');
  for (const c of [...arr(spec.containers), ...arr(spec.initContainers)]) if (isRecord(c)) defaultContainer(c);
  for (const v of arr(spec.volumes)) if (isRecord(v)) defaultVolume(v);
}

/**
 * What a bare Pod gets beyond its spec defaults: SetDefaults_Pod (enableServiceLinks, requests copied
 * from limits, host ports under hostNetwork) and the fields the Priority and ServiceAccount admission
 * plugins fill on every pod without further lookups.
 */
export function defaultPodExtras(spec: Rec): void {
  if (spec.enableServiceLinks === undefined || spec.enableServiceLinks === null) spec.enableServiceLinks = true;
  for (const c of [...arr(spec.containers), ...arr(spec.initContainers)]) {
    if (!isRecord(c) || !isRecord(c.resources) || !isRecord(c.resources.limits)) continue;
    const requests: Rec = isRecord(c.resources.requests) ? c.resources.requests : (c.resources.requests = {});
    for (const [k, v] of Object.entries(c.resources.limits)) if (requests[k] === undefined) requests[k] = v;
  }
  if (spec.hostNetwork === true) {
    for (const c of [...arr(spec.containers), ...arr(spec.initContainers)]) {
      for (const p of arr(isRecord(c) ? c.ports : undefined)) if (isRecord(p) && !p.hostPort) p.hostPort = p.containerPort;
    }
  }
  if (spec.priority === undefined && !spec.priorityClassName) spec.priority = 0;
  if (spec.priority !== undefined) setIfAbsent(spec, 'preemptionPolicy', 'PreemptLowerPriority');
  const sa = spec.serviceAccountName || spec.serviceAccount || 'default';
  spec.serviceAccountName = sa;
  spec.serviceAccount = sa;
}

export function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}
