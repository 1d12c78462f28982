import { copyFile, mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { basename, join } from 'node:path';
import { runTool } from './command.js';

/**
 * The guest kernel is Debian's own: the package `linux-image-amd64` points at, fetched with
 * `apt-get download` and unpacked with `dpkg-deb -x`, never installed on the host. Debian builds the
 * virtio drivers and ext4 as modules, so the cache keeps those modules (with their dependencies,
 * minus the built-in ones) for the initramfs to load.
 *
 * The compressed bzImage is also unpacked to `vmlinux`, an ELF that QEMU boots directly through the
 * PVH entry point: under TCG, decompressing the kernel in the guest costs about 3 s of every cold boot.
 *
 * Layout: `<root>/runv/kernel/<version>/{vmlinuz, vmlinux, config, modules/*.ko, kernel.json}`. kernel.json is
 * written last and the directory appears by rename, so a present kernel.json means a complete entry.
 */

export const GUEST_KERNEL_META_PACKAGE = 'linux-image-amd64';
/**
 * Modules the guest needs: virtio-mmio transport (microvm), the agent's serial port, disks, NIC,
 * entropy, ext4, and 9p over virtio for hostPath volumes (the documented slow path). cgroups,
 * namespaces, tmpfs, devpts and seccomp, which runc needs, are built into Debian's kernel.
 */
export const GUEST_MODULES = ['virtio_mmio', 'virtio_console', 'virtio_blk', 'virtio_net', 'virtio_rng', 'ext4', 'crc32c_generic', '9p', '9pnet_virtio'] as const;
const RECORD = 'kernel.json';
/** Bumped when the cache entry's contents change, so older entries are rebuilt. */
const LAYOUT = 2;
/** The magic that opens an xz stream; a bzImage built with CONFIG_KERNEL_XZ carries one payload. */
const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

export interface GuestKernel {
  /** The versioned package, e.g. linux-image-6.1.0-56-amd64. */
  package: string;
  /** The Debian package version, e.g. 6.1.192-2. */
  version: string;
  /** What `uname -r` prints in the guest, e.g. 6.1.0-56-amd64. */
  release: string;
  dir: string;
  vmlinuz: string;
  /** The uncompressed kernel (ELF with a PVH entry), what the VM boots. */
  vmlinux: string;
  /** The kernel's build config. */
  config: string;
  /** Module files to load, dependencies first; modules built into the kernel are left out. */
  modules: string[];
}

interface KernelRecord { layout: number; package: string; version: string; release: string; wanted: string[]; modules: string[] }

export interface ProgressOptions { signal?: AbortSignal; onProgress?: (line: string) => void }

/** Returns the cached guest kernel for apt's current candidate, fetching and unpacking it on first use. */
export async function ensureGuestKernel(root: string, options: ProgressOptions = {}): Promise<GuestKernel> {
  const { pkg, version } = await resolveKernelPackage(options.signal);
  const base = join(root, 'runv', 'kernel');
  const dir = join(base, version);
  const cached = await readRecord(dir);
  if (cached && cached.package === pkg && cached.layout === LAYOUT && sameSet(cached.wanted, GUEST_MODULES)) return toKernel(dir, cached);

  await mkdir(base, { recursive: true });
  const work = await mkdtemp(join(base, '.fetch-'));
  try {
    options.onProgress?.(`runv: downloading ${pkg} ${version}`);
    await runTool('apt-get', ['download', '-q', `${pkg}=${version}`], { cwd: work, signal: options.signal });
    const deb = (await readdir(work)).find((name) => name.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${pkg}=${version} left no .deb in ${work}`);
    options.onProgress?.(`runv: unpacking ${deb}`);
    const tree = join(work, 'tree');
    await runTool('dpkg-deb', ['-x', join(work, deb), tree], { signal: options.signal });

    const releases = await readdir(join(tree, 'lib', 'modules'));
    if (releases.length !== 1) throw new Error(`${deb}: expected one directory under lib/modules, found ${releases.join(', ') || 'none'}`);
    const release = releases[0]!;
    const moduleTree = join(tree, 'lib', 'modules', release);
    const order = await moduleLoadOrder(moduleTree, GUEST_MODULES);

    const stage = join(work, 'stage');
    await mkdir(join(stage, 'modules'), { recursive: true });
    await copyFile(join(tree, 'boot', `vmlinuz-${release}`), join(stage, 'vmlinuz'));
    await copyFile(join(tree, 'boot', `config-${release}`), join(stage, 'config'));
    options.onProgress?.('runv: unpacking vmlinux from vmlinuz');
    await extractVmlinux(join(stage, 'vmlinuz'), join(stage, 'vmlinux'), options.signal);
    for (const file of order) await copyFile(join(moduleTree, file), join(stage, 'modules', basename(file)));
    const record: KernelRecord = { layout: LAYOUT, package: pkg, version, release, wanted: [...GUEST_MODULES], modules: order.map((file) => basename(file)) };
    await writeFile(join(stage, RECORD), JSON.stringify(record, null, 2));

    await rm(dir, { recursive: true, force: true });
    await rename(stage, dir);
    options.onProgress?.(`runv: guest kernel ${release} ready in ${dir}`);
    return toKernel(dir, record);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** The versioned kernel package linux-image-amd64 depends on, and apt's candidate version of it. */
export async function resolveKernelPackage(signal?: AbortSignal): Promise<{ pkg: string; version: string }> {
  const depends = await runTool('apt-cache', ['depends', GUEST_KERNEL_META_PACKAGE], { signal }).catch((err: Error) => {
    throw new Error(`cannot resolve the guest kernel: ${err.message} (run 'apt-get update' if apt does not know ${GUEST_KERNEL_META_PACKAGE})`);
  });
  const pkg = /Depends:\s*(linux-image-\S+-amd64)\b/.exec(depends)?.[1];
  if (!pkg) throw new Error(`cannot resolve the guest kernel: ${GUEST_KERNEL_META_PACKAGE} depends on no linux-image-*-amd64 package:\n${depends.trim()}`);
  const show = await runTool('apt-cache', ['show', '--no-all-versions', pkg], { signal });
  const version = /^Version:\s*(\S+)$/m.exec(show)?.[1];
  if (!version || !/^[\w.+~-]+$/.test(version)) throw new Error(`cannot resolve the guest kernel: apt-cache show ${pkg} gives no usable Version`);
  return { pkg, version };
}

/**
 * Resolves `wanted` module names to .ko paths (relative to `moduleTree`) in load order, dependencies
 * first, reading each module's `depends=` from its .modinfo section. Modules listed in
 * modules.builtin (the kernel config's `=y` drivers) need no loading and are skipped.
 */
export async function moduleLoadOrder(moduleTree: string, wanted: readonly string[]): Promise<string[]> {
  const builtin = new Set((await readFile(join(moduleTree, 'modules.builtin'), 'utf8')).split('\n').filter(Boolean).map(moduleName));
  const files = new Map<string, string>();
  for (const entry of await readdir(join(moduleTree, 'kernel'), { recursive: true })) {
    if (entry.endsWith('.ko')) files.set(moduleName(entry), join('kernel', entry));
  }
  const order: string[] = [];
  const visiting = new Set<string>();
  const done = new Set<string>();
  const visit = async (name: string, neededBy: string): Promise<void> => {
    if (done.has(name) || builtin.has(name)) return;
    if (visiting.has(name)) throw new Error(`module dependency cycle through ${name}`);
    const file = files.get(name);
    if (!file) throw new Error(`guest kernel has no module '${name}' (needed by ${neededBy}) under ${moduleTree}`);
    visiting.add(name);
    for (const dep of modinfoDepends(await readFile(join(moduleTree, file)))) await visit(dep, name);
    visiting.delete(name);
    done.add(name);
    order.push(file);
  };
  for (const name of wanted) await visit(moduleName(name), 'the guest');
  return order;
}

/**
 * Unpacks the ELF kernel inside an xz-compressed bzImage (what Debian builds), as the kernel's own
 * scripts/extract-vmlinux does: find the xz stream and decompress the first one.
 */
export async function extractVmlinux(bzImage: string, out: string, signal?: AbortSignal): Promise<void> {
  const image = await readFile(bzImage);
  const at = image.indexOf(XZ_MAGIC);
  if (at < 0) throw new Error(`${bzImage}: no xz-compressed payload found (a kernel built without CONFIG_KERNEL_XZ is not supported)`);
  const fd = openSync(out, 'w');
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn('xz', ['-dc', '--single-stream'], { stdio: ['pipe', fd, 'pipe'], signal });
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
      child.once('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code === 'ENOENT' ? "xz is not installed (run 'bash scripts/deps')" : `xz: ${err.message}`)));
      child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`xz -dc of ${bzImage}'s payload failed: ${stderr.trim() || `exit ${code}`}`))));
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(image.subarray(at));
    });
  } finally {
    closeSync(fd);
  }
  const head = (await readFile(out)).subarray(0, ELF_MAGIC.length);
  if (!head.equals(ELF_MAGIC)) throw new Error(`${bzImage}: the decompressed payload is not an ELF kernel`);
}

/** The module names in a .ko's `depends=` modinfo entry. */
export function modinfoDepends(ko: Buffer): string[] {
  const key = Buffer.from('\0depends=');
  const at = ko.indexOf(key);
  if (at < 0) return [];
  const end = ko.indexOf(0, at + key.length);
  return ko.subarray(at + key.length, end < 0 ? undefined : end).toString('utf8').split(',').filter(Boolean).map(moduleName);
}

function moduleName(path: string): string {
  return basename(path).replace(/\.ko(\.\w+)?$/, '').replace(/-/g, '_');
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((item) => b.includes(item));
}

async function readRecord(dir: string): Promise<KernelRecord | null> {
  try {
    return JSON.parse(await readFile(join(dir, RECORD), 'utf8')) as KernelRecord;
  } catch {
    return null;
  }
}

function toKernel(dir: string, record: KernelRecord): GuestKernel {
  return {
    package: record.package, version: record.version, release: record.release, dir,
    vmlinuz: join(dir, 'vmlinuz'), vmlinux: join(dir, 'vmlinux'), config: join(dir, 'config'), modules: record.modules.map((name) => join(dir, 'modules', name)),
  };
}
