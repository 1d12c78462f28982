import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTool } from './command.js';
import type { GuestKernel, ProgressOptions } from './guest-kernel.js';

/**
 * What a runv guest boots: an initramfs (busybox-static, the kernel's modules, /init) and a read-only
 * ext4 "agent disk" carrying Node, runc, conmon and util-linux's script with the libraries they link,
 * and the guest agent. The agent travels on a block device, not a 9p share, because a mounted 9p share
 * blocks saving a VM template (DESIGN.md).
 *
 * Both are cached under `<root>/runv/images/`, named by a hash of their inputs, and appear by rename.
 */

export const BUSYBOX = '/usr/bin/busybox';
export const NODE = '/usr/bin/node';
/**
 * Host binaries the guest runs from the same paths: Node runs the agent; runc and conmon run the
 * containers (the agent drives them through the same RuncHandler as runc pods); util-linux's script
 * gives a tty exec its terminal, as on the host; perl makes the system calls Node has no API for
 * (guest/syscalls.ts), with builtins only, so none of its library modules is needed.
 */
export const GUEST_BINARIES = [NODE, '/usr/sbin/runc', '/usr/bin/conmon', '/usr/bin/script', '/usr/bin/perl'] as const;
/** The agent disk's filesystem label; /init mounts the disk by it, whatever its position on the bus. */
export const AGENT_DISK_LABEL = 'atoll-agent';
/** Free space left on the agent disk beyond its files, so mkfs's metadata always fits. */
const AGENT_DISK_SLACK_BYTES = 16 * 1024 * 1024;
/** The compiled `src/` tree; the agent disk keeps its layout under /atoll, so relative imports resolve. */
const SOURCE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The agent's entry module, relative to SOURCE_ROOT. */
export const AGENT_ENTRY = 'runtime/runv/guest-agent.js';
const AGENT_DIR = '/agent/atoll';
/**
 * Node's flags for the guest agent. `--jitless`: V8 compiles no code, so the agent runs on the
 * interpreter and builtins. Under TCG each clone of a template translates anew all guest code it runs,
 * and V8's compiled code adds to that code, and is written to guest RAM, a clone's private copy: with
 * the flag, ten clones (tb-size 32, no huge pages) each filled 23 MiB of code cache instead of 27 and
 * wrote 3.5 MiB of their guest RAM instead of 4.2, and a guest exec after a restore took p50 ~320 ms
 * instead of ~560 ms. The agent uses no WebAssembly, which the flag turns off.
 */
const GUEST_NODE_FLAGS: readonly string[] = ['--jitless'];

/**
 * PID 1 of the guest. It first moves the root from the initramfs to a tmpfs and starts again there:
 * runc's pivot_root cannot leave an initramfs root (pivot_root(2) refuses the rootfs mount). It then
 * mounts the kernel filesystems and the cgroup v2 tree runc and conmon use, loads the modules, mounts
 * the agent disk read-only, links its /usr and /lib into the root so its binaries find their loader and
 * libraries, and keeps the agent running. PATH puts /usr first: util-linux's script, not busybox's.
 */
const INIT_SCRIPT = `#!/bin/busybox sh
if [ ! -e /.tmpfs-root ]; then
  /bin/busybox mkdir /newroot
  /bin/busybox mount -t tmpfs -o mode=0755 tmpfs /newroot
  /bin/busybox cp -a /bin /modules /init /newroot/
  /bin/busybox touch /newroot/.tmpfs-root
  exec /bin/busybox switch_root /newroot /init
fi
/bin/busybox --install -s /bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /proc /sys /dev /tmp /run /agent
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
for m in $(cat /modules/order); do insmod /modules/$m || echo "init: insmod $m failed"; done
rm -rf /modules
ip link set lo up
disk=$(findfs LABEL=${AGENT_DISK_LABEL}) || { echo "init: no disk labelled ${AGENT_DISK_LABEL}"; poweroff -f; }
mount -t ext4 -o ro "$disk" /agent || { echo "init: cannot mount $disk"; poweroff -f; }
for d in usr lib lib64; do ln -s /agent/$d /$d; done
hostname runv
echo "init: starting guest agent"
while :; do
  /usr/bin/node ${GUEST_NODE_FLAGS.join(' ')} ${AGENT_DIR}/${AGENT_ENTRY}
  echo "init: guest agent exited with $?, restarting"
  sleep 1
done
`;

export interface GuestImages { initramfs: string; agentDisk: string }

/** Builds (or finds cached) the initramfs for `kernel` and the agent disk. */
export async function ensureGuestImages(root: string, kernel: GuestKernel, options: ProgressOptions = {}): Promise<GuestImages> {
  return { initramfs: await ensureInitramfs(root, kernel, options), agentDisk: await ensureAgentDisk(root, options) };
}

export async function ensureInitramfs(root: string, kernel: GuestKernel, options: ProgressOptions = {}): Promise<string> {
  const key = createHash('sha256').update(INIT_SCRIPT).update(kernel.release).update(kernel.modules.map((m) => basename(m)).join(',')).update(await readFile(BUSYBOX)).digest('hex').slice(0, 16);
  const target = join(root, 'runv', 'images', `initramfs-${kernel.release}-${key}.cpio.gz`);
  if (await exists(target)) return target;
  options.onProgress?.(`runv: building initramfs ${basename(target)}`);
  return buildInto(target, async (work) => {
    const tree = join(work, 'tree');
    await mkdir(join(tree, 'bin'), { recursive: true });
    await mkdir(join(tree, 'modules'));
    await copyFile(BUSYBOX, join(tree, 'bin', 'busybox'));
    await chmod(join(tree, 'bin', 'busybox'), 0o755);
    await symlink('busybox', join(tree, 'bin', 'sh'));
    for (const module of kernel.modules) await copyFile(module, join(tree, 'modules', basename(module)));
    await writeFile(join(tree, 'modules', 'order'), kernel.modules.map((m) => basename(m)).join('\n') + '\n');
    await writeFile(join(tree, 'init'), INIT_SCRIPT, { mode: 0o755 });
    const list = await runTool('find', ['.', '-mindepth', '1'], { cwd: tree });
    const archive = join(work, 'initramfs.cpio');
    await runTool('cpio', ['--quiet', '-o', '-H', 'newc', '-R', '0:0', '-O', archive], { cwd: tree, input: Buffer.from(list), signal: options.signal });
    await runTool('gzip', ['-6', archive], { signal: options.signal });
    return `${archive}.gz`;
  });
}

export async function ensureAgentDisk(root: string, options: ProgressOptions = {}): Promise<string> {
  const modules = await agentModules();
  const hash = createHash('sha256').update(INIT_SCRIPT).update(process.version);
  for (const binary of GUEST_BINARIES) {
    const info = await stat(binary).catch(() => {
      throw new Error(`${binary} is missing; the runv agent disk carries it (run 'bash scripts/deps')`);
    });
    hash.update(`${binary}:${info.size}:${info.mtimeMs}`);
  }
  for (const module of modules) hash.update(module).update(await readFile(join(SOURCE_ROOT, module)));
  const target = join(root, 'runv', 'images', `agent-${hash.digest('hex').slice(0, 16)}.ext4`);
  if (await exists(target)) return target;
  options.onProgress?.(`runv: building agent disk ${basename(target)} (node, runc, conmon, perl and their libraries)`);
  return buildInto(target, async (work) => {
    const tree = join(work, 'tree');
    const libraries = new Set<string>();
    for (const binary of GUEST_BINARIES) for (const library of await sharedLibraries(binary)) libraries.add(library);
    for (const file of [...GUEST_BINARIES, ...libraries]) {
      await mkdir(join(tree, dirname(file)), { recursive: true });
      await copyFile(file, join(tree, file));
    }
    for (const binary of GUEST_BINARIES) await chmod(join(tree, binary), 0o755);
    const bundle = join(tree, 'atoll');
    for (const module of modules) {
      await mkdir(join(bundle, dirname(module)), { recursive: true });
      await copyFile(join(SOURCE_ROOT, module), join(bundle, module));
    }
    await writeFile(join(bundle, 'package.json'), '{"type":"module"}\n');
    const bytes = Number((await runTool('du', ['-sb', tree])).split('\t')[0]) + AGENT_DISK_SLACK_BYTES;
    const image = join(work, 'agent.ext4');
    await runTool('mkfs.ext4', ['-q', '-F', '-L', AGENT_DISK_LABEL, '-O', '^has_journal', '-E', 'root_owner=0:0', '-d', tree, image, `${Math.ceil(bytes / 1024)}k`], { signal: options.signal });
    return image;
  });
}

/** The static imports of an emitted ES module: `import|export ... from '<specifier>';` and `import '<specifier>';`. */
const IMPORT_SPECIFIER = /^(?:(?:import|export)\s[^;]*?\sfrom\s*|import\s*)['"]([^'"]+)['"];$/gm;

/**
 * The modules the agent runs: AGENT_ENTRY and every module it imports, transitively, relative to
 * `sourceRoot`. The agent disk carries no node_modules, so an import of anything but a Node built-in
 * or a relative module inside the tree is refused here, when the disk is built, not in the guest.
 */
export async function agentModules(sourceRoot = SOURCE_ROOT, entry = AGENT_ENTRY): Promise<string[]> {
  const found = new Set<string>([entry]);
  const pending = [entry];
  for (let module = pending.pop(); module !== undefined; module = pending.pop()) {
    const text = await readFile(join(sourceRoot, module), 'utf8').catch((err: Error) => {
      throw new Error(`guest agent module ${module} is not built under ${sourceRoot}: ${err.message}`);
    });
    for (const [, specifier] of text.matchAll(IMPORT_SPECIFIER)) {
      if (specifier!.startsWith('node:')) continue;
      if (!specifier!.startsWith('.')) throw new Error(`guest agent module ${module} imports '${specifier}', which the agent disk does not carry (only node: built-ins and relative modules)`);
      const resolved = relative(sourceRoot, resolve(sourceRoot, dirname(module), specifier!));
      if (resolved.startsWith('..') || isAbsolute(resolved)) throw new Error(`guest agent module ${module} imports '${specifier}', outside ${sourceRoot}`);
      if (!found.has(resolved)) {
        found.add(resolved);
        pending.push(resolved);
      }
    }
  }
  return [...found].sort();
}

/** The loader and libraries `ldd` reports for a binary, as absolute host paths. */
async function sharedLibraries(binary: string): Promise<string[]> {
  const out = await runTool('ldd', [binary]);
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const path = /=>\s*(\/\S+)/.exec(line)?.[1] ?? /^\s*(\/\S+)\s+\(/.exec(line)?.[1];
    if (path) libs.push(path);
  }
  if (libs.length === 0) throw new Error(`ldd ${binary} reported no libraries:\n${out}`);
  return libs;
}

/** Builds into a temp dir beside `target` and renames the result into place. */
async function buildInto(target: string, build: (work: string) => Promise<string>): Promise<string> {
  await mkdir(dirname(target), { recursive: true });
  const work = await mkdtemp(join(dirname(target), '.build-'));
  try {
    await rename(await build(work), target);
    return target;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
