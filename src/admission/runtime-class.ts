import { compare, tryParseQuantity } from '../api/quantity.js';
import type { KubeObject } from '../api/types.js';
import type { AdmissionPlugin, AdmissionRequest } from '../apiserver/admission.js';
import { admissionForbidden, isPod, podSpec, type PodSpec, type Toleration } from './pod-request.js';

/** Reads a RuntimeClass by name; `undefined` when there is none. */
export type RuntimeClassLookup = (name: string) => KubeObject | undefined | Promise<KubeObject | undefined>;

interface RuntimeClassFields {
  overhead?: { podFixed?: Record<string, string> };
  scheduling?: { nodeSelector?: Record<string, string>; tolerations?: Toleration[] };
}

/**
 * RuntimeClass: on pod create, a `runtimeClassName` must name an existing RuntimeClass; the class's
 * `overhead.podFixed` becomes the pod's `spec.overhead` (an overhead the pod declares itself must match
 * it, and may not appear without one), and its `scheduling` constraints are merged into the pod's
 * node selector and tolerations.
 */
export function runtimeClass(lookup: RuntimeClassLookup): AdmissionPlugin {
  const classOf = async (req: AdmissionRequest, spec: PodSpec): Promise<RuntimeClassFields | undefined> => {
    const name = spec.runtimeClassName;
    if (name === undefined || name === null) return undefined;
    const found = await lookup(name);
    if (!found) throw admissionForbidden(req, `pod rejected: RuntimeClass "${name}" not found`);
    return found as RuntimeClassFields;
  };
  return {
    name: 'RuntimeClass',
    async admit(req) {
      if (req.operation !== 'CREATE' || !isPod(req)) return;
      const spec = podSpec(req.object!);
      const rc = await classOf(req, spec);
      if (!rc) return;
      if (rc.overhead) {
        if (spec.overhead != null && !sameResources(rc.overhead.podFixed, spec.overhead)) {
          throw admissionForbidden(req, "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead");
        }
        if (rc.overhead.podFixed) spec.overhead = { ...rc.overhead.podFixed };
        else delete spec.overhead;
      }
      if (rc.scheduling) mergeScheduling(req, spec, rc.scheduling);
    },
    async validate(req) {
      if (req.operation !== 'CREATE' || !isPod(req)) return;
      const spec = podSpec(req.object!);
      const rc = await classOf(req, spec);
      if (rc?.overhead) {
        if (!sameResources(rc.overhead.podFixed, spec.overhead)) {
          throw admissionForbidden(req, "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead");
        }
      } else if (spec.overhead != null) {
        throw admissionForbidden(req, 'pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead');
      }
    },
  };
}

function mergeScheduling(req: AdmissionRequest, spec: PodSpec, scheduling: NonNullable<RuntimeClassFields['scheduling']>): void {
  const classSelector = scheduling.nodeSelector ?? {};
  if (spec.nodeSelector) {
    for (const [key, value] of Object.entries(classSelector)) {
      const podValue = spec.nodeSelector[key];
      if (podValue !== undefined && podValue !== value) {
        throw admissionForbidden(req, `conflict: runtimeClass.scheduling.nodeSelector[${key}] = ${value}; pod.spec.nodeSelector[${key}] = ${podValue}`);
      }
      spec.nodeSelector[key] = value;
    }
  } else if (scheduling.nodeSelector) {
    spec.nodeSelector = { ...scheduling.nodeSelector };
  }
  const merged = mergeTolerations(spec.tolerations ?? [], scheduling.tolerations ?? []);
  if (merged.length) spec.tolerations = merged;
}

/**
 * kube's MergeTolerations: the class's tolerations, then each of the pod's whose key and effect the
 * class does not already cover.
 */
export function mergeTolerations(pod: Toleration[], fromClass: Toleration[]): Toleration[] {
  const id = (t: Toleration) => `${t.key ?? ''}\u0000${t.effect ?? ''}`;
  const covered = new Set(fromClass.map(id));
  return [...fromClass.map((t) => ({ ...t })), ...pod.filter((t) => !covered.has(id(t)))];
}

/** Semantic equality of two resource lists: the same names with equal quantities; absent equals empty. */
function sameResources(a: Record<string, string> | undefined, b: Record<string, string> | undefined): boolean {
  const x = a ?? {};
  const y = b ?? {};
  const keys = Object.keys(x);
  if (keys.length !== Object.keys(y).length) return false;
  return keys.every((k) => {
    if (!(k in y)) return false;
    const qa = tryParseQuantity(x[k]!);
    const qb = tryParseQuantity(y[k]!);
    return qa && qb ? compare(qa, qb) === 0 : x[k] === y[k];
  });
}
