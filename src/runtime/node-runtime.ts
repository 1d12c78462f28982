import { dirname, join } from 'node:path';
import { serveAdmin } from './admin.js';
import { serveCri, socketPathOf, type CriServer } from './cri/index.js';
import { loadRegistriesConfig } from './images/config.js';
import { ImageStore } from './images/store.js';
import { BridgeNetwork, type BridgeNetworkOptions } from './network/index.js';
import { RuncHandler } from './runc/handler.js';
import { RuntimeService } from './service/service.js';
import { OverlaySnapshotter } from './snapshots/overlay.js';

export const DEFAULT_SOCKET = '/run/atoll/cri.sock';
export const DEFAULT_ADMIN_SOCKET = '/run/atoll/admin.sock';
export const DEFAULT_ROOT = '/var/lib/atoll/runtime';
export const DEFAULT_RUN_DIR = '/run/atoll';
export const DEFAULT_LOG_ROOT = '/var/log/pods';

export interface NodeRuntimeOptions {
  socket?: string;
  /** The admin socket `atoll images import` talks to; default `admin.sock` beside the CRI socket. */
  adminSocket?: string;
  /** Persistent state: images, snapshots, sandbox and container records, IPAM. */
  root?: string;
  /** Volatile state: namespace files, rootfs mounts, conmon sockets. */
  runDir?: string;
  /** Every sandbox's log directory must lie inside it. */
  logRoot?: string;
  /** K3s-style registries.yaml (mirrors, rewrites, auth, TLS). */
  registriesFile?: string;
  network?: Omit<BridgeNetworkOptions, 'stateDir'>;
  cgroupParent?: string;
  /** Where the CRI streaming server (exec, port-forward) listens; default 127.0.0.1, any free port. */
  streaming?: { address?: string; port?: number };
  log?: (line: string) => void;
}

/**
 * `atoll runtime`: the CRI runtime of one node, assembled from its parts (overlay snapshots, image
 * store, bridge network, runc handler) and served on a unix socket.
 */
export class NodeRuntime {
  private constructor(
    readonly service: RuntimeService,
    readonly server: CriServer,
    private readonly admin: { close(): Promise<void> },
    readonly handler: RuncHandler,
    readonly snapshotter: OverlaySnapshotter,
    readonly network: BridgeNetwork,
  ) {}

  static async start(opts: NodeRuntimeOptions = {}): Promise<NodeRuntime> {
    const root = opts.root ?? DEFAULT_ROOT;
    const runDir = opts.runDir ?? DEFAULT_RUN_DIR;
    const log = opts.log ?? ((line: string) => console.error(line));
    const snapshotter = new OverlaySnapshotter(join(root, 'snapshots'));
    const handler = new RuncHandler(join(root, 'runc'), { cgroupParent: opts.cgroupParent, log });
    try {
      const registries = opts.registriesFile ? await loadRegistriesConfig(opts.registriesFile) : undefined;
      const images = new ImageStore(join(root, 'images'), { snapshots: snapshotter.root, registries });
      const network = new BridgeNetwork({ ...opts.network, stateDir: join(root, 'network') });
      const service = await RuntimeService.open({
        root: join(root, 'state'),
        runDir,
        logRoot: opts.logRoot ?? DEFAULT_LOG_ROOT,
        handlers: { runc: handler },
        network,
        snapshotter,
        images,
        streaming: opts.streaming ?? {},
        log,
      });
      const socket = opts.socket ?? DEFAULT_SOCKET;
      const server = await serveCri(socket, service.implementation(), { log });
      const admin = await serveAdmin(opts.adminSocket ?? join(dirname(socketPathOf(socket)), 'admin.sock'), images);
      return new NodeRuntime(service, server, admin, handler, snapshotter, network);
    } catch (err) {
      await handler.close();
      await snapshotter.close();
      throw err;
    }
  }

  get socketPath(): string {
    return this.server.socketPath;
  }

  /** Stops serving; containers keep running and are adopted by the next start. */
  async close(): Promise<void> {
    await this.admin.close();
    await this.server.close();
    await this.service.close();
    await this.handler.close();
    await this.snapshotter.close();
  }
}
