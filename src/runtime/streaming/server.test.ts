import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { channelStatus, channelText, openChannelSession } from './client.js';
import { PROTOCOL_BASE, PROTOCOL_V4, PROTOCOL_V5 } from './protocol.js';
import { StreamingServer } from './server.js';
import { StreamingTestbed } from './testkit.js';

const HTTP_PORT = 8080;
/** Short enough for the expiry case to wait it out. */
const SHORT_TTL_MS = 300;

const testbed = new StreamingTestbed();
after(() => testbed.cleanup());

async function rejectsWithStatus(promise: Promise<unknown>, statusCode: number): Promise<void> {
  await assert.rejects(promise, (err: Error & { statusCode?: number }) => err.statusCode === statusCode);
}

describe('StreamingServer with runc containers', { timeout: 60_000 }, () => {
  const handler = testbed.handler;
  let server: StreamingServer;
  const containerId = `stream-${process.pid}`;
  const echoId = `stream-echo-${process.pid}`;

  before(async () => {
    await testbed.run(containerId, { command: ['sh', '-c', `httpd -p 127.0.0.1:${HTTP_PORT} -h /etc && exec sleep 1000`] }, 'sandbox-stream');
    // conmon closes the container's stdin when an attached client leaves (CRI stdin_once), hence the sleep.
    await testbed.run(echoId, { stdin: true, command: ['sh', '-c', 'while read l; do echo "$l"; echo "e$l" >&2; done; exec sleep 1000'] });
    server = await testbed.start();
  });
  after(() => testbed.stop());

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

  it('resizes a tty exec’s terminal from resize messages, skipping malformed ones', async () => {
    const script = 'while read x; do s=$(stty size); echo "size $s"; [ "$s" = "40 100" ] && exit 0; done; exit 1';
    const session = await openChannelSession(exec(['sh', '-c', script], { tty: true, stdin: true, stderr: false }));
    session.ws.send(Buffer.concat([Buffer.from([4]), Buffer.from('not json')]));
    session.ws.send(Buffer.concat([Buffer.from([4]), Buffer.from(JSON.stringify({ Width: 100, Height: 40 }))]));
    let open = true;
    void session.closed.then(() => (open = false));
    // Each line makes the shell print the size it sees; the resize lands asynchronously.
    for (let i = 0; i < 50 && open; i++) {
      session.ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('x\r')]));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await session.closed;
    assert.match(channelText(session, 1), /size 40 100/);
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

  it('does not spend a token on a request that is not an upgrade', async () => {
    const url = exec(['true']);
    const res = await fetch(url);
    assert.equal(res.status, 400);
    assert.match(await res.text(), /needs an upgrade: to WebSocket .* or to SPDY\/3\.1/);
    await (await openChannelSession(url)).closed;
  });

  it('refuses a client offering only unsupported subprotocols, without spending the token', async () => {
    const url = exec(['true']);
    await rejectsWithStatus(openChannelSession(url, ['v3.channel.k8s.io']), 400);
    await (await openChannelSession(url)).closed;
  });

  it('lets unused tokens expire', async () => {
    const shortLived = new StreamingServer({ exec: () => assert.fail('must not run'), portDialer: () => assert.fail('must not run') }, { tokenTtlMs: SHORT_TTL_MS });
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
