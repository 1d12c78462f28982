import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { SandboxSpec } from '../handler.js';
import { BridgeNetwork } from '../network/bridge.js';
import { findLink, ipJson, type IpLink } from '../network/ip.js';
import { createNamespaces, execInNetns, mountPoints, removeNamespaces, unmountNamespaceDirs, type SandboxNamespaces } from '../sandbox/namespaces.js';
import { unmount } from '../snapshots/mount.js';
import { makeBusyboxRootfs } from '../suite.js';
import { RunvHandler } from './handler.js';
import type { SandboxRecord } from './records.js';
import { tapName } from './tap.js';
import { TemplateCache } from './template.js';
import { MicroVm } from './vm.js';
import { runningQemus } from './qemu-testkit.js';

/**
 * The runv handler with a pool of one idle VM, on real QEMU (TCG here): a pod takes the pool's VM and
 * gets its own IP, MAC and hostname and traffic; the pool refills; a runtime restart (close, open)
 * leaves no idle VM, tap, netns or directory behind and adopts the pod; stopping the pod removes it all.
 * At most two VMs run at once (the pod's and the refill), plus the one template build before.
 */
const CACHE_ROOT = process.env.ATOLL_RUNV_TEST_CACHE ?? fileURLToPath(new URL('../../../../.cache/runv', import.meta.url));
const SUBNET = '10.198.0.0/24';
const CHAIN_ID = `sha256:${createHash('sha256').update('atoll runv pool test: busybox rootfs').digest('hex')}`;
const BUSYBOX = '/usr/bin/busybox';
const PING_WAIT_SECONDS = 10;

const work = mkdtempSync(join(tmpdir(), 'atoll-runv-pool-'));
const root = join(work, 'root');
const runDir = join(work, 'run');
const logDir = join(work, 'logs');
mkdirSync(logDir);
const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
const suffix = randomBytes(3).toString('hex');
const templates = new TemplateCache(root, { log: (line) => console.log(line) });
let node: SandboxNamespaces | undefined;
let network: BridgeNetwork | undefined;
let pod: SandboxNamespaces | undefined;

function listDir(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

after(async () => {
  for (const name of listDir(join(root, 'runv', 'vm'))) await MicroVm.destroy(join(root, 'runv', 'vm', name));
  for (const point of [...(await mountPoints())].filter((p) => p.startsWith(`${work}/`)).sort((a, b) => b.length - a.length)) await unmount(point).catch(() => undefined);
  if (pod) {
    await network?.teardown(pod.id, pod.net).catch(() => undefined);
    await removeNamespaces(runDir, pod.id).catch(() => undefined);
  }
  await network?.destroy().catch(() => undefined);
  if (node) await removeNamespaces(runDir, node.id).catch(() => undefined);
  await unmountNamespaceDirs(runDir).catch(() => undefined);
  await templates.close();
  await templates.removeAll();
  rmSync(work, { recursive: true, force: true });
});

describe('RunvHandler with a pool', () => {
  let handler: RunvHandler | undefined;
  let sandbox: SandboxSpec;
  const open = async () => {
    const opened = await RunvHandler.open({ root, cacheRoot: CACHE_ROOT, templates, pool: 1, startVm: (o) => templates.startVm(o), log: (line) => console.log(line) });
    handler = opened;
    return opened;
  };
  const vmDirs = () => listDir(join(root, 'runv', 'vm'));
  const record = (): SandboxRecord => JSON.parse(readFileSync(join(root, 'runv', 'sandboxes', `${sandbox.id}.json`), 'utf8')) as SandboxRecord;

  before(async () => {
    node = await createNamespaces(runDir, `node-${suffix}`, { hostname: 'node' });
    network = new BridgeNetwork({ stateDir: join(work, 'network'), bridge: `atl-rp${suffix}`, subnet: SUBNET, hostNetns: node.net });
    await network.restore([]);
    const id = `pool-pod-${suffix}`;
    pod = await createNamespaces(runDir, id, { hostname: 'pool-pod', loopback: false });
    const att = await network.setup(id, pod.net, { name: 'pool-pod', namespace: 'default', uid: id });
    sandbox = { id, hostname: 'pool-pod', netns: pod.net, hostNetwork: false, network: att };
  });
  after(async () => {
    await handler?.stopSandbox(sandbox.id).catch((err: Error) => console.log(`stopping the sandbox: ${err.message}`));
    await handler?.close();
  });

  it('refuses a pool size out of range, and a pool without templates', async () => {
    await assert.rejects(RunvHandler.open({ root, cacheRoot: CACHE_ROOT, templates, pool: 9 }), /pool size must be a whole number from 0 to 8, got 9/);
    await assert.rejects(RunvHandler.open({ root, cacheRoot: CACHE_ROOT, pool: 1 }), /needs VM templates/);
  });

  it('starts a pod on the idle VM with its own IP, MAC and hostname, traffic flowing, and refills', async () => {
    const h = await open();
    await h.adopt();
    await h.poolFull();
    const idle = vmDirs();
    assert.equal(idle.length, 1);
    assert.match(idle[0]!, /^pool-[0-9a-f]+$/);

    await h.startSandbox(sandbox);
    const saved = record();
    assert.equal(saved.vmDir, join(root, 'runv', 'vm', idle[0]!), 'the pod got the idle VM');
    assert.equal(saved.shareDir, join(root, 'runv', 'shares', idle[0]!));
    const tap = await findLink(tapName(sandbox.network!.interfaces[0]!.name), sandbox.netns);
    assert.equal(tap?.linkinfo?.info_kind, 'tun', 'the idle VM\'s tap is the pod\'s now');

    const id = `pool-c-${suffix}`;
    await h.createContainer({ id, sandboxId: sandbox.id, rootfs, imageChainId: CHAIN_ID, command: ['sleep', '1000'], logPath: join(logDir, id, '0.log') });
    await h.start(id);
    const out = await h.execSync(id, ['sh', '-c', 'hostname; ip -4 addr show eth0; cat /sys/class/net/eth0/address'], 30);
    const text = out.stdout.toString();
    const ip = sandbox.network!.ips[0]!;
    assert.match(text, /^pool-pod\n/);
    assert.match(text, new RegExp(`inet ${ip.address.replace(/\./g, '\\.')}/${ip.prefixLength}`));
    assert.match(text, new RegExp(sandbox.network!.interfaces[0]!.mac));
    await execInNetns(node!.net, [BUSYBOX, 'ping', '-c', '1', '-W', String(PING_WAIT_SECONDS), ip.address]);
    const fromGuest = await h.execSync(id, ['ping', '-c', '1', '-W', String(PING_WAIT_SECONDS), sandbox.network!.gateway!], 30);
    assert.equal(fromGuest.exitCode, 0, fromGuest.stdout.toString() + fromGuest.stderr.toString());

    await h.poolFull();
    const refilled = vmDirs().filter((name) => name !== idle[0]);
    assert.equal(refilled.length, 1, 'one new idle VM');
    assert.match(refilled[0]!, /^pool-/);
  });

  it('closes without leaving idle VMs or the pool netns, and adopts the pod after a restart', async () => {
    const podVm = record().vmDir;
    await handler!.close();
    handler = undefined;
    assert.deepEqual(vmDirs().map((name) => join(root, 'runv', 'vm', name)), [podVm], 'only the pod\'s VM is left');
    assert.equal(runningQemus(root).length, 1);
    assert.equal(existsSync(join(root, 'runv', 'pool')), false, 'the pool netns is gone');
    assert.deepEqual(listDir(join(root, 'runv', 'shares')), [record().shareDir!.split('/').pop()]);

    const h = await open();
    const adopted = await h.adopt();
    assert.equal(adopted.length, 1);
    assert.equal(adopted[0]!.state.status, 'running');
    const out = await h.execSync(adopted[0]!.id, ['hostname'], 30);
    assert.equal(out.stdout.toString(), 'pool-pod\n');
    await h.poolFull();
    assert.equal(runningQemus(root).length, 2);

    await h.stop(adopted[0]!.id, 0);
    await h.remove(adopted[0]!.id);
    await h.stopSandbox(sandbox.id);
    assert.equal(await findLink(tapName(sandbox.network!.interfaces[0]!.name), sandbox.netns), undefined);
    const links = await ipJson<IpLink[]>(['link', 'show'], sandbox.netns);
    assert.deepEqual(links.map((l) => l.ifname).filter((name) => name !== 'lo'), [sandbox.network!.interfaces[0]!.name]);
    assert.deepEqual(listDir(join(root, 'runv', 'sandboxes')), []);
    await h.close();
    handler = undefined;
    assert.deepEqual(vmDirs(), []);
    assert.deepEqual(runningQemus(root), []);
    assert.deepEqual(listDir(join(root, 'runv', 'shares')), []);
    assert.equal(existsSync(join(root, 'runv', 'pool')), false);
  });
});
