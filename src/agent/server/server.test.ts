import assert from 'node:assert/strict';
import { readFile, rename } from 'node:fs/promises';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import parsePrometheusText, { type ParsedFamily } from 'parse-prometheus-text-format';
import { WebSocket } from 'ws';
import { startCriContainer, runCriPod, podObject, type CriPod } from '../../../test/support/cri-pod.js';
import { startTestRuntime, type TestRuntime } from '../../../test/support/node-runtime.js';
import { waitFor } from '../../../test/support/wait.js';
import { ensurePki, issueClientCert, type Pki } from '../../apiserver/auth/pki.js';
import type { KubeObject } from '../../api/types.js';
import type { Summary } from '../stats.js';
import type { NodeServer } from './server.js';
import { startTestNodeServer } from '../../../test/support/node-server.js';

const NODE = 'node-a';
const HTTP_PORT = 8080;
const CONTAINERS = ['printer', 'web', 'crasher', 'counter', 'rotor', 'writer'];
/** What the writer container writes with O_DIRECT, so it reaches the disk as block I/O. */
const WRITTEN_BYTES = 16 * 64 * 1024;

interface Identity {
  cert?: string;
  key?: string;
  token?: string;
}

describe('node server over a real runtime', () => {
  let rt: TestRuntime;
  let pki: Pki;
  let foreign: Pki;
  let server: NodeServer;
  let pod: CriPod;
  let pods: KubeObject[] = [];
  let apiserver: Identity;

  function request(path: string, who: Identity = apiserver): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = who.token ? { Authorization: `Bearer ${who.token}` } : {};
      const req = https.request({ host: '127.0.0.1', port: server.port, path, ca: pki.caCertPem, cert: who.cert, key: who.key, headers, agent: false }, resolve);
      req.on('error', reject);
      req.end();
    });
  }

  async function get(path: string, who?: Identity): Promise<{ status: number; body: string; type: string }> {
    const res = await request(path, who);
    let body = '';
    for await (const chunk of res) body += chunk;
    return { status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) };
  }

  function websocket(path: string, protocol: string): Promise<{ ws: WebSocket; channels: Map<number, Buffer>; closed: Promise<void> }> {
    const ws = new WebSocket(`wss://127.0.0.1:${server.port}${path}`, [protocol], { ca: pki.caCertPem, cert: apiserver.cert, key: apiserver.key });
    const channels = new Map<number, Buffer>();
    ws.on('message', (data: Buffer) => channels.set(data[0]!, Buffer.concat([channels.get(data[0]!) ?? Buffer.alloc(0), data.subarray(1)])));
    const closed = new Promise<void>((resolve) => ws.on('close', () => resolve()));
    return new Promise((resolve, reject) => {
      ws.on('open', () => resolve({ ws, channels, closed }));
      ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.on('error', reject);
    });
  }

  before(async () => {
    rt = await startTestRuntime({ subnet: '10.198.0.0/24' });
    pki = await ensurePki(join(rt.tmp, 'pki'), { hosts: [] });
    foreign = await ensurePki(join(rt.tmp, 'foreign-pki'), { hosts: [] });
    apiserver = { cert: pki.kubeletClientCertPem, key: pki.kubeletClientKeyPem };
    pod = await runCriPod(rt, 'test', 'web', 'uid-web');
    pods = [podObject(pod, NODE, CONTAINERS, rt.image)];
    server = await startTestNodeServer(rt, pki, { nodeName: NODE, pods: () => pods, rootDir: rt.tmp, adminSocket: join(rt.tmp, 'admin.sock') });
    await startCriContainer(rt, pod, 'printer', ['sh', '-c', 'echo one; echo two; echo three; printf "no "; printf "newline"; sleep 0.2; echo; exec sleep 1000']);
    await startCriContainer(rt, pod, 'web', [
      'sh',
      '-c',
      `/bin/busybox ping -c 2 -W 1 ${rt.gateway}; echo served > /tmp/index.html; exec httpd -f -p ${HTTP_PORT} -h /tmp`,
    ]);
    const first = await startCriContainer(rt, pod, 'crasher', ['sh', '-c', 'echo first run; exit 1']);
    await waitFor('the first crasher to exit', async () => (await rt.cri.ContainerStatus({ container_id: first })).status?.state === 'CONTAINER_EXITED');
    await startCriContainer(rt, pod, 'crasher', ['sh', '-c', 'echo second run; exec sleep 1000'], 1);
    await startCriContainer(rt, pod, 'writer', ['sh', '-c', 'dd if=/dev/zero of=/tmp/f bs=64k count=16 oflag=direct; exec sleep 1000']);
  });

  after(async () => {
    await server?.close();
    await rt?.close();
  });

  it('refuses callers without a certificate of the cluster CA, and other users without an API to ask', async () => {
    const anonymous = await get('/pods', {});
    assert.equal(anonymous.status, 401);
    assert.deepEqual(JSON.parse(anonymous.body), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 });
    const stranger = await issueClientCert(foreign, { cn: 'kube-apiserver-kubelet-client', groups: ['system:masters'] });
    assert.equal((await get('/pods', { cert: stranger.certPem, key: stranger.keyPem })).status, 401);
    assert.equal((await get('/pods', { token: 'not-checked-without-an-api' })).status, 401);
    const bob = await issueClientCert(pki, { cn: 'bob', groups: ['dev'] });
    const refused = await get('/stats/summary', { cert: bob.certPem, key: bob.keyPem });
    assert.equal(refused.status, 403);
    assert.equal(JSON.parse(refused.body).message, 'Forbidden (user=bob, verb=get, resource=nodes, subresource=stats)');
  });

  it('answers healthz and the pod list', async () => {
    assert.deepEqual(await get('/healthz'), { status: 200, body: 'ok', type: 'text/plain; charset=utf-8' });
    const list = JSON.parse((await get('/pods')).body);
    assert.equal(list.kind, 'PodList');
    assert.equal(list.apiVersion, 'v1');
    assert.deepEqual(list.items.map((p: KubeObject) => p.metadata.name), ['web']);
  });

  it('serves container logs: whole, tail, timestamps, limit, previous', async () => {
    const all = await waitFor('the printer log', async () => {
      const r = await get('/containerLogs/test/web/printer');
      return r.body.endsWith('no newline\n') ? r : undefined;
    });
    assert.equal(all.status, 200);
    assert.equal(all.type, 'text/plain');
    assert.equal(all.body, 'one\ntwo\nthree\nno newline\n');
    assert.equal((await get('/containerLogs/test/web/printer?tailLines=2')).body, 'three\nno newline\n');
    const stamped = (await get('/containerLogs/test/web/printer?tailLines=1&timestamps=true')).body;
    assert.match(stamped, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) no newline\n$/);
    assert.equal((await get('/containerLogs/test/web/printer?limitBytes=6')).body, 'one\ntw');
    assert.equal((await get('/containerLogs/test/web/printer?sinceTime=2000-01-01T00:00:00Z&tailLines=1')).body, 'no newline\n');

    assert.equal((await waitFor('the second crasher log', async () => {
      const r = await get('/containerLogs/test/web/crasher');
      return r.body ? r : undefined;
    })).body, 'second run\n');
    assert.equal((await get('/containerLogs/test/web/crasher?previous=true')).body, 'first run\n');
    const noPrevious = await get('/containerLogs/test/web/printer?previous=true');
    assert.equal(noPrevious.status, 400);
    assert.equal(JSON.parse(noPrevious.body).message, 'previous terminated container "printer" in pod "web" not found');
  });

  it('answers bad log requests with a Status', async () => {
    const cases: [string, number, string][] = [
      ['/containerLogs/test/nope/printer', 404, 'pod "nope" does not exist'],
      ['/containerLogs/test/web/nope', 404, 'container "nope" not found in pod "web"'],
      ['/containerLogs/test/web/printer?tailLines=-1', 400, 'tailLines: Invalid value: must be greater than or equal to 0'],
      ['/containerLogs/test/web/printer?sinceSeconds=5&sinceTime=2000-01-01T00:00:00Z', 400, 'at most one of `sinceTime` or `sinceSeconds` may be specified'],
      ['/nowhere', 404, 'the node server has no /nowhere'],
    ];
    for (const [path, code, message] of cases) {
      const r = await get(path);
      assert.equal(r.status, code, path);
      assert.equal(JSON.parse(r.body).message, message, path);
    }
  });

  it('follows a log until the container exits', async () => {
    await startCriContainer(rt, pod, 'counter', ['sh', '-c', 'for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done']);
    const r = await get('/containerLogs/test/web/counter?follow=true');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'line 1\nline 2\nline 3\nline 4\nline 5\n');
  });

  it('follows a log across a rotation (renamed away, reopened by ReopenContainerLog)', async () => {
    const id = await startCriContainer(rt, pod, 'rotor', ['sh', '-c', 'i=0; while true; do echo n $i; i=$((i+1)); sleep 0.05; done']);
    const logPath = (await rt.cri.ContainerStatus({ container_id: id })).status!.log_path;
    const res = await request('/containerLogs/test/web/rotor?follow=true');
    let text = '';
    res.on('data', (chunk: Buffer) => (text += chunk.toString()));
    try {
      await waitFor('a few followed lines', async () => text.includes('n 5\n'));
      await rename(logPath, `${logPath}.1`);
      await rt.cri.ReopenContainerLog({ container_id: id });
      const firstOfNewFile = await waitFor('a line in the new log file', async () => /stdout F (n \d+)\n/.exec(await readFile(logPath, 'utf8'))?.[1]);
      await waitFor(`the followed stream to reach "${firstOfNewFile}" from the new file`, async () => text.includes(`${firstOfNewFile}\n`));
      const numbers = text.split('\n').filter(Boolean).map((line) => Number(line.slice(2)));
      assert.deepEqual(numbers, numbers.map((_, i) => i), 'no line lost or repeated across the rotation');
    } finally {
      res.destroy();
      await rt.cri.StopContainer({ container_id: id, timeout: 0 });
    }
  });

  it('execs over WebSocket v5 through the streaming server, exit code in the Status', async () => {
    const command = ['sh', '-c', 'echo out; echo err >&2; exit 3'].map((c) => `command=${encodeURIComponent(c)}`).join('&');
    const session = await websocket(`/exec/test/web/printer?${command}&output=1&error=1`, 'v5.channel.k8s.io');
    await session.closed;
    assert.equal(session.ws.protocol, 'v5.channel.k8s.io');
    assert.equal(session.channels.get(1)?.toString(), 'out\n');
    assert.equal(session.channels.get(2)?.toString(), 'err\n');
    const status = JSON.parse(session.channels.get(3)!.toString());
    assert.equal(status.reason, 'NonZeroExitCode');
    assert.deepEqual(status.details.causes, [{ reason: 'ExitCode', message: '3' }]);
  });

  it('refuses exec without an upgrade, or for a container that does not run', async () => {
    const plain = await get('/exec/test/web/printer?command=true&output=1');
    assert.equal(plain.status, 400);
    assert.equal(JSON.parse(plain.body).message, 'exec needs a connection upgrade (WebSocket or SPDY)');
    await assert.rejects(websocket('/exec/test/web/nope?command=true&output=1', 'v5.channel.k8s.io'), /HTTP 404/);
  });

  it('forwards a port over WebSocket through the streaming server', async () => {
    const body = await waitFor('the pod web server through port-forward', async () => {
      const session = await websocket(`/portForward/test/web?port=${HTTP_PORT}`, 'portforward.k8s.io');
      session.ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('GET /index.html HTTP/1.0\r\n\r\n')]));
      await session.closed;
      const data = session.channels.get(0)?.subarray(2).toString() ?? '';
      return data.includes('served') ? data : undefined;
    });
    assert.match(body, /^HTTP\/1\.[01] 200/);
  });

  it('reports the Summary API with cpu, memory and network of the node and its pods', async () => {
    await waitFor('the web container to have pinged', async () => (await get('/containerLogs/test/web/web')).body.includes('packets received'));
    await get('/stats/summary');
    const second = await get('/stats/summary');
    assert.equal(second.status, 200);
    const summary = JSON.parse(second.body) as Summary;
    const { node } = summary;
    assert.equal(node.nodeName, NODE);
    assert.ok(node.cpu.usageCoreNanoSeconds! > 0);
    assert.ok(node.cpu.usageNanoCores !== undefined);
    assert.ok(node.memory.workingSetBytes! > 0 && node.memory.availableBytes! > 0 && node.memory.usageBytes! > 0);
    assert.ok(node.network && node.network.interfaces.length > 0 && !node.network.interfaces.some((i) => i.name === 'lo'));
    assert.ok(node.fs.capacityBytes! > 0);
    assert.ok(node.runtime?.imageFs?.usedBytes! > 0);
    const web = summary.pods.find((p) => p.podRef.name === 'web');
    assert.ok(web, JSON.stringify(summary.pods));
    assert.deepEqual(web.podRef, { name: 'web', namespace: 'test', uid: 'uid-web' });
    assert.ok(web.cpu!.usageCoreNanoSeconds! > 0);
    assert.ok(web.memory!.workingSetBytes! > 0);
    assert.ok(web.network!.txBytes! > 0, JSON.stringify(web.network));
    const printer = web.containers.find((c) => c.name === 'printer');
    assert.ok(printer?.cpu?.usageCoreNanoSeconds !== undefined && printer.cpu.usageNanoCores !== undefined);
    assert.ok(printer.memory!.workingSetBytes! > 0);
    assert.ok(printer.logs!.usedBytes! > 0);
    assert.ok(printer.rootfs!.capacityBytes! > 0);
  });

  it('serves the kubelet resource metrics: node, pod and container cpu and memory, stamped', async () => {
    const res = await get('/metrics/resource');
    assert.equal(res.status, 200);
    assert.equal(res.type, 'text/plain; version=0.0.4; charset=utf-8');
    const families = metricFamilies(res.body);
    assert.equal(families.get('resource_scrape_error')?.type, 'GAUGE');
    assert.equal(sampleOf(families, 'resource_scrape_error', {}).value, '0');
    assert.match(res.body, /^# HELP node_cpu_usage_seconds_total \[STABLE\] Cumulative cpu time consumed by the node in core-seconds$/m);
    assert.equal(families.get('node_cpu_usage_seconds_total')?.type, 'COUNTER');
    const nodeCpu = sampleOf(families, 'node_cpu_usage_seconds_total', {});
    assert.ok(Number(nodeCpu.value) > 0 && Number(nodeCpu.timestamp_ms) > 0, JSON.stringify(nodeCpu));
    assert.ok(Number(sampleOf(families, 'node_memory_working_set_bytes', {}).value) > 0);
    const podLabels = { namespace: 'test', pod: 'web' };
    assert.ok(Number(sampleOf(families, 'pod_cpu_usage_seconds_total', podLabels).value) > 0);
    assert.ok(Number(sampleOf(families, 'pod_memory_working_set_bytes', podLabels).value) > 0);
    const printer = { container: 'printer', ...podLabels };
    assert.ok(Number(sampleOf(families, 'container_cpu_usage_seconds_total', printer).value) > 0);
    assert.ok(Number(sampleOf(families, 'container_memory_working_set_bytes', printer).value) > 0);
    const started = Number(sampleOf(families, 'container_start_time_seconds', printer).value);
    assert.ok(started > 1e9 && started <= Date.now() / 1000, String(started));
  });

  it('serves cAdvisor metrics with block I/O from the runtime and pod packet counters', async () => {
    const writer = { container: 'writer', namespace: 'test', pod: 'web', device: '' };
    const families = await waitFor('the writer\'s writes in /metrics/cadvisor', async () => {
      const found = metricFamilies((await get('/metrics/cadvisor')).body);
      const written = found.get('container_fs_writes_bytes_total')?.metrics.find((m) => matchesLabels(m.labels, writer));
      return written && Number(written.value) >= WRITTEN_BYTES ? found : undefined;
    });
    for (const name of ['container_fs_writes_bytes_total', 'container_fs_writes_total', 'container_fs_reads_bytes_total', 'container_fs_reads_total', 'container_cpu_usage_seconds_total']) {
      assert.equal(families.get(name)?.type, 'COUNTER', name);
    }
    const writes = sampleOf(families, 'container_fs_writes_total', writer);
    assert.ok(Number(writes.value) >= 1, JSON.stringify(writes));
    const written = sampleOf(families, 'container_fs_writes_bytes_total', writer);
    assert.equal(written.labels?.image, rt.image);
    assert.match(written.labels?.name ?? '', /^[0-9a-f]{64}$/);
    assert.equal(written.labels?.id, `/poduid-web/${written.labels?.name}`);
    assert.ok(Number(sampleOf(families, 'container_cpu_usage_seconds_total', { container: 'printer', cpu: 'total', pod: 'web' }).value) > 0);
    assert.ok(Number(sampleOf(families, 'container_memory_working_set_bytes', { container: 'printer', pod: 'web' }).value) > 0);
    assert.ok(Number(sampleOf(families, 'container_memory_rss', { container: 'printer', pod: 'web' }).value) > 0);
    const eth0 = { container: '', pod: 'web', namespace: 'test', interface: 'eth0', id: '/poduid-web' };
    for (const name of ['container_network_receive_bytes_total', 'container_network_receive_packets_total', 'container_network_transmit_bytes_total', 'container_network_transmit_packets_total']) {
      assert.ok(Number(sampleOf(families, name, eth0).value) > 0, name);
    }
    assert.equal(sampleOf(families, 'container_network_receive_errors_total', eth0).value, '0');
    assert.ok(Number(sampleOf(families, 'container_cpu_usage_seconds_total', { id: '/', cpu: 'total' }).value) > 0, 'the node as cAdvisor\'s root cgroup');
    assert.equal(sampleOf(families, 'container_scrape_error', {}).value, '0');
  });

  it('asks for nodes/metrics on the metrics paths', async () => {
    const bob = await issueClientCert(pki, { cn: 'bob', groups: ['dev'] });
    for (const path of ['/metrics/resource', '/metrics/cadvisor']) {
      const refused = await get(path, { cert: bob.certPem, key: bob.keyPem });
      assert.equal(refused.status, 403);
      assert.equal(JSON.parse(refused.body).message, 'Forbidden (user=bob, verb=get, resource=nodes, subresource=metrics)');
    }
  });
});

function metricFamilies(text: string): Map<string, ParsedFamily> {
  return new Map(parsePrometheusText(text).map((f) => [f.name, f]));
}

function matchesLabels(labels: Record<string, string> | undefined, wanted: Record<string, string>): boolean {
  return Object.entries(wanted).every(([k, v]) => (labels?.[k] ?? '') === v);
}

/** The one series of `name` whose labels include `labels`. */
function sampleOf(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string>): ParsedFamily['metrics'][number] {
  const matching = (families.get(name)?.metrics ?? []).filter((m) => matchesLabels(m.labels, labels));
  assert.equal(matching.length, 1, `${name}${JSON.stringify(labels)}: ${JSON.stringify(families.get(name)?.metrics)}`);
  return matching[0]!;
}
