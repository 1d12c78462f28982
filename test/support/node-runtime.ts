import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroupAt, removeCgroup } from '../../src/runtime/cgroups.js';
import { criClient, type CriClient } from '../../src/runtime/cri/index.js';
import { NodeRuntime } from '../../src/runtime/node-runtime.js';
import { createNamespaces, execInNetns, listNamespaces, mountPoints, removeNamespaces, unmountNamespaceDirs, type SandboxNamespaces } from '../../src/runtime/sandbox/namespaces.js';
import { buildTestImage } from './images.js';
import { pushImage, startRegistry, type TestRegistry } from './registry.js';

/**
 * A real runtime for tests of what sits on top of CRI (the node agent and its server): a node
 * network namespace of the test's own (the bridge lives there, not in the host's), a local registry
 * holding the busybox test image, and NodeRuntime serving CRI on a socket in a temp dir.
 */
export interface TestRuntime {
  runtime: NodeRuntime;
  cri: CriClient;
  /** The pullable busybox image reference. */
  image: string;
  /** Sandboxes' log directories must lie inside it. */
  logRoot: string;
  /** The node netns the bridge lives in. */
  node: SandboxNamespaces;
  /** The bridge's address, which pods can reach. */
  gateway: string;
  tmp: string;
  /** Removes every sandbox, stops the runtime and removes everything it made. */
  close(): Promise<void>;
}

export interface TestRuntimeOptions {
  /** A /24 for the pods, e.g. 10.198.0.0/24; the gateway is its .1. */
  subnet: string;
}

export async function startTestRuntime(opts: TestRuntimeOptions): Promise<TestRuntime> {
  const suffix = randomBytes(3).toString('hex');
  const cgroupParent = `/atoll-test-${suffix}`;
  const tmp = await mkdtemp(join(tmpdir(), 'atoll-rt-'));
  const runDir = join(tmp, 'run');
  const nodeRunDir = join(tmp, 'node');
  const logRoot = join(tmp, 'pods');
  const socket = join(tmp, 'cri.sock');
  let node: SandboxNamespaces | undefined;
  let registry: TestRegistry | undefined;
  let runtime: NodeRuntime | undefined;
  let cri: CriClient | undefined;

  const close = async () => {
    cri?.close();
    if (runtime) {
      const impl = runtime.service.implementation();
      const call = { method: 'cleanup', signal: new AbortController().signal, metadata: undefined as never };
      const list = await impl.ListPodSandbox!({ filter: null }, call);
      for (const s of list.items ?? []) await Promise.resolve(impl.RemovePodSandbox!({ pod_sandbox_id: s.id! }, call)).catch(() => undefined);
      await runtime.close().catch(() => undefined);
      await runtime.network.destroy().catch(() => undefined);
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
      // nothing was created
    }
    await registry?.stop();
    await rm(tmp, { recursive: true, force: true });
  };

  try {
    node = await createNamespaces(nodeRunDir, `node-${suffix}`, { hostname: 'node' });
    registry = await startRegistry();
    await pushImage(registry, 'test/busybox:1', await buildTestImage());
    const image = `${registry.host}/test/busybox:1`;
    runtime = await NodeRuntime.start({
      socket,
      root: tmp,
      runDir,
      logRoot,
      cgroupParent,
      network: { bridge: `atl-t${suffix}`, subnet: opts.subnet, mtu: 1400, hostNetns: node.net, ipForward: true },
      log: () => undefined,
    });
    cri = criClient(socket);
    await cri.PullImage({ image: { image } });
    const gateway = opts.subnet.replace(/\.0\/\d+$/, '.1');
    return { runtime, cri, image, logRoot, node, gateway, tmp, close };
  } catch (err) {
    await close();
    throw err;
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
