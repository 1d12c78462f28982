import { setMaxListeners } from 'node:events';
import { parentPort, workerData } from 'node:worker_threads';
import { KubeClient } from '../client/client.js';
import { defaultErrorSink } from '../controllers/controller.js';
import { runControllers } from '../controllers/manager.js';
import { runScheduler } from '../scheduler/scheduler.js';
import type { ThreadData } from './thread.js';

// The thread started by startComponentThread: runs one component until told "stop".
const { credentials, userAgent, component } = workerData as ThreadData;
const client = new KubeClient(credentials, userAgent);
const stop = new AbortController();
// Every informer's watch listens on this one signal.
setMaxListeners(0, stop.signal);
parentPort!.on('message', (message) => {
  if (message === 'stop') stop.abort();
});
try {
  if (component.name === 'scheduler') {
    const { name: _, ...options } = component;
    await runScheduler(client, { ...options, signal: stop.signal });
  } else {
    await runControllers(client, {
      signal: stop.signal,
      controllers: component.controllers,
      nodeMonitorGracePeriodSeconds: component.nodeMonitorGracePeriodSeconds,
      clusterSigningCertFile: component.clusterSigningCertFile,
      clusterSigningKeyFile: component.clusterSigningKeyFile,
      onError: defaultErrorSink,
    });
  }
} finally {
  client.close();
  parentPort!.close();
}
