// An in-memory ObjectSource for unit tests of env and volume resolution. The agent's e2e tests drive
// the real one (the API server, or EdgeHub's cache).
import type { KubeObject } from '../../api/types.js';
import type { ObjectSource } from '../contracts.js';

export interface IssuedToken {
  pod: string;
  serviceAccount: string;
  audiences: string[];
  expirationSeconds: number;
  token: string;
}

export class MemorySource implements ObjectSource {
  private readonly configMaps = new Map<string, KubeObject>();
  private readonly secrets = new Map<string, KubeObject>();
  /** Every token handed out, in order. */
  readonly issued: IssuedToken[] = [];

  /** `now` is the issuer's clock, which token expiry is computed from. */
  constructor(private readonly now: () => number = Date.now) {}

  putConfigMap(namespace: string, name: string, data: Record<string, string>, binaryData?: Record<string, Buffer>): void {
    const obj: KubeObject = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace, name }, data };
    if (binaryData) obj.binaryData = Object.fromEntries(Object.entries(binaryData).map(([k, v]) => [k, v.toString('base64')]));
    this.configMaps.set(`${namespace}/${name}`, obj);
  }

  putSecret(namespace: string, name: string, data: Record<string, string | Buffer>): void {
    const encoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
    this.secrets.set(`${namespace}/${name}`, { apiVersion: 'v1', kind: 'Secret', metadata: { namespace, name }, data: encoded });
  }

  deleteConfigMap(namespace: string, name: string): void {
    this.configMaps.delete(`${namespace}/${name}`);
  }

  async configMap(namespace: string, name: string): Promise<KubeObject | undefined> {
    return structuredClone(this.configMaps.get(`${namespace}/${name}`));
  }

  async secret(namespace: string, name: string): Promise<KubeObject | undefined> {
    return structuredClone(this.secrets.get(`${namespace}/${name}`));
  }

  async serviceAccountToken(pod: KubeObject, serviceAccount: string, request: { audiences: string[]; expirationSeconds: number }) {
    const token = `token-${this.issued.length + 1}`;
    this.issued.push({ pod: pod.metadata.uid!, serviceAccount, ...request, token });
    return { token, expirationTimestamp: new Date(this.now() + request.expirationSeconds * 1000).toISOString() };
  }
}
