import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { RuntimeError, type ContainerSpec, type SandboxSpec } from '../handler.js';
import { BridgeNetwork } from '../network/bridge.js';
import { findLink, ipJson, type IpAddressLink } from '../network/ip.js';
import { createNamespaces, mountPoints, removeNamespaces, unmountNamespaceDirs, type SandboxNamespaces } from '../sandbox/namespaces.js';
import { mountAll, unmount } from '../snapshots/mount.js';
import { handlerSuite, makeBusyboxRootfs } from '../suite.js';
import { RunvHandler } from './handler.js';
import { EMPTY_DIR_DISK_FILE } from './empty-dir.js';
import { tapName } from './tap.js';
import { MicroVm } from './vm.js';
import { runningQemus } from './qemu-testkit.js';

/**
 * The runv handler on real QEMU (TCG here): the shared handler suite on one pod VM, then one more VM
 * for what is runv's own: mounts through files and the 9p share, a runtime restart with the log
 * continuing, and a VM that dies under its containers. The guest kernel and images are cached in the
 * checkout's `.cache/runv` (vm.test.ts); everything else lives in a temp directory this file removes.
 */
const CACHE_ROOT = process.env.ATOLL_RUNV_TEST_CACHE ?? fileURLToPath(new URL('../../../../.cache/runv', import.meta.url));
const SUBNET = '10.196.0.0/24';
/** How long a case waits for something a container must do on its own (a bounded wait, not an assertion). */
const SETTLE_MS = 60_000;
const CHAIN_ID = `sha256:${createHash('sha256').update('atoll runv handler test: busybox rootfs').digest('hex')}`;

const work = mkdtempSync(join(tmpdir(), 'atoll-runv-h-'));
const root = join(work, 'root');
const runDir = join(work, 'run');
const logDir = join(work, 'logs');
/** Pod volume directories as the node agent lays them out (src/agent/volumes). */
const podsDir = join(work, 'pods');
mkdirSync(logDir);
const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
const suffix = randomBytes(3).toString('hex');
let node: SandboxNamespaces | undefined;
let network: BridgeNetwork | undefined;
const pods: SandboxNamespaces[] = [];

/** A pod netns attached to a bridge that lives in a namespace standing in for the node (nothing touches the real host). */
async function podSandbox(id: string, hostname: string): Promise<SandboxSpec> {
  if (!node) {
    node = await createNamespaces(runDir, `node-${suffix}`, { hostname: 'node' });
    network = new BridgeNetwork({ stateDir: join(work, 'network'), bridge: `atl-rv${suffix}`, subnet: SUBNET, hostNetns: node.net });
    await network.restore([]);
  }
  const ns = await createNamespaces(runDir, id, { hostname, loopback: false });
  pods.push(ns);
  const att = await network!.setup(id, ns.net, { name: hostname, namespace: 'default', uid: id });
  return { id, hostname, netns: ns.net, hostNetwork: false, network: att };
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function mountsUnder(dir: string): Promise<string[]> {
  return [...(await mountPoints())].filter((p) => p.startsWith(`${dir}/`));
}

// Whatever the cases left, even after failed assertions: VMs, share binds, taps, netns, the bridge, files.
after(async () => {
  for (const name of existsSync(join(root, 'runv', 'vm')) ? readdirSync(join(root, 'runv', 'vm')) : []) await MicroVm.destroy(join(root, 'runv', 'vm', name));
  for (const point of (await mountsUnder(root)).sort((a, b) => b.length - a.length)) await unmount(point).catch(() => undefined);
  for (const point of await mountsUnder(podsDir)) await unmount(point).catch(() => undefined);
  for (const ns of pods) {
    await network?.teardown(ns.id, ns.net).catch(() => undefined);
    await removeNamespaces(runDir, ns.id).catch(() => undefined);
  }
  await network?.destroy().catch(() => undefined);
  if (node) await removeNamespaces(runDir, node.id).catch(() => undefined);
  await unmountNamespaceDirs(runDir).catch(() => undefined);
  rmSync(work, { recursive: true, force: true });
});

let suiteSandbox: SandboxSpec | undefined;
handlerSuite(
  'runv',
  async () => {
    suiteSandbox = await podSandbox('suite-sandbox', 'suite');
    return RunvHandler.open({ root, cacheRoot: CACHE_ROOT, log: (line) => console.log(line) });
  },
  () => ({ rootfs, logDir, sandbox: suiteSandbox, imageChainId: CHAIN_ID }),
);

describe('RunvHandler', () => {
  let handler: RunvHandler;
  let sandbox: SandboxSpec;
  let counter = 0;
  const open = () => RunvHandler.open({ root, cacheRoot: CACHE_ROOT, log: (line) => console.log(line) });

  function spec(args: string[], extra: Partial<ContainerSpec> = {}): ContainerSpec {
    const id = `runv-${process.pid}-${++counter}`;
    return { id, sandboxId: sandbox.id, rootfs, imageChainId: CHAIN_ID, command: args, logPath: join(logDir, id, '0.log'), ...extra };
  }

  async function running(args: string[], extra: Partial<ContainerSpec> = {}): Promise<ContainerSpec> {
    const container = spec(args, extra);
    await handler.createContainer(container);
    await handler.start(container.id);
    return container;
  }

  /** The CRI log's lines as [stream, tag, text]. */
  function logLines(path: string): [string, string, string][] {
    return readFileSync(path, 'utf8').split('\n').filter(Boolean).map((line) => {
      const match = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) (F|P) (.*)$/.exec(line);
      assert.ok(match, `not a CRI log line: ${line}`);
      return [match[1]!, match[2]!, match[3]!];
    });
  }

  before(async () => {
    handler = await open();
    sandbox = await podSandbox(`pod-${suffix}`, 'pod-a');
  });
  after(async () => {
    await handler?.stopSandbox(sandbox.id).catch((err: Error) => console.log(`stopping the sandbox: ${err.message}`));
    await handler?.close();
  });

  it('refuses a host-network pod and a pod without an interface, precisely, before making anything', async () => {
    const hostNet: SandboxSpec = { id: 'host-net', hostname: 'h', netns: '/proc/1/ns/net', hostNetwork: true };
    await assert.rejects(handler.startSandbox(hostNet), (err: unknown) => err instanceof RuntimeError && err.code === 'InvalidArgument' && /hostNetwork/.test(err.message));
    await assert.rejects(handler.startSandbox({ ...hostNet, hostNetwork: false }), (err: unknown) => err instanceof RuntimeError && err.code === 'InvalidArgument' && /no network interface/.test(err.message));
    assert.deepEqual(existsSync(join(root, 'runv', 'sandboxes')) ? readdirSync(join(root, 'runv', 'sandboxes')) : [], []);
    await handler.stopSandbox('host-net');
  });

  it('undoes a start that failed: the tap goes, the veth has its address back, no record stays', async () => {
    const failing = await RunvHandler.open({ root, cacheRoot: CACHE_ROOT, startVm: async () => { throw new Error('no VM today'); } });
    try {
      await assert.rejects(failing.startSandbox(sandbox), (err: unknown) => err instanceof RuntimeError && err.code === 'Internal' && /no VM today/.test(err.message));
      const veth = sandbox.network!.interfaces[0]!.name;
      assert.equal(await findLink(tapName(veth), sandbox.netns), undefined);
      const [link] = await ipJson<IpAddressLink[]>(['addr', 'show', 'dev', veth], sandbox.netns);
      assert.ok(link?.addr_info.some((a) => a.local === sandbox.network!.ips[0]!.address), 'the pod IP is back on the veth');
      assert.deepEqual(readdirSync(join(root, 'runv', 'sandboxes')), []);
      await failing.stopSandbox(sandbox.id);
    } finally {
      await failing.close();
    }
  });

  it('starts the pod VM with the pod IP, routes and hostname on the veth’s MAC', async () => {
    await handler.startSandbox(sandbox);
    const container = await running(['sleep', '1000']);
    const out = await handler.execSync(container.id, ['sh', '-c', 'hostname; ip -4 addr show eth0; ip route; cat /sys/class/net/eth0/address'], 30);
    const text = out.stdout.toString();
    const ip = sandbox.network!.ips[0]!;
    assert.match(text, /^pod-a\n/);
    assert.match(text, new RegExp(`inet ${ip.address.replace(/\./g, '\\.')}/${ip.prefixLength}`));
    assert.match(text, new RegExp(`default via ${sandbox.network!.gateway!.replace(/\./g, '\\.')} dev eth0`));
    assert.match(text, new RegExp(sandbox.network!.interfaces[0]!.mac));
    await handler.stop(container.id, 0);
    await handler.remove(container.id);
  });

  it('passes files and directories in: files written into the guest, directories live over 9p, read-only kept, the termination log copied back', async () => {
    const config = join(work, 'config');
    mkdirSync(config);
    writeFileSync(join(config, 'key'), 'one\n');
    const hosts = join(work, 'hosts');
    writeFileSync(hosts, '127.0.0.1 localhost\n10.196.0.9 pod-a\n');
    const termination = join(work, 'termination-log');
    writeFileSync(termination, '');
    chmodSync(termination, 0o666);
    // No chain ID: the container gets an image disk of its own, which goes with it.
    const container = await running(['sh', '-c', 'echo started; echo warn >&2; while [ ! -e /tmp/stop ]; do sleep 0.1; done; echo bye > /dev/termination-log'], {
      imageChainId: undefined,
      readonlyRootfs: false,
      hostsFile: hosts,
      shmPath: '/unused-on-runv',
      mounts: [
        { source: config, destination: '/config', readonly: true },
        { source: termination, destination: '/dev/termination-log' },
      ],
    });
    const read = async (script: string) => (await handler.execSync(container.id, ['sh', '-c', script], 30)).stdout.toString();
    assert.equal(await read('cat /config/key; cat /etc/hosts | tail -1'), 'one\n10.196.0.9 pod-a\n');
    writeFileSync(join(config, 'key'), 'two\n');
    assert.equal(await read('cat /config/key'), 'two\n', 'a change on the host shows in the guest at once');
    const denied = await handler.execSync(container.id, ['sh', '-c', 'echo x > /config/new'], 30);
    assert.notEqual(denied.exitCode, 0);
    assert.match(denied.stderr.toString(), /read-only/i);
    assert.equal(existsSync(join(config, 'new')), false);
    assert.equal(await read('df -P /dev/shm | tail -1 | cut -d" " -f1'), 'tmpfs\n');

    const stats = await until(() => handler.stats(container.id), (s) => (s.blockIo?.readOps ?? 0) > 0, 'block reads of the rootfs');
    assert.ok(stats.memory.workingSetBytes > 0 && stats.blockIo!.readBytes > 0, JSON.stringify(stats.blockIo));

    await handler.execSync(container.id, ['touch', '/tmp/stop'], 30);
    const state = await handler.wait(container.id);
    assert.equal(state.exitCode, 0);
    assert.equal(readFileSync(termination, 'utf8'), 'bye\n');
    await handler.remove(container.id);
    assert.deepEqual(logLines(container.logPath).sort(), [['stderr', 'F', 'warn'], ['stdout', 'F', 'started']]);
    assert.deepEqual(await mountsUnder(join(root, 'runv', 'shares')), [], 'the share binds went with the container');
    assert.equal(existsSync(join(root, 'runv', 'layers', `${container.id}.qcow2`)), false);
    assert.deepEqual(readdirSync(join(root, 'runv', 'rootfs')), [`${CHAIN_ID.slice('sha256:'.length)}.v1.ext4`], 'only the shared image disk is left');
  });

  it('survives a runtime restart: the container runs on, its log continues with nothing lost or repeated, exec and attach work', async () => {
    const container = await running(['sh', '-c', 'i=0; while :; do echo line-$i; i=$((i+1)); sleep 0.1; done']);
    const attached = await handler.attach!(container.id, {});
    const first = await new Promise<string>((resolve) => attached.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString())));
    assert.match(first, /line-\d+/);
    attached.kill();
    assert.equal(await attached.exited, 0, 'detaching leaves the container running');
    await until(async () => logLines(container.logPath).length, (n) => n >= 5, 'output in the log');

    await handler.close();
    // The container writes on while no runtime reads its output.
    await sleep(3_000);
    handler = await open();
    const adopted = await handler.adopt();
    const mine = adopted.find((c) => c.id === container.id);
    assert.equal(mine?.state.status, 'running');
    assert.equal(mine?.sandboxId, sandbox.id);
    const exec = await handler.execSync(container.id, ['sh', '-c', 'echo alive; exit 7'], 30);
    assert.deepEqual([exec.stdout.toString(), exec.exitCode], ['alive\n', 7]);
    await until(async () => logLines(container.logPath).length, (n) => n >= 60, 'output after the restart');

    await handler.stop(container.id, 1);
    await handler.remove(container.id);
    assert.equal(existsSync(join(root, 'runv', 'layers', `${container.id}.qcow2`)), false, 'the adopted container’s layer went with it');
    const numbers = logLines(container.logPath).map(([stream, tag, text]) => {
      assert.deepEqual([stream, tag], ['stdout', 'F']);
      return Number(/^line-(\d+)$/.exec(text)?.[1]);
    });
    assert.deepEqual(numbers, numbers.map((_n, i) => i), 'every line once, in order');
  });

  it('fails a call the guest agent does not answer in time, clearly, and carries on once it answers again', async () => {
    const container = await running(['sleep', '1000']);
    const [qemu] = runningQemus(root);
    assert.ok(qemu, 'the pod VM runs');
    process.kill(qemu, 'SIGSTOP');
    try {
      await assert.rejects(handler.state(container.id), (err: unknown) => err instanceof RuntimeError && err.code === 'DeadlineExceeded' && /did not answer in time/.test(err.message));
    } finally {
      process.kill(qemu, 'SIGCONT');
    }
    assert.equal((await handler.state(container.id)).status, 'running');
    await handler.stop(container.id, 0);
    await handler.remove(container.id);
  });

  it('keeps emptyDirs in the VM: a disk the pod’s containers share (subPaths too), a guest tmpfs for medium Memory; kept across container and runtime restarts and into a new sandbox of the pod', async () => {
    const emptyDirs = join(podsDir, `uid-${suffix}`, 'volumes', 'kubernetes.io~empty-dir');
    const scratch = join(emptyDirs, 'scratch');
    const ram = join(emptyDirs, 'ram');
    mkdirSync(scratch, { recursive: true });
    chmodSync(scratch, 0o777);
    mkdirSync(ram);
    await mountAll([{ type: 'tmpfs', source: 'tmpfs', options: ['size=4m', 'mode=0777'] }], ram);
    const read = async (id: string, script: string) => (await handler.execSync(id, ['sh', '-c', script], 30)).stdout.toString();

    const writer = await running(['sh', '-c', 'echo hello > /data/from-writer; echo fast > /mem/note; echo deep > /deep/file; sleep 1000'], {
      mounts: [
        { source: scratch, destination: '/data' },
        { source: ram, destination: '/mem' },
        { source: join(scratch, 'sub', 'deeper'), destination: '/deep' },
      ],
    });
    let reader = await running(['sleep', '1000'], {
      mounts: [
        { source: scratch, destination: '/data', readonly: true },
        { source: ram, destination: '/mem' },
        { source: join(scratch, 'sub'), destination: '/sub' },
      ],
    });
    await until(() => read(reader.id, 'cat /data/from-writer /mem/note /sub/deeper/file 2>/dev/null'), (text) => text === 'hello\nfast\ndeep\n', 'the writer’s files in the reader');
    assert.equal(await read(reader.id, "awk '$2 == \"/data\" || $2 == \"/mem\" { print $2, $3 }' /proc/mounts; stat -c %a /data; df -k /mem | awk 'NR == 2 { print $2 }'"), '/data ext4\n/mem tmpfs\n777\n4096\n');
    const denied = await handler.execSync(reader.id, ['sh', '-c', 'echo x > /data/new'], 30);
    assert.match(denied.stderr.toString(), /read-only/i);
    assert.deepEqual(readdirSync(scratch), [EMPTY_DIR_DISK_FILE], 'the emptyDir’s files are on its disk, not in the host directory');
    assert.deepEqual(readdirSync(ram), [], 'nor on the host tmpfs');
    const disk = statSync(join(scratch, EMPTY_DIR_DISK_FILE));
    assert.ok(disk.blocks * 512 < disk.size / 100, `the emptyDir disk is sparse (${disk.blocks * 512} of ${disk.size} bytes)`);

    // The writer goes, then the runtime restarts: the files stay, and a new container finds them.
    await handler.stop(writer.id, 0);
    await handler.remove(writer.id);
    await handler.close();
    handler = await open();
    await handler.adopt();
    const later = await running(['sleep', '1000'], { mounts: [{ source: scratch, destination: '/data' }, { source: ram, destination: '/mem' }] });
    assert.equal(await read(later.id, 'cat /data/from-writer /mem/note'), 'hello\nfast\n');

    // 8 writable slots: 2 layers and the scratch disk are in use; a new container's layer and 4 more emptyDirs fill them.
    const extra = [1, 2, 3, 4, 5, 6].map((n) => join(emptyDirs, `extra-${n}`));
    for (const dir of extra) mkdirSync(dir);
    await assert.rejects(
      handler.createContainer(spec(['true'], { mounts: extra.map((source, i) => ({ source, destination: `/extra-${i}` })) })),
      (err: unknown) => err instanceof RuntimeError && /no free writable disk slot for emptyDir volume "extra-5": all 8 are taken \(3 by container rootfs layers, 5 by emptyDir disks\)/.test(err.message),
    );

    for (const c of [reader, later]) {
      await handler.stop(c.id, 0);
      await handler.remove(c.id);
    }
    await handler.stopSandbox(sandbox.id);
    assert.deepEqual(await mountsUnder(join(root, 'runv')), []);
    assert.deepEqual(runningQemus(root), []);
    // The next case runs in a new VM of the same pod.
    await handler.startSandbox(sandbox);
    reader = await running(['sleep', '1000'], { mounts: [{ source: scratch, destination: '/data' }] });
    assert.equal(await read(reader.id, 'ls -A /data'), 'from-writer\nsub\n', 'a new sandbox of the pod has the emptyDir’s files, as after a node reboot');
    await handler.stop(reader.id, 0);
    await handler.remove(reader.id);
  });

  it('reports every container of a VM that died exited with reason VmExited, and cleans up after it', async () => {
    const container = await running(['sleep', '1000']);
    const created = spec(['true']);
    await handler.createContainer(created);
    const [qemu] = runningQemus(root);
    assert.ok(qemu, 'the pod VM runs');
    process.kill(qemu, 'SIGKILL');
    const state = await handler.wait(container.id);
    assert.equal(state.status, 'exited');
    assert.equal(state.reason, 'VmExited');
    assert.match(state.message!, /VM \(QEMU pid \d+\) exited on its own/);
    assert.equal((await handler.state(created.id)).reason, 'VmExited');
    await assert.rejects(handler.execSync(container.id, ['true'], 5), (err: unknown) => err instanceof RuntimeError && err.code === 'NotRunning');

    await handler.remove(container.id);
    await handler.remove(created.id);
    await handler.stopSandbox(sandbox.id);
    await handler.stopSandbox(sandbox.id);
    assert.deepEqual(runningQemus(root), []);
    assert.equal(await findLink(tapName(sandbox.network!.interfaces[0]!.name), sandbox.netns), undefined, 'the tap is gone');
    assert.deepEqual(await mountsUnder(root), []);
    for (const dir of ['vm', 'sandboxes', 'containers', 'layers', 'output', 'shares'].map((name) => join(root, 'runv', name))) {
      assert.deepEqual(existsSync(dir) ? readdirSync(dir) : [], [], `nothing left in ${dir}`);
    }
  });
});
