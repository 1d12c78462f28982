import type { ResourceDef } from '../resources.js';
import type { KubeObject, StatusCause } from '../types.js';
import { daemonSetRules, deploymentRules, replicaSetRules } from './apps.js';
import { certificateSigningRequestRules } from './certificates.js';
import { crdRules } from './crd.js';
import { configMapRules, secretRules } from './data.js';
import { metaOf, validateObjectMeta, validateObjectMetaUpdate } from './meta.js';
import { nameIsDNSSubdomain } from './names.js';
import { namespaceRules } from './namespace.js';
import { nodeRules } from './node.js';
import { podRules } from './pod.js';
import { clusterRoleBindingRules, clusterRoleRules, roleBindingRules, roleRules } from './rbac.js';
import { buildRegistry, ruleKey, type KindRules, type Registry } from './registry.js';
import { serviceRules } from './service.js';
import { coreEventRules, eventsEventRules, leaseRules, pvcRules, runtimeClassRules } from './small-kinds.js';

/**
 * Defaulting and validation as the Kubernetes API server applies them on write. Callers default
 * first, then validate the defaulted object; causes come back in kube's StatusCause form, ready for
 * `errors.invalid`. Kinds without rules (custom resources, simple built-ins) get ObjectMeta checks.
 */

export const RULES: Registry = buildRegistry([
  podRules, serviceRules, namespaceRules, nodeRules, configMapRules, secretRules, pvcRules, coreEventRules,
  deploymentRules, replicaSetRules, daemonSetRules, leaseRules, runtimeClassRules, eventsEventRules,
  roleRules, clusterRoleRules, roleBindingRules, clusterRoleBindingRules, crdRules, certificateSigningRequestRules,
]);

function rulesFor(def: ResourceDef): KindRules | undefined {
  return RULES.get(ruleKey(def.group, def.kind));
}

/** Fills defaulted fields in place, as kube's SetDefaults_* do for the kind. */
export function applyDefaults(def: ResourceDef, obj: KubeObject): void {
  rulesFor(def)?.defaults?.(obj);
}

export function validateCreate(def: ResourceDef, obj: KubeObject): StatusCause[] {
  const rules = rulesFor(def);
  return [
    ...validateObjectMeta(metaOf(obj), def.namespaced, rules?.nameFn ?? nameIsDNSSubdomain),
    ...(rules?.validate?.(obj) ?? []),
    ...(rules?.validateCreate?.(obj) ?? []),
  ];
}

export function validateUpdate(def: ResourceDef, obj: KubeObject, old: KubeObject): StatusCause[] {
  const rules = rulesFor(def);
  return dedupe([
    ...validateObjectMetaUpdate(metaOf(obj), metaOf(old)),
    ...validateObjectMeta(metaOf(obj), def.namespaced, rules?.nameFn ?? nameIsDNSSubdomain),
    ...(rules?.validate?.(obj) ?? []),
    ...(rules?.validateUpdate?.(obj, old) ?? []),
  ]);
}

/** Metadata checks run for both the update and the new object; report each finding once. */
function dedupe(causes: StatusCause[]): StatusCause[] {
  const seen = new Set<string>();
  return causes.filter((c) => {
    const key = `${c.reason}\u0000${c.field}\u0000${c.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export type { KindRules } from './registry.js';
