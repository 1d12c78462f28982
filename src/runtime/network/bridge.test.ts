import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createNamespaces,
  execInNetns,
  mountPoints,
  removeNamespaces,
  unmountNamespaceDirs,
  type SandboxNamespaces,
} from '../sandbox/namespaces.js';
import { BridgeNetwork, podMac, vethName, type BridgeNetworkOptions } from './bridge.js';
import { findLink, ipJson, type IpAddressLink, type IpLink } from './ip.js';
import { NetworkError } from './network.js';
import { interfaceStats } from './stats.js';
import { networkSuite, type NetworkSuiteEnvironment } from './suite.js';

const SUBNET = '10.199.0.0/24';

interface BridgeEnvironment extends NetworkSuiteEnvironment {
  options: BridgeNetworkOptions;
  node: SandboxNamespaces;
}

/**
 * A temp dir with a run dir and a state dir, plus a network namespace standing in for the node: the
 * bridge and the veth node ends live there, and vanish with it even if a test fails half-way.
 */
async function bridgeEnvironment(extra: Partial<BridgeNetworkOptions> = {}): Promise<BridgeEnvironment> {
  const tmp = await mkdtemp(join(tmpdir(), 'atoll-net-'));
  const runDir = join(tmp, 'run');
  const suffix = randomBytes(3).toString('hex');
  const node = await createNamespaces(runDir, `node-${suffix}`, { hostname: 'node' });
  const options: BridgeNetworkOptions = {
    stateDir: join(tmp, 'state'),
    bridge: `atl-t${suffix}`,
    subnet: SUBNET,
    mtu: 1400,
    hostNetns: node.net,
    ...extra,
  };
  return {
    options,
    node,
    hostNetns: node.net,
    runDir,
    nodeReachesPods: true,
    open: () => new BridgeNetwork(options),
    async leftovers() {
      const veths = await ipJson<IpLink[]>(['link', 'show', 'type', 'veth'], node.net);
      const state = await readFile(join(options.stateDir, `ipam-${options.bridge}.json`), 'utf8').catch(() => '{}');
      const allocations = Object.entries((JSON.parse(state) as { allocations?: Record<string, string> }).allocations ?? {});
      return [...veths.map((l) => `veth ${l.ifname}`), ...allocations.map(([ip, id]) => `ip ${ip} held by ${id}`)];
    },
    async close() {
      await removeNamespaces(runDir, node.id);
      await unmountNamespaceDirs(runDir);
      const mounted = [...(await mountPoints())].filter((p) => p.startsWith(tmp));
      await rm(tmp, { recursive: true, force: true });
      assert.deepEqual(mounted, [], 'no mounts left under the test dir');
      assert.equal(await findLink(options.bridge!), undefined, 'the test bridge never appears on the real host');
    },
  };
}

networkSuite('bridge', () => bridgeEnvironment());

describe('BridgeNetwork', () => {
  let env: BridgeEnvironment;
  const pods: SandboxNamespaces[] = [];

  before(async () => {
    env = await bridgeEnvironment({ ipForward: true });
  });

  after(async () => {
    const network = env.open();
    for (const ns of pods) {
      await network.teardown(ns.id).catch(() => undefined);
      await removeNamespaces(env.runDir, ns.id).catch(() => undefined);
    }
    await env.close();
  });

  async function newPod(): Promise<SandboxNamespaces> {
    const ns = await createNamespaces(env.runDir, randomBytes(32).toString('hex'), { hostname: 'pod' });
    pods.push(ns);
    return ns;
  }

  it('names the node end of the veth from the sandbox id, within IFNAMSIZ', () => {
    const id = 'a'.repeat(64);
    assert.match(vethName(id), /^veth[0-9a-f]{8}$/);
    assert.equal(vethName(id), vethName(id));
    assert.notEqual(vethName(id), vethName('b'.repeat(64)));
    assert.equal(podMac('10.88.1.2'), '0a:58:0a:58:01:02');
  });

  it('rejects invalid options with a precise error', () => {
    assert.throws(() => new BridgeNetwork({ stateDir: '/x', bridge: 'a-bridge-name-too-long' }), /invalid bridge name/);
    assert.throws(() => new BridgeNetwork({ stateDir: '/x', mtu: 20 }), /invalid MTU 20/);
  });

  it('creates the bridge with the gateway address, enables forwarding only in its namespace', async () => {
    const hostForward = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim();
    const network = env.open();
    await network.restore([]);
    const [bridge] = await ipJson<IpAddressLink[]>(['-d', 'addr', 'show', 'dev', env.options.bridge!], env.hostNetns);
    assert.ok(bridge);
    assert.equal((bridge as IpLink).linkinfo?.info_kind, 'bridge');
    assert.ok(bridge.flags.includes('UP'));
    assert.deepEqual(
      bridge.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`),
      ['10.199.0.1/24'],
    );
    const { stdout } = await execInNetns(env.hostNetns, ['cat', '/proc/sys/net/ipv4/ip_forward']);
    assert.equal(stdout.trim(), '1');
    assert.equal((await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim(), hostForward);

    // A second instance (a restart) adopts the bridge as it is.
    await env.open().restore([]);
  });

  it('attaches the veth node end to the bridge and reports pod counters', async () => {
    const network = env.open();
    await network.restore([]);
    const ns = await newPod();
    const att = await network.setup(ns.id, ns.net, { name: 'p', namespace: 'default', uid: 'u' });
    const hostEnd = await findLink(vethName(ns.id), env.hostNetns);
    assert.equal(hostEnd?.master, env.options.bridge);
    assert.equal(hostEnd?.mtu, 1400);
    assert.equal(att.interfaces[0]?.hostInterface, vethName(ns.id));
    assert.equal(att.gateway, '10.199.0.1');
    assert.match(att.ips[0]!.address, /^10\.199\.0\.\d+$/);

    await execInNetns(env.hostNetns, ['/usr/bin/busybox', 'ping', '-c', '2', '-W', '2', att.ips[0]!.address]);
    const stats = await interfaceStats(ns.net);
    assert.equal(stats.name, 'eth0');
    assert.ok(stats.rxPackets >= 2 && stats.txPackets >= 2, JSON.stringify(stats));
    await assert.rejects(interfaceStats(ns.net, 'eth9'), NetworkError);

    await network.teardown(ns.id, ns.net);
    assert.equal(await findLink(vethName(ns.id), env.hostNetns), undefined);
    assert.deepEqual(await env.leftovers(), []);
  });

  it('never takes over a veth name held by another sandbox', async () => {
    const network = env.open();
    await network.restore([]);
    const ns = await newPod();
    const veth = vethName(ns.id);
    await execInNetns(env.hostNetns, ['ip', 'link', 'add', veth, 'master', env.options.bridge!, 'type', 'veth', 'peer', 'name', 'atl-other']);
    await execInNetns(env.hostNetns, ['ip', 'link', 'set', veth, 'alias', 'atoll-sandbox:other']);
    try {
      await assert.rejects(network.setup(ns.id, ns.net, { name: 'p', namespace: 'default', uid: 'u' }), /veth name .* is taken by atoll-sandbox:other/);
      assert.equal(await network.status(ns.id), undefined);
      await network.teardown(ns.id, ns.net);
      assert.ok(await findLink(veth, env.hostNetns), 'the other sandbox keeps its veth');
    } finally {
      await execInNetns(env.hostNetns, ['ip', 'link', 'del', veth]);
    }
  });

  it('refuses to destroy the bridge while pods are attached', async () => {
    const network = env.open();
    await network.restore([]);
    const ns = await newPod();
    await network.setup(ns.id, ns.net, { name: 'p', namespace: 'default', uid: 'u' });
    await assert.rejects(network.destroy(), /still has 1 attached/);
    await network.teardown(ns.id);
    await network.destroy();
    assert.equal(await findLink(env.options.bridge!, env.hostNetns), undefined);
  });

  it('refuses a device of another kind under the bridge name', async () => {
    await execInNetns(env.hostNetns, ['ip', 'link', 'add', env.options.bridge!, 'type', 'veth', 'peer', 'name', 'atl-peer']);
    try {
      await assert.rejects(env.open().restore([]), /is a veth, not a bridge/);
    } finally {
      await execInNetns(env.hostNetns, ['ip', 'link', 'del', env.options.bridge!]);
    }
  });
});
