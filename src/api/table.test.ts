import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { BUILTIN_RESOURCES, type ResourceDef } from './resources.js';
import { evaluateJsonPath, humanDuration, parseJsonPath, toTable, type PrinterColumn, type Table } from './table.js';
import type { KubeObject } from './types.js';

const NOW = new Date('2024-05-01T12:00:00Z');
const ago = (ms: number): string => new Date(NOW.getTime() - ms).toISOString();
const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

function def(group: string, kind: string): ResourceDef {
  const d = BUILTIN_RESOURCES.find((r) => r.group === group && r.kind === kind);
  assert.ok(d, `${group}/${kind} is built in`);
  return d;
}

function cells(d: ResourceDef, obj: KubeObject, crdColumns?: PrinterColumn[]): unknown[] {
  return toTable(d, [obj], { now: NOW, ...(crdColumns ? { crdColumns } : {}) }).rows[0]!.cells;
}

function headers(t: Table): string[] {
  return t.columnDefinitions.map((c) => (c.priority > 0 ? `(${c.name})` : c.name));
}

const running = { running: { startedAt: ago(D) } };

function pod(name: string, extra: { spec?: object; status?: object; deletionTimestamp?: string }): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', creationTimestamp: ago(2 * D + 3 * H), ...(extra.deletionTimestamp ? { deletionTimestamp: extra.deletionTimestamp } : {}) },
    spec: { containers: [{ name: 'app', image: 'nginx' }], ...extra.spec },
    status: extra.status ?? {},
  };
}

describe('humanDuration', () => {
  const cases: Array<[number, string]> = [
    [0, '0s'],
    [-1500, '0s'],
    [-2500, '<invalid>'],
    [59 * S, '59s'],
    [119 * S, '119s'],
    [120 * S, '2m'],
    [182 * S, '3m2s'],
    [10 * M + 30 * S, '10m'],
    [179 * M, '179m'],
    [3 * H, '3h'],
    [5 * H + 10 * M, '5h10m'],
    [8 * H + 59 * M, '8h'],
    [47 * H, '47h'],
    [2 * D + 3 * H, '2d3h'],
    [2 * D, '2d'],
    [8 * D, '8d'],
    [45 * D + 5 * H, '45d'],
    [729 * D, '729d'],
    [730 * D, '2y'],
    [800 * D, '2y70d'],
    [9 * 365 * D, '9y'],
  ];
  for (const [ms, text] of cases) {
    it(`${ms}ms → ${text}`, () => assert.equal(humanDuration(ms), text));
  }
});

describe('toTable shape', () => {
  const p = pod('web', { status: { phase: 'Running' } });

  it('returns a meta.k8s.io/v1 Table with PartialObjectMetadata rows by default', () => {
    const t = toTable(def('', 'Pod'), [p], { now: NOW, resourceVersion: '42', continue: 'tok' });
    assert.equal(t.kind, 'Table');
    assert.equal(t.apiVersion, 'meta.k8s.io/v1');
    assert.deepEqual(t.metadata, { resourceVersion: '42', continue: 'tok' });
    assert.deepEqual(t.rows[0]!.object, { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: p.metadata });
    assert.deepEqual(t.columnDefinitions[0], {
      name: 'Name',
      type: 'string',
      format: 'name',
      description: t.columnDefinitions[0]!.description,
      priority: 0,
    });
    assert.match(t.columnDefinitions[0]!.description, /^Name must be unique within a namespace/);
  });

  it('includes the full object or none on request', () => {
    assert.equal(toTable(def('', 'Pod'), [p], { now: NOW, includeObject: 'Object' }).rows[0]!.object, p);
    assert.ok(!('object' in toTable(def('', 'Pod'), [p], { now: NOW, includeObject: 'None' }).rows[0]!));
  });

  it('leaves out column definitions for noHeaders', () => {
    assert.deepEqual(toTable(def('', 'Pod'), [p], { now: NOW, noHeaders: true }).columnDefinitions, []);
  });
});

describe('pods', () => {
  const podDef = def('', 'Pod');

  it('has kube columns, wide ones at priority 1', () => {
    assert.deepEqual(headers(toTable(podDef, [], { now: NOW })), [
      'Name',
      'Ready',
      'Status',
      'Restarts',
      'Age',
      '(IP)',
      '(Node)',
      '(Nominated Node)',
      '(Readiness Gates)',
    ]);
  });

  it('prints a running pod with a recent restart', () => {
    const p = pod('web-1', {
      spec: { nodeName: 'n1', containers: [{ name: 'app' }, { name: 'side' }] },
      status: {
        phase: 'Running',
        podIP: '10.42.0.7',
        podIPs: [{ ip: '10.42.0.7' }],
        conditions: [{ type: 'Ready', status: 'True' }],
        containerStatuses: [
          { name: 'app', ready: true, restartCount: 1, state: running, lastState: { terminated: { exitCode: 1, finishedAt: ago(5 * M) } } },
          { name: 'side', ready: true, restartCount: 0, state: running },
        ],
      },
    });
    assert.deepEqual(cells(podDef, p), ['web-1', '2/2', 'Running', '1 (5m ago)', '2d3h', '10.42.0.7', 'n1', '<none>', '<none>']);
  });

  it('shows waiting reasons', () => {
    const waiting = (reason: string, restarts = 0, last?: number): KubeObject =>
      pod('w', {
        status: {
          phase: reason === 'ContainerCreating' ? 'Pending' : 'Running',
          containerStatuses: [
            {
              name: 'app',
              ready: false,
              restartCount: restarts,
              state: { waiting: { reason } },
              ...(last !== undefined ? { lastState: { terminated: { exitCode: 2, reason: 'Error', finishedAt: ago(last) } } } : {}),
            },
          ],
        },
      });
    assert.deepEqual(cells(podDef, waiting('CrashLoopBackOff', 5, 30 * S)).slice(1, 4), ['0/1', 'CrashLoopBackOff', '5 (30s ago)']);
    assert.deepEqual(cells(podDef, waiting('ContainerCreating')).slice(1, 4), ['0/1', 'ContainerCreating', '0']);
    assert.deepEqual(cells(podDef, waiting('ErrImagePull')).slice(1, 4), ['0/1', 'ErrImagePull', '0']);
  });

  it('shows init progress and init failures', () => {
    const withInit = (initStatus: object, conditions: object[] = []): KubeObject =>
      pod('i', {
        spec: { initContainers: [{ name: 'setup' }, { name: 'migrate' }] },
        status: {
          phase: 'Pending',
          conditions,
          initContainerStatuses: [{ name: 'setup', ready: false, restartCount: 0, ...initStatus }],
          containerStatuses: [{ name: 'app', ready: false, restartCount: 0, state: { waiting: { reason: 'PodInitializing' } } }],
        },
      });
    assert.equal(cells(podDef, withInit({ state: running }))[2], 'Init:0/2');
    assert.equal(cells(podDef, withInit({ state: { waiting: { reason: 'PodInitializing' } } }))[2], 'Init:0/2');
    assert.equal(cells(podDef, withInit({ state: { waiting: { reason: 'ImagePullBackOff' } } }))[2], 'Init:ImagePullBackOff');
    assert.equal(cells(podDef, withInit({ state: { terminated: { exitCode: 3 } } }))[2], 'Init:ExitCode:3');
    assert.equal(cells(podDef, withInit({ state: { terminated: { exitCode: 1, reason: 'Error' } } }))[2], 'Init:Error');
    assert.equal(cells(podDef, withInit({ state: { terminated: { exitCode: 137, signal: 9 } } }))[2], 'Init:Signal:9');
    // Once the first init container has finished, the second one is reported.
    const second = pod('i2', {
      spec: { initContainers: [{ name: 'setup' }, { name: 'migrate' }] },
      status: {
        phase: 'Pending',
        initContainerStatuses: [
          { name: 'setup', ready: false, restartCount: 0, state: { terminated: { exitCode: 0, reason: 'Completed' } } },
          { name: 'migrate', ready: false, restartCount: 0, state: running },
        ],
      },
    });
    assert.equal(cells(podDef, second)[2], 'Init:1/2');
  });

  it('counts a started sidecar init container as a ready container', () => {
    const p = pod('s', {
      spec: { initContainers: [{ name: 'proxy', restartPolicy: 'Always' }] },
      status: {
        phase: 'Running',
        conditions: [{ type: 'Initialized', status: 'True' }, { type: 'Ready', status: 'True' }],
        initContainerStatuses: [{ name: 'proxy', ready: true, started: true, restartCount: 2, state: running, lastState: { terminated: { exitCode: 1, finishedAt: ago(3 * H) } } }],
        containerStatuses: [{ name: 'app', ready: true, restartCount: 0, state: running }],
      },
    });
    assert.deepEqual(cells(podDef, p).slice(1, 4), ['2/2', 'Running', '2 (3h ago)']);
  });

  it('shows Completed with a row condition, Terminating, NodeLost and Pending', () => {
    const done = pod('job', {
      status: { phase: 'Succeeded', containerStatuses: [{ name: 'app', ready: false, restartCount: 0, state: { terminated: { exitCode: 0, reason: 'Completed' } } }] },
    });
    const t = toTable(podDef, [done], { now: NOW });
    assert.deepEqual(t.rows[0]!.cells.slice(1, 3), ['0/1', 'Completed']);
    assert.deepEqual(t.rows[0]!.conditions, [{ type: 'Completed', status: 'True', reason: 'Succeeded', message: 'The pod has completed successfully.' }]);

    const deleting = pod('d', { deletionTimestamp: ago(S), status: { phase: 'Running', containerStatuses: [{ name: 'app', ready: true, restartCount: 0, state: running }] } });
    assert.equal(cells(podDef, deleting)[2], 'Terminating');
    const lost = pod('l', { deletionTimestamp: ago(S), status: { phase: 'Running', reason: 'NodeLost' } });
    assert.equal(cells(podDef, lost)[2], 'Unknown');
    const exited = pod('x', { status: { phase: 'Running', containerStatuses: [{ name: 'app', ready: false, restartCount: 0, state: { terminated: { exitCode: 2 } } }] } });
    assert.equal(cells(podDef, exited)[2], 'ExitCode:2');
    assert.deepEqual(cells(podDef, pod('new', { status: { phase: 'Pending' } })), ['new', '0/1', 'Pending', '0', '2d3h', '<none>', '<none>', '<none>', '<none>']);
    const gated = pod('g', { status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'SchedulingGated' }] } });
    assert.equal(cells(podDef, gated)[2], 'SchedulingGated');
  });

  it('turns Completed back into Running while a container still runs', () => {
    const p = pod('m', {
      spec: { containers: [{ name: 'a' }, { name: 'b' }] },
      status: {
        phase: 'Running',
        conditions: [{ type: 'Ready', status: 'False' }],
        containerStatuses: [
          { name: 'a', ready: true, restartCount: 0, state: running },
          { name: 'b', ready: false, restartCount: 0, state: { terminated: { exitCode: 0, reason: 'Completed' } } },
        ],
      },
    });
    assert.deepEqual(cells(podDef, p).slice(1, 3), ['1/2', 'NotReady']);
  });

  it('counts readiness gates', () => {
    const p = pod('r', {
      spec: { readinessGates: [{ conditionType: 'example.com/lb' }, { conditionType: 'example.com/dns' }] },
      status: { phase: 'Running', nominatedNodeName: 'n2', conditions: [{ type: 'example.com/lb', status: 'True' }, { type: 'example.com/dns', status: 'False' }] },
    });
    assert.deepEqual(cells(podDef, p).slice(7), ['n2', '1/2']);
  });
});

describe('nodes', () => {
  const nodeDef = def('', 'Node');
  const node = (labels: Record<string, string>, conditions: object[], unschedulable = false): KubeObject => ({
    metadata: { name: 'edge-1', labels, creationTimestamp: ago(45 * D) },
    spec: unschedulable ? { unschedulable: true } : {},
    status: {
      conditions,
      addresses: [
        { type: 'Hostname', address: 'edge-1' },
        { type: 'InternalIP', address: '192.168.1.10' },
      ],
      nodeInfo: { kubeletVersion: 'v1.34.0-atoll', osImage: 'Alpine Linux v3.20', kernelVersion: '6.6.30', containerRuntimeVersion: 'atoll://0.1.0' },
    },
  });

  it('prints status, roles and wide cells', () => {
    const n = node(
      { 'node-role.kubernetes.io/control-plane': '', 'kubernetes.io/role': 'edge', 'node-role.kubernetes.io/': 'x', 'kubernetes.io/hostname': 'edge-1' },
      [{ type: 'MemoryPressure', status: 'False' }, { type: 'Ready', status: 'True' }],
    );
    assert.deepEqual(cells(nodeDef, n), [
      'edge-1',
      'Ready',
      'control-plane,edge',
      '45d',
      'v1.34.0-atoll',
      '192.168.1.10',
      '<none>',
      'Alpine Linux v3.20',
      '6.6.30',
      'atoll://0.1.0',
    ]);
    assert.deepEqual(headers(toTable(nodeDef, [], { now: NOW })), [
      'Name',
      'Status',
      'Roles',
      'Age',
      'Version',
      '(Internal-IP)',
      '(External-IP)',
      '(OS-Image)',
      '(Kernel-Version)',
      '(Container-Runtime)',
    ]);
  });

  it('reports NotReady, Unknown and SchedulingDisabled', () => {
    assert.deepEqual(cells(nodeDef, node({}, [{ type: 'Ready', status: 'False' }])).slice(1, 3), ['NotReady', '<none>']);
    assert.equal(cells(nodeDef, node({}, [{ type: 'Ready', status: 'Unknown' }]))[1], 'NotReady');
    assert.equal(cells(nodeDef, node({}, []))[1], 'Unknown');
    assert.equal(cells(nodeDef, node({}, [{ type: 'Ready', status: 'True' }], true))[1], 'Ready,SchedulingDisabled');
  });
});

describe('workloads', () => {
  const template = {
    metadata: { labels: { app: 'web' } },
    spec: { containers: [{ name: 'nginx', image: 'nginx:1.25' }, { name: 'sidecar', image: 'busybox' }], nodeSelector: { 'kubernetes.io/os': 'linux' } },
  };

  it('prints deployment counts', () => {
    const d: KubeObject = {
      metadata: { name: 'web', creationTimestamp: ago(3 * M + 2 * S) },
      spec: { replicas: 3, selector: { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['fe'] }] }, template },
      status: { replicas: 3, updatedReplicas: 3, readyReplicas: 2, availableReplicas: 2 },
    };
    const t = toTable(def('apps', 'Deployment'), [d], { now: NOW });
    assert.deepEqual(headers(t), ['Name', 'Ready', 'Up-to-date', 'Available', 'Age', '(Containers)', '(Images)', '(Selector)']);
    assert.deepEqual(t.rows[0]!.cells, ['web', '2/3', 3, 2, '3m2s', 'nginx,sidecar', 'nginx:1.25,busybox', 'app=web,tier in (fe)']);
    const fresh: KubeObject = { metadata: { name: 'new', creationTimestamp: ago(S) }, spec: { replicas: 1, template } };
    assert.deepEqual(cells(def('apps', 'Deployment'), fresh).slice(1, 4), ['0/1', 0, 0]);
  });

  it('prints replica sets and daemon sets', () => {
    const rs: KubeObject = {
      metadata: { name: 'web-5d8f', creationTimestamp: ago(H) },
      spec: { replicas: 3, selector: { matchLabels: { app: 'web', 'pod-template-hash': '5d8f' } }, template },
      status: { replicas: 3, readyReplicas: 1 },
    };
    assert.deepEqual(cells(def('apps', 'ReplicaSet'), rs), ['web-5d8f', 3, 3, 1, '60m', 'nginx,sidecar', 'nginx:1.25,busybox', 'app=web,pod-template-hash=5d8f']);
    const ds: KubeObject = {
      metadata: { name: 'agent', creationTimestamp: ago(D) },
      spec: { selector: { matchLabels: { app: 'agent' } }, template },
      status: { desiredNumberScheduled: 4, currentNumberScheduled: 4, numberReady: 3, updatedNumberScheduled: 4, numberAvailable: 3 },
    };
    const t = toTable(def('apps', 'DaemonSet'), [ds], { now: NOW });
    assert.deepEqual(headers(t), ['Name', 'Desired', 'Current', 'Ready', 'Up-to-date', 'Available', 'Node Selector', 'Age', '(Containers)', '(Images)', '(Selector)']);
    assert.deepEqual(t.rows[0]!.cells, ['agent', 4, 4, 3, 4, 3, 'kubernetes.io/os=linux', '24h', 'nginx,sidecar', 'nginx:1.25,busybox', 'app=agent']);
  });

  it('prints controller revisions with their owner', () => {
    const cr: KubeObject = {
      metadata: {
        name: 'agent-7c9',
        creationTimestamp: ago(D),
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'agent', uid: 'u', controller: true }],
      },
      revision: 2,
    };
    assert.deepEqual(cells(def('apps', 'ControllerRevision'), cr), ['agent-7c9', 'daemonset.apps/agent', 2, '24h']);
    assert.equal(cells(def('apps', 'ControllerRevision'), { metadata: { name: 'x' }, revision: 1 })[1], '<none>');
  });
});

describe('services, endpoints and config', () => {
  it('prints services of each type', () => {
    const svcDef = def('', 'Service');
    const base = { creationTimestamp: ago(10 * D) };
    const clusterIP: KubeObject = {
      metadata: { name: 'web', ...base },
      spec: { type: 'ClusterIP', clusterIP: '10.43.0.10', clusterIPs: ['10.43.0.10'], ports: [{ port: 80, protocol: 'TCP' }, { port: 53, protocol: 'UDP' }], selector: { app: 'web' } },
    };
    assert.deepEqual(cells(svcDef, clusterIP), ['web', 'ClusterIP', '10.43.0.10', '<none>', '80/TCP,53/UDP', '10d', 'app=web']);
    const nodePort: KubeObject = { metadata: { name: 'np', ...base }, spec: { type: 'NodePort', clusterIPs: ['10.43.0.11'], ports: [{ port: 80, nodePort: 30080, protocol: 'TCP' }] } };
    assert.deepEqual(cells(svcDef, nodePort).slice(1, 5), ['NodePort', '10.43.0.11', '<none>', '80:30080/TCP']);
    assert.equal(cells(svcDef, nodePort)[6], '<none>');
    const lb: KubeObject = { metadata: { name: 'lb', ...base }, spec: { type: 'LoadBalancer', clusterIPs: ['10.43.0.12'], ports: [] } };
    assert.deepEqual(cells(svcDef, lb).slice(3, 5), ['<pending>', '<none>']);
    const lbReady: KubeObject = { ...lb, status: { loadBalancer: { ingress: [{ ip: '203.0.113.9' }, { hostname: 'lb.example.com' }] } } };
    assert.equal(cells(svcDef, lbReady)[3], '203.0.113.9,lb.example.com');
    const ext: KubeObject = { metadata: { name: 'ext', ...base }, spec: { type: 'ExternalName', externalName: 'db.example.com' } };
    assert.deepEqual(cells(svcDef, ext).slice(1, 4), ['ExternalName', '<none>', 'db.example.com']);
    const headless: KubeObject = { metadata: { name: 'h', ...base }, spec: { type: 'ClusterIP', clusterIPs: ['None'], ports: [{ port: 80, protocol: 'TCP' }] } };
    assert.equal(cells(svcDef, headless)[2], 'None');
  });

  it('prints endpoints, truncating after three', () => {
    const epDef = def('', 'Endpoints');
    const ep: KubeObject = {
      metadata: { name: 'web', creationTimestamp: ago(M) },
      subsets: [{ addresses: [{ ip: '10.42.0.1' }, { ip: '10.42.0.2' }, { ip: '10.42.0.3' }, { ip: '10.42.0.4' }], ports: [{ port: 8080, protocol: 'TCP' }] }],
    };
    assert.deepEqual(cells(epDef, ep), ['web', '10.42.0.1:8080,10.42.0.2:8080,10.42.0.3:8080 + 1 more...', '60s']);
    assert.equal(cells(epDef, { metadata: { name: 'none' } })[1], '<none>');
    assert.equal(cells(epDef, { metadata: { name: 'v6' }, subsets: [{ addresses: [{ ip: 'fd00::1' }], ports: [{ port: 80 }] }] })[1], '[fd00::1]:80');
  });

  it('counts configmap and secret data', () => {
    const cm: KubeObject = { metadata: { name: 'cfg', creationTimestamp: ago(5 * S) }, data: { a: '1', b: '2' }, binaryData: { c: 'AA==' } };
    assert.deepEqual(cells(def('', 'ConfigMap'), cm), ['cfg', 3, '5s']);
    const sec: KubeObject = { metadata: { name: 'tls', creationTimestamp: ago(5 * S) }, type: 'kubernetes.io/tls', data: { 'tls.crt': 'x', 'tls.key': 'y' } };
    assert.deepEqual(cells(def('', 'Secret'), sec), ['tls', 'kubernetes.io/tls', 2, '5s']);
    assert.deepEqual(cells(def('', 'ServiceAccount'), { metadata: { name: 'default', creationTimestamp: ago(5 * S) } }), ['default', 0, '5s']);
    assert.deepEqual(cells(def('', 'Namespace'), { metadata: { name: 'kube-system', creationTimestamp: ago(5 * S) }, status: { phase: 'Active' } }), [
      'kube-system',
      'Active',
      '5s',
    ]);
  });
});

describe('events', () => {
  it('prints core events with wide cells', () => {
    const ev: KubeObject = {
      metadata: { name: 'web.17c', namespace: 'default' },
      involvedObject: { kind: 'Pod', name: 'web', fieldPath: 'spec.containers{app}' },
      reason: 'BackOff',
      message: 'Back-off restarting failed container\n',
      type: 'Warning',
      source: { component: 'kubelet', host: 'edge-1' },
      firstTimestamp: ago(10 * M),
      lastTimestamp: ago(5 * M),
      count: 3,
    };
    const t = toTable(def('', 'Event'), [ev], { now: NOW });
    assert.deepEqual(headers(t), ['Last Seen', 'Type', 'Reason', 'Object', '(Subobject)', '(Source)', 'Message', '(First Seen)', '(Count)', '(Name)']);
    assert.deepEqual(t.rows[0]!.cells, ['5m', 'Warning', 'BackOff', 'pod/web', 'spec.containers{app}', 'kubelet, edge-1', 'Back-off restarting failed container', '10m', 3, 'web.17c']);
  });

  it('prints events.k8s.io events from series and eventTime', () => {
    const ev: KubeObject = {
      metadata: { name: 'edge-1.17d' },
      regarding: { kind: 'Node', name: 'edge-1' },
      reason: 'NodeReady',
      note: 'Node edge-1 status is now: NodeReady',
      type: 'Normal',
      eventTime: ago(20 * M),
      reportingController: 'atoll-node-controller',
      series: { count: 4, lastObservedTime: ago(2 * M) },
    };
    assert.deepEqual(cells(def('events.k8s.io', 'Event'), ev), [
      '2m',
      'Normal',
      'NodeReady',
      'node/edge-1',
      '',
      'atoll-node-controller',
      'Node edge-1 status is now: NodeReady',
      '20m',
      4,
      'edge-1.17d',
    ]);
  });
});

describe('storage, coordination, rbac and certificates', () => {
  it('prints persistent volumes and claims', () => {
    const pv: KubeObject = {
      metadata: { name: 'pv-1', creationTimestamp: ago(D) },
      spec: { capacity: { storage: '10Gi' }, accessModes: ['ReadWriteMany', 'ReadWriteOnce'], persistentVolumeReclaimPolicy: 'Retain', claimRef: { namespace: 'default', name: 'data' }, storageClassName: 'local', volumeMode: 'Filesystem' },
      status: { phase: 'Bound' },
    };
    assert.deepEqual(cells(def('', 'PersistentVolume'), pv), ['pv-1', '10Gi', 'RWO,RWX', 'Retain', 'Bound', 'default/data', 'local', '<unset>', '', '24h', 'Filesystem']);
    const pvc: KubeObject = {
      metadata: { name: 'data', creationTimestamp: ago(D), annotations: { 'volume.beta.kubernetes.io/storage-class': 'legacy' } },
      spec: { volumeName: 'pv-1', resources: { requests: { storage: '5Gi' } } },
      status: { phase: 'Bound', capacity: { storage: '10240Mi' }, accessModes: ['ReadWriteOnce'] },
    };
    assert.deepEqual(cells(def('', 'PersistentVolumeClaim'), pvc), ['data', 'Bound', 'pv-1', '10Gi', 'RWO', 'legacy', '<unset>', '24h', '<unset>']);
    const pending: KubeObject = { metadata: { name: 'p', creationTimestamp: ago(D), deletionTimestamp: ago(S) }, spec: { storageClassName: 'fast' }, status: { phase: 'Pending' } };
    assert.deepEqual(cells(def('', 'PersistentVolumeClaim'), pending).slice(1, 6), ['Terminating', '', '', '', 'fast']);
  });

  it('prints leases and runtime classes', () => {
    assert.deepEqual(cells(def('coordination.k8s.io', 'Lease'), { metadata: { name: 'edge-1', creationTimestamp: ago(H) }, spec: { holderIdentity: 'edge-1' } }), ['edge-1', 'edge-1', '60m']);
    assert.deepEqual(cells(def('coordination.k8s.io', 'Lease'), { metadata: { name: 'x', creationTimestamp: ago(H) }, spec: {} })[1], '');
    assert.deepEqual(cells(def('node.k8s.io', 'RuntimeClass'), { metadata: { name: 'vm', creationTimestamp: ago(H) }, handler: 'runv' }), ['vm', 'runv', '60m']);
  });

  it('prints bindings with subjects in wide cells', () => {
    const rb: KubeObject = {
      metadata: { name: 'admins', creationTimestamp: ago(H) },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'admin' },
      subjects: [
        { kind: 'User', name: 'alice' },
        { kind: 'User', name: 'bob' },
        { kind: 'Group', name: 'ops' },
        { kind: 'ServiceAccount', namespace: 'ci', name: 'deployer' },
      ],
    };
    const t = toTable(def('rbac.authorization.k8s.io', 'ClusterRoleBinding'), [rb], { now: NOW });
    assert.deepEqual(headers(t), ['Name', 'Role', 'Age', '(Users)', '(Groups)', '(ServiceAccounts)']);
    assert.deepEqual(t.rows[0]!.cells, ['admins', 'ClusterRole/admin', '60m', 'alice, bob', 'ops', 'ci/deployer']);
  });

  it('prints certificate signing requests', () => {
    const csr: KubeObject = {
      metadata: { name: 'node-csr-1', creationTimestamp: ago(90 * S) },
      spec: { signerName: 'kubernetes.io/kube-apiserver-client-kubelet', username: 'system:bootstrap:abc', expirationSeconds: 3600 },
      status: { conditions: [{ type: 'Approved', status: 'True' }], certificate: 'LS0t' },
    };
    assert.deepEqual(cells(def('certificates.k8s.io', 'CertificateSigningRequest'), csr), [
      'node-csr-1',
      '90s',
      'kubernetes.io/kube-apiserver-client-kubelet',
      'system:bootstrap:abc',
      '60m',
      'Approved,Issued',
    ]);
    assert.deepEqual(cells(def('certificates.k8s.io', 'CertificateSigningRequest'), { metadata: { name: 'x' }, spec: {} }).slice(1), ['<unknown>', '<none>', '', '<none>', 'Pending']);
    const denied: KubeObject = { metadata: { name: 'd' }, spec: {}, status: { conditions: [{ type: 'Approved' }, { type: 'Denied' }, { type: 'Failed' }] } };
    assert.equal(cells(def('certificates.k8s.io', 'CertificateSigningRequest'), denied)[5], 'Denied,Failed');
  });
});

describe('kinds without a printer', () => {
  it('use NAME and CREATED AT like kube default convertor', () => {
    for (const [group, kind] of [
      ['rbac.authorization.k8s.io', 'Role'],
      ['rbac.authorization.k8s.io', 'ClusterRole'],
      ['apiextensions.k8s.io', 'CustomResourceDefinition'],
    ] as const) {
      const t = toTable(def(group, kind), [{ metadata: { name: 'x', creationTimestamp: '2024-04-29T09:00:00.123Z' } }], { now: NOW });
      assert.deepEqual(headers(t), ['Name', 'Created At'], kind);
      assert.equal(t.columnDefinitions[1]!.type, 'date');
      assert.deepEqual(t.rows[0]!.cells, ['x', '2024-04-29T09:00:00Z']);
    }
  });
});

describe('custom resources', () => {
  const widgetDef: ResourceDef = {
    group: 'example.com',
    version: 'v1',
    kind: 'Widget',
    listKind: 'WidgetList',
    plural: 'widgets',
    singular: 'widget',
    namespaced: true,
    subresources: [],
    verbs: [],
    schemaName: 'com.example.v1.Widget',
    custom: true,
  };
  const widget: KubeObject = {
    apiVersion: 'example.com/v1',
    kind: 'Widget',
    metadata: { name: 'w1', creationTimestamp: ago(3 * H), labels: { tier: 'b', app: 'a' } },
    spec: { replicas: 3, ratio: 0.5, enabled: true, items: [{ name: 'first' }, { name: 'second' }] },
    status: {
      conditions: [
        { type: 'Progressing', status: 'True' },
        { type: 'Ready', status: 'False', lastTransitionTime: ago(2 * D) },
      ],
    },
  };

  it('prints additionalPrinterColumns through JSONPath', () => {
    const columns: PrinterColumn[] = [
      { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas' },
      { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status', description: 'Whether the widget is ready' },
      { name: 'Since', type: 'date', jsonPath: ".status.conditions[?(@.type=='Ready')].lastTransitionTime" },
      { name: 'First', type: 'string', jsonPath: '.spec.items[0].name' },
      { name: 'Last', type: 'string', jsonPath: '.spec.items[-1].name' },
      { name: 'Ratio', type: 'number', jsonPath: '.spec.ratio', priority: 1 },
      { name: 'Enabled', type: 'boolean', jsonPath: '.spec.enabled', priority: 1 },
      { name: 'Labels', type: 'string', jsonPath: '.metadata.labels', priority: 1 },
      { name: 'App', type: 'string', jsonPath: ".metadata.labels['app']", priority: 1 },
      { name: 'Missing', type: 'string', jsonPath: '.status.nothing', priority: 1 },
      { name: 'Mismatch', type: 'integer', jsonPath: '.metadata.name', priority: 1 },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ];
    const t = toTable(widgetDef, [widget], { now: NOW, crdColumns: columns });
    assert.deepEqual(t.columnDefinitions[0], { name: 'Name', type: 'string', format: 'name', description: t.columnDefinitions[0]!.description, priority: 0 });
    assert.deepEqual(t.columnDefinitions[1], {
      name: 'Replicas',
      type: 'integer',
      format: '',
      description: 'Custom resource definition column (in JSONPath format): .spec.replicas',
      priority: 0,
    });
    assert.equal(t.columnDefinitions[2]!.description, 'Whether the widget is ready');
    assert.equal(t.columnDefinitions[6]!.priority, 1);
    assert.deepEqual(t.rows[0]!.cells, ['w1', 3, 'False', '2d', 'first', 'second', 0.5, true, '{"app":"a","tier":"b"}', 'a', null, null, '3h']);
    assert.equal((t.rows[0]!.object as { kind: string }).kind, 'PartialObjectMetadata');
  });

  it('defaults to an AGE column', () => {
    const t = toTable(widgetDef, [widget], { now: NOW });
    assert.deepEqual(
      t.columnDefinitions.map((c) => [c.name, c.type]),
      [
        ['Name', 'string'],
        ['Age', 'date'],
      ],
    );
    assert.deepEqual(t.rows[0]!.cells, ['w1', '3h']);
    assert.deepEqual(toTable(widgetDef, [{ metadata: { name: 'n' } }], { now: NOW }).rows[0]!.cells, ['n', null]);
  });

  it('shows <invalid> for an unparseable date', () => {
    const t = toTable(widgetDef, [{ metadata: { name: 'n' }, spec: { when: 'yesterday' } }], {
      now: NOW,
      crdColumns: [{ name: 'When', type: 'date', jsonPath: '.spec.when' }],
    });
    assert.deepEqual(t.rows[0]!.cells, ['n', '<invalid>']);
  });
});

describe('JSONPath subset', () => {
  const doc = { a: { 'b.c': 1, list: [{ k: 'x', v: 1 }, { k: 'y', v: 2 }, { k: 'y', v: 3 }] } };

  it('selects fields, indexes, wildcards and filters', () => {
    assert.deepEqual(evaluateJsonPath(doc, parseJsonPath('.a.list[1].v')), [2]);
    assert.deepEqual(evaluateJsonPath(doc, parseJsonPath('{.a.list[*].k}')), ['x', 'y', 'y']);
    assert.deepEqual(evaluateJsonPath(doc, parseJsonPath('$.a.list[?(@.k=="y")].v')), [2, 3]);
    assert.deepEqual(evaluateJsonPath(doc, parseJsonPath('.a.list[?(@.v > 1)].k')), ['y', 'y']);
    assert.deepEqual(evaluateJsonPath(doc, parseJsonPath('.a.list[?(@.k != "y")].v')), [1]);
    assert.deepEqual(evaluateJsonPath(doc, parseJsonPath('.a.b\\.c')), [1]);
    assert.deepEqual(evaluateJsonPath(doc, parseJsonPath(".a['b.c']")), [1]);
    assert.deepEqual(evaluateJsonPath(doc, parseJsonPath('.a.nope.deeper')), []);
  });

  it('rejects what it does not understand', () => {
    assert.throws(() => parseJsonPath('.a[1:2]'));
    assert.throws(() => parseJsonPath('.a[?(@.k=="y")'));
    assert.throws(() => parseJsonPath('a.b'));
  });
});
