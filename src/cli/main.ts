import { Command } from 'commander';
import { UsageError } from './config.js';

const program = new Command('atoll')
  .description('Atoll: an edge Kubernetes distribution. Autonomous edge nodes, VM-sandboxed pods.')
  .showHelpAfterError('(run with --help for usage)')
  // A flag belongs to the command it follows: `atoll runtime --root` and `atoll runtime template build --root` are two flags.
  .enablePositionalOptions();

// `atoll agent` lives as long as its edge node and loads only its own command: the others would keep
// the control plane's modules (API server, controllers, `up`) resident in it, 4-7 MiB for nothing.
if (process.argv[2] === 'agent') {
  const { registerAgentCommand } = await import('./agent.js');
  registerAgentCommand(program);
} else {
  const { registerCommands } = await import('./commands.js');
  registerCommands(program);
}

program.parseAsync().catch((err: unknown) => {
  if (err instanceof UsageError) {
    console.error(`atoll: ${err.message}`);
    process.exit(2);
  }
  console.error('atoll:', err);
  process.exit(1);
});
