import type { KubeObject } from '../../src/api/types.js';
import { startNodeServer, type NodeServer, type NodeServerOptions } from '../../src/agent/server/index.js';
import { issueServingCert, type Pki } from '../../src/apiserver/auth/pki.js';
import type { KubeClient } from '../../src/client/client.js';
import { resource } from '../../src/client/informer.js';
import type { TestRuntime } from './node-runtime.js';

const NODES = resource('nodes');

/**
 * A node server on loopback over a test runtime's CRI, with a serving certificate from `pki` for
 * `system:node:<nodeName>`, as the agent starts it. `extra` passes the options a test needs besides.
 */
export async function startTestNodeServer(
  rt: TestRuntime,
  pki: Pki,
  options: Pick<NodeServerOptions, 'nodeName' | 'pods'> & Partial<Pick<NodeServerOptions, 'client' | 'rootDir' | 'adminSocket'>>,
): Promise<NodeServer> {
  const serving = await issueServingCert(pki, { cn: `system:node:${options.nodeName}`, hosts: ['127.0.0.1'] });
  return startNodeServer({
    address: '127.0.0.1',
    port: 0,
    tls: { certPem: serving.certPem, keyPem: serving.keyPem, caPem: pki.caCertPem },
    cri: rt.cri,
    log: () => undefined,
    ...options,
  });
}

/**
 * Creates the Node object of a node server at 127.0.0.1:`port`, so that the API server's node proxy
 * (logs, exec, port-forward, nodes/proxy) reaches it. `status` adds to the addresses and endpoint.
 */
export async function registerNode(client: KubeClient, name: string, port: number, extra: { labels?: Record<string, string>; status?: Record<string, unknown> } = {}): Promise<KubeObject> {
  await client.create(NODES, undefined, { apiVersion: 'v1', kind: 'Node', metadata: { name, ...(extra.labels ? { labels: extra.labels } : {}) } });
  return client.patch(NODES, undefined, name, 'merge', {
    status: { addresses: [{ type: 'InternalIP', address: '127.0.0.1' }], daemonEndpoints: { kubeletEndpoint: { Port: port } }, ...extra.status },
  }, { subresource: 'status' });
}
