import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { PROTOCOL_BASE, PROTOCOL_V2, PROTOCOL_V3, PROTOCOL_V4, PROTOCOL_V5 } from './protocol.js';
import type { StreamingServer } from './server.js';
import { connectSpdy, openSpdyExec, openSpdyPortForward, readAll, type SpdyExecSession } from './spdy-client.js';
import { HEADER_PORT, HEADER_REQUEST_ID, HEADER_STREAM_TYPE } from './spdy-handshake.js';
import { eventually, StreamingTestbed } from './testkit.js';

const HTTP_PORT = 8080;
/** Short, so the cases about missing streams need not wait out kubelet's 30 s. */
const CREATION_TIMEOUT_MS = 1_000;
const SANDBOX = 'sandbox-spdy';

const testbed = new StreamingTestbed();
after(() => testbed.cleanup());

/** Collects a stream's text as it arrives, for cases that watch output while the session runs. */
function collect(session: SpdyExecSession): { stdout: () => string; stderr: () => string } {
  let stdout = '';
  let stderr = '';
  session.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  session.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return { stdout: () => stdout, stderr: () => stderr };
}

async function rejectsWithStatus(promise: Promise<unknown>, statusCode: number, body?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: Error & { statusCode?: number; body?: string }) => {
    assert.equal(err.statusCode, statusCode, err.message);
    if (body) assert.match(err.body ?? '', body);
    return true;
  });
}

describe('StreamingServer over SPDY/3.1 with runc containers', { timeout: 90_000 }, () => {
  let server: StreamingServer;
  const httpId = `spdy-http-${process.pid}`;
  const echoId = `spdy-echo-${process.pid}`;
  const ttyId = `spdy-tty-${process.pid}`;

  before(async () => {
    await testbed.run(httpId, { command: ['sh', '-c', `httpd -p 127.0.0.1:${HTTP_PORT} -h /etc && exec sleep 1000`] }, SANDBOX);
    await testbed.run(echoId, { stdin: true, command: ['sh', '-c', 'while read l; do echo "$l"; echo "e$l" >&2; done; echo bye; exec sleep 1000'] });
    await testbed.run(ttyId, { stdin: true, tty: true, command: ['sh', '-c', 'while read x; do echo "size $(stty size)"; done; exec sleep 1000'] });
    server = await testbed.start({ streamCreationTimeoutMs: CREATION_TIMEOUT_MS });
  });
  after(() => testbed.stop());

  const exec = (cmd: string[], extra: Partial<{ tty: boolean; stdin: boolean; stdout: boolean; stderr: boolean }> = {}) =>
    server.registerExec({ containerId: httpId, cmd, tty: false, stdin: false, stdout: true, stderr: true, ...extra });

  it('runs an exec: stdout and stderr on their streams, the exit code as a v4 NonZeroExitCode status', async () => {
    const session = await openSpdyExec(exec(['sh', '-c', 'echo out; echo err >&2; exit 3']), { stdout: true, stderr: true });
    assert.equal(session.protocol, PROTOCOL_V4);
    const [stdout, stderr, status] = await Promise.all([readAll(session.stdout!), readAll(session.stderr!), session.status]);
    assert.equal(stdout.toString(), 'out\n');
    assert.equal(stderr.toString(), 'err\n');
    assert.equal(status.status, 'Failure');
    assert.equal(status.reason, 'NonZeroExitCode');
    assert.deepEqual(status.details?.causes, [{ reason: 'ExitCode', message: '3' }]);
    await session.session.closed;
  });

  it('negotiates older remotecommand versions: an empty error stream for success, the message for failure', async () => {
    const passed = await openSpdyExec(exec(['echo', 'hi']), { stdout: true, stderr: true, protocols: [PROTOCOL_V5, PROTOCOL_V3] });
    assert.equal(passed.protocol, PROTOCOL_V3);
    assert.equal((await readAll(passed.stdout!)).toString(), 'hi\n');
    assert.equal((await passed.status).status, 'Success');
    for (const protocol of [PROTOCOL_V2, PROTOCOL_BASE]) {
      const failed = await openSpdyExec(exec(['sh', '-c', 'exit 2']), { stdout: true, stderr: true, protocols: [protocol] });
      assert.equal(failed.protocol, protocol);
      const status = await failed.status;
      assert.equal(status.status, 'Failure');
      assert.match(status.message ?? '', /non-zero exit code: 2/);
    }
  });

  it('feeds stdin, and the client’s FIN on it ends the command’s stdin', async () => {
    const payload = randomBytes(2 * 1024 * 1024);
    const session = await openSpdyExec(exec(['wc', '-c'], { stdin: true, stderr: false }), { stdin: true, stdout: true });
    session.stdin!.end(payload);
    assert.equal((await readAll(session.stdout!)).toString().trim(), String(payload.length));
    assert.equal((await session.status).status, 'Success');
  });

  it('resizes a tty exec’s terminal from the resize stream', async () => {
    const script = 'while read x; do s=$(stty size); echo "size $s"; [ "$s" = "40 100" ] && exit 0; done; exit 1';
    const session = await openSpdyExec(exec(['sh', '-c', script], { tty: true, stdin: true, stderr: false }), { tty: true, stdin: true, stdout: true });
    const output = collect(session);
    session.resize({ width: 100, height: 40 });
    let finished = false;
    const status = session.status.finally(() => (finished = true));
    // Each line makes the shell print the size it sees; the resize lands asynchronously.
    for (let i = 0; i < 50 && !finished; i++) {
      session.stdin!.write('x\r');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal((await status).status, 'Success');
    assert.match(output.stdout(), /size 40 100/);
  });

  it('attaches: stdin in, stdout and stderr out; the client’s FIN on stdin closes the container’s stdin', async () => {
    const url = server.registerAttach({ containerId: echoId, tty: false, stdin: true, stdout: true, stderr: true });
    const session = await openSpdyExec(url, { stdin: true, stdout: true, stderr: true });
    const output = collect(session);
    session.stdin!.write('ping\n');
    assert.ok(await eventually(() => output.stdout().includes('ping') && output.stderr().includes('eping')), `got ${output.stdout()} / ${output.stderr()}`);
    session.stdin!.end();
    assert.ok(await eventually(() => output.stdout().includes('bye')), `got ${output.stdout()}`);
    assert.equal(output.stdout(), 'ping\nbye\n');
    assert.equal(output.stderr(), 'eping\n');
    await session.close();
    assert.equal((await testbed.handler.state(echoId)).status, 'running');
  });

  it('resizes an attached tty through conmon, and detaching leaves the container running', async () => {
    const url = server.registerAttach({ containerId: ttyId, tty: true, stdin: true, stdout: true, stderr: false });
    const session = await openSpdyExec(url, { tty: true, stdin: true, stdout: true });
    const output = collect(session);
    session.resize({ width: 90, height: 30 });
    for (let i = 0; i < 50 && !output.stdout().includes('size 30 90'); i++) {
      session.stdin!.write('x\r');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.match(output.stdout(), /size 30 90/);
    await session.close();
    assert.equal((await testbed.handler.state(ttyId)).status, 'running');
  });

  it('forwards connections to ports inside the pod, several over one session, and reports refused ones', async () => {
    const forward = await openSpdyPortForward(server.registerPortForward({ podSandboxId: SANDBOX, ports: [] }), HTTP_PORT);
    forward.data.end('GET /passwd HTTP/1.0\r\nHost: pod\r\n\r\n');
    const response = (await readAll(forward.data)).toString();
    assert.match(response, /^HTTP\/1\.[01] 200/);
    assert.match(response, /root:x:0:0/);
    assert.equal(await forward.error, '');

    const second = await forward.connect(HTTP_PORT);
    assert.equal(second.requestId, 1);
    second.data.end('GET /group HTTP/1.0\r\n\r\n');
    assert.match((await readAll(second.data)).toString(), /^HTTP\/1\.[01] 200[\s\S]*root:x:0:/);

    const refused = await forward.connect(HTTP_PORT + 1);
    assert.match(await refused.error, new RegExp(`error forwarding port ${HTTP_PORT + 1} to pod ${SANDBOX}: .*ECONNREFUSED`));
    assert.equal((await readAll(refused.data)).length, 0);
    await forward.close();
  });

  it('answers 404 for unknown tokens, 400 without a protocol offer, 403 for unsupported ones, without spending the token', async () => {
    await rejectsWithStatus(connectSpdy(`${server.url}/exec/not-a-token`, [PROTOCOL_V4]), 404);
    const url = exec(['true']);
    await rejectsWithStatus(connectSpdy(url, []), 400, /X-Stream-Protocol-Version is required/);
    await rejectsWithStatus(connectSpdy(url, [PROTOCOL_V5, 'v9.channel.k8s.io']), 403, /client offers v5.channel.k8s.io, v9.channel.k8s.io, this server speaks v4/);
    const portForward = server.registerPortForward({ podSandboxId: SANDBOX, ports: [] });
    await rejectsWithStatus(connectSpdy(portForward, [PROTOCOL_V4]), 403, /this server speaks portforward.k8s.io/);
    const session = await openSpdyExec(url, { stdout: true, stderr: true });
    assert.equal((await session.status).status, 'Success');
    await rejectsWithStatus(connectSpdy(url, [PROTOCOL_V4]), 404);
  });

  it('refuses streams the request does not call for, and fails an exec whose streams never all arrive', async () => {
    const { session } = await connectSpdy(exec(['true']), [PROTOCOL_V4]);
    await assert.rejects(session.openStream({ [HEADER_STREAM_TYPE]: 'stdin' }), /reset SPDY stream 1 \(status 3\)/);
    const error = await session.openStream({ [HEADER_STREAM_TYPE]: 'error' });
    error.end();
    const status = JSON.parse((await readAll(error)).toString()) as { status: string; message: string };
    assert.equal(status.status, 'Failure');
    assert.match(status.message, new RegExp(`timed out after ${CREATION_TIMEOUT_MS} ms waiting for the client to open the stdout, stderr stream`));
    await session.closed;
  });

  it('gives up a port-forward pair whose data stream never arrives, and refuses streams without a valid port', async () => {
    const { session } = await connectSpdy(server.registerPortForward({ podSandboxId: SANDBOX, ports: [] }), ['portforward.k8s.io']);
    await assert.rejects(session.openStream({ [HEADER_STREAM_TYPE]: 'data', [HEADER_PORT]: '70000', [HEADER_REQUEST_ID]: '0' }), /status 3/);
    const error = await session.openStream({ [HEADER_STREAM_TYPE]: 'error', [HEADER_PORT]: String(HTTP_PORT), [HEADER_REQUEST_ID]: '7' });
    error.end();
    assert.match((await readAll(error)).toString(), new RegExp(`timed out after ${CREATION_TIMEOUT_MS} ms waiting for the data stream of port-forward request 7`));
    await session.close();
  });
});
