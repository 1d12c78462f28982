import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { isAbsolute, join, relative, sep } from 'node:path';
import {
  CriError,
  type Container,
  type ContainerFilter__Output,
  type ContainerStats,
  type CriImplementation,
  type Image as CriImage,
  type PodSandbox,
  type PodSandboxStats,
} from '../cri/index.js';
import { RuntimeError, type ContainerState, type ContainerStats as HandlerStats, type RuntimeHandler, type SandboxSpec } from '../handler.js';
import type { AuthConfig__Output } from '../cri/index.js';
import type { RegistryAuth } from '../images/config.js';
import { NotFoundError } from '../images/errors.js';
import type { Image, ImageStore } from '../images/store.js';
import { interfaceStats, type InterfaceStats, type Network } from '../network/index.js';
import {
  createNamespaces,
  listNamespaces,
  removeNamespaces,
  validateHostname,
  writePodDnsFiles,
  type SandboxNamespaces,
} from '../sandbox/namespaces.js';
import { isMountPoint, mountAll, unmount } from '../snapshots/mount.js';
import type { Snapshotter } from '../snapshots/snapshotter.js';
import { unpackLayers } from '../snapshots/unpack.js';
import { toCriError } from './errors.js';
import { StreamingServer, dialInNetns } from '../streaming/index.js';
import {
  RecordDir,
  validateContainerRecord,
  validateSandboxRecord,
  type ContainerRecord,
  type SandboxRecord,
} from './records.js';
import { containerLogPath, containerSpec, resourcesOf } from './spec.js';

export const RUNTIME_NAME = 'atoll';
export const RUNTIME_VERSION = '0.1.0';
export const CRI_API_VERSION = 'v1';
/** StopPodSandbox and RemoveContainer kill at once: CRI says "forcibly", as containerd does. */
const FORCE_STOP_TIMEOUT_SECONDS = 0;
const SNAPSHOT_PREFIX = 'container-';

export interface RuntimeServiceOptions {
  /** Where sandbox and container records live (`<root>/sandboxes`, `<root>/containers`). */
  root: string;
  /** Where namespace files, pod DNS files and container rootfs mounts live (a tmpfs like /run/atoll). */
  runDir: string;
  /** When set, every sandbox log_directory must lie inside it (the kubelet's /var/log/pods). */
  logRoot?: string;
  handlers: Record<string, RuntimeHandler>;
  /** The handler for RunPodSandbox without runtime_handler; default 'runc'. */
  defaultHandler?: string;
  network: Network;
  snapshotter: Snapshotter;
  images: ImageStore;
  /** Serve Exec and PortForward URLs from a streaming server on this address (default 127.0.0.1, any port). */
  streaming?: { address?: string; port?: number };
  log?: (line: string) => void;
}

function nanos(ms: number): string {
  return (BigInt(Math.trunc(ms)) * 1_000_000n).toString();
}

function newId(): string {
  return randomBytes(32).toString('hex');
}

function matchesLabels(labels: Record<string, string>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

function sandboxName(r: SandboxRecord): string {
  const m = r.config.metadata!;
  return `${m.name}_${m.namespace}_${m.uid}_${m.attempt}`;
}

function containerName(r: ContainerRecord): string {
  return `${r.sandboxId}/${r.config.metadata!.name}_${r.config.metadata!.attempt}`;
}

function inside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

function registryAuth(auth: AuthConfig__Output | null): RegistryAuth | undefined {
  if (!auth) return undefined;
  const out: RegistryAuth = {};
  if (auth.username) out.username = auth.username;
  if (auth.password) out.password = auth.password;
  if (auth.auth) out.auth = auth.auth;
  if (auth.registry_token || auth.identity_token) out.registryToken = auth.registry_token || auth.identity_token;
  return Object.keys(out).length > 0 ? out : undefined;
}

const CONTAINER_STATE = {
  created: 'CONTAINER_CREATED',
  running: 'CONTAINER_RUNNING',
  exited: 'CONTAINER_EXITED',
  unknown: 'CONTAINER_UNKNOWN',
} as const;

/**
 * The CRI v1 runtime and image services over the node's parts: pod sandboxes are namespaces plus a
 * `Network` attachment, containers are snapshots mounted as rootfs and run by a `RuntimeHandler`.
 *
 * Lifecycle: `RuntimeService.open()` loads the persisted records, re-attaches live sandboxes to the
 * network, adopts the handlers' containers, re-mounts the rootfs of live ones, and cleans up what a
 * crash left half-made. `implementation()` is handed to `serveCri`. `close()` only stops answering;
 * containers keep running, and the caller closes the parts it passed in (handlers, snapshotter).
 *
 * Every call either completes or rolls back what it did, so a failed call leaves no state behind.
 * Calls on the same sandbox or container are serialized.
 */
export class RuntimeService {
  private readonly sandboxes = new Map<string, SandboxRecord>();
  private readonly containers = new Map<string, ContainerRecord>();
  /** Names taken by records and by calls in flight, so that duplicates are refused at once. */
  private readonly sandboxNames = new Map<string, string>();
  private readonly containerNames = new Map<string, string>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private streaming: StreamingServer | undefined;
  private readonly sandboxRecords: RecordDir<SandboxRecord>;
  private readonly containerRecords: RecordDir<ContainerRecord>;
  private readonly log: (line: string) => void;
  private readonly defaultHandler: string;

  private constructor(private readonly options: RuntimeServiceOptions) {
    this.sandboxRecords = new RecordDir(join(options.root, 'sandboxes'), validateSandboxRecord);
    this.containerRecords = new RecordDir(join(options.root, 'containers'), validateContainerRecord);
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.defaultHandler = options.defaultHandler ?? 'runc';
    if (!options.handlers[this.defaultHandler]) throw new Error(`no runtime handler named ${this.defaultHandler}`);
  }

  static async open(options: RuntimeServiceOptions): Promise<RuntimeService> {
    const service = new RuntimeService(options);
    await service.recover();
    if (options.streaming) {
      const streaming = new StreamingServer({
        exec: (id, cmd, o) => {
          const r = service.container(id);
          return service.handlerOf(r.runtimeHandler).exec(r.id, cmd, o);
        },
        attach: (id, o) => {
          const r = service.container(id);
          const handler = service.handlerOf(r.runtimeHandler);
          if (!handler.attach) throw new RuntimeError('Internal', `the ${r.runtimeHandler} handler cannot attach`);
          return handler.attach(r.id, o);
        },
        portDialer: async (id) => {
          const sandbox = service.sandbox(id);
          if (!service.handlerOf(sandbox.runtimeHandler).podNetworkInGuest) return (port) => dialInNetns(service.namespacesOf(sandbox.id).net, port);
          const ip = sandbox.network?.ips[0]?.address;
          if (!ip) throw new RuntimeError('NotRunning', `pod sandbox ${sandbox.id} has no pod IP to forward ports to`);
          return (port) => dialInNetns(options.network.nodeNetns, port, ip);
        },
      });
      await streaming.start(options.streaming);
      service.streaming = streaming;
    }
    return service;
  }

  /** Stops nothing that runs: containers, sandboxes and networks stay up for the next instance. */
  async close(): Promise<void> {
    await this.streaming?.close();
    await Promise.allSettled([...this.locks.values()]);
  }

  private requireStreaming(rpc: string): StreamingServer {
    if (!this.streaming) throw CriError.unimplemented(`${rpc} needs the CRI streaming server, which this runtime was started without`);
    return this.streaming;
  }

  private warn(message: string): void {
    this.log(`runtime: ${message}`);
  }

  private rootfsPath(id: string): string {
    return join(this.options.runDir, 'rootfs', id);
  }

  private podFilesDir(id: string): string {
    return join(this.options.runDir, 'pods', id);
  }

  private handlerOf(name: string): RuntimeHandler {
    const handler = this.options.handlers[name];
    if (!handler) throw CriError.invalidArgument(`no runtime handler named ${JSON.stringify(name)}; known: ${Object.keys(this.options.handlers).join(', ')}`);
    return handler;
  }

  private async withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const current = previous.catch(() => undefined).then(fn);
    const settled = current.catch(() => undefined);
    this.locks.set(key, settled);
    try {
      return await current;
    } finally {
      if (this.locks.get(key) === settled) this.locks.delete(key);
    }
  }

  // ---- restart -------------------------------------------------------------------------------

  private async recover(): Promise<void> {
    const held = new Map((await listNamespaces(this.options.runDir)).map((ns) => [ns.id, ns]));
    for (const record of await this.sandboxRecords.readAll((m) => this.warn(m))) {
      const ns = held.get(record.id);
      if (record.state === 'ready' && (!ns || !ns.mounted.includes('net'))) {
        this.warn(`sandbox ${record.id} lost its namespaces while the runtime was down; marking it not ready`);
        record.state = 'notready';
        delete record.network;
        await this.sandboxRecords.write(record);
      }
      this.sandboxes.set(record.id, record);
      this.sandboxNames.set(sandboxName(record), record.id);
    }
    const live = [...this.sandboxes.values()]
      .filter((s) => s.state === 'ready' && !s.hostNetwork)
      .map((s) => ({ id: s.id, netnsPath: this.namespacesOf(s.id).net }));
    const report = await this.options.network.restore(live);
    for (const id of report.unrepaired) this.warn(`sandbox ${id}: network attachment could not be repaired`);

    const adopted = new Map<string, ContainerState>();
    const owners = new Map<string, RuntimeHandler>();
    for (const handler of Object.values(this.options.handlers)) {
      for (const c of await handler.adopt()) {
        adopted.set(c.id, c.state);
        owners.set(c.id, handler);
      }
    }
    for (const record of await this.containerRecords.readAll((m) => this.warn(m))) {
      if (!this.options.handlers[record.runtimeHandler]) {
        // Its handler could not start this time (runv without QEMU, say): the container may well still
        // run, and the handler adopts it on a later start, so its record stays as it is.
        this.warn(`container ${record.id}: runtime handler ${record.runtimeHandler} is not available; leaving it alone`);
        continue;
      }
      const state = adopted.get(record.id);
      if (!state || !this.sandboxes.has(record.sandboxId)) {
        // CreateContainer wrote the record but died before the handler had the container.
        this.warn(`container ${record.id}: removing the leftovers of an unfinished create`);
        await this.releaseContainerStorage(record);
        await this.containerRecords.remove(record.id);
        continue;
      }
      owners.delete(record.id);
      if ((state.status === 'created' || state.status === 'running') && !(await isMountPoint(record.rootfs))) {
        await mkdir(record.rootfs, { recursive: true });
        await mountAll(await this.options.snapshotter.mounts(record.snapshotKey), record.rootfs);
      }
      if (state.status === 'exited') this.warn(`container ${record.id} exited with ${state.exitCode ?? '?'} (${state.reason ?? 'unknown'})`);
      this.containers.set(record.id, record);
      this.containerNames.set(containerName(record), record.id);
    }
    for (const [id, handler] of owners) {
      this.warn(`container ${id}: the handler holds it but no CRI record does; removing it`);
      await handler.stop(id, FORCE_STOP_TIMEOUT_SECONDS).catch(() => undefined);
      await handler.remove(id).catch((err: Error) => this.warn(`container ${id}: ${err.message}`));
    }
  }

  private namespacesOf(id: string): SandboxNamespaces {
    const dir = this.options.runDir;
    return { id, net: join(dir, 'netns', id), ipc: join(dir, 'ipcns', id), uts: join(dir, 'utsns', id) };
  }

  // ---- sandboxes -----------------------------------------------------------------------------

  private sandbox(id: string): SandboxRecord {
    const record = this.sandboxes.get(id) ?? this.findByPrefix(this.sandboxes, id);
    if (!record) throw CriError.notFound(`pod sandbox ${id} not found`);
    return record;
  }

  private findByPrefix<T>(map: Map<string, T>, prefix: string): T | undefined {
    if (prefix.length < 6) return undefined;
    const matches = [...map.entries()].filter(([id]) => id.startsWith(prefix));
    return matches.length === 1 ? matches[0]![1] : undefined;
  }

  private async runPodSandbox(config: SandboxRecord['config'], runtimeHandler: string): Promise<string> {
    const metadata = config.metadata!;
    const handlerName = runtimeHandler || this.defaultHandler;
    const handler = this.handlerOf(handlerName);
    const hostname = config.hostname || metadata.name;
    try {
      validateHostname(hostname);
    } catch (err) {
      throw CriError.invalidArgument(`sandbox hostname: ${(err as Error).message}`);
    }
    if (config.log_directory) {
      if (!isAbsolute(config.log_directory)) throw CriError.invalidArgument(`log_directory ${JSON.stringify(config.log_directory)} must be absolute`);
      if (this.options.logRoot && !inside(this.options.logRoot, config.log_directory)) {
        throw CriError.invalidArgument(`log_directory ${config.log_directory} is outside the log root ${this.options.logRoot}`);
      }
    }
    const id = newId();
    const record: SandboxRecord = {
      id,
      config,
      runtimeHandler: handlerName,
      createdAt: nanos(Date.now()),
      state: 'ready',
      hostNetwork: config.linux?.security_context?.namespace_options?.network === 'NODE',
      files: { hostname: '', hosts: '', resolvConf: '' },
    };
    const name = sandboxName(record);
    const existing = this.sandboxNames.get(name);
    if (existing) throw CriError.alreadyExists(`pod sandbox name ${JSON.stringify(name)} is reserved for ${existing}`);
    this.sandboxNames.set(name, id);
    let ns: SandboxNamespaces | undefined;
    let networked = false;
    try {
      ns = await createNamespaces(this.options.runDir, id, { hostname, loopback: record.hostNetwork });
      if (!record.hostNetwork) {
        record.network = await this.options.network.setup(id, ns.net, { name: metadata.name, namespace: metadata.namespace, uid: metadata.uid });
        networked = true;
      }
      const dns = config.dns_config;
      record.files = await writePodDnsFiles(this.podFilesDir(id), {
        hostname,
        podIPs: record.network?.ips.map((ip) => ip.address) ?? [],
        ...(dns && (dns.servers.length > 0 || dns.searches.length > 0 || dns.options.length > 0) ? { dns } : {}),
      });
      // The record goes first, so a crash inside startSandbox leaves something recover() can undo.
      await this.sandboxRecords.write(record);
      await handler.startSandbox?.(this.sandboxSpec(record, ns.net));
    } catch (err) {
      await handler.stopSandbox?.(id).catch((e: Error) => this.warn(`rollback ${id}: ${e.message}`));
      if (networked) await this.options.network.teardown(id, ns?.net).catch((e: Error) => this.warn(`rollback ${id}: ${e.message}`));
      if (ns) await removeNamespaces(this.options.runDir, id).catch((e: Error) => this.warn(`rollback ${id}: ${e.message}`));
      await rm(this.podFilesDir(id), { recursive: true, force: true });
      await this.sandboxRecords.remove(id);
      this.sandboxNames.delete(name);
      throw toCriError(err, `RunPodSandbox ${metadata.namespace}/${metadata.name}`);
    }
    this.sandboxes.set(id, record);
    return id;
  }

  private async stopPodSandbox(record: SandboxRecord): Promise<void> {
    for (const c of this.containersOf(record.id)) {
      await this.handlerOf(c.runtimeHandler).stop(c.id, FORCE_STOP_TIMEOUT_SECONDS).catch((err: unknown) => {
        if (!(err instanceof RuntimeError && err.code === 'NotFound')) throw toCriError(err, `StopPodSandbox ${record.id}: container ${c.id}`);
      });
    }
    try {
      await this.handlerOf(record.runtimeHandler).stopSandbox?.(record.id);
    } catch (err) {
      throw toCriError(err, `StopPodSandbox ${record.id}`);
    }
    if (!record.hostNetwork) await this.options.network.teardown(record.id, this.namespacesOf(record.id).net);
    if (record.state !== 'notready' || record.network) {
      record.state = 'notready';
      delete record.network;
      await this.sandboxRecords.write(record);
    }
  }

  private async removePodSandbox(record: SandboxRecord): Promise<void> {
    for (const c of this.containersOf(record.id)) await this.removeContainer(c);
    await this.stopPodSandbox(record);
    await removeNamespaces(this.options.runDir, record.id);
    await rm(this.podFilesDir(record.id), { recursive: true, force: true });
    await this.sandboxRecords.remove(record.id);
    this.sandboxes.delete(record.id);
    this.sandboxNames.delete(sandboxName(record));
  }

  private sandboxSpec(record: SandboxRecord, podNetns: string): SandboxSpec {
    const linux = record.config.linux;
    const resources = resourcesOf(linux?.resources);
    return {
      id: record.id,
      hostname: record.config.hostname || record.config.metadata!.name,
      netns: record.hostNetwork ? this.options.network.nodeNetns : podNetns,
      hostNetwork: record.hostNetwork,
      ...(record.network ? { network: record.network } : {}),
      ...(resources ? { resources } : {}),
      ...(linux?.cgroup_parent ? { cgroupParent: linux.cgroup_parent } : {}),
    };
  }

  private containersOf(sandboxId: string): ContainerRecord[] {
    return [...this.containers.values()].filter((c) => c.sandboxId === sandboxId);
  }

  private podSandbox(r: SandboxRecord): PodSandbox {
    return {
      id: r.id,
      metadata: r.config.metadata,
      state: r.state === 'ready' ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY',
      created_at: r.createdAt,
      labels: r.config.labels,
      annotations: r.config.annotations,
      runtime_handler: r.runtimeHandler,
    };
  }

  // ---- containers ----------------------------------------------------------------------------

  private container(id: string): ContainerRecord {
    const record = this.containers.get(id) ?? this.findByPrefix(this.containers, id);
    if (!record) throw CriError.notFound(`container ${id} not found`);
    return record;
  }

  private async createContainer(sandboxId: string, config: ContainerRecord['config']): Promise<string> {
    const sandbox = this.sandbox(sandboxId);
    if (sandbox.state !== 'ready') throw CriError.failedPrecondition(`pod sandbox ${sandbox.id} is not ready`);
    const imageName = config.image!.image;
    const image = await this.options.images.status(imageName);
    if (!image) throw CriError.notFound(`image ${JSON.stringify(imageName)} not found; pull it first`);
    const logPath = config.log_path ? containerLogPath(sandbox.config.log_directory, config.log_path) : join(this.options.root, 'logs', sandbox.id, `${config.metadata!.name}_${config.metadata!.attempt}.log`);
    const id = newId();
    const record: ContainerRecord = {
      id,
      sandboxId: sandbox.id,
      config,
      image: imageName,
      imageId: image.id,
      imageRef: image.repoDigests[0] ?? image.id,
      runtimeHandler: sandbox.runtimeHandler,
      snapshotKey: `${SNAPSHOT_PREFIX}${id}`,
      rootfs: this.rootfsPath(id),
      logPath,
      createdAt: nanos(Date.now()),
    };
    const name = containerName(record);
    const existing = this.containerNames.get(name);
    if (existing) throw CriError.alreadyExists(`container name ${JSON.stringify(name)} is reserved for ${existing}`);
    this.containerNames.set(name, id);
    const handler = this.handlerOf(sandbox.runtimeHandler);
    try {
      const ns = this.namespacesOf(sandbox.id);
      const spec = containerSpec({
        id,
        sandbox,
        namespaces: { network: sandbox.hostNetwork ? this.options.network.nodeNetns : ns.net, ipc: ns.ipc, uts: ns.uts },
        config,
        image,
        rootfs: record.rootfs,
        logPath,
      });
      const chainId = await unpackLayers(
        this.options.snapshotter,
        this.options.images.layerStreams(image).map((l) => ({ diffId: l.diffId, open: () => l.open() })),
      );
      spec.imageChainId = chainId;
      // The record goes first: a crash from here on leaves something recover() can find and undo.
      await this.containerRecords.write(record);
      const mounts = await this.options.snapshotter.prepare(record.snapshotKey, chainId, { labels: { 'atoll.io/container': id } });
      await mkdir(record.rootfs, { recursive: true });
      await mountAll(mounts, record.rootfs);
      await handler.createContainer(spec);
    } catch (err) {
      await this.releaseContainerStorage(record).catch((e: Error) => this.warn(`rollback ${id}: ${e.message}`));
      await this.containerRecords.remove(id);
      this.containerNames.delete(name);
      throw toCriError(err, `CreateContainer ${config.metadata!.name} in ${sandbox.id}`);
    }
    this.containers.set(id, record);
    return id;
  }

  /** Unmounts and deletes the container's rootfs and writable snapshot; fine when they are gone already. */
  private async releaseContainerStorage(record: ContainerRecord): Promise<void> {
    await unmount(record.rootfs);
    await rm(record.rootfs, { recursive: true, force: true });
    await this.options.snapshotter.remove(record.snapshotKey).catch((err: unknown) => {
      if ((err as { code?: string }).code !== 'not-found') throw err;
    });
  }

  /** Forcibly stops a running container first, as containerd does (CRI: "must be forcibly removed"). */
  private async removeContainer(record: ContainerRecord): Promise<void> {
    const handler = this.handlerOf(record.runtimeHandler);
    const gone = (err: unknown): void => {
      if (!(err instanceof RuntimeError && err.code === 'NotFound')) throw toCriError(err, `RemoveContainer ${record.id}`);
    };
    await handler.stop(record.id, FORCE_STOP_TIMEOUT_SECONDS).catch(gone);
    await handler.remove(record.id).catch(gone);
    try {
      await this.releaseContainerStorage(record);
    } catch (err) {
      throw toCriError(err, `RemoveContainer ${record.id}`);
    }
    await this.containerRecords.remove(record.id);
    this.containers.delete(record.id);
    this.containerNames.delete(containerName(record));
  }

  private async stateOf(record: ContainerRecord): Promise<ContainerState> {
    try {
      return await this.handlerOf(record.runtimeHandler).state(record.id);
    } catch (err) {
      return { status: 'unknown', pid: 0, createdAt: Number(BigInt(record.createdAt) / 1_000_000n), message: (err as Error).message };
    }
  }

  private async listContainers(filter: ContainerFilter__Output | null): Promise<Container[]> {
    const out: Container[] = [];
    for (const r of this.containers.values()) {
      if (filter?.id && !r.id.startsWith(filter.id)) continue;
      if (filter?.pod_sandbox_id && !r.sandboxId.startsWith(filter.pod_sandbox_id)) continue;
      if (filter && !matchesLabels(r.config.labels, filter.label_selector)) continue;
      const state = CONTAINER_STATE[(await this.stateOf(r)).status];
      if (filter?.state && filter.state.state !== state) continue;
      out.push({
        id: r.id,
        pod_sandbox_id: r.sandboxId,
        metadata: r.config.metadata,
        image: { image: r.imageId, user_specified_image: r.image },
        image_ref: r.imageRef,
        image_id: r.imageId,
        state,
        created_at: r.createdAt,
        labels: r.config.labels,
        annotations: r.config.annotations,
      });
    }
    return out;
  }

  private async containerStats(r: ContainerRecord): Promise<ContainerStats> {
    const [stats, usage] = await Promise.all([
      this.handlerOf(r.runtimeHandler).stats(r.id),
      this.options.snapshotter.usage(r.snapshotKey),
    ]);
    const timestamp = nanos(stats.timestamp);
    return {
      attributes: { id: r.id, metadata: r.config.metadata, labels: r.config.labels, annotations: r.config.annotations },
      cpu: { timestamp, usage_core_nano_seconds: { value: stats.cpu.usageCoreNanoSeconds.toString() } },
      memory: {
        timestamp,
        working_set_bytes: { value: stats.memory.workingSetBytes },
        usage_bytes: { value: stats.memory.usageBytes },
        rss_bytes: { value: stats.memory.rssBytes },
      },
      writable_layer: {
        timestamp,
        fs_id: { mountpoint: this.snapshotRoot() },
        used_bytes: { value: usage.bytes },
        inodes_used: { value: usage.inodes },
      },
    };
  }

  private snapshotRoot(): string {
    return (this.options.snapshotter as { root?: string }).root ?? '';
  }

  private async sandboxStats(s: SandboxRecord): Promise<PodSandboxStats> {
    const containers: ContainerStats[] = [];
    for (const c of this.containersOf(s.id)) {
      const state = await this.stateOf(c);
      if (state.status !== 'running') continue;
      containers.push(await this.containerStats(c).catch((err: unknown) => {
        throw toCriError(err, `stats of container ${c.id}`);
      }));
    }
    const timestamp = nanos(Date.now());
    let cpu = 0n;
    let workingSet = 0;
    let usage = 0;
    let rss = 0;
    for (const c of containers) {
      cpu += BigInt(String(c.cpu?.usage_core_nano_seconds?.value ?? 0));
      workingSet += Number(c.memory?.working_set_bytes?.value ?? 0);
      usage += Number(c.memory?.usage_bytes?.value ?? 0);
      rss += Number(c.memory?.rss_bytes?.value ?? 0);
    }
    const stats: PodSandboxStats = {
      attributes: { id: s.id, metadata: s.config.metadata, labels: s.config.labels, annotations: s.config.annotations },
      linux: {
        cpu: { timestamp, usage_core_nano_seconds: { value: cpu.toString() } },
        memory: { timestamp, working_set_bytes: { value: workingSet }, usage_bytes: { value: usage }, rss_bytes: { value: rss } },
        containers,
      },
    };
    const eth = s.network?.interfaces[0]?.name;
    if (s.state === 'ready' && !s.hostNetwork && eth) {
      const n = await interfaceStats(this.namespacesOf(s.id).net, eth);
      const iface = { name: n.name, rx_bytes: { value: n.rxBytes }, rx_errors: { value: n.rxErrors }, tx_bytes: { value: n.txBytes }, tx_errors: { value: n.txErrors } };
      stats.linux!.network = { timestamp, default_interface: iface, interfaces: [iface] };
    }
    return stats;
  }

  /**
   * Each running container's stats as its handler reports them, block I/O included, which CRI has no
   * field for (the admin socket serves them). A container that stops meanwhile is left out.
   */
  async handlerStats(): Promise<{ id: string; stats: HandlerStats }[]> {
    const out: { id: string; stats: HandlerStats }[] = [];
    for (const r of this.containers.values()) {
      if ((await this.stateOf(r)).status !== 'running') continue;
      const stats = await this.handlerOf(r.runtimeHandler).stats(r.id).catch(() => undefined);
      if (stats) out.push({ id: r.id, stats });
    }
    return out;
  }

  /** Each ready pod's interface counters with packets and drops, which CRI's NetworkUsage lacks. */
  async sandboxInterfaces(): Promise<{ id: string; timestamp: number; interfaces: InterfaceStats[] }[]> {
    const out: { id: string; timestamp: number; interfaces: InterfaceStats[] }[] = [];
    for (const s of this.sandboxes.values()) {
      const eth = s.network?.interfaces[0]?.name;
      if (s.state !== 'ready' || s.hostNetwork || !eth) continue;
      const counters = await interfaceStats(this.namespacesOf(s.id).net, eth).catch(() => undefined);
      if (counters) out.push({ id: s.id, timestamp: Date.now(), interfaces: [counters] });
    }
    return out;
  }

  // ---- images --------------------------------------------------------------------------------

  private criImage(image: Image): CriImage {
    const user = image.config.config?.User ?? '';
    const name = user.split(':')[0] ?? '';
    const out: CriImage = { id: image.id, repo_tags: image.repoTags, repo_digests: image.repoDigests, size: image.size, spec: { image: image.id } };
    if (/^\d+$/.test(name)) out.uid = { value: Number(name) };
    else if (name) out.username = name;
    return out;
  }

  /** The container that uses `imageId`, if any. */
  private userOf(imageId: string): ContainerRecord | undefined {
    return [...this.containers.values()].find((c) => c.imageId === imageId);
  }

  // ---- the CRI surface -----------------------------------------------------------------------

  implementation(): Partial<CriImplementation> {
    const images = this.options.images;
    return {
      Version: () => ({ version: '0.1.0', runtime_name: RUNTIME_NAME, runtime_version: RUNTIME_VERSION, runtime_api_version: CRI_API_VERSION }),
      Status: async () => ({
        status: {
          conditions: [
            { type: 'RuntimeReady', status: true },
            { type: 'NetworkReady', status: true },
          ],
        },
      }),

      RunPodSandbox: async (req) => ({ pod_sandbox_id: await this.runPodSandbox(req.config!, req.runtime_handler) }),
      StopPodSandbox: async (req) => {
        const record = this.sandbox(req.pod_sandbox_id);
        await this.withLock(record.id, () => this.stopPodSandbox(record));
        return {};
      },
      RemovePodSandbox: async (req) => {
        const record = this.sandboxes.get(req.pod_sandbox_id) ?? this.findByPrefix(this.sandboxes, req.pod_sandbox_id);
        if (record) await this.withLock(record.id, () => this.removePodSandbox(record));
        return {};
      },
      PodSandboxStatus: async (req) => {
        const r = this.sandbox(req.pod_sandbox_id);
        const [first, ...rest] = r.network?.ips ?? [];
        const nsOptions = r.config.linux?.security_context?.namespace_options;
        return {
          status: {
            ...this.podSandbox(r),
            network: { ip: first?.address ?? '', additional_ips: rest.map((ip) => ({ ip: ip.address })) },
            linux: { namespaces: { options: nsOptions ?? { network: 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
          },
          info: {},
        };
      },
      ListPodSandbox: async (req) => {
        const f = req.filter;
        const items = [...this.sandboxes.values()].filter(
          (s) =>
            (!f?.id || s.id.startsWith(f.id)) &&
            (!f?.state || f.state.state === (s.state === 'ready' ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY')) &&
            (!f || matchesLabels(s.config.labels, f.label_selector)),
        );
        return { items: items.map((s) => this.podSandbox(s)) };
      },

      CreateContainer: async (req) => {
        const sandbox = this.sandbox(req.pod_sandbox_id);
        const id = await this.withLock(sandbox.id, () => this.createContainer(sandbox.id, req.config!));
        return { container_id: id };
      },
      StartContainer: async (req) => {
        const r = this.container(req.container_id);
        await this.withLock(r.id, () => this.handlerOf(r.runtimeHandler).start(r.id)).catch((err: unknown) => {
          throw toCriError(err, `StartContainer ${r.id}`);
        });
        return {};
      },
      StopContainer: async (req) => {
        const r = this.container(req.container_id);
        await this.withLock(r.id, () => this.handlerOf(r.runtimeHandler).stop(r.id, Math.max(0, req.timeout))).catch((err: unknown) => {
          throw toCriError(err, `StopContainer ${r.id}`);
        });
        return {};
      },
      RemoveContainer: async (req) => {
        const r = this.containers.get(req.container_id) ?? this.findByPrefix(this.containers, req.container_id);
        if (r) await this.withLock(r.sandboxId, () => this.withLock(r.id, () => this.removeContainer(r)));
        return {};
      },
      ListContainers: async (req) => ({ containers: await this.listContainers(req.filter) }),
      ContainerStatus: async (req) => {
        const r = this.container(req.container_id);
        const s = await this.stateOf(r);
        return {
          status: {
            id: r.id,
            metadata: r.config.metadata,
            state: CONTAINER_STATE[s.status],
            created_at: r.createdAt,
            started_at: s.startedAt ? nanos(s.startedAt) : 0,
            finished_at: s.finishedAt ? nanos(s.finishedAt) : 0,
            exit_code: s.exitCode ?? 0,
            image: { image: r.image },
            image_ref: r.imageRef,
            image_id: r.imageId,
            reason: s.status === 'exited' ? (s.reason ?? 'Error') : '',
            message: s.message ?? '',
            labels: r.config.labels,
            annotations: r.config.annotations,
            mounts: r.config.mounts,
            log_path: r.logPath,
          },
          info: {},
        };
      },
      UpdateContainerResources: async (req) => {
        const r = this.container(req.container_id);
        const resources = resourcesOf(req.linux) ?? {};
        await this.handlerOf(r.runtimeHandler).updateResources(r.id, resources).catch((err: unknown) => {
          throw toCriError(err, `UpdateContainerResources ${r.id}`);
        });
        return {};
      },
      ReopenContainerLog: async (req) => {
        const r = this.container(req.container_id);
        await this.handlerOf(r.runtimeHandler).reopenLog(r.id).catch((err: unknown) => {
          throw toCriError(err, `ReopenContainerLog ${r.id}`);
        });
        return {};
      },
      ExecSync: async (req) => {
        const r = this.container(req.container_id);
        const result = await this.handlerOf(r.runtimeHandler).execSync(r.id, req.cmd, Math.max(0, req.timeout)).catch((err: unknown) => {
          throw toCriError(err, `ExecSync in ${r.id}`);
        });
        return { stdout: result.stdout, stderr: result.stderr, exit_code: result.exitCode };
      },
      Exec: async (req) => {
        const streaming = this.requireStreaming('Exec');
        const r = this.container(req.container_id);
        if ((await this.stateOf(r)).status !== 'running') throw CriError.failedPrecondition(`container ${r.id} is not running`);
        try {
          return { url: streaming.registerExec({ containerId: r.id, cmd: req.cmd, tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr }) };
        } catch (err) {
          throw toCriError(err, `Exec in ${r.id}`);
        }
      },
      Attach: async (req) => {
        const streaming = this.requireStreaming('Attach');
        const r = this.container(req.container_id);
        if ((await this.stateOf(r)).status !== 'running') throw CriError.failedPrecondition(`container ${r.id} is not running`);
        try {
          return { url: streaming.registerAttach({ containerId: r.id, tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr }) };
        } catch (err) {
          throw toCriError(err, `Attach to ${r.id}`);
        }
      },
      PortForward: (req) => {
        const streaming = this.requireStreaming('PortForward');
        const sb = this.sandbox(req.pod_sandbox_id);
        try {
          return { url: streaming.registerPortForward({ podSandboxId: sb.id, ports: req.port }) };
        } catch (err) {
          throw toCriError(err, `PortForward to ${sb.id}`);
        }
      },
      ContainerStats: async (req) => {
        const r = this.container(req.container_id);
        return { stats: await this.containerStats(r).catch((err: unknown) => { throw toCriError(err, `ContainerStats ${r.id}`); }) };
      },
      ListContainerStats: async (req) => {
        const f = req.filter;
        const stats: ContainerStats[] = [];
        for (const r of this.containers.values()) {
          if (f?.id && !r.id.startsWith(f.id)) continue;
          if (f?.pod_sandbox_id && !r.sandboxId.startsWith(f.pod_sandbox_id)) continue;
          if (f && !matchesLabels(r.config.labels, f.label_selector)) continue;
          if ((await this.stateOf(r)).status !== 'running') continue;
          const s = await this.containerStats(r).catch(() => undefined);
          if (s) stats.push(s);
        }
        return { stats };
      },
      PodSandboxStats: async (req) => {
        const s = this.sandbox(req.pod_sandbox_id);
        return { stats: await this.sandboxStats(s).catch((err: unknown) => { throw toCriError(err, `PodSandboxStats ${s.id}`); }) };
      },
      ListPodSandboxStats: async (req) => {
        const f = req.filter;
        const stats: PodSandboxStats[] = [];
        for (const s of this.sandboxes.values()) {
          if (f?.id && !s.id.startsWith(f.id)) continue;
          if (f && !matchesLabels(s.config.labels, f.label_selector)) continue;
          if (s.state !== 'ready') continue;
          stats.push(await this.sandboxStats(s).catch((err: unknown) => { throw toCriError(err, `ListPodSandboxStats ${s.id}`); }));
        }
        return { stats };
      },

      ListImages: async (req) => {
        const wanted = req.filter?.image?.image;
        let list = await images.list();
        if (wanted) {
          const one = await images.status(wanted);
          list = one ? [one] : [];
        }
        return { images: list.map((i) => this.criImage(i)) };
      },
      ImageStatus: async (req) => {
        const image = await images.status(req.image!.image).catch((err: unknown) => { throw toCriError(err, `ImageStatus ${req.image!.image}`); });
        return image ? { image: this.criImage(image), info: {} } : {};
      },
      PullImage: async (req, call) => {
        const ref = req.image!.image;
        const auth = registryAuth(req.auth);
        const image = await images.pull(ref, { ...(auth ? { auth } : {}), signal: call.signal }).catch((err: unknown) => {
          throw toCriError(err, `PullImage ${ref}`);
        });
        return { image_ref: image.id };
      },
      RemoveImage: async (req) => {
        const ref = req.image!.image;
        const image = await images.status(ref);
        if (!image) return {};
        const user = this.userOf(image.id);
        if (user) {
          throw CriError.failedPrecondition(`image ${ref} (${image.id}) is in use by container ${user.id} (${user.config.metadata!.name}); remove the container first`);
        }
        await images.remove(ref, (id) => this.userOf(id) !== undefined).catch((err: unknown) => {
          if (err instanceof NotFoundError) return;
          throw toCriError(err, `RemoveImage ${ref}`);
        });
        return {};
      },
      ImageFsInfo: async () => {
        const usage = await images.fsInfo();
        const timestamp = nanos(Date.now());
        const fs = usage.map((u) => ({ timestamp, fs_id: { mountpoint: u.mountpoint }, used_bytes: { value: u.usedBytes }, inodes_used: { value: u.inodesUsed } }));
        return { image_filesystems: fs.slice(0, 1), container_filesystems: fs.slice(1) };
      },
    };
  }
}
