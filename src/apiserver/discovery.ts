import { groupVersion, type ResourceDef, type Subresource } from '../api/resources.js';
import type { ResourceRegistry } from './registry.js';

/** The exact content type kubectl needs to accept an aggregated discovery answer. */
export const AGGREGATED_DISCOVERY_TYPE = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';

interface SubresourceInfo {
  group?: string;
  version?: string;
  kind: (def: ResourceDef) => string;
  verbs: string[];
}

const SUBRESOURCES: Record<Subresource, SubresourceInfo> = {
  status: { kind: (d) => d.kind, verbs: ['get', 'patch', 'update'] },
  approval: { kind: (d) => d.kind, verbs: ['get', 'patch', 'update'] },
  finalize: { kind: (d) => d.kind, verbs: ['update'] },
  token: { group: 'authentication.k8s.io', version: 'v1', kind: () => 'TokenRequest', verbs: ['create'] },
  scale: { group: 'autoscaling', version: 'v1', kind: () => 'Scale', verbs: ['get', 'patch', 'update'] },
  binding: { kind: () => 'Binding', verbs: ['create'] },
  eviction: { group: 'policy', version: 'v1', kind: () => 'Eviction', verbs: ['create'] },
  log: { kind: () => 'Pod', verbs: ['get'] },
  exec: { kind: () => 'PodExecOptions', verbs: ['create', 'get'] },
  attach: { kind: () => 'PodAttachOptions', verbs: ['create', 'get'] },
  portforward: { kind: () => 'PodPortForwardOptions', verbs: ['create', 'get'] },
  proxy: { kind: (d) => `${d.kind}ProxyOptions`, verbs: ['create', 'delete', 'get', 'patch', 'update'] },
};

export function apiVersions(serverAddress: string): object {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

export function apiGroupList(registry: ResourceRegistry): object {
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: registry
      .groups()
      .filter((g) => g.group !== '')
      .map((g) => apiGroup(g.group, g.versions.map((v) => v.version))),
  };
}

export function apiGroup(group: string, versions: string[]): object {
  const list = versions.map((version) => ({ groupVersion: `${group}/${version}`, version }));
  return { kind: 'APIGroup', apiVersion: 'v1', name: group, versions: list, preferredVersion: list[0] };
}

/** The legacy per-group-version document (`/api/v1`, `/apis/<g>/<v>`). */
export function apiResourceList(defs: ResourceDef[]): object {
  const resources: object[] = [];
  for (const def of defs) {
    const entry: Record<string, unknown> = {
      name: def.plural,
      singularName: def.singular,
      namespaced: def.namespaced,
      kind: def.kind,
      verbs: def.verbs,
    };
    if (def.shortNames) entry.shortNames = def.shortNames;
    if (def.categories) entry.categories = def.categories;
    resources.push(entry);
    for (const sub of def.subresources) {
      const info = SUBRESOURCES[sub];
      const s: Record<string, unknown> = { name: `${def.plural}/${sub}`, singularName: '', namespaced: def.namespaced, kind: info.kind(def), verbs: info.verbs };
      if (info.group) {
        s.group = info.group;
        s.version = info.version;
      }
      resources.push(s);
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: defs[0] ? groupVersion(defs[0]) : '', resources };
}

/** Aggregated discovery v2: `core` selects /api (true) or /apis (false). */
export function aggregatedDiscovery(registry: ResourceRegistry, core: boolean): object {
  const items = registry
    .groups()
    .filter((g) => (g.group === '') === core)
    .map((g) => ({
      metadata: { name: g.group, creationTimestamp: null },
      versions: g.versions.map((v) => ({
        version: v.version,
        freshness: 'Current',
        resources: v.defs.map((def) => aggregatedResource(def)),
      })),
    }));
  return { kind: 'APIGroupDiscoveryList', apiVersion: 'apidiscovery.k8s.io/v2', metadata: { creationTimestamp: null }, items };
}

function aggregatedResource(def: ResourceDef): object {
  const r: Record<string, unknown> = {
    resource: def.plural,
    responseKind: { group: def.group, version: def.version, kind: def.kind },
    scope: def.namespaced ? 'Namespaced' : 'Cluster',
    singularResource: def.singular,
    verbs: def.verbs,
  };
  if (def.shortNames) r.shortNames = def.shortNames;
  if (def.categories) r.categories = def.categories;
  if (def.subresources.length) {
    r.subresources = def.subresources.map((sub) => {
      const info = SUBRESOURCES[sub];
      return {
        subresource: sub,
        responseKind: { group: info.group ?? def.group, version: info.version ?? def.version, kind: info.kind(def) },
        verbs: info.verbs,
      };
    });
  }
  return r;
}
