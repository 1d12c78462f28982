import { mkdir, readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { isDNS1123Subdomain } from '../api/validation/names.js';
import { ANY, CACHEABLE_VERBS, DEFAULT_CACHED_RESOURCES, componentProblem, resourceProblem, verbProblem, type CachePolicyOptions } from '../edgehub/cache-policy.js';
import { certificateNode } from '../edgehub/offline-writes.js';
import { EdgeHub, type ListenOptions } from '../edgehub/proxy.js';
import { UsageError, parseSeconds, withConfigFile } from './config.js';

const KEYS = [
  'server', 'ca-file', 'cert-file', 'key-file', 'cache', 'socket', 'listen', 'token-file', 'probe-period', 'node-name',
  'cache-components', 'cache-resources', 'cache-verbs',
];
/** In --cache-resources: the resources cached by default, so a list can extend them. */
const DEFAULT_RESOURCES_WORD = 'default';
const DEFAULT_CACHE = '/var/lib/atoll/edgehub/cache.db';
/** A TCP listener serves plain HTTP, so it may only listen where no other machine reaches it. */
const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|\[::1\]|localhost)$/;
const MIN_TOKEN_LENGTH = 16;

/** `--server` may be repeated; each value is appended. */
export function serverOption(description: string): Option {
  return new Option('--server <url>', description).argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
}

/** The cloud endpoints of a repeatable `--server` (from the command line or a config file's string or list). */
export function parseServers(value: unknown): string[] {
  const servers = value === undefined ? [] : (Array.isArray(value) ? value : [value]).map(String);
  if (servers.length === 0) throw new UsageError('--server is required: give the API server URL, e.g. --server https://10.0.0.1:6443 (repeat it for several)');
  for (const server of servers) {
    if (!/^https:\/\/[^/]+/.test(server)) throw new UsageError(`--server ${server}: not an https:// URL; give the API server URL, e.g. https://10.0.0.1:6443`);
  }
  return servers;
}

async function readPem(flag: string, file: unknown, marker: RegExp, what: string): Promise<string> {
  if (!file) throw new UsageError(`${flag} is required: pass ${what}`);
  const text = await readFile(String(file), 'utf8').catch((err: Error) => {
    throw new UsageError(`${flag} ${file}: ${err.message}; pass ${what}`);
  });
  if (!marker.test(text)) throw new UsageError(`${flag} ${file}: not PEM; pass ${what}`);
  return text;
}

async function listenOptions(flags: Record<string, unknown>): Promise<{ listen: ListenOptions; token?: string }> {
  if (flags.socket !== undefined && flags.listen !== undefined) throw new UsageError('--socket and --listen: give one of them');
  if (flags.socket !== undefined) {
    if (flags.tokenFile !== undefined) throw new UsageError('--token-file: only with --listen; a unix socket admits clients by its file mode (0600)');
    return { listen: { socketPath: resolve(String(flags.socket)) } };
  }
  if (flags.listen === undefined) throw new UsageError('--socket PATH or --listen HOST:PORT is required: where local clients connect');
  const text = String(flags.listen);
  const m = /^(.+):(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`--listen ${text}: want HOST:PORT, e.g. 127.0.0.1:10261`);
  if (!LOOPBACK.test(m[1]!)) throw new UsageError(`--listen ${text}: EdgeHub serves plain HTTP, so it listens on loopback only; use 127.0.0.1 or [::1]`);
  if (flags.tokenFile === undefined) throw new UsageError('--listen: needs --token-file, a file holding the bearer token local clients must present');
  const token = (
    await readFile(String(flags.tokenFile), 'utf8').catch((err: Error) => {
      throw new UsageError(`--token-file ${flags.tokenFile}: ${err.message}`);
    })
  ).trim();
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) throw new UsageError(`--token-file ${flags.tokenFile}: the token must be one word of at least ${MIN_TOKEN_LENGTH} characters`);
  return { listen: { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port: Number(m[2]) }, token };
}

/**
 * A comma-separated list flag (or a config file's string or list), each item checked by `problem`.
 * `expand` turns one item into several (e.g. a word standing for the defaults).
 */
function parseNames(flag: string, value: unknown, problem: (item: string) => string | undefined, expand: (item: string) => readonly string[] = (i) => [i]): string[] {
  const raw = (Array.isArray(value) ? value.map(String) : String(value).split(',')).map((s) => s.trim());
  if (raw.some((s) => s === '')) throw new UsageError(`${flag} ${String(value)}: an empty name; give comma-separated names without blanks`);
  const items = [...new Set(raw.flatMap(expand))];
  for (const item of items) {
    const why = problem(item);
    if (why) throw new UsageError(`${flag}: ${why}`);
  }
  if (items.includes(ANY) && items.length > 1) throw new UsageError(`${flag} ${String(value)}: * already means all; give * alone or only names`);
  return items;
}

/** The cache policy of --cache-components, --cache-resources and --cache-verbs. */
export function parseCachePolicy(flags: Record<string, unknown>): CachePolicyOptions {
  return {
    components: parseNames('--cache-components', flags.cacheComponents, componentProblem),
    resources: parseNames('--cache-resources', flags.cacheResources, resourceProblem, (i) => (i === DEFAULT_RESOURCES_WORD ? DEFAULT_CACHED_RESOURCES : [i])),
    verbs: parseNames('--cache-verbs', flags.cacheVerbs, verbProblem),
  };
}

/** --node-name, which must agree with the node --cert-file belongs to, if it belongs to one. */
function parseNodeName(value: unknown, certFile: unknown, certPem: string): string | undefined {
  let certNode: string | undefined;
  try {
    certNode = certificateNode(certPem);
  } catch (err) {
    throw new UsageError(`--cert-file ${certFile}: not a certificate (${(err as Error).message}); pass the node's client certificate`);
  }
  if (value === undefined) return undefined;
  const name = String(value);
  const problems = isDNS1123Subdomain(name);
  if (problems.length) throw new UsageError(`--node-name ${name}: not a node name (${problems.join('; ')}); give the node's name, e.g. edge-1`);
  if (certNode !== undefined && certNode !== name) {
    throw new UsageError(`--node-name ${name}: --cert-file belongs to node "${certNode}" (CN system:node:${certNode}); give that name or leave --node-name out`);
  }
  return name;
}

export function registerEdgeHubCommand(program: Command): void {
  program
    .command('edgehub')
    .description(
      'Run EdgeHub alone: a local caching proxy for the Kubernetes API in front of one or more cloud API servers, so a node ' +
        '(an Atoll agent, or a real kubelet) keeps running its pods from the cache while the cloud is unreachable.',
    )
    .addOption(serverOption('a cloud API server, e.g. https://10.0.0.1:6443; repeat for several (preferred first, failed over in order)'))
    .option('--ca-file <file>', 'the CA the API servers\' certificates chain to')
    .option('--cert-file <file>', 'the node\'s client certificate (what its kubelet uses)')
    .option('--key-file <file>', 'the key of --cert-file')
    .option('--cache <file>', 'the SQLite cache', DEFAULT_CACHE)
    .option('--socket <path>', 'serve on this unix socket (mode 0600)')
    .option('--listen <host:port>', 'serve plain HTTP on this loopback address instead (needs --token-file)')
    .option('--token-file <file>', 'bearer token clients of --listen must present')
    .option('--probe-period <seconds>', 'how often each API server is probed', '10')
    .option('--node-name <name>', 'the node whose own Lease, Node status and pods\' status are accepted offline (default: from --cert-file\'s CN system:node:<name>)')
    .option('--cache-components <list>', 'client components (User-Agent up to the first /) whose reads are cached, comma-separated; * for all', ANY)
    .option('--cache-resources <list>', `plural resources whose reads are cached, comma-separated; "${DEFAULT_RESOURCES_WORD}" stands for the defaults, * for all`, DEFAULT_CACHED_RESOURCES.join(','))
    .option('--cache-verbs <list>', `verbs whose answers are cached, comma-separated, from ${CACHEABLE_VERBS.join(', ')}`, CACHEABLE_VERBS.join(','))
    .option('--config <file>', 'YAML file whose keys are these flag names; command-line flags win')
    .action(async (raw: Record<string, unknown>, cmd: Command) => {
      const flags = withConfigFile(raw, KEYS, (name) => cmd.getOptionValueSource(name) === 'cli');
      const endpoints = parseServers(flags.server);
      const caPem = await readPem('--ca-file', flags.caFile, /BEGIN CERTIFICATE/, 'the CA certificate of the API servers');
      const certPem = await readPem('--cert-file', flags.certFile, /BEGIN CERTIFICATE/, 'the node\'s client certificate');
      const keyPem = await readPem('--key-file', flags.keyFile, /BEGIN [A-Z ]*PRIVATE KEY/, 'the key of --cert-file');
      const periodSeconds = parseSeconds(String(flags.probePeriod), '--probe-period');
      if (periodSeconds < 1) throw new UsageError(`--probe-period ${flags.probePeriod}: want at least 1 second`);
      const cache = parseCachePolicy(flags);
      const nodeName = parseNodeName(flags.nodeName, flags.certFile, certPem);
      const { listen, token } = await listenOptions(flags);
      const cachePath = resolve(String(flags.cache));
      await mkdir(dirname(cachePath), { recursive: true, mode: 0o700 }).catch((err: Error) => {
        throw new UsageError(`--cache ${flags.cache}: ${err.message}`);
      });
      const hub = await EdgeHub.start({ endpoints, credentials: { caPem, certPem, keyPem }, cachePath, listen, token, health: { periodMs: periodSeconds * 1000 }, cache, nodeName }).catch(
        (err: NodeJS.ErrnoException) => {
          if (err.code === 'EADDRINUSE') throw new UsageError(`${'socketPath' in listen ? '--socket' : '--listen'}: the address is in use; stop what holds it or pick another`);
          throw new UsageError(`cannot start EdgeHub: ${err.message}`);
        },
      );
      console.log(`atoll edgehub: serving on ${hub.url}; the cloud is ${hub.health.healthy ? `reachable at ${hub.health.current()}` : 'unreachable (serving from the cache)'}`);
      const stop = async () => {
        await hub.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
