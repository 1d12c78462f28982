import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildTestImage } from '../../../test/support/images.js';
import { freePort, pushImage, startProxy, startRegistry, type TestRegistry } from '../../../test/support/registry.js';
import { cgroupAt, childCgroups, removeCgroup } from '../cgroups.js';
import { CriCode, criClient, isGrpcError, type ContainerConfig, type CriClient, type PodSandboxConfig } from '../cri/index.js';
import { ipJson, type IpLink } from '../network/ip.js';
import { createNamespaces, execInNetns, listNamespaces, mountPoints, removeNamespaces, unmountNamespaceDirs, type SandboxNamespaces } from '../sandbox/namespaces.js';
import { NodeRuntime } from '../node-runtime.js';
import { waitFor } from '../../../test/support/wait.js';
import { channelStatus, channelText, openChannelSession, openSpdyExec, readAll } from '../streaming/index.js';

const SUBNET = '10.197.0.0/24';
const HTTP_PORT = 8080;
const LOG_WAIT_MS = 10_000;
const POLL_MS = 100;

/** One running instance of the runtime over a fixed set of directories; open() again to restart. */
type Instance = NodeRuntime;

async function expectCode(promise: Promise<unknown>, code: CriCode, pattern?: RegExp): Promise<string> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isGrpcError(err), `expected a gRPC error, got ${String(err)}`);
    assert.equal(err.code, code, `expected ${CriCode[code]}, got ${CriCode[err.code]}: ${err.details}`);
    if (pattern) assert.match(err.details, pattern);
    return err.details;
  }
  assert.fail(`expected ${CriCode[code]}, but the call succeeded`);
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = LOG_WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** PIDs of conmon processes whose command line mentions `dir`. */
async function conmonsUnder(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.startsWith('/usr/bin/conmon') && cmdline.includes(dir)) pids.push(Number(entry));
  }
  return pids;
}

describe('RuntimeService over the CRI socket', () => {
  const suffix = randomBytes(3).toString('hex');
  const cgroupParent = `/atoll-svc-test-${suffix}`;
  let tmp: string;
  let runDir: string;
  let nodeRunDir: string;
  let logRoot: string;
  let socket: string;
  let node: SandboxNamespaces | undefined;
  let registry: TestRegistry | undefined;
  let image: string;
  let instance: Instance | undefined;
  let client: CriClient;

  function open(): Promise<Instance> {
    return NodeRuntime.start({
      socket,
      root: tmp,
      runDir,
      logRoot,
      cgroupParent,
      network: { bridge: `atl-s${suffix}`, subnet: SUBNET, mtu: 1400, hostNetns: node!.net, ipForward: true },
      log: () => undefined,
    });
  }

  function sandboxConfig(name: string, extra: Partial<PodSandboxConfig> = {}): PodSandboxConfig {
    const uid = `uid-${name}-${suffix}`;
    return {
      metadata: { name, namespace: 'test', uid, attempt: 0 },
      hostname: name,
      log_directory: join(logRoot, `test_${name}_${uid}`),
      dns_config: { servers: ['10.197.0.10'], searches: ['test.svc.cluster.local'], options: ['ndots:5'] },
      labels: { app: name },
      ...extra,
    };
  }

  function containerConfig(name: string, command: string[], extra: Partial<ContainerConfig> = {}): ContainerConfig {
    return { metadata: { name, attempt: 0 }, image: { image }, command, log_path: `${name}/0.log`, labels: { container: name }, ...extra };
  }

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'atoll-svc-'));
    runDir = join(tmp, 'run');
    nodeRunDir = join(tmp, 'node');
    logRoot = join(tmp, 'pods');
    socket = join(tmp, 'cri.sock');
    node = await createNamespaces(nodeRunDir, `node-${suffix}`, { hostname: 'node' });
    registry = await startRegistry();
    await pushImage(registry, 'test/busybox:1', await buildTestImage());
    image = `${registry.host}/test/busybox:1`;
    instance = await open();
    client = criClient(socket);
  });

  after(async () => {
    client?.close();
    if (instance) {
      const impl = instance.service.implementation();
      const call = { method: 'cleanup', signal: new AbortController().signal, metadata: undefined as never };
      const list = await impl.ListPodSandbox!({ filter: null }, call);
      for (const s of (await list).items ?? []) await impl.RemovePodSandbox!({ pod_sandbox_id: s.id! }, call);
      await instance.close().catch(() => undefined);
      await instance.network.destroy().catch(() => undefined);
    }
    for (const pid of await conmonsUnder(tmp)) process.kill(pid, 'SIGKILL');
    for (const ns of await listNamespaces(runDir).catch(() => [])) await removeNamespaces(runDir, ns.id);
    await unmountNamespaceDirs(runDir).catch(() => undefined);
    if (node) await removeNamespaces(nodeRunDir, node.id);
    await unmountNamespaceDirs(nodeRunDir).catch(() => undefined);
    for (const mount of [...(await mountPoints())].filter((p) => p.startsWith(tmp)).sort().reverse()) {
      await execInNetns(undefined, ['umount', '-l', mount]).catch(() => undefined);
    }
    try {
      removeCgroup(cgroupAt(cgroupParent));
    } catch {
      // nothing was created, or a process is still inside (the leak test reports that)
    }
    await registry?.stop();
    await rm(tmp, { recursive: true, force: true });
  });

  it('answers Version and Status', async () => {
    const version = await client.Version({});
    assert.equal(version.runtime_name, 'atoll');
    assert.equal(version.runtime_api_version, 'v1');
    const status = await client.Status({});
    assert.deepEqual(status.status?.conditions.map((c) => [c.type, c.status]), [['RuntimeReady', true], ['NetworkReady', true]]);
  });

  it('runs a pod of two containers through a restart of the runtime', async () => {
    const pulled = await client.PullImage({ image: { image } });
    assert.match(pulled.image_ref, /^sha256:[0-9a-f]{64}$/);
    const listed = await client.ListImages({});
    assert.ok(listed.images.some((i) => i.id === pulled.image_ref && i.repo_tags.includes(image)));
    assert.equal((await client.ImageStatus({ image: { image } })).image?.id, pulled.image_ref);

    const config = sandboxConfig('web');
    const { pod_sandbox_id: podId } = await client.RunPodSandbox({ config });
    assert.match(podId, /^[0-9a-f]{64}$/);
    const podStatus = (await client.PodSandboxStatus({ pod_sandbox_id: podId })).status!;
    assert.equal(podStatus.state, 'SANDBOX_READY');
    assert.equal(podStatus.metadata?.name, 'web');
    assert.deepEqual(podStatus.labels, { app: 'web' });
    assert.equal(podStatus.runtime_handler, 'runc');
    const podIP = podStatus.network!.ip;
    assert.match(podIP, /^10\.197\.0\.\d+$/);
    assert.ok(Number(podStatus.created_at) > Date.now() * 1e6 - 60e9);

    const printer = (
      await client.CreateContainer({
        pod_sandbox_id: podId,
        config: containerConfig('printer', ['sh', '-c', 'echo one; echo two; echo "$GREETING"; exec sleep 1000'], { envs: [{ key: 'GREETING', value: 'hello pod' }] }),
        sandbox_config: config,
      })
    ).container_id;
    const web = (
      await client.CreateContainer({
        pod_sandbox_id: podId,
        config: containerConfig('web', ['sh', '-c', `echo served > /tmp/index.html && exec httpd -f -p ${HTTP_PORT} -h /tmp`]),
        sandbox_config: config,
      })
    ).container_id;
    assert.equal((await client.ContainerStatus({ container_id: printer })).status?.state, 'CONTAINER_CREATED');
    await client.StartContainer({ container_id: printer });
    await client.StartContainer({ container_id: web });

    const printerStatus = (await client.ContainerStatus({ container_id: printer })).status!;
    assert.equal(printerStatus.state, 'CONTAINER_RUNNING');
    assert.equal(printerStatus.image_id, pulled.image_ref);
    assert.match(printerStatus.image_ref, /@sha256:[0-9a-f]{64}$/);
    const logPath = join(config.log_directory!, 'printer/0.log');
    assert.equal(printerStatus.log_path, logPath);
    const log = await until('the printer log lines', async () => {
      const text = await readFile(logPath, 'utf8').catch(() => '');
      return text.split('\n').filter(Boolean).length >= 3 ? text : undefined;
    });
    const lines = log.split('\n').filter(Boolean);
    const stamp = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) stdout F /;
    for (const line of lines) assert.match(line, stamp);
    assert.deepEqual(lines.map((l) => l.replace(stamp, '')), ['one', 'two', 'hello pod']);

    const exec = await client.ExecSync({ container_id: printer, cmd: ['sh', '-c', 'cat /etc/hostname; echo err >&2; exit 3'], timeout: 10 });
    assert.equal(exec.exit_code, 3);
    assert.equal(exec.stdout.toString(), 'web\n');
    assert.equal(exec.stderr.toString(), 'err\n');
    // The same through the streaming server: Exec answers a URL, the WebSocket carries the streams.
    const { url } = await client.Exec({ container_id: printer, cmd: ['sh', '-c', 'echo streamed; echo oops >&2; exit 4'], stdout: true, stderr: true });
    const session = await openChannelSession(url);
    await session.closed;
    assert.equal(channelText(session, 1), 'streamed\n');
    assert.equal(channelText(session, 2), 'oops\n');
    assert.deepEqual(channelStatus(session).details?.causes, [{ reason: 'ExitCode', message: '4' }]);
    // And over SPDY/3.1, the transport crictl and the API server's proxy use.
    const spdy = await openSpdyExec((await client.Exec({ container_id: printer, cmd: ['sh', '-c', 'echo spdy; exit 5'], stdout: true })).url, { stdout: true });
    assert.equal((await readAll(spdy.stdout!)).toString(), 'spdy\n');
    assert.deepEqual((await spdy.status).details?.causes, [{ reason: 'ExitCode', message: '5' }]);
    // Attach sees the main process's output from now on: have it printed through PID 1's stdout.
    const attached = await openChannelSession((await client.Attach({ container_id: printer, stdout: true, stderr: true })).url);
    // conmon keeps no backlog and the attach relay connects in the background: print until it shows.
    await waitFor('output through attach', async () => {
      await client.ExecSync({ container_id: printer, cmd: ['sh', '-c', 'echo attached-line > /proc/1/fd/1'], timeout: 10 });
      await new Promise((r) => setTimeout(r, 200));
      return channelText(attached, 1).includes('attached-line\n');
    });
    attached.ws.close();
    await attached.closed;
    assert.equal((await client.ContainerStatus({ container_id: printer })).status?.state, 'CONTAINER_RUNNING', 'detaching leaves the container running');
    const resolv = await client.ExecSync({ container_id: printer, cmd: ['cat', '/etc/resolv.conf'], timeout: 10 });
    assert.match(resolv.stdout.toString(), /nameserver 10\.197\.0\.10/);

    // Pod-internal traffic (loopback) and node-to-pod traffic (over eth0, counted in the pod's stats).
    const fetched = await client.ExecSync({ container_id: printer, cmd: ['wget', '-q', '-O', '-', `http://127.0.0.1:${HTTP_PORT}/index.html`], timeout: 10 });
    assert.equal(fetched.stdout.toString(), 'served\n', fetched.stderr.toString());
    const fromNode = await execInNetns(node!.net, ['/usr/bin/busybox', 'wget', '-q', '-O', '-', `http://${podIP}:${HTTP_PORT}/index.html`]);
    assert.equal(fromNode.stdout.toString(), 'served\n');

    const stats = (await client.ContainerStats({ container_id: web })).stats!;
    assert.ok(Number(stats.cpu?.usage_core_nano_seconds?.value) > 0, 'cpu');
    assert.ok(Number(stats.memory?.working_set_bytes?.value) > 0, 'memory');
    assert.ok(Number(stats.writable_layer?.used_bytes?.value) > 0, 'writable layer');
    const podStats = (await client.PodSandboxStats({ pod_sandbox_id: podId })).stats!;
    assert.equal(podStats.linux?.containers.length, 2);
    assert.equal(podStats.linux?.network?.default_interface?.name, 'eth0');
    assert.ok(Number(podStats.linux?.network?.default_interface?.rx_bytes?.value) > 0, 'rx bytes');
    assert.ok(Number(podStats.linux?.network?.default_interface?.tx_bytes?.value) > 0, 'tx bytes');
    assert.equal((await client.ListContainerStats({ filter: { pod_sandbox_id: podId } })).stats.length, 2);
    assert.equal((await client.ListPodSandboxStats({})).stats.length, 1);

    // A third container waits for a file that the test creates while the runtime is down.
    const quitter = (
      await client.CreateContainer({
        pod_sandbox_id: podId,
        config: containerConfig('quitter', ['sh', '-c', 'while [ ! -f /tmp/go ]; do sleep 0.1; done; exit 7']),
      })
    ).container_id;
    await client.StartContainer({ container_id: quitter });

    // Restart: the old instance lets go of everything, a new one adopts the running containers.
    await instance!.close();
    instance = undefined;
    await writeFile(join(runDir, 'rootfs', quitter, 'tmp', 'go'), '');
    await until('the quitter to exit', async () => ((await readFile(join(tmp, 'runc', 'exits', quitter)).catch(() => undefined)) ? true : undefined));
    instance = await open();
    const containers = (await client.ListContainers({ filter: { pod_sandbox_id: podId, state: { state: 'CONTAINER_RUNNING' } } })).containers;
    assert.deepEqual(containers.map((c) => c.id).sort(), [printer, web].sort());
    const quit = (await client.ContainerStatus({ container_id: quitter })).status!;
    assert.equal(quit.state, 'CONTAINER_EXITED');
    assert.equal(quit.exit_code, 7);
    assert.equal(quit.reason, 'Error');
    await client.RemoveContainer({ container_id: quitter });
    assert.equal((await client.PodSandboxStatus({ pod_sandbox_id: podId })).status?.network?.ip, podIP);
    const again = await execInNetns(node!.net, ['/usr/bin/busybox', 'wget', '-q', '-O', '-', `http://${podIP}:${HTTP_PORT}/index.html`]);
    assert.equal(again.stdout.toString(), 'served\n');
    assert.equal((await client.ExecSync({ container_id: printer, cmd: ['echo', 'after'], timeout: 10 })).stdout.toString(), 'after\n');

    await client.StopContainer({ container_id: printer, timeout: 5 });
    const stopped = (await client.ContainerStatus({ container_id: printer })).status!;
    assert.equal(stopped.state, 'CONTAINER_EXITED');
    assert.equal(stopped.exit_code, 137);
    assert.ok(Number(stopped.finished_at) >= Number(stopped.started_at));
    assert.equal((await client.ListContainers({ filter: { state: { state: 'CONTAINER_RUNNING' } } })).containers.length, 1);

    await client.StopPodSandbox({ pod_sandbox_id: podId });
    await client.StopPodSandbox({ pod_sandbox_id: podId });
    assert.equal((await client.PodSandboxStatus({ pod_sandbox_id: podId })).status?.state, 'SANDBOX_NOTREADY');
    assert.equal((await client.ContainerStatus({ container_id: web })).status?.state, 'CONTAINER_EXITED');
    await client.RemoveContainer({ container_id: printer });
    await client.RemovePodSandbox({ pod_sandbox_id: podId });
    await client.RemovePodSandbox({ pod_sandbox_id: podId });
    assert.equal((await client.ListPodSandbox({})).items.length, 0);
    assert.equal((await client.ListContainers({})).containers.length, 0);
  });

  it('refuses an image that does not exist, naming it', async () => {
    const missing = `${registry!.host}/test/nothere:1`;
    await expectCode(client.PullImage({ image: { image: missing } }), CriCode.NOT_FOUND, /test\/nothere/);
    assert.deepEqual(await client.ImageStatus({ image: { image: missing } }).then((r) => r.image), null);
    const { pod_sandbox_id } = await client.RunPodSandbox({ config: sandboxConfig('noimage') });
    await expectCode(
      client.CreateContainer({ pod_sandbox_id, config: { ...containerConfig('c', ['true']), image: { image: missing } } }),
      CriCode.NOT_FOUND,
      /nothere/,
    );
    assert.equal((await client.ListContainers({})).containers.length, 0);
    await client.RemovePodSandbox({ pod_sandbox_id });
  });

  it('answers UNAVAILABLE naming the host for an unreachable registry', async () => {
    const host = `127.0.0.1:${await freePort()}`;
    await expectCode(client.PullImage({ image: { image: `${host}/test/busybox:1` } }), CriCode.UNAVAILABLE, new RegExp(host.replace(/\./g, '\\.')));
  });

  it('refuses a duplicate sandbox name and keeps the first sandbox', async () => {
    const config = sandboxConfig('dup');
    const { pod_sandbox_id } = await client.RunPodSandbox({ config });
    await expectCode(client.RunPodSandbox({ config }), CriCode.ALREADY_EXISTS, new RegExp(pod_sandbox_id));
    assert.equal((await client.ListPodSandbox({})).items.length, 1);
    assert.equal((await listNamespaces(runDir)).length, 1);
    await client.RemovePodSandbox({ pod_sandbox_id });
  });

  it('refuses a command that does not exist and leaves no container', async () => {
    const config = sandboxConfig('nocmd');
    const { pod_sandbox_id } = await client.RunPodSandbox({ config });
    const attempt = (async () => {
      const { container_id } = await client.CreateContainer({ pod_sandbox_id, config: containerConfig('c', ['/no/such/binary']) });
      try {
        await client.StartContainer({ container_id });
      } finally {
        await client.RemoveContainer({ container_id });
      }
    })();
    await expectCode(attempt, CriCode.INVALID_ARGUMENT, /no\/such\/binary/);
    assert.equal((await client.ListContainers({})).containers.length, 0);
    await client.RemovePodSandbox({ pod_sandbox_id });
  });

  it('removes a running container forcibly, as containerd does', async () => {
    const config = sandboxConfig('rmrun');
    const { pod_sandbox_id } = await client.RunPodSandbox({ config });
    const { container_id } = await client.CreateContainer({ pod_sandbox_id, config: containerConfig('c', ['sleep', '1000']) });
    await client.StartContainer({ container_id });
    const ref = (await client.ImageStatus({ image: { image } })).image!.id;
    await expectCode(client.RemoveImage({ image: { image: ref } }), CriCode.FAILED_PRECONDITION, new RegExp(container_id));
    await client.RemoveContainer({ container_id });
    await expectCode(client.ContainerStatus({ container_id }), CriCode.NOT_FOUND);
    await client.RemoveContainer({ container_id });
    await client.RemovePodSandbox({ pod_sandbox_id });
  });

  it('refuses a log path outside the log directory and a log directory outside the log root', async () => {
    const config = sandboxConfig('logs');
    const { pod_sandbox_id } = await client.RunPodSandbox({ config });
    await expectCode(client.CreateContainer({ pod_sandbox_id, config: containerConfig('c', ['true'], { log_path: '../../escape.log' }) }), CriCode.INVALID_ARGUMENT, /escapes/);
    assert.equal((await client.ListContainers({})).containers.length, 0);
    await client.RemovePodSandbox({ pod_sandbox_id });
    await expectCode(client.RunPodSandbox({ config: sandboxConfig('outside', { log_directory: '/var/log/elsewhere' }) }), CriCode.INVALID_ARGUMENT, /outside the log root/);
    await expectCode(client.RunPodSandbox({ config: sandboxConfig('relative', { log_directory: 'pods/x' }) }), CriCode.INVALID_ARGUMENT, /absolute/);
  });

  it('answers precisely for streaming calls it cannot serve', async () => {
    await expectCode(client.Exec({ container_id: 'x', cmd: ['sh'] }), CriCode.NOT_FOUND);
    await expectCode(client.Attach({ container_id: 'x', stdout: true }), CriCode.NOT_FOUND);
  });

  it('answers DATA_LOSS for a corrupt layer and keeps no image', async () => {
    // An image whose config blob the store has never seen, so the corrupted download is not deduplicated away.
    await pushImage(registry!, 'test/corrupt:1', await buildTestImage({ cmd: ['/bin/sh', '-c', 'echo corrupt'] }));
    const corrupt = await startProxy(registry!.host, { corruptBlobs: true });
    try {
      const ref = `${corrupt.host}/test/corrupt:1`;
      await expectCode(client.PullImage({ image: { image: ref } }), CriCode.DATA_LOSS, /expected sha256:[0-9a-f]{64}, got sha256:[0-9a-f]{64}/);
      assert.equal((await client.ImageStatus({ image: { image: ref } })).image, null);
    } finally {
      await corrupt.stop();
    }
  });

  it('runs host-network pods in the node namespace, updates resources, reopens logs and sets no_new_privs only when asked', async () => {
    const config = sandboxConfig('hostnet', { linux: { security_context: { namespace_options: { network: 'NODE' } } } as PodSandboxConfig['linux'] });
    const { pod_sandbox_id } = await client.RunPodSandbox({ config });
    const start = async (name: string, extra: Partial<ContainerConfig> = {}) => {
      const { container_id } = await client.CreateContainer({ pod_sandbox_id, config: containerConfig(name, ['sh', '-c', 'echo before; sleep 1000'], extra), sandbox_config: config });
      await client.StartContainer({ container_id });
      return container_id;
    };
    const c = await start('c');
    // The node namespace holds the pod bridge; a pod namespace of its own would have only lo.
    const links = await client.ExecSync({ container_id: c, cmd: ['cat', '/proc/net/dev'], timeout: 10 });
    assert.match(links.stdout.toString(), new RegExp(`atl-s${suffix}`));
    assert.equal((await client.PodSandboxStatus({ pod_sandbox_id })).status?.network?.ip ?? '', '');
    const nnp = async (id: string) => /NoNewPrivs:\s+(\d)/.exec((await client.ExecSync({ container_id: id, cmd: ['cat', '/proc/self/status'], timeout: 10 })).stdout.toString())?.[1];
    assert.equal(await nnp(c), '0');
    const locked = await start('locked', { linux: { security_context: { no_new_privs: true } } as ContainerConfig['linux'] });
    assert.equal(await nnp(locked), '1');

    await client.UpdateContainerResources({ container_id: c, linux: { memory_limit_in_bytes: 96 << 20, cpu_shares: 256 } as never });
    const limits = await client.ExecSync({ container_id: c, cmd: ['sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'], timeout: 10 });
    assert.equal(limits.stdout.toString().trim(), String(96 << 20));

    const logPath = join(config.log_directory!, 'c/0.log');
    await until('the first log line', async () => ((await readFile(logPath, 'utf8').catch(() => '')).includes('before') ? true : undefined));
    await rename(logPath, `${logPath}.1`);
    await client.ReopenContainerLog({ container_id: c });
    await client.ExecSync({ container_id: c, cmd: ['sh', '-c', 'echo after > /proc/1/fd/1'], timeout: 10 });
    const reopened = await until('a line in the reopened log', async () => {
      const text = await readFile(logPath, 'utf8').catch(() => '');
      return text.includes('after') ? text : undefined;
    });
    assert.doesNotMatch(reopened, /before/);
    await client.RemovePodSandbox({ pod_sandbox_id });
  });

  it('leaves nothing behind', async () => {
    assert.deepEqual((await listNamespaces(runDir)).map((n) => n.id), [], 'netns');
    const veths = await ipJson<IpLink[]>(['link', 'show', 'type', 'veth'], node!.net);
    assert.deepEqual(veths.map((l) => l.ifname), [], 'veths');
    const ipam = await readFile(join(tmp, 'network', `ipam-atl-s${suffix}.json`), 'utf8').catch(() => '{}');
    assert.deepEqual(Object.keys((JSON.parse(ipam) as { allocations?: object }).allocations ?? {}), [], 'IPs');
    // The shared namespace directories stay mounted until after(); the node's namespaces are the test's own.
    const mounts = [...(await mountPoints())].filter((p) => p.startsWith(tmp) && !p.startsWith(nodeRunDir) && !/\/(netns|ipcns|utsns)$/.test(p));
    assert.deepEqual(mounts, [], 'mounts');
    assert.deepEqual(childCgroups(cgroupAt(cgroupParent)), [], 'cgroups');
    assert.deepEqual(await conmonsUnder(tmp), [], 'conmon processes');
    const snapshots = (await instance!.snapshotter.walk()).filter((s) => s.kind !== 'Committed');
    assert.deepEqual(snapshots.map((s) => s.key), [], 'container snapshots');
  });
});
