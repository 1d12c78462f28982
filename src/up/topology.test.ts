import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findLink, ip, ipJson } from '../runtime/network/ip.js';
import { execInNetns, runCommand } from '../runtime/sandbox/namespaces.js';
import { healNodeLink, nodeLinkState, NODE_INTERFACE, partitionNodeLink, planNodeLink, setupNodeLink, teardownNodeLink, TopologyError, type TopologyOptions } from './topology.js';

/** Networks no other test file and no real `atoll up` uses, so runs in parallel never collide. */
const LINK_NETWORK = '172.30.0.0/16';
const POD_NETWORK = '10.245.0.0/16';
const HTTP_PORT = '8080';
/** Bound of one probe; a cut link shows as a probe that gets no answer within it. */
const PROBE_SECONDS = '2';
/** busybox wget's own -T crashes (Debian 1.35), so the fetch is bounded from outside. */
const FETCH_TIMEOUT_MS = 3_000;

/** Whether `address` answers one ping from inside `netns`. */
async function pings(netns: string, address: string): Promise<boolean> {
  return execInNetns(netns, ['busybox', 'ping', '-c', '1', '-W', PROBE_SECONDS, address]).then(
    () => true,
    () => false,
  );
}

async function fetchIn(netns: string, url: string): Promise<string | undefined> {
  return execInNetns(netns, ['busybox', 'wget', '-q', '-O', '-', url], { timeoutMs: FETCH_TIMEOUT_MS }).then(
    (r) => r.stdout,
    () => undefined,
  );
}

describe('cloud links between node network namespaces', () => {
  const id = String(process.pid);
  let dir: string;
  let options: TopologyOptions;
  let httpd: ChildProcess | undefined;
  let forwardingBefore: string;

  const plan = () => [planNodeLink(`${id}-1`, 1, options), planNodeLink(`${id}-2`, 2, options)] as const;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-topology-'));
    options = { owner: dir, netnsPrefix: 'atoll-t-', linkPrefix: 'atlt-', linkNetwork: LINK_NETWORK, podNetwork: POD_NETWORK };
    forwardingBefore = await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8');
  });

  after(async () => {
    if (httpd && httpd.exitCode === null) {
      const exited = new Promise((r) => httpd!.once('exit', r));
      httpd.kill('SIGKILL');
      await exited;
    }
    for (const link of plan()) await teardownNodeLink(link).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });

  it('plans addresses from the node index and refuses names too long for a link', () => {
    const [a, b] = plan();
    assert.deepEqual(
      { hostIP: a.hostIP, nodeIP: a.nodeIP, linkCidr: a.linkCidr, podCidr: a.podCidr, netnsPath: a.netnsPath, hostLink: a.hostLink },
      { hostIP: '172.30.1.1', nodeIP: '172.30.1.2', linkCidr: '172.30.1.0/30', podCidr: '10.245.1.0/24', netnsPath: `/run/netns/atoll-t-${id}-1`, hostLink: `atlt-${id}-1` },
    );
    assert.equal(b.podCidr, '10.245.2.0/24');
    assert.equal(planNodeLink('edge-1', 1, { owner: dir }).podCidr, '10.244.1.0/24');
    assert.throws(() => planNodeLink('a-very-long-name', 1, options), /too long: its link atlt-a-very-long-name must fit in 15 characters/);
    assert.throws(() => planNodeLink('Edge_1', 1, options), /node name "Edge_1"/);
    assert.throws(() => planNodeLink('x', 256, options), /node index 256 does not fit/);
  });

  it('routes a node to a pod address on another node through the host, with forwarding on the links only', async () => {
    const [a, b] = plan();
    await setupNodeLink(a);
    await setupNodeLink(b);
    // A pod stand-in: an address of b's pod CIDR on a bridge in b's netns, served by httpd.
    const podIP = b.podCidr.replace(/0\/24$/, '1');
    await ip(['link', 'add', 'podbr0', 'type', 'bridge'], b.netnsPath);
    await ip(['addr', 'add', `${podIP}/24`, 'dev', 'podbr0'], b.netnsPath);
    await ip(['link', 'set', 'podbr0', 'up'], b.netnsPath);
    await writeFile(join(dir, 'index.html'), `pod on ${b.name}\n`);
    httpd = spawn('nsenter', [`--net=${b.netnsPath}`, '--', 'busybox', 'httpd', '-f', '-p', `${podIP}:${HTTP_PORT}`, '-h', dir], { stdio: 'ignore' });

    assert.ok(await pings(a.netnsPath, podIP), `${a.name} reaches ${podIP} on ${b.name}`);
    let body: string | undefined;
    for (let attempt = 0; attempt < 20 && body === undefined; attempt++) body = await fetchIn(a.netnsPath, `http://${podIP}:${HTTP_PORT}/`);
    assert.equal(body, `pod on ${b.name}\n`);
    assert.equal(await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8'), forwardingBefore, 'the global forwarding switch is untouched');
    assert.equal(await readFile(`/proc/sys/net/ipv4/conf/${a.hostLink}/forwarding`, 'utf8'), '1\n');
    assert.equal((await execInNetns(a.netnsPath, ['cat', '/proc/sys/net/ipv4/ip_forward'])).stdout, '1\n', 'the node netns forwards');
  });

  it('a partition drops traffic both ways while the link stays up, and heal restores it', async () => {
    const [a, b] = plan();
    const podIP = b.podCidr.replace(/0\/24$/, '1');
    await partitionNodeLink(b);
    await partitionNodeLink(b);
    assert.deepEqual(await nodeLinkState(b), { netns: true, link: true, partitioned: true });
    assert.equal(await pings(a.netnsPath, podIP), false, 'the cloud side cannot reach the cut node');
    assert.equal(await pings(b.netnsPath, b.hostIP), false, 'the cut node cannot reach the cloud');
    assert.equal(await fetchIn(a.netnsPath, `http://${podIP}:${HTTP_PORT}/`), undefined);
    const [inside] = await ipJson<{ operstate: string; flags: string[] }[]>(['link', 'show', 'dev', NODE_INTERFACE], b.netnsPath);
    assert.equal(inside!.operstate, 'UP', 'the node sees its link up: the cut shows only as timeouts');
    assert.ok(await pings(a.netnsPath, a.hostIP), 'the other node is not affected');

    await healNodeLink(b);
    assert.equal((await nodeLinkState(b)).partitioned, false);
    assert.ok(await pings(a.netnsPath, podIP));
    assert.ok(await pings(b.netnsPath, b.hostIP));
  });

  it('setup again repairs what went missing and heals a cut', async () => {
    const [a, b] = plan();
    await setupNodeLink(a);
    await ip(['link', 'del', 'dev', a.hostLink]);
    await partitionNodeLink(b);
    await setupNodeLink(a);
    await setupNodeLink(b);
    assert.equal((await nodeLinkState(b)).partitioned, false);
    assert.ok(await pings(a.netnsPath, b.podCidr.replace(/0\/24$/, '1')));
  });

  it("refuses links that another data dir's atoll up owns", async () => {
    const [a] = plan();
    const other = planNodeLink(a.name, 1, { ...options, owner: '/somewhere/else' });
    await assert.rejects(setupNodeLink(other), (err: Error) => err instanceof TopologyError && /belongs to something else/.test(err.message));
    await teardownNodeLink(other);
    assert.ok(await findLink(a.hostLink), 'teardown leaves links it does not own');
  });

  it('partition and heal fail precisely without a link', async () => {
    const ghost = planNodeLink(`${id}-9`, 9, options);
    await assert.rejects(partitionNodeLink(ghost), /node .*-9 has no cloud link/);
  });

  it('teardown removes the netns, the veth and the routes, and is idempotent', async () => {
    const links = plan();
    for (const link of links) {
      await teardownNodeLink(link);
      await teardownNodeLink(link);
    }
    const netns = (await runCommand(['ip', 'netns', 'list'])).stdout;
    const all = (await runCommand(['ip', '-o', 'link'])).stdout;
    const routes = (await runCommand(['ip', 'route'])).stdout;
    for (const link of links) {
      assert.doesNotMatch(netns, new RegExp(`\\b${link.netns}\\b`));
      assert.ok(!all.includes(`${link.hostLink}@`) && !all.includes(`${link.hostLink}:`), `${link.hostLink} is gone`);
      assert.ok(!routes.includes(link.podCidr) && !routes.includes(link.linkCidr), 'routes are gone');
    }
  });
});
