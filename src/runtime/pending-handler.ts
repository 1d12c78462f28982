import {
  RuntimeError,
  type AdoptedContainer,
  type AttachSession,
  type ContainerSpec,
  type ContainerState,
  type ContainerStats,
  type ExecOptions,
  type ExecResult,
  type ExecSession,
  type Resources,
  type RuntimeHandler,
  type SandboxSpec,
} from './handler.js';

/**
 * A handler the runtime serves before it has opened: runv takes seconds at a node's start to check
 * its guest kernel and images and pick an accelerator, and a rebooted node should run its runc pods
 * meanwhile. Every call waits for `opened()` (the first call starts the open if nothing has yet) and
 * then goes to the real handler; if the open failed, calls fail with the reason.
 *
 * It adopts nothing and closes nothing: the runtime defers a handler only when that handler has no
 * sandboxes or containers on disk, so there is nothing to adopt before it opens, and the runtime
 * closes the real handler itself.
 */
export class PendingHandler implements RuntimeHandler {
  constructor(
    readonly name: string,
    /** Resolves with the opened handler, or rejects with why it cannot run on this node. */
    private readonly opened: () => Promise<RuntimeHandler>,
    /** The handler's RuntimeHandler.podNetworkInGuest, known before it opens. */
    readonly podNetworkInGuest?: boolean,
  ) {}

  private async handler(): Promise<RuntimeHandler> {
    return this.opened().catch((err: Error) => {
      throw new RuntimeError('InvalidArgument', `runtime handler ${JSON.stringify(this.name)} is not available on this node: ${err.message}`);
    });
  }

  async createContainer(spec: ContainerSpec): Promise<{ id: string }> {
    return (await this.handler()).createContainer(spec);
  }

  async start(id: string): Promise<void> {
    return (await this.handler()).start(id);
  }

  async stop(id: string, timeoutSeconds: number): Promise<void> {
    return (await this.handler()).stop(id, timeoutSeconds);
  }

  async kill(id: string, signal: string | number): Promise<void> {
    return (await this.handler()).kill(id, signal);
  }

  async remove(id: string): Promise<void> {
    return (await this.handler()).remove(id);
  }

  async state(id: string): Promise<ContainerState> {
    return (await this.handler()).state(id);
  }

  async wait(id: string, signal?: AbortSignal): Promise<ContainerState> {
    return (await this.handler()).wait(id, signal);
  }

  async execSync(id: string, cmd: string[], timeoutSeconds: number): Promise<ExecResult> {
    return (await this.handler()).execSync(id, cmd, timeoutSeconds);
  }

  async exec(id: string, cmd: string[], options: ExecOptions): Promise<ExecSession> {
    return (await this.handler()).exec(id, cmd, options);
  }

  async attach(id: string, options: ExecOptions): Promise<AttachSession> {
    const handler = await this.handler();
    if (!handler.attach) throw new RuntimeError('Internal', `the ${this.name} handler cannot attach`);
    return handler.attach(id, options);
  }

  async stats(id: string): Promise<ContainerStats> {
    return (await this.handler()).stats(id);
  }

  async updateResources(id: string, resources: Resources): Promise<void> {
    return (await this.handler()).updateResources(id, resources);
  }

  async reopenLog(id: string): Promise<void> {
    return (await this.handler()).reopenLog(id);
  }

  async startSandbox(spec: SandboxSpec): Promise<void> {
    return (await this.handler()).startSandbox?.(spec);
  }

  /** Also the rollback of a failed RunPodSandbox: a handler that never opened started nothing to stop. */
  async stopSandbox(sandboxId: string): Promise<void> {
    const handler = await this.opened().catch(() => undefined);
    return handler?.stopSandbox?.(sandboxId);
  }

  async adopt(): Promise<AdoptedContainer[]> {
    return [];
  }

  async close(): Promise<void> {}
}
