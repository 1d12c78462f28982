/**
 * The Atoll runtime as its own process for bench/runtime (so its memory is its own): imports an OCI
 * archive into the image store, then serves CRI with the bridge inside a given node netns.
 *
 *   node dist/bench/runtime/atoll-process.js '<json options>'
 *
 * Prints "ready" on stdout once the socket is served. SIGTERM: closes the server and destroys the
 * bridge network (the parent removes pods over CRI first).
 */
import { join } from 'node:path';
import { ImageStore } from '../../src/runtime/images/store.js';
import { importArchive } from '../../src/runtime/images/import.js';
import { NodeRuntime } from '../../src/runtime/node-runtime.js';

export interface AtollProcessOptions {
  socket: string;
  root: string;
  runDir: string;
  logRoot: string;
  cgroupParent: string;
  bridge: string;
  subnet: string;
  hostNetns: string;
  archives: string[];
}

const opts = JSON.parse(process.argv[2] ?? '{}') as AtollProcessOptions;

const store = new ImageStore(join(opts.root, 'images'), { snapshots: join(opts.root, 'snapshots') });
for (const archive of opts.archives) await importArchive(store, archive);

const runtime = await NodeRuntime.start({
  socket: opts.socket,
  root: opts.root,
  runDir: opts.runDir,
  logRoot: opts.logRoot,
  cgroupParent: opts.cgroupParent,
  network: { bridge: opts.bridge, subnet: opts.subnet, hostNetns: opts.hostNetns, ipForward: true },
  log: () => undefined,
});
process.stdout.write('ready\n');

// bench/runtime asks for a full GC before each memory sample (started with --expose-gc), so the
// sample shows live memory rather than how much garbage V8 happened to hold at that instant.
process.on('message', (msg: unknown) => {
  if (msg !== 'gc') return;
  (globalThis as { gc?: () => void }).gc?.();
  process.send?.('gc-done');
});

let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  void (async () => {
    await runtime.close().catch((err: unknown) => console.error('close:', err));
    await runtime.network.destroy().catch((err: unknown) => console.error('network destroy:', err));
    process.exit(0);
  })();
});
