// WIRE CHECK: messages encoded with our proto must equal bytes built by hand from the upstream field
// numbers. The builders below know only the protobuf wire format; every field number passed to them
// is the upstream number, written out at the call site so a reviewer can check it against the CRI.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import protobuf from 'protobufjs';
import { criProtoPath } from './proto.js';

const root = new protobuf.Root().loadSync(criProtoPath(), { keepCase: true }).resolveAll();

function encode(message: string, value: Record<string, unknown>): Buffer {
  const type = root.lookupType(`runtime.v1.${message}`);
  const bytes = Buffer.from(type.encode(type.fromObject(value)).finish());
  // fromObject drops keys it does not know; the round trip catches a misspelt field in a test value.
  assert.deepEqual(decode(message, [...bytes]), value, `${message}: round trip`);
  return bytes;
}

function decode(message: string, bytes: number[]): Record<string, unknown> {
  const type = root.lookupType(`runtime.v1.${message}`);
  return type.toObject(type.decode(Buffer.from(bytes)), { longs: Number, enums: String });
}

// ---- the wire format, by hand ----
const VARINT = 0;
const LEN = 2;

function varint(n: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(n)); // negative int32/int64 are 10-byte two's complement
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return out;
}
const tag = (field: number, wire: number) => varint((field << 3) | wire);
const num = (field: number, n: number | bigint) => [...tag(field, VARINT), ...varint(n)];
const bool = (field: number) => num(field, 1);
const len = (field: number, bytes: number[]) => [...tag(field, LEN), ...varint(bytes.length), ...bytes];
const str = (field: number, s: string) => len(field, [...Buffer.from(s, 'utf8')]);
const msg = (field: number, ...parts: number[][]) => len(field, parts.flat());
const packed = (field: number, values: number[]) => len(field, values.flatMap((v) => varint(v)));
/** A map<string,string> entry: a nested message with key = 1 and value = 2. */
const entry = (field: number, key: string, value: string) => msg(field, str(1, key), str(2, value));
/** UInt64Value / Int64Value wrapper: value = 1. */
const wrapped = (field: number, value: number) => msg(field, num(1, value));
const bytesOf = (...parts: number[][]) => Buffer.from(parts.flat());

// Whole seconds in nanoseconds: exactly representable as doubles, so longs: Number is lossless here.
const T0 = 1_700_000_000_000_000_000;
const T1 = 1_700_000_001_000_000_000;

test('PodSandboxMetadata matches a literal byte string', () => {
  // name=1 "a", uid=2 "b", namespace=3 "c", attempt=4 varint 2
  assert.deepEqual(
    encode('PodSandboxMetadata', { name: 'a', uid: 'b', namespace: 'c', attempt: 2 }),
    Buffer.from('0a01611201621a01632002', 'hex'),
  );
});

test('PodSandboxConfig', () => {
  const value = {
    metadata: { name: 'web-0', uid: 'u-1', namespace: 'default', attempt: 1 },
    hostname: 'web-0',
    log_directory: '/var/log/pods/default_web-0_u-1',
    dns_config: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local'], options: ['ndots:5'] },
    port_mappings: [{ protocol: 'UDP', container_port: 53, host_port: 5353, host_ip: '127.0.0.1' }],
    labels: { app: 'web' },
    annotations: { note: 'x' },
    linux: {
      cgroup_parent: '/kubepods/pod-u-1',
      security_context: {
        namespace_options: { network: 'NODE', pid: 'CONTAINER' },
        run_as_user: { value: 1000 },
        run_as_group: { value: 3000 },
        supplemental_groups: [1, 2],
        privileged: true,
        seccomp: { profile_type: 'Localhost', localhost_ref: '/p.json' },
      },
      sysctls: { 'net.ipv4.ip_forward': '1' },
    },
  };
  const expected = bytesOf(
    msg(1, str(1, 'web-0'), str(2, 'u-1'), str(3, 'default'), num(4, 1)), // metadata
    str(2, 'web-0'), // hostname
    str(3, '/var/log/pods/default_web-0_u-1'), // log_directory
    msg(4, str(1, '10.96.0.10'), str(2, 'default.svc.cluster.local'), str(3, 'ndots:5')), // dns_config
    msg(5, num(1, 1), num(2, 53), num(3, 5353), str(4, '127.0.0.1')), // port_mappings (UDP = 1)
    entry(6, 'app', 'web'), // labels
    entry(7, 'note', 'x'), // annotations
    msg(
      8, // linux: LinuxPodSandboxConfig
      str(1, '/kubepods/pod-u-1'), // cgroup_parent
      msg(
        2, // security_context: LinuxSandboxSecurityContext, in field-number order
        msg(1, num(1, 2), num(2, 1)), // namespace_options: network NODE = 2, pid CONTAINER = 1
        wrapped(3, 1000), // run_as_user
        packed(5, [1, 2]), // supplemental_groups (packed)
        bool(6), // privileged
        wrapped(8, 3000), // run_as_group
        msg(9, num(1, 2), str(2, '/p.json')), // seccomp: Localhost = 2
      ),
      entry(3, 'net.ipv4.ip_forward', '1'), // sysctls
    ),
  );
  assert.deepEqual(encode('PodSandboxConfig', value), expected);
});

test('ContainerConfig', () => {
  const value = {
    metadata: { name: 'app', attempt: 2 },
    image: { image: 'busybox:1.36', user_specified_image: 'busybox' },
    command: ['/bin/sh'],
    args: ['-c', 'echo hi'],
    working_dir: '/w',
    envs: [{ key: 'A', value: '1' }],
    mounts: [
      {
        container_path: '/data',
        host_path: '/srv/data',
        readonly: true,
        selinux_relabel: true,
        propagation: 'PROPAGATION_HOST_TO_CONTAINER',
        uidMappings: [{ host_id: 100000, container_id: 1, length: 65536 }],
        gidMappings: [{ host_id: 200000, container_id: 1, length: 10 }],
        recursive_read_only: true,
        image: { image: 'sha256:abc' },
      },
    ],
    devices: [{ container_path: '/dev/fuse', host_path: '/dev/fuse', permissions: 'rwm' }],
    labels: { l: '1' },
    annotations: { a: '2' },
    log_path: 'app/0.log',
    stdin: true,
    stdin_once: true,
    tty: true,
    linux: {
      resources: {
        cpu_period: 100000,
        cpu_quota: 50000,
        cpu_shares: 512,
        memory_limit_in_bytes: 268435456,
        oom_score_adj: -997,
        cpuset_cpus: '0-1',
        cpuset_mems: '0',
        hugepage_limits: [{ page_size: '2MB', limit: 4194304 }],
        unified: { 'memory.high': '200M' },
        memory_swap_limit_in_bytes: 536870912,
      },
      security_context: {
        capabilities: { add_capabilities: ['NET_ADMIN'], drop_capabilities: ['ALL'], add_ambient_capabilities: ['NET_RAW'] },
        privileged: true,
        run_as_user: { value: 65534 },
        run_as_username: 'nobody',
        readonly_rootfs: true,
        supplemental_groups: [5],
        no_new_privs: true,
        run_as_group: { value: 65534 },
        masked_paths: ['/proc/kcore'],
        readonly_paths: ['/proc/sys'],
        seccomp: { profile_type: 'RuntimeDefault' },
        apparmor: { profile_type: 'Unconfined' },
        supplemental_groups_policy: 'Strict',
      },
    },
    CDI_devices: [{ name: 'vendor.com/gpu=0' }],
  };
  const expected = bytesOf(
    msg(1, str(1, 'app'), num(2, 2)), // metadata
    msg(2, str(1, 'busybox:1.36'), str(18, 'busybox')), // image: ImageSpec, user_specified_image = 18
    str(3, '/bin/sh'), // command
    str(4, '-c'),
    str(4, 'echo hi'), // args
    str(5, '/w'), // working_dir
    msg(6, str(1, 'A'), str(2, '1')), // envs
    msg(
      7, // mounts
      str(1, '/data'),
      str(2, '/srv/data'),
      bool(3), // readonly
      bool(4), // selinux_relabel
      num(5, 1), // propagation HOST_TO_CONTAINER = 1
      msg(6, num(1, 100000), num(2, 1), num(3, 65536)), // uidMappings
      msg(7, num(1, 200000), num(2, 1), num(3, 10)), // gidMappings
      bool(8), // recursive_read_only
      msg(9, str(1, 'sha256:abc')), // image
    ),
    msg(8, str(1, '/dev/fuse'), str(2, '/dev/fuse'), str(3, 'rwm')), // devices
    entry(9, 'l', '1'), // labels
    entry(10, 'a', '2'), // annotations
    str(11, 'app/0.log'), // log_path
    bool(12), // stdin
    bool(13), // stdin_once
    bool(14), // tty
    msg(
      15, // linux: LinuxContainerConfig
      msg(
        1, // resources: LinuxContainerResources
        num(1, 100000),
        num(2, 50000),
        num(3, 512),
        num(4, 268435456),
        num(5, -997), // oom_score_adj: negative int64, 10 bytes
        str(6, '0-1'),
        str(7, '0'),
        msg(8, str(1, '2MB'), num(2, 4194304)), // hugepage_limits
        entry(9, 'memory.high', '200M'), // unified
        num(10, 536870912), // memory_swap_limit_in_bytes
      ),
      msg(
        2, // security_context: LinuxContainerSecurityContext, in field-number order
        msg(1, str(1, 'NET_ADMIN'), str(2, 'ALL'), str(3, 'NET_RAW')), // capabilities
        bool(2), // privileged
        wrapped(5, 65534), // run_as_user
        str(6, 'nobody'), // run_as_username
        bool(7), // readonly_rootfs
        packed(8, [5]), // supplemental_groups
        bool(11), // no_new_privs
        wrapped(12, 65534), // run_as_group
        str(13, '/proc/kcore'), // masked_paths
        str(14, '/proc/sys'), // readonly_paths
        msg(15, num(1, 0)), // seccomp RuntimeDefault = 0 (protobufjs writes a set enum even at 0)
        msg(16, num(1, 1)), // apparmor Unconfined = 1
        num(17, 1), // supplemental_groups_policy Strict = 1
      ),
    ),
    msg(17, str(1, 'vendor.com/gpu=0')), // CDI_devices
  );
  assert.deepEqual(encode('ContainerConfig', value), expected);
});

test('ContainerStatus', () => {
  const value = {
    id: 'c1',
    metadata: { name: 'app', attempt: 1 },
    state: 'CONTAINER_EXITED',
    created_at: T0,
    started_at: T1,
    finished_at: T1,
    exit_code: 137,
    image: { image: 'busybox' },
    image_ref: 'docker.io/library/busybox@sha256:aa',
    reason: 'OOMKilled',
    message: 'killed',
    labels: { k: 'v' },
    annotations: { x: 'y' },
    mounts: [{ container_path: '/d', host_path: '/h' }],
    log_path: '/var/log/pods/p/app/1.log',
    resources: { linux: { memory_limit_in_bytes: 1048576 } },
    image_id: 'sha256:bb',
    user: { linux: { uid: 1000, gid: 1001, supplemental_groups: [10, 20] } },
  };
  const expected = bytesOf(
    str(1, 'c1'),
    msg(2, str(1, 'app'), num(2, 1)),
    num(3, 2), // CONTAINER_EXITED = 2
    num(4, T0),
    num(5, T1),
    num(6, T1),
    num(7, 137),
    msg(8, str(1, 'busybox')),
    str(9, 'docker.io/library/busybox@sha256:aa'),
    str(10, 'OOMKilled'),
    str(11, 'killed'),
    entry(12, 'k', 'v'),
    entry(13, 'x', 'y'),
    msg(14, str(1, '/d'), str(2, '/h')),
    str(15, '/var/log/pods/p/app/1.log'),
    msg(16, msg(1, num(4, 1048576))), // resources.linux.memory_limit_in_bytes
    str(17, 'sha256:bb'), // image_id
    msg(18, msg(1, num(1, 1000), num(2, 1001), packed(3, [10, 20]))), // user.linux
  );
  assert.deepEqual(encode('ContainerStatus', value), expected);
  assert.deepEqual(decode('ContainerStatus', [...expected]), value);
});

const containerStats = {
  attributes: { id: 'c1', metadata: { name: 'app', attempt: 1 }, labels: { k: 'v' }, annotations: { a: 'b' } },
  cpu: { timestamp: T0, usage_core_nano_seconds: { value: 123456789 }, usage_nano_cores: { value: 5000 } },
  memory: {
    timestamp: T0,
    working_set_bytes: { value: 1048576 },
    available_bytes: { value: 2097152 },
    usage_bytes: { value: 3145728 },
    rss_bytes: { value: 524288 },
    page_faults: { value: 42 },
    major_page_faults: { value: 7 },
  },
  writable_layer: { timestamp: T0, fs_id: { mountpoint: '/var/lib/atoll' }, used_bytes: { value: 4096 }, inodes_used: { value: 12 } },
  swap: { timestamp: T0, swap_available_bytes: { value: 1 }, swap_usage_bytes: { value: 2 } },
};
const containerStatsBytes = [
  msg(1, str(1, 'c1'), msg(2, str(1, 'app'), num(2, 1)), entry(3, 'k', 'v'), entry(4, 'a', 'b')), // attributes
  msg(2, num(1, T0), wrapped(2, 123456789), wrapped(3, 5000)), // cpu
  msg(3, num(1, T0), wrapped(2, 1048576), wrapped(3, 2097152), wrapped(4, 3145728), wrapped(5, 524288), wrapped(6, 42), wrapped(7, 7)), // memory
  msg(4, num(1, T0), msg(2, str(1, '/var/lib/atoll')), wrapped(3, 4096), wrapped(4, 12)), // writable_layer
  msg(5, num(1, T0), wrapped(2, 1), wrapped(3, 2)), // swap
].flat();

test('ContainerStats: cpu, memory, writable_layer, swap', () => {
  assert.deepEqual(encode('ContainerStats', containerStats), Buffer.from(containerStatsBytes));
});

test('PodSandboxStats with network stats from the pod netns', () => {
  const value = {
    attributes: { id: 'p1', metadata: { name: 'web-0', uid: 'u-1', namespace: 'default', attempt: 1 } },
    linux: {
      cpu: { timestamp: T1, usage_core_nano_seconds: { value: 99 } },
      memory: { timestamp: T1, working_set_bytes: { value: 8192 } },
      network: {
        timestamp: T1,
        default_interface: {
          name: 'eth0',
          rx_bytes: { value: 1000 },
          rx_errors: { value: 1 },
          tx_bytes: { value: 2000 },
          tx_errors: { value: 2 },
        },
        interfaces: [{ name: 'eth1', rx_bytes: { value: 10 }, tx_bytes: { value: 20 } }],
      },
      process: { timestamp: T1, process_count: { value: 3 } },
      containers: [containerStats],
    },
  };
  const expected = bytesOf(
    msg(1, str(1, 'p1'), msg(2, str(1, 'web-0'), str(2, 'u-1'), str(3, 'default'), num(4, 1))), // attributes
    msg(
      2, // linux: LinuxPodSandboxStats
      msg(1, num(1, T1), wrapped(2, 99)), // cpu
      msg(2, num(1, T1), wrapped(2, 8192)), // memory
      msg(
        3, // network: NetworkUsage
        num(1, T1), // timestamp
        msg(2, str(1, 'eth0'), wrapped(2, 1000), wrapped(3, 1), wrapped(4, 2000), wrapped(5, 2)), // default_interface
        msg(3, str(1, 'eth1'), wrapped(2, 10), wrapped(4, 20)), // interfaces
      ),
      msg(4, num(1, T1), wrapped(2, 3)), // process
      len(5, containerStatsBytes), // containers
    ),
  );
  assert.deepEqual(encode('PodSandboxStats', value), expected);
});

test('ImageSpec, with the late field numbers 18 and 19', () => {
  const value = {
    image: 'docker.io/library/busybox:latest',
    annotations: { 'io.kubernetes.cri.platform': 'linux/amd64' },
    user_specified_image: 'busybox',
    runtime_handler: 'runv',
  };
  const expected = bytesOf(
    str(1, 'docker.io/library/busybox:latest'),
    entry(2, 'io.kubernetes.cri.platform', 'linux/amd64'),
    str(18, 'busybox'),
    str(19, 'runv'),
  );
  assert.deepEqual(encode('ImageSpec', value), expected);
  // Tag bytes of 18 and 19 as length-delimited fields: two-byte varints 0x92 0x01 and 0x9a 0x01.
  assert.deepEqual(tag(18, LEN), [0x92, 0x01]);
  assert.deepEqual(tag(19, LEN), [0x9a, 0x01]);
});

test('ExecSyncRequest and ExecSyncResponse', () => {
  assert.deepEqual(
    encode('ExecSyncRequest', { container_id: 'c1', cmd: ['sh', '-c', 'true'], timeout: 10 }),
    bytesOf(str(1, 'c1'), str(2, 'sh'), str(2, '-c'), str(2, 'true'), num(3, 10)),
  );
  const response = { stdout: Buffer.from('out\n'), stderr: Buffer.from('err'), exit_code: 3 };
  const responseBytes = bytesOf(len(1, [...Buffer.from('out\n')]), len(2, [...Buffer.from('err')]), num(3, 3));
  assert.deepEqual(encode('ExecSyncResponse', response), responseBytes);
  assert.deepEqual(decode('ExecSyncResponse', [...responseBytes]), response);
  // A negative int32 is sign-extended to ten bytes on the wire.
  assert.deepEqual(encode('ExecSyncResponse', { exit_code: -1 }), bytesOf(num(3, -1)));
  assert.equal(num(3, -1).length, 11);
});

test('ListContainersRequest with a filter', () => {
  const value = {
    filter: { id: 'c1', state: { state: 'CONTAINER_RUNNING' }, pod_sandbox_id: 'p1', label_selector: { app: 'web' } },
  };
  const expected = bytesOf(msg(1, str(1, 'c1'), msg(2, num(1, 1)), str(3, 'p1'), entry(4, 'app', 'web')));
  assert.deepEqual(encode('ListContainersRequest', value), expected);
});

test('AttachRequest and ExecRequest number stdin and tty differently', () => {
  assert.deepEqual(
    encode('AttachRequest', { container_id: 'c', stdin: true, tty: true, stdout: true, stderr: true }),
    bytesOf(str(1, 'c'), bool(2), bool(3), bool(4), bool(5)),
  );
  assert.deepEqual(
    encode('ExecRequest', { container_id: 'c', cmd: ['sh'], tty: true, stdin: true, stdout: true, stderr: true }),
    bytesOf(str(1, 'c'), str(2, 'sh'), bool(3), bool(4), bool(5), bool(6)),
  );
});

test('PortForwardRequest packs its repeated int32 ports', () => {
  assert.deepEqual(encode('PortForwardRequest', { pod_sandbox_id: 'p', port: [80, 8080] }), bytesOf(str(1, 'p'), packed(2, [80, 8080])));
});
