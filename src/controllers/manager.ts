import type { KubeClient } from '../client/client.js';
import { SharedInformers, type Controller, type ErrorSink } from './controller.js';
import { EndpointsController } from './endpoints.js';
import { GarbageCollector } from './garbage-collector.js';
import { NamespaceController } from './namespace.js';
import { NodeLifecycleController, type NodeLifecycleOptions } from './node-lifecycle.js';
import { ReplicaSetController } from './replicaset.js';
import { DeploymentController } from './deployment.js';
import { DaemonSetController } from './daemonset.js';
import { CsrApprovingController } from './certificates-approving.js';
import { CsrSigningController } from './certificates-signing.js';
import { AutonomyController, protectsAutonomousNode } from './autonomy.js';

/** The controllers `runControllers` starts itself. */
export const CONTROLLER_NAMES = [
  'node-lifecycle', 'garbage-collector', 'namespace', 'endpoints', 'replicaset', 'deployment', 'daemonset', 'csr-approving', 'csr-signing', 'autonomy',
] as const;
export type ControllerName = (typeof CONTROLLER_NAMES)[number];

export interface ControllerManagerOptions extends Omit<NodeLifecycleOptions, 'onError'> {
  signal: AbortSignal;
  /** Seconds between the garbage collector's discovery passes (new custom resources). */
  gcDiscoveryPeriodSeconds?: number;
  /** Start only these of the built-in controllers (default all). */
  controllers?: ControllerName[];
  /**
   * The CA that csr-signing signs kubelet certificates with (kube-controller-manager's
   * `--cluster-signing-cert-file/--cluster-signing-key-file`). Without them csr-signing does not run.
   */
  clusterSigningCertFile?: string;
  clusterSigningKeyFile?: string;
  onError?: ErrorSink;
}

/**
 * Extra controllers: a list, or a function given the shared informers so that, for example, the
 * workload controllers watch pods through the same informer as everyone else.
 */
export type ExtraControllers = Controller[] | ((informers: SharedInformers) => Controller[]);

/**
 * Runs the control loops of the controller manager against `client` until `opts.signal` aborts:
 * node lifecycle, garbage collector, namespace, endpoints, the workload controllers, the CSR approver
 * and signer and the autonomy controller, plus `extra`. Every controller shares one informer per
 * resource. Resolves when all have stopped.
 */
export async function runControllers(client: KubeClient, opts: ControllerManagerOptions, extra: ExtraControllers = []): Promise<void> {
  const informers = new SharedInformers(client);
  const enabled = (name: ControllerName) => !opts.controllers || opts.controllers.includes(name);
  const controllers: Controller[] = [];
  if (enabled('node-lifecycle')) {
    controllers.push(
      new NodeLifecycleController(client, informers, {
        nodeMonitorGracePeriodSeconds: opts.nodeMonitorGracePeriodSeconds,
        nodeMonitorPeriodSeconds: opts.nodeMonitorPeriodSeconds,
        nodeEvictionRate: opts.nodeEvictionRate,
        // Edge autonomy: nodes annotated `node.atoll.dev/autonomy` keep their pods Ready and in place.
        protect: opts.protect ?? protectsAutonomousNode,
        onError: opts.onError,
      }),
    );
  }
  if (enabled('garbage-collector')) controllers.push(new GarbageCollector(client, informers, { discoveryPeriodSeconds: opts.gcDiscoveryPeriodSeconds, onError: opts.onError }));
  if (enabled('namespace')) controllers.push(new NamespaceController(client, informers, { onError: opts.onError }));
  if (enabled('endpoints')) controllers.push(new EndpointsController(client, informers, { onError: opts.onError }));
  const sink = opts.onError;
  const workload = (name: string) => ({ informers, onError: sink && ((key: string, err: unknown) => sink(name, key, err)) });
  if (enabled('replicaset')) controllers.push(new ReplicaSetController(client, workload('replicaset')));
  if (enabled('deployment')) controllers.push(new DeploymentController(client, workload('deployment')));
  if (enabled('daemonset')) controllers.push(new DaemonSetController(client, workload('daemonset')));
  if (enabled('csr-approving')) controllers.push(new CsrApprovingController(client, informers, { onError: opts.onError }));
  const { clusterSigningCertFile: certFile, clusterSigningKeyFile: keyFile } = opts;
  if ((certFile === undefined) !== (keyFile === undefined)) throw new Error('the cluster signing certificate and key files must be given together');
  if (enabled('csr-signing') && certFile !== undefined && keyFile !== undefined) {
    controllers.push(new CsrSigningController(client, informers, { certFile, keyFile, onError: opts.onError }));
  }
  if (enabled('autonomy')) controllers.push(new AutonomyController(client, informers, { onError: opts.onError }));
  controllers.push(...(typeof extra === 'function' ? extra(informers) : extra));
  informers.start(opts.signal);
  await Promise.all(controllers.map((c) => c.run(opts.signal)));
}
