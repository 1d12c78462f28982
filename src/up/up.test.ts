import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { KubeClient } from '../client/client.js';
import { resource } from '../client/informer.js';
import { adminRequest, type ImageSummary } from '../runtime/admin.js';
import { BUSYBOX_IMAGE } from '../runtime/images/busybox.js';
import { runCommand } from '../runtime/sandbox/namespaces.js';
import { runtimeHandlerLabel } from '../agent/node-status.js';
import { EDGE_ROLE_LABEL, RUNV_POD_OVERHEAD } from './cluster.js';
import { processAlive, readUpState, type UpNode, type UpState } from './state.js';
import { nodeLinkState } from './topology.js';
import { runUp, type AgentJoin, type UpOptions } from './up.js';

const ATOLL = fileURLToPath(new URL('../../../bin/atoll', import.meta.url));
/** Networks no other test file and no real `atoll up` uses. */
const TOPOLOGY = { netnsPrefix: 'atoll-u-', linkPrefix: 'atlu-', linkNetwork: '172.27.0.0/16', podNetwork: '10.247.0.0/16' };
/** Starting a control plane and two stand-in agents on a loaded 2-core machine. */
const READY_LIMIT_MS = 120_000;
const WAIT_LIMIT_MS = 60_000;
const CLI_TIMEOUT_MS = 60_000;

/**
 * The agent is another process (`atoll agent`); here a stand-in plays its part towards `up`: it serves
 * the runtime admin socket over a real image store and registers a Ready Node, from inside its netns
 * (so it reaches the API server over its cloud link).
 */
const STAND_IN = `
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
const [adminUrl, storeUrl, clientUrl, server, kubeconfig, dataDir, name] = process.argv.slice(2);
const { serveAdmin } = await import(adminUrl);
const { ImageStore } = await import(storeUrl);
const { KubeClient } = await import(clientUrl);
mkdirSync(dataDir, { recursive: true });
const admin = await serveAdmin(join(dataDir, 'run', 'admin.sock'), new ImageStore(join(dataDir, 'runtime', 'images')));
const own = join(dataDir, 'kubeconfig');
writeFileSync(own, readFileSync(kubeconfig, 'utf8').replace(/server: \\S+/, 'server: ' + server));
const client = KubeClient.fromKubeconfig(own, 'stand-in');
const nodes = { group: '', version: 'v1', resource: 'nodes', namespaced: false };
for (;;) {
  try {
    const node = await client.create(nodes, undefined, { apiVersion: 'v1', kind: 'Node', metadata: { name } }).catch((e) => {
      if (e.code === 409) return client.get(nodes, undefined, name);
      throw e;
    });
    const now = new Date().toISOString();
    node.status = { conditions: [{ type: 'Ready', status: 'True', reason: 'StandIn', message: 'stand-in agent', lastHeartbeatTime: now, lastTransitionTime: now }] };
    await client.update(nodes, node, { subresource: 'status' });
    break;
  } catch (e) {
    if (e.code !== 409) throw e;
  }
}
console.log('stand-in agent of ' + name + ' registered');
process.on('SIGTERM', async () => { await admin.close(); client.close(); process.exit(0); });
setInterval(() => {}, 1 << 30);
`;

function atoll(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ATOLL, ...args], { timeout: CLI_TIMEOUT_MS }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function eventually<T>(what: string, check: () => Promise<T | undefined | false>, limitMs = WAIT_LIMIT_MS): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('atoll up with stand-in agents', { timeout: 600_000 }, () => {
  let dir: string;
  let standIn: string;
  let output = '';
  let names: string[];
  const stale: number[] = [];

  /** One run of `up` over `dir`, resolved once every node is Ready and holds the busybox image. */
  function start(extra: Partial<UpOptions> = {}): { stop: () => Promise<void>; ready: Promise<UpState> } {
    const controller = new AbortController();
    const out = new PassThrough();
    out.on('data', (d: Buffer) => (output += d.toString()));
    let onReady!: (s: UpState) => void;
    const ready = new Promise<UpState>((r) => (onReady = r));
    const running = runUp({
      dataDir: dir,
      signal: controller.signal,
      nodeNamePrefix: `u${process.pid}-`,
      topology: TOPOLOGY,
      backoff: { initialMs: 100, maxMs: 400 },
      stopGraceMs: 5_000,
      out,
      onReady: (s) => onReady(structuredClone(s)),
      agentCommand: (node: UpNode, agentJoin: AgentJoin) => [
        process.execPath,
        standIn,
        new URL('../runtime/admin.js', import.meta.url).href,
        new URL('../runtime/images/store.js', import.meta.url).href,
        new URL('../client/client.js', import.meta.url).href,
        agentJoin.server,
        join(dir, 'kubeconfig'),
        node.dataDir,
        node.name,
        '--data-dir',
        node.dataDir,
      ],
      ...extra,
    });
    let failed: unknown;
    running.catch((err) => (failed = err));
    const readyOrFailed = Promise.race([
      ready,
      running.then(() => Promise.reject(new Error(`up stopped before it was ready:\n${output}`))),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`up was not ready in time:\n${output}`)), READY_LIMIT_MS).unref()),
    ]);
    return {
      ready: readyOrFailed,
      stop: async () => {
        controller.abort();
        await running.catch(() => undefined);
        if (failed) throw failed;
      },
    };
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-up-'));
    standIn = join(dir, 'stand-in.mjs');
    await writeFile(standIn, STAND_IN);
    names = [`u${process.pid}-1`, `u${process.pid}-2`];
  });

  after(async () => {
    for (const pid of stale) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    // Whatever a failed assertion left running is removed by a last run's Ctrl-C path.
    const state = await readUpState(dir).catch(() => undefined);
    if (state?.pid !== undefined) {
      const { cleanupNode } = await import('./cleanup.js');
      const { teardownNodeLink } = await import('./topology.js');
      for (const node of state.nodes) {
        if (node.pid !== undefined) stale.push(node.pid);
        await cleanupNode(node.dataDir, { netnsPath: node.netnsPath }).catch(() => undefined);
        await teardownNodeLink(node).catch(() => undefined);
      }
    }
    if (process.exitCode) console.error(output);
    await rm(dir, { recursive: true, force: true });
  });

  it('names the flag and the fix for bad input, and describes every flag in --help', async () => {
    const zero = await atoll('up', '--nodes', '0', '--data-dir', join(dir, 'never'));
    assert.equal(zero.code, 2);
    assert.match(zero.stderr, /--nodes 0: give a whole number from 1 to 255/);
    assert.ok(!existsSync(join(dir, 'never')), 'nothing is written');
    const none = await atoll('net', 'partition', 'edge-1', '--data-dir', join(dir, 'never'));
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no atoll up has run with data dir .*never \(no up\.json\); start `atoll up --data-dir/);
    const help = await atoll('up', '--help');
    for (const flag of ['--nodes', '--data-dir', '--port', '--config']) assert.match(help.stdout, new RegExp(flag));
  });

  it('starts the control plane and two nodes, labels them, preloads the image, and supervises the agents', async () => {
    const up = start({ nodes: 2, port: 0 });
    try {
      const state = await up.ready;
      assert.equal(state.pid, process.pid);
      assert.deepEqual(state.nodes.map((n) => n.name), names);
      assert.match(output, /export KUBECONFIG=.*\/kubeconfig\n\s+kubectl get nodes/);
      assert.ok(existsSync(join(dir, 'kubeconfig')));

      const client = KubeClient.fromKubeconfig(join(dir, 'kubeconfig'));
      try {
        for (const name of names) {
          const node = await eventually(`labels on ${name}`, async () => {
            const n = await client.get(resource('nodes'), undefined, name);
            return n.metadata.labels?.[EDGE_ROLE_LABEL] === '' ? n : undefined;
          });
          assert.equal(node.metadata.name, name);
        }
        for (const handler of ['runc', 'runv']) {
          const rc = await client.get(resource('node.k8s.io/runtimeclasses'), undefined, handler);
          assert.equal(rc['handler'], handler);
          assert.deepEqual(rc['scheduling'], { nodeSelector: { [runtimeHandlerLabel(handler)]: 'true' } });
          assert.deepEqual(rc['overhead'], handler === 'runv' ? { podFixed: RUNV_POD_OVERHEAD } : undefined);
        }
      } finally {
        client.close();
      }
      for (const node of state.nodes) {
        const { images } = await adminRequest<{ images: ImageSummary[] }>(node.adminSocket, 'GET', '/v1/images');
        assert.ok(images.some((i) => i.repoTags.includes(BUSYBOX_IMAGE)), `${node.name} holds ${BUSYBOX_IMAGE}`);
        assert.ok(await processAlive(node.pid), `${node.name}'s agent runs`);
        const inNetns = (await runCommand(['ip', 'netns', 'identify', String(node.pid)])).stdout.trim();
        assert.equal(inNetns, node.netns, 'the agent runs inside its node netns');
        assert.match(await readFile(node.logFile, 'utf8'), /stand-in agent of .* registered/);
      }

      // From another shell: cut and restore a link, import images.
      const [first, second] = state.nodes as [UpNode, UpNode];
      const cut = await atoll('net', 'partition', first.name, '--data-dir', dir);
      assert.equal(cut.code, 0, cut.stderr);
      assert.match(cut.stdout, /cloud link cut/);
      assert.equal((await nodeLinkState(first)).partitioned, true);
      const healed = await atoll('net', 'heal', first.name, '--data-dir', dir);
      assert.equal(healed.code, 0, healed.stderr);
      assert.equal((await nodeLinkState(first)).partitioned, false);
      const unknown = await atoll('net', 'partition', 'nope', '--data-dir', dir);
      assert.equal(unknown.code, 2);
      assert.match(unknown.stderr, new RegExp(`NODE nope: no such node; the nodes are ${names.join(', ')}`));

      const archive = join(dir, 'images', 'busybox.tar');
      const all = await atoll('images', 'import', archive, '--all', '--data-dir', dir);
      assert.equal(all.code, 0, all.stderr);
      for (const name of names) assert.match(all.stdout, new RegExp(`^${name}: imported atoll\\.local/busybox:latest \\(sha256:`, 'm'));
      const one = await atoll('images', 'ls', '--node', second.name, '--data-dir', dir);
      assert.equal(one.code, 0, one.stderr);
      assert.match(one.stdout, new RegExp(`^${second.name}\\tatoll\\.local/busybox:latest\\t`, 'm'));
      const both = await atoll('images', 'import', archive, '--node', first.name, '--all', '--data-dir', dir);
      assert.equal(both.code, 2);
      assert.match(both.stderr, /--node and --all: give one of them/);

      // An agent that dies is started again, as systemd would.
      process.kill(first.pid!, 'SIGKILL');
      const restarted = await eventually('the agent restarted', async () => {
        const pid = (await readUpState(dir))?.nodes.find((n) => n.name === first.name)?.pid;
        return pid !== undefined && pid !== first.pid && (await processAlive(pid)) ? pid : undefined;
      });
      assert.ok(restarted);
      assert.match(output, new RegExp(`the agent of ${first.name} exited \\(SIGKILL\\); restarting it`));
    } finally {
      await up.stop();
    }
  });

  it('Ctrl-C leaves no netns, link, route, mount or process behind, and net commands say it is not running', async () => {
    const state = (await readUpState(dir))!;
    assert.equal(state.pid, undefined);
    assert.ok(state.nodes.every((n) => n.pid === undefined));
    const netns = (await runCommand(['ip', 'netns', 'list'])).stdout;
    const links = (await runCommand(['ip', '-o', 'link'])).stdout;
    const routes = (await runCommand(['ip', 'route'])).stdout;
    for (const node of state.nodes) {
      assert.ok(!netns.includes(node.netns), `${node.netns} is gone`);
      assert.ok(!links.includes(`${node.hostLink}@`), `${node.hostLink} is gone`);
      assert.ok(!routes.includes(node.podCidr), `the route to ${node.podCidr} is gone`);
    }
    assert.ok(!(await readFile('/proc/self/mountinfo', 'utf8')).includes(dir), 'nothing is mounted under the data dir');
    const procs = (await runCommand(['ps', '-eo', 'args='])).stdout.split('\n');
    assert.deepEqual(procs.filter((p) => p.includes(dir)), [], 'no process refers to the data dir');

    const r = await atoll('net', 'heal', state.nodes[0]!.name, '--data-dir', dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /is not running; start it with `atoll up --data-dir/);
  });

  it('resumes over the same data dir after a crash of up: same token and nodes; the stale agent it left is stopped', async () => {
    const before = (await readUpState(dir))!;
    // What a crashed `up` leaves: its pid (now dead) and an agent still running with the node's --data-dir.
    const dead = spawn('true');
    await new Promise((r) => dead.once('exit', r));
    const sleeper = join(dir, 'sleeper.mjs');
    await writeFile(sleeper, 'setInterval(() => {}, 1 << 30);\n');
    const leftover = spawn(process.execPath, [sleeper, '--data-dir', before.nodes[0]!.dataDir], { detached: true, stdio: 'ignore' });
    stale.push(leftover.pid!);
    const leftoverGone = new Promise((r) => leftover.once('exit', r));
    const crashed = { ...before, pid: dead.pid, nodes: before.nodes.map((n, i) => (i === 0 ? { ...n, pid: leftover.pid } : n)) };
    await writeFile(join(dir, 'up.json'), JSON.stringify(crashed));

    const up = start();
    try {
      const state = await up.ready;
      await leftoverGone;
      assert.equal(state.token, before.token);
      assert.equal(state.port, before.port);
      assert.deepEqual(state.nodes.map((n) => n.name), names);
    } finally {
      await up.stop();
    }
  });
});
