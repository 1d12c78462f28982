import { BOOTSTRAP_TOKEN_SECRET_PREFIX } from '../apiserver/auth/authn.js';
import { createBootstrapToken, parseBootstrapToken } from '../apiserver/auth/bootstrap-token.js';
import { isNotFound, type KubeClient } from '../client/client.js';
import { resource } from '../client/informer.js';

const SECRETS = resource('secrets');

/**
 * The token `up`'s agents join with: `existing` (from up.json) while its Secret is still in the
 * cluster, so agents restarted with it keep working; otherwise a new one.
 */
export async function joinToken(client: KubeClient, existing: string | undefined): Promise<string> {
  let id: string | undefined;
  try {
    id = existing === undefined ? undefined : parseBootstrapToken(existing).id;
  } catch {
    id = undefined;
  }
  if (id !== undefined) {
    try {
      await client.get(SECRETS, 'kube-system', `${BOOTSTRAP_TOKEN_SECRET_PREFIX}${id}`);
      return existing!;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  return createBootstrapToken(client, { ttlSeconds: 0, description: 'atoll up: the edge nodes join with it' });
}
