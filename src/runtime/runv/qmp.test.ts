import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { QmpClient, QmpError, type QmpEvent } from './qmp.js';
import { QEMU } from './vm.js';

/** How long the test waits for QEMU to create its monitor socket. */
const SOCKET_WAIT_MS = 10_000;

/** A QEMU with no machine at all: the cheapest real QMP server. */
async function startQemu(dir: string): Promise<{ child: ChildProcess; exited: Promise<void>; socket: string }> {
  const socket = join(dir, 'qmp.sock');
  const child = spawn(QEMU, ['-M', 'none', '-nodefaults', '-display', 'none', '-qmp', `unix:${socket},server=on,wait=off`], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (const deadline = Date.now() + SOCKET_WAIT_MS; !existsSync(socket); await sleep(10)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${QEMU} did not create ${socket}`);
  }
  return { child, exited, socket };
}

describe('QMP client against a real QEMU', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'atoll-qmp-'));
  let qemu: Awaited<ReturnType<typeof startQemu>>;
  let client: QmpClient;
  const servers: Server[] = [];

  before(async () => {
    qemu = await startQemu(scratch);
    client = await QmpClient.connect(qemu.socket);
  });
  after(async () => {
    client?.close();
    for (const server of servers) server.close();
    if (qemu && qemu.child.exitCode === null && qemu.child.signalCode === null) {
      qemu.child.kill('SIGKILL');
      await qemu.exited;
    }
    rmSync(scratch, { recursive: true, force: true });
  });

  it('negotiates capabilities, reports the version and runs commands', async () => {
    assert.ok(client.version.major >= 7, `QEMU ${JSON.stringify(client.version)}`);
    const status = await client.execute<{ running: boolean; status: string }>('query-status');
    assert.equal(typeof status.running, 'boolean');
    const version = await client.execute<{ qemu: { major: number } }>('query-version');
    assert.equal(version.qemu.major, client.version.major);
  });

  it("fails a command QEMU rejects with QEMU's error class and text", async () => {
    await assert.rejects(client.execute('no-such-command'), (err: unknown) => {
      assert.ok(err instanceof QmpError);
      assert.equal(err.code, 'CommandFailed');
      assert.equal(err.errorClass, 'CommandNotFound');
      assert.match(err.message, /QMP 'no-such-command': The command no-such-command has not been found/);
      return true;
    });
    await assert.rejects(client.execute('blockdev-del', { 'node-name': 'nothing-here' }), /QMP 'blockdev-del': .*nothing-here/);
  });

  it('matches overlapping commands to their answers', async () => {
    const [a, b] = await Promise.all([client.execute('query-name'), client.execute<{ qemu: unknown }>('query-version')]);
    assert.deepEqual(a, {});
    assert.ok(b.qemu);
  });

  it('delivers events', async () => {
    const seen: QmpEvent[] = [];
    const stop = client.onEvent((event) => seen.push(event));
    await client.execute('stop');
    await client.execute('cont');
    stop();
    // QEMU emits each event before it answers the command that caused it.
    assert.deepEqual(seen.map((e) => e.event), ['STOP', 'RESUME']);
    assert.ok(seen[0]!.timestamp.seconds > 0);
  });

  it('says when a second client gets no greeting because the monitor is taken', async () => {
    await assert.rejects(QmpClient.connect(qemu.socket, 300), (err: unknown) => err instanceof QmpError && err.code === 'Timeout' && /no QMP greeting .* within 300 ms \(is another client connected\?\)/.test(err.message));
  });

  it('fails a connect to a missing socket with the path', async () => {
    await assert.rejects(QmpClient.connect(join(scratch, 'absent.sock')), (err: unknown) => err instanceof QmpError && err.code === 'Disconnected' && err.message.includes('absent.sock'));
  });

  it('drops a peer that does not speak QMP', async () => {
    const path = join(scratch, 'garbage.sock');
    const server = createServer((socket) => socket.write('this is not json\n'));
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(path, resolve));
    await assert.rejects(QmpClient.connect(path), (err: unknown) => err instanceof QmpError && err.code === 'Protocol' && /sent not JSON: this is not json/.test(err.message));
  });

  it('quit: QEMU exits, the client sees the close, and later calls fail as Disconnected', async () => {
    await client.execute('quit').catch((err: unknown) => assert.ok(err instanceof QmpError && err.code === 'Disconnected'));
    await client.closed;
    await qemu.exited;
    await assert.rejects(client.execute('query-status'), (err: unknown) => err instanceof QmpError && err.code === 'Disconnected');
  });
});
