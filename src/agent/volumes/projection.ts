// The files of configMap, secret, downwardAPI and projected volumes (the kubelet's MakePayload and
// CollectData), computed in full before anything is written.
import type { KubeObject } from '../../api/types.js';
import type { NodeFacts, ObjectSource } from '../contracts.js';
import { fieldRefValue, resourceFieldRefValue } from '../env.js';
import { DEFAULT_TOKEN_EXPIRATION_SECONDS, type ServiceAccountTokens } from './service-account-token.js';
import type { ConfigMapSource, DownwardAPIFile, KeyToPath, Payload, PodShape, ProjectedSource, SecretSource } from './types.js';

/** 0644, the API's default for every defaultMode. */
export const DEFAULT_FILE_MODE = 0o644;
/** A token file's mode when an fsGroup is set, before ownership adds group read (kube does the same). */
const TOKEN_MODE_WITH_FS_GROUP = 0o600;

/** Everything computing a payload needs. */
export interface ProjectionContext {
  pod: PodShape;
  source: ObjectSource;
  node: NodeFacts;
  tokens: ServiceAccountTokens;
}

/** A payload could not be computed; the message is the kubelet's. */
export class ProjectionError extends Error {
  override readonly name = 'ProjectionError';
}

function notFound(kind: 'configmap' | 'secret', name: string): ProjectionError {
  return new ProjectionError(`${kind} "${name}" not found`);
}

/** configmap.MakePayload / secret.MakePayload: every key, or the listed ones at their paths. */
function keysPayload(
  data: Map<string, Buffer>,
  items: KeyToPath[] | undefined,
  defaultMode: number,
  optional: boolean,
  missingKey: (key: string) => string,
): Payload {
  const payload: Payload = new Map();
  if (!items?.length) {
    for (const [key, bytes] of data) payload.set(key, { data: bytes, mode: defaultMode });
    return payload;
  }
  for (const item of items) {
    const bytes = data.get(item.key);
    if (!bytes) {
      if (optional) continue;
      throw new ProjectionError(missingKey(item.key));
    }
    payload.set(item.path, { data: bytes, mode: item.mode ?? defaultMode });
  }
  return payload;
}

function configMapData(cm: KubeObject | undefined): Map<string, Buffer> {
  const data = new Map<string, Buffer>();
  for (const [k, v] of Object.entries((cm?.data as Record<string, string> | undefined) ?? {})) data.set(k, Buffer.from(v, 'utf8'));
  for (const [k, v] of Object.entries((cm?.binaryData as Record<string, string> | undefined) ?? {})) data.set(k, Buffer.from(v, 'base64'));
  return data;
}

function secretData(secret: KubeObject | undefined): Map<string, Buffer> {
  return new Map(Object.entries((secret?.data as Record<string, string> | undefined) ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
}

export async function configMapPayload(ctx: ProjectionContext, src: Omit<ConfigMapSource, 'defaultMode'>, defaultMode: number): Promise<Payload> {
  const name = src.name ?? '';
  const cm = await ctx.source.configMap(ctx.pod.metadata.namespace ?? '', name);
  if (!cm && !src.optional) throw notFound('configmap', name);
  return keysPayload(configMapData(cm), src.items, defaultMode, src.optional ?? false, (k) => `configmap references non-existent config key: ${k}`);
}

export async function secretPayload(ctx: ProjectionContext, name: string, src: Omit<SecretSource, 'defaultMode' | 'secretName'>, defaultMode: number): Promise<Payload> {
  const secret = await ctx.source.secret(ctx.pod.metadata.namespace ?? '', name);
  if (!secret && !src.optional) throw notFound('secret', name);
  return keysPayload(secretData(secret), src.items, defaultMode, src.optional ?? false, (k) => `references non-existent secret key: ${k}`);
}

/** downwardapi.CollectData: every item is tried; the failures are reported together. */
export function downwardAPIPayload(ctx: ProjectionContext, items: DownwardAPIFile[] | undefined, defaultMode: number): Payload {
  const payload: Payload = new Map();
  const errors: string[] = [];
  for (const item of items ?? []) {
    try {
      let text = '';
      if (item.fieldRef) text = fieldRefValue(ctx.pod, item.fieldRef.fieldPath, ctx.node);
      else if (item.resourceFieldRef) text = resourceFieldRefValue(ctx.pod, item.resourceFieldRef.containerName ?? '', item.resourceFieldRef, ctx.node);
      payload.set(item.path, { data: Buffer.from(text, 'utf8'), mode: item.mode ?? defaultMode });
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length > 0) throw aggregate(errors);
  return payload;
}

/** utilerrors.NewAggregate's text: one error as it is, several as "[a, b]". */
function aggregate(messages: string[]): ProjectionError {
  return new ProjectionError(messages.length === 1 ? messages[0]! : `[${messages.join(', ')}]`);
}

/**
 * A projected volume's files: its sources merged in order, a later path replacing an earlier one.
 * Every source is tried, and the failures are reported together, as the kubelet does.
 */
export async function projectedPayload(ctx: ProjectionContext, src: ProjectedSource): Promise<Payload> {
  const defaultMode = src.defaultMode ?? DEFAULT_FILE_MODE;
  const payload: Payload = new Map();
  const errors: string[] = [];
  for (const projection of src.sources ?? []) {
    try {
      let part: Payload;
      if (projection.secret) part = await secretPayload(ctx, projection.secret.name ?? '', projection.secret, defaultMode);
      else if (projection.configMap) part = await configMapPayload(ctx, projection.configMap, defaultMode);
      else if (projection.downwardAPI) part = downwardAPIPayload(ctx, projection.downwardAPI.items, defaultMode);
      else if (projection.serviceAccountToken) {
        const tp = projection.serviceAccountToken;
        const token = await ctx.tokens.get(ctx.pod, {
          serviceAccount: ctx.pod.spec?.serviceAccountName || 'default',
          audiences: tp.audience ? [tp.audience] : [],
          expirationSeconds: tp.expirationSeconds ?? DEFAULT_TOKEN_EXPIRATION_SECONDS,
        });
        const mode = ctx.pod.spec?.securityContext?.fsGroup !== undefined ? TOKEN_MODE_WITH_FS_GROUP : defaultMode;
        part = new Map([[tp.path, { data: Buffer.from(token, 'utf8'), mode }]]);
      } else if (projection.clusterTrustBundle) {
        throw new ProjectionError('clusterTrustBundle projections are not supported by this node');
      } else {
        continue;
      }
      for (const [path, file] of part) payload.set(path, file);
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length > 0) throw aggregate(errors);
  return payload;
}
