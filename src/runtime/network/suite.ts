import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import {
  createNamespaces,
  execInNetns,
  listNamespaces,
  removeNamespaces,
  type SandboxNamespaces,
} from '../sandbox/namespaces.js';
import { deleteLink, ipJson, type IpAddressLink } from './ip.js';
import type { Network, NetworkAttachment, PodNetworkMetadata } from './network.js';
import { interfaceStats } from './stats.js';

/**
 * The cases every `Network` implementation must pass (see network.ts for the rules they check). An
 * implementation's test file calls `networkSuite('bridge', createEnvironment)`; the environment provides
 * a namespace standing in for the node, so that nothing touches the real host's links.
 */
export interface NetworkSuiteEnvironment {
  /** The network namespace acting as the node. */
  hostNetns: string;
  /** Where the suite creates pod namespaces (`createNamespaces(runDir, ...)`). */
  runDir: string;
  /** A new instance over the environment's persisted state; called again to simulate a runtime restart. */
  open(): Network;
  /** Whether the node itself can reach pods (macvlan pods cannot reach their parent's host, for one). */
  nodeReachesPods: boolean;
  /** Per-sandbox traces of the implementation (links, IP allocations) as readable strings; empty when clean. */
  leftovers(): Promise<string[]>;
  /** Removes everything the environment created, including `hostNetns`. */
  close(): Promise<void>;
}

const BUSYBOX = '/usr/bin/busybox';
const PING_TIMEOUT_SECONDS = 2;
const MANY_PODS = 24;
const TCP_PORT = 8080;

function newSandboxId(): string {
  return randomBytes(32).toString('hex');
}

function metadata(id: string): PodNetworkMetadata {
  return { name: `pod-${id.slice(0, 6)}`, namespace: 'suite', uid: id.slice(0, 36) };
}

export function networkSuite(name: string, createEnvironment: () => Promise<NetworkSuiteEnvironment>): void {
  describe(`Network suite: ${name}`, () => {
    let env: NetworkSuiteEnvironment;
    let network: Network;
    const pods = new Map<string, SandboxNamespaces>();

    async function newPod(): Promise<SandboxNamespaces> {
      const id = newSandboxId();
      const ns = await createNamespaces(env.runDir, id, { hostname: `pod-${id.slice(0, 8)}`, loopback: false });
      pods.set(id, ns);
      return ns;
    }

    async function removePod(ns: SandboxNamespaces): Promise<void> {
      await network.teardown(ns.id, ns.net);
      await removeNamespaces(env.runDir, ns.id);
      pods.delete(ns.id);
    }

    async function ping(fromNetns: string, address: string): Promise<void> {
      await execInNetns(fromNetns, [BUSYBOX, 'ping', '-c', '1', '-W', String(PING_TIMEOUT_SECONDS), address]);
    }

    function podIP(att: NetworkAttachment): string {
      const first = att.ips[0];
      assert.ok(first, `sandbox ${att.sandboxId} has no IP`);
      return first.address;
    }

    before(async () => {
      await access(BUSYBOX).catch(() => {
        throw new Error(`${BUSYBOX} is needed for reachability checks: apt-get install busybox-static`);
      });
      env = await createEnvironment();
      network = env.open();
      const report = await network.restore([]);
      assert.deepEqual(report, { restored: [], released: [], unrepaired: [] });
    });

    after(async () => {
      for (const ns of pods.values()) {
        await network?.teardown(ns.id, ns.net).catch(() => undefined);
        await removeNamespaces(env.runDir, ns.id).catch(() => undefined);
      }
      await network?.destroy().catch(() => undefined);
      await env?.close();
    });

    it('setup configures the pod interface with the reported address and gateway', async () => {
      const ns = await newPod();
      const att = await network.setup(ns.id, ns.net, metadata(ns.id));
      assert.equal(att.sandboxId, ns.id);
      assert.equal(att.ips.length, 1);
      const ip = att.ips[0]!;
      assert.equal(ip.family, 4);
      const iface = att.interfaces.find((i) => i.name === ip.interface);
      assert.ok(iface, 'the IP names one of the reported interfaces');

      const [link] = await ipJson<IpAddressLink[]>(['addr', 'show', 'dev', iface.name], ns.net);
      assert.ok(link, `${iface.name} exists in the pod netns`);
      assert.ok(link.flags.includes('UP'));
      assert.equal(link.mtu, iface.mtu);
      assert.equal(link.address, iface.mac);
      assert.ok(link.addr_info.some((a) => a.local === ip.address && a.prefixlen === ip.prefixLength));
      if (att.gateway !== undefined) {
        const routes = await ipJson<{ dst: string; gateway?: string }[]>(['route', 'show', 'default'], ns.net);
        assert.deepEqual(routes.map((r) => r.gateway), [att.gateway]);
      }
      const [lo] = await ipJson<IpAddressLink[]>(['link', 'show', 'dev', 'lo'], ns.net);
      assert.ok(lo?.flags.includes('UP'), 'setup brings lo up');
      assert.deepEqual(await network.status(ns.id), att);
      await removePod(ns);
      assert.equal(await network.status(ns.id), undefined);
    });

    it('pods reach each other, and the node reaches pods', async () => {
      const a = await newPod();
      const b = await newPod();
      const attA = await network.setup(a.id, a.net, metadata(a.id));
      const attB = await network.setup(b.id, b.net, metadata(b.id));
      assert.notEqual(podIP(attA), podIP(attB));
      await ping(a.net, podIP(attB));
      await ping(b.net, podIP(attA));
      await tcpRoundTrip(a.net, podIP(attA), b.net);
      if (env.nodeReachesPods) await ping(env.hostNetns, podIP(attA));

      const stats = await interfaceStats(a.net, attA.interfaces[0]!.name);
      assert.ok(stats.rxPackets > 0 && stats.txPackets > 0, `counters move: ${JSON.stringify(stats)}`);
      assert.ok(stats.rxBytes > 0 && stats.txBytes > 0);
      await removePod(a);
      await removePod(b);
    });

    it('gives unique addresses to many pods set up at once and releases them all on teardown', async () => {
      const many = await Promise.all(Array.from({ length: MANY_PODS }, () => newPod()));
      const atts = await Promise.all(many.map((ns) => network.setup(ns.id, ns.net, metadata(ns.id))));
      const addresses = atts.map(podIP);
      assert.equal(new Set(addresses).size, MANY_PODS, `duplicate IPs: ${addresses.join(' ')}`);
      if (atts[0]!.gateway !== undefined) assert.ok(!addresses.includes(atts[0]!.gateway));
      await Promise.all(many.map((ns) => removePod(ns)));
      for (const ns of many) assert.equal(await network.status(ns.id), undefined);
      assert.deepEqual(await env.leftovers(), []);
    });

    it('setup again for an attached sandbox keeps its address', async () => {
      const ns = await newPod();
      const first = await network.setup(ns.id, ns.net, metadata(ns.id));
      const second = await network.setup(ns.id, ns.net, metadata(ns.id));
      assert.deepEqual(second, first);
      if (env.nodeReachesPods) await ping(env.hostNetns, podIP(second));
      await removePod(ns);
    });

    it('a failed setup leaves nothing behind', async () => {
      const id = newSandboxId();
      await assert.rejects(network.setup(id, `${env.runDir}/netns/does-not-exist`, metadata(id)));
      assert.equal(await network.status(id), undefined);
      assert.deepEqual(await env.leftovers(), []);
    });

    it('teardown is idempotent, also for unknown sandboxes and after the netns is gone', async () => {
      await network.teardown(newSandboxId());
      const ns = await newPod();
      await network.setup(ns.id, ns.net, metadata(ns.id));
      await removeNamespaces(env.runDir, ns.id);
      await network.teardown(ns.id, ns.net);
      await network.teardown(ns.id, ns.net);
      pods.delete(ns.id);
      assert.equal(await network.status(ns.id), undefined);
      assert.deepEqual(await env.leftovers(), []);
    });

    it('a restarted instance keeps live attachments, repairs broken ones and releases leaked ones', async () => {
      const kept = await newPod();
      const broken = await newPod();
      const leakedLinks = await newPod();
      const leakedNetns = await newPod();
      const attKept = await network.setup(kept.id, kept.net, metadata(kept.id));
      const attBroken = await network.setup(broken.id, broken.net, metadata(broken.id));
      await network.setup(leakedLinks.id, leakedLinks.net, metadata(leakedLinks.id));
      await network.setup(leakedNetns.id, leakedNetns.net, metadata(leakedNetns.id));

      // While the runtime is down: one sandbox's node-side link vanishes, one netns is removed without
      // teardown, and one sandbox is forgotten by the runtime while its netns lives on.
      const hostLink = attBroken.interfaces[0]!.hostInterface;
      if (hostLink !== undefined) await deleteLink(hostLink, env.hostNetns);
      await removeNamespaces(env.runDir, leakedNetns.id);
      pods.delete(leakedNetns.id);

      network = env.open();
      const report = await network.restore([
        { id: kept.id, netnsPath: kept.net },
        { id: broken.id, netnsPath: broken.net },
      ]);
      assert.deepEqual(report.restored.sort(), [kept.id, broken.id].sort());
      assert.deepEqual(report.released, [leakedLinks.id, leakedNetns.id].sort());
      assert.deepEqual(report.unrepaired, []);
      assert.deepEqual(await network.status(kept.id), attKept);
      assert.deepEqual(await network.status(broken.id), attBroken);
      assert.equal(await network.status(leakedLinks.id), undefined);

      const fresh = await newPod();
      const attFresh = await network.setup(fresh.id, fresh.net, metadata(fresh.id));
      assert.ok(![podIP(attKept), podIP(attBroken)].includes(podIP(attFresh)), 'a held IP is never reused');
      await ping(fresh.net, podIP(attKept));
      await ping(fresh.net, podIP(attBroken));

      await removeNamespaces(env.runDir, leakedLinks.id);
      pods.delete(leakedLinks.id);
      for (const ns of [kept, broken, fresh]) await removePod(ns);
      assert.deepEqual(await env.leftovers(), []);
    });

    it('gc releases only sandboxes that are not live', async () => {
      const live = await newPod();
      const leaked = await newPod();
      await network.setup(live.id, live.net, metadata(live.id));
      await network.setup(leaked.id, leaked.net, metadata(leaked.id));
      assert.deepEqual(await network.gc(new Set([live.id])), [leaked.id]);
      assert.ok(await network.status(live.id));
      assert.equal(await network.status(leaked.id), undefined);
      assert.deepEqual(await network.gc(new Set([live.id])), []);
      await removeNamespaces(env.runDir, leaked.id);
      pods.delete(leaked.id);
      await removePod(live);
    });

    it('leaves nothing behind: no attachments, pod namespaces or node infrastructure', async () => {
      assert.deepEqual(await env.leftovers(), []);
      assert.deepEqual(await listNamespaces(env.runDir).then((l) => l.filter((n) => n.net !== env.hostNetns)), []);
      await network.destroy();
    });
  });
}

/** Serves one TCP connection in `serverNetns` and connects to it from `clientNetns`. */
async function tcpRoundTrip(serverNetns: string, address: string, clientNetns: string): Promise<void> {
  const server = spawn(
    'nsenter',
    [`--net=${serverNetns}`, '--', process.execPath, '-e',
      `const s=require('net').createServer(c=>{c.end('atoll');s.close()});s.listen(${TCP_PORT},process.argv[1],()=>console.log('ready'))`,
      address],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      server.stdout.once('data', () => resolve());
      server.once('exit', (code) => reject(new Error(`TCP server exited early (${code})`)));
    });
    const { stdout } = await execInNetns(clientNetns, [
      process.execPath, '-e',
      `const c=require('net').connect(${TCP_PORT},process.argv[1]);let d='';c.on('data',b=>d+=b);c.on('end',()=>process.stdout.write(d))`,
      address,
    ]);
    assert.equal(stdout, 'atoll');
  } finally {
    if (server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGKILL');
      await exited;
    }
  }
}
