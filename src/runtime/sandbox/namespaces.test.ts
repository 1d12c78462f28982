import assert from 'node:assert/strict';
import { mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createNamespaces,
  execInNetns,
  listNamespaces,
  mountPoints,
  NamespaceError,
  removeNamespaces,
  runCommand,
  unmountNamespaceDirs,
  writePodDnsFiles,
} from './namespaces.js';

describe('sandbox namespaces', () => {
  let tmp: string;
  let runDir: string;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'atoll-ns-'));
    runDir = join(tmp, 'run');
  });

  after(async () => {
    for (const held of await listNamespaces(runDir).catch(() => [])) {
      await removeNamespaces(runDir, held.id).catch(() => undefined);
    }
    await unmountNamespaceDirs(runDir);
    const mounted = [...(await mountPoints())].filter((p) => p.startsWith(tmp));
    await rm(tmp, { recursive: true, force: true });
    assert.deepEqual(mounted, [], 'no mounts left under the test dir');
  });

  async function inNamespace(flag: string, file: string, argv: string[]): Promise<string> {
    return (await runCommand(['nsenter', `${flag}=${file}`, '--', ...argv])).stdout.trim();
  }

  it('creates pinned net, ipc and uts namespaces with the hostname set and lo up', async () => {
    const ns = await createNamespaces(runDir, 'sb-one', { hostname: 'web-0' });
    const mounted = await mountPoints();
    for (const file of [ns.net, ns.ipc, ns.uts]) assert.ok(mounted.has(file), `${file} is a mount`);

    assert.equal(await inNamespace('--uts', ns.uts, ['hostname']), 'web-0');
    const links = JSON.parse((await execInNetns(ns.net, ['ip', '-j', 'link', 'show'])).stdout) as { ifname: string; flags: string[] }[];
    assert.deepEqual(links.map((l) => l.ifname), ['lo'], 'a fresh netns holds only lo');
    assert.ok(links[0]!.flags.includes('UP'), 'lo is up');

    for (const [flag, file, kind] of [['--net', ns.net, 'net'], ['--ipc', ns.ipc, 'ipc'], ['--uts', ns.uts, 'uts']] as const) {
      const inside = await inNamespace(flag, file, ['readlink', `/proc/self/ns/${kind}`]);
      assert.notEqual(inside, await readlink(`/proc/self/ns/${kind}`), `${kind} namespace is new`);
    }
    assert.deepEqual(await listNamespaces(runDir), [{ ...ns, mounted: ['net', 'ipc', 'uts'] }]);

    await removeNamespaces(runDir, ns.id);
    await removeNamespaces(runDir, ns.id);
    const after = await mountPoints();
    for (const file of [ns.net, ns.ipc, ns.uts]) {
      assert.ok(!after.has(file), `${file} is unmounted`);
      await assert.rejects(stat(file), { code: 'ENOENT' });
    }
    assert.deepEqual(await listNamespaces(runDir), []);
  });

  it('makes the namespace directories shared mount points, as ip netns does', async () => {
    const info = await readFile('/proc/self/mountinfo', 'utf8');
    for (const dir of ['netns', 'ipcns', 'utsns']) {
      const line = info.split('\n').find((l) => l.split(' ')[4] === join(runDir, dir));
      assert.ok(line, `${dir} is a mount point`);
      assert.match(line, / shared:\d+ /);
    }
  });

  it('leaves lo down when asked, for callers whose network brings it up', async () => {
    const ns = await createNamespaces(runDir, 'sb-nolo', { hostname: 'x', loopback: false });
    const [lo] = JSON.parse((await execInNetns(ns.net, ['ip', '-j', 'link', 'show', 'lo'])).stdout) as { flags: string[] }[];
    assert.ok(!lo!.flags.includes('UP'));
    await removeNamespaces(runDir, ns.id);
  });

  it('refuses a duplicate sandbox and keeps the existing one intact', async () => {
    const ns = await createNamespaces(runDir, 'sb-dup', { hostname: 'first' });
    await assert.rejects(createNamespaces(runDir, 'sb-dup', { hostname: 'second' }), /sandbox sb-dup already has namespaces/);
    assert.equal(await inNamespace('--uts', ns.uts, ['hostname']), 'first');
    assert.deepEqual((await listNamespaces(runDir)).map((h) => [h.id, h.mounted]), [['sb-dup', ['net', 'ipc', 'uts']]]);
    await removeNamespaces(runDir, ns.id);
  });

  it('leaves nothing behind when creation fails half-way', async () => {
    await createNamespaces(runDir, 'sb-warmup', { hostname: 'w' }).then((ns) => removeNamespaces(runDir, ns.id));
    await writeFile(join(runDir, 'utsns', 'sb-half'), '');
    await assert.rejects(createNamespaces(runDir, 'sb-half', { hostname: 'h' }), NamespaceError);
    assert.deepEqual(await listNamespaces(runDir), [
      { id: 'sb-half', net: join(runDir, 'netns', 'sb-half'), ipc: join(runDir, 'ipcns', 'sb-half'), uts: join(runDir, 'utsns', 'sb-half'), mounted: [] },
    ], 'only the pre-existing stray file remains, unmounted');
    await removeNamespaces(runDir, 'sb-half');
    assert.deepEqual(await listNamespaces(runDir), []);
  });

  it('rejects bad ids and hostnames before touching anything', async () => {
    await assert.rejects(createNamespaces(runDir, '../escape', { hostname: 'x' }), /invalid sandbox id/);
    await assert.rejects(createNamespaces(runDir, 'ok', { hostname: 'bad_name!' }), /invalid hostname/);
    await assert.rejects(createNamespaces(runDir, 'ok', { hostname: 'a'.repeat(65) }), /invalid hostname/);
    assert.deepEqual(await listNamespaces(runDir), []);
  });

  it('refuses to unmount the namespace directories while a sandbox holds namespaces', async () => {
    const ns = await createNamespaces(runDir, 'sb-held', { hostname: 'h' });
    await assert.rejects(unmountNamespaceDirs(runDir), /still held.*sb-held/);
    await removeNamespaces(runDir, ns.id);
  });

  it('runs commands in a netns, reporting failures and timeouts', async () => {
    const ns = await createNamespaces(runDir, 'sb-exec', { hostname: 'e' });
    try {
      await assert.rejects(execInNetns(ns.net, ['ip', 'link', 'show', 'dev', 'eth0']), /exit code 1: Device "eth0" does not exist/);
      await assert.rejects(execInNetns(ns.net, ['sleep', '5'], { timeoutMs: 200 }), /killed by SIGKILL \(timeout 200 ms\)/);
      await assert.rejects(execInNetns(undefined, ['/nonexistent-binary']), /ENOENT/);
      assert.equal((await execInNetns(ns.net, ['cat'], { input: 'piped' })).stdout, 'piped');
    } finally {
      await removeNamespaces(runDir, ns.id);
    }
  });
});

describe('pod DNS files', () => {
  let tmp: string;

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'atoll-dns-'));
  });

  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('writes hostname, hosts and resolv.conf from the CRI DNS config', async () => {
    const files = await writePodDnsFiles(join(tmp, 'sb1'), {
      hostname: 'web-0',
      podIPs: ['10.88.0.7'],
      dns: { servers: ['10.96.0.10', 'fd00::a'], searches: ['default.svc.cluster.local', 'svc.cluster.local'], options: ['ndots:5', 'edns0'] },
    });
    assert.equal(await readFile(files.hostname, 'utf8'), 'web-0\n');
    assert.equal(
      await readFile(files.resolvConf, 'utf8'),
      'search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver fd00::a\noptions ndots:5 edns0\n',
    );
    const hosts = await readFile(files.hosts, 'utf8');
    assert.match(hosts, /^# Kubernetes-managed hosts file\.\n127\.0\.0\.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n/);
    assert.ok(hosts.endsWith('\n10.88.0.7\tweb-0\n'), hosts);
    assert.equal((await stat(files.hosts)).mode & 0o777, 0o644);
  });

  it('copies the node resolv.conf without a DNS config, and omits the pod line without an IP', async () => {
    const nodeResolv = join(tmp, 'node-resolv.conf');
    await writeFile(nodeResolv, 'nameserver 192.0.2.53\n');
    const files = await writePodDnsFiles(join(tmp, 'sb2'), { hostname: 'h', podIPs: [], hostResolvConf: nodeResolv });
    assert.equal(await readFile(files.resolvConf, 'utf8'), 'nameserver 192.0.2.53\n');
    assert.doesNotMatch(await readFile(files.hosts, 'utf8'), /\th\n/);
  });

  it('rejects DNS settings that would corrupt resolv.conf', async () => {
    const base = { servers: [] as string[], searches: [] as string[], options: [] as string[] };
    const write = (dns: typeof base) => writePodDnsFiles(join(tmp, 'bad'), { hostname: 'h', podIPs: [], dns });
    await assert.rejects(write({ ...base, servers: ['dns.example'] }), /invalid DNS server "dns.example"/);
    await assert.rejects(write({ ...base, searches: ['a b'] }), /invalid DNS search or option "a b"/);
    await assert.rejects(write({ ...base, options: ['ndots:5\nnameserver 1.2.3.4'] }), /invalid DNS search or option/);
    await assert.rejects(write({ ...base, searches: Array.from({ length: 33 }, (_, i) => `d${i}.example`) }), /33 DNS search domains/);
    await assert.rejects(
      writePodDnsFiles(join(tmp, 'bad'), { hostname: 'h', podIPs: ['not-an-ip'], dns: base }),
      /invalid pod IP "not-an-ip"/,
    );
  });
});
