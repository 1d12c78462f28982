import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const run = promisify(execFile);
const CACHE_MODULE = fileURLToPath(new URL('./cache.js', import.meta.url));
/** How long the traced child may take; strace slows every syscall down. */
const CHILD_TIMEOUT_MS = 60_000;

/**
 * The writer under trace: cached answers, then each kind of offline-queue transaction, each step
 * between marker lines on stdout so the trace shows which syscalls belong to which call.
 */
const WRITER = `
import { writeSync } from 'node:fs';
const { EdgeCache } = await import(process.argv[1]);
const mark = (m) => writeSync(1, 'MARK:' + m + '\\n');
const PODS = { component: 'kubelet', group: '', version: 'v1', resource: 'pods' };
const pod = (name, rv) => ({ metadata: { name, namespace: 'edge', resourceVersion: String(rv) }, spec: { nodeName: 'n1' }, status: { phase: 'Running' } });
const cache = EdgeCache.open(process.argv[2]);
cache.putObject(PODS, pod('warm', 1));
mark('cached-begin');
for (let rv = 2; rv < 12; rv++) {
  cache.putList({ ...PODS, namespace: 'edge' }, { apiVersion: 'v1', kind: 'PodList', metadata: { resourceVersion: String(rv) }, items: [pod('a', rv), pod('b', rv)] });
  cache.putObject(PODS, pod('c', rv));
}
mark('cached-end');
const write = { ...PODS, namespace: 'edge', name: 'a', subresource: 'status', method: 'PATCH', path: '/p', contentType: 'application/json', body: '{}', userAgent: 'kubelet/1' };
mark('absorb-begin');
cache.absorbWrite(write, pod('a', 11));
mark('absorb-end');
mark('event-begin');
cache.bufferEvent({ ...write, resource: 'events', name: 'e1', subresource: '', method: 'POST' }, 10);
mark('event-end');
mark('complete-begin');
cache.completeWrite(cache.queuedWrites()[0]);
mark('complete-end');
cache.close();
`;

/** The fsync/fdatasync calls on the cache's WAL between each pair of markers, by step name. */
function walSyncsByStep(trace: string): Map<string, number> {
  const steps = new Map<string, number>();
  let step: string | undefined;
  for (const line of trace.split('\n')) {
    const mark = /write\(1<[^>]*>, "MARK:(\w+)-(begin|end)\\n"/.exec(line);
    if (mark) {
      step = mark[2] === 'begin' ? mark[1] : undefined;
      if (step) steps.set(step, 0);
      continue;
    }
    if (step && /\b(fsync|fdatasync)\(\d+<[^>]*cache\.db-wal>\)/.test(line)) steps.set(step, steps.get(step)! + 1);
  }
  return steps;
}

describe('EdgeCache durability', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-edgecache-sync-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fsyncs the offline queue before each call returns, and commits cached answers without an fsync', async () => {
    const traceFile = join(dir, 'trace');
    await run('strace', ['-f', '-y', '-s', '64', '-e', 'trace=write,fsync,fdatasync', '-o', traceFile, process.execPath, '--input-type=module', '-e', WRITER, CACHE_MODULE, join(dir, 'cache.db')], {
      timeout: CHILD_TIMEOUT_MS,
    });
    const steps = walSyncsByStep(await readFile(traceFile, 'utf8'));
    assert.deepEqual([...steps.keys()], ['cached', 'absorb', 'event', 'complete'], 'every step ran under the trace');
    assert.equal(steps.get('cached'), 0, 'cached answers (20 transactions) commit without an fsync');
    for (const step of ['absorb', 'event', 'complete']) assert.ok(steps.get(step)! >= 1, `the ${step} transaction fsyncs the WAL before it returns`);
  });
});
