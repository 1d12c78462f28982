import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CriCode, CriError, type ContainerConfig__Output, type PodSandboxConfig__Output } from '../cri/index.js';
import type { Image } from '../images/store.js';
import type { SandboxRecord } from './records.js';
import { containerLogPath, containerSpec } from './spec.js';

function invalid(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => err instanceof CriError && err.code === CriCode.INVALID_ARGUMENT && pattern.test(err.message));
}

const sandbox = {
  id: 'a'.repeat(64),
  config: {
    metadata: { name: 'web', namespace: 'default', uid: 'u1', attempt: 0 },
    hostname: 'web-0',
    log_directory: '/var/log/pods/default_web_u1',
    linux: { cgroup_parent: '/kubepods/podu1', security_context: { privileged: false } },
  } as unknown as PodSandboxConfig__Output,
  runtimeHandler: 'runc',
  createdAt: '1',
  state: 'ready',
  hostNetwork: false,
  files: { hostname: '/run/p/hostname', hosts: '/run/p/hosts', resolvConf: '/run/p/resolv.conf' },
} satisfies SandboxRecord;

const image = {
  id: `sha256:${'b'.repeat(64)}`,
  config: { config: { Entrypoint: ['/bin/entry'], Cmd: ['run'], Env: ['PATH=/bin'], WorkingDir: '/srv', User: '1000', StopSignal: 'SIGQUIT' }, rootfs: { type: 'layers', diff_ids: [] } },
} as unknown as Image;

function config(extra: Partial<ContainerConfig__Output> = {}): ContainerConfig__Output {
  return {
    metadata: { name: 'app', attempt: 1 },
    image: { image: 'busybox', annotations: {}, user_specified_image: '', runtime_handler: '' },
    command: [],
    args: [],
    working_dir: '',
    envs: [],
    mounts: [],
    devices: [],
    labels: {},
    annotations: {},
    log_path: 'app/1.log',
    stdin: false,
    stdin_once: false,
    tty: false,
    linux: null,
    windows: null,
    CDI_devices: [],
    ...extra,
  };
}

describe('containerLogPath', () => {
  it('joins the log directory and the log path', () => {
    assert.equal(containerLogPath('/var/log/pods/x', 'app/0.log'), '/var/log/pods/x/app/0.log');
    assert.equal(containerLogPath('/var/log/pods/x/', './app/../app/0.log'), '/var/log/pods/x/app/0.log');
  });

  it('refuses paths that leave the directory, absolute paths and relative directories', () => {
    invalid(() => containerLogPath('/var/log/pods/x', '../y/0.log'), /escapes/);
    invalid(() => containerLogPath('/var/log/pods/x', 'a/../../0.log'), /escapes/);
    invalid(() => containerLogPath('/var/log/pods/x', '..'), /escapes/);
    invalid(() => containerLogPath('/var/log/pods/x', '/etc/passwd'), /relative/);
    invalid(() => containerLogPath('pods/x', '0.log'), /absolute/);
    invalid(() => containerLogPath('', '0.log'), /log_directory/);
  });
});

describe('containerSpec', () => {
  const base = { id: 'c'.repeat(64), sandbox, namespaces: { network: '/run/netns/a' }, image, rootfs: '/run/rootfs/c', logPath: '/var/log/pods/x/app/1.log' };

  it('takes the image config, the sandbox files and the CRI fields', () => {
    const spec = containerSpec({
      ...base,
      config: config({
        command: ['/bin/sh'],
        args: ['-c', 'true'],
        envs: [{ key: 'A', value: '1' }],
        working_dir: '/work',
        tty: true,
        mounts: [{ container_path: '/data', host_path: '/srv/data', readonly: true, selinux_relabel: false, propagation: 'PROPAGATION_HOST_TO_CONTAINER', uidMappings: [], gidMappings: [], recursive_read_only: false, image: null }],
      }),
    });
    assert.deepEqual(spec.image, { entrypoint: ['/bin/entry'], cmd: ['run'], env: ['PATH=/bin'], workingDir: '/srv', user: '1000' });
    assert.deepEqual(spec.command, ['/bin/sh']);
    assert.deepEqual(spec.args, ['-c', 'true']);
    assert.deepEqual(spec.env, [{ name: 'A', value: '1' }]);
    assert.equal(spec.workingDir, '/work');
    assert.equal(spec.hostname, 'web-0');
    assert.equal(spec.hostsFile, '/run/p/hosts');
    assert.equal(spec.resolvConfFile, '/run/p/resolv.conf');
    assert.equal(spec.cgroupParent, '/kubepods/podu1');
    assert.equal(spec.stopSignal, 'SIGQUIT');
    assert.equal(spec.tty, true);
    assert.deepEqual(spec.mounts, [{ source: '/srv/data', destination: '/data', readonly: true, propagation: 'rslave' }]);
    assert.equal(spec.name, 'default_web_app_1');
  });

  it('maps the security context and resources', () => {
    const spec = containerSpec({
      ...base,
      config: config({
        linux: {
          resources: { cpu_period: 100000, cpu_quota: 50000, cpu_shares: 512, memory_limit_in_bytes: 64 << 20, oom_score_adj: 500, cpuset_cpus: '', cpuset_mems: '', hugepage_limits: [], unified: {}, memory_swap_limit_in_bytes: 0 },
          security_context: {
            capabilities: { add_capabilities: ['NET_ADMIN'], drop_capabilities: ['ALL'], add_ambient_capabilities: [] },
            privileged: false,
            namespace_options: null,
            selinux_options: null,
            run_as_user: { value: 1000 },
            run_as_username: '',
            readonly_rootfs: true,
            supplemental_groups: [5],
            apparmor_profile: '',
            seccomp_profile_path: '',
            no_new_privs: true,
            run_as_group: { value: 2000 },
            masked_paths: [],
            readonly_paths: [],
            seccomp: { profile_type: 'RuntimeDefault', localhost_ref: '' },
            apparmor: null,
            supplemental_groups_policy: 'Merge',
          },
        },
      } as Partial<ContainerConfig__Output>),
    });
    assert.deepEqual(spec.resources, { cpuShares: 512, cpuQuota: 50000, cpuPeriod: 100000, memoryLimitBytes: 64 << 20, oomScoreAdj: 500 });
    assert.deepEqual(spec.user, { uid: 1000, gid: 2000, additionalGids: [5] });
    assert.deepEqual(spec.capabilities, { add: ['NET_ADMIN'], drop: ['ALL'] });
    assert.deepEqual(spec.seccomp, { type: 'RuntimeDefault' });
    assert.equal(spec.readonlyRootfs, true);
    assert.equal(spec.noNewPrivileges, true);
  });

  it('refuses a privileged container in an unprivileged sandbox and relative mounts', () => {
    const privileged = { linux: { resources: null, security_context: { privileged: true, supplemental_groups: [], masked_paths: [], readonly_paths: [], seccomp_profile_path: '', capabilities: null, seccomp: null } } };
    invalid(() => containerSpec({ ...base, config: config(privileged as unknown as Partial<ContainerConfig__Output>) }), /privileged sandbox/);
    const mount = { container_path: 'data', host_path: '/srv', readonly: false, selinux_relabel: false, propagation: 'PROPAGATION_PRIVATE' as const, uidMappings: [], gidMappings: [], recursive_read_only: false, image: null };
    invalid(() => containerSpec({ ...base, config: config({ mounts: [mount] }) }), /absolute/);
  });
});
