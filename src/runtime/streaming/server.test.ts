import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cgroupAt, removeCgroup } from '../cgroups.js';
import { RuncHandler } from '../runc/handler.js';
import { makeBusyboxRootfs } from '../suite.js';
import { channelStatus, channelText, openChannelSession } from './client.js';
import { PROTOCOL_BASE, PROTOCOL_V4, PROTOCOL_V5 } from './protocol.js';
import type { StreamingRuntime } from './runtime.js';
import { conmonAttach } from './attach.js';
import { StreamingServer } from './server.js';

const RUNC = '/usr/sbin/runc';
const HTTP_PORT = 8080;
/** Short enough for the expiry case to wait it out. */
const SHORT_TTL_MS = 300;

const work = mkdtempSync(join(tmpdir(), 'atoll-streaming-'));
const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
const root = join(work, 'state');
const cgroupParent = `/atoll-streaming-test-${process.pid}`;
mkdirSync(join(work, 'logs'));

function conmonsOf(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmdline[0]?.endsWith('conmon') && cmdline.some((arg) => arg.startsWith(dir))) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

// Whatever the cases left, even after failed assertions: containers, conmons, mounts, cgroups, files.
after(() => {
  if (existsSync(join(root, 'runc'))) {
    const text = execFileSync(RUNC, ['--root', join(root, 'runc'), 'list', '--format', 'json'], { encoding: 'utf8' }).trim();
    const list = text === '' || text === 'null' ? [] : (JSON.parse(text) as { id: string }[]);
    for (const container of list) execFileSync(RUNC, ['--root', join(root, 'runc'), 'delete', '--force', container.id]);
  }
  for (const pid of conmonsOf(root)) process.kill(pid, 'SIGKILL');
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((line) => line.split(' ')[4] ?? '');
  for (const mountPoint of mounts.filter((m) => m.startsWith(work)).reverse()) execFileSync('umount', ['-l', mountPoint]);
  removeCgroup(cgroupAt(cgroupParent));
  rmSync(work, { recursive: true, force: true });
});

async function rejectsWithStatus(promise: Promise<unknown>, statusCode: number): Promise<void> {
  await assert.rejects(promise, (err: Error & { statusCode?: number }) => err.statusCode === statusCode);
}

describe('StreamingServer with runc containers', { timeout: 60_000 }, () => {
  let handler: RuncHandler;
  let server: StreamingServer;
  let containerId: string;
  let echoId: string;
  const sandboxes = new Map<string, string>();

  before(async () => {
    handler = new RuncHandler(root, { cgroupParent });
    containerId = `stream-${process.pid}`;
    await handler.createContainer({
      id: containerId,
      sandboxId: 'sandbox-stream',
      rootfs,
      readonlyRootfs: true,
      command: ['sh', '-c', `httpd -p 127.0.0.1:${HTTP_PORT} -h /etc && exec sleep 1000`],
      logPath: join(work, 'logs', `${containerId}.log`),
    });
    await handler.start(containerId);
    echoId = `stream-echo-${process.pid}`;
    await handler.createContainer({
      id: echoId,
      sandboxId: 'sandbox-stream',
      rootfs,
      readonlyRootfs: true,
      stdin: true,
      // conmon closes the container's stdin when an attached client leaves (CRI stdin_once), hence the sleep.
      command: ['sh', '-c', 'while read l; do echo "$l"; echo "e$l" >&2; done; exec sleep 1000'],
      logPath: join(work, 'logs', `${echoId}.log`),
    });
    await handler.start(echoId);
    // The container's own network namespace stands in for a pod sandbox's.
    sandboxes.set('sandbox-stream', `/proc/${(await handler.state(containerId)).pid}/ns/net`);
    const runtime: StreamingRuntime = {
      exec: (id, cmd, options) => handler.exec(id, cmd, options),
      // RuncHandler's layout: conmon's attach-socket link is a 16-hex-digit hash of the id.
      attach: async (id, options) =>
        conmonAttach({
          socketPath: join(root, 'sockets', createHash('sha256').update(id).digest('hex').slice(0, 16), 'attach'),
          ctlPath: join(root, 'containers', id, 'ctl'),
          ...options,
          stdin: options.stdin === true,
          tty: options.tty === true,
          exitCode: async () => (await handler.state(id)).exitCode,
        }),
      podNetns: async (id) => {
        const netns = sandboxes.get(id);
        if (!netns) throw new Error(`pod sandbox ${id} not found`);
        return netns;
      },
    };
    server = new StreamingServer(runtime);
    await server.start({ address: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await server?.close();
    for (const id of [containerId, echoId]) {
      await handler?.stop(id, 0).catch(() => undefined);
      await handler?.remove(id).catch(() => undefined);
    }
    await handler?.close();
  });

  const exec = (cmd: string[], extra: Partial<{ tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }> = {}) =>
    server.registerExec({ containerId, cmd, tty: false, stdin: false, stdout: true, stderr: true, ...extra });

  it('issues URLs under its own address', () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(exec(['true']), new RegExp(`^${server.url}/exec/[A-Za-z0-9_-]{16,}$`));
  });

  it('runs an exec: stdout and stderr on their channels, the exit code as a NonZeroExitCode status', async () => {
    const session = await openChannelSession(exec(['sh', '-c', 'echo out; echo err >&2; exit 3']));
    assert.equal(session.protocol, PROTOCOL_V5);
    assert.equal(await session.closed, 1000);
    assert.equal(channelText(session, 1), 'out\n');
    assert.equal(channelText(session, 2), 'err\n');
    const result = channelStatus(session);
    assert.equal(result.status, 'Failure');
    assert.equal(result.reason, 'NonZeroExitCode');
    assert.deepEqual(result.details?.causes, [{ reason: 'ExitCode', message: '3' }]);
  });

  it('reports Success for a zero exit, in v4 as well', async () => {
    const session = await openChannelSession(exec(['echo', 'hi']), [PROTOCOL_V4]);
    assert.equal(session.protocol, PROTOCOL_V4);
    await session.closed;
    assert.equal(channelText(session, 1), 'hi\n');
    assert.equal(channelStatus(session).status, 'Success');
  });

  it('speaks the base protocol: a plain error message, nothing on success', async () => {
    const failed = await openChannelSession(exec(['sh', '-c', 'exit 2']), [PROTOCOL_BASE]);
    await failed.closed;
    assert.match(channelText(failed, 3), /non-zero exit code: 2/);
    const passed = await openChannelSession(exec(['true']), []);
    assert.equal(passed.protocol, '');
    await passed.closed;
    assert.equal(channelText(passed, 3), '');
  });

  it('forwards stdin and ends it on the v5 close signal', async () => {
    const session = await openChannelSession(exec(['cat'], { stdin: true, stderr: false }));
    session.ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('hello through stdin\n')]));
    session.ws.send(Buffer.from([255, 0]));
    await session.closed;
    assert.equal(channelText(session, 1), 'hello through stdin\n');
    assert.equal(channelStatus(session).status, 'Success');
  });

  it('accepts resize messages on a tty exec', async () => {
    const session = await openChannelSession(exec(['sh', '-c', 'read line; echo got $line'], { tty: true, stdin: true, stderr: false }));
    session.ws.send(Buffer.concat([Buffer.from([4]), Buffer.from(JSON.stringify({ Width: 100, Height: 40 }))]));
    session.ws.send(Buffer.concat([Buffer.from([4]), Buffer.from('not json')]));
    session.ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('typed\r')]));
    await session.closed;
    assert.match(channelText(session, 1), /got typed/);
    assert.equal(channelStatus(session).status, 'Success');
  });

  it('reports a command that cannot start as a Failure status', async () => {
    const session = await openChannelSession(exec(['/no/such/command']));
    await session.closed;
    assert.equal(channelStatus(session).status, 'Failure');
  });

  it('uses a token once and answers 404 for unknown tokens', async () => {
    const url = exec(['true']);
    await (await openChannelSession(url)).closed;
    await rejectsWithStatus(openChannelSession(url), 404);
    await rejectsWithStatus(openChannelSession(`${server.url}/exec/not-a-token`), 404);
    await rejectsWithStatus(openChannelSession(`${server.url}/portforward/${url.split('/').pop()}`), 404);
    const res = await fetch(`${server.url}/nothing-here`);
    assert.equal(res.status, 404);
  });

  it('does not spend a token on a request that is not a WebSocket upgrade', async () => {
    const url = exec(['true']);
    const res = await fetch(url);
    assert.equal(res.status, 400);
    assert.match(await res.text(), /SPDY is not supported/);
    await (await openChannelSession(url)).closed;
  });

  it('refuses a client offering only unsupported subprotocols, without spending the token', async () => {
    const url = exec(['true']);
    await rejectsWithStatus(openChannelSession(url, ['v3.channel.k8s.io']), 400);
    await (await openChannelSession(url)).closed;
  });

  it('lets unused tokens expire', async () => {
    const shortLived = new StreamingServer({ exec: () => assert.fail('must not run'), podNetns: () => assert.fail('must not run') }, { tokenTtlMs: SHORT_TTL_MS });
    await shortLived.start();
    try {
      const url = shortLived.registerExec({ containerId, cmd: ['true'], tty: false, stdin: false, stdout: true, stderr: false });
      await new Promise((resolve) => setTimeout(resolve, SHORT_TTL_MS + 100));
      await rejectsWithStatus(openChannelSession(url), 404);
      assert.throws(() => shortLived.registerAttach({ containerId, tty: false, stdin: false, stdout: true, stderr: true }), /cannot attach/);
    } finally {
      await shortLived.close();
    }
  });

  it('validates requests as CRI specifies', () => {
    assert.throws(() => exec([]), /needs a command/);
    assert.throws(() => exec(['sh'], { tty: true, stderr: true }), /tty and stderr/);
    assert.throws(() => exec(['sh'], { stdout: false, stderr: false }), /one of stdin, stdout or stderr/);
    assert.throws(() => server.registerPortForward({ podSandboxId: 'sandbox-stream', ports: [70_000] }), /invalid port/);
  });

  it('forwards a port to a server listening on loopback inside the pod', async () => {
    const url = server.registerPortForward({ podSandboxId: 'sandbox-stream', ports: [] });
    const session = await openChannelSession(`${url}?port=${HTTP_PORT}`, [PROTOCOL_V4]);
    session.ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('GET /passwd HTTP/1.0\r\nHost: pod\r\n\r\n')]));
    assert.equal(await session.closed, 1000);
    const data = session.channels.get(0)!;
    assert.equal(data.readUInt16LE(0), HTTP_PORT);
    assert.equal(session.channels.get(1)!.readUInt16LE(0), HTTP_PORT);
    assert.match(data.subarray(2).toString(), /^HTTP\/1\.[01] 200/);
    assert.match(data.toString(), /root:x:0:0/);
  });

  it('reports a refused connection on the port’s error channel', async () => {
    const url = server.registerPortForward({ podSandboxId: 'sandbox-stream', ports: [HTTP_PORT + 1] });
    const session = await openChannelSession(url, [PROTOCOL_V4]);
    await session.closed;
    assert.equal(session.channels.get(0)!.length, 2);
    assert.match(session.channels.get(1)!.subarray(2).toString(), /ECONNREFUSED/);
  });

  it('attaches to the main process: stdin in, stdout and stderr out; leaving detaches without stopping it', async () => {
    const url = server.registerAttach({ containerId: echoId, tty: false, stdin: true, stdout: true, stderr: true });
    const session = await openChannelSession(url);
    await new Promise((resolve) => setTimeout(resolve, 200));
    session.ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('ping\n')]));
    for (let i = 0; i < 50 && !(channelText(session, 1).includes('ping') && channelText(session, 2).includes('eping')); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(channelText(session, 1), 'ping\n');
    assert.equal(channelText(session, 2), 'eping\n');
    session.ws.close();
    await session.closed;
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal((await handler.state(echoId)).status, 'running');
  });
});
