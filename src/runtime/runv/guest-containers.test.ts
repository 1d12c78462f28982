import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createNamespaces, execInNetns, removeNamespaces, unmountNamespaceDirs, type SandboxNamespaces } from '../sandbox/namespaces.js';
import { AGENT_CALL_TIMEOUT_MS, AgentCallError, processStreams, type AgentClient } from './agent-client.js';
import type { CreateContainerArgs, OutputChunk } from './agent-protocol.js';
import { ensureGuestImages } from './guest-image.js';
import { ensureGuestKernel } from './guest-kernel.js';
import { MicroVm, chooseAccelerator } from './vm.js';

/**
 * Containers inside a real runv guest: one microVM (TCG here) whose NIC sits on a tap in a network
 * namespace this test makes, and busybox containers run by the guest agent with runc. The container
 * rootfs is built inside the guest, on a tmpfs, from the guest's own busybox.
 */
const CACHE_ROOT = process.env.ATOLL_RUNV_TEST_CACHE ?? fileURLToPath(new URL('../../../../.cache/runv', import.meta.url));
const ROOTFS = '/run/test-rootfs';
const GUEST_MAC = '52:54:00:a7:0e:01';
const TAP = 'tap0';
const TAP_ADDRESS = '10.251.0.1/24';
const GUEST_ADDRESS = '10.251.0.2/24';
const GUEST_ADDRESS6 = 'fd00:251::2/64';
/** Container operations under TCG on a loaded 2-core host take seconds; calls get this long. */
const CALL_MS = 60_000;
/** How long a case waits for something a container must do on its own (a bounded wait, not an assertion). */
const SETTLE_MS = 30_000;
const OUTPUT_LINES = 3000;
const LINE_PAD = 'x'.repeat(500);

function text(chunks: OutputChunk[], stream?: 'stdout' | 'stderr'): string {
  return chunks.filter((c) => stream === undefined || c.stream === stream).map((c) => Buffer.from(c.data, 'base64').toString()).join('');
}

async function rejectsWith(promise: Promise<unknown>, code: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof AgentCallError, `expected an AgentCallError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

describe('runv guest agent: containers, I/O, storage and network inside a VM', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'atoll-runv-guest-'));
  const runDir = join(scratch, 'run');
  let ns: SandboxNamespaces | undefined;
  let vm: MicroVm | undefined;
  let agent: AgentClient;
  let counter = 0;

  const guestSh = async (script: string) => {
    const out = await agent.exec(['sh', '-c', script], { timeoutMs: CALL_MS });
    assert.equal(out.exitCode, 0, `${script}: ${out.stderr.toString()}`);
    return out.stdout.toString();
  };

  async function running(argv: string[], extra: Partial<CreateContainerArgs> = {}): Promise<string> {
    const containerId = `c${++counter}`;
    await agent.call('createContainer', { containerId, rootfs: ROOTFS, readonlyRootfs: true, argv, ...extra }, CALL_MS);
    await agent.call('startContainer', { containerId }, CALL_MS);
    return containerId;
  }

  async function readAll(processId: string): Promise<{ chunks: OutputChunk[]; dropped: number }> {
    const chunks: OutputChunk[] = [];
    let dropped = 0;
    for (let after = 0; ;) {
      const read = await agent.call('readOutput', { processId, after, timeoutMs: SETTLE_MS }, SETTLE_MS + CALL_MS);
      chunks.push(...read.chunks);
      dropped += read.dropped;
      after = read.chunks.at(-1)?.seq ?? after;
      if (read.eof) return { chunks, dropped };
    }
  }

  before(async () => {
    const kernel = await ensureGuestKernel(CACHE_ROOT, { onProgress: (line) => console.log(line) });
    const images = await ensureGuestImages(CACHE_ROOT, kernel, { onProgress: (line) => console.log(line) });
    const { accel } = await chooseAccelerator(CACHE_ROOT, kernel, images);
    ns = await createNamespaces(runDir, `guest-${randomBytes(4).toString('hex')}`, { hostname: 'node' });
    await execInNetns(ns.net, ['ip', 'tuntap', 'add', 'dev', TAP, 'mode', 'tap']);
    await execInNetns(ns.net, ['ip', 'addr', 'add', TAP_ADDRESS, 'dev', TAP]);
    await execInNetns(ns.net, ['ip', 'link', 'set', TAP, 'up']);
    vm = await MicroVm.boot({ dir: join(scratch, 'vm'), kernel, images, accel, netns: ns.net, nic: { tap: TAP, mac: GUEST_MAC } });
    agent = vm.agent;
    await agent.call('mount', { source: 'tmpfs', fstype: 'tmpfs', options: ['mode=0755'], target: ROOTFS });
    await guestSh(`cd ${ROOTFS} && mkdir -p bin etc tmp proc sys dev root data && chmod 1777 tmp && cp /bin/busybox bin/ && for a in $(bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "bin/$a"; done`);
    await agent.call('writeFile', { path: `${ROOTFS}/etc/passwd`, data: Buffer.from('root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/tmp:/bin/sh\n').toString('base64') });
    await agent.call('writeFile', { path: `${ROOTFS}/etc/group`, data: Buffer.from('root:x:0:\napp:x:1000:\n').toString('base64') });
  });

  after(async () => {
    await vm?.stop().catch((err: Error) => console.log(`stopping the VM: ${err.message}`));
    if (ns) await removeNamespaces(runDir, ns.id).catch((err: Error) => console.log(`removing the netns: ${err.message}`));
    await unmountNamespaceDirs(runDir).catch(() => undefined);
    rmSync(scratch, { recursive: true, force: true });
  });

  it('runs a busybox container: output in order with stream tags, exit code and times', async () => {
    const id = await running(['sh', '-c', 'for i in 1 2 3; do echo out$i; echo err$i >&2; done; exit 3'], { user: { username: 'app' } });
    const state = await agent.call('waitContainer', { containerId: id, timeoutMs: SETTLE_MS }, SETTLE_MS + CALL_MS);
    assert.equal(state.status, 'exited');
    assert.equal(state.exitCode, 3);
    assert.equal(state.reason, 'Error');
    assert.equal(state.signal, null);
    assert.equal(state.oomKilled, false);
    assert.ok(state.finishedAt! >= state.startedAt! && state.startedAt! >= state.createdAt);
    const { chunks, dropped } = await readAll(id);
    assert.equal(dropped, 0);
    assert.deepEqual(chunks.map((c) => c.seq), chunks.map((_c, i) => i + 1));
    assert.equal(text(chunks, 'stdout'), 'out1\nout2\nout3\n');
    assert.equal(text(chunks, 'stderr'), 'err1\nerr2\nerr3\n');
    await agent.call('removeContainer', { containerId: id }, CALL_MS);
    await rejectsWith(agent.call('waitContainer', { containerId: id }), 'NotFound');
  });

  it('streams a container’s output through processStreams until it ends', async () => {
    const id = await running(['sh', '-c', 'echo one; echo two >&2; echo three']);
    const streams = processStreams(agent, id);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    streams.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    streams.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    await streams.done;
    assert.equal(Buffer.concat(out).toString(), 'one\nthree\n');
    assert.equal(Buffer.concat(err).toString(), 'two\n');
    assert.equal(streams.dropped, 0);
  });

  it('fails a missing command at create with CommandNotFound, and the id stays usable', async () => {
    await rejectsWith(agent.call('createContainer', { containerId: 'missing', rootfs: ROOTFS, argv: ['no-such-command'] }, AGENT_CALL_TIMEOUT_MS * 3), 'CommandNotFound', /no-such-command/);
    await rejectsWith(agent.call('waitContainer', { containerId: 'missing' }), 'NotFound');
    await agent.call('createContainer', { containerId: 'missing', rootfs: ROOTFS, argv: ['true'] }, CALL_MS);
    await agent.call('removeContainer', { containerId: 'missing' }, CALL_MS);
  });

  it('refuses what it cannot do, precisely', async () => {
    await rejectsWith(agent.call('createContainer', { containerId: 'bad/id', rootfs: ROOTFS, argv: ['true'] }), 'BadRequest', /'containerId' must match/);
    await rejectsWith(agent.call('createContainer', { containerId: 'x', rootfs: 'relative', argv: ['true'] }), 'BadRequest', /'rootfs' must be an absolute path/);
    await rejectsWith(agent.call('readOutput', { processId: 'nope', after: 0 }), 'NotFound');
    await rejectsWith(agent.call('mount', { serial: 'no-such-serial', fstype: 'ext4', target: '/run/x' }), 'NotFound', /no-such-serial/);
    await rejectsWith(agent.call('reseedRandom', { bytes: Buffer.alloc(5000).toString('base64') }), 'BadRequest', /at most 4096 bytes/);
  });

  it('gives a main process created with stdin its input; closing it ends the input (stdin_once)', async () => {
    const id = await running(['sh', '-c', 'read first; echo got:$first; read second; echo got:$second; cat; echo eof'], { stdin: true });
    const streams = processStreams(agent, id, { stdin: true });
    const out: Buffer[] = [];
    streams.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    streams.stdin!.write('one\n');
    streams.stdin!.end('two\nthree\n');
    await streams.done;
    assert.equal(Buffer.concat(out).toString(), 'got:one\ngot:two\nthree\neof\n');
    const plain = await running(['sleep', '1000']);
    await rejectsWith(agent.call('writeStdin', { processId: plain, data: Buffer.from('x').toString('base64') }), 'BadRequest', /created without stdin/);
  });

  it('execs in a container: stdin, separate streams and the exit code', async () => {
    const id = await running(['sleep', '1000']);
    const { execId } = await agent.call('execInContainer', { containerId: id, argv: ['sh', '-c', 'read line; echo got:$line; echo warn >&2; exit 5'], stdin: true }, CALL_MS);
    const streams = processStreams(agent, execId, { stdin: true });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    streams.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    streams.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    streams.stdin!.end('hello\n');
    await streams.done;
    assert.equal(Buffer.concat(out).toString(), 'got:hello\n');
    assert.equal(Buffer.concat(err).toString(), 'warn\n');
    assert.deepEqual(await agent.call('waitExec', { execId, timeoutMs: SETTLE_MS }, SETTLE_MS + CALL_MS), { exited: true, exitCode: 5 });

    const sync = await agent.call('execSyncInContainer', { containerId: id, argv: ['sh', '-c', 'echo $((6*7)); exit 2'] }, CALL_MS);
    assert.equal(sync.exitCode, 2);
    assert.equal(Buffer.from(sync.stdout, 'base64').toString(), '42\n');
    await rejectsWith(agent.call('execSyncInContainer', { containerId: id, argv: ['/no/such/binary'] }, CALL_MS), 'CommandNotFound', /no\/such\/binary/);
    await rejectsWith(agent.call('execSyncInContainer', { containerId: id, argv: ['sleep', '100'], timeoutSeconds: 1 }, CALL_MS), 'DeadlineExceeded');

    const tty = await agent.call('execInContainer', { containerId: id, argv: ['sh', '-c', 'tty'], tty: true }, CALL_MS);
    await agent.call('resizeTerminal', { processId: tty.execId, width: 100, height: 40 });
    const { chunks } = await readAll(tty.execId);
    assert.match(text(chunks), /\/dev\/pts\/\d+/);
    assert.ok(chunks.every((c) => c.stream === 'stdout'));
  });

  it('kills a container and reports the signal; an OOM kill is reported as such', async () => {
    const id = await running(['sleep', '1000']);
    await agent.call('signalContainer', { containerId: id, signal: 'SIGKILL' }, CALL_MS);
    const killed = await agent.call('waitContainer', { containerId: id, timeoutMs: SETTLE_MS }, SETTLE_MS + CALL_MS);
    assert.deepEqual([killed.exitCode, killed.signal, killed.reason], [137, 'SIGKILL', 'Error']);

    const greedy = await running(['sh', '-c', 'x=a; while :; do x=$x$x; done'], { resources: { memoryLimitBytes: 16 * 1024 * 1024 } });
    const oom = await agent.call('waitContainer', { containerId: greedy, timeoutMs: SETTLE_MS }, SETTLE_MS + CALL_MS);
    assert.equal(oom.status, 'exited');
    assert.equal(oom.reason, 'OOMKilled');
    assert.equal(oom.oomKilled, true);
  });

  it('reports non-zero container and VM stats', async () => {
    const id = await running(['sh', '-c', 'while :; do :; done']);
    let stats = await agent.call('stats', { containerIds: [id] });
    for (const deadline = Date.now() + SETTLE_MS; BigInt(stats.containers[0]!.cpuNs) === 0n && Date.now() < deadline; await sleep(200)) {
      stats = await agent.call('stats', { containerIds: [id] });
    }
    const [container] = stats.containers;
    assert.equal(container!.containerId, id);
    assert.ok(BigInt(container!.cpuNs) > 0n);
    assert.ok(container!.memoryWorkingSetBytes > 0);
    assert.ok(container!.pids >= 1);
    assert.ok(stats.block.some((disk) => disk.readIos > 0 && disk.readBytes > 0));
    assert.ok(stats.memory.totalBytes > stats.memory.availableBytes && stats.memory.availableBytes > 0);
    await agent.call('stopContainer', { containerId: id, timeoutSeconds: 0 }, CALL_MS);
  });

  it('keeps output nobody reads up to its bound, drops the oldest and counts them', async () => {
    const id = await running(['sh', '-c', `i=0; while [ $i -lt ${OUTPUT_LINES} ]; do echo "line-$i-${LINE_PAD}"; i=$((i+1)); done`]);
    // A reader past every seq hears only the end: the output is then all in the buffer, unread.
    const deadline = Date.now() + SETTLE_MS;
    while (!(await agent.call('readOutput', { processId: id, after: Number.MAX_SAFE_INTEGER, timeoutMs: SETTLE_MS }, SETTLE_MS + CALL_MS)).eof) {
      assert.ok(Date.now() < deadline, 'the container’s output ended');
    }
    const { chunks, dropped } = await readAll(id);
    const lines = text(chunks).split('\n').filter(Boolean);
    assert.ok(dropped > 0, 'the oldest output was dropped');
    assert.ok(lines.length < OUTPUT_LINES);
    assert.equal(lines.at(-1), `line-${OUTPUT_LINES - 1}-${LINE_PAD}`);
    const numbers = lines.map((line) => Number(line.split('-')[1]));
    assert.deepEqual(numbers, numbers.map((_n, i) => numbers[0]! + i), 'what is kept is the newest output, in order');
  });

  it('configures the NIC by MAC, routes and the hostname; traffic reaches the test netns and is counted', async () => {
    assert.deepEqual(await agent.call('interface', { mac: GUEST_MAC.toUpperCase(), name: 'eth0', addresses: [GUEST_ADDRESS, GUEST_ADDRESS6], mtu: 1400 }), { name: 'eth0' });
    await agent.call('route', { dest: 'default', gateway: TAP_ADDRESS.split('/')[0] });
    await agent.call('route', { dest: '10.252.0.0/16', gateway: TAP_ADDRESS.split('/')[0], dev: 'eth0' });
    await agent.call('hostname', { hostname: 'pod-a' });
    const addresses = await guestSh('ip addr show dev eth0');
    assert.match(addresses, new RegExp(`inet ${GUEST_ADDRESS.replace(/\./g, '\\.')}`));
    assert.match(addresses, /inet6 fd00:251::2\/64/);
    assert.match(addresses, /mtu 1400/);
    const routes = await guestSh('ip route');
    assert.match(routes, /default via 10\.251\.0\.1 dev eth0/);
    assert.match(routes, /10\.252\.0\.0\/16 via 10\.251\.0\.1 dev eth0/);
    await guestSh(`ping -c 2 -W 5 ${TAP_ADDRESS.split('/')[0]}`);

    const id = await running(['sleep', '1000']);
    const inside = await agent.call('execSyncInContainer', { containerId: id, argv: ['sh', '-c', 'hostname; ip addr show dev eth0'] }, CALL_MS);
    assert.match(Buffer.from(inside.stdout, 'base64').toString(), /^pod-a\n[\s\S]*inet 10\.251\.0\.2\/24/, 'containers share the VM’s UTS and network namespaces');

    const { network } = await agent.call('stats', {});
    const eth0 = network.find((counters) => counters.name === 'eth0');
    assert.ok(eth0 && eth0.rxPackets > 0 && eth0.txPackets > 0 && eth0.rxBytes > 0 && eth0.txBytes > 0, JSON.stringify(network));
  });

  it('mounts a disk found by serial, binds it and a tmpfs into a container, and unmounts', async () => {
    const content = join(scratch, 'disk-content');
    mkdirSync(content);
    writeFileSync(join(content, 'hello.txt'), 'from the host\n');
    const image = join(scratch, 'disk.ext4');
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', content, image, '8M']);
    const disk = await vm!.attachDisk(image, { format: 'raw' });
    const mounted = await agent.call('mount', { serial: disk.serial, fstype: 'ext4', options: ['ro'], target: '/run/disks/data' });
    assert.equal(mounted.device, disk.device);
    await rejectsWith(agent.call('mount', { serial: disk.serial, fstype: 'ext4', target: '/run/disks/data' }), 'AlreadyExists');

    const id = await running(['sleep', '1000'], {
      mounts: [{ type: 'bind', source: '/run/disks/data', destination: '/data', readonly: true }, { type: 'tmpfs', destination: '/scratch', sizeBytes: 1024 * 1024 }],
    });
    const out = await agent.call('execSyncInContainer', { containerId: id, argv: ['sh', '-c', 'cat /data/hello.txt && echo ok > /scratch/f && cat /scratch/f'] }, CALL_MS);
    assert.equal(Buffer.from(out.stdout, 'base64').toString(), 'from the host\nok\n', Buffer.from(out.stderr, 'base64').toString());
    await agent.call('stopContainer', { containerId: id, timeoutSeconds: 0 }, CALL_MS);
    await agent.call('removeContainer', { containerId: id }, CALL_MS);
    assert.doesNotMatch(await guestSh('cat /proc/mounts'), /\/run\/atoll\/volumes\//, 'the tmpfs went with the container');

    assert.deepEqual(await agent.call('umount', { target: '/run/disks/data' }), { wasMounted: true });
    assert.deepEqual(await agent.call('umount', { target: '/run/disks/data' }), { wasMounted: false });
    await vm!.detachDisk(disk.slot);
  });

  it('sets the clock and takes random bytes (what a template clone needs)', async () => {
    const ahead = Date.now() + 3_600_000;
    await agent.call('setTime', { epochMs: ahead });
    const guestSeconds = Number(await guestSh('date +%s'));
    assert.ok(Math.abs(guestSeconds * 1000 - (Date.now() + 3_600_000)) < 10_000, `guest clock ${guestSeconds}`);
    const back = await agent.call('setTime', { epochMs: Date.now() });
    assert.ok(back.previousEpochMs > Date.now() + 3_000_000);
    await agent.call('reseedRandom', { bytes: randomBytes(64).toString('base64') });
  });

  it('keeps containers and their output across a host reconnect, and resumes from the cursor', async () => {
    const id = await running(['sh', '-c', 'echo before; sleep 2; echo during; sleep 1000']);
    let cursor = 0;
    let epoch = '';
    let seen = '';
    while (!seen.includes('before')) {
      const read = await agent.call('readOutput', { processId: id, after: cursor, timeoutMs: SETTLE_MS }, SETTLE_MS + CALL_MS);
      seen += text(read.chunks);
      cursor = read.chunks.at(-1)?.seq ?? cursor;
      epoch = read.epoch;
    }
    const pending = agent.call('waitContainer', { containerId: id, timeoutMs: SETTLE_MS }, SETTLE_MS + CALL_MS);
    const dir = vm!.dir;
    vm!.release();
    await rejectsWith(pending, 'Disconnected');
    // The container prints while no host is connected.
    await sleep(4_000);
    vm = await MicroVm.adopt(dir);
    agent = vm.agent;
    const read = await agent.call('readOutput', { processId: id, after: cursor, timeoutMs: SETTLE_MS }, SETTLE_MS + CALL_MS);
    assert.equal(read.epoch, epoch);
    assert.equal(read.dropped, 0);
    assert.equal(text(read.chunks), 'during\n');
    assert.equal((await agent.call('waitContainer', { containerId: id })).status, 'running');

    const streams = processStreams(agent, id, { after: read.chunks.at(-1)!.seq, epoch });
    const out: Buffer[] = [];
    streams.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    await agent.call('stopContainer', { containerId: id, timeoutSeconds: 0 }, CALL_MS);
    await streams.done;
    assert.equal(Buffer.concat(out).toString(), '', 'nothing is delivered twice');
  });
});
