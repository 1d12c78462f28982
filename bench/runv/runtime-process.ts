/**
 * The Atoll runtime with the runv handler as its own process for bench/runv (so that its memory is its
 * own): imports OCI archives, serves CRI (handlers runc and runv) with the bridge inside a given node
 * netns, and builds a VM template in a private template root (the runtime's root).
 *
 *   node dist/bench/runv/runtime-process.js '<json RuntimeProcessOptions>'
 *
 * How runv VMs start is switched by the parent over IPC, per pod: `cold` boots (MicroVm.boot), `template`
 * restores a clone (TemplateCache.startVm, which itself falls back to a cold boot when it must), `pool`
 * takes an idle clone from the handler's pool of one (runv/pool.ts; the `mode` answer waits until that
 * VM is ready; other modes empty the pool). Every VM start through startVm is recorded, so that the
 * parent can tell a restore from a fallback, and a pool start, which makes none, from a pool miss. Messages (parent → child,
 * answered with the same `type` plus `-done`): `mode`, `gc`, `starts` (the VM starts since the last ask).
 *
 * Prints one `ready <json ReadyInfo>` line on stdout once the socket is served and the template built.
 * SIGTERM: closes the server, removes the template and its /dev/shm memory, destroys the bridge (the
 * parent removes the pods over CRI first).
 */
import { join } from 'node:path';
import { ImageStore } from '../../src/runtime/images/store.js';
import { importArchive } from '../../src/runtime/images/import.js';
import { NodeRuntime } from '../../src/runtime/node-runtime.js';
import { DEFAULT_DISK_SLOTS } from '../../src/runtime/runv/disk-slots.js';
import { SHARE_TAG } from '../../src/runtime/runv/pod-vm.js';
import { TemplateCache } from '../../src/runtime/runv/template.js';
import { DEFAULT_MEMORY_MIB, MicroVm, type RestoreTimings, type VmOptions } from '../../src/runtime/runv/vm.js';

export interface RuntimeProcessOptions {
  socket: string;
  root: string;
  runDir: string;
  logRoot: string;
  cgroupParent: string;
  bridge: string;
  subnet: string;
  hostNetns: string;
  /** Where the guest kernel, images and accelerator choice are cached (shared with the tests). */
  runvCache: string;
  archives: string[];
}

export type StartMode = 'cold' | 'template' | 'pool';

export interface ReadyInfo {
  accel: string;
  templateKey: string;
  templateBuildMs: number;
  templateBuilt: boolean;
  templateMemoryFile: string;
  templateStateBytes: number;
  /** The template's (and so every pod's) guest memory. */
  memoryMiB: number;
  /** The guest kernel QEMU maps (-kernel). */
  kernelFile: string;
}

/** One runv VM start as the handler's startVm saw it. */
export interface VmStart {
  dir: string;
  /** QEMU's pid. */
  pid: number;
  mode: StartMode;
  /** Whether the VM is a template clone (false: a cold boot, also when a template start fell back). */
  restored: boolean;
  /** startVm's duration, ms, and when it began and ended (performance.timeOrigin + performance.now(), comparable across processes). */
  ms: number;
  began: number;
  ended: number;
  bootMs: number | null;
  restore: RestoreTimings | null;
}

export type ParentMessage = { type: 'mode'; mode: StartMode } | { type: 'gc' } | { type: 'starts' };
export type ChildMessage = { type: 'mode-done' } | { type: 'gc-done' } | { type: 'starts-done'; starts: VmStart[] };

const opts = JSON.parse(process.argv[2] ?? '{}') as RuntimeProcessOptions;
const log = (line: string) => process.stderr.write(`[bench/runv runtime] ${line}\n`);

const store = new ImageStore(join(opts.root, 'images'), { snapshots: join(opts.root, 'snapshots') });
for (const archive of opts.archives) await importArchive(store, archive);

const templates = new TemplateCache(opts.root, { log });
let mode: StartMode = 'cold';
let starts: VmStart[] = [];

async function startVm(options: VmOptions): Promise<MicroVm> {
  const at = mode;
  const began = performance.timeOrigin + performance.now();
  const vm = at === 'cold' ? await MicroVm.boot(options) : await templates.startVm(options);
  const ended = performance.timeOrigin + performance.now();
  starts.push({ dir: options.dir, pid: vm.pid, mode: at, restored: vm.restoreTimings !== null, ms: ended - began, began, ended, bootMs: vm.bootMs, restore: vm.restoreTimings });
  return vm;
}

const runtime = await NodeRuntime.start({
  socket: opts.socket,
  root: opts.root,
  runDir: opts.runDir,
  logRoot: opts.logRoot,
  cgroupParent: opts.cgroupParent,
  network: { bridge: opts.bridge, subnet: opts.subnet, hostNetns: opts.hostNetns, ipForward: true },
  runv: { cacheRoot: opts.runvCache, startVm, templates, pool: 0 },
  log,
});
const runv = runtime.runv!;
// The shape `atoll runtime template build` builds and a pod without a memory limit needs.
const { template, built } = await templates.ensure(
  { kernel: runv.kernel, images: runv.images, accel: runv.accel, memoryMiB: DEFAULT_MEMORY_MIB, diskSlots: DEFAULT_DISK_SLOTS, nic: true, shareTag: SHARE_TAG },
  { onProgress: (step) => log(`template: ${step}`) },
);
const ready: ReadyInfo = {
  accel: runv.accel, templateKey: template.key, templateBuildMs: template.buildMs, templateBuilt: built,
  templateMemoryFile: template.memoryFile, templateStateBytes: template.stateBytes, memoryMiB: template.memoryMiB,
  kernelFile: runv.kernel.vmlinux,
};
process.stdout.write(`ready ${JSON.stringify(ready)}\n`);

function reply(message: ChildMessage): void {
  process.send?.(message);
}

process.on('message', (message: ParentMessage) => {
  switch (message.type) {
    case 'mode':
      mode = message.mode;
      // A pool start must find its VM ready, as on a node that was idle since its last pod start.
      void (async () => {
        await runv.resizePool(mode === 'pool' ? 1 : 0);
        await runv.poolFull();
      })().then(() => reply({ type: 'mode-done' }), (err: Error) => log(`mode ${mode}: ${err.message}`));
      break;
    case 'gc':
      // A full GC before each memory sample (started with --expose-gc): the sample shows live memory,
      // not how much garbage V8 happened to hold at that instant.
      (globalThis as { gc?: () => void }).gc?.();
      reply({ type: 'gc-done' });
      break;
    case 'starts':
      reply({ type: 'starts-done', starts });
      starts = [];
      break;
  }
});

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  void (async () => {
    await runtime.close().catch((err: unknown) => log(`close: ${String(err)}`));
    await templates.close().catch((err: unknown) => log(`templates close: ${String(err)}`));
    await templates.removeAll().catch((err: unknown) => log(`templates remove: ${String(err)}`));
    await runtime.network.destroy().catch((err: unknown) => log(`network destroy: ${String(err)}`));
    process.exit(0);
  })();
});
