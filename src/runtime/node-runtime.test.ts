import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { criClient, type CriClient } from './cri/index.js';
import { NodeRuntime, type NodeRuntimeOptions } from './node-runtime.js';
import { createNamespaces, removeNamespaces, unmountNamespaceDirs } from './sandbox/namespaces.js';

const SANDBOX = { metadata: { name: 'p', namespace: 'default', uid: 'u', attempt: 0 } };

describe('NodeRuntime', () => {
  const cleanups: (() => Promise<void>)[] = [];

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  });

  /**
   * A runtime in a temp dir whose bridge lives in a node netns of the test's own, not the host's, and
   * whose runv cache is a regular file: preparing the guest kernel there fails at once, as on a node
   * without QEMU or without a way to fetch the kernel. Everything it made goes in the `after` hook.
   */
  async function startRuntime(subnet: string, extra: Partial<NodeRuntimeOptions>, prepare?: (root: string) => Promise<void>) {
    const suffix = randomBytes(3).toString('hex');
    const tmp = await mkdtemp(join(tmpdir(), 'atoll-node-runtime-'));
    cleanups.push(() => rm(tmp, { recursive: true, force: true }));
    const node = await createNamespaces(join(tmp, 'node'), `node-${suffix}`, { hostname: 'node' });
    cleanups.push(async () => {
      await removeNamespaces(join(tmp, 'node'), `node-${suffix}`);
      await unmountNamespaceDirs(join(tmp, 'node'));
      // A RunPodSandbox that got as far as the pod's namespaces leaves the runtime's namespace dirs mounted.
      await unmountNamespaceDirs(join(tmp, 'run'));
    });
    const notADir = join(tmp, 'not-a-dir');
    await writeFile(notADir, '');
    await prepare?.(join(tmp, 'root'));
    const lines: string[] = [];
    const runtime = await NodeRuntime.start({
      socket: join(tmp, 'cri.sock'),
      root: join(tmp, 'root'),
      runDir: join(tmp, 'run'),
      logRoot: join(tmp, 'pods'),
      network: { bridge: `atl-t${suffix}`, subnet, hostNetns: node.net },
      runv: { cacheRoot: notADir },
      log: (line) => lines.push(line),
      ...extra,
    });
    cleanups.push(async () => {
      await runtime.close();
      await runtime.network.destroy();
    });
    const cri: CriClient = criClient(runtime.socketPath);
    cleanups.push(async () => cri.close());
    const unavailable = (l: string) => l.startsWith('atoll runtime: runv is not available on this node, serving runc only: ') && l.includes(notADir);
    return { runtime, cri, lines, unavailable };
  }

  it('serves runc alone, and says why, when the runv handler cannot open on the node', async () => {
    const { runtime, cri, lines, unavailable } = await startRuntime('10.197.0.0/24', {});
    assert.equal(runtime.runv, undefined);
    assert.ok(lines.some(unavailable), lines.join('\n'));
    assert.equal((await cri.Version({})).runtime_name, 'atoll');
    await assert.rejects(cri.RunPodSandbox({ config: SANDBOX, runtime_handler: 'runv' }), /no runtime handler named "runv"; known: runc/);
  });

  it('with deferRunv, serves before opening runv, opens it on the first runv call, and fails that call with the reason', async () => {
    const { runtime, cri, lines, unavailable } = await startRuntime('10.197.1.0/24', { deferRunv: true });
    assert.equal((await cri.Version({})).runtime_name, 'atoll');
    assert.ok(!lines.some(unavailable), `runv is not opened at start: ${lines.join('\n')}`);
    await assert.rejects(
      cri.RunPodSandbox({ config: SANDBOX, runtime_handler: 'runv' }),
      (err: Error) => /runtime handler "runv" is not available on this node: /.test(err.message) && err.message.includes('not-a-dir'),
    );
    assert.equal(lines.filter(unavailable).length, 1, lines.join('\n'));
    assert.equal(await runtime.openRunv(), undefined);
    assert.equal(runtime.runv, undefined);
    assert.equal(lines.filter(unavailable).length, 1, 'one failed open, said once');
    const { items } = await cri.ListPodSandbox({});
    assert.deepEqual(items, [], 'the failed RunPodSandbox left nothing behind');
  });

  it('with deferRunv, still opens runv at start when it has sandboxes on disk to adopt', async () => {
    const { runtime, lines, unavailable } = await startRuntime('10.197.2.0/24', { deferRunv: true }, async (root) => {
      await mkdir(join(root, 'runv', 'sandboxes'), { recursive: true });
      await writeFile(join(root, 'runv', 'sandboxes', 'left-by-an-earlier-start.json'), '{}');
    });
    assert.ok(lines.some(unavailable), `the open was tried before start returned: ${lines.join('\n')}`);
    assert.equal(await runtime.openRunv(), undefined);
  });
});
