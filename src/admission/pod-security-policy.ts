import type { ObjectMeta } from '../api/types.js';
import type { Container, PodSpec, SecurityContext } from './pod-request.js';

/**
 * The Pod Security Standards at their latest version, check by check as kube's pod-security-admission
 * words them. Each check returns `undefined` when the pod passes, or the violation's reason and detail.
 * Baseline checks run at baseline and restricted; a restricted check may replace a weaker baseline one.
 */

export type Level = 'privileged' | 'baseline' | 'restricted';
export const LEVELS: readonly Level[] = ['privileged', 'baseline', 'restricted'];

export interface Violation {
  reason: string;
  detail: string;
}

type Check = (meta: ObjectMeta, spec: PodSpec) => Violation | undefined;

interface CheckDef {
  id: string;
  level: Exclude<Level, 'privileged'>;
  run: Check;
  /** Baseline checks this restricted one supersedes. */
  overrides?: string[];
}

const joinQuote = (items: string[]) => (items.length ? `"${items.join('", "')}"` : '');
const pluralize = (singular: string, plural: string, n: number) => (n === 1 ? singular : plural);
/** Sorted unique strings, like Go's sets.String.List(). */
const sortedSet = (items: Iterable<string>) => [...new Set(items)].sort();
const containersPhrase = (names: string[]) => `${pluralize('container', 'containers', names.length)} ${joinQuote(names)}`;

function containers(spec: PodSpec): Container[] {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])];
}

function sc(c: Container): SecurityContext {
  return c.securityContext ?? {};
}

const isWindows = (spec: PodSpec) => spec.os?.name === 'windows';

const APPARMOR_ANNOTATION_PREFIX = 'container.apparmor.security.beta.kubernetes.io/';

const appArmorProfile: Check = (meta, spec) => {
  const setters: string[] = [];
  const values: string[] = [];
  if (spec.securityContext?.appArmorProfile?.type === 'Unconfined') {
    setters.push('pod');
    values.push('Unconfined');
  }
  const bad = containers(spec).filter((c) => sc(c).appArmorProfile?.type === 'Unconfined').map((c) => c.name);
  if (bad.length) {
    setters.push(containersPhrase(bad));
    values.push('Unconfined');
  }
  const annotations = Object.entries(meta.annotations ?? {}).filter(
    ([k, v]) => k.startsWith(APPARMOR_ANNOTATION_PREFIX) && v !== '' && v !== 'runtime/default' && !v.startsWith('localhost/'),
  );
  if (annotations.length) {
    setters.push('annotations');
    values.push(...annotations.map(([k, v]) => `${k}=${JSON.stringify(v)}`));
  }
  if (!setters.length) return undefined;
  const list = sortedSet(values);
  return {
    reason: pluralize('forbidden AppArmor profile', 'forbidden AppArmor profiles', list.length),
    detail: `${setters.join(' and ')} must not set AppArmor profile type to ${joinQuote(list)}`,
  };
};

const BASELINE_CAPABILITIES = new Set([
  'AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT',
]);

const capabilitiesBaseline: Check = (_meta, spec) => {
  const bad: string[] = [];
  const caps: string[] = [];
  for (const c of containers(spec)) {
    const extra = (sc(c).capabilities?.add ?? []).filter((cap) => !BASELINE_CAPABILITIES.has(cap));
    if (extra.length) {
      bad.push(c.name);
      caps.push(...extra);
    }
  }
  if (!bad.length) return undefined;
  return { reason: 'non-default capabilities', detail: `${containersPhrase(bad)} must not include ${joinQuote(sortedSet(caps))} in securityContext.capabilities.add` };
};

const hostNamespaces: Check = (_meta, spec) => {
  const used = (['hostNetwork', 'hostPID', 'hostIPC'] as const).filter((k) => spec[k] === true).map((k) => `${k}=true`);
  return used.length ? { reason: 'host namespaces', detail: used.join(', ') } : undefined;
};

const hostPathVolumes: Check = (_meta, spec) => {
  const names = (spec.volumes ?? []).filter((v) => v.hostPath != null).map((v) => v.name);
  return names.length ? { reason: 'hostPath volumes', detail: `${pluralize('volume', 'volumes', names.length)} ${joinQuote(names)}` } : undefined;
};

const hostPorts: Check = (_meta, spec) => {
  const bad: string[] = [];
  const ports: string[] = [];
  for (const c of containers(spec)) {
    const used = (c.ports ?? []).filter((p) => p.hostPort).map((p) => String(p.hostPort));
    if (used.length) {
      bad.push(c.name);
      ports.push(...used);
    }
  }
  if (!bad.length) return undefined;
  const list = sortedSet(ports);
  return {
    reason: 'hostPort',
    detail: `${containersPhrase(bad)} ${pluralize('uses', 'use', bad.length)} ${pluralize('hostPort', 'hostPorts', list.length)} ${list.join(', ')}`,
  };
};

const privileged: Check = (_meta, spec) => {
  const bad = containers(spec).filter((c) => sc(c).privileged === true).map((c) => c.name);
  return bad.length ? { reason: 'privileged', detail: `${containersPhrase(bad)} must not set securityContext.privileged=true` } : undefined;
};

const procMount: Check = (_meta, spec) => {
  const bad: string[] = [];
  const types: string[] = [];
  for (const c of containers(spec)) {
    const pm = sc(c).procMount;
    if (pm !== undefined && pm !== null && pm !== 'Default') {
      bad.push(c.name);
      types.push(pm);
    }
  }
  return bad.length ? { reason: 'procMount', detail: `${containersPhrase(bad)} must not set securityContext.procMount to ${joinQuote(sortedSet(types))}` } : undefined;
};

const SELINUX_TYPES = new Set(['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']);

const seLinuxOptions: Check = (_meta, spec) => {
  const badTypes: string[] = [];
  let setUser = false;
  let setRole = false;
  const valid = (o: { type?: string; user?: string; role?: string }) => {
    let ok = true;
    if (!SELINUX_TYPES.has(o.type ?? '')) {
      ok = false;
      badTypes.push(o.type ?? '');
    }
    if (o.user) {
      ok = false;
      setUser = true;
    }
    if (o.role) {
      ok = false;
      setRole = true;
    }
    return ok;
  };
  const setters: string[] = [];
  const podOptions = spec.securityContext?.seLinuxOptions;
  if (podOptions && !valid(podOptions)) setters.push('pod');
  const bad = containers(spec).filter((c) => {
    const o = sc(c).seLinuxOptions;
    return o ? !valid(o) : false;
  });
  if (bad.length) setters.push(containersPhrase(bad.map((c) => c.name)));
  if (!setters.length) return undefined;
  const data: string[] = [];
  const types = sortedSet(badTypes);
  if (types.length) data.push(`${pluralize('type', 'types', types.length)} ${joinQuote(types)}`);
  if (setUser) data.push('user may not be set');
  if (setRole) data.push('role may not be set');
  return { reason: 'seLinuxOptions', detail: `${setters.join(' and ')} set forbidden securityContext.seLinuxOptions: ${data.join('; ')}` };
};

const validSeccomp = (t: string | undefined) => t === 'RuntimeDefault' || t === 'Localhost';

/** Pod- and container-level seccomp types that are explicitly set to something other than RuntimeDefault or Localhost. */
function badSeccomp(spec: PodSpec): { setters: string[]; values: string[]; podValid: boolean; unset: string[] } {
  const setters: string[] = [];
  const values: string[] = [];
  const podProfile = spec.securityContext?.seccompProfile;
  let podValid = false;
  if (podProfile) {
    if (validSeccomp(podProfile.type)) podValid = true;
    else {
      setters.push('pod');
      values.push(podProfile.type ?? '');
    }
  }
  const explicit: string[] = [];
  const unset: string[] = [];
  for (const c of containers(spec)) {
    const profile = sc(c).seccompProfile;
    if (profile) {
      if (!validSeccomp(profile.type)) {
        explicit.push(c.name);
        values.push(profile.type ?? '');
      }
    } else if (!podValid) unset.push(c.name);
  }
  if (explicit.length) setters.push(containersPhrase(explicit));
  return { setters, values, podValid, unset };
}

const seccompBaseline: Check = (_meta, spec) => {
  const { setters, values } = badSeccomp(spec);
  if (!setters.length) return undefined;
  return { reason: 'seccompProfile', detail: `${setters.join(' and ')} must not set securityContext.seccompProfile.type to ${joinQuote(sortedSet(values))}` };
};

const SAFE_SYSCTLS = new Set([
  'kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.tcp_syncookies', 'net.ipv4.ping_group_range',
  'net.ipv4.ip_unprivileged_port_start', 'net.ipv4.ip_local_reserved_ports', 'net.ipv4.tcp_keepalive_time', 'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_keepalive_intvl', 'net.ipv4.tcp_keepalive_probes', 'net.ipv4.tcp_rmem', 'net.ipv4.tcp_wmem',
]);

const sysctls: Check = (_meta, spec) => {
  const bad = (spec.securityContext?.sysctls ?? []).map((s) => s.name).filter((n) => !SAFE_SYSCTLS.has(n));
  return bad.length ? { reason: 'forbidden sysctls', detail: bad.join(', ') } : undefined;
};

const windowsHostProcess: Check = (_meta, spec) => {
  const setters: string[] = [];
  if (spec.securityContext?.windowsOptions?.hostProcess === true) setters.push('pod');
  const bad = containers(spec).filter((c) => sc(c).windowsOptions?.hostProcess === true).map((c) => c.name);
  if (bad.length) setters.push(containersPhrase(bad));
  return setters.length ? { reason: 'hostProcess', detail: `${setters.join(' and ')} must not set securityContext.windowsOptions.hostProcess=true` } : undefined;
};

const allowPrivilegeEscalation: Check = (_meta, spec) => {
  if (isWindows(spec)) return undefined;
  const bad = containers(spec).filter((c) => sc(c).allowPrivilegeEscalation !== false).map((c) => c.name);
  return bad.length ? { reason: 'allowPrivilegeEscalation != false', detail: `${containersPhrase(bad)} must set securityContext.allowPrivilegeEscalation=false` } : undefined;
};

const capabilitiesRestricted: Check = (_meta, spec) => {
  if (isWindows(spec)) return undefined;
  const missingDropAll: string[] = [];
  const adding: string[] = [];
  const caps: string[] = [];
  for (const c of containers(spec)) {
    const capabilities = sc(c).capabilities;
    if (!capabilities) {
      missingDropAll.push(c.name);
      continue;
    }
    if (!(capabilities.drop ?? []).includes('ALL')) missingDropAll.push(c.name);
    const forbidden = (capabilities.add ?? []).filter((cap) => cap !== 'NET_BIND_SERVICE');
    if (forbidden.length) {
      adding.push(c.name);
      caps.push(...forbidden);
    }
  }
  const details: string[] = [];
  if (missingDropAll.length) details.push(`${containersPhrase(missingDropAll)} must set securityContext.capabilities.drop=["ALL"]`);
  if (adding.length) details.push(`${containersPhrase(adding)} must not include ${joinQuote(sortedSet(caps))} in securityContext.capabilities.add`);
  return details.length ? { reason: 'unrestricted capabilities', detail: details.join('; ') } : undefined;
};

/** Volume sources the restricted level allows; the names of the others as kube reports them. */
const RESTRICTED_ALLOWED_VOLUMES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
const RESTRICTED_VOLUME_TYPES = [
  'hostPath', 'gcePersistentDisk', 'awsElasticBlockStore', 'gitRepo', 'nfs', 'iscsi', 'glusterfs', 'rbd', 'flexVolume', 'cinder', 'cephfs',
  'flocker', 'fc', 'azureFile', 'vsphereVolume', 'quobyte', 'azureDisk', 'photonPersistentDisk', 'portworxVolume', 'scaleIO', 'storageos',
];

const restrictedVolumes: Check = (_meta, spec) => {
  const names: string[] = [];
  const types: string[] = [];
  for (const v of spec.volumes ?? []) {
    if (RESTRICTED_ALLOWED_VOLUMES.some((k) => v[k] != null)) continue;
    names.push(v.name);
    types.push(RESTRICTED_VOLUME_TYPES.find((k) => v[k] != null) ?? 'unknown');
  }
  if (!names.length) return undefined;
  const list = sortedSet(types);
  return {
    reason: 'restricted volume types',
    detail: `${pluralize('volume', 'volumes', names.length)} ${joinQuote(names)} ${pluralize('uses', 'use', names.length)} ${pluralize('restricted volume type', 'restricted volume types', list.length)} ${joinQuote(list)}`,
  };
};

const runAsNonRoot: Check = (_meta, spec) => {
  const setters: string[] = [];
  const podSetting = spec.securityContext?.runAsNonRoot;
  if (podSetting === false) setters.push('pod');
  const explicit: string[] = [];
  const implicit: string[] = [];
  for (const c of containers(spec)) {
    const v = sc(c).runAsNonRoot;
    if (typeof v === 'boolean') {
      if (!v) explicit.push(c.name);
    } else if (podSetting !== true) implicit.push(c.name);
  }
  if (explicit.length) setters.push(containersPhrase(explicit));
  if (setters.length) return { reason: 'runAsNonRoot != true', detail: `${setters.join(' and ')} must not set securityContext.runAsNonRoot=false` };
  if (implicit.length) return { reason: 'runAsNonRoot != true', detail: `pod or ${containersPhrase(implicit)} must set securityContext.runAsNonRoot=true` };
  return undefined;
};

const runAsUser: Check = (_meta, spec) => {
  const setters: string[] = [];
  if (spec.securityContext?.runAsUser === 0) setters.push('pod');
  const bad = containers(spec).filter((c) => sc(c).runAsUser === 0).map((c) => c.name);
  if (bad.length) setters.push(containersPhrase(bad));
  return setters.length ? { reason: 'runAsUser=0', detail: `${setters.join(' and ')} must not set runAsUser=0` } : undefined;
};

const seccompRestricted: Check = (_meta, spec) => {
  if (isWindows(spec)) return undefined;
  const { setters, values, unset } = badSeccomp(spec);
  if (setters.length) {
    return { reason: 'seccompProfile', detail: `${setters.join(' and ')} must not set securityContext.seccompProfile.type to ${joinQuote(sortedSet(values))}` };
  }
  if (unset.length) {
    return { reason: 'seccompProfile', detail: `pod or ${containersPhrase(unset)} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"` };
  }
  return undefined;
};

/** In kube's registration order (its check files, alphabetically), which fixes the order of reported violations. */
const CHECKS: CheckDef[] = [
  { id: 'allowPrivilegeEscalation', level: 'restricted', run: allowPrivilegeEscalation },
  { id: 'appArmorProfile', level: 'baseline', run: appArmorProfile },
  { id: 'capabilities_baseline', level: 'baseline', run: capabilitiesBaseline },
  { id: 'capabilities_restricted', level: 'restricted', run: capabilitiesRestricted, overrides: ['capabilities_baseline'] },
  { id: 'hostNamespaces', level: 'baseline', run: hostNamespaces },
  { id: 'hostPathVolumes', level: 'baseline', run: hostPathVolumes },
  { id: 'hostPorts', level: 'baseline', run: hostPorts },
  { id: 'privileged', level: 'baseline', run: privileged },
  { id: 'procMount', level: 'baseline', run: procMount },
  { id: 'restrictedVolumes', level: 'restricted', run: restrictedVolumes, overrides: ['hostPathVolumes'] },
  { id: 'runAsNonRoot', level: 'restricted', run: runAsNonRoot },
  { id: 'runAsUser', level: 'restricted', run: runAsUser },
  { id: 'seLinuxOptions', level: 'baseline', run: seLinuxOptions },
  { id: 'seccompProfile_baseline', level: 'baseline', run: seccompBaseline },
  { id: 'seccompProfile_restricted', level: 'restricted', run: seccompRestricted, overrides: ['seccompProfile_baseline'] },
  { id: 'sysctls', level: 'baseline', run: sysctls },
  { id: 'windowsHostProcess', level: 'baseline', run: windowsHostProcess },
];

const OVERRIDDEN = new Set(CHECKS.flatMap((c) => c.overrides ?? []));

/** The checks of a level, baseline ones first, as kube's evaluator runs them. */
function checksFor(level: Level): CheckDef[] {
  if (level === 'privileged') return [];
  const baseline = CHECKS.filter((c) => c.level === 'baseline');
  if (level === 'baseline') return baseline;
  return [...baseline.filter((c) => !OVERRIDDEN.has(c.id)), ...CHECKS.filter((c) => c.level === 'restricted')];
}

/** Every violation of `level` by a pod (or pod template) with this metadata and spec. */
export function evaluatePod(level: Level, meta: ObjectMeta, spec: PodSpec): Violation[] {
  const out: Violation[] = [];
  for (const check of checksFor(level)) {
    const v = check.run(meta, spec);
    if (v) out.push(v);
  }
  return out;
}

/** kube's aggregate detail: `reason (detail), reason (detail), ...`. */
export function describeViolations(violations: Violation[]): string {
  return violations.map((v) => (v.detail ? `${v.reason} (${v.detail})` : v.reason)).join(', ');
}
