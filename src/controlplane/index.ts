import { setMaxListeners } from 'node:events';
import { ApiServer, type ApiServerOptions } from '../apiserver/server.js';
import { KubeClient } from '../client/client.js';
import { defaultErrorSink } from '../controllers/controller.js';
import { runControllers, type ControllerName } from '../controllers/manager.js';
import { runScheduler } from '../scheduler/scheduler.js';

export interface ControlPlaneOptions extends ApiServerOptions {
  /** Run the controller manager in this process (default true). */
  controllers?: boolean;
  /** Only these controllers (default all). */
  controllerNames?: ControllerName[];
  /** Run the scheduler in this process (default true). */
  scheduler?: boolean;
  nodeMonitorGracePeriodSeconds?: number;
}

/**
 * The cloud side in one process, as K3s runs it: the API server, and the controller manager and
 * scheduler talking to it over loopback HTTPS like any other client, so each also works against a
 * real kube-apiserver on its own.
 */
export class ControlPlane {
  private readonly abort = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private readonly clients: KubeClient[] = [];

  private constructor(readonly server: ApiServer) {
    // Every informer's watch listens on this one signal.
    setMaxListeners(0, this.abort.signal);
  }

  static async start(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const server = await ApiServer.start(opts);
    const cp = new ControlPlane(server);
    const { signal } = cp.abort;
    if (opts.controllers !== false) {
      const client = cp.client('kube-controller-manager');
      cp.loops.push(
        runControllers(client, {
          signal,
          controllers: opts.controllerNames,
          nodeMonitorGracePeriodSeconds: opts.nodeMonitorGracePeriodSeconds,
          onError: defaultErrorSink,
        }),
      );
    }
    if (opts.scheduler !== false) cp.loops.push(runScheduler(cp.client('kube-scheduler'), { signal }));
    return cp;
  }

  async close(): Promise<void> {
    this.abort.abort();
    await Promise.allSettled(this.loops);
    for (const c of this.clients) c.close();
    await this.server.close();
  }

  private client(userAgent: string): KubeClient {
    const client = KubeClient.fromKubeconfig(this.server.kubeconfigPath, userAgent);
    this.clients.push(client);
    return client;
  }
}
