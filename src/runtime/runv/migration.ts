import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { pipeline } from 'node:stream/promises';
import type { QmpClient, QmpEvent } from './qmp.js';

/**
 * A VM's device state to and from a file, with QEMU's migration over a unix socket: QEMU 7.2 has no
 * `file:` migration, and `exec:` needs fork and exec, which the VM's seccomp filter (`-sandbox on`,
 * spawn=deny) forbids, killing QEMU on the spot. So the runtime serves the socket and streams
 * between it and the file.
 *
 * Both sides turn on `x-ignore-shared`: RAM in a shared memory-backend-file (a template being saved)
 * is left out of the stream, since the file already holds it, and a clone that maps that file
 * expects no RAM pages in the stream. What remains is the device state, some tens of KiB. Both also
 * turn on `events`, so that QEMU announces each migration state instead of being polled.
 */

const CAPABILITIES = [{ capability: 'x-ignore-shared', state: true }, { capability: 'events', state: true }];
const FINAL = new Set(['completed', 'failed', 'cancelled']);

export class MigrationError extends Error {
  override name = 'MigrationError';
}

/**
 * Saves the state of the VM behind `qmp`, which the caller paused, into `file` (written beside it,
 * fsynced, then renamed into place). `socketPath` is where the runtime listens for QEMU; it is
 * removed afterwards. Returns the state's size in bytes.
 */
export async function saveState(qmp: QmpClient, socketPath: string, file: string, timeoutMs: number, signal?: AbortSignal): Promise<number> {
  const partial = `${file}.partial`;
  const server = createServer();
  await listen(server, socketPath);
  const received = new Promise<number>((resolve, reject) => {
    server.once('connection', (socket: Socket) => {
      server.close();
      const out = createWriteStream(partial);
      let bytes = 0;
      socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
      pipeline(socket, out).then(() => resolve(bytes), reject);
    });
  });
  received.catch(() => undefined);
  try {
    await qmp.execute('migrate-set-capabilities', { capabilities: CAPABILITIES });
    await migrate(qmp, () => qmp.execute('migrate', { uri: `unix:${socketPath}` }), timeoutMs, signal);
    const bytes = await received;
    const handle = await open(partial, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(partial, file);
    return bytes;
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  } finally {
    server.close();
    await rm(socketPath, { force: true });
  }
}

/**
 * Loads `file` into the VM behind `qmp`, which QEMU started with `-incoming defer` and the same
 * device set as the saved VM. QEMU listens on `socketPath`; the runtime connects and streams the file.
 * When this resolves the VM is loaded and paused (it was saved paused); `cont` runs it.
 */
export async function loadState(qmp: QmpClient, socketPath: string, file: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  // Opened first: a missing file must fail here, not leave QEMU waiting on its socket.
  const input = createReadStream(file);
  await new Promise<void>((resolve, reject) => {
    input.once('open', () => resolve());
    input.once('error', (err) => reject(new MigrationError(`cannot read the saved VM state ${file}: ${err.message}`)));
  });
  try {
    await qmp.execute('migrate-set-capabilities', { capabilities: CAPABILITIES });
    await migrate(qmp, async () => {
      await qmp.execute('migrate-incoming', { uri: `unix:${socketPath}` });
      // QEMU closes the socket once it has read the end of the stream; a reset after that is no
      // failure, and a real one shows as the migration failing.
      pipeline(input, connect(socketPath)).catch(() => undefined);
    }, timeoutMs, signal);
  } finally {
    input.destroy();
  }
}

/** Runs `start` and waits for the migration it begins to complete; QEMU's own error on failure. */
async function migrate(qmp: QmpClient, start: () => Promise<unknown>, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  let settle!: (status: string) => void;
  const outcome = new Promise<string>((resolve) => (settle = resolve));
  const stopListening = qmp.onEvent((event: QmpEvent) => {
    const status = event.data.status;
    if (event.event === 'MIGRATION' && typeof status === 'string' && FINAL.has(status)) settle(status);
  });
  const onAbort = () => settle('aborted');
  signal?.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(() => settle('timeout'), timeoutMs);
  void qmp.closed.then(() => settle('disconnected'));
  try {
    signal?.throwIfAborted();
    await start();
    const status = await outcome;
    if (status === 'completed') return;
    if (status === 'timeout' || status === 'aborted') {
      await qmp.execute('migrate_cancel').catch(() => undefined);
      throw new MigrationError(status === 'timeout' ? `the migration did not complete within ${timeoutMs} ms` : 'the migration was aborted');
    }
    if (status === 'disconnected') throw new MigrationError('QEMU went away during the migration');
    const info = await qmp.execute<{ 'error-desc'?: string }>('query-migrate').catch(() => ({}) as { 'error-desc'?: string });
    throw new MigrationError(`the migration ${status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}`);
  } finally {
    stopListening();
    signal?.removeEventListener('abort', onAbort);
    clearTimeout(timer);
  }
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
