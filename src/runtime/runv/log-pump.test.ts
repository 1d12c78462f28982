import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { AgentClient } from './agent-client.js';
import { FrameDecoder, encodeFrame, type OutputChunk, type ReadOutputResult } from './agent-protocol.js';
import { LogPump, readCursor } from './log-pump.js';

/** How long the stand-in agent holds a readOutput that has nothing new (its long poll, kept short). */
const EMPTY_POLL_MS = 20;
const GUEST_TIME = Date.parse('2026-11-27T03:10:00.123Z');

/**
 * The pump against a stand-in agent on a unix socket that serves one process's output: what a runtime
 * crash between writing the log and saving the cursor would leave is written here by hand, since a
 * real crash cannot be placed in that window on purpose. handler.test.ts runs the pump on a real VM.
 */
class OutputAgent {
  readonly chunks: OutputChunk[] = [];
  eof = false;
  private constructor(readonly server: Server) {}

  static async listen(path: string): Promise<OutputAgent> {
    const agent: OutputAgent = new OutputAgent(createServer((socket) => {
      const decoder = new FrameDecoder();
      // A pump that stopped leaves its long poll unanswered; answering a closed socket is EPIPE, which
      // says nothing about the pump.
      socket.on('error', () => undefined);
      socket.on('data', (data: Buffer) => {
        for (const request of decoder.push(data)) {
          void agent.answer(request).then((result) => {
            if (!socket.destroyed && socket.writable) socket.write(encodeFrame({ v: 1, id: request.id, ok: true, result }));
          });
        }
      });
    }));
    await new Promise<void>((resolve) => agent.server.listen(path, resolve));
    return agent;
  }

  add(stream: 'stdout' | 'stderr', text: string): void {
    this.chunks.push({ seq: this.chunks.length + 1, stream, data: Buffer.from(text).toString('base64'), time: GUEST_TIME + this.chunks.length });
  }

  private async answer(request: Record<string, unknown>): Promise<ReadOutputResult | Record<string, never>> {
    if (request.op !== 'readOutput') return {};
    const after = request.after as number;
    const chunks = this.chunks.filter((chunk) => chunk.seq > after);
    if (chunks.length === 0 && !this.eof) await sleep(EMPTY_POLL_MS);
    return { epoch: 'epoch-1', chunks, dropped: 0, eof: this.eof };
  }
}

describe('runv log pump', () => {
  const dir = mkdtempSync(join(tmpdir(), 'atoll-log-pump-'));
  const servers: Server[] = [];
  const clients: AgentClient[] = [];
  let n = 0;

  async function agent(): Promise<{ agent: OutputAgent; client: AgentClient }> {
    const path = join(dir, `agent-${++n}.sock`);
    const served = await OutputAgent.listen(path);
    servers.push(served.server);
    const client = await AgentClient.connect(path, 1_000);
    clients.push(client);
    return { agent: served, client };
  }

  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes CRI log lines with the guest’s times, and records the end so that nothing is resumed', async () => {
    const { agent: served, client } = await agent();
    const logPath = join(dir, 'a', '0.log');
    const cursorFile = join(dir, 'cursors', 'a.json');
    served.add('stdout', 'one\n');
    served.add('stderr', 'oops\n');
    served.add('stdout', 'partial');
    served.eof = true;
    const pump = await LogPump.start(client, 'a', logPath, cursorFile, () => undefined);
    assert.equal(await pump.finished, true);
    assert.equal(readFileSync(logPath, 'utf8'), [
      '2026-11-27T03:10:00.123000000Z stdout F one',
      '2026-11-27T03:10:00.124000000Z stderr F oops',
      '2026-11-27T03:10:00.125000000Z stdout P partial',
      '',
    ].join('\n'));
    assert.equal((await readCursor(cursorFile)).done, true);
    assert.equal(await LogPump.resume(client, 'a', logPath, cursorFile, () => undefined), null);
    assert.equal(await pump.reopen(), false, 'an ended pump has no log to reopen');
  });

  it('resumes after the saved chunk, cutting off what a crash wrote past the cursor, but never a rotated file', async () => {
    const { agent: served, client } = await agent();
    const logPath = join(dir, 'b', '0.log');
    const cursorFile = join(dir, 'cursors', 'b.json');
    served.add('stdout', 'line-1\n');
    served.add('stdout', 'line-2\n');
    const pump = await LogPump.start(client, 'b', logPath, cursorFile, () => undefined);
    while ((await readCursor(cursorFile)).seq < 2) await sleep(EMPTY_POLL_MS);
    await pump.stop();
    assert.equal(await pump.finished, false);

    // A crash after line-3 reached the log and before its cursor was saved.
    served.add('stdout', 'line-3\n');
    appendFileSync(logPath, '2026-11-27T03:10:00.125000000Z stdout F line-3\n');
    served.add('stdout', 'line-4\n');
    const resumed = await LogPump.resume(client, 'b', logPath, cursorFile, () => undefined);
    assert.ok(resumed);
    while ((await readCursor(cursorFile)).seq < 4) await sleep(EMPTY_POLL_MS);
    await resumed.stop();
    const lines = (path: string) => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((line) => line.split(' ').at(-1));
    assert.deepEqual(lines(logPath), ['line-1', 'line-2', 'line-3', 'line-4']);

    // The kubelet rotated the log while no runtime ran: the new file is not the cursor's, and stays whole.
    renameSync(logPath, `${logPath}.1`);
    writeFileSync(logPath, '2026-11-27T03:10:00.127000000Z stdout F written-elsewhere\n');
    served.add('stdout', 'line-5\n');
    served.eof = true;
    const last = await LogPump.resume(client, 'b', logPath, cursorFile, () => undefined);
    assert.equal(await last?.finished, true);
    assert.deepEqual(lines(logPath), ['written-elsewhere', 'line-5']);
    assert.deepEqual(lines(`${logPath}.1`), ['line-1', 'line-2', 'line-3', 'line-4']);
  });
});
