import type { KubeObject, StatusCause } from '../types.js';
import { err, path, FIELD_IMMUTABLE } from './field.js';
import { isRecord, metaOf, str } from './meta.js';
import { invalidEach, isDNS1035Label, isDNS1123Subdomain } from './names.js';
import type { KindRules } from './registry.js';

/** apiextensions.k8s.io/v1 CustomResourceDefinition: SetDefaults_CustomResourceDefinition(Spec) and validation. */

type Rec = Record<string, any>;

function specOf(obj: KubeObject): Rec {
  if (!isRecord(obj.spec)) obj.spec = {};
  return obj.spec as Rec;
}

const versionsOf = (spec: Rec): Rec[] => (Array.isArray(spec.versions) ? spec.versions.map((v: unknown) => (isRecord(v) ? v : {})) : []);

function defaultCRD(obj: KubeObject): void {
  const spec = specOf(obj);
  if (!isRecord(spec.names)) spec.names = {};
  const names = spec.names;
  if (!names.singular && names.kind) names.singular = String(names.kind).toLowerCase();
  if (!names.listKind && names.kind) names.listKind = `${names.kind}List`;
  if (!isRecord(spec.conversion)) spec.conversion = { strategy: 'None' };
  if (isRecord(spec.conversion.webhook?.clientConfig?.service) && spec.conversion.webhook.clientConfig.service.port === undefined) {
    spec.conversion.webhook.clientConfig.service.port = 443;
  }
  if (!isRecord(obj.status)) obj.status = {};
  const status = obj.status as Rec;
  if (!Array.isArray(status.storedVersions) || status.storedVersions.length === 0) {
    status.storedVersions = versionsOf(spec).filter((v) => v.storage === true).map((v) => v.name);
  }
}

function validateNames(names: Rec): StatusCause[] {
  const at = path('spec', 'names');
  const causes: StatusCause[] = [];
  for (const k of ['plural', 'singular'] as const) {
    const v = str(names[k]);
    if (!v) causes.push(err.required(at.child(k)));
    else {
      const msgs = isDNS1035Label(v);
      if (msgs.length) causes.push(err.invalid(at.child(k), v, msgs.join(',')));
    }
  }
  const kind = str(names.kind);
  if (!kind) causes.push(err.required(at.child('kind')));
  else {
    const msgs = isDNS1035Label(kind.toLowerCase());
    if (msgs.length) causes.push(err.invalid(at.child('kind'), kind, `may have mixed case, but should otherwise match: ${msgs.join(',')}`));
  }
  const listKind = str(names.listKind);
  if (!listKind) causes.push(err.required(at.child('listKind')));
  else {
    const msgs = isDNS1035Label(listKind.toLowerCase());
    if (msgs.length) causes.push(err.invalid(at.child('listKind'), listKind, `may have mixed case, but should otherwise match: ${msgs.join(',')}`));
    if (kind && kind === listKind) causes.push(err.invalid(at.child('listKind'), listKind, 'kind and listKind may not be the same'));
  }
  return causes;
}

function validateCRD(obj: KubeObject): StatusCause[] {
  const spec = specOf(obj);
  const at = path('spec');
  const names: Rec = isRecord(spec.names) ? spec.names : {};
  const group = str(spec.group);
  const causes: StatusCause[] = [];
  if (metaOf(obj).name !== `${str(names.plural)}.${group}`) {
    causes.push(err.invalid(path('metadata', 'name'), metaOf(obj).name ?? '', 'must be spec.names.plural+"."+spec.group'));
  }
  if (!group) causes.push(err.required(at.child('group')));
  else {
    causes.push(...invalidEach(at.child('group'), group, isDNS1123Subdomain(group)));
    if (group.split('.').length < 2) causes.push(err.invalid(at.child('group'), group, 'should be a domain with at least one dot'));
  }
  if (!spec.scope) causes.push(err.required(at.child('scope')));
  else if (spec.scope !== 'Cluster' && spec.scope !== 'Namespaced') causes.push(err.notSupported(at.child('scope'), str(spec.scope), ['Cluster', 'Namespaced']));
  const versions = versionsOf(spec);
  const versionsPath = at.child('versions');
  const shownVersions = { rendered: `[]apiextensions.CustomResourceDefinitionVersion{...}` };
  if (versions.length === 0) causes.push(err.required(versionsPath, 'must have at least one version'));
  const seen = new Set<string>();
  let storage = 0;
  versions.forEach((v, i) => {
    const name = str(v.name);
    causes.push(...invalidEach(versionsPath.index(i).child('name'), name, isDNS1035Label(name)));
    if (seen.has(name)) causes.push(err.invalid(versionsPath, shownVersions, 'must contain unique version names'));
    seen.add(name);
    if (v.storage === true) storage++;
    if (!isRecord(v.schema) || !isRecord(v.schema.openAPIV3Schema)) {
      causes.push(err.required(versionsPath.index(i).child('schema', 'openAPIV3Schema'), 'schemas are required'));
    }
  });
  if (versions.length > 0 && storage !== 1) causes.push(err.invalid(versionsPath, shownVersions, 'must have exactly one version marked as storage version'));
  causes.push(...validateNames(names));
  return causes;
}

function validateCRDUpdate(obj: KubeObject, old: KubeObject): StatusCause[] {
  const spec = specOf(obj);
  const prev = specOf(old);
  const causes: StatusCause[] = [];
  if (str(spec.scope) !== str(prev.scope)) causes.push(err.invalid(path('spec', 'scope'), str(spec.scope), FIELD_IMMUTABLE));
  if (str(spec.group) !== str(prev.group)) causes.push(err.invalid(path('spec', 'group'), str(spec.group), FIELD_IMMUTABLE));
  return causes;
}

export const crdRules: KindRules = {
  group: 'apiextensions.k8s.io',
  kind: 'CustomResourceDefinition',
  defaults: defaultCRD,
  validate: validateCRD,
  validateUpdate: validateCRDUpdate,
};
