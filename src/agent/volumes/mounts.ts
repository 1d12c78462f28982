// A container's volumeMounts as CRI mounts (kubelet_pods.go makeMounts), without /etc/hosts (the
// runtime writes it) or the termination-log mount (the pod workers add it).
import { chmodSync, lstatSync, mkdirSync, realpathSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { ContainerConfigError, type CriMount } from '../contracts.js';
import { expand, findContainer, type EnvEntry } from '../env.js';
import { PROJECTED_KINDS, volumeKind, type DirVolumeKind } from './kind.js';
import type { PodShape, Volume, VolumeMount } from './types.js';

/** CRI MountPropagation values. */
const PROPAGATION: Record<string, number> = { None: 0, HostToContainer: 1, Bidirectional: 2 };

export interface MountContext {
  pod: PodShape;
  containerName: string;
  /** Where a volume of this pod lives on the host (hostPath volumes excepted). */
  volumeDir: (kind: DirVolumeKind, volume: string) => string;
  env?: readonly EnvEntry[];
  log?: (line: string) => void;
}

/** ExpandContainerVolumeMounts: every referenced variable must be set and non-empty. */
function expandSubPathExpr(expr: string, env: readonly EnvEntry[]): string {
  const values = new Map(env.map((e) => [e.key, e.value]));
  const missing = new Set<string>();
  const expanded = expand(expr, (name) => {
    const v = values.get(name);
    if (!v) missing.add(name);
    return v ?? '';
  });
  if (missing.size > 0) throw new ContainerConfigError(`missing value for ${[...missing].sort().join(', ')}`);
  return expanded;
}

function within(base: string, path: string): boolean {
  return path === base || path.startsWith(base + '/');
}

/**
 * The host path of `subPath` inside the volume at `volumePath`, created as a directory (with the
 * volume root's mode) when missing. Every existing component is resolved, symlinks included, and
 * must stay inside the volume: a container cannot use a symlink it planted to mount host files.
 */
function prepareSubPath(volumePath: string, subPath: string, mount: VolumeMount, ctx: MountContext): string {
  const refuse = (what: string, detail: string) => {
    ctx.log?.(`volumes: subPath ${JSON.stringify(subPath)} of volumeMount "${mount.name}" (container "${ctx.containerName}"): ${detail}`);
    return new ContainerConfigError(`failed to ${what} subPath for volumeMount "${mount.name}" of container "${ctx.containerName}"`);
  };
  let base: string;
  try {
    base = realpathSync(volumePath);
  } catch (err) {
    throw refuse('prepare', (err as Error).message);
  }
  let current = base;
  for (const part of subPath.split('/').filter((p) => p !== '' && p !== '.')) {
    const next = join(current, part);
    let st;
    try {
      st = lstatSync(next);
    } catch {
      try {
        const mode = statSync(base).mode & 0o7777;
        mkdirSync(next, { mode });
        chmodSync(next, mode);
      } catch (err) {
        throw refuse('create', (err as Error).message);
      }
      current = next;
      continue;
    }
    if (st.isSymbolicLink()) {
      try {
        current = realpathSync(next);
      } catch (err) {
        throw refuse('prepare', (err as Error).message);
      }
    } else {
      current = next;
    }
    if (!within(base, current)) throw refuse('prepare', `resolves to ${current}, outside the volume ${base}`);
  }
  return current;
}

/** The CRI mounts for container `ctx.containerName`'s volumeMounts, in order. */
export function containerMounts(ctx: MountContext): CriMount[] {
  const { pod, containerName } = ctx;
  const container = findContainer(pod, containerName) as { volumeMounts?: VolumeMount[] } | undefined;
  if (!container) throw new ContainerConfigError(`container "${containerName}" not found in pod ${pod.metadata.namespace ?? ''}/${pod.metadata.name ?? ''}`);
  const volumes = new Map<string, Volume>((pod.spec?.volumes ?? []).map((v) => [v.name, v]));
  const mounts: CriMount[] = [];
  for (const m of container.volumeMounts ?? []) {
    const volume = volumes.get(m.name);
    const kind = volume && volumeKind(volume);
    if (!volume || !kind) throw new ContainerConfigError(`cannot find volume "${m.name}" to mount into container "${containerName}"`);
    let hostPath = kind === 'hostPath' ? volume.hostPath!.path : ctx.volumeDir(kind, volume.name);

    const subPath = m.subPathExpr ? expandSubPathExpr(m.subPathExpr, ctx.env ?? []) : (m.subPath ?? '');
    if (subPath !== '') {
      if (posix.isAbsolute(subPath)) throw new ContainerConfigError(`error SubPath \`${subPath}\` must not be an absolute path`);
      if (subPath.split('/').includes('..')) throw new ContainerConfigError(`unable to provision SubPath \`${subPath}\`: must not contain '..'`);
      hostPath = prepareSubPath(hostPath, subPath, m, ctx);
    }

    const propagation = PROPAGATION[m.mountPropagation ?? 'None'];
    if (propagation === undefined) throw new ContainerConfigError(`invalid MountPropagation mode: ${JSON.stringify(m.mountPropagation)}`);
    mounts.push({
      container_path: posix.isAbsolute(m.mountPath) ? m.mountPath : '/' + m.mountPath,
      host_path: hostPath,
      readonly: (m.readOnly ?? false) || PROJECTED_KINDS.has(kind),
      propagation,
    });
  }
  return mounts;
}
