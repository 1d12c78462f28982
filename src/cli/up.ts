import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { DEFAULT_PORT } from '../apiserver/server.js';
import { setPartition } from '../up/net.js';
import { selectNodes, UpStateError, type UpNode } from '../up/state.js';
import { TopologyError } from '../up/topology.js';
import { DEFAULT_UP_DATA_DIR, DEFAULT_UP_NODES, MAX_UP_NODES, runUp, UpError } from '../up/up.js';
import { UsageError, parsePort, parseRunvPool, parseSeconds, withConfigFile } from './config.js';

/** Errors of `up` and `net` that are the user's to fix print as usage errors, without a stack. */
function asUsage(err: unknown): never {
  if (err instanceof UpStateError || err instanceof UpError || err instanceof TopologyError) throw new UsageError(err.message);
  throw err;
}

const dataDirOption = () => new Option('--data-dir <dir>', 'the data dir of the `atoll up` to act on').default(DEFAULT_UP_DATA_DIR);

export function registerUpCommands(program: Command): void {
  program
    .command('up')
    .description(
      'Run the whole system on this machine: the control plane and N edge nodes, each an agent in its own network namespace behind a veth "cloud link". ' +
        'Writes DIR/kubeconfig, preloads atoll.local/busybox:latest on every node, and stays in the foreground; Ctrl-C stops everything and removes what it made. ' +
        'Running it again over the same data dir resumes the same cluster.',
    )
    .option('--nodes <n>', `number of edge nodes, edge-1 … edge-N (default: as many as the last run over --data-dir, else ${DEFAULT_UP_NODES})`)
    .option('--data-dir <dir>', 'cluster state (server/, pki/, kubeconfig, up.json) and each node\'s files (nodes/<node>/)', DEFAULT_UP_DATA_DIR)
    .option('--port <n>', `HTTPS port of the API server (default: the last run's, else ${DEFAULT_PORT})`)
    .option('--node-monitor-grace-period <seconds>', 'how long a node may stay silent before the control plane marks it unreachable (default 50)')
    .option('--default-toleration-seconds <seconds>', 'tolerationSeconds of the not-ready/unreachable tolerations added to pods (default 300)')
    .option('--no-runv', 'nodes serve only RuntimeClass runc (default: also runv, a microVM per pod)')
    .option('--runv-cache <dir>', 'where the nodes share runv\'s guest kernel and images (default DIR/runv-cache)')
    .option('--runv-pool <n>', 'idle runv VMs each node keeps restored, for faster runv pod starts (0 to 8; default 0)')
    .option('--config <file>', 'YAML file whose keys are these flag names; command-line flags win')
    .action(async (raw: Record<string, unknown>, cmd: Command) => {
      const keys = ['nodes', 'data-dir', 'port', 'node-monitor-grace-period', 'default-toleration-seconds', 'runv', 'runv-cache', 'runv-pool'];
      const flags = withConfigFile(raw, keys, (name) => cmd.getOptionValueSource(name) === 'cli');
      let nodes: number | undefined;
      if (flags.nodes !== undefined) {
        const text = String(flags.nodes);
        nodes = Number(text);
        if (!/^\d+$/.test(text) || nodes < 1 || nodes > MAX_UP_NODES) throw new UsageError(`--nodes ${text}: give a whole number from 1 to ${MAX_UP_NODES}`);
      }
      const runvPool = flags.runvPool === undefined ? undefined : parseRunvPool(String(flags.runvPool));
      if (runvPool && flags.runv === false) throw new UsageError('--runv-pool is for the runv handler; drop --no-runv to serve it');
      const port = flags.port === undefined ? undefined : parsePort(String(flags.port), '--port');
      const seconds = (value: unknown, flag: string) => (value === undefined ? undefined : parseSeconds(String(value), flag));
      const nodeMonitorGracePeriodSeconds = seconds(flags.nodeMonitorGracePeriod, '--node-monitor-grace-period');
      const defaultTolerationSeconds = seconds(flags.defaultTolerationSeconds, '--default-toleration-seconds');
      const stop = new AbortController();
      let signals = 0;
      const onSignal = () => {
        if (signals++ > 0) console.error('atoll up: still stopping; removing the nodes takes a few seconds');
        stop.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      await runUp({
        dataDir: resolve(String(flags.dataDir)),
        nodes,
        port,
        nodeMonitorGracePeriodSeconds,
        defaultTolerationSeconds,
        runv: flags.runv !== false,
        ...(flags.runvCache ? { runvCache: resolve(String(flags.runvCache)) } : {}),
        ...(runvPool ? { runvPool } : {}),
        signal: stop.signal,
      }).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EADDRINUSE') throw new UsageError(`--port ${port ?? DEFAULT_PORT}: the port is in use; stop what holds it or pick another port`);
        asUsage(err);
      });
      console.log('atoll up: stopped; run it again with the same --data-dir to resume the cluster');
      process.exit(0);
    });

  const net = program.command('net').description('The cloud links of the edge nodes of a running `atoll up`.');
  for (const [verb, cut, description] of [
    ['partition', true, 'Cut NODE\'s cloud link: packets between the cloud and the node are dropped silently (the node sees timeouts, not a link down). Its pods keep running.'],
    ['heal', false, 'Restore NODE\'s cloud link after `atoll net partition`.'],
  ] as const) {
    net
      .command(`${verb} <node>`)
      .description(description)
      .addOption(dataDirOption())
      .action(async (node: string, flags: { dataDir: string }) => {
        console.log(await setPartition(resolve(flags.dataDir), node, cut).catch(asUsage));
      });
  }
}

export type ImageTargetFlags = { adminSocket: string; node?: string; all: boolean; dataDir: string };

/** `--node`, `--all` and `--data-dir` for `atoll images`: act on nodes of a running `atoll up`. */
export function withUpNodeOptions(cmd: Command): Command {
  return cmd
    .option('--node <name>', 'a node of the `atoll up` running over --data-dir, instead of --admin-socket')
    .option('--all', 'every node of the `atoll up` running over --data-dir', false)
    .addOption(dataDirOption());
}

/**
 * The runtimes `atoll images` talks to: the nodes of a running `atoll up` picked by `--node`/`--all`,
 * or the one admin socket given.
 */
export async function imageTargets(flags: ImageTargetFlags, adminSocketGiven: boolean): Promise<{ name?: string; adminSocket: string }[]> {
  if (flags.node === undefined && !flags.all) return [{ adminSocket: flags.adminSocket }];
  if (flags.node !== undefined && flags.all) throw new UsageError('--node and --all: give one of them');
  if (adminSocketGiven) throw new UsageError('--admin-socket cannot be combined with --node or --all: those find the nodes\' sockets through --data-dir');
  const nodes: UpNode[] = await selectNodes(resolve(flags.dataDir), flags).catch(asUsage);
  return nodes.map((n) => ({ name: n.name, adminSocket: n.adminSocket }));
}
