// Translating a CRI ContainerConfig (plus the image and the sandbox) into the handler's ContainerSpec.
import { isAbsolute, join, normalize, relative, sep } from 'node:path';
import { CriError, type ContainerConfig__Output, type LinuxContainerResources__Output, type SecurityProfile__Output } from '../cri/index.js';
import type { BindMount, ContainerSpec, ImageConfig, Resources, SeccompProfile, UserSpec } from '../handler.js';
import type { Image } from '../images/store.js';
import type { SandboxRecord } from './records.js';

/**
 * The CRI log file of a container: the sandbox's log_directory joined with the container's log_path.
 * Refuses (INVALID_ARGUMENT) a relative log_directory and a log_path that leaves the directory, since
 * conmon would otherwise write wherever a caller points it.
 */
export function containerLogPath(logDirectory: string, logPath: string): string {
  if (logDirectory === '') {
    throw CriError.invalidArgument('the sandbox has no log_directory; a container log_path needs one');
  }
  if (!isAbsolute(logDirectory)) throw CriError.invalidArgument(`sandbox log_directory ${JSON.stringify(logDirectory)} must be absolute`);
  if (logPath === '' || isAbsolute(logPath)) {
    throw CriError.invalidArgument(`log_path ${JSON.stringify(logPath)} must be a non-empty path relative to the sandbox log_directory`);
  }
  const dir = normalize(logDirectory);
  const full = join(dir, logPath);
  const rel = relative(dir, full);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw CriError.invalidArgument(`log_path ${JSON.stringify(logPath)} escapes the sandbox log_directory ${logDirectory}`);
  }
  return full;
}

export function imageConfigOf(image: Image): ImageConfig {
  const c = image.config.config ?? {};
  return {
    ...(c.Entrypoint ? { entrypoint: c.Entrypoint } : {}),
    ...(c.Cmd ? { cmd: c.Cmd } : {}),
    ...(c.Env ? { env: c.Env } : {}),
    ...(c.WorkingDir ? { workingDir: c.WorkingDir } : {}),
    ...(c.User ? { user: c.User } : {}),
  };
}

export function resourcesOf(r: LinuxContainerResources__Output | null | undefined): Resources | undefined {
  if (!r) return undefined;
  const out: Resources = {};
  if (r.cpu_shares > 0) out.cpuShares = r.cpu_shares;
  if (r.cpu_quota !== 0) out.cpuQuota = r.cpu_quota;
  if (r.cpu_period > 0) out.cpuPeriod = r.cpu_period;
  if (r.cpuset_cpus) out.cpusetCpus = r.cpuset_cpus;
  if (r.memory_limit_in_bytes > 0) out.memoryLimitBytes = r.memory_limit_in_bytes;
  if (r.oom_score_adj !== 0) out.oomScoreAdj = r.oom_score_adj;
  return out;
}

function seccompOf(profile: SecurityProfile__Output | null, legacyPath: string, privileged: boolean): SeccompProfile | undefined {
  if (profile) {
    if (profile.profile_type === 'Localhost') {
      if (!isAbsolute(profile.localhost_ref)) {
        throw CriError.invalidArgument(`seccomp localhost_ref ${JSON.stringify(profile.localhost_ref)} must be an absolute path`);
      }
      return { type: 'Localhost', path: profile.localhost_ref };
    }
    if (profile.profile_type === 'RuntimeDefault') return { type: 'RuntimeDefault' };
    // Unconfined is proto3's zero value; the kubelet sends it both for "unset" and for "Unconfined".
    return privileged ? undefined : { type: 'Unconfined' };
  }
  if (legacyPath === 'runtime/default' || legacyPath === 'docker/default') return { type: 'RuntimeDefault' };
  if (legacyPath.startsWith('localhost/')) return { type: 'Localhost', path: legacyPath.slice('localhost/'.length) };
  if (legacyPath === 'unconfined') return { type: 'Unconfined' };
  return undefined;
}

const PROPAGATION: Record<string, BindMount['propagation']> = {
  PROPAGATION_PRIVATE: 'private',
  PROPAGATION_HOST_TO_CONTAINER: 'rslave',
  PROPAGATION_BIDIRECTIONAL: 'rshared',
};

export interface SpecInputs {
  id: string;
  sandbox: SandboxRecord;
  /** The sandbox's namespace files; undefined for a host-network pod's net. */
  namespaces: ContainerSpec['namespaces'];
  config: ContainerConfig__Output;
  image: Image;
  rootfs: string;
  logPath: string;
}

export function containerSpec(input: SpecInputs): ContainerSpec {
  const { config, sandbox } = input;
  const linux = config.linux;
  const security = linux?.security_context ?? null;
  const privileged = security?.privileged ?? false;
  if (privileged && !(sandbox.config.linux?.security_context?.privileged ?? false)) {
    throw CriError.invalidArgument('a privileged container needs a privileged sandbox');
  }
  const mounts: BindMount[] = config.mounts.map((m) => {
    if (!isAbsolute(m.container_path) || !isAbsolute(m.host_path)) {
      throw CriError.invalidArgument(`mount ${m.host_path} -> ${m.container_path}: both paths must be absolute`);
    }
    return { source: m.host_path, destination: m.container_path, readonly: m.readonly, propagation: PROPAGATION[m.propagation] ?? 'private' };
  });
  const user: UserSpec = {};
  if (security?.run_as_user) user.uid = security.run_as_user.value;
  if (security?.run_as_username) user.username = security.run_as_username;
  if (security?.run_as_group) user.gid = security.run_as_group.value;
  if (security?.supplemental_groups.length) user.additionalGids = security.supplemental_groups;
  const seccomp = seccompOf(security?.seccomp ?? null, security?.seccomp_profile_path ?? '', privileged);
  const resources = resourcesOf(linux?.resources);
  const caps = security?.capabilities;
  const hostname = sandbox.config.hostname || sandbox.config.metadata!.name;
  const spec: ContainerSpec = {
    id: input.id,
    name: `${sandbox.config.metadata!.namespace}_${sandbox.config.metadata!.name}_${config.metadata!.name}_${config.metadata!.attempt}`,
    sandboxId: sandbox.id,
    rootfs: input.rootfs,
    readonlyRootfs: security?.readonly_rootfs ?? false,
    image: imageConfigOf(input.image),
    env: config.envs.map((e) => ({ name: e.key, value: e.value })),
    mounts,
    hostname,
    hostsFile: sandbox.files.hosts,
    resolvConfFile: sandbox.files.resolvConf,
    hostnameFile: sandbox.files.hostname,
    privileged,
    logPath: input.logPath,
    tty: config.tty,
    stdin: config.stdin,
    labels: config.labels,
    annotations: config.annotations,
  };
  if (input.namespaces) spec.namespaces = input.namespaces;
  if (config.command.length > 0) spec.command = config.command;
  if (config.args.length > 0) spec.args = config.args;
  if (config.working_dir) spec.workingDir = config.working_dir;
  if (Object.keys(user).length > 0) spec.user = user;
  if (caps && (caps.add_capabilities.length > 0 || caps.drop_capabilities.length > 0)) {
    spec.capabilities = { add: caps.add_capabilities, drop: caps.drop_capabilities };
  }
  // The kubelet sets no_new_privs only for allowPrivilegeEscalation: false; unset means allowed.
  spec.noNewPrivileges = !privileged && security?.no_new_privs === true;
  if (seccomp) spec.seccomp = seccomp;
  if (security?.masked_paths.length) spec.maskedPaths = security.masked_paths;
  if (security?.readonly_paths.length) spec.readonlyPaths = security.readonly_paths;
  if (resources && Object.keys(resources).length > 0) spec.resources = resources;
  const cgroupParent = sandbox.config.linux?.cgroup_parent;
  if (cgroupParent) spec.cgroupParent = cgroupParent;
  const stopSignal = input.image.config.config?.StopSignal;
  if (stopSignal) spec.stopSignal = stopSignal;
  return spec;
}
