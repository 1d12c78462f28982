import type { CgroupMode } from '../cgroups.js';
import { RuntimeError, type BindMount, type ContainerSpec, type Resources } from '../handler.js';
import { runtimeDefaultProfile, type OciSeccomp } from './seccomp.js';

/**
 * OCI runtime config (config.json) from a ContainerSpec. Pure: everything read from the host or the
 * rootfs (cgroup layout, the runtime's OOM score, /etc/passwd) comes in through {@link SpecContext}.
 * The defaults follow runc's `runc spec` and containerd's CRI plugin.
 */

export const OCI_VERSION = '1.0.2';

/** containerd's and runc's default capability set. */
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** Every capability Linux defines, in number order (what a privileged container holds). */
export const ALL_CAPABILITIES = [
  'CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER',
  'SYS_MODULE', 'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE',
  'SYS_RESOURCE', 'SYS_TIME', 'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP',
  'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG', 'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF',
  'CHECKPOINT_RESTORE',
].map((name) => `CAP_${name}`);

export const DEFAULT_MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

export const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Open files a container may hold, as containerd's systemd unit (LimitNOFILE) gives its children. */
export const DEFAULT_NOFILE_LIMIT = 1_048_576;

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface SpecContext {
  cgroupMode: CgroupMode;
  /** The cgroup parent used when the spec names none. */
  cgroupParent: string;
  /** The runtime's own oom_score_adj: the lowest value the kernel lets it give a child. */
  currentOomScoreAdj: number;
  /** Whether memory limits also bound swap. */
  swapAccounting: boolean;
  /** The process user, from {@link resolveUser}. */
  user: ResolvedUser;
  /** The parsed profile file for a 'Localhost' seccomp profile. */
  localhostSeccomp?: OciSeccomp;
  /** The runtime's own hard RLIMIT_NOFILE; a child cannot be given more without CAP_SYS_RESOURCE. */
  nofileHardLimit?: number;
  /** Capabilities in the runtime's bounding set (what 'privileged' and 'ALL' grant); every capability when absent. */
  hostCapabilities?: string[];
  /** Node's process.arch, for the seccomp architectures. */
  arch?: string;
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
}

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface OciResources {
  devices?: { allow: boolean; access: string }[];
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string };
  memory?: { limit?: number; swap?: number };
  pids?: { limit: number };
}

export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: { bounding: string[]; effective: string[]; permitted: string[] };
    rlimits: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
    oomScoreAdj?: number;
  };
  root: { path: string; readonly: boolean };
  hostname?: string;
  mounts: OciMount[];
  annotations?: Record<string, string>;
  linux: {
    resources: OciResources;
    cgroupsPath: string;
    namespaces: { type: string; path?: string }[];
    maskedPaths: string[];
    readonlyPaths: string[];
    seccomp?: OciSeccomp;
  };
}

/** The raised OOM score when `requested` is below what the kernel lets this runtime set. */
export function clampOomScoreAdj(requested: number, current: number): number {
  return Math.max(requested, current);
}

/** The process's argv by CRI rules: command replaces the entrypoint, args replace cmd. */
export function processArgs(spec: ContainerSpec): string[] {
  const entrypoint = spec.command && spec.command.length > 0 ? spec.command : (spec.image?.entrypoint ?? []);
  const cmd = spec.args && spec.args.length > 0 ? spec.args : spec.command && spec.command.length > 0 ? [] : (spec.image?.cmd ?? []);
  const argv = [...entrypoint, ...cmd];
  if (argv.length === 0) throw new RuntimeError('InvalidArgument', `container ${spec.id}: no command specified (neither the spec nor the image has one)`);
  return argv;
}

/** The process environment: the image's, then the spec's (a later name wins), with a default PATH. */
export function mergedEnv(spec: ContainerSpec): string[] {
  const env = new Map<string, string>();
  for (const entry of spec.image?.env ?? []) {
    const eq = entry.indexOf('=');
    env.set(eq < 0 ? entry : entry.slice(0, eq), entry);
  }
  for (const { name, value } of spec.env ?? []) env.set(name, `${name}=${value}`);
  if (!env.has('PATH')) env.set('PATH', DEFAULT_PATH);
  return [...env.values()];
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

function parsePasswd(text: string): PasswdEntry[] {
  return text
    .split('\n')
    .map((line) => line.split(':'))
    .filter((fields) => fields.length >= 4 && /^\d+$/.test(fields[2]!) && /^\d+$/.test(fields[3]!))
    .map((fields) => ({ name: fields[0]!, uid: Number(fields[2]), gid: Number(fields[3]) }));
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function parseGroup(text: string): GroupEntry[] {
  return text
    .split('\n')
    .map((line) => line.split(':'))
    .filter((fields) => fields.length >= 3 && /^\d+$/.test(fields[2]!))
    .map((fields) => ({ name: fields[0]!, gid: Number(fields[2]), members: (fields[3] ?? '').split(',').filter(Boolean) }));
}

/**
 * The uid, gid and supplementary groups of the process. The spec's user (CRI run_as_*) wins over the
 * image's `user`; names resolve through the rootfs's /etc/passwd and /etc/group (given as text,
 * undefined when the file is missing). A user found in /etc/passwd also gets its primary gid and the
 * groups that list it as a member, as containerd does.
 */
export function resolveUser(spec: ContainerSpec, passwd: string | undefined, group: string | undefined): ResolvedUser {
  const users = parsePasswd(passwd ?? '');
  const groups = parseGroup(group ?? '');
  const [imageUser = '', imageGroup] = (spec.image?.user ?? '').split(':');

  let uid: number;
  let entry: PasswdEntry | undefined;
  const userName = spec.user?.username ?? (spec.user?.uid === undefined && imageUser !== '' && !/^\d+$/.test(imageUser) ? imageUser : undefined);
  if (spec.user?.uid !== undefined) {
    uid = spec.user.uid;
    entry = users.find((user) => user.uid === uid);
  } else if (userName !== undefined) {
    entry = users.find((user) => user.name === userName);
    if (!entry) throw new RuntimeError('InvalidArgument', `container ${spec.id}: user "${userName}" is not in the image's /etc/passwd`);
    uid = entry.uid;
  } else {
    uid = imageUser === '' ? 0 : Number(imageUser);
    entry = users.find((user) => user.uid === uid);
  }

  let gid: number;
  if (spec.user?.gid !== undefined) gid = spec.user.gid;
  else if (imageGroup !== undefined && imageGroup !== '' && spec.user?.uid === undefined && spec.user?.username === undefined) {
    if (/^\d+$/.test(imageGroup)) gid = Number(imageGroup);
    else {
      const named = groups.find((candidate) => candidate.name === imageGroup);
      if (!named) throw new RuntimeError('InvalidArgument', `container ${spec.id}: group "${imageGroup}" is not in the image's /etc/group`);
      gid = named.gid;
    }
  } else gid = entry?.gid ?? 0;

  const additional = new Set<number>();
  if (entry) for (const candidate of groups) if (candidate.members.includes(entry.name)) additional.add(candidate.gid);
  for (const extra of spec.user?.additionalGids ?? []) additional.add(extra);
  additional.delete(gid);
  return { uid, gid, additionalGids: [gid, ...[...additional].sort((a, b) => a - b)] };
}

function capabilityName(name: string): string {
  const upper = name.toUpperCase();
  return upper === 'ALL' || upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
}

/** Capability names of a /proc/<pid>/status bitmask (CapBnd, CapEff): bit n is ALL_CAPABILITIES[n]. */
export function capabilitiesFromMask(mask: bigint): string[] {
  return ALL_CAPABILITIES.filter((_name, bit) => (mask >> BigInt(bit)) & 1n);
}

/**
 * The capability set after the spec's add and drop lists, as containerd applies them (drop, then
 * add). 'All' means all the runtime itself holds, since runc cannot grant more.
 */
export function capabilities(spec: ContainerSpec, hostCapabilities: readonly string[] = ALL_CAPABILITIES): string[] {
  if (spec.privileged) return [...hostCapabilities];
  const add = (spec.capabilities?.add ?? []).map(capabilityName);
  const drop = (spec.capabilities?.drop ?? []).map(capabilityName);
  let set = drop.includes('ALL') ? [] : DEFAULT_CAPABILITIES.filter((cap) => !drop.includes(cap));
  if (add.includes('ALL')) set = [...hostCapabilities];
  for (const cap of add) {
    if (cap === 'ALL') continue;
    if (!ALL_CAPABILITIES.includes(cap)) throw new RuntimeError('InvalidArgument', `container ${spec.id}: unknown capability ${cap}`);
    if (!set.includes(cap)) set.push(cap);
  }
  return set;
}

/** OCI linux.resources for a ContainerSpec's Resources (the OOM score is a process field, not here). */
export function ociResources(resources: Resources | undefined, swapAccounting: boolean): OciResources {
  const out: OciResources = {};
  if (!resources) return out;
  const cpu: NonNullable<OciResources['cpu']> = {};
  if (resources.cpuShares !== undefined) cpu.shares = resources.cpuShares;
  if (resources.cpuQuota !== undefined) cpu.quota = resources.cpuQuota;
  if (resources.cpuPeriod !== undefined) cpu.period = resources.cpuPeriod;
  if (resources.cpusetCpus !== undefined) cpu.cpus = resources.cpusetCpus;
  if (Object.keys(cpu).length > 0) out.cpu = cpu;
  if (resources.memoryLimitBytes !== undefined && resources.memoryLimitBytes > 0) {
    out.memory = { limit: resources.memoryLimitBytes };
    if (swapAccounting) out.memory.swap = resources.memoryLimitBytes;
  }
  if (resources.pidsLimit !== undefined && resources.pidsLimit > 0) out.pids = { limit: resources.pidsLimit };
  return out;
}

function bind(source: string, destination: string, readonly: boolean, propagation: BindMount['propagation'] = 'private'): OciMount {
  const mode = propagation === 'private' ? 'rprivate' : propagation;
  return { destination, type: 'bind', source, options: ['rbind', mode, readonly ? 'ro' : 'rw'] };
}

function defaultMounts(privileged: boolean): OciMount[] {
  const sysMode = privileged ? 'rw' : 'ro';
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', sysMode] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', sysMode] },
  ];
}

const depth = (path: string) => path.split('/').filter(Boolean).length;

function mounts(spec: ContainerSpec): OciMount[] {
  const privileged = spec.privileged === true;
  const extra: OciMount[] = [];
  if (spec.shmPath) extra.push(bind(spec.shmPath, '/dev/shm', false));
  const etcReadonly = spec.readonlyRootfs === true;
  if (spec.hostsFile) extra.push(bind(spec.hostsFile, '/etc/hosts', etcReadonly));
  if (spec.resolvConfFile) extra.push(bind(spec.resolvConfFile, '/etc/resolv.conf', etcReadonly));
  if (spec.hostnameFile) extra.push(bind(spec.hostnameFile, '/etc/hostname', etcReadonly));
  for (const mount of spec.mounts ?? []) {
    if (!mount.destination.startsWith('/')) throw new RuntimeError('InvalidArgument', `container ${spec.id}: mount destination ${mount.destination} is not absolute`);
    extra.push(bind(mount.source, mount.destination, mount.readonly === true, mount.propagation));
  }
  const overridden = new Set(extra.map((mount) => mount.destination));
  const base = defaultMounts(privileged).filter((mount) => !overridden.has(mount.destination));
  // Parents before children: a bind at /data/logs must land inside the bind at /data.
  return [...base, ...extra.sort((a, b) => depth(a.destination) - depth(b.destination))];
}

function namespaces(spec: ContainerSpec, mode: CgroupMode): { type: string; path?: string }[] {
  const given = spec.namespaces ?? {};
  const entry = (type: string, path: string | undefined) => (path ? { type, path } : { type });
  const list = [entry('pid', given.pid), entry('network', given.network), entry('ipc', given.ipc), entry('uts', given.uts), { type: 'mount' }];
  if (mode === 'v2') list.push({ type: 'cgroup' });
  return list;
}

function seccomp(spec: ContainerSpec, caps: string[], context: SpecContext): OciSeccomp | undefined {
  if (spec.privileged) return undefined;
  const profile = spec.seccomp ?? { type: 'RuntimeDefault' };
  switch (profile.type) {
    case 'Unconfined':
      return undefined;
    case 'RuntimeDefault':
      return runtimeDefaultProfile(caps, context.arch);
    case 'Localhost':
      if (!context.localhostSeccomp) throw new RuntimeError('InvalidArgument', `container ${spec.id}: seccomp profile ${profile.path} was not loaded`);
      return context.localhostSeccomp;
  }
}

/** The cgroupfs path of the container's cgroup. */
export function cgroupsPath(spec: ContainerSpec, defaultParent: string): string {
  const parent = (spec.cgroupParent ?? defaultParent).replace(/\/+$/, '');
  return `${parent.startsWith('/') ? '' : '/'}${parent}/${spec.id}`;
}

export function buildOciSpec(spec: ContainerSpec, context: SpecContext): OciSpec {
  const privileged = spec.privileged === true;
  const caps = capabilities(spec, context.hostCapabilities);
  const resources: OciResources = {
    devices: [{ allow: privileged, access: 'rwm' }],
    ...ociResources(spec.resources, context.swapAccounting),
  };
  const { uid, gid, additionalGids } = context.user;
  const nofile = Math.min(DEFAULT_NOFILE_LIMIT, context.nofileHardLimit ?? DEFAULT_NOFILE_LIMIT);
  const oci: OciSpec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: spec.tty === true,
      user: { uid, gid, additionalGids },
      args: processArgs(spec),
      env: mergedEnv(spec),
      cwd: spec.workingDir || spec.image?.workingDir || '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: nofile, soft: nofile }],
      noNewPrivileges: spec.noNewPrivileges ?? !privileged,
    },
    root: { path: spec.rootfs, readonly: spec.readonlyRootfs === true },
    mounts: mounts(spec),
    linux: {
      resources,
      cgroupsPath: cgroupsPath(spec, context.cgroupParent),
      namespaces: namespaces(spec, context.cgroupMode),
      maskedPaths: privileged ? [] : (spec.maskedPaths ?? DEFAULT_MASKED_PATHS),
      readonlyPaths: privileged ? [] : (spec.readonlyPaths ?? DEFAULT_READONLY_PATHS),
    },
  };
  if (spec.resources?.oomScoreAdj !== undefined) {
    oci.process.oomScoreAdj = clampOomScoreAdj(spec.resources.oomScoreAdj, context.currentOomScoreAdj);
  }
  if (spec.hostname) oci.hostname = spec.hostname;
  if (spec.annotations && Object.keys(spec.annotations).length > 0) oci.annotations = { ...spec.annotations };
  const profile = seccomp(spec, caps, context);
  if (profile) oci.linux.seccomp = profile;
  return oci;
}
