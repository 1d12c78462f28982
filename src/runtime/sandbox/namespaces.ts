import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { basename, dirname, join } from 'node:path';

/**
 * Pod sandbox namespaces without a pause container.
 *
 * A sandbox's network, IPC and UTS namespaces are created by one short-lived `unshare` process and kept
 * alive by bind-mounting them onto files under the run dir (`<runDir>/netns/<id>`, `<runDir>/ipcns/<id>`,
 * `<runDir>/utsns/<id>`), as CRI-O's `pinns` does. Containers join them by path (OCI `linux.namespaces`),
 * the network plugin configures the netns by path, and `removeNamespaces` unmounts them, which frees the
 * namespaces once no process is left inside.
 *
 * Each of the three directories is made a shared mount point, as `ip netns` does for /run/netns: a mount
 * namespace copied while a sandbox exists (a container before pivot_root, a systemd service with
 * PrivateTmp) then receives the unmount too, instead of holding a private copy that keeps the netns
 * and its veth alive. unshare(1) requires a non-shared parent only for persisting a *mount* namespace,
 * which a sandbox does not have.
 */

export const NAMESPACE_KINDS = ['net', 'ipc', 'uts'] as const;
export type NamespaceKind = (typeof NAMESPACE_KINDS)[number];

const KIND_DIR: Record<NamespaceKind, string> = { net: 'netns', ipc: 'ipcns', uts: 'utsns' };

/** How long a namespace helper process (unshare, nsenter, ip, umount) may run before it is killed. */
export const NAMESPACE_COMMAND_TIMEOUT_MS = 10_000;

const SANDBOX_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** RFC 1123 host name, at most HOST_NAME_MAX (64) bytes. */
const HOSTNAME = /^(?=.{1,64}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

export interface SandboxNamespaces {
  id: string;
  /** Bind-mounted namespace files; pass them to nsenter, OCI `linux.namespaces[].path`, or a Network. */
  net: string;
  ipc: string;
  uts: string;
}

export interface HeldNamespaces extends SandboxNamespaces {
  /** The kinds whose file is a live namespace mount; a file without a mount is a leftover of a crash. */
  mounted: NamespaceKind[];
}

export class NamespaceError extends Error {
  override name = 'NamespaceError';
}

export interface CommandResult {
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  /** Written to the command's stdin, which is closed afterwards. */
  input?: string;
  timeoutMs?: number;
}

/**
 * Runs `argv` without a shell, inside the network namespace at `netnsPath` (through `nsenter`), or in
 * the caller's own network namespace when `netnsPath` is undefined. Rejects with the command's stderr
 * when it exits non-zero or outlives the timeout; the child is always reaped.
 */
export function execInNetns(
  netnsPath: string | undefined,
  argv: readonly string[],
  options: CommandOptions = {},
): Promise<CommandResult> {
  const full = netnsPath === undefined ? [...argv] : ['nsenter', `--net=${netnsPath}`, '--', ...argv];
  return runCommand(full, options);
}

export function runCommand(argv: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new NamespaceError('empty command'));
  const timeoutMs = options.timeoutMs ?? NAMESPACE_COMMAND_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input ?? '');
    child.on('error', (e) => reject(new NamespaceError(`${argv.join(' ')}: ${e.message}`)));
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) {
        resolve({ stdout, stderr });
        return;
      }
      const why = signal !== null ? `killed by ${signal} (timeout ${timeoutMs} ms)` : `exit code ${code}`;
      const detail = stderr.trim() || stdout.trim();
      reject(new NamespaceError(`${argv.join(' ')}: ${why}${detail ? `: ${detail}` : ''}`));
    });
  });
}

export function validateSandboxId(id: string): void {
  if (!SANDBOX_ID.test(id)) {
    throw new NamespaceError(`invalid sandbox id ${JSON.stringify(id)}: want 1-128 of [A-Za-z0-9_.-], not starting with [_.-]`);
  }
}

export function validateHostname(hostname: string): void {
  if (!HOSTNAME.test(hostname)) {
    throw new NamespaceError(`invalid hostname ${JSON.stringify(hostname)}: want an RFC 1123 name of at most 64 characters`);
  }
}

export function namespacePaths(runDir: string, id: string): SandboxNamespaces {
  validateSandboxId(id);
  return {
    id,
    net: join(runDir, KIND_DIR.net, id),
    ipc: join(runDir, KIND_DIR.ipc, id),
    uts: join(runDir, KIND_DIR.uts, id),
  };
}

/** The mount points of the caller's mount namespace, unescaped. */
export async function mountPoints(): Promise<Set<string>> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const points = new Set<string>();
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (field) points.add(field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))));
  }
  return points;
}

const sharedDirs = new Map<string, Promise<void>>();

/** Makes `dir` a shared mount point, bind-mounting it onto itself first if it is not a mount point. */
function ensureSharedMount(dir: string): Promise<void> {
  let done = sharedDirs.get(dir);
  if (!done) {
    done = (async () => {
      await mkdir(dir, { recursive: true, mode: 0o755 });
      if (!(await mountPoints()).has(dir)) await runCommand(['mount', '--bind', dir, dir]);
      await runCommand(['mount', '--make-shared', dir]);
    })();
    sharedDirs.set(dir, done);
    done.catch(() => sharedDirs.delete(dir));
  }
  return done;
}

async function resolvedRunDir(runDir: string): Promise<string> {
  await mkdir(runDir, { recursive: true, mode: 0o755 });
  return realpath(runDir);
}

export interface CreateNamespacesOptions {
  /** Set inside the new UTS namespace. */
  hostname: string;
  /**
   * Bring `lo` up (default true). A caller that attaches a Network right away may pass false and save
   * a process: every Network brings `lo` up in its setup.
   */
  loopback?: boolean;
}

/**
 * Creates and pins the network, IPC and UTS namespaces of sandbox `id`, sets the hostname and brings
 * `lo` up (one `unshare`, one `nsenter`). Fails if the sandbox already has namespaces; on failure nothing is left behind.
 */
export async function createNamespaces(
  runDir: string,
  id: string,
  options: CreateNamespacesOptions,
): Promise<SandboxNamespaces> {
  validateSandboxId(id);
  validateHostname(options.hostname);
  const root = await resolvedRunDir(runDir);
  const paths = namespacePaths(root, id);
  await Promise.all(NAMESPACE_KINDS.map((kind) => ensureSharedMount(join(root, KIND_DIR[kind]))));

  const created: string[] = [];
  try {
    for (const kind of NAMESPACE_KINDS) {
      try {
        await writeFile(paths[kind], '', { flag: 'wx', mode: 0o444 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          throw new NamespaceError(`sandbox ${id} already has namespaces under ${root}`);
        }
        throw err;
      }
      created.push(paths[kind]);
    }
    await runCommand(['unshare', `--net=${paths.net}`, `--ipc=${paths.ipc}`, `--uts=${paths.uts}`, '--', 'hostname', options.hostname]);
    if (options.loopback ?? true) await execInNetns(paths.net, ['ip', 'link', 'set', 'lo', 'up']);
  } catch (err) {
    await unmountAndDelete(created).catch(() => undefined);
    throw err;
  }
  return paths;
}

async function unmountAndDelete(files: readonly string[]): Promise<void> {
  const mounted = await mountPoints();
  const targets = files.filter((f) => mounted.has(f));
  if (targets.length > 0) await runCommand(['umount', ...targets]);
  await Promise.all(files.map((f) => rm(f, { force: true })));
}

/**
 * Unmounts and deletes the namespace files of sandbox `id`. Idempotent: missing files and files that
 * are no longer mounted are fine. The namespaces themselves end when their last process exits.
 */
export async function removeNamespaces(runDir: string, id: string): Promise<void> {
  const paths = namespacePaths(await resolvedRunDir(runDir), id);
  await unmountAndDelete(NAMESPACE_KINDS.map((kind) => paths[kind]));
}

/**
 * Every sandbox with at least one namespace file under `runDir`: after a runtime restart, the live
 * sandboxes to re-adopt; in tests, leaks.
 */
export async function listNamespaces(runDir: string): Promise<HeldNamespaces[]> {
  const root = await resolvedRunDir(runDir);
  const mounted = await mountPoints();
  const ids = new Set<string>();
  for (const kind of NAMESPACE_KINDS) {
    const names = await readdir(join(root, KIND_DIR[kind])).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    for (const name of names) if (SANDBOX_ID.test(name)) ids.add(name);
  }
  return [...ids].sort().map((id) => {
    const paths = namespacePaths(root, id);
    return { ...paths, mounted: NAMESPACE_KINDS.filter((kind) => mounted.has(paths[kind])) };
  });
}

/**
 * Undoes the shared bind mounts of the namespace directories under `runDir` (uninstall, tests).
 * Refuses while any sandbox still holds namespaces there.
 */
export async function unmountNamespaceDirs(runDir: string): Promise<void> {
  const root = await resolvedRunDir(runDir);
  const held = await listNamespaces(root);
  if (held.length > 0) {
    throw new NamespaceError(`namespaces still held under ${root}: ${held.map((h) => h.id).join(', ')}`);
  }
  const mounted = await mountPoints();
  for (const kind of NAMESPACE_KINDS) {
    const dir = join(root, KIND_DIR[kind]);
    sharedDirs.delete(dir);
    if (mounted.has(dir)) await runCommand(['umount', dir]);
  }
}

/** DNS settings from CRI's `DNSConfig`. */
export interface DnsConfig {
  servers: readonly string[];
  searches: readonly string[];
  options: readonly string[];
}

export interface PodDnsFilesOptions {
  hostname: string;
  /** The pod's addresses; the first is listed for the hostname in /etc/hosts. Empty before networking. */
  podIPs: readonly string[];
  /** Without it, the node's resolv.conf (`hostResolvConf`) is copied, as containerd does. */
  dns?: DnsConfig;
  hostResolvConf?: string;
}

export interface PodDnsFiles {
  hostname: string;
  hosts: string;
  resolvConf: string;
}

/** glibc reads at most this many search domains since 2.26; Kubernetes validates the same limit. */
const MAX_SEARCH_DOMAINS = 32;
const MAX_SEARCH_LINE = 2048;
const NO_WHITESPACE = /^\S+$/;

export function renderResolvConf(dns: DnsConfig): string {
  for (const server of dns.servers) {
    if (isIP(server) === 0) throw new NamespaceError(`invalid DNS server ${JSON.stringify(server)}: want an IP address`);
  }
  for (const value of [...dns.searches, ...dns.options]) {
    if (!NO_WHITESPACE.test(value)) throw new NamespaceError(`invalid DNS search or option ${JSON.stringify(value)}`);
  }
  if (dns.searches.length > MAX_SEARCH_DOMAINS) {
    throw new NamespaceError(`${dns.searches.length} DNS search domains: at most ${MAX_SEARCH_DOMAINS} are allowed`);
  }
  const lines: string[] = [];
  if (dns.searches.length > 0) {
    const search = `search ${dns.searches.join(' ')}`;
    if (search.length > MAX_SEARCH_LINE) throw new NamespaceError(`DNS search line exceeds ${MAX_SEARCH_LINE} characters`);
    lines.push(search);
  }
  for (const server of dns.servers) lines.push(`nameserver ${server}`);
  if (dns.options.length > 0) lines.push(`options ${dns.options.join(' ')}`);
  return lines.map((l) => `${l}\n`).join('');
}

export function renderHosts(hostname: string, podIPs: readonly string[]): string {
  const lines = [
    '# Kubernetes-managed hosts file.',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
  ];
  const first = podIPs[0];
  if (first !== undefined) {
    if (isIP(first) === 0) throw new NamespaceError(`invalid pod IP ${JSON.stringify(first)}`);
    lines.push(`${first}\t${hostname}`);
  }
  return lines.map((l) => `${l}\n`).join('');
}

/**
 * Replaces `path` by write-then-rename, so a reader (a container bind-mounting it) never sees half a
 * file. No fsync: the pod DNS files matter only while the sandbox's namespaces exist, and a power loss
 * that could drop unsynced bytes ends those namespaces too (recovery then marks the sandbox not ready).
 */
async function replaceFile(path: string, data: string, mode: number): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, data, { mode, flag: 'wx' });
    // Explicitly, so the process umask cannot narrow what containers may read.
    await chmod(tmp, mode);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Writes `hostname`, `hosts` and `resolv.conf` for a sandbox into `dir`, each replaced atomically. */
export async function writePodDnsFiles(dir: string, options: PodDnsFilesOptions): Promise<PodDnsFiles> {
  validateHostname(options.hostname);
  const resolv =
    options.dns !== undefined
      ? renderResolvConf(options.dns)
      : await readFile(options.hostResolvConf ?? '/etc/resolv.conf', 'utf8');
  const hosts = renderHosts(options.hostname, options.podIPs);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const files: PodDnsFiles = {
    hostname: join(dir, 'hostname'),
    hosts: join(dir, 'hosts'),
    resolvConf: join(dir, 'resolv.conf'),
  };
  await Promise.all([
    replaceFile(files.hostname, `${options.hostname}\n`, 0o644),
    replaceFile(files.hosts, hosts, 0o644),
    replaceFile(files.resolvConf, resolv, 0o644),
  ]);
  return files;
}
