import { ApiServer, type ApiServerOptions } from '../apiserver/server.js';
import type { ControllerName } from '../controllers/manager.js';
import { startComponentThread, type ComponentThread } from './thread.js';

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
 * The cloud side in one process, as K3s runs it: the API server, plus the controller manager and the
 * scheduler on threads of their own, talking to it over loopback HTTPS like any other client, so each
 * also works against a real kube-apiserver on its own.
 */
export class ControlPlane {
  private readonly threads: ComponentThread[] = [];

  private constructor(readonly server: ApiServer) {}

  static async start(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const server = await ApiServer.start(opts);
    const cp = new ControlPlane(server);
    const { caPem, certPem, keyPem } = server.admin;
    const credentials = { server: server.url, caPem, certPem, keyPem };
    if (opts.controllers !== false) {
      cp.threads.push(
        startComponentThread(credentials, 'kube-controller-manager', {
          name: 'controllers',
          controllers: opts.controllerNames,
          nodeMonitorGracePeriodSeconds: opts.nodeMonitorGracePeriodSeconds,
          clusterSigningCertFile: server.pki!.caCertPath,
          clusterSigningKeyFile: server.pki!.caKeyPath,
        }),
      );
    }
    if (opts.scheduler !== false) cp.threads.push(startComponentThread(credentials, 'kube-scheduler', { name: 'scheduler' }));
    return cp;
  }

  async close(): Promise<void> {
    await Promise.all(this.threads.map((t) => t.stop()));
    await this.server.close();
  }
}
