/**
 * The scheduler as its own process, for bench/scheduler/run.ts:
 *
 *   node dist/bench/scheduler/scheduler-process.js <kubeconfig>
 *
 * Prints "synced" once its informers have loaded, and stops on SIGTERM, SIGINT, or when the parent
 * that started it with an IPC channel goes away; then prints "stats <json>" (SchedulerStats).
 */
import { KubeClient } from '../../src/client/client.js';
import { newSchedulerStats, runScheduler } from '../../src/scheduler/scheduler.js';

const kubeconfig = process.argv[2];
if (!kubeconfig) {
  process.stderr.write('usage: scheduler-process.js <kubeconfig>\n');
  process.exit(2);
}

const client = KubeClient.fromKubeconfig(kubeconfig, 'atoll-scheduler');
const stop = new AbortController();
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => stop.abort());
process.once('disconnect', () => stop.abort());

const stats = newSchedulerStats();
try {
  await runScheduler(client, { signal: stop.signal, stats, onSynced: () => process.stdout.write('synced\n') });
  process.stdout.write(`stats ${JSON.stringify(stats)}\n`);
} finally {
  client.close();
  process.disconnect?.();
}
