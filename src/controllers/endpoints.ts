import { ApiError } from '../api/errors.js';
import { matches, selectorFromSet } from '../api/labels.js';
import type { KubeObject } from '../api/types.js';
import { deepEqual } from '../api/validation/field.js';
import type { KubeClient } from '../client/client.js';
import { resource, type Informer } from '../client/informer.js';
import { WorkQueue } from '../client/workqueue.js';
import { protectsAutonomousNode } from './autonomy.js';
import { defaultErrorSink, objectKey, splitKey, waitForSync, type Controller, type ErrorSink, type SharedInformers } from './controller.js';

/**
 * The endpoints controller: for each Service with a selector, keeps the Endpoints object of the
 * same name and the Service's EndpointSlices (discovery.k8s.io/v1) in step with its pods, doing
 * the work of kube's endpoints and endpointslice controllers together.
 *
 * A pod counts when it matches the selector, has a `status.podIP` and has not finished (phase
 * Succeeded or Failed). Each Service port resolves against the pod: a numeric `targetPort` as is,
 * a named one through the pod's container ports (a pod lacking it is left out of that port), none
 * as the Service port.
 * - Endpoints: pods whose Ready condition is True (or all, with `publishNotReadyAddresses`) go in
 *   `addresses`, the others in `notReadyAddresses`; terminating pods are left out. Pods with the
 *   same resolved ports share a subset.
 * - EndpointSlices: terminating pods stay, with `serving` = Ready, `terminating` = true and
 *   `ready` = serving and not terminating. Slices are grouped by address family and resolved
 *   ports, at most `MAX_ENDPOINTS_PER_SLICE` endpoints each, labelled
 *   `kubernetes.io/service-name` and managed by `endpointslice-controller.k8s.io`, and owned by the
 *   Service; a Service with no endpoints keeps one empty slice, as kube does.
 * Edge autonomy: a pod on an autonomous node (autonomy.ts) whose node has gone Unknown keeps the
 * readiness its kubelet last reported, its ContainersReady condition (which only the kubelet
 * writes), even if a node-lifecycle controller has since set its Ready condition False on the
 * kubelet's behalf; pods with readiness gates keep their Ready condition as the answer.
 * Services without a selector, and their Endpoints and slices, are left alone. When a Service goes,
 * its Endpoints and slices are deleted.
 */

export const MAX_ENDPOINTS_PER_SLICE = 100;
export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';
export const LABEL_MANAGED_BY = 'endpointslice.kubernetes.io/managed-by';
export const ENDPOINTSLICE_CONTROLLER = 'endpointslice-controller.k8s.io';
const ENDPOINTS_WORKERS = 4;

export interface EndpointsControllerOptions {
  onError?: ErrorSink;
}

interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
}

interface ServiceSpec {
  selector?: Record<string, string>;
  ports?: ServicePort[];
  clusterIP?: string;
  publishNotReadyAddresses?: boolean;
}

interface EndpointPort {
  name?: string;
  port: number;
  protocol: string;
  appProtocol?: string;
}

interface PodEndpoint {
  pod: KubeObject;
  ip: string;
  ready: boolean;
  terminating: boolean;
  ports: EndpointPort[];
}

export class EndpointsController implements Controller {
  readonly name = 'endpoints';
  private readonly services: Informer;
  private readonly pods: Informer;
  private readonly endpoints: Informer;
  private readonly slices: Informer;
  private readonly nodes: Informer;
  private readonly queue = new WorkQueue();
  private readonly onError: ErrorSink;

  constructor(
    private readonly client: KubeClient,
    informers: SharedInformers,
    options: EndpointsControllerOptions = {},
  ) {
    this.onError = options.onError ?? defaultErrorSink;
    this.services = informers.get(resource('services'));
    this.pods = informers.get(resource('pods'));
    this.endpoints = informers.get(resource('endpoints'));
    this.slices = informers.get(resource('discovery.k8s.io/endpointslices'), { labelSelector: `${LABEL_MANAGED_BY}=${ENDPOINTSLICE_CONTROLLER}` });

    const own = (obj: KubeObject) => this.queue.add(objectKey(obj));
    this.services.on({ add: own, update: (_, s) => own(s), delete: own });
    this.pods.on({ add: (p) => this.podChanged(undefined, p), update: (o, p) => this.podChanged(o, p), delete: (p) => this.podChanged(p, undefined) });
    this.endpoints.on({ update: (_, e) => own(e), delete: own });
    const slice = (s: KubeObject) => {
      const service = s.metadata.labels?.[LABEL_SERVICE_NAME];
      if (service) this.queue.add(`${s.metadata.namespace}/${service}`);
    };
    this.slices.on({ update: (_, s) => slice(s), delete: slice });
    this.nodes = informers.get(resource('nodes'));
    this.nodes.on({
      add: (n) => this.nodeChanged(undefined, n),
      update: (o, n) => this.nodeChanged(o, n),
      delete: (n) => this.nodeChanged(n, undefined),
    });
  }

  async run(signal: AbortSignal): Promise<void> {
    if (!(await waitForSync(signal, this.services, this.pods, this.endpoints, this.slices, this.nodes))) return;
    for (const svc of this.services.list()) this.queue.add(objectKey(svc));
    await this.queue.run((key) => this.sync(key), signal, ENDPOINTS_WORKERS, (key, err) => this.onError(this.name, key, err));
  }

  private podChanged(old: KubeObject | undefined, pod: KubeObject | undefined): void {
    const namespace = (pod ?? old)!.metadata.namespace;
    for (const svc of this.services.list(namespace)) {
      const selector = selectorOf(svc);
      if (!selector) continue;
      const sel = selectorFromSet(selector);
      if ((old && matches(sel, old.metadata.labels)) || (pod && matches(sel, pod.metadata.labels))) this.queue.add(objectKey(svc));
    }
  }

  /** Only whether the node keeps its pods' last reported readiness matters here. */
  private nodeChanged(old: KubeObject | undefined, node: KubeObject | undefined): void {
    if (keepsReadiness(old) === keepsReadiness(node)) return;
    const name = (node ?? old)!.metadata.name;
    for (const pod of this.pods.list()) if (nodeNameOf(pod) === name) this.podChanged(undefined, pod);
  }

  private async sync(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const svc = this.services.get(namespace, name);
    if (!svc) return this.serviceGone(namespace!, name);
    const selector = selectorOf(svc);
    if (!selector) return;
    const spec = svc.spec as ServiceSpec;
    const sel = selectorFromSet(selector);
    const members = this.pods
      .list(namespace)
      .filter((p) => matches(sel, p.metadata.labels))
      .flatMap((p) => {
        const node = nodeNameOf(p);
        return podEndpoint(p, spec, keepsReadiness(node ? this.nodes.get(undefined, node) : undefined));
      });
    await this.syncEndpoints(svc, spec, members);
    await this.syncSlices(svc, spec, members);
  }

  private async serviceGone(namespace: string, name: string): Promise<void> {
    if (this.endpoints.get(namespace, name)) await this.client.delete(resource('endpoints'), namespace, name).catch(ignoreNotFound);
    for (const s of this.slicesOf(namespace, name)) {
      await this.client.delete(resource('discovery.k8s.io/endpointslices'), namespace, s.metadata.name!).catch(ignoreNotFound);
    }
  }

  private async syncEndpoints(svc: KubeObject, spec: ServiceSpec, members: PodEndpoint[]): Promise<void> {
    const { namespace, name } = svc.metadata;
    const publishAll = !!spec.publishNotReadyAddresses;
    const groups = new Map<string, { ports: EndpointPort[]; addresses: object[]; notReadyAddresses: object[] }>();
    for (const m of members) {
      if (m.terminating && !publishAll) continue;
      const ports = m.ports.map((p) => ({ ...p, name: p.name || undefined }));
      const k = portsKey(ports);
      let group = groups.get(k);
      if (!group) groups.set(k, (group = { ports, addresses: [], notReadyAddresses: [] }));
      const address = { ip: m.ip, nodeName: nodeNameOf(m.pod), targetRef: targetRef(m.pod) };
      (m.ready || publishAll ? group.addresses : group.notReadyAddresses).push(address);
    }
    const subsets = [...groups.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, g]) => {
        const subset: Record<string, unknown> = {};
        if (g.addresses.length) subset.addresses = g.addresses.sort(byIp);
        if (g.notReadyAddresses.length) subset.notReadyAddresses = g.notReadyAddresses.sort(byIp);
        if (g.ports.length) subset.ports = g.ports;
        return subset;
      });
    const labels = { ...svc.metadata.labels };
    if (spec.clusterIP === 'None') labels['service.kubernetes.io/headless'] = '';
    const current = this.endpoints.get(namespace, name!);
    if (current && deepEqual(clean(current.subsets ?? []), clean(subsets)) && deepEqual(current.metadata.labels ?? {}, labels)) return;
    const body: KubeObject = {
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { ...(current?.metadata ?? { name, namespace }), labels },
      subsets,
    };
    if (current) await this.client.update(resource('endpoints'), body);
    else await this.client.create(resource('endpoints'), namespace, body);
  }

  private async syncSlices(svc: KubeObject, spec: ServiceSpec, members: PodEndpoint[]): Promise<void> {
    const { namespace, name, uid } = svc.metadata;
    const publishAll = !!spec.publishNotReadyAddresses;
    const groups = new Map<string, { addressType: string; ports: EndpointPort[]; endpoints: object[] }>();
    for (const m of members) {
      const addressType = m.ip.includes(':') ? 'IPv6' : 'IPv4';
      const ports = m.ports.map((p) => ({ ...p, name: p.name ?? '' }));
      const k = `${addressType}|${portsKey(ports)}`;
      let group = groups.get(k);
      if (!group) groups.set(k, (group = { addressType, ports, endpoints: [] }));
      const endpoint: Record<string, unknown> = {
        addresses: [m.ip],
        conditions: { ready: publishAll || (m.ready && !m.terminating), serving: m.ready, terminating: m.terminating },
        targetRef: targetRef(m.pod),
      };
      const node = nodeNameOf(m.pod);
      if (node) endpoint.nodeName = node;
      group.endpoints.push(endpoint);
    }
    if (!groups.size) groups.set('IPv4|[]', { addressType: 'IPv4', ports: [], endpoints: [] });
    const desired: { key: string; addressType: string; ports: EndpointPort[]; endpoints: object[] }[] = [];
    for (const [k, g] of [...groups.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const sorted = (g.endpoints as { addresses: string[] }[]).sort((a, b) => compareIp(a.addresses[0]!, b.addresses[0]!));
      for (let i = 0; i === 0 || i < sorted.length; i += MAX_ENDPOINTS_PER_SLICE) {
        desired.push({ key: k, addressType: g.addressType, ports: g.ports, endpoints: sorted.slice(i, i + MAX_ENDPOINTS_PER_SLICE) });
      }
    }
    const labels: Record<string, string> = { ...svc.metadata.labels, [LABEL_SERVICE_NAME]: name!, [LABEL_MANAGED_BY]: ENDPOINTSLICE_CONTROLLER };
    if (spec.clusterIP === 'None') labels['service.kubernetes.io/headless'] = '';
    const owner = { apiVersion: 'v1', kind: 'Service', name: name!, uid: uid!, controller: true, blockOwnerDeletion: true };
    const existing = this.slicesOf(namespace!, name!);
    const r = resource('discovery.k8s.io/endpointslices');
    for (const d of desired) {
      const at = existing.findIndex((s) => `${s.addressType}|${portsKey((s.ports as EndpointPort[] | undefined) ?? [])}` === d.key);
      const current = at >= 0 ? existing.splice(at, 1)[0] : undefined;
      if (current) {
        if (deepEqual(clean(current.endpoints ?? []), clean(d.endpoints)) && deepEqual(current.metadata.labels ?? {}, labels)) continue;
        await this.client.update(r, { ...current, metadata: { ...current.metadata, labels, ownerReferences: [owner] }, endpoints: d.endpoints, ports: d.ports });
      } else {
        await this.client.create(r, namespace, {
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: { generateName: `${name}-`, namespace, labels, ownerReferences: [owner] },
          addressType: d.addressType,
          endpoints: d.endpoints,
          ports: d.ports,
        });
      }
    }
    for (const s of existing) await this.client.delete(r, namespace, s.metadata.name!).catch(ignoreNotFound);
  }

  private slicesOf(namespace: string, service: string): KubeObject[] {
    return this.slices.list(namespace).filter((s) => s.metadata.labels?.[LABEL_SERVICE_NAME] === service);
  }
}

function selectorOf(svc: KubeObject): Record<string, string> | undefined {
  const selector = (svc.spec as ServiceSpec | undefined)?.selector;
  return selector && Object.keys(selector).length ? selector : undefined;
}

/** Whether the node is autonomous and silent, so its pods keep the readiness their kubelet last reported. */
function keepsReadiness(node: KubeObject | undefined): boolean {
  if (!node || !protectsAutonomousNode(node)) return false;
  const conditions = (node.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
  return conditions.find((c) => c.type === 'Ready')?.status === 'Unknown';
}

/** The pod's readiness; on a silent autonomous node, the kubelet's last word (ContainersReady). */
function podReady(pod: KubeObject, keepReadiness: boolean): boolean {
  const conditions = (pod.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
  const is = (type: string) => conditions.some((c) => c.type === type && c.status === 'True');
  if (is('Ready')) return true;
  if (!keepReadiness || ((pod.spec as { readinessGates?: unknown[] } | undefined)?.readinessGates ?? []).length) return false;
  return is('ContainersReady');
}

/** The pod as an endpoint of the service, or nothing when it does not count. */
function podEndpoint(pod: KubeObject, spec: ServiceSpec, keepReadiness: boolean): PodEndpoint[] {
  const status = (pod.status ?? {}) as { phase?: string; podIP?: string };
  if (!status.podIP || status.phase === 'Succeeded' || status.phase === 'Failed') return [];
  const ports: EndpointPort[] = [];
  for (const sp of spec.ports ?? []) {
    const port = resolvePort(pod, sp);
    if (port === undefined) continue;
    const ep: EndpointPort = { name: sp.name, port, protocol: sp.protocol ?? 'TCP' };
    if (sp.appProtocol) ep.appProtocol = sp.appProtocol;
    ports.push(ep);
  }
  // A pod serves none of the service's ports: it is not an endpoint (headless services without ports aside).
  if ((spec.ports ?? []).length && !ports.length) return [];
  return [{
    pod,
    ip: status.podIP,
    ready: podReady(pod, keepReadiness),
    terminating: !!pod.metadata.deletionTimestamp,
    ports,
  }];
}

/** kube's FindPort: the container port a service port targets on this pod. */
export function resolvePort(pod: KubeObject, sp: ServicePort): number | undefined {
  const target = sp.targetPort ?? sp.port;
  if (typeof target === 'number') return target;
  if (/^\d+$/.test(target)) return Number(target);
  const protocol = sp.protocol ?? 'TCP';
  const containers = ((pod.spec as { containers?: { ports?: { name?: string; containerPort: number; protocol?: string }[] }[] } | undefined)?.containers ?? []);
  for (const c of containers) {
    for (const p of c.ports ?? []) if (p.name === target && (p.protocol ?? 'TCP') === protocol) return p.containerPort;
  }
  return undefined;
}

function targetRef(pod: KubeObject): object {
  return { kind: 'Pod', namespace: pod.metadata.namespace, name: pod.metadata.name, uid: pod.metadata.uid };
}

function nodeNameOf(pod: KubeObject): string | undefined {
  return (pod.spec as { nodeName?: string } | undefined)?.nodeName || undefined;
}

function portsKey(ports: EndpointPort[]): string {
  return JSON.stringify([...ports].map((p) => [p.name ?? '', p.port, p.protocol, p.appProtocol ?? '']).sort());
}

function compareIp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byIp(a: object, b: object): number {
  return compareIp((a as { ip: string }).ip, (b as { ip: string }).ip);
}

/** JSON form, so absent and undefined fields compare equal to what the server returns. */
function clean(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

function ignoreNotFound(err: unknown): undefined {
  if (err instanceof ApiError && err.code === 404) return undefined;
  throw err;
}
