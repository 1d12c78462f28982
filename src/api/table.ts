import { formatLabels, fromLabelSelector, selectorToString, type LabelSelectorObject } from './labels.js';
import { formatQuantity, tryParseQuantity } from './quantity.js';
import type { ResourceDef } from './resources.js';
import { parseApiVersion, type KubeObject, type ListMeta, type ObjectMeta } from './types.js';

/**
 * Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for with
 * `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.
 *
 * Built-in kinds get the columns of Kubernetes' printers (pkg/printers/internalversion); like the
 * API server, every row carries the wide (priority 1) cells too and kubectl hides them unless
 * `-o wide`. Built-in kinds without a printer (Role, ClusterRole, CRDs, ...) get kube's default
 * convertor, NAME and CREATED AT. Custom resources get NAME plus their CRD's additionalPrinterColumns,
 * or AGE when it declares none.
 */

export interface TableColumnDefinition {
  name: string;
  type: string;
  format: string;
  description: string;
  priority: number;
}

export interface TableRowCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export interface TableRow {
  cells: unknown[];
  conditions?: TableRowCondition[];
  object?: unknown;
}

export interface Table {
  kind: 'Table';
  apiVersion: 'meta.k8s.io/v1';
  metadata: ListMeta;
  columnDefinitions: TableColumnDefinition[];
  rows: TableRow[];
}

/** A CRD version's additionalPrinterColumns entry. */
export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  description?: string;
  priority?: number;
  format?: string;
}

export type IncludeObject = 'None' | 'Metadata' | 'Object';

export interface TableOptions {
  /** What each row's `object` holds; kube's default is Metadata (a PartialObjectMetadata). */
  includeObject?: IncludeObject;
  /** The clock AGE columns are measured against. */
  now?: Date;
  resourceVersion?: string;
  continue?: string;
  remainingItemCount?: number;
  /** For custom resources: the served version's additionalPrinterColumns. */
  crdColumns?: PrinterColumn[];
  /** TableOptions.noHeaders: omit column definitions (watch events after the first). */
  noHeaders?: boolean;
}

export function toTable(def: ResourceDef, objects: KubeObject[], opts: TableOptions = {}): Table {
  const now = (opts.now ?? new Date()).getTime();
  const printer = printerFor(def, opts.crdColumns);
  const includeObject = opts.includeObject ?? 'Metadata';
  const rows = objects.map((obj): TableRow => {
    const printed = printer.row(obj, now);
    const row: TableRow = { cells: printed.cells };
    if (printed.conditions) row.conditions = printed.conditions;
    if (includeObject === 'Object') row.object = obj;
    else if (includeObject === 'Metadata') row.object = partialObjectMetadata(obj.metadata);
    return row;
  });
  const metadata: ListMeta = {};
  if (opts.resourceVersion !== undefined) metadata.resourceVersion = opts.resourceVersion;
  if (opts.continue) metadata.continue = opts.continue;
  if (opts.remainingItemCount !== undefined) metadata.remainingItemCount = opts.remainingItemCount;
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata,
    columnDefinitions: opts.noHeaders ? [] : printer.columns,
    rows,
  };
}

export function partialObjectMetadata(metadata: ObjectMeta): { kind: 'PartialObjectMetadata'; apiVersion: 'meta.k8s.io/v1'; metadata: ObjectMeta } {
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata };
}

// ---- durations (apimachinery util/duration.HumanDuration) ----

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/** duration.HumanDuration: ~2-3 significant figures, e.g. "45s", "3m2s", "5h10m", "2d3h", "45d", "3y20d". */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / SECOND);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.trunc(ms / MINUTE);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.trunc(ms / HOUR);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${Math.trunc(hours / 24)}d` : `${Math.trunc(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const dy = Math.trunc(hours / 24) % 365;
    const y = Math.trunc(hours / 24 / 365);
    return dy === 0 ? `${y}y` : `${y}y${dy}d`;
  }
  return `${Math.trunc(hours / 24 / 365)}y`;
}

const RFC3339_RE = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/** Epoch milliseconds of an RFC 3339 timestamp; undefined when unset, NaN when malformed. */
function timestampMs(v: unknown): number | undefined {
  if (typeof v !== 'string' || v === '' || v === 'null') return undefined;
  return RFC3339_RE.test(v) ? Date.parse(v) : NaN;
}

/** translateTimestampSince: "<unknown>" for an unset time. */
function since(v: unknown, now: number): string {
  const t = timestampMs(v);
  if (t === undefined || Number.isNaN(t)) return '<unknown>';
  return humanDuration(now - t);
}

// ---- reading loosely typed objects ----

type Obj = Record<string, unknown>;

function rec(v: unknown): Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {};
}

function arr(v: unknown): Obj[] {
  return Array.isArray(v) ? v.map(rec) : [];
}

function strs(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

function int(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? Math.trunc(v) : 0;
}

function count(v: unknown): number {
  if (Array.isArray(v)) return v.length;
  return v !== null && typeof v === 'object' ? Object.keys(v).length : 0;
}

/** Quantity.String() of a stored quantity; a missing one prints as the zero quantity. */
function quantityString(v: unknown): string {
  if (typeof v !== 'string' && typeof v !== 'number') return '0';
  const q = tryParseQuantity(v);
  return q ? formatQuantity(q) : String(v);
}

// ---- columns ----

interface Printed {
  cells: unknown[];
  conditions?: TableRowCondition[];
}

interface Printer {
  columns: TableColumnDefinition[];
  row(obj: KubeObject, now: number): Printed;
}

function col(name: string, type: string, description: string, priority = 0, format = ''): TableColumnDefinition {
  return { name, type, format, description, priority };
}

// Column descriptions come from the API's field documentation, as kube's printers take them from
// SwaggerDoc(); the metadata ones are verbatim, the others keep their first sentence.
const NAME_DESC =
  'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names';
const CREATED_DESC =
  'CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata';
const CONTAINERS_DESC = 'Names of each container in the template.';
const IMAGES_DESC = 'Images referenced by each container in the template.';
const SELECTOR_DESC = 'Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.';

const nameCol = (): TableColumnDefinition => col('Name', 'string', NAME_DESC, 0, 'name');
const ageCol = (): TableColumnDefinition => col('Age', 'string', CREATED_DESC);
const age = (obj: KubeObject, now: number): string => since(obj.metadata.creationTimestamp, now);
const name = (obj: KubeObject): string => obj.metadata.name ?? '';

/** layoutContainerCells: comma-joined container names and images. */
function containerCells(podSpec: unknown): [string, string] {
  const containers = arr(rec(podSpec).containers);
  return [containers.map((c) => str(c.name)).join(','), containers.map((c) => str(c.image)).join(',')];
}

/** metav1.FormatLabelSelector. */
function formatLabelSelector(sel: unknown): string {
  try {
    const s = selectorToString(fromLabelSelector(sel as LabelSelectorObject | null | undefined));
    return s === '' ? '<none>' : s;
  } catch {
    return '<error>';
  }
}

// ---- pods ----

const isRestartable = (c: Obj | undefined): boolean => c?.restartPolicy === 'Always';

function hasCondition(conditions: Obj[], type: string): boolean {
  return conditions.some((c) => c.type === type && c.status === 'True');
}

function laterFinish(current: number | undefined, status: Obj): number | undefined {
  const t = timestampMs(rec(rec(status.lastState).terminated).finishedAt);
  if (t === undefined || Number.isNaN(t)) return current;
  return current === undefined || t > current ? t : current;
}

function podRow(pod: KubeObject, now: number): Printed {
  const spec = rec(pod.spec);
  const status = rec(pod.status);
  const conditions = arr(status.conditions);
  const initSpecs = arr(spec.initContainers);
  const initByName = new Map(initSpecs.map((c) => [str(c.name), c]));

  let restarts = 0;
  let restartableInitRestarts = 0;
  const totalContainers = arr(spec.containers).length + initSpecs.filter(isRestartable).length;
  let readyContainers = 0;
  let lastRestart: number | undefined;
  let lastRestartableInitRestart: number | undefined;

  const phase = str(status.phase);
  let reason = str(status.reason) || phase;
  if (conditions.some((c) => c.type === 'PodScheduled' && c.reason === 'SchedulingGated')) reason = 'SchedulingGated';

  let rowConditions: TableRowCondition[] | undefined;
  if (phase === 'Succeeded') {
    rowConditions = [{ type: 'Completed', status: 'True', reason: 'Succeeded', message: 'The pod has completed successfully.' }];
  } else if (phase === 'Failed') {
    rowConditions = [{ type: 'Completed', status: 'True', reason: 'Failed', message: 'The pod failed.' }];
  }

  let initializing = false;
  const initStatuses = arr(status.initContainerStatuses);
  for (let i = 0; i < initStatuses.length; i++) {
    const c = initStatuses[i]!;
    const restartable = isRestartable(initByName.get(str(c.name)));
    restarts += int(c.restartCount);
    lastRestart = laterFinish(lastRestart, c);
    if (restartable) {
      restartableInitRestarts += int(c.restartCount);
      lastRestartableInitRestart = laterFinish(lastRestartableInitRestart, c);
    }
    const state = rec(c.state);
    const terminated = state.terminated === undefined || state.terminated === null ? undefined : rec(state.terminated);
    const waiting = state.waiting === undefined || state.waiting === null ? undefined : rec(state.waiting);
    if (terminated && int(terminated.exitCode) === 0) continue;
    if (restartable && c.started === true) {
      if (c.ready === true) readyContainers++;
      continue;
    }
    if (terminated) {
      if (str(terminated.reason) === '') {
        reason = int(terminated.signal) !== 0 ? `Init:Signal:${int(terminated.signal)}` : `Init:ExitCode:${int(terminated.exitCode)}`;
      } else {
        reason = `Init:${str(terminated.reason)}`;
      }
    } else if (waiting && str(waiting.reason) !== '' && waiting.reason !== 'PodInitializing') {
      reason = `Init:${str(waiting.reason)}`;
    } else {
      reason = `Init:${i}/${initSpecs.length}`;
    }
    initializing = true;
    break;
  }

  if (!initializing || hasCondition(conditions, 'Initialized')) {
    restarts = restartableInitRestarts;
    lastRestart = lastRestartableInitRestart;
    let hasRunning = false;
    const statuses = arr(status.containerStatuses);
    for (let i = statuses.length - 1; i >= 0; i--) {
      const c = statuses[i]!;
      restarts += int(c.restartCount);
      lastRestart = laterFinish(lastRestart, c);
      const state = rec(c.state);
      const terminated = state.terminated === undefined || state.terminated === null ? undefined : rec(state.terminated);
      const waiting = rec(state.waiting);
      if (str(waiting.reason) !== '') {
        reason = str(waiting.reason);
      } else if (terminated && str(terminated.reason) !== '') {
        reason = str(terminated.reason);
      } else if (terminated) {
        reason = int(terminated.signal) !== 0 ? `Signal:${int(terminated.signal)}` : `ExitCode:${int(terminated.exitCode)}`;
      } else if (c.ready === true && state.running !== undefined && state.running !== null) {
        hasRunning = true;
        readyContainers++;
      }
    }
    if (reason === 'Completed' && hasRunning) reason = hasCondition(conditions, 'Ready') ? 'Running' : 'NotReady';
  }

  if (pod.metadata.deletionTimestamp && status.reason === 'NodeLost') reason = 'Unknown';
  else if (pod.metadata.deletionTimestamp && phase !== 'Succeeded' && phase !== 'Failed') reason = 'Terminating';

  let restartsCell = String(restarts);
  if (restarts !== 0 && lastRestart !== undefined) restartsCell = `${restarts} (${humanDuration(now - lastRestart)} ago)`;

  const podIPs = arr(status.podIPs);
  const podIP = str(podIPs[0]?.ip) || str(status.podIP) || '<none>';
  const readinessGates = arr(spec.readinessGates);
  let gates = '<none>';
  if (readinessGates.length > 0) {
    const trueCount = readinessGates.filter((g) => conditions.find((c) => c.type === g.conditionType)?.status === 'True').length;
    gates = `${trueCount}/${readinessGates.length}`;
  }
  return {
    cells: [
      name(pod),
      `${readyContainers}/${totalContainers}`,
      reason,
      restartsCell,
      age(pod, now),
      podIP,
      str(spec.nodeName) || '<none>',
      str(status.nominatedNodeName) || '<none>',
      gates,
    ],
    ...(rowConditions ? { conditions: rowConditions } : {}),
  };
}

// ---- nodes ----

const NODE_ROLE_PREFIX = 'node-role.kubernetes.io/';
const NODE_ROLE_LABEL = 'kubernetes.io/role';

function nodeRoles(labels: Record<string, string> | undefined): string[] {
  const roles = new Set<string>();
  for (const [k, v] of Object.entries(labels ?? {})) {
    if (k.startsWith(NODE_ROLE_PREFIX)) {
      const role = k.slice(NODE_ROLE_PREFIX.length);
      if (role) roles.add(role);
    } else if (k === NODE_ROLE_LABEL && v !== '') {
      roles.add(v);
    }
  }
  return [...roles].sort();
}

function nodeAddress(status: Obj, type: string): string {
  return str(arr(status.addresses).find((a) => a.type === type)?.address) || '<none>';
}

function nodeRow(node: KubeObject, now: number): Printed {
  const status = rec(node.status);
  const info = rec(status.nodeInfo);
  let ready: Obj | undefined;
  for (const c of arr(status.conditions)) if (c.type === 'Ready') ready = c;
  const states = [ready ? (ready.status === 'True' ? 'Ready' : 'NotReady') : 'Unknown'];
  if (rec(node.spec).unschedulable === true) states.push('SchedulingDisabled');
  const roles = nodeRoles(node.metadata.labels).join(',') || '<none>';
  return {
    cells: [
      name(node),
      states.join(','),
      roles,
      age(node, now),
      str(info.kubeletVersion),
      nodeAddress(status, 'InternalIP'),
      nodeAddress(status, 'ExternalIP'),
      str(info.osImage) || '<unknown>',
      str(info.kernelVersion) || '<unknown>',
      str(info.containerRuntimeVersion) || '<unknown>',
    ],
  };
}

// ---- services and endpoints ----

function loadBalancerIngress(status: Obj): string[] {
  const out = new Set<string>();
  for (const ing of arr(rec(rec(status).loadBalancer).ingress)) {
    if (str(ing.ip)) out.add(str(ing.ip));
    else if (str(ing.hostname)) out.add(str(ing.hostname));
  }
  return [...out].sort();
}

function serviceExternalIP(spec: Obj, status: Obj): string {
  const externalIPs = strs(spec.externalIPs);
  switch (spec.type) {
    case 'ClusterIP':
    case 'NodePort':
      return externalIPs.length > 0 ? externalIPs.join(',') : '<none>';
    case 'LoadBalancer': {
      const lb = loadBalancerIngress(status);
      if (externalIPs.length > 0) return [...lb, ...externalIPs].join(',');
      return lb.length > 0 ? lb.join(',') : '<pending>';
    }
    case 'ExternalName':
      return str(spec.externalName);
    default:
      return '<unknown>';
  }
}

function servicePorts(spec: Obj): string {
  const ports = arr(spec.ports).map((p) =>
    int(p.nodePort) > 0 ? `${int(p.port)}:${int(p.nodePort)}/${str(p.protocol)}` : `${int(p.port)}/${str(p.protocol)}`,
  );
  return ports.length > 0 ? ports.join(',') : '<none>';
}

function serviceRow(svc: KubeObject, now: number): Printed {
  const spec = rec(svc.spec);
  const clusterIP = strs(spec.clusterIPs)[0] ?? (str(spec.clusterIP) || '<none>');
  return {
    cells: [
      name(svc),
      str(spec.type),
      clusterIP,
      serviceExternalIP(spec, rec(svc.status)),
      servicePorts(spec),
      age(svc, now),
      formatLabels(spec.selector as Record<string, string> | undefined),
    ],
  };
}

function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

const ENDPOINTS_SHOWN = 3;

/** formatEndpoints: up to three addresses, then "+ N more...". */
function formatEndpoints(subsets: Obj[]): string {
  if (subsets.length === 0) return '<none>';
  const list: string[] = [];
  let more = false;
  let total = 0;
  const push = (s: string): void => {
    if (list.length === ENDPOINTS_SHOWN) more = true;
    else list.push(s);
  };
  for (const ss of subsets) {
    const addresses = arr(ss.addresses);
    const ports = arr(ss.ports);
    if (ports.length === 0) {
      total += addresses.length;
      for (const a of addresses) {
        push(str(a.ip));
        if (more) break;
      }
      continue;
    }
    for (const p of ports) {
      total += addresses.length;
      for (const a of addresses) {
        push(joinHostPort(str(a.ip), int(p.port)));
        if (more) break;
      }
    }
  }
  const joined = list.join(',');
  return more ? `${joined} + ${total - ENDPOINTS_SHOWN} more...` : joined;
}

// ---- events (core/v1 and events.k8s.io/v1) ----

interface EventView {
  involvedObject: Obj;
  type: string;
  reason: string;
  message: string;
  firstTimestamp: unknown;
  lastTimestamp: unknown;
  eventTime: unknown;
  count: number;
  series?: Obj;
  source: Obj;
  reportingController: string;
  reportingInstance: string;
}

function coreEvent(ev: KubeObject): EventView {
  return {
    involvedObject: rec(ev.involvedObject),
    type: str(ev.type),
    reason: str(ev.reason),
    message: str(ev.message),
    firstTimestamp: ev.firstTimestamp,
    lastTimestamp: ev.lastTimestamp,
    eventTime: ev.eventTime,
    count: int(ev.count),
    ...(ev.series ? { series: rec(ev.series) } : {}),
    source: rec(ev.source),
    reportingController: str(ev.reportingComponent),
    reportingInstance: str(ev.reportingInstance),
  };
}

function eventsV1Event(ev: KubeObject): EventView {
  return {
    involvedObject: rec(ev.regarding),
    type: str(ev.type),
    reason: str(ev.reason),
    message: str(ev.note),
    firstTimestamp: ev.deprecatedFirstTimestamp,
    lastTimestamp: ev.deprecatedLastTimestamp,
    eventTime: ev.eventTime,
    count: int(ev.deprecatedCount),
    ...(ev.series ? { series: rec(ev.series) } : {}),
    source: rec(ev.deprecatedSource),
    reportingController: str(ev.reportingController),
    reportingInstance: str(ev.reportingInstance),
  };
}

function eventRow(obj: KubeObject, ev: EventView, now: number): Printed {
  let first = since(ev.firstTimestamp, now);
  if (timestampMs(ev.firstTimestamp) === undefined) first = since(ev.eventTime, now);
  let last = timestampMs(ev.lastTimestamp) === undefined ? first : since(ev.lastTimestamp, now);
  let n = ev.count;
  if (ev.series) {
    last = since(ev.series.lastObservedTime, now);
    n = int(ev.series.count);
  } else if (n === 0) {
    n = 1;
  }
  const kind = str(ev.involvedObject.kind).toLowerCase();
  const target = str(ev.involvedObject.name) ? `${kind}/${str(ev.involvedObject.name)}` : kind;
  const component = str(ev.source.component) || ev.reportingController;
  const host = str(ev.source.host) || ev.reportingInstance;
  return {
    cells: [
      last,
      ev.type,
      ev.reason,
      target,
      str(ev.involvedObject.fieldPath),
      host ? `${component}, ${host}` : component,
      ev.message.trim(),
      first,
      n,
      name(obj),
    ],
  };
}

// ---- storage ----

const ACCESS_MODES: Array<[string, string]> = [
  ['ReadWriteOnce', 'RWO'],
  ['ReadOnlyMany', 'ROX'],
  ['ReadWriteMany', 'RWX'],
  ['ReadWriteOncePod', 'RWOP'],
];

function accessModes(v: unknown): string {
  const modes = strs(v);
  return ACCESS_MODES.filter(([m]) => modes.includes(m))
    .map(([, short]) => short)
    .join(',');
}

const BETA_STORAGE_CLASS = 'volume.beta.kubernetes.io/storage-class';

function storageClass(obj: KubeObject, spec: Obj): string {
  const annotations = obj.metadata.annotations ?? {};
  if (Object.prototype.hasOwnProperty.call(annotations, BETA_STORAGE_CLASS)) return annotations[BETA_STORAGE_CLASS]!;
  return str(spec.storageClassName);
}

function pvRow(pv: KubeObject, now: number): Printed {
  const spec = rec(pv.spec);
  const status = rec(pv.status);
  const claimRef = spec.claimRef ? `${str(rec(spec.claimRef).namespace)}/${str(rec(spec.claimRef).name)}` : '';
  return {
    cells: [
      name(pv),
      quantityString(rec(spec.capacity).storage),
      accessModes(spec.accessModes),
      str(spec.persistentVolumeReclaimPolicy),
      pv.metadata.deletionTimestamp ? 'Terminating' : str(status.phase),
      claimRef,
      storageClass(pv, spec),
      typeof spec.volumeAttributesClassName === 'string' ? spec.volumeAttributesClassName : '<unset>',
      str(status.reason),
      age(pv, now),
      typeof spec.volumeMode === 'string' ? spec.volumeMode : '<unset>',
    ],
  };
}

function pvcRow(pvc: KubeObject, now: number): Printed {
  const spec = rec(pvc.spec);
  const status = rec(pvc.status);
  const bound = str(spec.volumeName) !== '';
  return {
    cells: [
      name(pvc),
      pvc.metadata.deletionTimestamp ? 'Terminating' : str(status.phase),
      str(spec.volumeName),
      bound ? quantityString(rec(status.capacity).storage) : '',
      bound ? accessModes(status.accessModes) : '',
      storageClass(pvc, spec),
      typeof spec.volumeAttributesClassName === 'string' ? spec.volumeAttributesClassName : '<unset>',
      age(pvc, now),
      typeof spec.volumeMode === 'string' ? spec.volumeMode : '<unset>',
    ],
  };
}

// ---- rbac ----

function bindingRow(binding: KubeObject, now: number): Printed {
  const roleRef = rec(binding.roleRef);
  const users: string[] = [];
  const groups: string[] = [];
  const serviceAccounts: string[] = [];
  for (const s of arr(binding.subjects)) {
    if (s.kind === 'ServiceAccount') serviceAccounts.push(`${str(s.namespace)}/${str(s.name)}`);
    else if (s.kind === 'User') users.push(str(s.name));
    else if (s.kind === 'Group') groups.push(str(s.name));
  }
  return {
    cells: [name(binding), `${str(roleRef.kind)}/${str(roleRef.name)}`, age(binding, now), users.join(', '), groups.join(', '), serviceAccounts.join(', ')],
  };
}

// ---- certificates ----

function csrCondition(status: Obj): string {
  const types = new Set(arr(status.conditions).map((c) => str(c.type)));
  let out = types.has('Denied') ? 'Denied' : types.has('Approved') ? 'Approved' : 'Pending';
  if (types.has('Failed')) out += ',Failed';
  if (str(status.certificate).length > 0) out += ',Issued';
  return out;
}

function csrRow(csr: KubeObject, now: number): Printed {
  const spec = rec(csr.spec);
  const expiration = typeof spec.expirationSeconds === 'number' ? humanDuration(spec.expirationSeconds * SECOND) : '<none>';
  return { cells: [name(csr), age(csr, now), str(spec.signerName) || '<none>', str(spec.username), expiration, csrCondition(rec(csr.status))] };
}

// ---- apps ----

function controllerRevisionRow(cr: KubeObject, now: number): Printed {
  const owner = (cr.metadata.ownerReferences ?? []).find((o) => o.controller === true);
  let controller = '<none>';
  if (owner) {
    const { group } = parseApiVersion(owner.apiVersion);
    const groupKind = group && owner.kind ? `${owner.kind}.${group}` : owner.kind;
    controller = groupKind ? `${groupKind.toLowerCase()}/${owner.name}` : owner.name;
  }
  return { cells: [name(cr), controller, int(cr.revision), age(cr, now)] };
}

function deploymentRow(d: KubeObject, now: number): Printed {
  const spec = rec(d.spec);
  const status = rec(d.status);
  let selector: string;
  try {
    selector = selectorToString(fromLabelSelector(spec.selector as LabelSelectorObject | null | undefined));
  } catch {
    selector = '<invalid>';
  }
  const [containers, images] = containerCells(rec(spec.template).spec);
  return {
    cells: [name(d), `${int(status.readyReplicas)}/${int(spec.replicas)}`, int(status.updatedReplicas), int(status.availableReplicas), age(d, now), containers, images, selector],
  };
}

function replicaSetRow(rs: KubeObject, now: number): Printed {
  const spec = rec(rs.spec);
  const status = rec(rs.status);
  const [containers, images] = containerCells(rec(spec.template).spec);
  return {
    cells: [name(rs), int(spec.replicas), int(status.replicas), int(status.readyReplicas), age(rs, now), containers, images, formatLabelSelector(spec.selector)],
  };
}

function daemonSetRow(ds: KubeObject, now: number): Printed {
  const spec = rec(ds.spec);
  const status = rec(ds.status);
  const podSpec = rec(rec(spec.template).spec);
  const [containers, images] = containerCells(podSpec);
  return {
    cells: [
      name(ds),
      int(status.desiredNumberScheduled),
      int(status.currentNumberScheduled),
      int(status.numberReady),
      int(status.updatedNumberScheduled),
      int(status.numberAvailable),
      formatLabels(podSpec.nodeSelector as Record<string, string> | undefined),
      age(ds, now),
      containers,
      images,
      formatLabelSelector(spec.selector),
    ],
  };
}

// ---- the printer table ----

const BINDING_COLUMNS = (what: string): TableColumnDefinition[] => [
  nameCol(),
  col('Role', 'string', 'RoleRef can only reference a ClusterRole in the global namespace.'),
  ageCol(),
  col('Users', 'string', `Users in the ${what}`, 1),
  col('Groups', 'string', `Groups in the ${what}`, 1),
  col('ServiceAccounts', 'string', `ServiceAccounts in the ${what}`, 1),
];

const EVENT_COLUMNS: TableColumnDefinition[] = [
  col('Last Seen', 'string', 'The time at which the most recent occurrence of this event was recorded.'),
  col('Type', 'string', 'Type of this event (Normal, Warning), new types could be added in the future'),
  col('Reason', 'string', "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
  col('Object', 'string', 'The object that this event is about.'),
  col('Subobject', 'string', 'If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].', 1),
  col('Source', 'string', 'The component reporting this event. Should be a short machine understandable string.', 1),
  col('Message', 'string', 'A human-readable description of the status of this operation.'),
  col('First Seen', 'string', 'The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)', 1),
  col('Count', 'string', 'The number of times this event has occurred.', 1),
  col('Name', 'string', NAME_DESC, 1, 'name'),
];

const BUILTIN_PRINTERS: Record<string, Printer> = {
  '/Pod': {
    columns: [
      nameCol(),
      col('Ready', 'string', 'The aggregate readiness state of this pod for accepting traffic.'),
      col('Status', 'string', 'The aggregate status of the containers in this pod.'),
      col('Restarts', 'string', 'The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.'),
      ageCol(),
      col('IP', 'string', 'podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.', 1),
      col('Node', 'string', 'NodeName indicates in which node this pod is scheduled.', 1),
      col('Nominated Node', 'string', 'nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.', 1),
      col('Readiness Gates', 'string', 'If specified, all readiness gates will be evaluated for pod readiness.', 1),
    ],
    row: podRow,
  },
  '/Node': {
    columns: [
      nameCol(),
      col('Status', 'string', 'The status of the node'),
      col('Roles', 'string', 'The roles of the node'),
      ageCol(),
      col('Version', 'string', 'Kubelet Version reported by the node.'),
      col('Internal-IP', 'string', 'List of addresses reachable to the node. Queried from cloud provider, if available.', 1),
      col('External-IP', 'string', 'List of addresses reachable to the node. Queried from cloud provider, if available.', 1),
      col('OS-Image', 'string', 'OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).', 1),
      col('Kernel-Version', 'string', "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
      col('Container-Runtime', 'string', 'ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).', 1),
    ],
    row: nodeRow,
  },
  '/Namespace': {
    columns: [nameCol(), col('Status', 'string', 'The status of the namespace'), ageCol()],
    row: (o, now) => ({ cells: [name(o), str(rec(o.status).phase), age(o, now)] }),
  },
  '/Service': {
    columns: [
      nameCol(),
      col('Type', 'string', 'type determines how the Service is exposed. Defaults to ClusterIP.'),
      col('Cluster-IP', 'string', 'clusterIP is the IP address of the service and is usually assigned randomly.'),
      col('External-IP', 'string', 'externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.'),
      col('Port(s)', 'string', 'The list of ports that are exposed by this service.'),
      ageCol(),
      col('Selector', 'string', 'Route service traffic to pods with label keys and values matching this selector.', 1),
    ],
    row: serviceRow,
  },
  '/Endpoints': {
    columns: [nameCol(), col('Endpoints', 'string', 'The set of all endpoints is the union of all subsets.'), ageCol()],
    row: (o, now) => ({ cells: [name(o), formatEndpoints(arr(o.subsets)), age(o, now)] }),
  },
  '/ConfigMap': {
    columns: [nameCol(), col('Data', 'string', 'Data contains the configuration data.'), ageCol()],
    row: (o, now) => ({ cells: [name(o), count(o.data) + count(o.binaryData), age(o, now)] }),
  },
  '/Secret': {
    columns: [
      nameCol(),
      col('Type', 'string', 'Used to facilitate programmatic handling of secret data.'),
      col('Data', 'string', 'Data contains the secret data.'),
      ageCol(),
    ],
    row: (o, now) => ({ cells: [name(o), str(o.type), count(o.data), age(o, now)] }),
  },
  '/Event': { columns: EVENT_COLUMNS, row: (o, now) => eventRow(o, coreEvent(o), now) },
  'events.k8s.io/Event': { columns: EVENT_COLUMNS, row: (o, now) => eventRow(o, eventsV1Event(o), now) },
  '/ServiceAccount': {
    columns: [nameCol(), col('Secrets', 'string', 'Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.'), ageCol()],
    row: (o, now) => ({ cells: [name(o), count(o.secrets), age(o, now)] }),
  },
  '/PersistentVolume': {
    columns: [
      nameCol(),
      col('Capacity', 'string', "capacity is the description of the persistent volume's resources and capacity."),
      col('Access Modes', 'string', 'accessModes contains all ways the volume can be mounted.'),
      col('Reclaim Policy', 'string', 'persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.'),
      col('Status', 'string', 'phase indicates if a volume is available, bound to a claim, or released by a claim.'),
      col('Claim', 'string', 'claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.'),
      col('StorageClass', 'string', 'StorageClass of the pv'),
      col('VolumeAttributesClass', 'string', 'VolumeAttributesClass of the pv'),
      col('Reason', 'string', 'reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.'),
      ageCol(),
      col('VolumeMode', 'string', 'volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.', 1),
    ],
    row: pvRow,
  },
  '/PersistentVolumeClaim': {
    columns: [
      nameCol(),
      col('Status', 'string', 'phase represents the current phase of PersistentVolumeClaim.'),
      col('Volume', 'string', 'volumeName is the binding reference to the PersistentVolume backing this claim.'),
      col('Capacity', 'string', 'capacity represents the actual resources of the underlying volume.'),
      col('Access Modes', 'string', 'accessModes contains the actual access modes the volume backing the PVC has.'),
      col('StorageClass', 'string', 'StorageClass of the pvc'),
      col('VolumeAttributesClass', 'string', 'VolumeAttributesClass of the pvc'),
      ageCol(),
      col('VolumeMode', 'string', 'volumeMode defines what type of volume is required by the claim.', 1),
    ],
    row: pvcRow,
  },
  'coordination.k8s.io/Lease': {
    columns: [nameCol(), col('Holder', 'string', 'holderIdentity contains the identity of the holder of a current lease.'), ageCol()],
    row: (o, now) => ({ cells: [name(o), str(rec(o.spec).holderIdentity), age(o, now)] }),
  },
  'node.k8s.io/RuntimeClass': {
    // kube takes this description from a field ObjectMeta does not have, so it is empty.
    columns: [nameCol(), col('Handler', 'string', ''), ageCol()],
    row: (o, now) => ({ cells: [name(o), str(o.handler), age(o, now)] }),
  },
  'apps/Deployment': {
    columns: [
      nameCol(),
      col('Ready', 'string', 'Number of the pod with ready state'),
      col('Up-to-date', 'string', 'Total number of non-terminating pods targeted by this deployment that have the desired template spec.'),
      col('Available', 'string', 'Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.'),
      ageCol(),
      col('Containers', 'string', CONTAINERS_DESC, 1),
      col('Images', 'string', IMAGES_DESC, 1),
      col('Selector', 'string', SELECTOR_DESC, 1),
    ],
    row: deploymentRow,
  },
  'apps/ReplicaSet': {
    columns: [
      nameCol(),
      col('Desired', 'integer', 'Replicas is the number of desired pods.'),
      col('Current', 'integer', 'Replicas is the most recently observed number of non-terminating pods.'),
      col('Ready', 'integer', 'The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.'),
      ageCol(),
      col('Containers', 'string', CONTAINERS_DESC, 1),
      col('Images', 'string', IMAGES_DESC, 1),
      col('Selector', 'string', 'Selector is a label query over pods that should match the replica count.', 1),
    ],
    row: replicaSetRow,
  },
  'apps/DaemonSet': {
    columns: [
      nameCol(),
      col('Desired', 'integer', 'The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).'),
      col('Current', 'integer', 'The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.'),
      col('Ready', 'integer', 'numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.'),
      col('Up-to-date', 'integer', 'The total number of nodes that are running updated daemon pod'),
      col('Available', 'integer', 'The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)'),
      col('Node Selector', 'string', 'NodeSelector is a selector which must be true for the pod to fit on a node.'),
      ageCol(),
      col('Containers', 'string', CONTAINERS_DESC, 1),
      col('Images', 'string', IMAGES_DESC, 1),
      col('Selector', 'string', 'A label query over pods that are managed by the daemon set.', 1),
    ],
    row: daemonSetRow,
  },
  'apps/ControllerRevision': {
    columns: [
      nameCol(),
      col('Controller', 'string', 'Controller of the object'),
      col('Revision', 'string', 'Revision indicates the revision of the state represented by Data.'),
      ageCol(),
    ],
    row: controllerRevisionRow,
  },
  'rbac.authorization.k8s.io/RoleBinding': { columns: BINDING_COLUMNS('roleBinding'), row: bindingRow },
  'rbac.authorization.k8s.io/ClusterRoleBinding': { columns: BINDING_COLUMNS('clusterRoleBinding'), row: bindingRow },
  'certificates.k8s.io/CertificateSigningRequest': {
    columns: [
      nameCol(),
      ageCol(),
      col('SignerName', 'string', 'signerName indicates the requested signer, and is a qualified name.'),
      col('Requestor', 'string', 'request contains an x509 certificate signing request encoded in a "CERTIFICATE REQUEST" PEM block.'),
      col('RequestedDuration', 'string', 'expirationSeconds is the requested duration of validity of the issued certificate.'),
      col('Condition', 'string', 'conditions applied to the request. Known conditions are "Approved", "Denied", and "Failed".'),
    ],
    row: csrRow,
  },
};

/** rest.NewDefaultTableConvertor: for built-in kinds without a printer. */
const DEFAULT_PRINTER: Printer = {
  columns: [nameCol(), col('Created At', 'date', CREATED_DESC)],
  row: (o) => ({ cells: [name(o), createdAt(o.metadata.creationTimestamp)] }),
};

/** metav1.Time in RFC 3339 at second precision, UTC; the zero time for an unset one. */
function createdAt(v: unknown): string {
  const t = timestampMs(v);
  if (t === undefined || Number.isNaN(t)) return '0001-01-01T00:00:00Z';
  return new Date(Math.floor(t / SECOND) * SECOND).toISOString().replace('.000Z', 'Z');
}

function printerFor(def: ResourceDef, crdColumns: PrinterColumn[] | undefined): Printer {
  if (def.custom || crdColumns) return customResourcePrinter(crdColumns);
  return BUILTIN_PRINTERS[`${def.group}/${def.kind}`] ?? DEFAULT_PRINTER;
}

// ---- custom resources ----

const DEFAULT_CRD_COLUMNS: PrinterColumn[] = [{ name: 'Age', type: 'date', description: CREATED_DESC, jsonPath: '.metadata.creationTimestamp' }];

function customResourcePrinter(crdColumns: PrinterColumn[] | undefined): Printer {
  const defs = crdColumns && crdColumns.length > 0 ? crdColumns : DEFAULT_CRD_COLUMNS;
  const compiled = defs.map((c) => {
    let path: JsonPath | undefined;
    try {
      path = parseJsonPath(c.jsonPath);
    } catch {
      path = undefined;
    }
    return { def: c, path };
  });
  return {
    columns: [
      nameCol(),
      ...defs.map((c) =>
        col(c.name, c.type, c.description || `Custom resource definition column (in JSONPath format): ${c.jsonPath}`, c.priority ?? 0, c.format ?? ''),
      ),
    ],
    row: (obj, now) => ({
      cells: [name(obj), ...compiled.map(({ def, path }) => (path ? customCell(def.type, evaluateJsonPath(obj, path), now) : null))],
    }),
  };
}

function customCell(type: string, results: unknown[], now: number): unknown {
  if (results.length === 0) return null;
  const v = results[0];
  if (v === null || v === undefined) return null;
  switch (type) {
    case 'string':
      return printValue(v);
    case 'integer':
      return typeof v === 'number' ? Math.trunc(v) : null;
    case 'number':
      return typeof v === 'number' ? v : null;
    case 'boolean':
      return typeof v === 'boolean' ? v : null;
    case 'date': {
      if (typeof v !== 'string') return null;
      const t = timestampMs(v);
      if (t === undefined) return '<unknown>';
      if (Number.isNaN(t)) return '<invalid>';
      return humanDuration(now - t);
    }
    default:
      return null;
  }
}

/** How kube's JSONPath prints a value: scalars as text, objects and arrays as compact JSON with sorted keys. */
function printValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(sortKeys(v));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, sortKeys((v as Obj)[k])]),
    );
  }
  return v;
}

// ---- the JSONPath subset CRD printer columns use ----

type Literal = string | number | boolean;
type FilterOp = '==' | '!=' | '<' | '<=' | '>' | '>=';

type Segment =
  | { kind: 'field'; name: string }
  | { kind: 'index'; index: number }
  | { kind: 'wildcard' }
  | { kind: 'filter'; path: Segment[]; op?: FilterOp; value?: Literal };

export type JsonPath = Segment[];

export class JsonPathError extends Error {}

const FIELD_TERMINATORS = '.[]() =!<>';

/**
 * Parses the JSONPath forms CRD printer columns use: `.spec.replicas`, `.items[0]`, `.a[*].b`,
 * `.metadata.labels['app.kubernetes.io/name']`, `.status.conditions[?(@.type=="Ready")].status`.
 * A leading `$` and surrounding `{}` are accepted. Backslash escapes a character in a field name.
 */
export function parseJsonPath(src: string): JsonPath {
  let s = src.trim();
  if (s.startsWith('{') && s.endsWith('}')) s = s.slice(1, -1).trim();
  if (s.startsWith('$')) s = s.slice(1);
  const [segments, rest] = parseSegments(s, 0, false);
  if (rest !== s.length) throw new JsonPathError(`unexpected ${JSON.stringify(s.slice(rest))} in JSONPath ${JSON.stringify(src)}`);
  return segments;
}

/** Parses segments from `pos`; inside a filter it stops at an operator or the closing paren. */
function parseSegments(s: string, pos: number, inFilter: boolean): [Segment[], number] {
  const segments: Segment[] = [];
  while (pos < s.length) {
    const c = s[pos]!;
    if (c === '.') {
      pos++;
      let fieldName = '';
      while (pos < s.length && !FIELD_TERMINATORS.includes(s[pos]!)) {
        if (s[pos] === '\\' && pos + 1 < s.length) pos++;
        fieldName += s[pos];
        pos++;
      }
      if (fieldName === '') {
        if (segments.length === 0 && (pos === s.length || s[pos] === '[')) continue;
        throw new JsonPathError(`empty field name at ${pos} in ${JSON.stringify(s)}`);
      }
      segments.push(fieldName === '*' ? { kind: 'wildcard' } : { kind: 'field', name: fieldName });
    } else if (c === '[') {
      const [segment, next] = parseBracket(s, pos);
      segments.push(segment);
      pos = next;
    } else if (inFilter) {
      break;
    } else {
      throw new JsonPathError(`unexpected ${JSON.stringify(c)} at ${pos} in ${JSON.stringify(s)}`);
    }
  }
  return [segments, pos];
}

function parseBracket(s: string, pos: number): [Segment, number] {
  const close = (p: number): number => {
    if (s[p] !== ']') throw new JsonPathError(`expected ']' at ${p} in ${JSON.stringify(s)}`);
    return p + 1;
  };
  let p = pos + 1;
  const c = s[p];
  if (c === '*') return [{ kind: 'wildcard' }, close(p + 1)];
  if (c === "'" || c === '"') {
    const [text, next] = parseQuoted(s, p);
    return [{ kind: 'field', name: text }, close(next)];
  }
  if (c === '?') {
    if (s[p + 1] !== '(' || s[p + 2] !== '@') throw new JsonPathError(`expected '(@' after '?' in ${JSON.stringify(s)}`);
    const [path, afterPath] = parseSegments(s, p + 3, true);
    p = afterPath;
    while (s[p] === ' ') p++;
    let op: FilterOp | undefined;
    let value: Literal | undefined;
    const opMatch = /^(==|!=|<=|>=|<|>)/.exec(s.slice(p));
    if (opMatch) {
      op = opMatch[1] as FilterOp;
      p += opMatch[1]!.length;
      while (s[p] === ' ') p++;
      [value, p] = parseLiteral(s, p);
      while (s[p] === ' ') p++;
    }
    if (s[p] !== ')') throw new JsonPathError(`expected ')' at ${p} in ${JSON.stringify(s)}`);
    return [{ kind: 'filter', path, ...(op ? { op, value: value! } : {}) }, close(p + 1)];
  }
  const m = /^-?\d+/.exec(s.slice(p));
  if (!m) throw new JsonPathError(`unsupported subscript at ${p} in ${JSON.stringify(s)}`);
  return [{ kind: 'index', index: Number(m[0]) }, close(p + m[0].length)];
}

function parseQuoted(s: string, pos: number): [string, number] {
  const quote = s[pos];
  let p = pos + 1;
  let text = '';
  while (p < s.length && s[p] !== quote) {
    if (s[p] === '\\' && p + 1 < s.length) p++;
    text += s[p];
    p++;
  }
  if (p >= s.length) throw new JsonPathError(`unterminated string in ${JSON.stringify(s)}`);
  return [text, p + 1];
}

function parseLiteral(s: string, pos: number): [Literal, number] {
  const c = s[pos];
  if (c === "'" || c === '"') return parseQuoted(s, pos);
  const m = /^(true|false|-?\d+(\.\d+)?([eE][+-]?\d+)?)/.exec(s.slice(pos));
  if (!m) throw new JsonPathError(`expected a literal at ${pos} in ${JSON.stringify(s)}`);
  const text = m[1]!;
  return [text === 'true' ? true : text === 'false' ? false : Number(text), pos + text.length];
}

function step(values: unknown[], seg: Segment): unknown[] {
  const out: unknown[] = [];
  for (const v of values) {
    switch (seg.kind) {
      case 'field':
        if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.prototype.hasOwnProperty.call(v, seg.name)) out.push((v as Obj)[seg.name]);
        break;
      case 'index':
        if (Array.isArray(v)) {
          const i = seg.index < 0 ? v.length + seg.index : seg.index;
          if (i >= 0 && i < v.length) out.push(v[i]);
        }
        break;
      case 'wildcard':
        if (Array.isArray(v)) out.push(...v);
        else if (v !== null && typeof v === 'object') out.push(...Object.values(v));
        break;
      case 'filter':
        if (Array.isArray(v)) out.push(...v.filter((item) => filterMatches(item, seg)));
        break;
    }
  }
  return out;
}

function filterMatches(item: unknown, seg: Segment & { kind: 'filter' }): boolean {
  const found = seg.path.reduce(step, [item]);
  if (found.length === 0) return false;
  if (!seg.op) return true;
  const left = found[0];
  const right = seg.value!;
  if (typeof right === 'number') {
    if (typeof left !== 'number') return seg.op === '!=';
    switch (seg.op) {
      case '==':
        return left === right;
      case '!=':
        return left !== right;
      case '<':
        return left < right;
      case '<=':
        return left <= right;
      case '>':
        return left > right;
      case '>=':
        return left >= right;
    }
  }
  const equal = left === right;
  if (seg.op === '==') return equal;
  if (seg.op === '!=') return !equal;
  return false;
}

/** Every value the path selects in `obj`, in document order; missing keys select nothing. */
export function evaluateJsonPath(obj: unknown, path: JsonPath): unknown[] {
  return path.reduce(step, [obj]);
}
