import type { KubeObject, StatusCause } from '../types.js';
import { err, path } from './field.js';
import { isRecord, str, goStringSlice } from './meta.js';
import { invalidEach, isLabelValue, isQualifiedName, isValidCIDR } from './names.js';
import { TAINT_EFFECTS } from './podspec.js';
import type { KindRules } from './registry.js';

/** Node: SetDefaults_NodeStatus and ValidateNode(Update). */

type Rec = Record<string, any>;

function defaultNode(obj: KubeObject): void {
  if (!isRecord(obj.status)) return;
  const status = obj.status as Rec;
  if (isRecord(status.capacity) && !isRecord(status.allocatable)) status.allocatable = { ...status.capacity };
}

function podCIDRs(spec: Rec): string[] {
  if (Array.isArray(spec.podCIDRs) && spec.podCIDRs.length > 0) return spec.podCIDRs.map(String);
  return spec.podCIDR ? [String(spec.podCIDR)] : [];
}

function validateNode(obj: KubeObject): StatusCause[] {
  const spec: Rec = isRecord(obj.spec) ? obj.spec : {};
  const causes: StatusCause[] = [];
  // kube reports taints under metadata.taints: ValidateNode passes the metadata path.
  const taintsPath = path('metadata', 'taints');
  const seen = new Map<string, Set<string>>();
  (Array.isArray(spec.taints) ? spec.taints : []).forEach((raw: unknown, i: number) => {
    const t: Rec = isRecord(raw) ? raw : {};
    const at = taintsPath.index(i);
    const key = str(t.key);
    const effect = str(t.effect);
    causes.push(...invalidEach(at.child('key'), key, isQualifiedName(key)));
    const valueErrs = isLabelValue(str(t.value));
    if (valueErrs.length) causes.push(err.invalid(at.child('value'), str(t.value), valueErrs.join(';')));
    if (!effect) causes.push(err.required(at.child('effect')));
    else if (!TAINT_EFFECTS.includes(effect)) causes.push(err.notSupported(at.child('effect'), effect, TAINT_EFFECTS));
    const keys = seen.get(effect) ?? new Set<string>();
    if (keys.has(key)) {
      const shown = { rendered: `core.Taint{Key:${JSON.stringify(key)}, Value:${JSON.stringify(str(t.value))}, Effect:${JSON.stringify(effect)}, TimeAdded:<nil>}` };
      causes.push(err.duplicate(at, shown, 'taints must be unique by key and effect pair'));
      return;
    }
    keys.add(key);
    seen.set(effect, keys);
  });
  const cidrs = podCIDRs(spec);
  const cidrPath = path('spec', 'podCIDRs');
  cidrs.forEach((c, i) => causes.push(...isValidCIDR(cidrPath.index(i), c)));
  if (cidrs.length > 1) {
    const families = cidrs.map((c) => (c.includes(':') ? 6 : 4));
    if (cidrs.length > 2 || families[0] === families[1]) {
      causes.push(err.invalid(cidrPath, { rendered: goStringSlice(cidrs) }, 'may specify no more than one CIDR for each IP family'));
    }
    const dup = new Set<string>();
    cidrs.forEach((c, i) => {
      if (dup.has(c)) causes.push(err.duplicate(cidrPath.index(i), c));
      dup.add(c);
    });
  }
  return causes;
}

function validateNodeUpdate(obj: KubeObject, old: KubeObject): StatusCause[] {
  const spec: Rec = isRecord(obj.spec) ? obj.spec : {};
  const prev: Rec = isRecord(old.spec) ? old.spec : {};
  const causes: StatusCause[] = [];
  const before = podCIDRs(prev);
  const after = podCIDRs(spec);
  if (before.length > 0 && (before.length !== after.length || before.some((c, i) => c !== after[i]))) {
    causes.push(err.forbidden(path('spec', 'podCIDRs'), 'node updates may not change podCIDR except from "" to valid'));
  }
  if (prev.providerID && prev.providerID !== spec.providerID) {
    causes.push(err.forbidden(path('spec', 'providerID'), 'node updates may not change providerID except from "" to valid'));
  }
  return causes;
}

export const nodeRules: KindRules = {
  group: '',
  kind: 'Node',
  defaults: defaultNode,
  validate: validateNode,
  validateUpdate: validateNodeUpdate,
};
