import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { processAlive } from './state.js';
import { processCommandLine, stopStale, Supervised, type ExitInfo } from './supervisor.js';

/** Small, so the test runs quickly; the values are asserted, not the time they take. */
const BACKOFF = { initialMs: 20, maxMs: 80, resetAfterMs: 60_000 };
const GRACE_MS = 300;

describe('Supervised', () => {
  let dir: string;
  const started: number[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-supervisor-'));
  });
  after(async () => {
    for (const pid of started) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone, as it should be
      }
    }
    await rm(dir, { recursive: true, force: true });
  });

  async function script(name: string, body: string): Promise<string> {
    const file = join(dir, name);
    await writeFile(file, body);
    return file;
  }

  it('restarts a crashing child with a growing, capped back-off, logging every start', async () => {
    const crash = await script('crash.mjs', "console.log('starting'); console.error('oops'); process.exit(3);\n");
    const exits: ExitInfo[] = [];
    const logFile = join(dir, 'crash', 'agent.log');
    let reached!: () => void;
    const fiveExits = new Promise<void>((r) => (reached = r));
    const supervised = new Supervised({
      argv: [process.execPath, crash],
      logFile,
      backoff: BACKOFF,
      onStart: (pid) => started.push(pid),
      onExit: (info) => {
        exits.push(info);
        if (exits.length === 5) reached();
      },
    });
    supervised.start();
    await fiveExits;
    await supervised.stop();
    assert.deepEqual(
      exits.slice(0, 5).map((e) => [e.code, e.restartInMs]),
      [
        [3, 20],
        [3, 40],
        [3, 80],
        [3, 80],
        [3, 80],
      ],
    );
    const log = await readFile(logFile, 'utf8');
    assert.ok((log.match(/^--- .* start \d+: /gm) ?? []).length >= 5, log);
    assert.match(log, /starting\noops\n/);
    assert.equal(supervised.pid, undefined);
  });

  it('stops a child with SIGTERM and lets it finish', async () => {
    const marker = join(dir, 'terminated');
    const polite = await script('polite.mjs', `import { writeFileSync } from 'node:fs'; process.on('SIGTERM', () => { writeFileSync(${JSON.stringify(marker)}, 'bye'); process.exit(0); }); console.log('listening'); setInterval(() => {}, 1000);\n`);
    const logFile = join(dir, 'polite.log');
    const supervised = new Supervised({ argv: [process.execPath, polite], logFile, backoff: BACKOFF, stopGraceMs: 60_000, onStart: (pid) => started.push(pid) });
    supervised.start();
    await waitForLog(logFile, 'listening\n');
    const pid = supervised.pid!;
    await supervised.stop();
    assert.equal(await readFile(marker, 'utf8'), 'bye');
    assert.equal(await processAlive(pid), false);
    assert.equal(supervised.startCount, 1, 'a stopped child is not restarted');
  });

  it('kills a child that ignores SIGTERM after the grace period, with the children it started', async () => {
    const stubborn = await script(
      'stubborn.mjs',
      "import { spawn } from 'node:child_process'; process.on('SIGTERM', () => {}); const c = spawn('sleep', ['1000'], { stdio: 'ignore' }); console.log('grandchild ' + c.pid); setInterval(() => {}, 1000);\n",
    );
    const logFile = join(dir, 'stubborn.log');
    const supervised = new Supervised({ argv: [process.execPath, stubborn], logFile, backoff: BACKOFF, stopGraceMs: GRACE_MS, onStart: (pid) => started.push(pid) });
    supervised.start();
    const grandchild = Number(/grandchild (\d+)/.exec(await waitForLog(logFile, 'grandchild '))![1]);
    started.push(grandchild);
    const pid = supervised.pid!;
    await supervised.stop();
    assert.equal(await processAlive(pid), false);
    await waitUntil(async () => !(await processAlive(grandchild)));
  });

  it('stopStale stops only a process whose command line is ours', async () => {
    const sleeper = await script('sleeper.mjs', 'setInterval(() => {}, 1000);\n');
    const child = spawn(process.execPath, [sleeper, '--data-dir', join(dir, 'mine')], { detached: true, stdio: 'ignore' });
    started.push(child.pid!);
    const exited = new Promise((r) => child.once('exit', r));
    assert.deepEqual((await processCommandLine(child.pid!))?.slice(1), [sleeper, '--data-dir', join(dir, 'mine')]);
    assert.equal(await stopStale(child.pid!, (argv) => argv.includes(join(dir, 'other')), GRACE_MS), false);
    assert.equal(await processAlive(child.pid!), true, 'a process that is not ours is left alone');
    assert.equal(await stopStale(child.pid!, (argv) => argv.includes(join(dir, 'mine')), GRACE_MS), true);
    await exited;
    assert.equal(await stopStale(999_999_999, () => true), false);
  });
});

/** A bound that only a broken supervisor reaches. */
const WAIT_LIMIT_MS = 30_000;

async function waitUntil(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_LIMIT_MS;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, 'condition not reached');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function waitForLog(file: string, text: string): Promise<string> {
  let log = '';
  await waitUntil(async () => (log = await readFile(file, 'utf8').catch(() => '')).includes(text));
  return log;
}
