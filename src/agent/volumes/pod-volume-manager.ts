import { chmod, mkdir, readdir, realpath, rm, rmdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { KubeObject } from '../../api/types.js';
import { isDNS1123Label } from '../../api/validation/names.js';
import { ContainerConfigError, type CriMount, type NodeFacts, type ObjectSource, type PodVolumes } from '../contracts.js';
import type { EnvEntry } from '../env.js';
import { writeAtomically } from './atomic-writer.js';
import { checkHostPath } from './host-path.js';
import { PLUGIN_DIRS, PROJECTED_KINDS, sourceName, TMPFS_KINDS, volumeKind, type DirVolumeKind, type VolumeKind } from './kind.js';
import { containerMounts } from './mounts.js';
import { applyFsGroup } from './ownership.js';
import { configMapPayload, DEFAULT_FILE_MODE, downwardAPIPayload, projectedPayload, secretPayload, type ProjectionContext } from './projection.js';
import { ServiceAccountTokens } from './service-account-token.js';
import { ensureTmpfs, memoryVolumeSize, mountsUnder, unmountUnder } from './tmpfs.js';
import type { Payload, PodShape, Volume } from './types.js';

/** emptyDir's mode, so any container user can write (kube's setupDir). */
const EMPTY_DIR_MODE = 0o777;
const PODS_DIR_MODE = 0o750;

export interface PodVolumeManagerOptions {
  log?: (line: string) => void;
  /** The clock token refreshes are measured on; tests move it. */
  now?: () => number;
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** A pod uid becomes a directory name: it must be one path segment. */
function checkUid(uid: unknown): string {
  if (typeof uid !== 'string' || uid === '' || uid === '.' || uid === '..' || uid.includes('/') || uid.includes('\0')) {
    throw new Error(`pod uid ${JSON.stringify(uid)} cannot name a directory`);
  }
  return uid;
}

/** Creates `dir` with `mode` (whatever the umask) if it is missing; true when it did. */
async function makeDir(dir: string, mode: number): Promise<boolean> {
  if (await exists(dir)) return false;
  await mkdir(dir, { mode });
  await chmod(dir, mode);
  return true;
}

/**
 * PodVolumes on this node's disk, laid out as the kubelet lays them out: each volume in
 * `<podsDir>/<uid>/volumes/<plugin>/<name>` (PLUGIN_DIRS: `kubernetes.io~empty-dir`,
 * `kubernetes.io~configmap`, ...; hostPath volumes have no directory), secret and projected volumes
 * (and emptyDir `medium: Memory`) on a tmpfs mounted there. Runtimes read the layout: runv gives an
 * emptyDir a disk of its own, and a tmpfs one a guest tmpfs. The calls for one pod are serialized,
 * so a refresh never races a setUp or tearDown of the same pod.
 */
export class PodVolumeManager implements PodVolumes {
  private readonly tokens: ServiceAccountTokens;
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly podsDir: string,
    private readonly source: ObjectSource,
    private readonly node: NodeFacts,
    private readonly opts: PodVolumeManagerOptions = {},
  ) {
    this.tokens = new ServiceAccountTokens(source, opts.now);
  }

  /** Where volume `name`, of kind `kind`, of pod `uid` lives. */
  volumeDir(uid: string, kind: DirVolumeKind, name: string): string {
    return join(this.volumesDir(uid), PLUGIN_DIRS[kind], name);
  }

  private volumesDir(uid: string): string {
    return join(this.podsDir, checkUid(uid), 'volumes');
  }

  setUp(pod: KubeObject): Promise<void> {
    return this.sync(pod as PodShape, false);
  }

  refresh(pod: KubeObject): Promise<void> {
    return this.sync(pod as PodShape, true);
  }

  mountsFor(pod: KubeObject, containerName: string, env?: readonly EnvEntry[]): CriMount[] {
    const uid = checkUid(pod.metadata.uid);
    return containerMounts({ pod: pod as PodShape, containerName, volumeDir: (kind, name) => this.volumeDir(uid, kind, name), env, log: this.opts.log });
  }

  async tearDown(podUid: string): Promise<void> {
    const dir = this.volumesDir(podUid);
    await this.serialize(podUid, async () => {
      if (await exists(dir)) {
        const real = await realpath(dir);
        await unmountUnder(real);
        const left = await mountsUnder(real);
        if (left.length > 0) throw new Error(`volumes of pod ${podUid} are still mounted at ${left.join(', ')}`);
        await rm(dir, { recursive: true, force: true });
      }
      // The pod's directory goes too, unless another part of the agent still keeps files there.
      await rmdir(join(this.podsDir, podUid)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT' && err.code !== 'ENOTEMPTY') throw err;
      });
      this.tokens.forget(podUid);
    });
  }

  async list(): Promise<string[]> {
    let entries;
    try {
      entries = await readdir(this.podsDir, { withFileTypes: true });
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
    const uids: string[] = [];
    for (const e of entries) if (e.isDirectory() && (await exists(join(this.podsDir, e.name, 'volumes')))) uids.push(e.name);
    return uids;
  }

  /**
   * Sets up every volume of the pod (or, for a refresh, rewrites the projected ones already set up).
   * A volume that fails keeps what it had, the others are still set up, and the failures are thrown
   * together as one ContainerConfigError in the kubelet's FailedMount wording.
   */
  private sync(pod: PodShape, refreshOnly: boolean): Promise<void> {
    let uid: string;
    try {
      uid = checkUid(pod.metadata.uid);
    } catch (err) {
      return Promise.reject(new ContainerConfigError((err as Error).message));
    }
    return this.serialize(uid, async () => {
      const dir = this.volumesDir(uid);
      if (refreshOnly) {
        if (!(await exists(dir))) return;
      } else {
        await mkdir(dir, { recursive: true, mode: PODS_DIR_MODE });
      }
      const failures: string[] = [];
      let cause: unknown;
      for (const volume of pod.spec?.volumes ?? []) {
        const kind = volumeKind(volume);
        if (refreshOnly && (!kind || kind === 'hostPath' || !PROJECTED_KINDS.has(kind) || !(await exists(this.volumeDir(uid, kind, volume.name))))) continue;
        try {
          await this.setUpVolume(pod, uid, volume, kind);
        } catch (err) {
          failures.push(`MountVolume.SetUp failed for volume "${volume.name}" : ${(err as Error).message}`);
          cause ??= err;
        }
      }
      if (failures.length > 0) throw new ContainerConfigError(failures.join('; '), { cause });
    });
  }

  private async setUpVolume(pod: PodShape, uid: string, volume: Volume, kind: VolumeKind | undefined): Promise<void> {
    const nameErrors = isDNS1123Label(volume.name);
    if (nameErrors.length > 0) throw new Error(`invalid volume name: ${nameErrors.join('; ')}`);
    if (!kind) throw new Error(`volume source ${sourceName(volume)} is not supported by this node`);
    if (kind === 'hostPath') return checkHostPath(volume.hostPath!);
    const dir = this.volumeDir(uid, kind, volume.name);
    await mkdir(dirname(dir), { recursive: true, mode: PODS_DIR_MODE });
    const fsGroup = pod.spec?.securityContext?.fsGroup;
    if (kind === 'emptyDir') {
      const medium = volume.emptyDir!.medium ?? '';
      if (medium !== '' && medium !== 'Memory') throw new Error(`emptyDir medium ${JSON.stringify(medium)} is not supported by this node`);
      const created = await makeDir(dir, EMPTY_DIR_MODE);
      if (medium === 'Memory') await ensureTmpfs(await realpath(dir), memoryVolumeSize(pod, this.node.allocatable.memory, volume.emptyDir!.sizeLimit));
      if (created && fsGroup !== undefined) await applyFsGroup(dir, fsGroup, false);
      return;
    }
    // The whole payload is computed before anything is written: a missing key leaves the old files.
    const payload = await this.payloadOf(pod, volume, kind);
    await makeDir(dir, EMPTY_DIR_MODE);
    if (TMPFS_KINDS.has(kind)) await ensureTmpfs(await realpath(dir), memoryVolumeSize(pod, this.node.allocatable.memory));
    await writeAtomically(dir, payload, fsGroup === undefined ? undefined : () => applyFsGroup(dir, fsGroup, true));
  }

  private payloadOf(pod: PodShape, volume: Volume, kind: VolumeKind): Promise<Payload> | Payload {
    const ctx: ProjectionContext = { pod, source: this.source, node: this.node, tokens: this.tokens };
    switch (kind) {
      case 'configMap':
        return configMapPayload(ctx, volume.configMap!, volume.configMap!.defaultMode ?? DEFAULT_FILE_MODE);
      case 'secret':
        return secretPayload(ctx, volume.secret!.secretName ?? '', volume.secret!, volume.secret!.defaultMode ?? DEFAULT_FILE_MODE);
      case 'downwardAPI':
        return downwardAPIPayload(ctx, volume.downwardAPI!.items, volume.downwardAPI!.defaultMode ?? DEFAULT_FILE_MODE);
      default:
        return projectedPayload(ctx, volume.projected!);
    }
  }

  private serialize<T>(uid: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(uid) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const settled = run.catch(() => undefined);
    this.queues.set(uid, settled);
    void settled.then(() => {
      if (this.queues.get(uid) === settled) this.queues.delete(uid);
    });
    return run;
  }
}
