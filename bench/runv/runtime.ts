/**
 * bench/runv's side of the runtime process (runtime-process.ts): its private runv cache, its start in a
 * node netns of its own, the IPC calls, and the cleanup of everything it may leave.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, cp, mkdir, readdir, symlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { criClient, type CriClient } from '../../src/runtime/cri/index.js';
import { ensureGuestImages } from '../../src/runtime/runv/guest-image.js';
import { ensureGuestKernel } from '../../src/runtime/runv/guest-kernel.js';
import { TemplateCache } from '../../src/runtime/runv/template.js';
import { MicroVm, chooseAccelerator } from '../../src/runtime/runv/vm.js';
import { createNamespaces, listNamespaces, removeNamespaces, unmountNamespaceDirs } from '../../src/runtime/sandbox/namespaces.js';
import { listProcesses } from '../runtime/proc.js';
import { killAndRemoveCgroup, killPids, onCleanup, unmountUnder } from '../runtime/cleanup.js';
import { log } from './log.js';
import { runvFootprint, type RunvFootprint } from './memory.js';
import { removeAllPods } from './pods.js';
import type { ChildMessage, ParentMessage, ReadyInfo, RuntimeProcessOptions, StartMode, VmStart } from './runtime-process.js';

/** Template build included: a cold boot and agent warm-up under TCG on a loaded host. */
const READY_TIMEOUT_MS = 15 * 60_000;
const IPC_TIMEOUT_MS = 30_000;
/** Removing pods on the way out, per CRI call. */
const CLEANUP_CALL_TIMEOUT_MS = 60_000;
/** How long the runtime may take to remove its template and bridge after SIGTERM. */
const STOP_TIMEOUT_MS = 60_000;
const SUBNET = '10.197.0.0/24';

export interface Runtime {
  child: ChildProcess;
  client: CriClient;
  ready: ReadyInfo;
  opts: RuntimeProcessOptions;
}

/**
 * A runv cache of this run's own under `base`: the guest kernel copied from the shared cache (QEMU
 * maps it, so a shared file would split its page-cache PSS with every other VM on the machine), the
 * images linked (QEMU reads them, it does not map them), the accelerator choice copied. The shared
 * cache is brought up to date first, so a later run finds it ready.
 */
export async function privateRunvCache(sharedCache: string, base: string): Promise<string> {
  const kernel = await ensureGuestKernel(sharedCache, { onProgress: log });
  const images = await ensureGuestImages(sharedCache, kernel, { onProgress: log });
  await chooseAccelerator(sharedCache, kernel, images);
  const own = join(base, 'runv-cache');
  await mkdir(join(own, 'runv', 'kernel'), { recursive: true });
  await cp(kernel.dir, join(own, 'runv', 'kernel', basename(kernel.dir)), { recursive: true });
  await symlink(join(sharedCache, 'runv', 'images'), join(own, 'runv', 'images'));
  await copyFile(join(sharedCache, 'runv', 'accel.json'), join(own, 'runv', 'accel.json'));
  return own;
}

/**
 * Starts the runtime process with its root under `base`, its pod bridge in a new node netns, and the
 * OCI `archives` imported; resolves once it serves CRI and its template is built. Registers the
 * cleanups: pods removed over CRI first, then the process stopped, then whatever it left.
 */
export async function startRuntime(base: string, runvCache: string, archives: string[]): Promise<Runtime> {
  const suffix = randomBytes(3).toString('hex');
  const nodeDir = join(base, 'node');
  const node = await createNamespaces(nodeDir, `rvn${suffix}`, { hostname: 'bench-runv-node' });
  onCleanup('node netns', async () => {
    await removeNamespaces(nodeDir, node.id);
    await unmountNamespaceDirs(nodeDir);
  });
  const opts: RuntimeProcessOptions = {
    socket: join(base, 'cri.sock'),
    root: join(base, 'root'),
    runDir: join(base, 'run'),
    logRoot: join(base, 'pods'),
    cgroupParent: `/atoll-bench-runv-${suffix}`,
    bridge: `arv${suffix}`,
    subnet: SUBNET,
    hostNetns: node.net,
    runvCache,
    archives,
  };
  // The backstop, should the runtime die or hang: its VMs, conmons, namespaces, cgroups, mounts, and
  // its templates with their /dev/shm memory (this handle only names them; the runtime builds them).
  const templates = new TemplateCache(opts.root, { log });
  onCleanup('runtime leftovers', async () => {
    const vmRoot = join(opts.root, 'runv', 'vm');
    for (const name of await readdir(vmRoot).catch(() => [] as string[])) await MicroVm.destroy(join(vmRoot, name));
    const strays = (await listProcesses()).filter((p) => (p.cmdline.startsWith('/usr/bin/conmon') || p.cmdline.startsWith('qemu-system')) && p.cmdline.includes(base));
    await killPids(strays.map((p) => p.pid));
    for (const ns of await listNamespaces(opts.runDir).catch(() => [])) await removeNamespaces(opts.runDir, ns.id).catch(() => undefined);
    await unmountNamespaceDirs(opts.runDir).catch(() => undefined);
    await killAndRemoveCgroup(opts.cgroupParent);
    await unmountUnder(base);
    await templates.removeAll();
  });
  const script = fileURLToPath(new URL('./runtime-process.js', import.meta.url));
  const child = spawn(process.execPath, ['--expose-gc', script, JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'], detached: true });
  onCleanup('runtime process', () => stopChild(child));
  const ready = await new Promise<ReadyInfo>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('the runtime did not become ready')), READY_TIMEOUT_MS);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = /^ready (.*)$/m.exec(out);
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line[1]!) as ReadyInfo);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the runtime exited with ${code} before it was ready`));
    });
  });
  const client = criClient(opts.socket);
  onCleanup('CRI client', () => client.close());
  // Last registered, so first to run: the runtime takes its pods down itself while it still runs.
  onCleanup('pods', () => removeAllPods(client, log, CLEANUP_CALL_TIMEOUT_MS));
  return { child, client, ready, opts };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([exited.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(resolve, STOP_TIMEOUT_MS, false)))]);
  clearTimeout(timer);
  if (!inTime) {
    child.kill('SIGKILL');
    await exited;
  }
}

function ask(rt: Runtime, message: ParentMessage): Promise<ChildMessage> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      rt.child.off('message', onMessage);
      reject(new Error(`the runtime did not answer ${message.type}`));
    }, IPC_TIMEOUT_MS);
    const onMessage = (answer: ChildMessage) => {
      if (answer.type !== `${message.type}-done`) return;
      clearTimeout(timer);
      rt.child.off('message', onMessage);
      resolve(answer);
    };
    rt.child.on('message', onMessage);
    rt.child.send(message);
  });
}

/** How the runtime's next runv VMs start. */
export async function setMode(rt: Runtime, mode: StartMode): Promise<void> {
  await ask(rt, { type: 'mode', mode });
}

/** The runv VM starts since the last call. */
export async function vmStarts(rt: Runtime): Promise<VmStart[]> {
  const answer = await ask(rt, { type: 'starts' });
  return answer.type === 'starts-done' ? answer.starts : [];
}

/** The runtime's host memory with its VMs, right after a full GC in the runtime. */
export async function footprint(rt: Runtime): Promise<RunvFootprint> {
  await ask(rt, { type: 'gc' });
  const { templateMemoryFile: memoryFile, kernelFile, memoryMiB } = rt.ready;
  return runvFootprint(rt.child.pid!, rt.opts.root, { memoryFile, kernelFile, memoryMiB });
}
