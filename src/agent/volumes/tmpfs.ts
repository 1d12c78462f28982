// Memory-backed volume directories: emptyDir `medium: Memory`, and the secret and projected volumes
// the kubelet keeps off disk.
import { mountPoints } from '../../runtime/sandbox/namespaces.js';
import { CommandError, run } from '../../runtime/snapshots/command.js';
import { isMountPoint, mountAll } from '../../runtime/snapshots/mount.js';
import { add, compare, max, parseQuantity, value, type Quantity } from '../../api/quantity.js';
import type { PodShape } from './types.js';

/** Mounts a tmpfs of at most `sizeBytes` (no cap: the kernel's default, half of RAM) on `dir`, unless one is there. */
export async function ensureTmpfs(dir: string, sizeBytes: bigint | undefined): Promise<void> {
  if (await isMountPoint(dir)) return;
  await mountAll([{ type: 'tmpfs', source: 'tmpfs', options: sizeBytes !== undefined && sizeBytes > 0n ? [`size=${sizeBytes}`] : [] }], dir);
}

/** The mount points at or under `dir`, deepest first. */
export async function mountsUnder(dir: string): Promise<string[]> {
  const points = [...(await mountPoints())].filter((p) => p === dir || p.startsWith(dir + '/'));
  return points.sort((a, b) => b.length - a.length);
}

/**
 * Unmounts everything at or under `dir`. A mount still busy (a container process inside it, in a
 * namespace that did not drop it) is detached lazily: it goes away with its last user.
 */
export async function unmountUnder(dir: string): Promise<void> {
  for (const point of await mountsUnder(dir)) {
    while (await isMountPoint(point)) {
      try {
        await run('umount', [point]);
      } catch (err) {
        if (!(err instanceof CommandError)) throw err;
        await run('umount', ['-l', point]);
      }
    }
  }
}

function quantity(raw: string | number | undefined): Quantity | undefined {
  return raw === undefined ? undefined : parseQuantity(raw);
}

/**
 * The pod's memory limit as its cgroup gets it (ResourceConfigForPod): when every container
 * declares one, the larger of the app containers' and sidecars' sum and the largest init container,
 * plus the pod's overhead. Undefined when some container has no limit.
 */
function podMemoryLimit(pod: PodShape): Quantity | undefined {
  const spec = pod.spec ?? {};
  const inits = spec.initContainers ?? [];
  const all = [...(spec.containers ?? []), ...inits];
  const limits = all.map((c) => quantity(c.resources?.limits?.memory));
  if (limits.length === 0 || limits.some((l) => !l || l.nano === 0n)) return undefined;
  const limitOf = (i: number) => limits[i]!;
  const apps = spec.containers ?? [];
  let sidecars = parseQuantity('0');
  let initPeak = parseQuantity('0');
  inits.forEach((c, i) => {
    const own = limitOf(apps.length + i);
    if (c.restartPolicy === 'Always') sidecars = add(sidecars, own);
    else initPeak = max(initPeak, add(own, sidecars));
  });
  let sum = sidecars;
  apps.forEach((_, i) => (sum = add(sum, limitOf(i))));
  const overhead = quantity(spec.overhead?.memory) ?? parseQuantity('0');
  return add(max(sum, initPeak), overhead);
}

/**
 * The size of a memory-backed volume (calculateEmptyDirMemorySize): the node's allocatable memory,
 * lowered to the pod's memory limit and then to the volume's own `sizeLimit` when they are smaller.
 */
export function memoryVolumeSize(pod: PodShape, allocatableMemory: string, sizeLimit?: string | number): bigint {
  let size = parseQuantity(allocatableMemory);
  for (const cap of [podMemoryLimit(pod), quantity(sizeLimit)]) {
    if (cap && cap.nano > 0n && compare(cap, size) <= 0) size = cap;
  }
  return value(size);
}
