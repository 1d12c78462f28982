import { deepEqual } from '../api/validation/field.js';
import type { KubeObject, ObjectMeta } from '../api/types.js';
import type { AdmissionPlugin, AdmissionRequest } from '../apiserver/admission.js';
import type { PodSpec } from './pod-request.js';
import { admissionForbidden } from './pod-request.js';
import { LEVELS, describeViolations, evaluatePod, type Level } from './pod-security-policy.js';

export const LABEL_PREFIX = 'pod-security.kubernetes.io/';
type Mode = 'enforce' | 'audit' | 'warn';

export interface LevelVersion {
  level: Level;
  /** "latest" or "v1.<minor>"; checks are always those of the latest version. */
  version: string;
}

export type NamespacePolicy = Record<Mode, LevelVersion>;

const PRIVILEGED: LevelVersion = { level: 'privileged', version: 'latest' };
const MOST_RESTRICTIVE: LevelVersion = { level: 'restricted', version: 'latest' };
const SECCOMP_POD_ANNOTATION = 'seccomp.security.alpha.kubernetes.io/pod';
const SECCOMP_CONTAINER_ANNOTATION_PREFIX = 'container.seccomp.security.alpha.kubernetes.io/';

/**
 * The policy a namespace's `pod-security.kubernetes.io/<mode>[-version]` labels ask for. Unlabelled
 * modes are privileged; an unparsable level falls back to restricted, and an enforce level stricter than
 * the warn level also warns, as in kube.
 */
export function namespacePolicy(labels: Record<string, string> = {}): NamespacePolicy {
  const policy = { enforce: { ...PRIVILEGED }, audit: { ...PRIVILEGED }, warn: { ...PRIVILEGED } };
  for (const mode of ['enforce', 'audit', 'warn'] as const) {
    const level = labels[LABEL_PREFIX + mode];
    if (level !== undefined) policy[mode] = LEVELS.includes(level as Level) ? { level: level as Level, version: 'latest' } : { ...MOST_RESTRICTIVE };
    const version = labels[`${LABEL_PREFIX}${mode}-version`];
    if (version !== undefined && /^(latest|v1\.(0|[1-9]\d*))$/.test(version)) policy[mode].version = version;
  }
  const enforceSet = labels[LABEL_PREFIX + 'enforce'] !== undefined && LEVELS.includes(labels[LABEL_PREFIX + 'enforce'] as Level);
  if (labels[LABEL_PREFIX + 'warn'] === undefined && enforceSet && LEVELS.indexOf(policy.enforce.level) > LEVELS.indexOf(policy.warn.level)) {
    policy.warn = { level: policy.enforce.level, version: labels[LABEL_PREFIX + 'warn-version'] === undefined ? policy.enforce.version : policy.warn.version };
  }
  return policy;
}

const label = (lv: LevelVersion) => `${lv.level}:${lv.version}`;

/** Where the pod template sits in each workload kind PodSecurity warns about. */
const TEMPLATE_PATHS: Record<string, string[]> = {
  '/PodTemplate': ['template'],
  '/ReplicationController': ['spec', 'template'],
  'apps/Deployment': ['spec', 'template'],
  'apps/ReplicaSet': ['spec', 'template'],
  'apps/StatefulSet': ['spec', 'template'],
  'apps/DaemonSet': ['spec', 'template'],
  'batch/Job': ['spec', 'template'],
  'batch/CronJob': ['spec', 'jobTemplate', 'spec', 'template'],
};

function templateOf(obj: KubeObject | undefined, path: string[]): { metadata: ObjectMeta; spec: PodSpec } | undefined {
  let cur: unknown = obj;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  if (cur === null || typeof cur !== 'object') return undefined;
  const t = cur as { metadata?: ObjectMeta; spec?: PodSpec };
  return { metadata: t.metadata ?? {}, spec: t.spec ?? {} };
}

/**
 * Whether a pod update could change what PodSecurity decides: kube ignores updates that keep every
 * container image, the seccomp annotations and the ephemeral containers as they were.
 */
function significantPodUpdate(pod: KubeObject, old: KubeObject): boolean {
  const spec = (pod.spec ?? {}) as PodSpec;
  const oldSpec = (old.spec ?? {}) as PodSpec;
  const ann = pod.metadata.annotations ?? {};
  const oldAnn = old.metadata.annotations ?? {};
  if (ann[SECCOMP_POD_ANNOTATION] !== oldAnn[SECCOMP_POD_ANNOTATION]) return true;
  for (const list of ['containers', 'initContainers'] as const) {
    const now = spec[list] ?? [];
    const before = oldSpec[list] ?? [];
    if (now.length !== before.length) return true;
    for (let i = 0; i < now.length; i++) {
      const key = SECCOMP_CONTAINER_ANNOTATION_PREFIX + now[i]!.name;
      if (now[i]!.image !== before[i]!.image || ann[key] !== oldAnn[key]) return true;
    }
  }
  const oldEphemeral = oldSpec.ephemeralContainers ?? [];
  return (spec.ephemeralContainers ?? []).some((c) => !deepEqual(c, oldEphemeral.find((o) => o.name === c.name)));
}

/**
 * PodSecurity: enforces the namespace's `enforce` level on pod create and update (403 naming every
 * violation), and reports the `warn` level's violations as `Warning` headers, for pods and for the pod
 * templates of workloads. The `audit` mode has no audit log to write to and is accepted but unused.
 */
export function podSecurity(namespace: (name: string) => KubeObject | undefined): AdmissionPlugin {
  return {
    name: 'PodSecurity',
    validate(req: AdmissionRequest) {
      if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return;
      if (!req.object || !req.def.namespaced) return;
      const isPod = req.def.group === '' && req.def.kind === 'Pod';
      const templatePath = TEMPLATE_PATHS[`${req.def.group}/${req.def.kind}`];
      if (!isPod && !templatePath) return;
      if (isPod && req.subresource !== '' && req.subresource !== 'ephemeralcontainers') return;
      if (!isPod && req.subresource !== '') return;

      const ns = namespace(req.namespace);
      const policy = namespacePolicy(ns?.metadata.labels);
      if (policy.enforce.level === 'privileged' && policy.warn.level === 'privileged') return;

      let target: { metadata: ObjectMeta; spec: PodSpec } | undefined;
      if (isPod) {
        if (req.operation === 'UPDATE' && req.oldObject && !significantPodUpdate(req.object, req.oldObject)) return;
        target = { metadata: req.object.metadata, spec: (req.object.spec ?? {}) as PodSpec };
        const violations = evaluatePod(policy.enforce.level, target.metadata, target.spec);
        if (violations.length) {
          throw admissionForbidden(req, `violates PodSecurity "${label(policy.enforce)}": ${describeViolations(violations)}`);
        }
      } else {
        target = templateOf(req.object, templatePath!);
        if (!target) return;
        const before = req.operation === 'UPDATE' ? templateOf(req.oldObject, templatePath!) : undefined;
        if (before && deepEqual(before, target)) return;
      }
      const warned = evaluatePod(policy.warn.level, target.metadata, target.spec);
      if (warned.length) req.warnings?.push(`would violate PodSecurity "${label(policy.warn)}": ${describeViolations(warned)}`);
    },
  };
}
