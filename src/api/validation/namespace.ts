import type { KubeObject, StatusCause } from '../types.js';
import { path } from './field.js';
import { isRecord, metaOf, validateFinalizerName } from './meta.js';
import { nameIsDNSLabel } from './names.js';
import type { KindRules } from './registry.js';

/** Namespace: SetDefaults_Namespace(Status), the registry's "kubernetes" finalizer, ValidateNamespace. */

export const METADATA_NAME_LABEL = 'kubernetes.io/metadata.name';

function defaultNamespace(obj: KubeObject): void {
  const meta = metaOf(obj);
  if (meta.name) meta.labels = { ...(meta.labels ?? {}), [METADATA_NAME_LABEL]: meta.name };
  if (!isRecord(obj.spec)) obj.spec = {};
  const spec = obj.spec as Record<string, any>;
  if (!Array.isArray(spec.finalizers)) spec.finalizers = ['kubernetes'];
  if (!isRecord(obj.status)) obj.status = {};
  const status = obj.status as Record<string, any>;
  if (!status.phase) status.phase = 'Active';
}

function validateNamespace(obj: KubeObject): StatusCause[] {
  const spec = isRecord(obj.spec) ? obj.spec : {};
  const finalizers: unknown[] = Array.isArray(spec.finalizers) ? spec.finalizers : [];
  return finalizers.flatMap((f) => validateFinalizerName(String(f), path('spec', 'finalizers')));
}

export const namespaceRules: KindRules = {
  group: '',
  kind: 'Namespace',
  nameFn: nameIsDNSLabel,
  defaults: defaultNamespace,
  validate: validateNamespace,
};
