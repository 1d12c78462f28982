import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { criClient, type CriClient } from './client.js';
import { CriError } from './errors.js';
import { serveCri, type CriServer } from './server.js';
import type { CriImplementation } from './types.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'atoll-cri-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function rejection(promise: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await promise;
  } catch (err) {
    return err as { code: number; details: string };
  }
  assert.fail('expected the call to fail');
}

describe('serveCri over a unix socket', () => {
  let server: CriServer;
  let client: CriClient;
  const logged: string[] = [];
  const seen: Record<string, unknown> = {};

  const implementation: Partial<CriImplementation> = {
    Version(request) {
      seen.version = request.version;
      return { version: '0.1.0', runtime_name: 'atoll', runtime_version: '0.1.0', runtime_api_version: 'v1' };
    },
    async StopPodSandbox() {},
    async ContainerStatus(request) {
      throw CriError.notFound(`container ${request.container_id} not found`);
    },
    async RunPodSandbox(request) {
      if (request.config!.metadata!.name === 'dup') throw CriError.alreadyExists('sandbox name dup is reserved');
      return { pod_sandbox_id: `id-${request.config!.metadata!.name}` };
    },
    async RemoveContainer() {
      throw new Error('disk on fire');
    },
    async ExecSync(request) {
      return { stdout: Buffer.from(request.cmd.join(' ')), stderr: Buffer.alloc(0), exit_code: 0 };
    },
    async ListContainers(request) {
      seen.filter = request.filter;
      return {
        containers: [{ id: 'c1', state: 'CONTAINER_RUNNING', created_at: 1_700_000_000_000_000_000, labels: { app: 'web' } }],
      };
    },
    async StopContainer(_request, call) {
      await new Promise((resolve) => call.signal.addEventListener('abort', resolve, { once: true }));
      seen.stopAborted = true;
      return {};
    },
    async ImageStatus() {
      return {};
    },
    async GetContainerEvents(_request, sink, call) {
      for (const type of ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT'] as const) {
        sink.send({ container_id: 'c1', container_event_type: type, created_at: 1 });
      }
      await new Promise((resolve) => call.signal.addEventListener('abort', resolve, { once: true }));
    },
  };

  before(async () => {
    server = await serveCri(`unix://${join(dir, 'run', 'atoll', 'cri.sock')}`, implementation, {
      log: (line) => logged.push(line),
    });
    client = criClient(server.socketPath);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  test('Version answers over the socket', async () => {
    const version = await client.Version({ version: 'v1' });
    assert.equal(seen.version, 'v1');
    assert.deepEqual(version, { version: '0.1.0', runtime_name: 'atoll', runtime_version: '0.1.0', runtime_api_version: 'v1' });
  });

  test('the socket is created with its parent directory and mode 0660', async () => {
    const info = await stat(server.socketPath);
    assert.ok(info.isSocket());
    assert.equal(info.mode & 0o777, 0o660);
  });

  test('a method the implementation lacks answers UNIMPLEMENTED naming it', async () => {
    const err = await rejection(client.CheckpointContainer({ container_id: 'c1' }));
    assert.equal(err.code, status.UNIMPLEMENTED);
    assert.match(err.details, /RuntimeService\/CheckpointContainer/);
    const imageErr = await rejection(client.PullImage({ image: { image: 'busybox' } }));
    assert.equal(imageErr.code, status.UNIMPLEMENTED);
    assert.match(imageErr.details, /ImageService\/PullImage/);
  });

  test('a CriError keeps its gRPC code and message', async () => {
    const notFound = await rejection(client.ContainerStatus({ container_id: 'nope' }));
    assert.equal(notFound.code, status.NOT_FOUND);
    assert.equal(notFound.details, 'container nope not found');
    const dup = await rejection(
      client.RunPodSandbox({ config: { metadata: { name: 'dup', uid: 'u', namespace: 'default' } } }),
    );
    assert.equal(dup.code, status.ALREADY_EXISTS);
  });

  test('an unexpected exception is INTERNAL with its message, and logged', async () => {
    const err = await rejection(client.RemoveContainer({ container_id: 'c1' }));
    assert.equal(err.code, status.INTERNAL);
    assert.match(err.details, /disk on fire/);
    assert.ok(logged.some((line) => line.includes('RuntimeService/RemoveContainer') && line.includes('disk on fire')));
  });

  test('a missing required field is INVALID_ARGUMENT naming the field', async () => {
    const noId = await rejection(client.StopPodSandbox({}));
    assert.equal(noId.code, status.INVALID_ARGUMENT);
    assert.match(noId.details, /pod_sandbox_id is required/);
    const noUid = await rejection(client.RunPodSandbox({ config: { metadata: { name: 'a', namespace: 'default' } } }));
    assert.equal(noUid.code, status.INVALID_ARGUMENT);
    assert.match(noUid.details, /config\.metadata\.uid is required/);
    const noCmd = await rejection(client.ExecSync({ container_id: 'c1' }));
    assert.match(noCmd.details, /cmd is required/);
    const noImage = await rejection(client.ImageStatus({ image: {} }));
    assert.match(noImage.details, /image\.image is required/);
  });

  test('handlers receive defaults and bytes, and an empty response is allowed', async () => {
    assert.deepEqual(await client.StopPodSandbox({ pod_sandbox_id: 'p1' }), {});
    const exec = await client.ExecSync({ container_id: 'c1', cmd: ['echo', 'hi'], timeout: 1 });
    assert.equal(exec.stdout.toString(), 'echo hi');
    assert.equal(exec.exit_code, 0);
    const listed = await client.ListContainers({ filter: { label_selector: { app: 'web' } } });
    assert.deepEqual(seen.filter, { id: '', state: null, pod_sandbox_id: '', label_selector: { app: 'web' } });
    assert.equal(listed.containers[0]!.state, 'CONTAINER_RUNNING');
    assert.equal(listed.containers[0]!.created_at, 1_700_000_000_000_000_000);
    assert.equal((await client.ImageStatus({ image: { image: 'absent' } })).image, null);
  });

  test('the client deadline cancels the handler through call.signal', async () => {
    const err = await rejection(client.StopContainer({ container_id: 'c1' }, { timeoutMs: 100 }));
    assert.equal(err.code, status.DEADLINE_EXCEEDED);
    for (let i = 0; i < 50 && !seen.stopAborted; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(seen.stopAborted, true);
  });

  test('GetContainerEvents streams until the client aborts', async () => {
    const abort = new AbortController();
    const types: string[] = [];
    for await (const event of client.GetContainerEvents({}, { signal: abort.signal })) {
      types.push(event.container_event_type);
      if (types.length === 2) abort.abort();
    }
    assert.deepEqual(types, ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT']);
  });
});

/** A process that dies by SIGKILL while listening leaves its socket file behind, answering nobody. */
async function leaveStaleSocket(path: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await once(child.stdout!, 'data');
  child.kill('SIGKILL');
  await once(child, 'exit');
}

describe('the socket file', () => {
  test('a stale socket is replaced and close() removes the socket', async () => {
    const path = join(dir, 'stale.sock');
    await leaveStaleSocket(path);
    assert.ok((await stat(path)).isSocket());

    const server = await serveCri(path, {});
    const client = criClient(path);
    const err = await rejection(client.Version({}));
    assert.equal(err.code, status.UNIMPLEMENTED);
    const streamErr = await rejection(
      (async () => {
        for await (const _ of client.GetContainerEvents()) assert.fail('no events expected');
      })(),
    );
    assert.equal(streamErr.code, status.UNIMPLEMENTED);
    assert.match(streamErr.details, /RuntimeService\/GetContainerEvents/);
    client.close();
    await server.close();
    await assert.rejects(stat(path), { code: 'ENOENT' });
  });

  test('a socket another process answers on is not taken over', async () => {
    const path = join(dir, 'live.sock');
    const live = createServer();
    await new Promise<void>((resolve) => live.listen(path, resolve));
    try {
      await assert.rejects(serveCri(path, {}), /in use by a running process/);
    } finally {
      await new Promise<void>((resolve) => live.close(() => resolve()));
    }
  });

  test('a regular file at the socket path is never deleted', async () => {
    const path = join(dir, 'not-a-socket');
    await writeFile(path, 'keep me');
    await assert.rejects(serveCri(path, {}), /is not a socket/);
    assert.ok((await stat(path)).isFile());
  });
});
