import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { serveAdmin } from './admin.js';
import { serveCri, socketPathOf, type CriServer } from './cri/index.js';
import { loadRegistriesConfig } from './images/config.js';
import { ImageStore } from './images/store.js';
import { BridgeNetwork, type BridgeNetworkOptions } from './network/index.js';
import { PendingHandler } from './pending-handler.js';
import { RuncHandler } from './runc/handler.js';
import { RunvHandler, type RunvHandlerOptions } from './runv/handler.js';
import { TemplateCache } from './runv/template.js';
import type { VmOptions } from './runv/vm.js';
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
  /**
   * Also serve the `runv` handler: each pod of RuntimeClass handler `runv` in a microVM of its own
   * (runv/handler.ts), its state under `<root>/runv`. The guest kernel and images are fetched and built
   * at start when missing (with progress through `log`). `true` for the defaults, or options.
   */
  runv?: boolean | Pick<RunvHandlerOptions, 'cacheRoot' | 'startVm' | 'pool' | 'templates'>;
  /**
   * Serve before runv is open: it opens in the background, on `openRunv()` or the first runv call
   * (which waits for it), so a node's runc pods need not wait the seconds runv takes. When runv has
   * sandboxes or containers on disk to adopt, it opens at start all the same.
   */
  deferRunv?: boolean;
  log?: (line: string) => void;
}

/**
 * `atoll runtime`: the CRI runtime of one node, assembled from its parts (overlay snapshots, image
 * store, bridge network, runc handler, and the runv handler when asked for) and served on a unix socket.
 */
export class NodeRuntime {
  private constructor(
    readonly service: RuntimeService,
    readonly server: CriServer,
    private readonly admin: { close(): Promise<void> },
    readonly handler: RuncHandler,
    /** runv opened at start, when asked for and not deferred. */
    private readonly runvAtStart: RunvHandler | undefined,
    private readonly deferredRunv: DeferredRunv | undefined,
    private readonly templates: TemplateCache | undefined,
    readonly snapshotter: OverlaySnapshotter,
    readonly network: BridgeNetwork,
  ) {}

  static async start(opts: NodeRuntimeOptions = {}): Promise<NodeRuntime> {
    const root = opts.root ?? DEFAULT_ROOT;
    const runDir = opts.runDir ?? DEFAULT_RUN_DIR;
    const log = opts.log ?? ((line: string) => console.error(line));
    const snapshotter = new OverlaySnapshotter(join(root, 'snapshots'));
    const handler = new RuncHandler(join(root, 'runc'), { cgroupParent: opts.cgroupParent, log });
    let runv: RunvHandler | undefined;
    let deferred: DeferredRunv | undefined;
    let templates: TemplateCache | undefined;
    try {
      if (opts.runv) {
        const runvOptions = opts.runv === true ? {} : opts.runv;
        // Pods' VMs are restored from a template of their shape (built in the background on the first
        // miss, kept beside the guest kernel so the nodes of one machine share it) and cold booted meanwhile.
        if (!runvOptions.startVm) templates = new TemplateCache(runvOptions.cacheRoot ?? root, { log });
        const cache = templates;
        const options = { ...runvOptions, ...(cache ? { startVm: (o: VmOptions) => cache.startVm(o), templates: cache } : {}), root, log };
        if (opts.deferRunv && !(await hasRunvState(root))) deferred = new DeferredRunv(options);
        else runv = await openRunv(options);
      }
      const registries = opts.registriesFile ? await loadRegistriesConfig(opts.registriesFile) : undefined;
      const images = new ImageStore(join(root, 'images'), { snapshots: snapshotter.root, registries });
      const network = new BridgeNetwork({ ...opts.network, stateDir: join(root, 'network') });
      const service = await RuntimeService.open({
        root: join(root, 'state'),
        runDir,
        logRoot: opts.logRoot ?? DEFAULT_LOG_ROOT,
        handlers: { runc: handler, ...(runv ? { runv } : {}), ...(deferred ? { runv: deferred.pending } : {}) },
        network,
        snapshotter,
        images,
        streaming: opts.streaming ?? {},
        log,
      });
      const socket = opts.socket ?? DEFAULT_SOCKET;
      const server = await serveCri(socket, service.implementation(), { log });
      const admin = await serveAdmin(opts.adminSocket ?? join(dirname(socketPathOf(socket)), 'admin.sock'), images, service);
      return new NodeRuntime(service, server, admin, handler, runv, deferred, templates, snapshotter, network);
    } catch (err) {
      await handler.close();
      await runv?.close();
      await deferred?.close();
      await templates?.close();
      await snapshotter.close();
      throw err;
    }
  }

  get socketPath(): string {
    return this.server.socketPath;
  }

  /** The runv handler once it is open; undefined before, or when runv was not asked for or cannot run here. */
  get runv(): RunvHandler | undefined {
    return this.runvAtStart ?? this.deferredRunv?.handler;
  }

  /**
   * Opens a deferred runv now, if no runv call has yet; resolves with the handler once open, or with
   * undefined when runv was not asked for or cannot run on this node (the log says why).
   */
  async openRunv(): Promise<RunvHandler | undefined> {
    if (!this.deferredRunv) return this.runvAtStart;
    return this.deferredRunv.open().catch(() => undefined);
  }

  /** Stops serving; containers keep running and are adopted by the next start. */
  async close(): Promise<void> {
    await this.admin.close();
    await this.server.close();
    await this.service.close();
    await this.handler.close();
    await this.runvAtStart?.close();
    await this.deferredRunv?.close();
    await this.templates?.close();
    await this.snapshotter.close();
  }
}

/**
 * The runv handler, or undefined when it cannot run on this node (no QEMU, no guest kernel to be had):
 * the node still serves runc, and says why runv is missing. Records of runv pods from an earlier start
 * stay on disk for a later start that can open runv.
 */
async function openRunv(options: RunvHandlerOptions & { log: (line: string) => void }): Promise<RunvHandler | undefined> {
  try {
    return await RunvHandler.open(options);
  } catch (err) {
    options.log(unavailable(err as Error));
    return undefined;
  }
}

function unavailable(err: Error): string {
  return `atoll runtime: runv is not available on this node, serving runc only: ${err.message}`;
}

/** Whether runv has records of sandboxes or containers under `root` (RunvHandlerOptions.root), which only an open handler can adopt. */
async function hasRunvState(root: string): Promise<boolean> {
  for (const dir of ['sandboxes', 'containers']) {
    const entries = await readdir(join(root, 'runv', dir)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    if (entries.length > 0) return true;
  }
  return false;
}

/**
 * runv opening in the background (NodeRuntimeOptions.deferRunv): `pending` stands in for it in the
 * runtime's handlers from the start, and the first call on it, or `open()`, opens it once. With
 * nothing on disk to adopt, the opened handler's adopt() finds no containers for the CRI layer.
 */
class DeferredRunv {
  readonly pending = new PendingHandler('runv', () => this.open(), true);
  handler: RunvHandler | undefined;
  private opening: Promise<RunvHandler> | undefined;
  private readonly stop = new AbortController();

  constructor(private readonly options: RunvHandlerOptions & { log: (line: string) => void }) {}

  open(): Promise<RunvHandler> {
    if (this.stop.signal.aborted) return Promise.reject(new Error('the runtime is closing'));
    this.opening ??= this.openOnce();
    return this.opening;
  }

  private async openOnce(): Promise<RunvHandler> {
    try {
      const handler = await RunvHandler.open({ ...this.options, signal: this.stop.signal });
      try {
        await handler.adopt();
      } catch (err) {
        await handler.close();
        throw err;
      }
      this.handler = handler;
      this.options.log('atoll runtime: runv is open');
      return handler;
    } catch (err) {
      this.options.log(unavailable(err as Error));
      throw err;
    }
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.opening?.catch(() => undefined);
    await this.handler?.close();
  }
}
