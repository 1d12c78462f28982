import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { busyboxRootfs } from '../../test/support/images.js';
import { fetchExtendedStats, parseExtendedStats, serveAdmin, type StatsSource } from './admin.js';
import { buildImageArchive } from './images/import.js';
import { ImageStore } from './images/store.js';

const ATOLL = fileURLToPath(new URL('../../../bin/atoll', import.meta.url));

function atoll(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ATOLL, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('atoll images through the runtime admin socket', () => {
  let dir: string;
  let socket: string;
  let archive: string;
  let admin: { close(): Promise<void> };
  let store: ImageStore;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-admin-'));
    socket = join(dir, 'admin.sock');
    store = new ImageStore(join(dir, 'images'));
    admin = await serveAdmin(socket, store);
    archive = await buildImageArchive({
      ref: 'atoll.local/admin-test:1',
      files: await busyboxRootfs(join(dir, 'rootfs')),
      config: { Cmd: ['sh'], Env: ['PATH=/bin'], WorkingDir: '/', User: '' },
      output: join(dir, 'image.tar'),
    });
  });
  after(async () => {
    await admin?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('imports an archive into the running store and lists it', async () => {
    const r = await atoll('images', 'import', archive, '--admin-socket', socket);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^imported atoll\.local\/admin-test:1 \(sha256:[0-9a-f]{64}\)$/m);
    assert.ok((await store.status('atoll.local/admin-test:1')), 'the store holds the image');
    const ls = await atoll('images', 'ls', '--admin-socket', socket);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^atoll\.local\/admin-test:1\t[0-9a-f]{12}\t[\d.]+MiB$/m);
  });

  it('names the file when it is not an image archive, and the flag when no runtime answers', async () => {
    const junk = join(dir, 'junk.tar');
    await writeFile(junk, 'not a tarball');
    const bad = await atoll('images', 'import', junk, '--admin-socket', socket);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /junk\.tar/);
    const missing = await atoll('images', 'import', join(dir, 'missing.tar'), '--admin-socket', socket);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /missing\.tar/);
    const nobody = await atoll('images', 'ls', '--admin-socket', join(dir, 'nobody.sock'));
    assert.equal(nobody.code, 2);
    assert.match(nobody.stderr, /--admin-socket .*nobody\.sock: no runtime answers there/);
  });

  it('serves the handlers\' stats on /v1/stats, and the reader checks every field', async () => {
    const eth0 = { name: 'eth0', rxBytes: 100, rxPackets: 2, rxErrors: 0, rxDropped: 0, txBytes: 50, txPackets: 1, txErrors: 0, txDropped: 0 };
    const source: StatsSource = {
      handlerStats: async () => [
        {
          id: 'c1',
          stats: {
            timestamp: 1700000000123,
            cpu: { usageCoreNanoSeconds: 2n ** 60n },
            memory: { usageBytes: 3, workingSetBytes: 2, rssBytes: 1 },
            pids: 1,
            blockIo: { readBytes: 4096, writeBytes: 1048576, readOps: 1, writeOps: 16 },
          },
        },
        { id: 'c2', stats: { timestamp: 1700000000124, cpu: { usageCoreNanoSeconds: 5n }, memory: { usageBytes: 0, workingSetBytes: 0, rssBytes: 0 }, pids: 0 } },
      ],
      sandboxInterfaces: async () => [{ id: 's1', timestamp: 1700000000125, interfaces: [eth0] }],
    };
    const statsSocket = join(dir, 'stats.sock');
    const withStats = await serveAdmin(statsSocket, store, source);
    try {
      assert.deepEqual(await fetchExtendedStats(statsSocket, 5000), {
        containers: [
          {
            id: 'c1',
            timestamp: 1700000000123,
            cpu: { usageCoreNanoSeconds: 2n ** 60n },
            memory: { usageBytes: 3, workingSetBytes: 2, rssBytes: 1 },
            blockIo: { readBytes: 4096, writeBytes: 1048576, readOps: 1, writeOps: 16 },
          },
          { id: 'c2', timestamp: 1700000000124, cpu: { usageCoreNanoSeconds: 5n }, memory: { usageBytes: 0, workingSetBytes: 0, rssBytes: 0 } },
        ],
        sandboxes: [{ id: 's1', timestamp: 1700000000125, interfaces: [eth0] }],
      });
    } finally {
      await withStats.close();
    }
    await assert.rejects(fetchExtendedStats(socket, 5000), /no GET \/v1\/stats here/);
    const container = { id: 'c', timestamp: 1, cpu: { usageCoreNanoSeconds: '1' }, memory: { usageBytes: 0, workingSetBytes: 0, rssBytes: 0 } };
    assert.throws(() => parseExtendedStats({ containers: [{ ...container, cpu: { usageCoreNanoSeconds: 12 } }], sandboxes: [] }), /containers\[0\]\.cpu\.usageCoreNanoSeconds must be a decimal string/);
    assert.throws(() => parseExtendedStats({ containers: [{ ...container, blockIo: { readBytes: -1 } }], sandboxes: [] }), /containers\[0\]\.blockIo\.readBytes must be a non-negative number/);
    assert.throws(() => parseExtendedStats({ containers: [], sandboxes: [{ id: 's', timestamp: 1, interfaces: [{ name: 'eth0' }] }] }), /sandboxes\[0\]\.interfaces\[0\]\.rxBytes must be/);
    assert.throws(() => parseExtendedStats({ containers: {} }), /containers must be a list/);
  });
});
