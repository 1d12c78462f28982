// Facts the client-node models lose but kube's OpenAPI carries: the Go struct tags of k8s.io/api
// (`patchMergeKey`, `patchStrategy`, `+listType`, `+listMapKey`, `+mapType`, `+structType`) and which
// string-typed fields are really resource.Quantity. Keys are `<client-node model>.<JSON field>`.

export interface FieldTags {
  mergeKey?: string;
  strategy?: string;
  listType?: 'atomic' | 'set' | 'map';
  mapKeys?: string[];
  mapType?: 'atomic' | 'granular';
}

function keyed(key: string, strategy = 'merge', mapKeys: string[] = [key], listType: FieldTags['listType'] = 'map'): FieldTags {
  return { mergeKey: key, strategy, listType, mapKeys };
}

const byName = keyed('name');
const containerFields: Record<string, FieldTags> = {
  ports: keyed('containerPort', 'merge', ['containerPort', 'protocol']),
  env: byName,
  envFrom: { listType: 'atomic' },
  volumeMounts: keyed('mountPath'),
  volumeDevices: keyed('devicePath'),
  resizePolicy: { listType: 'atomic' },
  command: { listType: 'atomic' },
  args: { listType: 'atomic' },
};

function fieldsOf(model: string, fields: Record<string, FieldTags>): [string, FieldTags][] {
  return Object.entries(fields).map(([f, t]) => [`${model}.${f}`, t]);
}

export const FIELD_TAGS: ReadonlyMap<string, FieldTags> = new Map<string, FieldTags>([
  ...fieldsOf('V1PodSpec', {
    volumes: keyed('name', 'merge,retainKeys'),
    initContainers: byName,
    containers: byName,
    ephemeralContainers: byName,
    imagePullSecrets: byName,
    hostAliases: keyed('ip'),
    topologySpreadConstraints: keyed('topologyKey', 'merge', ['topologyKey', 'whenUnsatisfiable']),
    schedulingGates: byName,
    resourceClaims: keyed('name', 'merge,retainKeys'),
    readinessGates: { listType: 'atomic' },
    tolerations: { listType: 'atomic' },
    nodeSelector: { mapType: 'atomic' },
  }),
  ...fieldsOf('V1Container', containerFields),
  ...fieldsOf('V1EphemeralContainer', containerFields),
  ...fieldsOf('V1PodStatus', {
    podIPs: keyed('ip'),
    hostIPs: keyed('ip', 'merge', [], 'atomic'),
    initContainerStatuses: { listType: 'atomic' },
    containerStatuses: { listType: 'atomic' },
    ephemeralContainerStatuses: { listType: 'atomic' },
    resourceClaimStatuses: keyed('name', 'merge,retainKeys'),
  }),
  ...fieldsOf('V1NodeStatus', {
    addresses: keyed('type'),
    images: { listType: 'atomic' },
    volumesInUse: { listType: 'atomic' },
    volumesAttached: { listType: 'atomic' },
  }),
  ...fieldsOf('V1NodeSpec', { podCIDRs: { strategy: 'merge', listType: 'set' }, taints: { listType: 'atomic' } }),
  ...fieldsOf('V1ServiceSpec', {
    ports: keyed('port', 'merge', ['port', 'protocol']),
    externalIPs: { listType: 'atomic' },
    clusterIPs: { listType: 'atomic' },
    ipFamilies: { listType: 'atomic' },
    selector: { mapType: 'atomic' },
  }),
  ...fieldsOf('V1ObjectMeta', {
    finalizers: { strategy: 'merge', listType: 'set' },
    ownerReferences: keyed('uid'),
    managedFields: { listType: 'atomic' },
  }),
  ...fieldsOf('V1ServiceAccount', { secrets: byName, imagePullSecrets: { listType: 'atomic' } }),
  ...fieldsOf('V1Endpoints', { subsets: { listType: 'atomic' } }),
  ...fieldsOf('V1LabelSelector', { matchExpressions: { listType: 'atomic' } }),
  ...fieldsOf('V1PersistentVolumeSpec', { accessModes: { listType: 'atomic' }, mountOptions: { listType: 'atomic' } }),
  ...fieldsOf('V1PersistentVolumeClaimSpec', { accessModes: { listType: 'atomic' } }),
  ...fieldsOf('V1Scheduling', { nodeSelector: { mapType: 'atomic' }, tolerations: { listType: 'atomic' } }),
  ...fieldsOf('V1PolicyRule', {
    apiGroups: { listType: 'atomic' }, resources: { listType: 'atomic' }, resourceNames: { listType: 'atomic' },
    verbs: { listType: 'atomic' }, nonResourceURLs: { listType: 'atomic' },
  }),
  ...fieldsOf('V1Role', { rules: { listType: 'atomic' } }),
  ...fieldsOf('V1ClusterRole', { rules: { listType: 'atomic' } }),
  ...fieldsOf('V1RoleBinding', { subjects: { listType: 'atomic' } }),
  ...fieldsOf('V1ClusterRoleBinding', { subjects: { listType: 'atomic' } }),
]);

/** Go structs tagged `+structType=atomic` (published as `x-kubernetes-map-type: atomic`). */
export const ATOMIC_STRUCTS: ReadonlySet<string> = new Set([
  'V1LabelSelector', 'V1NodeSelector', 'V1NodeSelectorTerm', 'V1TopologySelectorTerm', 'V1LocalObjectReference',
  'V1ObjectReference', 'V1TypedLocalObjectReference', 'V1TypedObjectReference', 'V1SecretKeySelector',
  'V1ConfigMapKeySelector', 'V1ObjectFieldSelector', 'V1ResourceFieldSelector', 'V1SecretReference',
]);

/** Fields whose Go type is resource.Quantity; `map` when it is a map of them (ResourceList). */
export const QUANTITY_FIELDS: ReadonlyMap<string, 'scalar' | 'map'> = new Map<string, 'scalar' | 'map'>([
  ['V1ResourceRequirements.limits', 'map'],
  ['V1ResourceRequirements.requests', 'map'],
  ['V1VolumeResourceRequirements.limits', 'map'],
  ['V1VolumeResourceRequirements.requests', 'map'],
  ['V1PodSpec.overhead', 'map'],
  ['V1Overhead.podFixed', 'map'],
  ['V1NodeStatus.capacity', 'map'],
  ['V1NodeStatus.allocatable', 'map'],
  ['V1PersistentVolumeSpec.capacity', 'map'],
  ['V1PersistentVolumeClaimStatus.capacity', 'map'],
  ['V1PersistentVolumeClaimStatus.allocatedResources', 'map'],
  ['V1ContainerStatus.allocatedResources', 'map'],
  ['V1ResourceQuotaSpec.hard', 'map'],
  ['V1ResourceQuotaStatus.hard', 'map'],
  ['V1ResourceQuotaStatus.used', 'map'],
  ['V1LimitRangeItem.max', 'map'],
  ['V1LimitRangeItem.min', 'map'],
  ['V1LimitRangeItem.default', 'map'],
  ['V1LimitRangeItem.defaultRequest', 'map'],
  ['V1LimitRangeItem.maxLimitRequestRatio', 'map'],
  ['V1EmptyDirVolumeSource.sizeLimit', 'scalar'],
  ['V1ResourceFieldSelector.divisor', 'scalar'],
]);

/**
 * Fields client-node types as `any`, with the kube component they really are. Any other `any` field is
 * published as a schema that accepts every value.
 */
export const UNTYPED_FIELDS: ReadonlyMap<string, string> = new Map([
  ['V1ManagedFieldsEntry.fieldsV1', 'io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1'],
  ['V1ControllerRevision.data', 'io.k8s.apimachinery.pkg.runtime.RawExtension'],
  ['V1WatchEvent.object', 'io.k8s.apimachinery.pkg.runtime.RawExtension'],
  ['V1JSONSchemaProps.default', 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON'],
  ['V1JSONSchemaProps.example', 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON'],
  ['V1JSONSchemaProps.additionalProperties', 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool'],
  ['V1JSONSchemaProps.additionalItems', 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool'],
  ['V1JSONSchemaProps.items', 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray'],
  ['V1CustomResourceSubresources.status', 'io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceSubresourceStatus'],
]);
