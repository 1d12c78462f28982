import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RuntimeError, type ContainerSpec } from '../handler.js';
import { runtimeDefaultProfile } from './seccomp.js';
import {
  ALL_CAPABILITIES,
  buildOciSpec,
  capabilities,
  capabilitiesFromMask,
  DEFAULT_CAPABILITIES,
  DEFAULT_MASKED_PATHS,
  DEFAULT_READONLY_PATHS,
  processArgs,
  resolveUser,
  type SpecContext,
} from './spec.js';

const context: SpecContext = {
  cgroupMode: 'v1',
  cgroupParent: '/atoll',
  currentOomScoreAdj: 0,
  swapAccounting: true,
  user: { uid: 0, gid: 0, additionalGids: [0] },
  nofileHardLimit: 20_000,
  arch: 'x64',
};

const base: ContainerSpec = { id: 'c1', sandboxId: 's1', rootfs: '/rootfs', command: ['sleep', '1'], logPath: '/var/log/pods/x/c/0.log' };

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\nbroken line\n';
const GROUP = 'root:x:0:\napp:x:1001:\nwheel:x:10:app,root\naudio:x:29:app\nstaff:x:50:\n';

function invalid(fn: () => unknown, pattern: RegExp) {
  assert.throws(fn, (err: unknown) => err instanceof RuntimeError && err.code === 'InvalidArgument' && pattern.test(err.message));
}

describe('buildOciSpec', () => {
  it('produces the runc/containerd defaults for a plain container', () => {
    const spec = buildOciSpec(base, context);
    const { seccomp, ...linux } = spec.linux;
    assert.deepEqual({ ...spec, linux }, {
      ociVersion: '1.0.2',
      process: {
        terminal: false,
        user: { uid: 0, gid: 0, additionalGids: [0] },
        args: ['sleep', '1'],
        env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        cwd: '/',
        capabilities: { bounding: DEFAULT_CAPABILITIES, effective: DEFAULT_CAPABILITIES, permitted: DEFAULT_CAPABILITIES },
        rlimits: [{ type: 'RLIMIT_NOFILE', hard: 20_000, soft: 20_000 }],
        noNewPrivileges: true,
      },
      root: { path: '/rootfs', readonly: false },
      mounts: [
        { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
        { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
        { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
        { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
        { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
        { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
        { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
      ],
      linux: {
        resources: { devices: [{ allow: false, access: 'rwm' }] },
        cgroupsPath: '/atoll/c1',
        namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
        maskedPaths: DEFAULT_MASKED_PATHS,
        readonlyPaths: DEFAULT_READONLY_PATHS,
      },
    });
    assert.deepEqual(seccomp, runtimeDefaultProfile(DEFAULT_CAPABILITIES, 'x64'));
    assert.ok(DEFAULT_MASKED_PATHS.includes('/proc/kcore') && DEFAULT_READONLY_PATHS.includes('/proc/sys'));
  });

  it('joins sandbox namespaces by path and adds a cgroup namespace on v2', () => {
    const spec = buildOciSpec(
      { ...base, namespaces: { network: '/run/netns/s1', ipc: '/run/ipcns/s1', uts: '/run/utsns/s1' }, cgroupParent: '/kubepods/pod1/' },
      { ...context, cgroupMode: 'v2' },
    );
    assert.deepEqual(spec.linux.namespaces, [
      { type: 'pid' },
      { type: 'network', path: '/run/netns/s1' },
      { type: 'ipc', path: '/run/ipcns/s1' },
      { type: 'uts', path: '/run/utsns/s1' },
      { type: 'mount' },
      { type: 'cgroup' },
    ]);
    assert.equal(spec.linux.cgroupsPath, '/kubepods/pod1/c1');
  });

  it('maps resources, bounds swap with the limit, and raises a too-low OOM score', () => {
    const spec = buildOciSpec(
      { ...base, resources: { cpuShares: 512, cpuQuota: 50_000, cpuPeriod: 100_000, memoryLimitBytes: 64 << 20, pidsLimit: 100, oomScoreAdj: -998 } },
      { ...context, currentOomScoreAdj: -500 },
    );
    assert.deepEqual(spec.linux.resources, {
      devices: [{ allow: false, access: 'rwm' }],
      cpu: { shares: 512, quota: 50_000, period: 100_000 },
      memory: { limit: 64 << 20, swap: 64 << 20 },
      pids: { limit: 100 },
    });
    assert.equal(spec.process.oomScoreAdj, -500);
    const higher = buildOciSpec({ ...base, resources: { oomScoreAdj: 1000 } }, context);
    assert.equal(higher.process.oomScoreAdj, 1000);
    const noSwap = buildOciSpec({ ...base, resources: { memoryLimitBytes: 1 << 20 } }, { ...context, swapAccounting: false });
    assert.deepEqual(noSwap.linux.resources.memory, { limit: 1 << 20 });
  });

  it('binds /etc files, shm and user mounts, parents before children, replacing defaults', () => {
    const spec = buildOciSpec(
      {
        ...base,
        readonlyRootfs: true,
        hostsFile: '/sandbox/hosts',
        resolvConfFile: '/sandbox/resolv.conf',
        hostnameFile: '/sandbox/hostname',
        shmPath: '/sandbox/shm',
        mounts: [
          { source: '/host/logs', destination: '/data/logs', propagation: 'rslave' },
          { source: '/host/data', destination: '/data', readonly: true },
        ],
      },
      context,
    );
    assert.equal(spec.root.readonly, true);
    const binds = spec.mounts.filter((mount) => mount.type === 'bind');
    assert.deepEqual(binds, [
      { destination: '/data', type: 'bind', source: '/host/data', options: ['rbind', 'rprivate', 'ro'] },
      { destination: '/dev/shm', type: 'bind', source: '/sandbox/shm', options: ['rbind', 'rprivate', 'rw'] },
      { destination: '/etc/hosts', type: 'bind', source: '/sandbox/hosts', options: ['rbind', 'rprivate', 'ro'] },
      { destination: '/etc/resolv.conf', type: 'bind', source: '/sandbox/resolv.conf', options: ['rbind', 'rprivate', 'ro'] },
      { destination: '/etc/hostname', type: 'bind', source: '/sandbox/hostname', options: ['rbind', 'rprivate', 'ro'] },
      { destination: '/data/logs', type: 'bind', source: '/host/logs', options: ['rbind', 'rslave', 'rw'] },
    ]);
    assert.equal(spec.mounts.filter((mount) => mount.destination === '/dev/shm').length, 1);
    invalid(() => buildOciSpec({ ...base, mounts: [{ source: '/x', destination: 'relative' }] }, context), /not absolute/);
  });

  it('gives a privileged container the runtime’s capabilities, rw /sys, all devices, no masks and no seccomp', () => {
    const host = ALL_CAPABILITIES.filter((cap) => cap !== 'CAP_SYS_RESOURCE');
    const spec = buildOciSpec({ ...base, privileged: true }, { ...context, hostCapabilities: host });
    assert.deepEqual(spec.process.capabilities.bounding, host);
    assert.equal(spec.process.noNewPrivileges, false);
    assert.deepEqual(spec.linux.maskedPaths, []);
    assert.deepEqual(spec.linux.readonlyPaths, []);
    assert.equal(spec.linux.seccomp, undefined);
    assert.deepEqual(spec.linux.resources.devices, [{ allow: true, access: 'rwm' }]);
    assert.deepEqual(spec.mounts.find((mount) => mount.destination === '/sys')?.options?.at(-1), 'rw');
  });

  it('uses no profile for Unconfined and the loaded one for Localhost', () => {
    assert.equal(buildOciSpec({ ...base, seccomp: { type: 'Unconfined' } }, context).linux.seccomp, undefined);
    const profile = { defaultAction: 'SCMP_ACT_ALLOW', architectures: [], syscalls: [] };
    const spec = buildOciSpec({ ...base, seccomp: { type: 'Localhost', path: '/p.json' } }, { ...context, localhostSeccomp: profile });
    assert.deepEqual(spec.linux.seccomp, profile);
    invalid(() => buildOciSpec({ ...base, seccomp: { type: 'Localhost', path: '/p.json' } }, context), /not loaded/);
  });

  it('merges the image env with the spec env, later names winning, and sets hostname and annotations', () => {
    const spec = buildOciSpec(
      { ...base, image: { env: ['PATH=/bin', 'A=1', 'B=2'], workingDir: '/app' }, env: [{ name: 'B', value: '3' }, { name: 'C', value: 'x=y' }], hostname: 'pod', annotations: { k: 'v' } },
      context,
    );
    assert.deepEqual(spec.process.env, ['PATH=/bin', 'A=1', 'B=3', 'C=x=y']);
    assert.equal(spec.process.cwd, '/app');
    assert.equal(spec.hostname, 'pod');
    assert.deepEqual(spec.annotations, { k: 'v' });
  });
});

describe('processArgs', () => {
  const image = { entrypoint: ['/entry'], cmd: ['--default'] };
  it('follows CRI: command replaces entrypoint (and drops cmd), args replace cmd', () => {
    assert.deepEqual(processArgs({ ...base, command: undefined, image }), ['/entry', '--default']);
    assert.deepEqual(processArgs({ ...base, command: undefined, args: ['--mine'], image }), ['/entry', '--mine']);
    assert.deepEqual(processArgs({ ...base, command: ['/other'], image }), ['/other']);
    assert.deepEqual(processArgs({ ...base, command: ['/other'], args: ['x'], image }), ['/other', 'x']);
    invalid(() => processArgs({ ...base, command: undefined }), /no command/);
  });
});

describe('capabilities', () => {
  it('drops, then adds, accepting names without CAP_ and ALL', () => {
    assert.deepEqual(capabilities({ ...base, capabilities: { drop: ['net_raw', 'CAP_MKNOD'], add: ['SYS_TIME'] } }), [
      ...DEFAULT_CAPABILITIES.filter((cap) => cap !== 'CAP_NET_RAW' && cap !== 'CAP_MKNOD'),
      'CAP_SYS_TIME',
    ]);
    assert.deepEqual(capabilities({ ...base, capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] } }), ['CAP_NET_BIND_SERVICE']);
    assert.deepEqual(capabilities({ ...base, capabilities: { add: ['ALL'] } }, ['CAP_CHOWN']), ['CAP_CHOWN']);
    invalid(() => capabilities({ ...base, capabilities: { add: ['FLY'] } }), /unknown capability CAP_FLY/);
  });

  it('decodes a CapBnd mask', () => {
    assert.deepEqual(capabilitiesFromMask(0x1n | (1n << 21n)), ['CAP_CHOWN', 'CAP_SYS_ADMIN']);
    assert.equal(capabilitiesFromMask(0x1fffeffffffn).includes('CAP_SYS_RESOURCE'), false);
  });
});

describe('resolveUser', () => {
  it('resolves a username to uid, primary gid and member groups', () => {
    assert.deepEqual(resolveUser({ ...base, user: { username: 'app' } }, PASSWD, GROUP), { uid: 1000, gid: 1001, additionalGids: [1001, 10, 29] });
  });

  it('takes the image user as name, uid, or pair, with the spec overriding', () => {
    assert.deepEqual(resolveUser({ ...base, image: { user: 'app' } }, PASSWD, GROUP), { uid: 1000, gid: 1001, additionalGids: [1001, 10, 29] });
    assert.deepEqual(resolveUser({ ...base, image: { user: '1000:staff' } }, PASSWD, GROUP), { uid: 1000, gid: 50, additionalGids: [50, 10, 29] });
    assert.deepEqual(resolveUser({ ...base, image: { user: '4242' } }, PASSWD, GROUP), { uid: 4242, gid: 0, additionalGids: [0] });
    assert.deepEqual(resolveUser({ ...base, image: { user: 'app' }, user: { uid: 7, gid: 8, additionalGids: [9] } }, PASSWD, GROUP), {
      uid: 7,
      gid: 8,
      additionalGids: [8, 9],
    });
    assert.deepEqual(resolveUser(base, undefined, undefined), { uid: 0, gid: 0, additionalGids: [0] });
  });

  it('refuses names the image does not define', () => {
    invalid(() => resolveUser({ ...base, user: { username: 'ghost' } }, PASSWD, GROUP), /"ghost" is not in the image's \/etc\/passwd/);
    invalid(() => resolveUser({ ...base, image: { user: 'app:ghosts' } }, PASSWD, GROUP), /group "ghosts"/);
  });
});

describe('runtimeDefaultProfile', () => {
  it('denies by default and unlocks privileged calls only with their capability', () => {
    const plain = runtimeDefaultProfile(DEFAULT_CAPABILITIES, 'x64');
    assert.equal(plain.defaultAction, 'SCMP_ACT_ERRNO');
    assert.deepEqual(plain.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    const allowed = (profile: typeof plain) =>
      new Set(profile.syscalls.filter((rule) => rule.action === 'SCMP_ACT_ALLOW' && !rule.args).flatMap((rule) => rule.names));
    assert.ok(allowed(plain).has('read') && allowed(plain).has('chroot'));
    assert.ok(!allowed(plain).has('mount') && !allowed(plain).has('ptrace'));
    assert.ok(plain.syscalls.some((rule) => rule.names.includes('clone') && rule.args?.[0]?.op === 'SCMP_CMP_MASKED_EQ'));
    const admin = runtimeDefaultProfile([...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN'], 'x64');
    assert.ok(allowed(admin).has('mount') && allowed(admin).has('clone'));
  });
});
