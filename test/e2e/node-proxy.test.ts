import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import type { NodeServer } from '../../src/agent/server/index.js';
import type { KubeObject } from '../../src/api/types.js';
import { resource } from '../../src/client/informer.js';
import { startCluster, type Cluster } from '../../src/controllers/workload-testkit.js';
import { runCriPod, startCriContainer, type CriPod } from '../support/cri-pod.js';
import { startTestRuntime, type TestRuntime } from '../support/node-runtime.js';
import { waitFor } from '../support/wait.js';
import { kubectl, type Kubectl } from './harness.js';
import { checkKubectlExec, checkKubectlPortForward } from '../support/kubectl-streams.js';
import { startTestNodeServer, registerNode } from '../support/node-server.js';

const NODE = 'edge-1';
const PODS = resource('pods');
const SERVICE_ACCOUNTS = resource('serviceaccounts');
const HTTP_PORT = 8080;

/**
 * kubectl logs / exec and nodes/proxy through the API server to a node server, whose containers run
 * in a real runtime: API server → (TLS, kubelet-client certificate) → node server → CRI streaming server.
 */
describe('the API server reaches pods through the node server', () => {
  let rt: TestRuntime;
  let cluster: Cluster;
  let node: NodeServer;
  let k: Kubectl;
  let cri: CriPod;
  const pods: KubeObject[] = [];

  function nodeGet(path: string, token: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port: node.port, path, ca: cluster.server.pki!.caCertPem, headers: { Authorization: `Bearer ${token}` }, agent: false },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }

  before(async () => {
    rt = await startTestRuntime({ subnet: '10.199.0.0/24' });
    cluster = await startCluster();
    node = await startTestNodeServer(rt, cluster.server.pki!, { nodeName: NODE, pods: () => pods, client: cluster.client });
    await registerNode(cluster.client, NODE, node.port);
    const created = await cluster.client.create(PODS, 'default', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web' },
      spec: { nodeName: NODE, containers: ['printer', 'shell', 'counter', 'httpd'].map((name) => ({ name, image: rt.image })) },
    });
    pods.push(created);
    // kubectl port-forward insists on a Running pod; no pod worker is here to report it.
    await cluster.client.patch(PODS, 'default', 'web', 'merge', { status: { phase: 'Running' } }, { subresource: 'status' });
    await cluster.client.create(PODS, 'default', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'pending' }, spec: { containers: [{ name: 'c', image: rt.image }] } });
    cri = await runCriPod(rt, 'default', 'web', created.metadata.uid!);
    await startCriContainer(rt, cri, 'printer', ['sh', '-c', 'echo one; echo two; exec sleep 1000']);
    await startCriContainer(rt, cri, 'shell', ['sleep', '1000']);
    await startCriContainer(rt, cri, 'httpd', ['sh', '-c', `echo served > /tmp/index.html && exec httpd -f -p ${HTTP_PORT} -h /tmp`]);
    k = await kubectl(cluster.server.kubeconfigPath);
  });

  after(async () => {
    await k?.cleanup();
    await node?.close();
    await cluster?.close();
    await rt?.close();
  });

  it('kubectl logs: whole, --tail, --timestamps', async () => {
    await waitFor('the printer log through kubectl', async () => (await k.result('logs', 'web', '-c', 'printer')).stdout === 'one\ntwo\n');
    assert.equal(await k('logs', 'web', '-c', 'printer', '--tail=1'), 'two\n');
    assert.match(await k('logs', 'web', '-c', 'printer', '--tail=1', '--timestamps'), /^\d{4}-\d\d-\d\dT\S+ two\n$/);
  });

  it('kubectl logs -f follows until the container exits', async () => {
    await startCriContainer(rt, cri, 'counter', ['sh', '-c', 'for i in 1 2 3; do echo tick $i; sleep 0.2; done']);
    assert.equal(await k('logs', '-f', 'web', '-c', 'counter'), 'tick 1\ntick 2\ntick 3\n');
  });

  it('answers log requests the pod cannot serve with kube\'s messages', async () => {
    const unnamed = await k.result('get', '--raw', '/api/v1/namespaces/default/pods/web/log');
    assert.notEqual(unnamed.code, 0);
    assert.match(unnamed.stderr, /a container name must be specified for pod web, choose one of: \[printer shell counter httpd\]/);
    const unbound = await k.result('logs', 'pending');
    assert.match(unbound.stderr, /pod pending does not have a host assigned/);
    const previous = await k.result('logs', 'web', '-c', 'printer', '--previous');
    assert.match(previous.stderr, /previous terminated container "printer" in pod "web" not found/);
    const wrong = await k.result('logs', 'web', '-c', 'nope');
    assert.match(wrong.stderr, /container nope is not valid for pod web/);
    const plain = await k.result('get', '--raw', '/api/v1/namespaces/default/pods/web/exec?command=true&container=shell&stdout=true');
    assert.match(plain.stderr, /Upgrade request required/);
  });

  it('kubectl exec runs commands, passes stdin and propagates the exit code', () => checkKubectlExec(k, 'web', 'shell'));

  it('kubectl port-forward reaches a port in the pod (WebSocket-tunneled SPDY, through the node server)', () => checkKubectlPortForward(k, 'web', HTTP_PORT));

  it('kubectl get --raw reaches the node server through nodes/proxy', async () => {
    const summary = JSON.parse(await k('get', '--raw', `/api/v1/nodes/${NODE}/proxy/stats/summary`));
    assert.equal(summary.node.nodeName, NODE);
    assert.ok(summary.node.cpu.usageCoreNanoSeconds > 0);
    assert.ok(summary.pods.some((p: { podRef: { name: string } }) => p.podRef.name === 'web'));
    assert.equal(await k('get', '--raw', `/api/v1/nodes/${NODE}/proxy/healthz`), 'ok');
  });

  it('the node server checks bearer tokens with TokenReview and SubjectAccessReview', async () => {
    assert.equal((await nodeGet('/healthz', cluster.server.admin.token)).status, 200);
    const sa = await cluster.client.createSubresource<{ status: { token: string } }>(SERVICE_ACCOUNTS, 'default', 'default', 'token', {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {},
    });
    const refused = await nodeGet('/stats/summary', sa.status.token);
    assert.equal(refused.status, 403);
    assert.equal(JSON.parse(refused.body).message, `Forbidden (user=system:serviceaccount:default:default, verb=get, resource=nodes, subresource=stats)`);
    assert.equal((await nodeGet('/healthz', 'not-a-token')).status, 401);
  });
});
