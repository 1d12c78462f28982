import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AdmissionRequest } from '../apiserver/admission.js';
import { ApiServer, type ApiServerOptions } from '../apiserver/server.js';
import { ApiClient } from '../../test/support/api-client.js';
import { BUILTIN_RESOURCES } from '../api/resources.js';
import type { KubeObject } from '../api/types.js';

/** An in-process API server over HTTPS with an admin client, for the admission plugins' tests. */
export interface TestServer {
  server: ApiServer;
  api: ApiClient;
  close(): Promise<void>;
}

export async function startTestServer(options: Partial<ApiServerOptions> = {}): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), 'atoll-admission-'));
  const server = await ApiServer.start({ dataDir: dir, port: 0, host: '127.0.0.1', ...options });
  const api = new ApiClient(server.kubeconfigPath);
  return {
    server,
    api,
    async close() {
      api.close();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A pod admission request as storage builds it, for plugin unit tests without a server. */
export function podRequest(pod: KubeObject, operation: AdmissionRequest['operation'] = 'CREATE', extra: Partial<AdmissionRequest> = {}): AdmissionRequest {
  return {
    operation,
    def: BUILTIN_RESOURCES.find((d) => d.group === '' && d.plural === 'pods')!,
    subresource: '',
    namespace: pod.metadata.namespace ?? 'default',
    name: pod.metadata.name ?? '',
    object: pod,
    user: { name: 'test', groups: [] },
    dryRun: false,
    warnings: [],
    ...extra,
  };
}

export function pod(name: string, spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, ...metadata }, spec: { containers: [{ name: 'c', image: 'busybox' }], ...spec } };
}
