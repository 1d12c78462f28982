import { BUILTIN_RESOURCES, type ResourceDef, type Subresource } from '../api/resources.js';
import type { KubeObject } from '../api/types.js';
import type { Schema } from '../api/openapi/schema.js';
import type { PrinterColumn } from '../api/table.js';

/** Group order in discovery, as kube-apiserver lists its built-in groups. */
const GROUP_ORDER = [
  '',
  'apps',
  'events.k8s.io',
  'authentication.k8s.io',
  'authorization.k8s.io',
  'certificates.k8s.io',
  'coordination.k8s.io',
  'discovery.k8s.io',
  'rbac.authorization.k8s.io',
  'node.k8s.io',
  'apiextensions.k8s.io',
];

interface CustomResource {
  def: ResourceDef;
  schema: Schema;
  printerColumns: PrinterColumn[];
  crdName: string;
}

interface CrdVersion {
  name: string;
  served?: boolean;
  storage?: boolean;
  schema?: { openAPIV3Schema?: Schema };
  subresources?: { status?: object; scale?: object };
  additionalPrinterColumns?: PrinterColumn[];
}

interface CrdSpec {
  group: string;
  scope: 'Namespaced' | 'Cluster';
  names: { plural: string; singular?: string; kind: string; listKind?: string; shortNames?: string[]; categories?: string[] };
  versions: CrdVersion[];
}

/**
 * Every resource the server serves: the built-ins, the resources the server computes rather than
 * stores (`served`, e.g. metrics.k8s.io), and one entry per served version of each established
 * CustomResourceDefinition.
 */
export class ResourceRegistry {
  private readonly custom = new Map<string, CustomResource[]>();
  private byPath = new Map<string, ResourceDef>();

  constructor(private readonly served: readonly ResourceDef[] = []) {
    this.rebuild();
  }

  all(): ResourceDef[] {
    return [...this.byPath.values()];
  }

  lookup(group: string, version: string, plural: string): ResourceDef | undefined {
    return this.byPath.get(`${group}/${version}/${plural}`);
  }

  /** The group versions served, each group's preferred version first. */
  groups(): { group: string; versions: { version: string; defs: ResourceDef[] }[] }[] {
    const groups = new Map<string, Map<string, ResourceDef[]>>();
    for (const def of this.byPath.values()) {
      let versions = groups.get(def.group);
      if (!versions) groups.set(def.group, (versions = new Map()));
      let defs = versions.get(def.version);
      if (!defs) versions.set(def.version, (defs = []));
      defs.push(def);
    }
    const rank = (g: string) => {
      const i = GROUP_ORDER.indexOf(g);
      return i < 0 ? GROUP_ORDER.length : i;
    };
    return [...groups.entries()]
      .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
      .map(([group, versions]) => ({
        group,
        versions: [...versions.entries()].sort(([a], [b]) => compareVersions(b, a)).map(([version, defs]) => ({ version, defs })),
      }));
  }

  customSchema(def: ResourceDef): Schema | undefined {
    return this.findCustom(def)?.schema;
  }

  printerColumns(def: ResourceDef): PrinterColumn[] | undefined {
    return this.findCustom(def)?.printerColumns;
  }

  /** Serves (or stops serving) the versions of a CRD. Only established CRDs are served. */
  setCrd(crd: KubeObject | undefined, name: string): void {
    if (!crd || crd.metadata.deletionTimestamp) this.custom.delete(name);
    else this.custom.set(name, customResources(crd));
    this.rebuild();
  }

  private findCustom(def: ResourceDef): CustomResource | undefined {
    for (const list of this.custom.values()) {
      const hit = list.find((c) => c.def.group === def.group && c.def.version === def.version && c.def.plural === def.plural);
      if (hit) return hit;
    }
    return undefined;
  }

  private rebuild(): void {
    const map = new Map<string, ResourceDef>();
    for (const def of [...BUILTIN_RESOURCES, ...this.served]) map.set(`${def.group}/${def.version}/${def.plural}`, def);
    for (const list of this.custom.values()) {
      for (const c of list) {
        const k = `${c.def.group}/${c.def.version}/${c.def.plural}`;
        if (!map.has(k)) map.set(k, c.def);
      }
    }
    this.byPath = map;
  }
}

function customResources(crd: KubeObject): CustomResource[] {
  const spec = crd.spec as CrdSpec;
  const reversedGroup = spec.group.split('.').reverse().join('.');
  return spec.versions
    .filter((v) => v.served !== false)
    .map((v) => {
      const subresources: Subresource[] = [];
      if (v.subresources?.status) subresources.push('status');
      if (v.subresources?.scale) subresources.push('scale');
      const def: ResourceDef = {
        group: spec.group,
        version: v.name,
        kind: spec.names.kind,
        listKind: spec.names.listKind ?? `${spec.names.kind}List`,
        plural: spec.names.plural,
        singular: spec.names.singular ?? spec.names.kind.toLowerCase(),
        namespaced: spec.scope === 'Namespaced',
        subresources,
        verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'],
        schemaName: `${reversedGroup}.${v.name}.${spec.names.kind}`,
        custom: true,
      };
      if (spec.names.shortNames?.length) def.shortNames = spec.names.shortNames;
      if (spec.names.categories?.length) def.categories = spec.names.categories;
      return {
        def,
        schema: v.schema?.openAPIV3Schema ?? { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        printerColumns: v.additionalPrinterColumns ?? [],
        crdName: crd.metadata.name!,
      };
    });
}

/** Kubernetes version priority: GA > beta > alpha, then by number (v2 > v1, v1beta2 > v1beta1). */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return [0, 0, 0];
    const stage = m[2] === undefined ? 3 : m[2] === 'beta' ? 2 : 1;
    return [stage, Number(m[1]), Number(m[3] ?? 0)];
  };
  const [sa, ma, na] = parse(a);
  const [sb, mb, nb] = parse(b);
  if (sa !== sb) return sa! - sb!;
  if (ma !== mb) return ma! - mb!;
  return na! - nb!;
}
