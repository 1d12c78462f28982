import { ApiError } from '../api/errors.js';
import type { KubeObject } from '../api/types.js';
import type { KubeClient } from '../client/client.js';
import { resource } from '../client/informer.js';
import type { ObjectSource } from './contracts.js';

async function getOrUndefined(client: KubeClient, plural: string, namespace: string, name: string): Promise<KubeObject | undefined> {
  try {
    return await client.get(resource(plural), namespace, name);
  } catch (err) {
    if (err instanceof ApiError && err.code === 404) return undefined;
    throw err;
  }
}

/** ObjectSource straight from the API server: what the agent uses when no EdgeHub cache stands between. */
export function apiObjectSource(client: KubeClient): ObjectSource {
  return {
    configMap: (namespace, name) => getOrUndefined(client, 'configmaps', namespace, name),
    secret: (namespace, name) => getOrUndefined(client, 'secrets', namespace, name),
    async serviceAccountToken(pod, serviceAccount, request) {
      const review = await client.createSubresource<{ status: { token: string; expirationTimestamp: string } }>(
        resource('serviceaccounts'),
        pod.metadata.namespace,
        serviceAccount,
        'token',
        {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: {
            audiences: request.audiences,
            expirationSeconds: request.expirationSeconds,
            boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid },
          },
        },
      );
      return review.status;
    },
  };
}
