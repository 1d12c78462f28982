import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { NodeServer } from '../agent/server/index.js';
import type { KubeObject } from '../api/types.js';
import { issueServingCert } from '../apiserver/auth/pki.js';
import { resource } from '../client/informer.js';
import { startCluster, type Cluster } from '../controllers/workload-testkit.js';
import { kubectl, type Kubectl } from '../../test/e2e/harness.js';
import { runCriPod, startCriContainer } from '../../test/support/cri-pod.js';
import { startTestRuntime, type TestRuntime } from '../../test/support/node-runtime.js';
import { waitFor } from '../../test/support/wait.js';
import { Link } from './link-testkit.js';
import { EdgeHub } from './proxy.js';
import { checkKubectlExec, checkKubectlPortForward } from '../../test/support/kubectl-streams.js';
import { startTestNodeServer, registerNode } from '../../test/support/node-server.js';

const NODE = 'edge-upgrade';
const PODS = resource('pods');
const HTTP_PORT = 8080;
const HEALTH = { periodMs: 100, timeoutMs: 500 };

interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * kubectl exec and port-forward through EdgeHub: kubectl → EdgeHub (TLS, local token) → link →
 * API server (the node's credentials) → node server → CRI streaming server of a real runtime.
 */
describe('EdgeHub relays upgrade requests', () => {
  let rt: TestRuntime;
  let cluster: Cluster;
  let node: NodeServer;
  let link: Link;
  let hub: EdgeHub;
  let k: Kubectl;
  let dir: string;
  let token: string;

  /** An exec upgrade request written by hand, so the test sees EdgeHub's own answer. */
  function upgradeRequest(headers: Record<string, string>): Promise<RawAnswer> {
    return new Promise((resolve, reject) => {
      const req = https.request({
        host: '127.0.0.1',
        port: new URL(hub.url).port,
        path: `/api/v1/namespaces/default/pods/web/exec?command=true&container=shell&stdout=true`,
        ca: cluster.server.pki!.caCertPem,
        agent: false,
        headers: { Connection: 'Upgrade', Upgrade: 'SPDY/3.1', 'X-Stream-Protocol-Version': 'v4.channel.k8s.io', ...headers },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('upgrade', (res, socket) => {
        socket.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
      });
      req.on('error', reject);
      req.end();
    });
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-edgehub-upgrade-'));
    rt = await startTestRuntime({ subnet: '10.197.0.0/24' });
    cluster = await startCluster();
    const pki = cluster.server.pki!;
    const pods: KubeObject[] = [];
    node = await startTestNodeServer(rt, pki, { nodeName: NODE, pods: () => pods, client: cluster.client });
    await registerNode(cluster.client, NODE, node.port);
    const created = await cluster.client.create(PODS, 'default', {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web' },
      spec: { nodeName: NODE, containers: ['shell', 'httpd'].map((name) => ({ name, image: rt.image })) },
    });
    pods.push(created);
    // kubectl port-forward insists on a Running pod; no pod worker is here to report it.
    await cluster.client.patch(PODS, 'default', 'web', 'merge', { status: { phase: 'Running' } }, { subresource: 'status' });
    const cri = await runCriPod(rt, 'default', 'web', created.metadata.uid!);
    await startCriContainer(rt, cri, 'shell', ['sleep', '1000']);
    await startCriContainer(rt, cri, 'httpd', ['sh', '-c', `echo served > /tmp/index.html && exec httpd -f -p ${HTTP_PORT} -h /tmp`]);

    link = await Link.start(cluster.server.url);
    const hubServing = await issueServingCert(pki, { cn: 'edgehub', hosts: ['127.0.0.1'] });
    token = randomBytes(24).toString('base64url');
    const admin = cluster.server.admin;
    hub = await EdgeHub.start({
      endpoints: [link.url],
      credentials: { caPem: admin.caPem, certPem: admin.certPem, keyPem: admin.keyPem },
      cachePath: join(dir, 'cache.db'),
      listen: { host: '127.0.0.1', port: 0 },
      serving: hubServing,
      token,
      health: HEALTH,
    });
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'edgehub', cluster: { server: hub.url, 'certificate-authority-data': Buffer.from(pki.caCertPem).toString('base64') } }],
        users: [{ name: 'local', user: { token } }],
        contexts: [{ name: 'edgehub', context: { cluster: 'edgehub', user: 'local' } }],
        'current-context': 'edgehub',
      }),
    );
    k = await kubectl(kubeconfig);
  });

  after(async () => {
    await k?.cleanup();
    await hub?.close();
    await link?.close();
    await node?.close();
    await cluster?.close();
    await rt?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('kubectl exec runs commands, passes stdin and propagates the exit code', () => checkKubectlExec(k, 'web', 'shell'));

  it('kubectl port-forward reaches a port in the pod', () => checkKubectlPortForward(k, 'web', HTTP_PORT));

  it('counts relayed upgrades and their bytes', async () => {
    const metrics = await new Promise<string>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: new URL(hub.url).port, path: '/metrics', ca: cluster.server.pki!.caCertPem, agent: false }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(text));
      }).on('error', reject);
    });
    assert.match(metrics, /^edgehub_upgrade_requests_total\{result="relayed"\} [1-9]/m);
    assert.match(metrics, /^edgehub_proxied_bytes_total\{direction="to_cloud"\} [1-9]/m);
  });

  it('refuses an upgrade without the token with 401', async () => {
    const answer = await upgradeRequest({});
    assert.equal(answer.status, 401);
    assert.equal(JSON.parse(answer.body).reason, 'Unauthorized');
  });

  it('answers an upgrade with a 503 Status while the node is offline', async () => {
    link.cut();
    try {
      await waitFor('the cloud to be marked unhealthy', async () => !hub.health.healthy);
      const answer = await upgradeRequest({ Authorization: `Bearer ${token}` });
      assert.equal(answer.status, 503);
      const status = JSON.parse(answer.body) as { kind: string; reason: string; message: string };
      assert.equal(status.kind, 'Status');
      assert.equal(status.reason, 'ServiceUnavailable');
      assert.match(status.message, /the node is offline .* GET \/api\/v1\/namespaces\/default\/pods\/web\/exec was refused/);
    } finally {
      link.heal();
    }
  });
});
