import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import parsePrometheusText from 'parse-prometheus-text-format';
import { CONTAINER_NAME_LABEL, RESTART_COUNT_ANNOTATION } from '../../src/agent/contracts.js';
import type { NodeServer } from '../../src/agent/server/index.js';
import type { KubeObject } from '../../src/api/types.js';
import { resource } from '../../src/client/informer.js';
import { startCluster, type Cluster } from '../../src/controllers/workload-testkit.js';
import { runCriPod, type CriPod } from '../support/cri-pod.js';
import { startTestRuntime, type TestRuntime } from '../support/node-runtime.js';
import { waitFor } from '../support/wait.js';
import { kubectl, type Kubectl } from './harness.js';
import { startTestNodeServer, registerNode } from '../support/node-server.js';

const NODE = 'edge-1';
const PODS = resource('pods');
/** The spinner's CPU limit: a fifth of a core, so the busy loop shows as about 200m. */
const SPIN_QUOTA_US = 20_000;
const CPU_PERIOD_US = 100_000;
/** The writer writes this much with O_DIRECT, so it reaches the disk as block I/O. */
const WRITTEN_BYTES = 16 * 64 * 1024;

/**
 * `kubectl top node` and `kubectl top pod` against the API server's own metrics.k8s.io, which scrapes
 * the node server's /metrics/resource; containers run in a real runtime. Also /metrics/cadvisor
 * through nodes/proxy, with the block I/O the runtime's handler counted.
 */
describe('kubectl top and node metrics through the API server', () => {
  let rt: TestRuntime;
  let cluster: Cluster;
  let node: NodeServer;
  let k: Kubectl;
  const pods: KubeObject[] = [];

  /** Creates the pod in the API (Running, on the node) and runs its containers through CRI. */
  async function runPod(name: string, labels: Record<string, string>, containers: { name: string; command: string[]; cpuQuotaUs?: number }[]): Promise<void> {
    const created = await cluster.client.create(PODS, 'default', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, labels },
      spec: { nodeName: NODE, containers: containers.map((c) => ({ name: c.name, image: rt.image })) },
    });
    pods.push(created);
    await cluster.client.patch(PODS, 'default', name, 'merge', { status: { phase: 'Running' } }, { subresource: 'status' });
    const sandbox = await runCriPod(rt, 'default', name, created.metadata.uid!);
    for (const c of containers) await startContainer(sandbox, c);
  }

  async function startContainer(sandbox: CriPod, c: { name: string; command: string[]; cpuQuotaUs?: number }): Promise<void> {
    const { container_id: id } = await rt.cri.CreateContainer({
      pod_sandbox_id: sandbox.sandboxId,
      sandbox_config: sandbox.config,
      config: {
        metadata: { name: c.name, attempt: 0 },
        image: { image: rt.image },
        command: c.command,
        log_path: `${c.name}/0.log`,
        labels: { ...sandbox.config.labels, [CONTAINER_NAME_LABEL]: c.name },
        annotations: { [RESTART_COUNT_ANNOTATION]: '0' },
        ...(c.cpuQuotaUs ? { linux: { resources: { cpu_quota: c.cpuQuotaUs, cpu_period: CPU_PERIOD_US } } } : {}),
      },
    });
    await rt.cri.StartContainer({ container_id: id });
  }

  /** The rows of kubectl top's table, as column arrays, header first. */
  function rows(text: string): string[][] {
    return text.trim().split('\n').map((line) => line.trim().split(/\s+/));
  }

  before(async () => {
    rt = await startTestRuntime({ subnet: '10.196.0.0/24' });
    cluster = await startCluster();
    node = await startTestNodeServer(rt, cluster.server.pki!, { nodeName: NODE, pods: () => pods, client: cluster.client, adminSocket: join(rt.tmp, 'admin.sock') });
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    await registerNode(cluster.client, NODE, node.port, {
      labels: { tier: 'edge' },
      status: {
        capacity: { cpu: '2', memory: '4Gi', pods: '110' },
        allocatable: { cpu: '2', memory: '4Gi', pods: '110' },
        conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', lastHeartbeatTime: now, lastTransitionTime: now }],
      },
    });
    await runPod('busy', { app: 'busy' }, [
      { name: 'spin', command: ['sh', '-c', 'while :; do :; done'], cpuQuotaUs: SPIN_QUOTA_US },
      { name: 'idle', command: ['sleep', '1000'] },
    ]);
    await runPod('disk', { app: 'disk' }, [{ name: 'writer', command: ['sh', '-c', 'dd if=/dev/zero of=/tmp/f bs=64k count=16 oflag=direct; exec sleep 1000'] }]);
    k = await kubectl(cluster.server.kubeconfigPath);
  });

  after(async () => {
    await k?.cleanup();
    await node?.close();
    await cluster?.close();
    await rt?.close();
  });

  it('lists metrics.k8s.io in discovery, aggregated and legacy', async () => {
    const groups = JSON.parse(await k('get', '--raw', '/apis'));
    assert.ok(groups.groups.some((g: { name: string }) => g.name === 'metrics.k8s.io'), JSON.stringify(groups));
    const resources = JSON.parse(await k('get', '--raw', '/apis/metrics.k8s.io/v1beta1'));
    assert.deepEqual(
      resources.resources.map((r: { name: string; kind: string; namespaced: boolean; verbs: string[] }) => [r.name, r.kind, r.namespaced, r.verbs]),
      [['nodes', 'NodeMetrics', false, ['get', 'list']], ['pods', 'PodMetrics', true, ['get', 'list']]],
    );
    assert.match(await k('api-resources', '--api-group=metrics.k8s.io'), /^nodes\s+metrics\.k8s\.io\/v1beta1\s+false\s+NodeMetrics$/m);
  });

  it('kubectl top node shows the node’s cpu and memory against its allocatable', async () => {
    const out = await k('top', 'node');
    const [header, row] = rows(out);
    assert.deepEqual(header, ['NAME', 'CPU(cores)', 'CPU(%)', 'MEMORY(bytes)', 'MEMORY(%)'], out);
    assert.equal(row![0], NODE, out);
    assert.match(row![1]!, /^\d+m$/, out);
    assert.ok(parseInt(row![1]!, 10) > 0, out);
    assert.match(row![2]!, /^\d+%$/, out);
    assert.match(row![3]!, /^\d+Mi$/, out);
    assert.ok(parseInt(row![3]!, 10) > 0, out);
    assert.equal((await k('top', 'node', '-l', 'tier=edge', '--no-headers')).trim().split(/\s+/)[0], NODE);
    const none = await k.result('top', 'node', '-l', 'tier=cloud');
    assert.equal(none.stderr.trim(), 'error: metrics not available yet', 'kubectl’s words for an empty NodeMetricsList');
    const metrics = JSON.parse(await k('get', '--raw', `/apis/metrics.k8s.io/v1beta1/nodes/${NODE}`));
    assert.equal(metrics.kind, 'NodeMetrics');
    assert.match(metrics.window, /^\d+(\.\d+)?m?s$/);
    assert.ok(Date.parse(metrics.timestamp) > 0);
  });

  it('kubectl top pod lists the running pods, with per-container usage and selectors', async () => {
    const out = await k('top', 'pod');
    const table = rows(out);
    assert.deepEqual(table[0], ['NAME', 'CPU(cores)', 'MEMORY(bytes)'], out);
    assert.deepEqual(table.slice(1).map((r) => r[0]), ['busy', 'disk'], out);
    const busy = table.find((r) => r[0] === 'busy')!;
    // The spinner runs flat out under its limit: well above zero, never above its quota.
    const millicores = parseInt(busy[1]!, 10);
    assert.ok(millicores > 0 && millicores <= (SPIN_QUOTA_US / CPU_PERIOD_US) * 1000 * 1.5, out);
    assert.match(busy[2]!, /^\d+Mi$/, out);

    const containers = rows(await k('top', 'pod', '-l', 'app=busy', '--containers'));
    assert.deepEqual(containers[0], ['POD', 'NAME', 'CPU(cores)', 'MEMORY(bytes)']);
    assert.deepEqual(containers.slice(1).map((r) => [r[0], r[1]]), [['busy', 'idle'], ['busy', 'spin']]);
    assert.ok(parseInt(containers.find((r) => r[1] === 'spin')![2]!, 10) > 0, 'the spinner uses CPU');

    assert.deepEqual(rows(await k('top', 'pod', 'disk', '--no-headers')).map((r) => r[0]), ['disk']);
    const missing = await k.result('top', 'pod', 'nope');
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /pods "nope" not found/);
    const listed = JSON.parse(await k('get', '--raw', '/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3Ddisk'));
    assert.equal(listed.kind, 'PodMetricsList');
    assert.deepEqual(listed.items.map((p: KubeObject) => [p.metadata.name, p.metadata.labels]), [['disk', { app: 'disk' }]]);
  });

  it('serves /metrics/cadvisor through nodes/proxy with the writer’s block I/O', async () => {
    const writes = await waitFor('the writer’s writes in /metrics/cadvisor', async () => {
      const families = parsePrometheusText(await k('get', '--raw', `/api/v1/nodes/${NODE}/proxy/metrics/cadvisor`));
      const series = families.find((f) => f.name === 'container_fs_writes_bytes_total')?.metrics.find((m) => m.labels?.container === 'writer' && m.labels.pod === 'disk');
      return series && Number(series.value) >= WRITTEN_BYTES ? series : undefined;
    });
    assert.equal(writes.labels?.namespace, 'default');
    const resourceText = await k('get', '--raw', `/api/v1/nodes/${NODE}/proxy/metrics/resource`);
    assert.match(resourceText, /^container_cpu_usage_seconds_total\{container="spin",namespace="default",pod="busy"\} [\d.e+]+ \d+$/m);
  });
});
