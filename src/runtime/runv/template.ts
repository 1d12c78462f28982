import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { runTool } from './command.js';
import { DEFAULT_DISK_SLOTS, type DiskSlotCounts } from './disk-slots.js';
import type { GuestImages } from './guest-image.js';
import type { GuestKernel } from './guest-kernel.js';
import { hostTscKhz } from './tsc.js';
import { DEFAULT_MEMORY_MIB, MicroVm, QEMU, qemuArgs, type Accelerator, type SavedVm, type VmOptions } from './vm.js';
import { fsyncPath } from '../../apiserver/auth/atomic-file.js';

/**
 * VM templates: a runv sandbox starts by restoring a saved VM instead of booting one.
 *
 * A template is one VM booted to a running, warmed-up guest agent and then saved: its RAM stays in a
 * memory-backend-file on /dev/shm (mapped shared while it ran), and its device state, some tens of
 * KiB, goes to a file (vm.ts save(), migration.ts). A clone maps that RAM private, copy-on-write, loads
 * the device state and runs on from there (vm.ts restore()): no firmware, no kernel boot, no Node
 * start-up. Clones share every page they do not write.
 *
 * A clone must have exactly the template's devices, so a template serves one *shape*: kernel, agent
 * disk and initramfs, memory size, accelerator, disk-slot layout, and whether there is a NIC and a 9p
 * share. The per-pod parts are placeholders in the template whose backends each clone replaces: the
 * disk slots are empty (disk-slots.ts); the NIC's backend is a tap QEMU creates in a network namespace
 * of its own, where nothing is reachable, and a clone's is the pod's tap; the share's directory is an
 * empty one, never mounted (a mounted 9p share would block the save), and a clone's is the pod's.
 *
 * Lifecycle, under one runtime root:
 *
 *   const templates = new TemplateCache(root);
 *   await templates.ensure(shape, { onProgress });       // builds unless a current template exists
 *   const vm = await templates.startVm(vmOptions);       // a clone if a template fits, else a cold boot
 *   await templates.close();                             // stops background rebuilds
 *
 * Each template lives in `<root>/runv/templates/<key>/` (template.json, state.bin, share/), its memory
 * in `/dev/shm/atoll-runv-<root tag>/<key>-<build>.mem`; the key is a hash of everything the saved
 * state depends on (see key()). A build happens in a temporary directory that is renamed into place,
 * so a template is complete or absent; callers in one process asking for the same key share one build,
 * and of two processes building the same key, the first rename wins and the other discards its copy.
 * When inputs change (a new agent, kernel or QEMU), the key changes: startVm cold boots, rebuilds the
 * shape's template in the background, and the finished build removes the out-of-date one. /dev/shm
 * does not survive a reboot: a template whose memory file is gone is rebuilt like an out-of-date one.
 */

/** The layout of a template directory and its template.json; a template of another format is rebuilt. */
export const TEMPLATE_FORMAT = 1;
/** The template NIC's MAC: locally administered, and replaced in every clone. */
export const TEMPLATE_MAC = '02:00:00:00:00:01';
/** Memory sizes a template may have: the agent needs more than the lower bound, and /dev/shm must hold the upper. */
export const MIN_TEMPLATE_MEMORY_MIB = 128;
export const MAX_TEMPLATE_MEMORY_MIB = 32 * 1024;
/** A build directory untouched for this long belongs to a build that died; its leftovers are removed. */
export const BUILD_STALE_MS = 60 * 60_000;
const SHM_ROOT = '/dev/shm';
/** The warm-up's seed: the agent's minimum, since the template's randomness is replaced in every clone anyway. */
const IDENTITY_SEED_BYTES = 32;
/**
 * The network the warm-up gives the template's NIC, as a pod's would be, and takes off again: an
 * address and gateway from TEST-NET-1 (RFC 5737), in the template's netns where nothing is reachable.
 */
const WARM_UP_NETWORK = { mtu: 1500, addresses: ['192.0.2.2/24'], routes: [{ dest: 'default', gateway: '192.0.2.1' }] };
const TEMPLATE_TAP = 'tap0';
const MANIFEST = 'template.json';
const STATE_FILE = 'state.bin';
const SHARE_DIR = 'share';
const BUILD_PREFIX = '.build-';
const REMOVE_PREFIX = '.remove-';
const MIB = 1024 * 1024;
/** The hash of a template's inputs, in hex: long enough that two inputs never meet. */
const KEY_LENGTH = 24;
const KEY = new RegExp(`^[0-9a-f]{${KEY_LENGTH}}$`);

/** What a template serves: the VM a clone will be, apart from its per-pod backends. */
export interface TemplateShape {
  kernel: GuestKernel;
  images: GuestImages;
  accel: Accelerator;
  memoryMiB: number;
  diskSlots: DiskSlotCounts;
  nic: boolean;
  /** The 9p share's mount tag, or null for a VM without a share. */
  shareTag: string | null;
}

/** A template ready to restore. */
export interface VmTemplate extends SavedVm {
  key: string;
  dir: string;
  /** ISO time of the build. */
  builtAt: string;
  buildMs: number;
  stateBytes: number;
}

export type TemplateLookup =
  | { template: VmTemplate; reason?: undefined; stale?: undefined }
  | { template: null; reason: string; /** A template of this shape exists but its inputs changed. */ stale: boolean };

export interface BuildOptions {
  signal?: AbortSignal;
  /** Called with each step of a build, in words. */
  onProgress?: (step: string) => void;
}

/** The parts of a shape that two templates are compared by when one replaces the other. */
interface ShapeLabel { memoryMiB: number; accel: Accelerator; diskSlots: DiskSlotCounts; nic: boolean; shareTag: string | null }

interface Manifest {
  format: number;
  key: string;
  shape: ShapeLabel;
  memoryFile: string;
  nicMac: string | null;
  stateBytes: number;
  builtAt: string;
  buildMs: number;
}

export class TemplateError extends Error {
  override name = 'TemplateError';
}

export class TemplateCache {
  /** `<root>/runv/templates`. */
  readonly dir: string;
  /** Where the templates' memory files live: tmpfs, so that clones map RAM, not disk. */
  readonly shmDir: string;
  private readonly builds = new Map<string, Promise<{ template: VmTemplate; built: boolean }>>();
  private readonly background = new Set<Promise<void>>();
  private readonly closing = new AbortController();
  private readonly log: (line: string) => void;
  private readonly cloneTbSizeMiB: number | undefined;

  /**
   * `log` gets why a VM was cold booted and what background rebuilds do (default: stderr);
   * `cloneTbSizeMiB` is the clones' TCG code cache (default: vm.ts's CLONE_TB_SIZE_MIB).
   */
  constructor(root: string, options: { log?: (line: string) => void; cloneTbSizeMiB?: number } = {}) {
    const absolute = resolve(root);
    this.dir = join(absolute, 'runv', 'templates');
    this.shmDir = join(SHM_ROOT, `atoll-runv-${createHash('sha256').update(absolute).digest('hex').slice(0, 12)}`);
    this.log = options.log ?? ((line) => console.error(line));
    this.cloneTbSizeMiB = options.cloneTbSizeMiB;
  }

  /**
   * The template key of `shape`: a hash of the template format, QEMU's version, the guest kernel's
   * version, the kernel, initramfs and agent disk files (path, size, modification time; their names
   * already carry hashes of their contents), the template VM's QEMU command line with its per-build
   * paths fixed (so any change to the device set or the boot changes it), and under TCG the host's TSC
   * rate (tsc.ts): a guest keeps the rate it booted with, so a template from a host with another rate
   * would give every clone a clock off by the difference.
   */
  async key(shape: TemplateShape): Promise<string> {
    const files = await Promise.all([shape.kernel.vmlinux, shape.images.initramfs, shape.images.agentDisk].map(async (file) => {
      const info = await stat(file);
      return [file, info.size, info.mtimeMs];
    }));
    const argv = qemuArgs(templateVmOptions(shape, '/template', '/template.mem'));
    const tscKhz = shape.accel === 'tcg' ? hostTscKhz() : null;
    const inputs = { format: TEMPLATE_FORMAT, qemu: await qemuVersion(), kernel: shape.kernel.version, files, argv, tscKhz };
    return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, KEY_LENGTH);
  }

  /** The current template of `shape` if there is a complete one; otherwise why not. Builds nothing. */
  async find(shape: TemplateShape): Promise<TemplateLookup> {
    validateShape(shape);
    const key = await this.key(shape);
    const label = shapeLabel(shape);
    const manifest = await this.readManifest(key);
    if (manifest === null) {
      const others = await this.templatesOf(label);
      const what = describe(label);
      return others.length > 0
        ? { template: null, reason: `the template for ${what} is out of date (its kernel, agent, QEMU or device set changed)`, stale: true }
        : { template: null, reason: `no template for ${what}`, stale: false };
    }
    if (manifest instanceof Error) return { template: null, reason: `template ${key} is damaged: ${manifest.message}`, stale: true };
    const dir = join(this.dir, key);
    const problem = await checkFiles(manifest, shape, join(dir, STATE_FILE));
    if (problem) return { template: null, reason: `template ${key} is damaged: ${problem}`, stale: true };
    return {
      template: {
        key, dir, kernel: shape.kernel, images: shape.images, accel: shape.accel, memoryMiB: shape.memoryMiB, diskSlots: shape.diskSlots,
        nicMac: manifest.nicMac, shareTag: shape.shareTag, memoryFile: manifest.memoryFile, stateFile: join(dir, STATE_FILE),
        builtAt: manifest.builtAt, buildMs: manifest.buildMs, stateBytes: manifest.stateBytes,
      },
    };
  }

  /**
   * The current template of `shape`, built first unless there is one. Callers asking for the same
   * template while it is being built share that build (and its first caller's signal and progress).
   */
  async ensure(shape: TemplateShape, options: BuildOptions = {}): Promise<{ template: VmTemplate; built: boolean }> {
    validateShape(shape);
    const key = await this.key(shape);
    let build = this.builds.get(key);
    if (!build) {
      build = (async () => {
        const found = await this.find(shape);
        if (found.template) return { template: found.template, built: false };
        return { template: await this.build(shape, key, options), built: true };
      })().finally(() => this.builds.delete(key));
      this.builds.set(key, build);
    }
    return build;
  }

  /**
   * Starts a pod's VM (the handler's StartVm): a clone of the template that fits `options`, or a cold
   * boot when none does (no template of that memory size or device set, an out-of-date one, another
   * accelerator) or when the restore fails. An out-of-date template is rebuilt in the background, for
   * the next start.
   */
  async startVm(options: VmOptions): Promise<MicroVm> {
    if (options.memoryFile || options.isolatedNetwork) return MicroVm.boot(options);
    const shape = shapeOf(options);
    const found = await this.find(shape).catch((err: Error): TemplateLookup => ({ template: null, reason: `the template lookup failed: ${err.message}`, stale: false }));
    if (found.template) {
      try {
        return await MicroVm.restore(found.template, {
          dir: options.dir, netns: options.netns, nic: options.nic, share: options.share, hostname: options.hostname, network: options.network,
          signal: options.signal, tbSizeMiB: this.cloneTbSizeMiB,
        });
      } catch (err) {
        this.log(`runv: cold boot of ${options.dir}: restoring template ${found.template.key} failed: ${(err as Error).message}`);
      }
    } else {
      this.log(`runv: cold boot of ${options.dir}: ${found.reason}`);
      this.buildInBackground(shape);
    }
    return MicroVm.boot(options);
  }

  /** Stops background rebuilds and waits for them. Templates stay. */
  async close(): Promise<void> {
    this.closing.abort();
    await Promise.all(this.background);
  }

  /** Removes every template of this root and their memory files; for tests and for a clean uninstall. */
  async removeAll(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
    await rm(this.shmDir, { recursive: true, force: true });
  }

  private buildInBackground(shape: TemplateShape): void {
    if (this.closing.signal.aborted) return;
    const rebuild = this.ensure(shape, { signal: this.closing.signal, onProgress: (step) => this.log(`runv: building a template: ${step}`) }).then(
      ({ template }) => this.log(`runv: template ${template.key} (${describe(shapeLabel(shape))}) built in ${template.buildMs} ms`),
      (err: Error) => {
        if (!this.closing.signal.aborted) this.log(`runv: building the template for ${describe(shapeLabel(shape))} failed: ${err.message}`);
      },
    );
    this.background.add(rebuild);
    void rebuild.finally(() => this.background.delete(rebuild));
  }

  private async build(shape: TemplateShape, key: string, options: BuildOptions): Promise<VmTemplate> {
    const progress = options.onProgress ?? (() => undefined);
    await mkdir(this.dir, { recursive: true });
    await mkdir(this.shmDir, { recursive: true, mode: 0o700 });
    await this.collectGarbage();
    // find() found this key unusable (damaged, or its memory file gone with a reboot): it makes way.
    if (await stat(join(this.dir, key)).then(() => true, () => false)) await this.removeTemplate(key);
    const work = await mkdtemp(join(this.dir, `${BUILD_PREFIX}${key}-`));
    const memoryFile = join(this.shmDir, `${basename(work).slice(BUILD_PREFIX.length)}.mem`);
    const began = Date.now();
    let vm: MicroVm | undefined;
    try {
      if (shape.shareTag !== null) await mkdir(join(work, SHARE_DIR));
      progress(`booting the template VM (${describe(shapeLabel(shape))})`);
      vm = await MicroVm.boot({ ...templateVmOptions(shape, work, memoryFile), signal: options.signal });
      progress(`warming up the guest agent (booted in ${vm.bootMs} ms)`);
      await warmUp(vm, shape);
      options.signal?.throwIfAborted();
      progress('saving the device state');
      const stateBytes = await vm.save(join(work, STATE_FILE), options.signal);
      await vm.stop();
      vm = undefined;
      const manifest: Manifest = {
        format: TEMPLATE_FORMAT, key, shape: shapeLabel(shape), memoryFile, nicMac: shape.nic ? TEMPLATE_MAC : null,
        stateBytes, builtAt: new Date().toISOString(), buildMs: Date.now() - began,
      };
      await writeSynced(join(work, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
      const final = join(this.dir, key);
      try {
        await rename(work, final);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOTEMPTY' && (err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        // Another process built the same template first; its copy is as good as ours.
        await rm(work, { recursive: true, force: true });
        await rm(memoryFile, { force: true });
        const found = await this.find(shape);
        if (found.template) return found.template;
        throw new TemplateError(`template ${key} was built by another process, but ${found.reason}`);
      }
      await fsyncPath(this.dir);
      await this.removeOutdated(manifest.shape, key);
      const found = await this.find(shape);
      if (!found.template) throw new TemplateError(`template ${key} was built, but ${found.reason}`);
      progress(`template ${key} ready: built in ${manifest.buildMs} ms, ${stateBytes} bytes of device state`);
      return found.template;
    } catch (err) {
      await vm?.stop().catch(() => undefined);
      await rm(work, { recursive: true, force: true });
      await rm(memoryFile, { force: true });
      throw err;
    }
  }

  /** template.json of `key`: null when there is none, an Error when it cannot be trusted. */
  private async readManifest(key: string): Promise<Manifest | Error | null> {
    let text: string;
    try {
      text = await readFile(join(this.dir, key, MANIFEST), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      return err as Error;
    }
    return parseManifest(text, key, this.shmDir);
  }

  /** Keys of the complete templates whose shape is `label`. */
  private async templatesOf(label: ShapeLabel): Promise<string[]> {
    const keys: string[] = [];
    for (const key of await listKeys(this.dir)) {
      const manifest = await this.readManifest(key);
      if (manifest && !(manifest instanceof Error) && sameShape(manifest.shape, label)) keys.push(key);
    }
    return keys;
  }

  /** Removes the templates of `label` other than `keep`: a new build of the shape replaced them. */
  private async removeOutdated(label: ShapeLabel, keep: string): Promise<void> {
    for (const key of await this.templatesOf(label)) {
      if (key !== keep) await this.removeTemplate(key);
    }
  }

  /**
   * Removes `key`'s template: renamed out of the way first, so that it is never seen half-removed. A
   * running clone keeps its mapping of the memory file; only new restores lose the template.
   */
  private async removeTemplate(key: string): Promise<void> {
    const manifest = await this.readManifest(key);
    const doomed = join(this.dir, `${REMOVE_PREFIX}${key}`);
    await rm(doomed, { recursive: true, force: true });
    await rename(join(this.dir, key), doomed);
    if (manifest && !(manifest instanceof Error)) await rm(manifest.memoryFile, { force: true });
    await rm(doomed, { recursive: true, force: true });
  }

  /**
   * Removes what died builds and removals left: build directories untouched for BUILD_STALE_MS,
   * half-removed templates, and memory files that neither a template nor a build in progress owns.
   */
  private async collectGarbage(): Promise<void> {
    const entries = await readdir(this.dir).catch(() => [] as string[]);
    for (const name of entries) {
      const path = join(this.dir, name);
      if (name.startsWith(REMOVE_PREFIX)) {
        await rm(path, { recursive: true, force: true });
      } else if (name.startsWith(BUILD_PREFIX)) {
        const info = await stat(path).catch(() => null);
        if (info && Date.now() - info.mtimeMs > BUILD_STALE_MS) await rm(path, { recursive: true, force: true });
      }
    }
    const owned = new Set<string>();
    for (const key of await listKeys(this.dir)) {
      const manifest = await this.readManifest(key);
      if (manifest && !(manifest instanceof Error)) owned.add(manifest.memoryFile);
    }
    const building = new Set((await readdir(this.dir).catch(() => [] as string[])).filter((n) => n.startsWith(BUILD_PREFIX)).map((n) => n.slice(BUILD_PREFIX.length)));
    for (const file of await readdir(this.shmDir).catch(() => [] as string[])) {
      const path = join(this.shmDir, file);
      if (!owned.has(path) && !building.has(file.replace(/\.mem$/, ''))) await rm(path, { force: true });
    }
  }
}

/** The template shape a VM with `options` needs. */
export function shapeOf(options: VmOptions): TemplateShape {
  return {
    kernel: options.kernel, images: options.images, accel: options.accel, memoryMiB: options.memoryMiB ?? DEFAULT_MEMORY_MIB,
    diskSlots: options.diskSlots ?? DEFAULT_DISK_SLOTS, nic: options.nic !== undefined, shareTag: options.share?.tag ?? null,
  };
}

/** The template VM of `shape`, in `dir`, with its RAM in `memoryFile`. */
function templateVmOptions(shape: TemplateShape, dir: string, memoryFile: string): VmOptions {
  return {
    dir: join(dir, 'vm'), kernel: shape.kernel, images: shape.images, accel: shape.accel, memoryMiB: shape.memoryMiB, diskSlots: shape.diskSlots,
    memoryFile: { path: memoryFile, shared: true },
    isolatedNetwork: true,
    ...(shape.nic ? { nic: { tap: TEMPLATE_TAP, mac: TEMPLATE_MAC } } : {}),
    ...(shape.shareTag !== null ? { share: { dir: join(dir, SHARE_DIR), tag: shape.shareTag } } : {}),
  };
}

/**
 * Runs, in the template, each agent op a clone's start runs, so that the guest's Node has compiled
 * their code and the guest's page cache holds the binaries they start: every clone then shares that
 * work instead of redoing it under TCG. Leaves no call in flight (save() needs that).
 */
async function warmUp(vm: MicroVm, shape: TemplateShape): Promise<void> {
  const { agent } = vm;
  for (let round = 0; round < 2; round++) {
    // A clone's restore() asks for this (vm.ts giveIdentity), network included; the first call also
    // starts the agent's resident perl process, so clones have it running.
    await agent.call('identity', {
      epochMs: Date.now(), seed: randomBytes(IDENTITY_SEED_BYTES).toString('base64'), hostname: 'runv',
      ...(shape.nic ? { mac: { from: TEMPLATE_MAC, to: TEMPLATE_MAC }, network: { mac: TEMPLATE_MAC, ...WARM_UP_NETWORK } } : {}),
    });
    await agent.call('stats', {});
    const out = await agent.exec(['sh', '-c', 'ip link show >/dev/null && cat /sys/class/net/*/address >/dev/null']);
    if (out.exitCode !== 0) throw new TemplateError(`warming up the template guest failed: ${out.stderr.toString().trim()}`);
    // Clones start from a NIC with nothing on it: down, no address, and so no route.
    if (shape.nic) await agent.call('interface', { mac: TEMPLATE_MAC, addresses: [], up: false });
  }
}

function validateShape(shape: TemplateShape): void {
  const { memoryMiB } = shape;
  if (!Number.isInteger(memoryMiB) || memoryMiB < MIN_TEMPLATE_MEMORY_MIB || memoryMiB > MAX_TEMPLATE_MEMORY_MIB) {
    throw new TemplateError(`a template's memory must be a whole number of MiB from ${MIN_TEMPLATE_MEMORY_MIB} to ${MAX_TEMPLATE_MEMORY_MIB}, got ${memoryMiB}`);
  }
}

function shapeLabel(shape: TemplateShape): ShapeLabel {
  return { memoryMiB: shape.memoryMiB, accel: shape.accel, diskSlots: { writable: shape.diskSlots.writable, readonly: shape.diskSlots.readonly }, nic: shape.nic, shareTag: shape.shareTag };
}

function sameShape(a: ShapeLabel, b: ShapeLabel): boolean {
  return a.memoryMiB === b.memoryMiB && a.accel === b.accel && a.diskSlots.writable === b.diskSlots.writable &&
    a.diskSlots.readonly === b.diskSlots.readonly && a.nic === b.nic && a.shareTag === b.shareTag;
}

function describe(label: ShapeLabel): string {
  const devices = [label.nic ? 'a NIC' : 'no NIC', label.shareTag === null ? 'no share' : `share ${label.shareTag}`];
  return `${label.memoryMiB} MiB, ${label.accel}, ${label.diskSlots.writable}+${label.diskSlots.readonly} disk slots, ${devices.join(', ')}`;
}

/** Checks template.json as read back from disk: every field, and that the memory file is one of ours. */
function parseManifest(text: string, key: string, shmDir: string): Manifest | Error {
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    return new Error(`${MANIFEST} is not JSON: ${(err as Error).message}`);
  }
  if (typeof m !== 'object' || m === null) return new Error(`${MANIFEST} is not an object`);
  if (m.format !== TEMPLATE_FORMAT) return new Error(`${MANIFEST} has format ${JSON.stringify(m.format)}, this runtime writes ${TEMPLATE_FORMAT}`);
  if (m.key !== key) return new Error(`${MANIFEST} names key ${JSON.stringify(m.key)}`);
  const shape = m.shape as Partial<ShapeLabel> | undefined;
  const slots = shape?.diskSlots as Partial<DiskSlotCounts> | undefined;
  if (typeof shape !== 'object' || shape === null || !Number.isInteger(shape.memoryMiB) || (shape.accel !== 'kvm' && shape.accel !== 'tcg') ||
    typeof slots !== 'object' || slots === null || !Number.isInteger(slots.writable) || !Number.isInteger(slots.readonly) ||
    typeof shape.nic !== 'boolean' || (shape.shareTag !== null && typeof shape.shareTag !== 'string')) {
    return new Error(`${MANIFEST} has no valid shape`);
  }
  if (typeof m.memoryFile !== 'string' || !m.memoryFile.startsWith(`${shmDir}/`) || !m.memoryFile.endsWith('.mem')) return new Error(`${MANIFEST} names memory file ${JSON.stringify(m.memoryFile)}, not one under ${shmDir}`);
  if (m.nicMac !== null && (typeof m.nicMac !== 'string' || !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(m.nicMac))) return new Error(`${MANIFEST} has no valid nicMac`);
  if (!Number.isSafeInteger(m.stateBytes) || (m.stateBytes as number) <= 0) return new Error(`${MANIFEST} has no valid stateBytes`);
  if (typeof m.builtAt !== 'string' || !Number.isSafeInteger(m.buildMs)) return new Error(`${MANIFEST} has no valid builtAt/buildMs`);
  return m as unknown as Manifest;
}

/** Why the files of a template do not match its manifest and shape, or null. */
async function checkFiles(manifest: Manifest, shape: TemplateShape, stateFile: string): Promise<string | null> {
  if (!sameShape(manifest.shape, shapeLabel(shape))) return `${MANIFEST} describes ${describe(manifest.shape)}`;
  if ((manifest.nicMac !== null) !== shape.nic) return `${MANIFEST} ${shape.nic ? 'has no' : 'has a'} NIC MAC`;
  const memory = await stat(manifest.memoryFile).catch(() => null);
  if (!memory) return `its memory file ${manifest.memoryFile} is gone (/dev/shm is emptied at reboot)`;
  if (memory.size !== shape.memoryMiB * MIB) return `its memory file ${manifest.memoryFile} is ${memory.size} bytes, not ${shape.memoryMiB} MiB`;
  const state = await stat(stateFile).catch(() => null);
  if (state?.size !== manifest.stateBytes) return `its state file ${stateFile} is ${state ? `${state.size} bytes, not ${manifest.stateBytes}` : 'missing'}`;
  return null;
}

/** The template keys present in `dir` (complete templates: no build or removal in progress). */
async function listKeys(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).filter((name) => KEY.test(name));
}

let qemuVersionText: Promise<string> | undefined;

/** QEMU's version line: a template saved by one QEMU is not restored by another. Asked once per process. */
function qemuVersion(): Promise<string> {
  qemuVersionText ??= runTool(QEMU, ['--version']).then((out) => out.split('\n')[0]!.trim());
  qemuVersionText.catch(() => (qemuVersionText = undefined));
  return qemuVersionText;
}

async function writeSynced(path: string, text: string): Promise<void> {
  const handle = await open(path, 'w');
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

