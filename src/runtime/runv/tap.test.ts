import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { BridgeNetwork, podMac } from '../network/bridge.js';
import { findLink, ipJson, type IpAddressLink, type IpLink } from '../network/ip.js';
import type { NetworkAttachment } from '../network/network.js';
import { interfaceStats } from '../network/stats.js';
import {
  createNamespaces,
  execInNetns,
  mountPoints,
  removeNamespaces,
  unmountNamespaceDirs,
  type SandboxNamespaces,
} from '../sandbox/namespaces.js';
import { ensureGuestImages } from './guest-image.js';
import { ensureGuestKernel } from './guest-kernel.js';
import { beginConnectTap, connectTap, disconnectTap, guestNetwork, tapName, type TapConnection } from './tap.js';
import { MicroVm, chooseAccelerator } from './vm.js';
import { runningQemus } from './qemu-testkit.js';

/** As in vm.test.ts: the kernel and images are cached in the checkout's `.cache/runv`. */
const CACHE_ROOT = process.env.ATOLL_RUNV_TEST_CACHE ?? fileURLToPath(new URL('../../../../.cache/runv', import.meta.url));
const BUSYBOX = '/usr/bin/busybox';
const SUBNET = '10.197.0.0/24';
const GATEWAY = '10.197.0.1';
const MTU = 1400;
const POD_IPV6 = 'fd00:197::5';
const POD_IPV6_ROUTE = 'fd00:198::/64';
const POD_IPV6_GATEWAY = 'fd00:197::1';
const PING_WAIT_SECONDS = 5;
/** A ping that must not be answered gives up after this long. */
const UNANSWERED_PING_WAIT_SECONDS = 1;
const HTTP_PORT = 8080;
const SINK_PORT = 8081;
const TRANSFER_BYTES = 8 * 1024 * 1024;
/** A transfer under TCG on a loaded 2-core machine may take a while; the agent call waits this long. */
const TRANSFER_TIMEOUT_MS = 120_000;

/**
 * A pod network in a namespace standing in for the node, as the network tests do: a BridgeNetwork whose
 * bridge and veth node ends live in `node`, so nothing touches the real host.
 */
interface PodEnvironment {
  tmp: string;
  runDir: string;
  node: SandboxNamespaces;
  bridge: string;
  network: BridgeNetwork;
  pods: SandboxNamespaces[];
  newPod(): Promise<{ ns: SandboxNamespaces; att: NetworkAttachment }>;
  close(): Promise<void>;
}

async function podEnvironment(): Promise<PodEnvironment> {
  const tmp = await mkdtemp(join(tmpdir(), 'atoll-runv-tap-'));
  const runDir = join(tmp, 'run');
  const suffix = randomBytes(3).toString('hex');
  const bridge = `atl-tp${suffix}`;
  const node = await createNamespaces(runDir, `node-${suffix}`, { hostname: 'node' });
  const network = new BridgeNetwork({ stateDir: join(tmp, 'state'), bridge, subnet: SUBNET, mtu: MTU, hostNetns: node.net });
  await network.restore([]);
  const pods: SandboxNamespaces[] = [];
  return {
    tmp, runDir, node, bridge, network, pods,
    async newPod() {
      const id = randomBytes(32).toString('hex');
      const ns = await createNamespaces(runDir, id, { hostname: 'pod', loopback: false });
      pods.push(ns);
      return { ns, att: await network.setup(id, ns.net, { name: 'p', namespace: 'default', uid: id.slice(0, 36) }) };
    },
    async close() {
      for (const ns of pods) {
        await disconnectTap(ns.net, tapName('eth0')).catch(() => undefined);
        await network.teardown(ns.id, ns.net).catch(() => undefined);
        await removeNamespaces(runDir, ns.id).catch(() => undefined);
      }
      await network.destroy().catch(() => undefined);
      await removeNamespaces(runDir, node.id);
      await unmountNamespaceDirs(runDir);
      const mounted = [...(await mountPoints())].filter((p) => p.startsWith(tmp));
      await rm(tmp, { recursive: true, force: true });
      assert.deepEqual(mounted, [], 'no mounts left under the test dir');
      assert.equal(await findLink(bridge), undefined, 'the test bridge never appears on the real host');
    },
  };
}

interface TcFilter { options?: { actions?: { kind: string; mirred_action?: string; direction?: string; to_dev?: string }[] } }

/** Where `dev`'s ingress filters redirect to, as `egress redirect <dev>` strings. */
async function redirects(netns: string, dev: string): Promise<string[]> {
  const { stdout } = await execInNetns(netns, ['tc', '-j', 'filter', 'show', 'dev', dev, 'ingress']);
  const filters = JSON.parse(stdout || '[]') as TcFilter[];
  return filters.flatMap((f) => f.options?.actions ?? []).filter((a) => a.kind === 'mirred').map((a) => `${a.direction} ${a.mirred_action} ${a.to_dev}`);
}

async function qdiscKinds(netns: string, dev: string): Promise<string[]> {
  const { stdout } = await execInNetns(netns, ['tc', '-j', 'qdisc', 'show', 'dev', dev]);
  return (JSON.parse(stdout || '[]') as { kind: string }[]).map((q) => q.kind);
}

async function addresses(netns: string, dev: string): Promise<string[]> {
  const [link] = await ipJson<IpAddressLink[]>(['addr', 'show', 'dev', dev], netns);
  return (link?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
}

async function routes(netns: string, family: 4 | 6, dev: string): Promise<string[]> {
  const listed = await ipJson<{ dst: string; gateway?: string }[]>([`-${family}`, 'route', 'show', 'dev', dev], netns);
  return listed.map((r) => (r.gateway ? `${r.dst} via ${r.gateway}` : r.dst));
}

async function ping(netns: string, address: string, waitSeconds = PING_WAIT_SECONDS): Promise<void> {
  await execInNetns(netns, [BUSYBOX, 'ping', '-c', '1', '-W', String(waitSeconds), address]);
}

describe('runv tap: connecting a pod veth to a tap with tc mirred', () => {
  let env: PodEnvironment;
  before(async () => {
    env = await podEnvironment();
  });
  after(async () => {
    await env?.close();
  });

  it('names the tap after the veth and rejects bad input precisely, leaving nothing behind', async () => {
    assert.equal(tapName('eth0'), 'tap_eth0');
    assert.throws(() => tapName('eth0-long-nm'), /veth name "eth0-long-nm" is too long for its tap tap_eth0-long-nm: at most 11/);
    assert.throws(() => tapName('eth 0'), /invalid veth name "eth 0"/);
    const { ns } = await env.newPod();
    await assert.rejects(connectTap('run/netns/x', { veth: 'eth0' }), /netns path "run\/netns\/x" is not absolute/);
    await assert.rejects(connectTap(ns.net, { veth: 'eth9' }), new RegExp(`no interface eth9 in the netns ${ns.net}`));
    assert.equal(await findLink('tap_eth9', ns.net), undefined);
    await assert.rejects(disconnectTap(ns.net, 'tap 0'), /invalid tap name/);
  });

  it('adds the tap with the veth MTU and redirects both ways, and moves the addresses and routes off the veth', async () => {
    const { ns, att } = await env.newPod();
    const pod = att.ips[0]!.address;
    await execInNetns(ns.net, ['ip', 'addr', 'add', `${POD_IPV6}/64`, 'dev', 'eth0', 'nodad']);
    await execInNetns(ns.net, ['ip', 'route', 'add', POD_IPV6_ROUTE, 'via', POD_IPV6_GATEWAY, 'dev', 'eth0']);

    const conn = await connectTap(ns.net, { veth: 'eth0' });
    assert.deepEqual(conn, {
      tap: 'tap_eth0',
      veth: 'eth0',
      mac: podMac(pod),
      mtu: MTU,
      addresses: [{ family: 4, address: pod, prefixLength: 24 }, { family: 6, address: POD_IPV6, prefixLength: 64 }],
      routes: [{ family: 4, dst: 'default', gateway: GATEWAY }, { family: 6, dst: POD_IPV6_ROUTE, gateway: POD_IPV6_GATEWAY }],
    });

    const tap = await findLink(conn.tap, ns.net);
    assert.equal(tap?.linkinfo?.info_kind, 'tun');
    assert.equal(tap?.mtu, MTU);
    assert.ok(tap?.flags.includes('UP'));
    assert.deepEqual(await redirects(ns.net, 'eth0'), ['egress redirect tap_eth0']);
    assert.deepEqual(await redirects(ns.net, conn.tap), ['egress redirect eth0']);
    assert.deepEqual(await addresses(ns.net, 'eth0'), [], 'no address left on the veth, link-local included');
    assert.deepEqual([...(await routes(ns.net, 4, 'eth0')), ...(await routes(ns.net, 6, 'eth0'))], []);
    const { stdout: ipv6Off } = await execInNetns(ns.net, ['cat', '/proc/sys/net/ipv6/conf/eth0/disable_ipv6']);
    assert.equal(ipv6Off.trim(), '1');

    assert.deepEqual(await connectTap(ns.net, { veth: 'eth0' }), conn, 'connecting again is a no-op with the same answer');
    assert.deepEqual(await redirects(ns.net, 'eth0'), ['egress redirect tap_eth0']);

    await disconnectTap(ns.net, conn.tap);
    assert.equal(await findLink(conn.tap, ns.net), undefined);
    assert.ok(!(await qdiscKinds(ns.net, 'eth0')).includes('ingress'));
    const { stdout: ipv6On } = await execInNetns(ns.net, ['cat', '/proc/sys/net/ipv6/conf/eth0/disable_ipv6']);
    assert.equal(ipv6On.trim(), '0');
    const restored = await addresses(ns.net, 'eth0');
    assert.ok(restored.includes(`${pod}/24`) && restored.includes(`${POD_IPV6}/64`), restored.join(' '));
    assert.deepEqual(await routes(ns.net, 4, 'eth0'), [`default via ${GATEWAY}`, '10.197.0.0/24']);
    assert.ok((await routes(ns.net, 6, 'eth0')).includes(`${POD_IPV6_ROUTE} via ${POD_IPV6_GATEWAY}`));
    await ping(env.node.net, pod);

    assert.deepEqual(await connectTap(ns.net, { veth: 'eth0' }), conn, 'a veth connected and disconnected before connects again');
    await disconnectTap(ns.net, conn.tap);
    await disconnectTap(ns.net, conn.tap);
    await removeNamespaces(env.runDir, ns.id);
    await disconnectTap(ns.net, conn.tap);
  });

  it('refuses a device of another kind, or a tap it did not make, under the tap name', async () => {
    const { ns, att } = await env.newPod();
    await execInNetns(ns.net, ['ip', 'link', 'add', 'tap_eth0', 'type', 'veth', 'peer', 'name', 'other']);
    await assert.rejects(connectTap(ns.net, { veth: 'eth0' }), /tap_eth0 in the netns .* is a veth, not a tap/);
    await assert.rejects(disconnectTap(ns.net, 'tap_eth0'), /is a veth, not a tap/);
    assert.ok((await addresses(ns.net, 'eth0')).includes(`${att.ips[0]!.address}/24`), 'the veth keeps its address');

    const other = await env.newPod();
    await execInNetns(other.ns.net, ['ip', 'tuntap', 'add', 'dev', 'tap_eth0', 'mode', 'tap']);
    await execInNetns(other.ns.net, ['ip', 'link', 'set', 'dev', 'tap_eth0', 'alias', 'someone else']);
    await assert.rejects(connectTap(other.ns.net, { veth: 'eth0' }), /the alias of tap_eth0 is not a runv tap record \(it does not start with atoll-runv\): "someone else"/);
    await execInNetns(other.ns.net, ['ip', 'link', 'set', 'dev', 'tap_eth0', 'alias', 'atoll-runv veth=eth0 ipv6=2']);
    await assert.rejects(connectTap(other.ns.net, { veth: 'eth0' }), /not a runv tap record \(unexpected "ipv6=2"\)/);
    assert.ok((await addresses(other.ns.net, 'eth0')).includes(`${other.att.ips[0]!.address}/24`));
  });
});

/**
 * Transfer endpoints in a pod, one JSON line on stdout per transfer: HTTP on HTTP_PORT serves
 * TRANSFER_BYTES to a GET (timed from the request to the client closing), and a TCP sink on SINK_PORT
 * counts what a client sends until it half-closes, and answers with the count.
 */
function startTransferServer(netns: string, address: string): Promise<{ child: ChildProcess; next(): Promise<{ kind: string; bytes: number; ms: number }> }> {
  const script = `
const http = require('http');
const net = require('net');
const [address, size] = [process.argv[1], Number(process.argv[2])];
const report = (kind, bytes, t0) => console.log(JSON.stringify({ kind, bytes, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
let listening = 0;
const ready = () => { if (++listening === 2) console.log(JSON.stringify({ kind: 'ready' })); };
http.createServer((req, res) => {
  const t0 = process.hrtime.bigint();
  res.writeHead(200, { 'content-length': size, connection: 'close' });
  res.socket.once('close', () => report('download', size, t0));
  const chunk = Buffer.alloc(65536);
  let left = size;
  const pump = () => {
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      left -= n;
      if (!res.write(chunk.subarray(0, n))) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
}).listen(${HTTP_PORT}, address, ready);
net.createServer((socket) => {
  const t0 = process.hrtime.bigint();
  let bytes = 0;
  socket.on('data', (b) => { bytes += b.length; });
  socket.on('end', () => { report('upload', bytes, t0); socket.end(String(bytes)); });
}).listen(${SINK_PORT}, address, ready);`;
  const child = spawn('nsenter', [`--net=${netns}`, '--', process.execPath, '-e', script, address, String(TRANSFER_BYTES)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiting: ((line: string) => void)[] = [];
  let buffered = '';
  child.stdout!.on('data', (b: Buffer) => {
    buffered += b.toString();
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const waiter = waiting.shift();
      if (waiter) waiter(line);
      else lines.push(line);
    }
  });
  const next = () => new Promise<{ kind: string; bytes: number; ms: number }>((resolve, reject) => {
    const line = lines.shift();
    if (line !== undefined) return resolve(JSON.parse(line));
    if (child.exitCode !== null) return reject(new Error('transfer server exited'));
    waiting.push((l) => resolve(JSON.parse(l)));
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`transfer server exited early (${code})`)));
    void next().then(() => resolve({ child, next }), reject);
  });
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

function mibPerSecond(bytes: number, ms: number): string {
  return (bytes / 1024 / 1024 / (ms / 1000)).toFixed(1);
}

describe('runv tap: a microVM on the pod network', () => {
  let env: PodEnvironment;
  let runv: { ns: SandboxNamespaces; att: NetworkAttachment };
  let peer: { ns: SandboxNamespaces; att: NetworkAttachment };
  let conn: TapConnection;
  let vm: MicroVm | undefined;
  let server: ChildProcess | undefined;
  const guestIp = () => runv.att.ips[0]!.address;
  const peerIp = () => peer.att.ips[0]!.address;

  async function guest(argv: string[], timeoutMs?: number): Promise<string> {
    const out = await vm!.agent.exec(argv, { timeoutMs });
    assert.equal(out.exitCode, 0, `guest ${argv.join(' ')}: ${out.stderr.toString()}${out.stdout.toString()}`);
    return out.stdout.toString();
  }

  before(async () => {
    const kernel = await ensureGuestKernel(CACHE_ROOT, { onProgress: (line) => console.log(line) });
    const images = await ensureGuestImages(CACHE_ROOT, kernel, { onProgress: (line) => console.log(line) });
    const { accel } = await chooseAccelerator(CACHE_ROOT, kernel, images);
    env = await podEnvironment();
    runv = await env.newPod();
    peer = await env.newPod();
    // As the handler does it: QEMU boots while the redirects are put in place, and the guest gets
    // the pod's network before boot() returns.
    const tap = await beginConnectTap(runv.ns.net, { veth: 'eth0' });
    conn = tap.connection;
    const booting = MicroVm.boot({
      dir: join(env.tmp, 'vm'), kernel, images, accel, netns: runv.ns.net, nic: { tap: conn.tap, mac: conn.mac },
      hostname: 'runv-pod', network: guestNetwork(conn),
    });
    const [booted, wired] = await Promise.allSettled([booting, tap.ready]);
    if (booted.status === 'fulfilled') vm = booted.value;
    if (booted.status === 'rejected') throw booted.reason;
    if (wired.status === 'rejected') throw wired.reason;
    assert.deepEqual(await connectTap(runv.ns.net, { veth: 'eth0' }), conn, 'beginConnectTap and ready end where connectTap does');
    console.log(`runv: ${accel} boot with a NIC to the first agent reply: ${vm!.bootMs} ms`);
  });

  after(async () => {
    await stopProcess(server);
    await vm?.stop();
    await env?.close();
  });

  it('runs QEMU itself, in the pod netns', () => {
    assert.match(readFileSync(`/proc/${vm!.pid}/comm`, 'utf8'), /^qemu-system/);
    assert.equal(readlinkSync(`/proc/${vm!.pid}/ns/net`), `net:[${statSync(runv.ns.net).ino}]`);
  });

  it('boots the guest with the veth MAC, MTU, pod IP, routes and hostname', async () => {
    assert.deepEqual(guestNetwork(conn), { name: 'eth0', mtu: MTU, addresses: [`${guestIp()}/24`], routes: [{ dest: 'default', family: 4, gateway: GATEWAY }] });
    assert.equal((await guest(['cat', '/sys/class/net/eth0/address'])).trim(), conn.mac);
    assert.equal((await guest(['cat', '/sys/class/net/eth0/mtu'])).trim(), String(MTU));
    assert.match(await guest(['ip', '-4', 'addr', 'show', 'dev', 'eth0']), new RegExp(`inet ${guestIp().replace(/\./g, '\\.')}/24 .*scope global eth0`));
    assert.match(await guest(['ip', 'route']), new RegExp(`default via ${GATEWAY.replace(/\./g, '\\.')} dev eth0`));
    assert.equal((await guest(['hostname'])).trim(), 'runv-pod');
  });

  it('the guest and the other pod and node reach each other both ways, with the veth MAC on the wire', async () => {
    await guest(['ping', '-c', '1', '-W', String(PING_WAIT_SECONDS), peerIp()]);
    await guest(['ping', '-c', '1', '-W', String(PING_WAIT_SECONDS), GATEWAY]);
    await ping(peer.ns.net, guestIp());
    await ping(env.node.net, guestIp());
    const [neighbour] = await ipJson<{ dst: string; lladdr?: string }[]>(['neigh', 'show', guestIp()], peer.ns.net);
    assert.equal(neighbour?.lladdr, conn.mac);
    const stats = await interfaceStats(runv.ns.net, 'eth0');
    assert.ok(stats.rxPackets > 0 && stats.txPackets > 0, `the veth counts the guest's traffic: ${JSON.stringify(stats)}`);
  });

  it('carries TCP both ways (throughput measured for the report)', async () => {
    const transfer = await startTransferServer(peer.ns.net, peerIp());
    server = transfer.child;
    const url = `http://${peerIp()}:${HTTP_PORT}/`;

    await guest(['wget', '-q', '-O', '/dev/null', url], TRANSFER_TIMEOUT_MS);
    const download = await transfer.next();
    assert.deepEqual([download.kind, download.bytes], ['download', TRANSFER_BYTES]);

    // Node, not busybox dd | nc: nc's small writes make the guest CPU, not the NIC, the limit under TCG.
    const send = `const c = require('net').connect(${SINK_PORT}, '${peerIp()}', () => c.end(Buffer.alloc(${TRANSFER_BYTES}))); c.pipe(process.stdout);`;
    const answer = await guest(['/usr/bin/node', '-e', send], TRANSFER_TIMEOUT_MS);
    const upload = await transfer.next();
    assert.deepEqual([upload.kind, upload.bytes, answer], ['upload', TRANSFER_BYTES, String(TRANSFER_BYTES)]);

    // The same download from the node netns over plain veths, for scale.
    await execInNetns(env.node.net, [BUSYBOX, 'wget', '-q', '-O', '/dev/null', url], { timeoutMs: TRANSFER_TIMEOUT_MS });
    const baseline = await transfer.next();
    console.log(`runv: TCP ${TRANSFER_BYTES / 1024 / 1024} MiB, guest <- pod ${mibPerSecond(download.bytes, download.ms)} MiB/s, ` +
      `guest -> pod ${mibPerSecond(upload.bytes, upload.ms)} MiB/s, node netns <- pod (veth only) ${mibPerSecond(baseline.bytes, baseline.ms)} MiB/s`);
    await stopProcess(server);
    server = undefined;
  });

  it('leaves nothing behind after VM stop, disconnect, teardown and netns removal', async () => {
    const pid = vm!.pid;
    await vm!.stop();
    vm = undefined;
    assert.ok(!runningQemus().includes(pid), `qemu ${pid} still running`);
    await disconnectTap(runv.ns.net, conn.tap);
    assert.equal(await findLink(conn.tap, runv.ns.net), undefined);
    for (const pod of [runv, peer]) {
      await env.network.teardown(pod.ns.id, pod.ns.net);
      await removeNamespaces(env.runDir, pod.ns.id);
    }
    await disconnectTap(runv.ns.net, conn.tap);
    const veths = await ipJson<IpLink[]>(['link', 'show', 'type', 'veth'], env.node.net);
    assert.deepEqual(veths.map((l) => l.ifname), []);
  });
});
