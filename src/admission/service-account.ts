import type { KubeObject } from '../api/types.js';
import type { AdmissionPlugin, AdmissionRequest } from '../apiserver/admission.js';
import { randomSuffix } from '../apiserver/storage.js';
import { admissionForbidden, isPod, podSpec, type Container, type PodSpec } from './pod-request.js';

export const DEFAULT_SERVICE_ACCOUNT = 'default';
export const TOKEN_VOLUME_PREFIX = 'kube-api-access-';
export const TOKEN_MOUNT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
export const ROOT_CA_CONFIGMAP = 'kube-root-ca.crt';
/**
 * The projected token's requested lifetime: an hour plus seven seconds, which tells the token issuer
 * this came from the admission default (and may be extended for old clients that never re-read it).
 */
export const PROJECTED_TOKEN_EXPIRATION_SECONDS = 3607;
const MIRROR_POD_ANNOTATION = 'kubernetes.io/config.mirror';
const ENFORCE_MOUNTABLE_SECRETS_ANNOTATION = 'kubernetes.io/enforce-mountable-secrets';
/** 0644, as defaulting would give the volume had it been in the request. */
const DEFAULT_MODE = 420;
/**
 * The `default` account of a namespace created a moment ago may not exist yet: it is looked up this
 * many times, this far apart, before the pod is refused (kube retries the same way).
 */
const DEFAULT_ACCOUNT_ATTEMPTS = 10;
const DEFAULT_ACCOUNT_RETRY_MS = 100;

/** Reads a ServiceAccount; `undefined` when it does not exist. */
export type ServiceAccountLookup = (namespace: string, name: string) => KubeObject | undefined | Promise<KubeObject | undefined>;

interface ServiceAccountFields {
  metadata?: KubeObject['metadata'];
  automountServiceAccountToken?: boolean;
  secrets?: { name?: string }[];
  imagePullSecrets?: { name?: string }[];
}

/** The projected volume kube's ServiceAccount admission adds: a bound token, the cluster CA and the namespace. */
export function tokenVolume(name: string): Record<string, unknown> {
  return {
    name,
    projected: {
      defaultMode: DEFAULT_MODE,
      sources: [
        { serviceAccountToken: { expirationSeconds: PROJECTED_TOKEN_EXPIRATION_SECONDS, path: 'token' } },
        { configMap: { name: ROOT_CA_CONFIGMAP, items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardAPI: { items: [{ fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' }, path: 'namespace' }] } },
      ],
    },
  };
}

/**
 * ServiceAccount: on pod create, names the `default` account when the pod names none, requires the
 * account to exist, copies its image pull secrets to a pod that has none, and (unless the pod or the
 * account turn automounting off) mounts a projected API token volume into every container at
 * /var/run/secrets/kubernetes.io/serviceaccount. Mirror pods may not use accounts or secrets at all.
 */
export function serviceAccount(lookup: ServiceAccountLookup, volumeSuffix: () => string = randomSuffix): AdmissionPlugin {
  const accountOf = async (req: AdmissionRequest, name: string): Promise<ServiceAccountFields> => {
    let found = await lookup(req.namespace, name);
    for (let attempt = 1; !found && name === DEFAULT_SERVICE_ACCOUNT && attempt < DEFAULT_ACCOUNT_ATTEMPTS; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, DEFAULT_ACCOUNT_RETRY_MS));
      found = await lookup(req.namespace, name);
    }
    if (!found) throw admissionForbidden(req, `error looking up service account ${req.namespace}/${name}: serviceaccount "${name}" not found`);
    return found as ServiceAccountFields;
  };
  const validate = async (req: AdmissionRequest) => {
    if (req.operation !== 'CREATE' || !isPod(req)) return;
    const pod = req.object!;
    const spec = podSpec(pod);
    if (isMirrorPod(pod)) return validateMirrorPod(req, spec);
    const sa = await accountOf(req, spec.serviceAccountName || DEFAULT_SERVICE_ACCOUNT);
    const enforce = sa.metadata?.annotations?.[ENFORCE_MOUNTABLE_SECRETS_ANNOTATION] ?? '';
    if (['true', '1', 't', 'T', 'TRUE', 'True'].includes(enforce)) {
      const refused = unmountableSecret(spec, sa, sa.metadata?.name ?? '');
      if (refused) throw admissionForbidden(req, refused);
    }
  };
  return {
    name: 'ServiceAccount',
    async admit(req) {
      if (req.operation !== 'CREATE' || !isPod(req)) return;
      const pod = req.object!;
      const spec = podSpec(pod);
      if (isMirrorPod(pod)) return;
      if (!spec.serviceAccountName) spec.serviceAccountName = DEFAULT_SERVICE_ACCOUNT;
      // The deprecated alias follows the real field, as decoding the v1 pod does.
      spec.serviceAccount = spec.serviceAccountName;
      const sa = await accountOf(req, spec.serviceAccountName);
      if (shouldAutomount(spec, sa)) mountToken(spec, volumeSuffix);
      if (!spec.imagePullSecrets?.length && sa.imagePullSecrets?.length) {
        spec.imagePullSecrets = sa.imagePullSecrets.map((s) => ({ name: s.name }));
      }
    },
    validate,
  };
}

function isMirrorPod(pod: KubeObject): boolean {
  return pod.metadata.annotations?.[MIRROR_POD_ANNOTATION] !== undefined;
}

function validateMirrorPod(req: AdmissionRequest, spec: PodSpec): void {
  // Defaulting names the `default` account on every pod, so only another account counts as a reference here.
  if (spec.serviceAccountName && spec.serviceAccountName !== DEFAULT_SERVICE_ACCOUNT) {
    throw admissionForbidden(req, 'a mirror pod may not reference service accounts');
  }
  const volumes = spec.volumes ?? [];
  const envSecret = allContainers(spec).some((c) => (c.env as { valueFrom?: { secretKeyRef?: unknown } }[] | undefined)?.some((e) => e.valueFrom?.secretKeyRef));
  const envFromSecret = allContainers(spec).some((c) => (c.envFrom as { secretRef?: unknown }[] | undefined)?.some((e) => e.secretRef));
  const projectedSecret = volumes.some((v) => (v.projected as { sources?: { secret?: unknown }[] } | undefined)?.sources?.some((s) => s.secret));
  if (volumes.some((v) => v.secret) || projectedSecret || envSecret || envFromSecret || (spec.imagePullSecrets?.length ?? 0) > 0) {
    throw admissionForbidden(req, 'a mirror pod may not reference secrets');
  }
  if (volumes.some((v) => (v.projected as { sources?: { serviceAccountToken?: unknown }[] } | undefined)?.sources?.some((s) => s.serviceAccountToken))) {
    throw admissionForbidden(req, 'a mirror pod may not use ServiceAccountToken volume projections');
  }
}

function shouldAutomount(spec: PodSpec, sa: ServiceAccountFields): boolean {
  if (typeof spec.automountServiceAccountToken === 'boolean') return spec.automountServiceAccountToken;
  if (typeof sa.automountServiceAccountToken === 'boolean') return sa.automountServiceAccountToken;
  return true;
}

function allContainers(spec: PodSpec): Container[] {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
}

/**
 * Mounts the token volume into every init and regular container that has nothing at the mount path
 * yet, adding the volume when one of them needed it. An existing `kube-api-access-*` volume is reused.
 */
function mountToken(spec: PodSpec, volumeSuffix: () => string): void {
  const existing = (spec.volumes ?? []).find((v) => typeof v.name === 'string' && v.name.startsWith(TOKEN_VOLUME_PREFIX));
  const name = existing?.name ?? TOKEN_VOLUME_PREFIX + volumeSuffix();
  let needed = false;
  for (const c of allContainers(spec)) {
    if ((c.volumeMounts ?? []).some((m) => m.mountPath === TOKEN_MOUNT_PATH)) continue;
    c.volumeMounts = [...(c.volumeMounts ?? []), { name, readOnly: true, mountPath: TOKEN_MOUNT_PATH }];
    needed = true;
  }
  if (needed && !existing) spec.volumes = [...(spec.volumes ?? []), tokenVolume(name) as { name: string }];
}

/** kube's limitSecretReferences: the first secret the pod uses that the account does not list, as a refusal. */
function unmountableSecret(spec: PodSpec, sa: ServiceAccountFields, account: string): string | undefined {
  const mountable = new Set((sa.secrets ?? []).map((s) => s.name));
  for (const v of spec.volumes ?? []) {
    const secretName = (v.secret as { secretName?: string } | undefined)?.secretName;
    if (v.secret && !mountable.has(secretName)) {
      return `volume with secret.secretName="${secretName ?? ''}" is not allowed because service account ${account} does not reference that secret`;
    }
  }
  for (const [list, what] of [[spec.initContainers, 'init container'], [spec.containers, 'container']] as const) {
    for (const c of list ?? []) {
      for (const e of (c.env as { name: string; valueFrom?: { secretKeyRef?: { name?: string } } }[] | undefined) ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (ref && !mountable.has(ref.name)) {
          return `${what} ${c.name} with envVar ${e.name} referencing secret.secretName="${ref.name ?? ''}" is not allowed because service account ${account} does not reference that secret`;
        }
      }
    }
  }
  const pullable = new Set((sa.imagePullSecrets ?? []).map((s) => s.name));
  const refs = spec.imagePullSecrets ?? [];
  for (let i = 0; i < refs.length; i++) {
    if (!pullable.has(refs[i]!.name)) {
      return `imagePullSecrets[${i}].name="${refs[i]!.name ?? ''}" is not allowed because service account ${account} does not reference that imagePullSecret`;
    }
  }
  return undefined;
}
