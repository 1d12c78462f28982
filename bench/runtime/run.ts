/**
 * bench/runtime: CRI pod start latency and host memory per pod of Atoll's runtime, against Debian's
 * containerd 1.6 driven by the same CRI client in the same run, and a bare `runc run -d` floor.
 *
 *   node dist/bench/runtime/run.js [--pods 50] [--only atoll,containerd,runc]
 *
 * Needs root. Installs containerd + containernetworking-plugins with apt-get when absent.
 * Each runtime gets a dedicated "node" network namespace holding its pod bridge (Atoll: BridgeNetwork
 * hostNetns; containerd: containerd itself runs under `nsenter --net`), so the host's interfaces,
 * routes and iptables are never touched. Both use the same busybox image, imported from an OCI
 * archive built here from /usr/bin/busybox; containerd's sandbox_image is a busybox `sleep` image.
 *
 * Per runtime: one warm-up pod (run, then removed; it unpacks the image and loads lazy code), idle
 * PSS, then N pods one after the other, each timed RunPodSandbox + CreateContainer +
 * StartContainer (container: `sleep 86400`), PSS with N pods running, then Stop/Remove all.
 * PSS (smaps_rollup) sums the runtime process, its shims/conmons and their descendants, excluding
 * processes in another mount namespace (the containers and pause processes).
 * The floor: `runc run -d` of a bundle over a busybox rootfs (default `runc spec`, no terminal,
 * read-only rootfs), N times. Prints a table, then one JSON line.
 * Targets (issue 4): Atoll pod start p50 <= 1.0x containerd, <= 2 MiB host memory per extra pod.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, openSync, closeSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { busyboxRootfs } from '../../test/support/images.js';
import { buildImageArchive } from '../../src/runtime/images/import.js';
import { criClient, type CriClient, type PodSandboxConfig } from '../../src/runtime/cri/index.js';
import { createNamespaces, listNamespaces, removeNamespaces, unmountNamespaceDirs, type SandboxNamespaces } from '../../src/runtime/sandbox/namespaces.js';
import type { AtollProcessOptions } from './atoll-process.js';
import { percentile, runtimeFootprint, sleep, listProcesses, type ProcInfo, type RuntimeFootprint } from './proc.js';
import { cleanUpOnSignals, cleanupAll, interrupted, killAndRemoveCgroup, killPids, onCleanup, runCleanup, unmountUnder } from './cleanup.js';

const run = promisify(execFile);

const { values: args } = parseArgs({ options: { pods: { type: 'string', default: '50' }, only: { type: 'string', default: 'atoll,containerd,runc' } } });
const PODS = Number(args.pods);
if (!Number.isInteger(PODS) || PODS < 1) {
  console.error('--pods takes a positive integer');
  process.exit(2);
}
const ONLY = new Set(String(args.only).split(','));

const suffix = randomBytes(3).toString('hex');
const BUSYBOX_REF = 'atoll.local/bench/busybox:1';
const PAUSE_REF = 'atoll.local/bench/pause:1';
const ATOLL_SUBNET = '10.196.0.0/24';
const CONTAINERD_SUBNET = '10.195.0.0/24';
const CNI_BIN = '/usr/lib/cni';
const START_TIMEOUT_MS = 60_000;
const SETTLE_MS = 2_000;

cleanUpOnSignals();

function log(line: string): void {
  console.error(`[bench/runtime] ${line}`);
}

async function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function stopChild(child: ChildProcess, timeoutMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (!(await exited(child, timeoutMs))) {
    child.kill('SIGKILL');
    await exited(child, 5_000);
  }
}

async function ensureContainerd(): Promise<boolean> {
  const have = async (cmd: string) => run('sh', ['-c', `command -v ${cmd}`]).then(() => true, () => false);
  if ((await have('containerd')) && (await have('ctr')) && (await have('containerd-shim-runc-v2')) && existsSync(join(CNI_BIN, 'bridge')) && existsSync(join(CNI_BIN, 'host-local'))) return false;
  log('installing containerd and containernetworking-plugins with apt-get');
  await run('apt-get', ['update', '-qq'], { maxBuffer: 64 << 20 });
  await run('apt-get', ['install', '-y', '--no-install-recommends', 'containerd', 'containernetworking-plugins'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 64 << 20 });
  return true;
}

interface Target {
  name: 'atoll' | 'containerd';
  /** Every sandbox id RunPodSandbox returned. */
  sandboxes: Set<string>;
  client: CriClient;
  logRoot: string;
  cgroupParent?: string;
  footprint(): Promise<RuntimeFootprint>;
}

interface PodTiming {
  totalMs: number;
  runMs: number;
  createMs: number;
  startMs: number;
}

interface RuntimeResult {
  name: string;
  timings: PodTiming[];
  idle: RuntimeFootprint;
  loaded: RuntimeFootprint;
  teardownMs: number;
}

function sandboxConfig(target: Target, name: string): PodSandboxConfig {
  const uid = `uid-${name}-${suffix}`;
  return {
    metadata: { name, namespace: 'bench', uid, attempt: 0 },
    hostname: name,
    log_directory: join(target.logRoot, `bench_${name}_${uid}`),
    labels: { app: 'bench' },
    ...(target.cgroupParent ? { linux: { cgroup_parent: target.cgroupParent } } : {}),
  };
}

async function startPod(target: Target, name: string): Promise<{ podId: string; timing: PodTiming }> {
  const config = sandboxConfig(target, name);
  const t0 = performance.now();
  const { pod_sandbox_id: podId } = await target.client.RunPodSandbox({ config });
  target.sandboxes.add(podId);
  const t1 = performance.now();
  const { container_id: containerId } = await target.client.CreateContainer({
    pod_sandbox_id: podId,
    config: { metadata: { name: 'sleep', attempt: 0 }, image: { image: BUSYBOX_REF }, command: ['sleep', '86400'], log_path: 'sleep/0.log' },
    sandbox_config: config,
  });
  const t2 = performance.now();
  await target.client.StartContainer({ container_id: containerId });
  const t3 = performance.now();
  return { podId, timing: { totalMs: t3 - t0, runMs: t1 - t0, createMs: t2 - t1, startMs: t3 - t2 } };
}

async function removePod(target: Target, podId: string): Promise<void> {
  await target.client.StopPodSandbox({ pod_sandbox_id: podId });
  await target.client.RemovePodSandbox({ pod_sandbox_id: podId });
}

async function removeAllPods(target: Target, timeoutMs?: number): Promise<void> {
  const list = await target.client.ListPodSandbox({}, { timeoutMs });
  for (const s of list.items ?? []) {
    await target.client.StopPodSandbox({ pod_sandbox_id: s.id }, { timeoutMs }).catch(() => undefined);
    await target.client.RemovePodSandbox({ pod_sandbox_id: s.id }, { timeoutMs }).catch((err: unknown) => log(`${target.name}: remove ${s.id}: ${String(err)}`));
  }
}

/** On failure or interrupt: remove the pods over CRI while the runtime still runs, so it tears them down itself. */
function removePodsOnCleanup(target: Target): void {
  onCleanup(`${target.name} pods`, () => removeAllPods(target, 10_000));
}

async function measure(target: Target): Promise<RuntimeResult> {
  log(`${target.name}: warm-up pod`);
  const warm = await startPod(target, `warmup-${target.name}`);
  await removePod(target, warm.podId);
  await sleep(SETTLE_MS);
  const idle = await target.footprint();
  log(`${target.name}: idle ${(idle.pssKiB / 1024).toFixed(1)} MiB PSS over ${idle.pids.length} processes; starting ${PODS} pods`);
  const timings: PodTiming[] = [];
  for (let i = 0; i < PODS; i++) timings.push((await startPod(target, `pod-${i}`)).timing);
  await sleep(SETTLE_MS);
  const loaded = await target.footprint();
  log(`${target.name}: with ${PODS} pods ${(loaded.pssKiB / 1024).toFixed(1)} MiB PSS over ${loaded.pids.length} processes ${JSON.stringify(loaded.kinds)}`);
  const t0 = performance.now();
  await removeAllPods(target);
  const teardownMs = performance.now() - t0;
  return { name: target.name, timings, idle, loaded, teardownMs };
}

async function waitFor(what: string, fn: () => Promise<boolean>, timeoutMs = START_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function makeNode(dir: string, id: string): Promise<SandboxNamespaces> {
  const node = await createNamespaces(dir, id, { hostname: id });
  onCleanup(`node netns ${id}`, async () => {
    await removeNamespaces(dir, id);
    await unmountNamespaceDirs(dir).catch(() => undefined);
  });
  return node;
}

// ---------------------------------------------------------------- Atoll

async function benchAtoll(tmp: string, busyboxArchive: string): Promise<RuntimeResult> {
  const base = join(tmp, 'atoll');
  await mkdir(base, { recursive: true });
  const nodeDir = join(base, 'node');
  const node = await makeNode(nodeDir, `an${suffix}`);
  const opts: AtollProcessOptions = {
    socket: join(base, 'cri.sock'),
    root: join(base, 'root'),
    runDir: join(base, 'run'),
    logRoot: join(base, 'pods'),
    cgroupParent: `/atoll-bench-atl-${suffix}`,
    bridge: `atb${suffix}`,
    subnet: ATOLL_SUBNET,
    hostNetns: node.net,
    archives: [busyboxArchive],
  };
  onCleanup('atoll mounts, namespaces, cgroups', async () => {
    const conmons = (await listProcesses()).filter((p) => p.cmdline.startsWith('/usr/bin/conmon') && p.cmdline.includes(base));
    await killPids(conmons.map((p) => p.pid));
    for (const ns of await listNamespaces(opts.runDir).catch(() => [])) await removeNamespaces(opts.runDir, ns.id).catch(() => undefined);
    await unmountNamespaceDirs(opts.runDir).catch(() => undefined);
    await killAndRemoveCgroup(opts.cgroupParent);
    await unmountUnder(base);
  });
  const script = fileURLToPath(new URL('./atoll-process.js', import.meta.url));
  const child = spawn(process.execPath, ['--expose-gc', script, JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'], detached: true });
  onCleanup('atoll runtime process', () => stopChild(child));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('atoll runtime did not become ready')), START_TIMEOUT_MS);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`atoll runtime exited with ${code} before ready`));
    });
  });
  const client = criClient(opts.socket);
  onCleanup('atoll client', () => client.close());
  const version = await client.Version({});
  log(`atoll: ${version.runtime_name} ${version.runtime_version} (pid ${child.pid})`);
  const target: Target = {
    name: 'atoll',
    sandboxes: new Set(),
    client,
    logRoot: opts.logRoot,
    footprint: async () => {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5_000);
        child.once('message', () => {
          clearTimeout(timer);
          resolve();
        });
        child.send('gc');
      });
      await sleep(200);
      return runtimeFootprint(
        child.pid!,
        (p) => p.cmdline.startsWith('/usr/bin/conmon') && p.cmdline.includes(base),
        (p) => (p.pid === child.pid ? 'atoll' : p.cmdline.startsWith('/usr/bin/conmon') ? 'conmon' : p.cmdline.split(' ')[0]!),
      );
    },
  };
  removePodsOnCleanup(target);
  return measure(target);
}

// ---------------------------------------------------------------- containerd

function containerdConfig(base: string, socket: string): string {
  const q = JSON.stringify;
  return `version = 2
root = ${q(join(base, 'root'))}
state = ${q(join(base, 'state'))}
oom_score = 0

[grpc]
  address = ${q(socket)}

[ttrpc]
  address = ${q(`${socket}.ttrpc`)}

[debug]
  address = ""
  level = "warn"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = ${q(join(base, 'opt'))}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${q(PAUSE_REF)}
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = ${q(join(base, 'runc'))}

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ${q(CNI_BIN)}
    conf_dir = ${q(join(base, 'cni'))}
    max_conf_num = 1
`;
}

async function benchContainerd(tmp: string, busyboxArchive: string, pauseArchive: string): Promise<RuntimeResult> {
  const base = join(tmp, 'containerd');
  await mkdir(join(base, 'cni'), { recursive: true });
  const node = await makeNode(join(base, 'node'), `cn${suffix}`);
  const socket = join(base, 'containerd.sock');
  const logRoot = join(base, 'pods');
  const cgroupParent = `/atoll-bench-ctrd-${suffix}`;
  const bridge = `ctb${suffix}`;
  await writeFile(join(base, 'config.toml'), containerdConfig(base, socket));
  await writeFile(
    join(base, 'cni', '10-bench.conflist'),
    JSON.stringify({
      cniVersion: '0.4.0',
      name: `bench-${suffix}`,
      plugins: [
        {
          type: 'bridge',
          bridge,
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: { type: 'host-local', ranges: [[{ subnet: CONTAINERD_SUBNET }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(base, 'ipam') },
        },
      ],
    }),
  );
  const sandboxIds = new Set<string>();
  onCleanup('containerd mounts, shims, cgroups', async () => {
    // A shim killed here leaves its socket: /run/containerd/s/<sha256(address/namespace/sandbox id)>.
    // libcni's cache of a pod never torn down: /var/lib/cni/results/<network>-<sandbox id>-<ifname>.
    const results = await readdir('/var/lib/cni/results').catch(() => [] as string[]);
    for (const f of results) if ([...sandboxIds].some((id) => f.includes(`-${id}-`))) await rm(join('/var/lib/cni/results', f), { force: true });
    for (const id of sandboxIds) await rm(join('/run/containerd/s', createHash('sha256').update(join(socket, 'k8s.io', id)).digest('hex')), { force: true });
    const shims = (await listProcesses()).filter((p) => p.cmdline.includes('containerd-shim') && p.cmdline.includes(socket));
    await killPids(shims.map((p) => p.pid));
    await killAndRemoveCgroup(cgroupParent);
    await unmountUnder(base);
  });
  // containerd 1.6 hardcodes the shims' socket dir (/run/containerd/s) and libcni its cache
  // (/var/lib/cni): remove those directories afterwards if this run created them and they are empty.
  const hostDirs = ['/run/containerd', '/run/containerd/s', '/var/lib/cni', '/var/lib/cni/results'].filter((d) => !existsSync(d));
  onCleanup('host dirs containerd created', async () => {
    for (const d of [...hostDirs].reverse()) await rmdir(d).catch(() => undefined);
  });
  const logFd = openSync(join(base, 'containerd.log'), 'a');
  // nsenter execs containerd, so the child's pid is containerd's.
  const child = spawn('nsenter', [`--net=${node.net}`, '--', 'containerd', '--config', join(base, 'config.toml')], { stdio: ['ignore', logFd, logFd], detached: true });
  closeSync(logFd);
  onCleanup('containerd process', () => stopChild(child, 20_000));
  const client = criClient(socket);
  onCleanup('containerd client', () => client.close());
  await waitFor('containerd CRI', async () => {
    if (child.exitCode !== null) throw new Error(`containerd exited with ${child.exitCode}; see ${join(base, 'containerd.log')}`);
    const status = await client.Status({});
    return status.status?.conditions.some((c) => c.type === 'RuntimeReady' && c.status) ?? false;
  });
  for (const archive of [pauseArchive, busyboxArchive]) {
    await run('ctr', ['--address', socket, '-n', 'k8s.io', 'images', 'import', '--snapshotter', 'overlayfs', archive], { maxBuffer: 16 << 20 });
  }
  await waitFor('images in the CRI image service', async () => {
    for (const ref of [PAUSE_REF, BUSYBOX_REF]) if (!(await client.ImageStatus({ image: { image: ref } })).image) return false;
    return true;
  });
  await waitFor('containerd NetworkReady', async () => {
    const status = await client.Status({});
    return status.status?.conditions.some((c) => c.type === 'NetworkReady' && c.status) ?? false;
  });
  const version = await client.Version({});
  log(`containerd: ${version.runtime_name} ${version.runtime_version} (pid ${child.pid})`);
  const target: Target = {
    name: 'containerd',
    sandboxes: sandboxIds,
    client,
    logRoot,
    cgroupParent,
    footprint: () =>
      runtimeFootprint(
        child.pid!,
        (p) => p.cmdline.includes('containerd-shim') && p.cmdline.includes(socket),
        (p: ProcInfo) => (p.pid === child.pid ? 'containerd' : p.cmdline.includes('containerd-shim') ? 'shim' : p.cmdline.split(' ')[0]!),
      ),
  };
  removePodsOnCleanup(target);
  return measure(target);
}

// ---------------------------------------------------------------- runc floor

async function benchRunc(tmp: string, rootfs: string): Promise<{ timings: number[] }> {
  const base = join(tmp, 'runc');
  const state = join(base, 'state');
  const cgroupParent = `/atoll-bench-runc-${suffix}`;
  await mkdir(join(base, 'template'), { recursive: true });
  await run('runc', ['spec', '--bundle', join(base, 'template')]);
  const spec = JSON.parse(await readFile(join(base, 'template', 'config.json'), 'utf8')) as {
    process: { terminal: boolean; args: string[] };
    root: { path: string; readonly: boolean };
    linux: { cgroupsPath?: string };
  };
  const ids: string[] = [];
  onCleanup('runc containers', async () => {
    for (const id of ids) await run('runc', ['--root', state, 'delete', '-f', id]).catch(() => undefined);
    await killAndRemoveCgroup(cgroupParent);
    await unmountUnder(base);
  });
  const timings: number[] = [];
  for (let i = -1; i < PODS; i++) {
    const id = `bench-${suffix}-${i < 0 ? 'warmup' : i}`;
    const bundle = join(base, id);
    await mkdir(bundle);
    spec.process.terminal = false;
    spec.process.args = ['sleep', '86400'];
    spec.root = { path: rootfs, readonly: true };
    spec.linux.cgroupsPath = `${cgroupParent}/${id}`;
    await writeFile(join(bundle, 'config.json'), JSON.stringify(spec));
    const errFile = join(bundle, 'stderr');
    const errFd = openSync(errFile, 'w');
    ids.push(id);
    const t0 = performance.now();
    const child = spawn('runc', ['--root', state, 'run', '-d', '--bundle', bundle, id], { stdio: ['ignore', errFd, errFd] });
    closeSync(errFd);
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    const ms = performance.now() - t0;
    if (code !== 0) throw new Error(`runc run ${id} exited ${code}: ${await readFile(errFile, 'utf8')}`);
    if (i >= 0) timings.push(ms);
  }
  return { timings };
}

// ---------------------------------------------------------------- main

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/runtime needs root');
  const installed = ONLY.has('containerd') ? await ensureContainerd() : false;
  const tmp = await mkdtemp(join(tmpdir(), 'atoll-bench-rt-'));
  onCleanup('temp dir', async () => {
    await unmountUnder(tmp);
    await rm(tmp, { recursive: true, force: true });
  });
  const rootfs = await busyboxRootfs(join(tmp, 'rootfs'));
  const busyboxArchive = await buildImageArchive({
    ref: BUSYBOX_REF,
    files: rootfs,
    config: { Cmd: ['sh'], Env: ['PATH=/bin'], WorkingDir: '/', User: '' },
    output: join(tmp, 'busybox.tar'),
  });
  const pauseArchive = await buildImageArchive({
    ref: PAUSE_REF,
    files: rootfs,
    config: { Entrypoint: ['/bin/sleep', '2147483647'], Cmd: [], Env: ['PATH=/bin'], WorkingDir: '/', User: '' },
    output: join(tmp, 'pause.tar'),
  });

  const results: RuntimeResult[] = [];
  let runcTimings: number[] = [];
  if (ONLY.has('runc')) {
    log(`runc floor: ${PODS} x runc run -d`);
    runcTimings = (await benchRunc(tmp, rootfs)).timings;
    // Remove the runc containers now, so they do not weigh on the runtimes' numbers.
    await runCleanup('runc containers');
  }
  if (ONLY.has('atoll')) results.push(await benchAtoll(tmp, busyboxArchive));
  if (ONLY.has('containerd')) results.push(await benchContainerd(tmp, busyboxArchive, pauseArchive));

  if (interrupted) throw new Error('interrupted: no results');
  const MiB = 1024;
  const rows = results.map((r) => {
    const totals = r.timings.map((t) => t.totalMs);
    return {
      runtime: r.name,
      p50Ms: percentile(totals, 50),
      p99Ms: percentile(totals, 99),
      meanMs: totals.reduce((a, b) => a + b, 0) / totals.length,
      runP50Ms: percentile(r.timings.map((t) => t.runMs), 50),
      createP50Ms: percentile(r.timings.map((t) => t.createMs), 50),
      startP50Ms: percentile(r.timings.map((t) => t.startMs), 50),
      idleMiB: r.idle.pssKiB / MiB,
      loadedMiB: r.loaded.pssKiB / MiB,
      perPodMiB: (r.loaded.pssKiB - r.idle.pssKiB) / MiB / PODS,
      processesIdle: r.idle.kinds,
      processesLoaded: r.loaded.kinds,
      teardownMs: r.teardownMs,
    };
  });
  const runc = runcTimings.length > 0 ? { p50Ms: percentile(runcTimings, 50), p99Ms: percentile(runcTimings, 99), meanMs: runcTimings.reduce((a, b) => a + b, 0) / runcTimings.length } : undefined;
  const atoll = rows.find((r) => r.runtime === 'atoll');
  const ctrd = rows.find((r) => r.runtime === 'containerd');

  console.log(`\nCRI pod start (RunPodSandbox + CreateContainer + StartContainer), ${PODS} pods sequential; PSS of runtime + shims/conmons\n`);
  console.log(['runtime'.padEnd(12), 'p50 ms', 'p99 ms', 'mean ms', 'run/create/start p50 ms', 'idle MiB', `@${PODS} MiB`, 'MiB/pod', 'teardown s'].join('  '));
  for (const r of rows) {
    console.log(
      [
        r.runtime.padEnd(12),
        fmt(r.p50Ms).padStart(6),
        fmt(r.p99Ms).padStart(6),
        fmt(r.meanMs).padStart(7),
        `${fmt(r.runP50Ms)}/${fmt(r.createP50Ms)}/${fmt(r.startP50Ms)}`.padStart(23),
        fmt(r.idleMiB).padStart(8),
        fmt(r.loadedMiB).padStart(7),
        fmt(r.perPodMiB, 2).padStart(7),
        fmt(r.teardownMs / 1000).padStart(10),
      ].join('  '),
    );
  }
  if (runc) console.log(['runc run -d'.padEnd(12), fmt(runc.p50Ms).padStart(6), fmt(runc.p99Ms).padStart(6), fmt(runc.meanMs).padStart(7), '(floor)'.padStart(23)].join('  '));
  const ratioP50 = atoll && ctrd ? atoll.p50Ms / ctrd.p50Ms : NaN;
  const ratioP99 = atoll && ctrd ? atoll.p99Ms / ctrd.p99Ms : NaN;
  console.log('');
  if (atoll && ctrd) {
    console.log(`atoll / containerd pod start p50: ${fmt(ratioP50, 2)}x (target <= 1.0x) ${ratioP50 <= 1 ? 'PASS' : 'FAIL'}; p99: ${fmt(ratioP99, 2)}x`);
  }
  if (atoll) console.log(`atoll host memory per extra pod: ${fmt(atoll.perPodMiB, 2)} MiB (target <= 2 MiB) ${atoll.perPodMiB <= 2 ? 'PASS' : 'FAIL'}`);
  if (atoll && runc) console.log(`atoll p50 / runc floor p50: ${fmt(atoll.p50Ms / runc.p50Ms, 2)}x`);
  if (installed) console.log('note: installed containerd + containernetworking-plugins with apt-get');
  console.log(
    JSON.stringify({
      bench: 'runtime',
      pods: PODS,
      runtimes: rows,
      runc,
      ratios: { atollOverContainerdP50: ratioP50, atollOverContainerdP99: ratioP99 },
      targets: { startRatioMax: 1.0, perPodMiBMax: 2, startPass: ratioP50 <= 1, memoryPass: atoll ? atoll.perPodMiB <= 2 : null },
      installedPackages: installed ? ['containerd', 'containernetworking-plugins'] : [],
    }),
  );
}

let failed = false;
try {
  await main();
} catch (err) {
  failed = true;
  console.error('bench/runtime failed:', err);
} finally {
  await cleanupAll();
}
process.exit(failed ? 1 : 0);
