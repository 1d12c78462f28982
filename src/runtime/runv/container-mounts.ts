import { mkdir, readFile, readdir, rmdir, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { RuntimeError, type ContainerSpec } from '../handler.js';
import { mountPoints } from '../sandbox/namespaces.js';
import { mountAll, unmount } from '../snapshots/mount.js';
import { MAX_PAYLOAD_BYTES, type ContainerMount } from './agent-protocol.js';
import { AGENT_CALL_TIMEOUT_MS } from './agent-client.js';
import { runTool } from './command.js';
import { EMPTY_DIR_DISK_FILE, emptyDirBacking, emptyDirOf, type EmptyDirRef } from './empty-dir.js';
import { GUEST_DIR, type PodVm } from './pod-vm.js';
import type { ContainerRecord } from './records.js';

/**
 * A runv container's mounts. Their sources are host paths, and the container runs in the VM, so each
 * reaches the guest by the cheapest way that keeps its meaning:
 *
 *   a file (/etc/hosts, resolv.conf, hostname, a subPath file, the termination log)
 *       is written into the guest (`writeFile`) and bound from there. One the container may write (the
 *       termination log) is copied back to the host file when the container exits (copyBack).
 *   an emptyDir, or a subPath in one (recognised by the kubelet's layout, empty-dir.ts)
 *       lives in the guest only: a sparse ext4 disk of the pod's own, or a guest tmpfs when the host
 *       directory is a tmpfs (`medium: Memory`), mounted once per pod (PodVm.ensureEmptyDir) and bound
 *       into each container that mounts it, so the pod's containers share it as under runc. The disk
 *       is a file in the volume's host directory, so it lasts as long as the volume. A subPath is made in the guest, and must
 *       resolve, symlinks followed, inside the volume.
 *   any other directory (configMap, secret, projected, downwardAPI and hostPath volumes)
 *       is bind-mounted, on the host, into the sandbox's 9p share (`<share>/<container>/<n>`; read-only
 *       binds are made read-only all the way down), and bound from the share in the guest. The share
 *       shows the host directory live, so configMap and secret updates reach the container as they do
 *       in a runc pod. This is the slow path, kept for these small or host-owned volumes: every file
 *       operation is a 9p round trip through QEMU.
 *   the pod's /dev/shm (`shmPath`)
 *       is a guest tmpfs, shared by the pod's containers.
 *
 * Mount propagation (rslave, rshared) cannot cross into the VM and is ignored.
 */

/** The guest directory holding the files written for one container. */
export function guestFilesDir(containerId: string): string {
  return join(GUEST_DIR, 'files', containerId);
}

/**
 * Prepares every mount of `spec` and returns them as the agent's createContainer takes them. Host
 * binds go under `<share>/<container id>`, which releaseShareDir clears, even after a half-done
 * prepare; files to copy back are added to `record`.
 */
export async function prepareMounts(pod: PodVm, spec: ContainerSpec, record: ContainerRecord): Promise<ContainerMount[]> {
  const etcReadonly = spec.readonlyRootfs === true;
  // The pod's /etc files are the pod's, not the container's: a container's changes stay in the VM.
  const wanted: { source: string; destination: string; readonly: boolean; copyBack: boolean }[] = [];
  if (spec.hostsFile) wanted.push({ source: spec.hostsFile, destination: '/etc/hosts', readonly: etcReadonly, copyBack: false });
  if (spec.resolvConfFile) wanted.push({ source: spec.resolvConfFile, destination: '/etc/resolv.conf', readonly: etcReadonly, copyBack: false });
  if (spec.hostnameFile) wanted.push({ source: spec.hostnameFile, destination: '/etc/hostname', readonly: etcReadonly, copyBack: false });
  for (const mount of spec.mounts ?? []) {
    if (!mount.destination.startsWith('/')) throw new RuntimeError('InvalidArgument', `container ${spec.id}: mount destination ${mount.destination} is not absolute`);
    const readonly = mount.readonly === true;
    wanted.push({ source: mount.source, destination: mount.destination, readonly, copyBack: !readonly });
  }

  const mounts: ContainerMount[] = [];
  for (const [index, mount] of wanted.entries()) {
    const emptyDir = emptyDirOf(mount.source, `container ${spec.id}`);
    if (emptyDir) {
      const source = await guestEmptyDirPath(pod, emptyDir, spec.id);
      mounts.push({ type: 'bind', source, destination: mount.destination, readonly: mount.readonly });
      continue;
    }
    const info = await stat(mount.source).catch(() => null);
    if (info?.isFile()) {
      if (info.size > MAX_PAYLOAD_BYTES) {
        throw new RuntimeError('InvalidArgument', `container ${spec.id}: mounted file ${mount.source} is ${info.size} bytes; runv copies files into the VM, at most ${MAX_PAYLOAD_BYTES}`);
      }
      const guest = join(guestFilesDir(spec.id), `${index}-${basename(mount.destination)}`);
      const data = await readFile(mount.source);
      await pod.agent.call('writeFile', { path: guest, data: data.toString('base64'), mode: info.mode & 0o7777 });
      if (mount.copyBack) record.copyBack.push({ guest, host: mount.source });
      mounts.push({ type: 'bind', source: guest, destination: mount.destination, readonly: mount.readonly });
    } else if (info?.isDirectory()) {
      const host = join(pod.shareDir, spec.id, String(index));
      await mkdir(host, { recursive: true });
      await mountAll([{ type: 'bind', source: mount.source, options: ['rbind'] }], host);
      if (mount.readonly) await makeReadonly(host);
      const share = await pod.ensureShare();
      mounts.push({ type: 'bind', source: join(share, spec.id, String(index)), destination: mount.destination, readonly: mount.readonly });
    } else {
      const what = info ? 'neither a file nor a directory' : 'missing';
      throw new RuntimeError('InvalidArgument', `container ${spec.id}: mount source ${mount.source} is ${what}; runv passes files and directories into the VM`);
    }
  }
  if (spec.shmPath) mounts.push({ type: 'bind', source: await pod.ensureShm(), destination: '/dev/shm' });
  return mounts;
}

/**
 * Sets up the emptyDir in the guest (once per pod) and returns the guest path to bind: its root, or its
 * subPath, made (umask 0, as the kubelet makes it with the root's mode) when missing. The subPath is
 * resolved in the guest, where the pod's containers may have put symlinks, and must stay inside the
 * volume.
 */
async function guestEmptyDirPath(pod: PodVm, emptyDir: EmptyDirRef, containerId: string): Promise<string> {
  const what = `container ${containerId}`;
  const root = await pod.ensureEmptyDir(emptyDir.name, await emptyDirBacking(emptyDir.hostDir, what), join(emptyDir.hostDir, EMPTY_DIR_DISK_FILE));
  if (emptyDir.subPath === '') return root;
  const script = 'umask 0; [ -e "$1/$2" ] || mkdir -p -- "$1/$2" || exit 1; readlink -f -- "$1" && readlink -f -- "$1/$2"';
  const out = await pod.agent.exec(['sh', '-c', script, 'sh', root, emptyDir.subPath], { timeoutMs: AGENT_CALL_TIMEOUT_MS });
  if (out.exitCode !== 0) throw new RuntimeError('InvalidArgument', `${what}: cannot make subPath ${emptyDir.subPath} of emptyDir "${emptyDir.name}" in the VM: ${out.stderr.toString().trim()}`);
  const [base = '', resolved = ''] = out.stdout.toString().trim().split('\n');
  if (base === '' || (resolved !== base && !resolved.startsWith(`${base}/`))) {
    throw new RuntimeError('InvalidArgument', `${what}: subPath ${emptyDir.subPath} of emptyDir "${emptyDir.name}" resolves to ${resolved} in the VM, outside the volume`);
  }
  return resolved;
}

/**
 * Makes the bind at `target` and everything mounted under it read-only. mount(8)'s `rbind,ro` makes
 * only the top read-only, and this util-linux ignores `ro=recursive`.
 */
async function makeReadonly(target: string): Promise<void> {
  for (const point of [...(await mountPoints())].filter((p) => p === target || p.startsWith(`${target}/`)).sort()) {
    await runTool('mount', ['-o', 'remount,bind,ro', point]);
  }
}

/**
 * Copies the guest files of the container's writable file mounts back to their host files (the
 * kubelet reads the termination message from there). Best effort: a failure is returned as text.
 */
export async function copyBack(pod: PodVm, record: ContainerRecord): Promise<string[]> {
  const failures: string[] = [];
  for (const { guest, host } of record.copyBack) {
    try {
      const out = await pod.agent.exec(['cat', guest], { timeoutMs: AGENT_CALL_TIMEOUT_MS });
      if (out.exitCode !== 0) throw new Error(out.stderr.toString().trim());
      await writeFile(host, out.stdout);
    } catch (err) {
      failures.push(`${guest} -> ${host}: ${(err as Error).message}`);
    }
  }
  return failures;
}

/**
 * Unmounts every bind at or under `dir` (deepest first) and removes the directories left, which are
 * then empty. A bind QEMU still has files open in (the guest's 9p client may hold them a while after
 * the container went) is detached lazily: it goes when QEMU lets go. Directories are removed one by
 * one, never recursively: a bind that failed to unmount must not turn into deleting a volume's files
 * through it. Fine when `dir` is gone already.
 */
export async function releaseShareDir(dir: string): Promise<void> {
  const points = [...(await mountPoints())].filter((p) => p === dir || p.startsWith(`${dir}/`));
  for (const point of points.sort((a, b) => b.length - a.length)) {
    await unmount(point).catch(() => runTool('umount', ['-l', point]));
  }
  await removeEmptyTree(dir);
}

async function removeEmptyTree(dir: string): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (entries === null) return;
  for (const entry of entries) {
    if (!entry.isDirectory()) throw new Error(`${join(dir, entry.name)} is not a directory: the share holds only bind mount points`);
    await removeEmptyTree(join(dir, entry.name));
  }
  await rmdir(dir);
}
