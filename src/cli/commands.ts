import { setMaxListeners } from 'node:events';
import { Option, type Command } from 'commander';
import { resolve } from 'node:path';
import { DEFAULT_PORT } from '../apiserver/server.js';
import { ControlPlane } from '../controlplane/index.js';
import { KubeClient } from '../client/client.js';
import { defaultErrorSink } from '../controllers/controller.js';
import { CONTROLLER_NAMES, runControllers, type ControllerName } from '../controllers/manager.js';
import { checkSigningCa } from '../controllers/certificates-signing.js';
import { DEFAULT_ADMIN_SOCKET, DEFAULT_LOG_ROOT, DEFAULT_ROOT, DEFAULT_RUN_DIR, DEFAULT_SOCKET, NodeRuntime } from '../runtime/node-runtime.js';
import { adminRequest, type ImageSummary } from '../runtime/admin.js';
import { DEFAULT_BRIDGE, DEFAULT_POD_SUBNET } from '../runtime/network/index.js';
import { registerAgentCommand } from './agent.js';
import { registerEdgeHubCommand } from './edgehub.js';
import { registerRuntimeTemplateCommand } from './runtime-template.js';
import { imageTargets, registerUpCommands, withUpNodeOptions, type ImageTargetFlags } from './up.js';
import { UsageError, parseList, parsePort, parseRunvPool, parseSeconds, withConfigFile } from './config.js';

/** Every command of `atoll`; main.ts loads this for any command but `agent`. */
export function registerCommands(program: Command): void {
  program
    .command('server')
    .description('Run the control plane API server (HTTPS); writes DIR/kubeconfig with admin credentials once serving.')
    .option('--data-dir <dir>', 'directory for state (server/state.db), PKI (pki/) and the admin kubeconfig', '/var/lib/atoll')
    .option('--port <n>', 'HTTPS port to listen on', String(DEFAULT_PORT))
    .option('--host <addr>', 'address to listen on', '0.0.0.0')
    .addOption(new Option('--tls-san <name...>', 'extra DNS names or IP addresses for the serving certificate').default([]))
    .option('--controllers <names>', `comma-separated controllers to run in this process (${CONTROLLER_NAMES.join(', ')})`, CONTROLLER_NAMES.join(','))
    .option('--disable-controllers', 'run no controllers (run `atoll controller` elsewhere instead)', false)
    .option('--disable-scheduler', 'run no scheduler in this process', false)
    .option('--node-monitor-grace-period <seconds>', 'how long a node may stay silent before it is marked unreachable', '50')
    .option('--default-toleration-seconds <seconds>', 'tolerationSeconds of the not-ready/unreachable tolerations added to pods', '300')
    .option('--config <file>', 'YAML file whose keys are these flag names; command-line flags win')
    .action(async (raw: Record<string, unknown>, cmd: Command) => {
      const keys = ['data-dir', 'port', 'host', 'tls-san', 'controllers', 'disable-controllers', 'disable-scheduler', 'node-monitor-grace-period', 'default-toleration-seconds'];
      const flags = withConfigFile(raw, keys, (name) => cmd.getOptionValueSource(name) === 'cli');
      const controllers = parseList(String(flags.controllers), '--controllers', CONTROLLER_NAMES) as ControllerName[];
      const plane = await ControlPlane.start({
        dataDir: resolve(String(flags.dataDir)),
        port: parsePort(String(flags.port), '--port'),
        host: String(flags.host),
        hosts: flags.tlsSan as string[],
        controllers: !flags.disableControllers,
        controllerNames: controllers,
        scheduler: !flags.disableScheduler,
        nodeMonitorGracePeriodSeconds: parseSeconds(String(flags.nodeMonitorGracePeriod), '--node-monitor-grace-period'),
        defaultTolerationSeconds: parseSeconds(String(flags.defaultTolerationSeconds), '--default-toleration-seconds'),
      }).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'EADDRINUSE') throw new UsageError(`--port ${flags.port}: the port is in use; stop what holds it or pick another port`);
        if (err.code === 'EACCES') throw new UsageError(`--data-dir ${flags.dataDir}: permission denied; run as root or choose a writable directory`);
        throw err;
      });
      const { server } = plane;
      console.log(`atoll server: serving the Kubernetes API at ${server.url}`);
      console.log(`atoll server: admin kubeconfig written to ${server.kubeconfigPath}`);
      console.log(`  try: kubectl --kubeconfig ${server.kubeconfigPath} get namespaces`);
      const stop = async () => {
        await plane.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });

  program
    .command('controller')
    .description('Run the controller manager alone against a Kubernetes API (Atoll or real Kubernetes).')
    .requiredOption('--kubeconfig <file>', 'kubeconfig of the cluster to manage (its current context is used)')
    .option('--controllers <names>', `comma-separated controllers to run (${CONTROLLER_NAMES.join(', ')})`, CONTROLLER_NAMES.join(','))
    .option('--node-monitor-grace-period <seconds>', 'how long a node may stay silent before it is marked unreachable', '50')
    .option('--cluster-signing-cert-file <file>', 'CA certificate (PEM) that csr-signing issues kubelet certificates with; csr-signing runs only with it')
    .option('--cluster-signing-key-file <file>', 'private key (PEM) of --cluster-signing-cert-file')
    .option('--config <file>', 'YAML file whose keys are these flag names; command-line flags win')
    .action(async (raw: Record<string, unknown>, cmd: Command) => {
      const keys = ['kubeconfig', 'controllers', 'node-monitor-grace-period', 'cluster-signing-cert-file', 'cluster-signing-key-file'];
      const flags = withConfigFile(raw, keys, (name) => cmd.getOptionValueSource(name) === 'cli');
      const controllers = parseList(String(flags.controllers), '--controllers', CONTROLLER_NAMES) as ControllerName[];
      const grace = parseSeconds(String(flags.nodeMonitorGracePeriod), '--node-monitor-grace-period');
      const signing = clusterSigningFiles(flags.clusterSigningCertFile, flags.clusterSigningKeyFile);
      if (!signing && controllers.includes('csr-signing')) {
        // The default list names every controller; only an explicit request for csr-signing is an error.
        if (cmd.getOptionValueSource('controllers') === 'cli') {
          throw new UsageError('--controllers csr-signing: needs --cluster-signing-cert-file and --cluster-signing-key-file (the CA that signs kubelet certificates)');
        }
        controllers.splice(controllers.indexOf('csr-signing'), 1);
      }
      let client: KubeClient;
      try {
        client = KubeClient.fromKubeconfig(resolve(String(flags.kubeconfig)), 'atoll-controller');
      } catch (err) {
        throw new UsageError(`--kubeconfig ${flags.kubeconfig}: ${(err as Error).message.split('\n')[0]}; pass a readable kubeconfig`);
      }
      // Fail at once on a wrong server or credentials rather than retrying in the background.
      await client.json('GET', '/version').catch((err: Error) => {
        throw new UsageError(`--kubeconfig ${flags.kubeconfig}: cannot reach the API server: ${err.message}`);
      });
      const stop = new AbortController();
      setMaxListeners(0, stop.signal);
      process.once('SIGINT', () => stop.abort());
      process.once('SIGTERM', () => stop.abort());
      console.log(`atoll controller: running ${controllers.join(', ')}`);
      await runControllers(client, { signal: stop.signal, controllers, nodeMonitorGracePeriodSeconds: grace, ...signing, onError: defaultErrorSink });
      client.close();
    });

  const runtimeCommand = program
    .command('runtime')
    .description('Run the node\'s CRI runtime (runc handler, and runv with --runv; overlay snapshots, bridge network) on a unix socket, for crictl, a kubelet or the Atoll node agent.')
    .option('--socket <path>', 'unix socket to serve CRI v1 on', DEFAULT_SOCKET)
    .option('--admin-socket <path>', 'unix socket for `atoll images` (root only; default: admin.sock beside --socket)')
    .option('--root <dir>', 'persistent state: images, snapshots, sandbox and container records', DEFAULT_ROOT)
    .option('--run-dir <dir>', 'volatile state: namespace files, rootfs mounts', DEFAULT_RUN_DIR)
    .option('--log-root <dir>', 'pod log directories must lie inside it', DEFAULT_LOG_ROOT)
    .option('--pod-cidr <cidr>', 'the node\'s pod address range, served by the bridge', DEFAULT_POD_SUBNET)
    .option('--bridge <name>', 'name of the pod bridge', DEFAULT_BRIDGE)
    .option('--registries <file>', 'registries.yaml with mirrors, rewrites, auth and TLS per registry')
    .option('--runv', 'also serve handler runv: a QEMU microVM per pod (fetches Debian\'s guest kernel and builds the guest images on first use)', false)
    .option('--runv-cache <dir>', 'where runv keeps the guest kernel, images and VM templates (default: --root)')
    .option('--runv-pool <n>', 'idle runv VMs kept restored for pods without a memory limit, which then start faster (0 to 8; default 0)')
    .option('--config <file>', 'YAML file whose keys are these flag names; command-line flags win')
    .action(async (raw: Record<string, unknown>, cmd: Command) => {
      const keys = ['socket', 'admin-socket', 'root', 'run-dir', 'log-root', 'pod-cidr', 'bridge', 'registries', 'runv', 'runv-cache', 'runv-pool'];
      const flags = withConfigFile(raw, keys, (name) => cmd.getOptionValueSource(name) === 'cli');
      const podCidr = String(flags.podCidr);
      if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(podCidr)) throw new UsageError(`--pod-cidr ${podCidr}: not an IPv4 CIDR; give one like 10.88.0.0/16`);
      if (flags.runvCache && !flags.runv) throw new UsageError('--runv-cache is for the runv handler; add --runv to serve it');
      const runvPool = flags.runvPool === undefined ? 0 : parseRunvPool(String(flags.runvPool));
      if (runvPool > 0 && !flags.runv) throw new UsageError('--runv-pool is for the runv handler; add --runv to serve it');
      const runtime = await NodeRuntime.start({
        socket: String(flags.socket),
        adminSocket: flags.adminSocket ? String(flags.adminSocket) : undefined,
        root: resolve(String(flags.root)),
        runDir: resolve(String(flags.runDir)),
        logRoot: resolve(String(flags.logRoot)),
        registriesFile: flags.registries ? resolve(String(flags.registries)) : undefined,
        network: { subnet: podCidr, bridge: String(flags.bridge) },
        ...(flags.runv ? { runv: { ...(flags.runvCache ? { cacheRoot: resolve(String(flags.runvCache)) } : {}), pool: runvPool } } : {}),
      }).catch((err: Error) => {
        throw new UsageError(`cannot start the runtime: ${err.message}`);
      });
      console.log(`atoll runtime: serving CRI v1 on ${runtime.socketPath}`);
      const stop = async () => {
        await runtime.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });

  registerRuntimeTemplateCommand(runtimeCommand);

  const images = program.command('images').description('Images of a node\'s runtime (air-gapped sites load them from files).');

  withUpNodeOptions(
    images
      .command('import <file>')
      .description('Load an OCI image layout or `docker save` tarball (gzipped or not) into the runtime, or into nodes of `atoll up` (--node NAME, --all).')
      .option('--admin-socket <path>', 'the runtime\'s admin socket', DEFAULT_ADMIN_SOCKET),
  ).action(async (file: string, flags: ImageTargetFlags, cmd: Command) => {
    const path = resolve(file);
    const targets = await imageTargets(flags, cmd.getOptionValueSource('adminSocket') === 'cli');
    const failures: string[] = [];
    for (const target of targets) {
      const result = await adminRequest<{ images: ImageSummary[] }>(target.adminSocket, 'POST', '/v1/images/import', { path }).catch((err: NodeJS.ErrnoException) => {
        failures.push(adminFailure(target, err, file));
        return undefined;
      });
      const where = target.name === undefined ? '' : `${target.name}: `;
      for (const image of result?.images ?? []) console.log(`${where}imported ${image.repoTags.join(', ') || image.id} (${image.id})`);
    }
    if (failures.length > 0) throw new UsageError(failures.join('\natoll: '));
  });

  withUpNodeOptions(
    images
      .command('ls')
      .description('List the runtime\'s images, or those of nodes of `atoll up` (--node NAME, --all).')
      .option('--admin-socket <path>', 'the runtime\'s admin socket', DEFAULT_ADMIN_SOCKET),
  ).action(async (flags: ImageTargetFlags, cmd: Command) => {
    const targets = await imageTargets(flags, cmd.getOptionValueSource('adminSocket') === 'cli');
    const rows: string[][] = [];
    for (const target of targets) {
      const result = await adminRequest<{ images: ImageSummary[] }>(target.adminSocket, 'GET', '/v1/images').catch((err: NodeJS.ErrnoException) => {
        throw new UsageError(adminFailure(target, err, target.name === undefined ? `--admin-socket ${target.adminSocket}` : 'listing images'));
      });
      for (const image of result.images) {
        const id = image.id.replace(/^sha256:/, '').slice(0, 12);
        for (const tag of image.repoTags.length ? image.repoTags : ['<none>']) rows.push([...(target.name === undefined ? [] : [target.name]), tag, id, `${(image.size / 1024 / 1024).toFixed(1)}MiB`]);
      }
    }
    console.log([...(flags.node === undefined && !flags.all ? [] : ['NODE']), 'IMAGE', 'ID', 'SIZE'].join('\t'));
    for (const row of rows) console.log(row.join('\t'));
  });

  registerUpCommands(program);
  registerAgentCommand(program);
  registerEdgeHubCommand(program);
}

/** Both cluster-signing flags, resolved and checked to be a matching CA pair, or neither. */
function clusterSigningFiles(cert: unknown, key: unknown): { clusterSigningCertFile: string; clusterSigningKeyFile: string } | undefined {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined) throw new UsageError('--cluster-signing-key-file: needs --cluster-signing-cert-file too');
  if (key === undefined) throw new UsageError('--cluster-signing-cert-file: needs --cluster-signing-key-file too');
  const files = { clusterSigningCertFile: resolve(String(cert)), clusterSigningKeyFile: resolve(String(key)) };
  try {
    checkSigningCa(files.clusterSigningCertFile, files.clusterSigningKeyFile);
  } catch (err) {
    throw new UsageError(`--cluster-signing-cert-file/--cluster-signing-key-file: ${(err as Error).message}; pass the cluster CA certificate and its key (the server's pki/ca.crt and pki/ca.key)`);
  }
  return files;
}

/** Why a runtime's admin socket refused a request, naming the flag (or the node) that led there. */
function adminFailure(target: { name?: string; adminSocket: string }, err: NodeJS.ErrnoException, what: string): string {
  const down = err.code === 'ENOENT' || err.code === 'ECONNREFUSED';
  if (target.name === undefined) {
    return down ? `--admin-socket ${target.adminSocket}: no runtime answers there; start \`atoll runtime\` or pass its --admin-socket` : `${what}: ${err.message}`;
  }
  return down ? `--node ${target.name}: its runtime does not answer on ${target.adminSocket}; is its agent up? (see its agent.log)` : `--node ${target.name}: ${what}: ${err.message}`;
}
