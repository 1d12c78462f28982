import { apiVersionOf } from './types.js';

/**
 * The resources the API server serves. Built-in kinds are listed here; CustomResourceDefinitions add
 * more at run time through the same shape, so everything downstream (discovery, OpenAPI, storage,
 * tables, validation) handles both alike.
 */
export interface ResourceDef {
  group: string;
  version: string;
  kind: string;
  listKind: string;
  /** plural resource name, the URL segment */
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames?: string[];
  categories?: string[];
  /** Subresources beyond the object itself, e.g. "status", "scale", "binding". */
  subresources: Subresource[];
  /** Verbs on the main resource. */
  verbs: string[];
  /**
   * The `@kubernetes/client-node` model class describing the type (e.g. "V1Pod"); absent for
   * custom resources, whose schema comes from the CRD.
   */
  model?: string;
  /** OpenAPI component name, e.g. "io.k8s.api.core.v1.Pod". */
  schemaName: string;
  /** Extra field selectors beyond metadata.name and metadata.namespace, with how to read them. */
  fieldSelectors?: Record<string, (obj: Record<string, unknown>) => string | undefined>;
  /** For custom resources: served from a CRD rather than built in. */
  custom?: boolean;
}

export type Subresource = 'status' | 'approval' | 'finalize' | 'token' | 'scale' | 'binding' | 'eviction' | 'log' | 'exec' | 'attach' | 'portforward' | 'proxy';

const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

interface BuiltinSpec {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  shortNames?: string[];
  categories?: string[];
  subresources?: Subresource[];
  verbs?: string[];
  /** Go package path segment for the OpenAPI name, e.g. "core" in io.k8s.api.core.v1 */
  pkg: string;
  fieldSelectors?: ResourceDef['fieldSelectors'];
}

function get(obj: Record<string, unknown>, ...path: string[]): string | undefined {
  let cur: unknown = obj;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  if (cur === undefined || cur === null) return undefined;
  return String(cur);
}

const eventFields: ResourceDef['fieldSelectors'] = {
  'involvedObject.kind': (o) => get(o, 'involvedObject', 'kind'),
  'involvedObject.namespace': (o) => get(o, 'involvedObject', 'namespace'),
  'involvedObject.name': (o) => get(o, 'involvedObject', 'name'),
  'involvedObject.uid': (o) => get(o, 'involvedObject', 'uid'),
  'involvedObject.apiVersion': (o) => get(o, 'involvedObject', 'apiVersion'),
  'involvedObject.resourceVersion': (o) => get(o, 'involvedObject', 'resourceVersion'),
  'involvedObject.fieldPath': (o) => get(o, 'involvedObject', 'fieldPath'),
  reason: (o) => get(o, 'reason'),
  reportingComponent: (o) => get(o, 'reportingComponent'),
  source: (o) => get(o, 'source', 'component'),
  type: (o) => get(o, 'type'),
};

const BUILTINS: BuiltinSpec[] = [
  { group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces', namespaced: false, shortNames: ['ns'], subresources: ['status', 'finalize'], pkg: 'core',
    fieldSelectors: { 'status.phase': (o) => get(o, 'status', 'phase') } },
  { group: '', version: 'v1', kind: 'Node', plural: 'nodes', namespaced: false, shortNames: ['no'], subresources: ['status', 'proxy'], pkg: 'core',
    fieldSelectors: { 'spec.unschedulable': (o) => get(o, 'spec', 'unschedulable') ?? 'false' } },
  { group: '', version: 'v1', kind: 'Pod', plural: 'pods', namespaced: true, shortNames: ['po'], categories: ['all'],
    subresources: ['status', 'binding', 'eviction', 'log', 'exec', 'attach', 'portforward'], pkg: 'core',
    fieldSelectors: {
      'spec.nodeName': (o) => get(o, 'spec', 'nodeName') ?? '',
      'spec.restartPolicy': (o) => get(o, 'spec', 'restartPolicy'),
      'spec.schedulerName': (o) => get(o, 'spec', 'schedulerName'),
      'spec.serviceAccountName': (o) => get(o, 'spec', 'serviceAccountName'),
      'spec.hostNetwork': (o) => get(o, 'spec', 'hostNetwork') ?? 'false',
      'status.phase': (o) => get(o, 'status', 'phase') ?? '',
      'status.podIP': (o) => get(o, 'status', 'podIP') ?? '',
      'status.nominatedNodeName': (o) => get(o, 'status', 'nominatedNodeName') ?? '',
    } },
  { group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true, shortNames: ['cm'], pkg: 'core' },
  { group: '', version: 'v1', kind: 'Secret', plural: 'secrets', namespaced: true, pkg: 'core',
    fieldSelectors: { type: (o) => get(o, 'type') } },
  { group: '', version: 'v1', kind: 'Service', plural: 'services', namespaced: true, shortNames: ['svc'], categories: ['all'], subresources: ['status', 'proxy'], pkg: 'core' },
  { group: '', version: 'v1', kind: 'Endpoints', plural: 'endpoints', namespaced: true, shortNames: ['ep'], pkg: 'core' },
  { group: '', version: 'v1', kind: 'Event', plural: 'events', namespaced: true, shortNames: ['ev'], pkg: 'core', fieldSelectors: eventFields },
  { group: '', version: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', namespaced: true, shortNames: ['sa'], subresources: ['token'], pkg: 'core' },
  { group: '', version: 'v1', kind: 'PersistentVolume', plural: 'persistentvolumes', namespaced: false, shortNames: ['pv'], subresources: ['status'], pkg: 'core' },
  { group: '', version: 'v1', kind: 'PersistentVolumeClaim', plural: 'persistentvolumeclaims', namespaced: true, shortNames: ['pvc'], subresources: ['status'], pkg: 'core' },
  { group: 'discovery.k8s.io', version: 'v1', kind: 'EndpointSlice', plural: 'endpointslices', namespaced: true, pkg: 'discovery' },
  { group: 'coordination.k8s.io', version: 'v1', kind: 'Lease', plural: 'leases', namespaced: true, pkg: 'coordination' },
  { group: 'node.k8s.io', version: 'v1', kind: 'RuntimeClass', plural: 'runtimeclasses', namespaced: false, pkg: 'node' },
  { group: 'events.k8s.io', version: 'v1', kind: 'Event', plural: 'events', namespaced: true, shortNames: ['ev'], pkg: 'events',
    fieldSelectors: {
      'regarding.kind': (o) => get(o, 'regarding', 'kind'),
      'regarding.namespace': (o) => get(o, 'regarding', 'namespace'),
      'regarding.name': (o) => get(o, 'regarding', 'name'),
      'regarding.uid': (o) => get(o, 'regarding', 'uid'),
      reason: (o) => get(o, 'reason'),
      type: (o) => get(o, 'type'),
    } },
  { group: 'apps', version: 'v1', kind: 'Deployment', plural: 'deployments', namespaced: true, shortNames: ['deploy'], categories: ['all'], subresources: ['status', 'scale'], pkg: 'apps' },
  { group: 'apps', version: 'v1', kind: 'ReplicaSet', plural: 'replicasets', namespaced: true, shortNames: ['rs'], categories: ['all'], subresources: ['status', 'scale'], pkg: 'apps',
    fieldSelectors: { 'status.replicas': (o) => get(o, 'status', 'replicas') ?? '0' } },
  { group: 'apps', version: 'v1', kind: 'DaemonSet', plural: 'daemonsets', namespaced: true, shortNames: ['ds'], categories: ['all'], subresources: ['status'], pkg: 'apps' },
  { group: 'apps', version: 'v1', kind: 'ControllerRevision', plural: 'controllerrevisions', namespaced: true, pkg: 'apps' },
  { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'Role', plural: 'roles', namespaced: true, pkg: 'rbac' },
  { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'RoleBinding', plural: 'rolebindings', namespaced: true, pkg: 'rbac' },
  { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRole', plural: 'clusterroles', namespaced: false, pkg: 'rbac' },
  { group: 'rbac.authorization.k8s.io', version: 'v1', kind: 'ClusterRoleBinding', plural: 'clusterrolebindings', namespaced: false, pkg: 'rbac' },
  { group: 'apiextensions.k8s.io', version: 'v1', kind: 'CustomResourceDefinition', plural: 'customresourcedefinitions', namespaced: false,
    shortNames: ['crd', 'crds'], categories: ['api-extensions'], subresources: ['status'], pkg: 'apiextensions' },
  { group: 'certificates.k8s.io', version: 'v1', kind: 'CertificateSigningRequest', plural: 'certificatesigningrequests', namespaced: false,
    shortNames: ['csr'], subresources: ['status', 'approval'], pkg: 'certificates' },
  { group: 'authorization.k8s.io', version: 'v1', kind: 'SelfSubjectAccessReview', plural: 'selfsubjectaccessreviews', namespaced: false,
    verbs: ['create'], pkg: 'authorization' },
  { group: 'authorization.k8s.io', version: 'v1', kind: 'SubjectAccessReview', plural: 'subjectaccessreviews', namespaced: false,
    verbs: ['create'], pkg: 'authorization' },
  { group: 'authentication.k8s.io', version: 'v1', kind: 'SelfSubjectReview', plural: 'selfsubjectreviews', namespaced: false,
    verbs: ['create'], pkg: 'authentication' },
  { group: 'authentication.k8s.io', version: 'v1', kind: 'TokenReview', plural: 'tokenreviews', namespaced: false,
    verbs: ['create'], pkg: 'authentication' },
];

// client-node names most models <Version><Kind> (V1Pod); kinds defined in two groups carry a prefix.
const MODEL_OVERRIDES: Record<string, string> = { '/Event': 'CoreV1Event', 'events.k8s.io/Event': 'EventsV1Event' };

function modelName(version: string, kind: string): string {
  return `${version[0]!.toUpperCase()}${version.slice(1)}${kind}`;
}

const OPENAPI_PREFIX: Record<string, string> = {
  apiextensions: 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions',
};

function defFor(spec: BuiltinSpec): ResourceDef {
  const def: ResourceDef = {
    group: spec.group,
    version: spec.version,
    kind: spec.kind,
    listKind: `${spec.kind}List`,
    plural: spec.plural,
    singular: spec.kind.toLowerCase(),
    namespaced: spec.namespaced,
    subresources: spec.subresources ?? [],
    verbs: spec.verbs ?? ALL_VERBS,
    model: MODEL_OVERRIDES[`${spec.group}/${spec.kind}`] ?? modelName(spec.version, spec.kind),
    schemaName: `${OPENAPI_PREFIX[spec.pkg] ?? `io.k8s.api.${spec.pkg}`}.${spec.version}.${spec.kind}`,
  };
  if (spec.shortNames) def.shortNames = spec.shortNames;
  if (spec.categories) def.categories = spec.categories;
  if (spec.fieldSelectors) def.fieldSelectors = spec.fieldSelectors;
  return def;
}

export const BUILTIN_RESOURCES: readonly ResourceDef[] = BUILTINS.map(defFor);

export function groupVersion(def: Pick<ResourceDef, 'group' | 'version'>): string {
  return apiVersionOf(def.group, def.version);
}

/** The storage key prefix of a resource: "/registry/<group|core>/<plural>/". */
export function keyPrefix(def: Pick<ResourceDef, 'group' | 'plural'>, namespace?: string): string {
  const base = `/registry/${def.group || 'core'}/${def.plural}/`;
  return namespace ? `${base}${namespace}/` : base;
}

export function objectKey(def: Pick<ResourceDef, 'group' | 'plural' | 'namespaced'>, namespace: string | undefined, name: string): string {
  return def.namespaced ? `${keyPrefix(def, namespace)}${name}` : `${keyPrefix(def)}${name}`;
}
