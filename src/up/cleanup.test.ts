import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { criClient, type CriClient } from '../runtime/cri/index.js';
import { BUSYBOX_IMAGE, BUSYBOX_WWW, busyboxImage } from '../runtime/images/busybox.js';
import { execInNetns, runCommand } from '../runtime/sandbox/namespaces.js';
import { cleanupNode } from './cleanup.js';
import { preloadImage } from './images.js';
import { processAlive } from './state.js';
import { planNodeLink, setupNodeLink, teardownNodeLink } from './topology.js';

const ATOLL = fileURLToPath(new URL('../../../bin/atoll', import.meta.url));
/** Networks no other test file and no real `atoll up` uses. */
const LINK_NETWORK = '172.28.0.0/16';
const POD_NETWORK = '10.246.0.0/16';
const HTTP_PORT = 8080;
/** A bound only a broken runtime reaches. */
const WAIT_LIMIT_MS = 60_000;
const FETCH_TIMEOUT_MS = 5_000;

async function mountsUnder(dir: string): Promise<string[]> {
  return (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').map((l) => l.split(' ')[4] ?? '').filter((p) => p.startsWith(dir));
}

/** PIDs whose command line mentions `dir` (conmon, runc, the runtime). */
async function processesMentioning(dir: string): Promise<number[]> {
  const { stdout } = await runCommand(['ps', '-eo', 'pid=,args=']);
  return stdout
    .split('\n')
    .filter((l) => l.includes(dir))
    .map((l) => Number(l.trim().split(/\s+/)[0]))
    .filter((pid) => pid !== process.pid);
}

/** Waits until `pid` has entered the netns at `path` (nsenter has exec'd). */
async function waitForNetns(pid: number, path: string): Promise<void> {
  const { stdout } = await runCommand(['stat', '-L', '-c', '%i', path]);
  const deadline = Date.now() + WAIT_LIMIT_MS;
  while ((await readlink(`/proc/${pid}/ns/net`).catch(() => '')) !== `net:[${stdout.trim()}]`) {
    assert.ok(Date.now() < deadline, 'the stray process never entered the node netns');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A node's runtime runs pods and is then killed, as an agent that stops leaves its containers: cleanupNode
 * must remove every container process, conmon and mount of the node.
 */
describe('cleanupNode', () => {
  let dir: string;
  let nodeDir: string;
  let runtime: ChildProcess | undefined;
  let client: CriClient | undefined;
  const link = () => planNodeLink(`c${process.pid}`, 1, { owner: dir, netnsPrefix: 'atoll-c-', linkPrefix: 'atlc-', linkNetwork: LINK_NETWORK, podNetwork: POD_NETWORK });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-cleanup-'));
    nodeDir = join(dir, 'nodes', 'n1');
  });

  after(async () => {
    client?.close();
    if (runtime && runtime.exitCode === null && runtime.signalCode === null) {
      const exited = new Promise((r) => runtime!.once('exit', r));
      runtime.kill('SIGKILL');
      await exited;
    }
    await cleanupNode(nodeDir, { netnsPath: link().netnsPath }).catch(() => undefined);
    await teardownNodeLink(link()).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('kills the containers and conmons a stopped runtime left and unmounts everything under the node dir', async () => {
    const node = link();
    await setupNodeLink(node);
    const archive = await busyboxImage(join(dir, 'busybox.tar'));
    const run = join(nodeDir, 'run');
    runtime = spawn(
      'nsenter',
      [`--net=${node.netnsPath}`, '--', process.execPath, ATOLL, 'runtime', '--socket', join(run, 'cri.sock'), '--root', join(nodeDir, 'runtime'), '--run-dir', run, '--log-root', join(nodeDir, 'logs'), '--pod-cidr', node.podCidr],
      { stdio: 'ignore' },
    );
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), WAIT_LIMIT_MS);
    const imported = await preloadImage(join(run, 'admin.sock'), archive, stop.signal, { onError: (err) => assert.fail(err) });
    clearTimeout(timer);
    assert.ok(imported, 'the image reached the runtime through its admin socket');

    client = criClient(join(run, 'cri.sock'));
    const config = {
      metadata: { name: 'web', namespace: 'default', uid: `uid-${process.pid}`, attempt: 0 },
      hostname: 'web',
      log_directory: join(nodeDir, 'logs', 'web'),
    };
    const { pod_sandbox_id: podId } = await client.RunPodSandbox({ config });
    const { container_id: id } = await client.CreateContainer({
      pod_sandbox_id: podId,
      config: { metadata: { name: 'httpd', attempt: 0 }, image: { image: BUSYBOX_IMAGE }, command: ['httpd', '-f', '-p', String(HTTP_PORT), '-h', BUSYBOX_WWW], log_path: 'httpd.log' },
      sandbox_config: config,
    });
    await client.StartContainer({ container_id: id });
    const podIP = (await client.PodSandboxStatus({ pod_sandbox_id: podId })).status!.network!.ip;
    assert.ok(podIP.startsWith('10.246.1.'), podIP);
    // The pod answers from the node over its bridge: the preloaded image runs its httpd.
    const page = await execInNetns(node.netnsPath, ['busybox', 'wget', '-q', '-O', '-', `http://${podIP}:${HTTP_PORT}/`], { timeoutMs: FETCH_TIMEOUT_MS });
    assert.match(page.stdout, /Hello from busybox httpd/);
    const state = JSON.parse((await runCommand(['runc', '--root', join(nodeDir, 'runtime', 'runc', 'runc'), 'state', id])).stdout) as { pid: number };
    client.close();
    client = undefined;

    // The agent goes away without stopping its pods, as it does when killed.
    const exited = new Promise((r) => runtime!.once('exit', r));
    runtime.kill('SIGKILL');
    await exited;
    assert.ok(await processAlive(state.pid), 'the container outlives its runtime');
    assert.ok((await mountsUnder(nodeDir)).length > 0, 'the runtime left mounts');
    // Something else of the node's (a host-network pod, a helper) still runs in its netns.
    const stray = spawn('nsenter', [`--net=${node.netnsPath}`, '--', 'sleep', '1000'], { stdio: 'ignore', detached: true });
    const strayGone = new Promise((r) => stray.once('exit', r));
    await waitForNetns(stray.pid!, node.netnsPath);

    const report = await cleanupNode(nodeDir, { netnsPath: node.netnsPath });
    assert.equal(report.containers, 1);
    assert.equal(report.processes, 1, 'the process left in the node netns');
    await strayGone;
    assert.ok(report.mounts >= 1, `unmounted ${report.mounts}`);
    assert.equal(await processAlive(state.pid), false, 'the container is gone');
    assert.deepEqual(await processesMentioning(nodeDir), [], 'no conmon or runc of the node is left');
    assert.deepEqual(await mountsUnder(dir), [], 'nothing is mounted under the data dir');
    const listed = (await runCommand(['runc', '--root', join(nodeDir, 'runtime', 'runc', 'runc'), 'list', '-q'])).stdout.trim();
    assert.equal(listed, '');
    assert.deepEqual(await cleanupNode(nodeDir, { netnsPath: node.netnsPath }), { containers: 0, processes: 0, mounts: 0 }, 'idempotent');

    await teardownNodeLink(node);
    assert.doesNotMatch((await runCommand(['ip', 'netns', 'list'])).stdout, new RegExp(node.netns));
  });
});
