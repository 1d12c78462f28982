import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_AGENT_PORT, NodeAgent } from '../agent/agent.js';
import { defaultRouteAddress } from '../agent/node-status.js';
import { DEFAULT_POD_SUBNET } from '../runtime/network/index.js';
import { UsageError, parsePort, parseRunvPool, parseSeconds, withConfigFile } from './config.js';
import { parseServers, serverOption } from './edgehub.js';

const KEYS = ['server', 'token', 'ca-file', 'node-name', 'data-dir', 'node-ip', 'pod-cidr', 'address', 'port', 'registries', 'probe-period', 'runv', 'runv-cache', 'runv-pool'];
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
/** RFC 1123 subdomain, what a Node name must be. */
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('Run one edge node: joins the cluster with a bootstrap token, runs the CRI runtime, and runs the pods bound to the node.')
    .addOption(serverOption('the API server, e.g. https://10.0.0.1:6443; repeat for several (preferred first); the node joins through the first'))
    .option('--token <token>', 'bootstrap token (abcdef.0123456789abcdef); needed until the node holds a client certificate')
    .option('--ca-file <file>', 'the cluster CA certificate (the server\'s pki/ca.crt)')
    .option('--node-name <name>', 'the Node\'s name', hostname().toLowerCase())
    .option('--data-dir <dir>', 'node state: certificates, runtime, pod volumes and logs', '/var/lib/atoll/agent')
    .option('--node-ip <ip>', 'the address the node is reached at (default: the default route\'s interface address)')
    .option('--pod-cidr <cidr>', 'this node\'s pod address range', DEFAULT_POD_SUBNET)
    .option('--address <ip>', 'address of the node server', '0.0.0.0')
    .option('--port <n>', 'port of the node server (logs, exec, stats)', String(DEFAULT_AGENT_PORT))
    .option('--registries <file>', 'registries.yaml with mirrors, rewrites, auth and TLS per registry')
    .option('--probe-period <seconds>', 'how often the embedded EdgeHub probes the API servers', '10')
    .option('--no-runv', 'serve only RuntimeClass handler runc (default: also runv, a microVM per pod, when QEMU can run here)')
    .option('--runv-cache <dir>', 'where runv keeps the guest kernel and images (default: under --data-dir)')
    .option('--runv-pool <n>', 'idle runv VMs kept restored for pods without a memory limit, which then start faster (0 to 8; default 0)')
    .option('--config <file>', 'YAML file whose keys are these flag names; command-line flags win')
    .action(async (raw: Record<string, unknown>, cmd: Command) => {
      const flags = withConfigFile(raw, KEYS, (name) => cmd.getOptionValueSource(name) === 'cli');
      const servers = parseServers(flags.server);
      const runvPool = flags.runvPool === undefined ? 0 : parseRunvPool(String(flags.runvPool));
      if (runvPool > 0 && flags.runv === false) throw new UsageError('--runv-pool is for the runv handler; drop --no-runv to serve it');
      const probePeriod = parseSeconds(String(flags.probePeriod), '--probe-period');
      if (probePeriod < 1) throw new UsageError(`--probe-period ${flags.probePeriod}: want at least 1 second`);
      if (!flags.caFile) throw new UsageError('--ca-file is required: pass the cluster CA certificate (pki/ca.crt of the server\'s data dir)');
      const caPem = await readFile(String(flags.caFile), 'utf8').catch((err: Error) => {
        throw new UsageError(`--ca-file ${flags.caFile}: ${err.message}; pass the cluster CA certificate`);
      });
      if (!caPem.includes('BEGIN CERTIFICATE')) throw new UsageError(`--ca-file ${flags.caFile}: not a PEM certificate`);
      const nodeName = String(flags.nodeName);
      if (!NODE_NAME.test(nodeName) || nodeName.length > 253) throw new UsageError(`--node-name ${nodeName}: not a valid node name; use lower-case letters, digits, '-' and '.'`);
      const podCidr = String(flags.podCidr);
      if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(podCidr)) throw new UsageError(`--pod-cidr ${podCidr}: not an IPv4 CIDR; give one like 10.244.1.0/24`);
      const nodeIP = flags.nodeIp ? String(flags.nodeIp) : await defaultRouteAddress();
      if (!nodeIP) throw new UsageError('--node-ip: the node has no default route to take its address from; pass --node-ip');
      if (!IPV4.test(nodeIP)) throw new UsageError(`--node-ip ${nodeIP}: not an IPv4 address`);
      const agent = await NodeAgent.start({
        servers,
        probePeriodMs: probePeriod * 1000,
        caPem,
        token: flags.token ? String(flags.token) : undefined,
        nodeName,
        dataDir: resolve(String(flags.dataDir)),
        nodeIP,
        podCidr,
        address: String(flags.address),
        port: parsePort(String(flags.port), '--port'),
        registriesFile: flags.registries ? resolve(String(flags.registries)) : undefined,
        ...(flags.runv === false ? {} : { runv: { ...(flags.runvCache ? { cacheRoot: resolve(String(flags.runvCache)) } : {}), pool: runvPool } }),
      }).catch((err: Error) => {
        throw new UsageError(`cannot start node ${nodeName}: ${err.message}`);
      });
      const stop = async () => {
        await agent.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
