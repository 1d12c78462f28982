import { stringify } from 'yaml';
import { writeFileAtomic } from './atomic-file.js';

/**
 * A single-cluster kubeconfig with all credentials embedded as base64 `*-data` fields, so the file is
 * self-contained and can be copied to another machine. Holding a key or token, it is written 0600.
 */
export interface KubeconfigOptions {
  /** API server URL; must be https. */
  server: string;
  caPem: string;
  /** Name of the user entry (not necessarily the identity in the certificate). */
  user: string;
  certPem?: string;
  keyPem?: string;
  token?: string;
  /** Context name; also names the cluster entry. Defaults to "atoll". */
  context?: string;
}

const DEFAULT_CONTEXT = 'atoll';

const b64 = (pem: string) => Buffer.from(pem).toString('base64');

export function kubeconfigYaml(opts: KubeconfigOptions): string {
  let url: URL;
  try {
    url = new URL(opts.server);
  } catch {
    throw new Error(`server ${JSON.stringify(opts.server)} is not a URL`);
  }
  if (url.protocol !== 'https:') throw new Error(`server ${JSON.stringify(opts.server)} must be an https URL`);
  if (opts.user === '') throw new Error('user must be non-empty');
  if ((opts.certPem === undefined) !== (opts.keyPem === undefined)) throw new Error('certPem and keyPem must be given together');
  if (opts.certPem === undefined && opts.token === undefined) throw new Error('a credential is required: certPem and keyPem, or token');
  if (opts.token !== undefined && !/^[\x21-\x7e]+$/.test(opts.token)) throw new Error('token must be non-empty printable ASCII without spaces');

  const context = opts.context ?? DEFAULT_CONTEXT;
  const user: Record<string, string> = {};
  if (opts.certPem !== undefined && opts.keyPem !== undefined) {
    user['client-certificate-data'] = b64(opts.certPem);
    user['client-key-data'] = b64(opts.keyPem);
  }
  if (opts.token !== undefined) user['token'] = opts.token;

  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: context, cluster: { server: opts.server, 'certificate-authority-data': b64(opts.caPem) } }],
    users: [{ name: opts.user, user }],
    contexts: [{ name: context, context: { cluster: context, user: opts.user } }],
    'current-context': context,
    preferences: {},
  });
}

export async function writeKubeconfig(path: string, opts: KubeconfigOptions): Promise<void> {
  await writeFileAtomic(path, kubeconfigYaml(opts), 0o600);
}
