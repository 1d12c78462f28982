import type { Volume } from './types.js';

/** The volume sources this node sets up. */
export const VOLUME_KINDS = ['emptyDir', 'hostPath', 'configMap', 'secret', 'downwardAPI', 'projected'] as const;
export type VolumeKind = (typeof VOLUME_KINDS)[number];

/** Kinds whose files the node writes: containers always get them read-only (kube since 1.9.4). */
export const PROJECTED_KINDS: ReadonlySet<VolumeKind> = new Set(['configMap', 'secret', 'downwardAPI', 'projected']);
/** Kinds with a directory of their own on the node: all but hostPath, which mounts a host path as it is. */
export type DirVolumeKind = Exclude<VolumeKind, 'hostPath'>;

/**
 * The plugin directory each kind's volumes live in, `<pods>/<uid>/volumes/<plugin>/<name>`, named as
 * the kubelet names them. Runtimes rely on this layout: runv, like Kata, recognises an emptyDir by its
 * `kubernetes.io~empty-dir` parent and gives it a disk of its own instead of a host share.
 */
export const PLUGIN_DIRS: Readonly<Record<DirVolumeKind, string>> = {
  emptyDir: 'kubernetes.io~empty-dir',
  configMap: 'kubernetes.io~configmap',
  secret: 'kubernetes.io~secret',
  downwardAPI: 'kubernetes.io~downward-api',
  projected: 'kubernetes.io~projected',
};

/** Kinds kept on a tmpfs, as the kubelet does, so their secrets never reach the disk. */
export const TMPFS_KINDS: ReadonlySet<VolumeKind> = new Set(['secret', 'projected']);

/** The volume's source, or undefined when it uses one this node does not support. */
export function volumeKind(volume: Volume): VolumeKind | undefined {
  return VOLUME_KINDS.find((k) => volume[k] !== undefined && volume[k] !== null);
}

/** The name of the source field a volume uses, for messages about unsupported sources. */
export function sourceName(volume: Volume): string {
  return Object.keys(volume).find((k) => k !== 'name') ?? 'none';
}
