import type { KubeObject } from '../../api/types.js';

/**
 * The default RBAC policy the API server creates at startup when missing, modelled on kube-apiserver's
 * bootstrap policy. Objects carry `rbac.authorization.kubernetes.io/autoupdate: "true"` so the server may
 * reconcile them on upgrade, and kube's `kubernetes.io/bootstrapping: rbac-defaults` label.
 *
 * Differences from kube, on purpose: Atoll has no Node authorizer, so `system:node` is bound to the
 * `system:nodes` group (kube leaves that binding empty), and `system:node-bootstrapper` is bound to
 * `system:bootstrappers` (kubeadm binds it per token group). Roles for components Atoll does not run
 * (controller-manager, scheduler, kube-proxy, ...) are left out.
 */

const RBAC_API_VERSION = 'rbac.authorization.k8s.io/v1';
const RBAC_GROUP = 'rbac.authorization.k8s.io';
export const AUTOUPDATE_ANNOTATION = 'rbac.authorization.kubernetes.io/autoupdate';
const BOOTSTRAPPING_LABEL = 'kubernetes.io/bootstrapping';
const AGGREGATE_TO_ADMIN = 'rbac.authorization.k8s.io/aggregate-to-admin';
const AGGREGATE_TO_EDIT = 'rbac.authorization.k8s.io/aggregate-to-edit';
const AGGREGATE_TO_VIEW = 'rbac.authorization.k8s.io/aggregate-to-view';

const READ = ['get', 'list', 'watch'];
const WRITE = ['create', 'update', 'patch', 'delete', 'deletecollection'];

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
  verbs: string[];
}

const res = (verbs: string[], apiGroups: string[], resources: string[]): Rule => ({ apiGroups, resources, verbs });
const urls = (verbs: string[], nonResourceURLs: string[]): Rule => ({ nonResourceURLs, verbs });

function metadata(name: string, labels: Record<string, string> = {}): KubeObject['metadata'] {
  return {
    name,
    labels: { [BOOTSTRAPPING_LABEL]: 'rbac-defaults', ...labels },
    annotations: { [AUTOUPDATE_ANNOTATION]: 'true' },
  };
}

function clusterRole(name: string, rules: Rule[], opts: { labels?: Record<string, string>; aggregateFrom?: string } = {}): KubeObject {
  const role: KubeObject = { apiVersion: RBAC_API_VERSION, kind: 'ClusterRole', metadata: metadata(name, opts.labels) };
  if (opts.aggregateFrom) role['aggregationRule'] = { clusterRoleSelectors: [{ matchLabels: { [opts.aggregateFrom]: 'true' } }] };
  role['rules'] = rules;
  return role;
}

function groupBinding(role: string, groups: string[]): KubeObject {
  return {
    apiVersion: RBAC_API_VERSION,
    kind: 'ClusterRoleBinding',
    metadata: metadata(role),
    roleRef: { apiGroup: RBAC_GROUP, kind: 'ClusterRole', name: role },
    subjects: groups.map((name) => ({ apiGroup: RBAC_GROUP, kind: 'Group', name })),
  };
}

/** What a node agent needs to register itself, run its pods and report on them. */
const NODE_RULES: Rule[] = [
  res(['create'], ['authentication.k8s.io'], ['tokenreviews']),
  res(['create'], ['authorization.k8s.io'], ['subjectaccessreviews', 'localsubjectaccessreviews']),
  res(READ, [''], ['services']),
  res(['create', 'get', 'list', 'watch'], [''], ['nodes']),
  res(['update', 'patch'], [''], ['nodes/status']),
  res(['update', 'patch'], [''], ['nodes']),
  res(['create', 'update', 'patch'], [''], ['events']),
  res(['create', 'update', 'patch'], ['events.k8s.io'], ['events']),
  res(READ, [''], ['pods']),
  res(['create', 'delete'], [''], ['pods']),
  res(['update', 'patch'], [''], ['pods/status']),
  res(['create'], [''], ['pods/eviction']),
  res(READ, [''], ['secrets', 'configmaps']),
  res(['get'], [''], ['persistentvolumeclaims', 'persistentvolumes']),
  res(['get', 'update', 'patch'], [''], ['persistentvolumeclaims/status']),
  res(['create'], [''], ['serviceaccounts/token']),
  res(['create', 'get', 'list', 'watch'], ['certificates.k8s.io'], ['certificatesigningrequests']),
  res(['get', 'create', 'update', 'patch', 'delete'], ['coordination.k8s.io'], ['leases']),
  res(['get'], ['storage.k8s.io'], ['volumeattachments']),
  res(['get', 'list', 'watch'], ['storage.k8s.io'], ['csidrivers']),
  res(['get', 'create', 'update', 'patch', 'delete'], ['storage.k8s.io'], ['csinodes']),
  res(READ, ['node.k8s.io'], ['runtimeclasses']),
];

function clusterRoles(): KubeObject[] {
  return [
    clusterRole('cluster-admin', [res(['*'], ['*'], ['*']), urls(['*'], ['*'])]),
    clusterRole('system:discovery', [
      urls(['get'], ['/api', '/api/*', '/apis', '/apis/*', '/healthz', '/livez', '/openapi', '/openapi/*', '/readyz', '/version', '/version/']),
    ]),
    clusterRole('system:basic-user', [
      res(['create'], ['authorization.k8s.io'], ['selfsubjectaccessreviews', 'selfsubjectrulesreviews']),
      res(['create'], ['authentication.k8s.io'], ['selfsubjectreviews']),
    ]),
    clusterRole('system:public-info-viewer', [urls(['get'], ['/healthz', '/livez', '/readyz', '/version', '/version/'])]),

    // admin ⊇ edit ⊇ view, composed by aggregation exactly as in kube.
    clusterRole('admin', [], { aggregateFrom: AGGREGATE_TO_ADMIN }),
    clusterRole('edit', [], { aggregateFrom: AGGREGATE_TO_EDIT, labels: { [AGGREGATE_TO_ADMIN]: 'true' } }),
    clusterRole('view', [], { aggregateFrom: AGGREGATE_TO_VIEW, labels: { [AGGREGATE_TO_EDIT]: 'true' } }),
    clusterRole(
      'system:aggregate-to-admin',
      [
        res(['create'], ['authorization.k8s.io'], ['localsubjectaccessreviews']),
        res([...READ, ...WRITE], [RBAC_GROUP], ['roles', 'rolebindings']),
      ],
      { labels: { [AGGREGATE_TO_ADMIN]: 'true' } },
    ),
    clusterRole(
      'system:aggregate-to-edit',
      [
        res(READ, [''], ['pods/attach', 'pods/proxy', 'pods/exec', 'pods/portforward', 'secrets', 'services/proxy']),
        res(['impersonate'], [''], ['serviceaccounts']),
        res(WRITE, [''], ['pods', 'pods/attach', 'pods/proxy', 'pods/exec', 'pods/portforward']),
        res(['create'], [''], ['pods/eviction']),
        res(WRITE, [''], [
          'replicationcontrollers', 'replicationcontrollers/scale', 'serviceaccounts', 'services', 'services/proxy',
          'persistentvolumeclaims', 'configmaps', 'secrets',
        ]),
        res(['create'], [''], ['serviceaccounts/token']),
        res(WRITE, ['apps'], ['statefulsets', 'statefulsets/scale', 'daemonsets', 'deployments', 'deployments/scale', 'deployments/rollback', 'replicasets', 'replicasets/scale']),
        res(WRITE, ['autoscaling'], ['horizontalpodautoscalers']),
        res(WRITE, ['batch'], ['jobs', 'cronjobs']),
        res(WRITE, ['policy'], ['poddisruptionbudgets']),
        res(WRITE, ['networking.k8s.io'], ['networkpolicies', 'ingresses']),
      ],
      { labels: { [AGGREGATE_TO_EDIT]: 'true' } },
    ),
    clusterRole(
      'system:aggregate-to-view',
      [
        res(READ, [''], [
          'pods', 'replicationcontrollers', 'replicationcontrollers/scale', 'serviceaccounts', 'services', 'services/status',
          'endpoints', 'persistentvolumeclaims', 'persistentvolumeclaims/status', 'configmaps',
        ]),
        res(READ, [''], [
          'limitranges', 'resourcequotas', 'bindings', 'events', 'pods/status', 'resourcequotas/status', 'namespaces/status',
          'replicationcontrollers/status', 'pods/log',
        ]),
        res(READ, [''], ['namespaces']),
        res(READ, ['discovery.k8s.io'], ['endpointslices']),
        res(READ, ['apps'], [
          'controllerrevisions', 'statefulsets', 'statefulsets/status', 'statefulsets/scale', 'daemonsets', 'daemonsets/status',
          'deployments', 'deployments/status', 'deployments/scale', 'replicasets', 'replicasets/status', 'replicasets/scale',
        ]),
        res(READ, ['autoscaling'], ['horizontalpodautoscalers', 'horizontalpodautoscalers/status']),
        res(READ, ['batch'], ['jobs', 'jobs/status', 'cronjobs', 'cronjobs/status']),
        res(READ, ['policy'], ['poddisruptionbudgets', 'poddisruptionbudgets/status']),
        res(READ, ['networking.k8s.io'], ['networkpolicies', 'ingresses', 'ingresses/status']),
      ],
      { labels: { [AGGREGATE_TO_VIEW]: 'true' } },
    ),

    // What metrics-server installs beside its API: whoever may view may read metrics.k8s.io (kubectl top).
    clusterRole('system:aggregated-metrics-reader', [res(['get', 'list', 'watch'], ['metrics.k8s.io'], ['pods', 'nodes'])], {
      labels: { [AGGREGATE_TO_VIEW]: 'true', [AGGREGATE_TO_EDIT]: 'true', [AGGREGATE_TO_ADMIN]: 'true' },
    }),

    clusterRole('system:node', NODE_RULES),
    clusterRole('system:node-bootstrapper', [
      res(['create', 'get', 'list', 'watch'], ['certificates.k8s.io'], ['certificatesigningrequests']),
    ]),
    // Consulted by a CSR approver (via an access check) to auto-approve node client certificates.
    clusterRole('system:certificates.k8s.io:certificatesigningrequests:nodeclient', [
      res(['create'], ['certificates.k8s.io'], ['certificatesigningrequests/nodeclient']),
    ]),
    clusterRole('system:certificates.k8s.io:certificatesigningrequests:selfnodeclient', [
      res(['create'], ['certificates.k8s.io'], ['certificatesigningrequests/selfnodeclient']),
    ]),
  ];
}

function clusterRoleBindings(): KubeObject[] {
  return [
    groupBinding('cluster-admin', ['system:masters']),
    groupBinding('system:discovery', ['system:authenticated']),
    groupBinding('system:basic-user', ['system:authenticated']),
    groupBinding('system:public-info-viewer', ['system:authenticated']),
    groupBinding('system:node', ['system:nodes']),
    groupBinding('system:node-bootstrapper', ['system:bootstrappers']),
    groupBinding('system:certificates.k8s.io:certificatesigningrequests:nodeclient', ['system:bootstrappers']),
    groupBinding('system:certificates.k8s.io:certificatesigningrequests:selfnodeclient', ['system:nodes']),
  ];
}

/** Fresh copies of the default ClusterRoles, then the default ClusterRoleBindings. */
export function bootstrapPolicy(): KubeObject[] {
  return [...clusterRoles(), ...clusterRoleBindings()];
}
