import { Command, Option } from 'commander';
import { resolve } from 'node:path';
import { ApiServer, DEFAULT_PORT } from '../apiserver/server.js';
import { UsageError, parsePort, withConfigFile } from './config.js';

const program = new Command('atoll')
  .description('Atoll: an edge Kubernetes distribution. Autonomous edge nodes, VM-sandboxed pods.')
  .showHelpAfterError('(run with --help for usage)');

program
  .command('server')
  .description('Run the control plane API server (HTTPS); writes DIR/kubeconfig with admin credentials once serving.')
  .option('--data-dir <dir>', 'directory for state (server/state.db), PKI (pki/) and the admin kubeconfig', '/var/lib/atoll')
  .option('--port <n>', 'HTTPS port to listen on', String(DEFAULT_PORT))
  .option('--host <addr>', 'address to listen on', '0.0.0.0')
  .addOption(new Option('--tls-san <name...>', 'extra DNS names or IP addresses for the serving certificate').default([]))
  .option('--config <file>', 'YAML file whose keys are these flag names; command-line flags win')
  .action(async (raw: Record<string, unknown>, cmd: Command) => {
    const flags = withConfigFile(raw, ['data-dir', 'port', 'host', 'tls-san'], (name) => cmd.getOptionValueSource(name) === 'cli');
    const server = await ApiServer.start({
      dataDir: resolve(String(flags.dataDir)),
      port: parsePort(String(flags.port), '--port'),
      host: String(flags.host),
      hosts: flags.tlsSan as string[],
    }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') throw new UsageError(`--port ${flags.port}: the port is in use; stop what holds it or pick another port`);
      if (err.code === 'EACCES') throw new UsageError(`--data-dir ${flags.dataDir}: permission denied; run as root or choose a writable directory`);
      throw err;
    });
    console.log(`atoll server: serving the Kubernetes API at ${server.url}`);
    console.log(`atoll server: admin kubeconfig written to ${server.kubeconfigPath}`);
    console.log(`  try: kubectl --kubeconfig ${server.kubeconfigPath} get namespaces`);
    const stop = async () => {
      await server.close();
      process.exit(0);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

program.parseAsync().catch((err: unknown) => {
  if (err instanceof UsageError) {
    console.error(`atoll: ${err.message}`);
    process.exit(2);
  }
  console.error('atoll:', err);
  process.exit(1);
});
