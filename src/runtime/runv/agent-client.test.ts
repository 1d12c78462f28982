import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AgentCallError, AgentClient, processStreams } from './agent-client.js';
import { FrameDecoder, encodeFrame, type OutputChunk, type ReadOutputResult } from './agent-protocol.js';

type Answer = (request: Record<string, unknown>) => unknown;

/** A stand-in agent on a unix socket: answers each request with `answer(request)`. */
function fakeAgent(path: string, answer: Answer): Promise<{ server: Server; requests: Record<string, unknown>[] }> {
  const requests: Record<string, unknown>[] = [];
  const server = createServer((socket: Socket) => {
    const decoder = new FrameDecoder();
    socket.on('data', (chunk: Buffer) => {
      for (const request of decoder.push(chunk)) {
        requests.push(request);
        Promise.resolve(answer(request)).then((result) => socket.write(encodeFrame({ v: 1, id: request.id, ok: true, result })));
      }
    });
  });
  return new Promise((resolve) => server.listen(path, () => resolve({ server, requests })));
}

const chunk = (seq: number, stream: 'stdout' | 'stderr', data: string): OutputChunk => ({ seq, stream, data: Buffer.from(data).toString('base64'), time: 0 });

describe('agent client', () => {
  const dir = mkdtempSync(join(tmpdir(), 'atoll-agent-client-'));
  const servers: Server[] = [];
  const clients: AgentClient[] = [];
  let n = 0;

  async function connect(answer: Answer): Promise<{ client: AgentClient; requests: Record<string, unknown>[] }> {
    const path = join(dir, `agent-${++n}.sock`);
    const { server, requests } = await fakeAgent(path, answer);
    servers.push(server);
    const client = await AgentClient.connect(path, 1_000);
    clients.push(client);
    return { client, requests };
  }

  after(async () => {
    for (const client of clients) client.close();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses arguments named like the envelope, which would overwrite it', async () => {
    const { client, requests } = await connect(() => ({}));
    await assert.rejects(client.call('startContainer', { containerId: 'a', id: 'a' } as never), (err: unknown) => err instanceof AgentCallError && err.code === 'BadRequest' && /'id'/.test(err.message));
    assert.equal(requests.length, 0);
  });

  it('starts request ids at a random point, then counts up', async () => {
    const { client, requests } = await connect(() => ({}));
    await client.call('hostname', { hostname: 'a' });
    await client.call('hostname', { hostname: 'b' });
    const [first, second] = requests.map((request) => request.id as number);
    assert.equal(second, first! + 1);
    assert.ok(first! > 1, 'a fresh connection does not reuse the ids of an earlier one');
  });

  it('turns readOutput into ordered streams, resumes from its cursor and restarts when the epoch changes', async () => {
    const pages: ReadOutputResult[] = [
      { epoch: 'e1', chunks: [chunk(4, 'stdout', 'a'), chunk(5, 'stderr', 'b')], dropped: 0, eof: false },
      { epoch: 'e2', chunks: [], dropped: 0, eof: false },
      { epoch: 'e2', chunks: [chunk(1, 'stdout', 'c'), chunk(2, 'stdout', 'd')], dropped: 1, eof: true },
    ];
    const { client, requests } = await connect((request) => (request.op === 'readOutput' ? pages.shift() : {}));
    const streams = processStreams(client, 'c1', { after: 3, epoch: 'e1' });
    const out: string[] = [];
    const err: string[] = [];
    streams.stdout.on('data', (data: Buffer) => out.push(data.toString()));
    streams.stderr.on('data', (data: Buffer) => err.push(data.toString()));
    await streams.done;
    assert.deepEqual(requests.map((request) => request.after), [3, 5, 0]);
    assert.deepEqual([out.join(''), err.join('')], ['acd', 'b']);
    assert.deepEqual([streams.cursor, streams.epoch, streams.dropped], [2, 'e2', 1]);
  });

  it('writes stdin in order and closes it at the end', async () => {
    const { client, requests } = await connect((request) => (request.op === 'readOutput' ? { epoch: 'e', chunks: [], dropped: 0, eof: true } : {}));
    const streams = processStreams(client, 'c1#1', { stdin: true });
    streams.stdin!.write('one ');
    await new Promise<void>((resolve, reject) => streams.stdin!.end('two', () => resolve()).on('error', reject));
    await streams.done;
    const writes = requests.filter((request) => request.op !== 'readOutput');
    assert.deepEqual(writes.map((request) => [request.op, request.processId, request.data && Buffer.from(request.data as string, 'base64').toString()]), [
      ['writeStdin', 'c1#1', 'one '], ['writeStdin', 'c1#1', 'two'], ['closeStdin', 'c1#1', undefined],
    ]);
  });

  it('stops reading when its signal aborts, ending the streams', async () => {
    const { client } = await connect((request) => (request.op === 'readOutput' ? new Promise(() => undefined) : {}));
    const controller = new AbortController();
    const streams = processStreams(client, 'c1', { signal: controller.signal });
    streams.stdout.resume();
    const ended = once(streams.stdout, 'end');
    controller.abort();
    await streams.done;
    await ended;
  });
});
