import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTool } from './command.js';
import type { GuestKernel, ProgressOptions } from './guest-kernel.js';

/**
 * What a runv guest boots: an initramfs (busybox-static, the kernel's modules, /init) and a read-only
 * ext4 "agent disk" carrying Node, the libraries it links and the guest agent. The agent travels on a
 * block device, not a 9p share, because a mounted 9p share blocks saving a VM template (DESIGN.md).
 *
 * Both are cached under `<root>/runv/images/`, named by a hash of their inputs, and appear by rename.
 */

export const BUSYBOX = '/usr/bin/busybox';
export const NODE = '/usr/bin/node';
/** The agent disk's filesystem label; /init mounts the disk by it, whatever its position on the bus. */
export const AGENT_DISK_LABEL = 'atoll-agent';
/** Free space left on the agent disk beyond its files, so mkfs's metadata always fits. */
const AGENT_DISK_SLACK_BYTES = 16 * 1024 * 1024;
/** The guest agent's files, as emitted beside this module. */
const AGENT_FILES = ['guest-agent.js', 'agent-protocol.js'];

/**
 * PID 1 of the guest. It loads the modules, mounts the agent disk read-only, links its /usr and /lib
 * into the root so Node finds its loader and libraries, and keeps the agent running.
 */
const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp /run /agent
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
for m in $(cat /modules/order); do insmod /modules/$m || echo "init: insmod $m failed"; done
disk=$(findfs LABEL=${AGENT_DISK_LABEL}) || { echo "init: no disk labelled ${AGENT_DISK_LABEL}"; poweroff -f; }
mount -t ext4 -o ro "$disk" /agent || { echo "init: cannot mount $disk"; poweroff -f; }
for d in usr lib lib64; do ln -s /agent/$d /$d; done
hostname runv
echo "init: starting guest agent"
while :; do
  /usr/bin/node /agent/atoll/guest-agent.js
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
  const here = dirname(fileURLToPath(import.meta.url));
  const hash = createHash('sha256').update(INIT_SCRIPT).update(process.version);
  const nodeStat = await stat(NODE);
  hash.update(`${nodeStat.size}:${nodeStat.mtimeMs}`);
  for (const file of AGENT_FILES) hash.update(await readFile(join(here, file)));
  const target = join(root, 'runv', 'images', `agent-${hash.digest('hex').slice(0, 16)}.ext4`);
  if (await exists(target)) return target;
  options.onProgress?.(`runv: building agent disk ${basename(target)} (node and its libraries)`);
  return buildInto(target, async (work) => {
    const tree = join(work, 'tree');
    for (const file of [NODE, ...(await sharedLibraries(NODE))]) {
      await mkdir(join(tree, dirname(file)), { recursive: true });
      await copyFile(file, join(tree, file));
    }
    await chmod(join(tree, NODE), 0o755);
    await mkdir(join(tree, 'atoll'));
    for (const file of AGENT_FILES) await copyFile(join(here, file), join(tree, 'atoll', file));
    await writeFile(join(tree, 'atoll', 'package.json'), '{"type":"module"}\n');
    const bytes = Number((await runTool('du', ['-sb', tree])).split('\t')[0]) + AGENT_DISK_SLACK_BYTES;
    const image = join(work, 'agent.ext4');
    await runTool('mkfs.ext4', ['-q', '-F', '-L', AGENT_DISK_LABEL, '-O', '^has_journal', '-E', 'root_owner=0:0', '-d', tree, image, `${Math.ceil(bytes / 1024)}k`], { signal: options.signal });
    return image;
  });
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
