import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { criClient, type CriClient } from './cri/index.js';
import { NodeRuntime } from './node-runtime.js';
import { createNamespaces, removeNamespaces, unmountNamespaceDirs } from './sandbox/namespaces.js';

describe('NodeRuntime', () => {
  const suffix = randomBytes(3).toString('hex');
  let tmp: string | undefined;
  let runtime: NodeRuntime | undefined;
  let cri: CriClient | undefined;

  after(async () => {
    cri?.close();
    await runtime?.close();
    await runtime?.network.destroy().catch(() => undefined);
    if (tmp) {
      await removeNamespaces(join(tmp, 'node'), `node-${suffix}`);
      await unmountNamespaceDirs(join(tmp, 'node')).catch(() => undefined);
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('serves runc alone, and says why, when the runv handler cannot open on the node', async () => {
    tmp = await mkdtemp(join(tmpdir(), 'atoll-node-runtime-'));
    // The bridge goes into a node netns of the test's own, not the host's.
    const node = await createNamespaces(join(tmp, 'node'), `node-${suffix}`, { hostname: 'node' });
    // runv's cache is a regular file: preparing the guest kernel there fails at once, as a node without
    // QEMU or without a way to fetch the kernel fails.
    const notADir = join(tmp, 'not-a-dir');
    await writeFile(notADir, '');
    const lines: string[] = [];
    runtime = await NodeRuntime.start({
      socket: join(tmp, 'cri.sock'),
      root: join(tmp, 'root'),
      runDir: join(tmp, 'run'),
      logRoot: join(tmp, 'pods'),
      network: { bridge: `atl-t${suffix}`, subnet: '10.197.0.0/24', hostNetns: node.net },
      runv: { cacheRoot: notADir },
      log: (line) => lines.push(line),
    });
    assert.equal(runtime.runv, undefined);
    assert.ok(lines.some((l) => l.startsWith('atoll runtime: runv is not available on this node, serving runc only: ') && l.includes(notADir)), lines.join('\n'));

    cri = criClient(runtime.socketPath);
    assert.equal((await cri.Version({})).runtime_name, 'atoll');
    await assert.rejects(
      cri.RunPodSandbox({ config: { metadata: { name: 'p', namespace: 'default', uid: 'u', attempt: 0 } }, runtime_handler: 'runv' }),
      /no runtime handler named "runv"; known: runc/,
    );
  });
});
