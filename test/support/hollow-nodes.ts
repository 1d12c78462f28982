import type { KubeObject } from '../../src/api/types.js';
import type { KubeClient } from '../../src/client/client.js';
import { resource } from '../../src/client/informer.js';

/** How often a hollow node renews its Lease, as a kubelet does. */
export const HOLLOW_LEASE_RENEW_MS = 10_000;

export interface HollowNodeSpec {
  cpu?: string;
  memory?: string;
  pods?: string;
  labels?: Record<string, string>;
  taints?: { key: string; value?: string; effect: string }[];
  unschedulable?: boolean;
}

function stamp(d = new Date()): string {
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

function microStamp(d = new Date()): string {
  return d.toISOString().replace(/Z$/, '000Z');
}

/**
 * Node objects and Leases driven by a test, with no kubelet and no containers: what the scheduler
 * and the controllers see of a node. `stop` silences a node the way a network cut would.
 */
export class HollowNodes {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly client: KubeClient,
    private readonly renewMs = HOLLOW_LEASE_RENEW_MS,
  ) {}

  async add(name: string, spec: HollowNodeSpec = {}): Promise<KubeObject> {
    const resources = { cpu: spec.cpu ?? '4', memory: spec.memory ?? '8Gi', pods: spec.pods ?? '110' };
    const node = await this.client.create(resource('nodes'), undefined, {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name, labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', ...spec.labels } },
      spec: { taints: spec.taints, unschedulable: spec.unschedulable },
    });
    await this.client.patch(resource('nodes'), undefined, name, 'merge', { status: this.status(resources) }, { subresource: 'status' });
    await this.client.create(resource('coordination.k8s.io/leases'), 'kube-node-lease', {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace: 'kube-node-lease', ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name, uid: node.metadata.uid }] },
      spec: { holderIdentity: name, leaseDurationSeconds: 40, renewTime: microStamp() },
    });
    this.resume(name);
    return node;
  }

  /** Stops renewing the node's Lease and heartbeat, as if its link went down. */
  stop(name: string): void {
    clearInterval(this.timers.get(name));
    this.timers.delete(name);
  }

  /** Renews now and keeps renewing. */
  resume(name: string): void {
    this.stop(name);
    const renew = () =>
      void this.client
        .patch(resource('coordination.k8s.io/leases'), 'kube-node-lease', name, 'merge', { spec: { renewTime: microStamp() } })
        .catch(() => undefined);
    renew();
    this.timers.set(name, setInterval(renew, this.renewMs));
  }

  /** Reports Ready again (what a kubelet does when it is back). */
  async ready(name: string): Promise<void> {
    const now = stamp();
    await this.client.patch(resource('nodes'), undefined, name, 'strategic', {
      status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'hollow node is ready', lastHeartbeatTime: now, lastTransitionTime: now }] },
    }, { subresource: 'status' });
  }

  close(): void {
    for (const t of this.timers.values()) clearInterval(t);
    this.timers.clear();
  }

  private status(resources: Record<string, string>): object {
    const now = stamp();
    const condition = (type: string, status: string, reason: string) => ({ type, status, reason, message: reason, lastHeartbeatTime: now, lastTransitionTime: now });
    return {
      capacity: resources,
      allocatable: resources,
      conditions: [
        condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory'),
        condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure'),
        condition('PIDPressure', 'False', 'KubeletHasSufficientPID'),
        condition('Ready', 'True', 'KubeletReady'),
      ],
      addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
      nodeInfo: { kubeletVersion: 'v1.32.0-atoll', containerRuntimeVersion: 'atoll://0.1.0', osImage: 'hollow', kernelVersion: 'hollow', operatingSystem: 'linux', architecture: 'amd64', machineID: '', systemUUID: '', bootID: '', kubeProxyVersion: '' },
    };
  }
}
