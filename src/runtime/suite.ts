import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync, copyFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { RuntimeError, type ContainerSpec, type RuntimeErrorCode, type RuntimeHandler, type SandboxSpec } from './handler.js';

/** Where Debian's busybox-static lives; the test rootfs is this binary and its applet links. */
export const BUSYBOX = '/usr/bin/busybox';
/** The unprivileged user the test rootfs's /etc/passwd defines, and its groups. */
export const TEST_USER = { name: 'app', uid: 1000, gid: 1000, extraGroup: 2000 };
/** How long a case waits for a container to reach a state it must reach on its own. */
const SETTLE_MS = 15_000;

/**
 * Makes a minimal root filesystem at `dir`: busybox-static with a link per applet, /etc/passwd and
 * /etc/group defining root and TEST_USER (a member of a second group), and an empty /tmp.
 */
export function makeBusyboxRootfs(dir: string): string {
  for (const sub of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev', 'root']) mkdirSync(join(dir, sub), { recursive: true });
  chmodSync(join(dir, 'tmp'), 0o1777);
  copyFileSync(BUSYBOX, join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const applet of applets) if (applet !== 'busybox') symlinkSync('busybox', join(dir, 'bin', applet));
  writeFileSync(join(dir, 'etc', 'passwd'), `root:x:0:0:root:/root:/bin/sh\n${TEST_USER.name}:x:${TEST_USER.uid}:${TEST_USER.gid}::/tmp:/bin/sh\n`);
  writeFileSync(join(dir, 'etc', 'group'), `root:x:0:\n${TEST_USER.name}:x:${TEST_USER.gid}:\nextra:x:${TEST_USER.extraGroup}:${TEST_USER.name}\n`);
  return dir;
}

export interface HandlerFixtures {
  /** A rootfs made by makeBusyboxRootfs; cases only read it (readonlyRootfs or no writes). */
  rootfs: string;
  /** A directory for the cases' CRI log files. */
  logDir: string;
  /**
   * The pod sandbox the cases' containers belong to, for a handler with `startSandbox` (runv), which
   * the suite starts once before the cases and stops after them. Its id is the containers' sandboxId.
   */
  sandbox?: SandboxSpec;
  /** The chain ID the cases give `rootfs` (ContainerSpec.imageChainId), for a handler that builds a disk per image. */
  imageChainId?: string;
}

/** The sandboxId of the cases' containers when the fixtures name no sandbox. */
const SUITE_SANDBOX_ID = 'suite-sandbox';

async function rejectsWith(promise: Promise<unknown>, code: RuntimeErrorCode, pattern?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof RuntimeError, `expected a RuntimeError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; last: ${JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * The cases every RuntimeHandler must pass. `open` returns a handler on fresh state; the suite stops
 * and removes every container it made, then closes the handler, even when a case fails.
 */
export function handlerSuite(name: string, open: () => Promise<RuntimeHandler>, fixtures: () => HandlerFixtures): void {
  describe(`RuntimeHandler suite: ${name}`, () => {
    let handler: RuntimeHandler;
    let made: string[] = [];
    let counter = 0;

    let sandboxId = SUITE_SANDBOX_ID;

    before(async () => {
      handler = await open();
      if (handler.startSandbox) {
        const { sandbox } = fixtures();
        assert.ok(sandbox, `the ${name} handler starts sandboxes: its fixtures must give one`);
        await handler.startSandbox(sandbox);
        sandboxId = sandbox.id;
      }
    });
    afterEach(async () => {
      for (const id of made) {
        await handler.stop(id, 0).catch(() => undefined);
        await handler.remove(id).catch(() => undefined);
      }
      made = [];
    });
    after(async () => {
      const sandbox = fixtures().sandbox;
      if (sandbox) await handler?.stopSandbox?.(sandbox.id);
      await handler?.close();
    });

    function spec(args: string[], extra: Partial<ContainerSpec> = {}): ContainerSpec {
      const id = `suite-${process.pid}-${++counter}`;
      made.push(id);
      const { rootfs, logDir, imageChainId } = fixtures();
      return { id, sandboxId, rootfs, ...(imageChainId ? { imageChainId } : {}), readonlyRootfs: true, command: args, logPath: join(logDir, `${id}.log`), ...extra };
    }

    async function running(args: string[], extra: Partial<ContainerSpec> = {}): Promise<string> {
      const { id } = await handler.createContainer(spec(args, extra));
      await handler.start(id);
      return id;
    }

    it('goes created -> running -> exited and reports the exit code and times', async () => {
      const { id } = await handler.createContainer(spec(['sh', '-c', 'sleep 0.3; exit 3']));
      const created = await handler.state(id);
      assert.equal(created.status, 'created');
      assert.ok(created.pid > 0);
      await handler.start(id);
      assert.equal((await handler.state(id)).status, 'running');
      const exited = await handler.wait(id);
      assert.equal(exited.status, 'exited');
      assert.equal(exited.exitCode, 3);
      assert.equal(exited.reason, 'Error');
      assert.equal(exited.pid, 0);
      assert.ok(exited.startedAt! >= created.createdAt && exited.finishedAt! >= exited.startedAt! - 1_000);
      assert.deepEqual(await handler.state(id), exited);
    });

    it("reports a zero exit as 'Completed'", async () => {
      const id = await running(['true']);
      const state = await handler.wait(id);
      assert.equal(state.exitCode, 0);
      assert.equal(state.reason, 'Completed');
    });

    it('refuses to remove a running container, removes it once stopped, and forgets it', async () => {
      const id = await running(['sleep', '1000']);
      await rejectsWith(handler.remove(id), 'ContainerRunning', /running/);
      assert.equal((await handler.state(id)).status, 'running');
      await handler.stop(id, 1);
      await handler.remove(id);
      await rejectsWith(handler.state(id), 'NotFound');
    });

    it('removes a created container that never started', async () => {
      const { id } = await handler.createContainer(spec(['sleep', '1000']));
      await handler.remove(id);
      await rejectsWith(handler.state(id), 'NotFound');
    });

    it('stops gracefully when the process honours SIGTERM', async () => {
      const id = await running(['sh', '-c', "trap 'exit 0' TERM; while :; do sleep 0.1; done"]);
      await until(() => handler.execSync(id, ['true'], 5), (result) => result.exitCode === 0, 'exec to work');
      const began = Date.now();
      await handler.stop(id, 10);
      const state = await handler.state(id);
      assert.equal(state.exitCode, 0);
      assert.ok(Date.now() - began < 5_000, 'graceful stop should not wait for the timeout');
    });

    it('escalates to SIGKILL when the process ignores SIGTERM', async () => {
      const id = await running(['sh', '-c', "trap '' TERM; while :; do sleep 0.1; done"]);
      const began = Date.now();
      await handler.stop(id, 1);
      const elapsed = Date.now() - began;
      const state = await handler.state(id);
      assert.equal(state.status, 'exited');
      assert.equal(state.exitCode, 137);
      assert.ok(elapsed >= 1_000, `stop returned after ${elapsed} ms, before the timeout`);
      await handler.stop(id, 1);
    });

    it('delivers signals with kill()', async () => {
      const id = await running(['sh', '-c', "trap 'exit 42' USR1; while :; do sleep 0.1; done"]);
      await until(() => handler.execSync(id, ['true'], 5), (result) => result.exitCode === 0, 'exec to work');
      await handler.kill(id, 'SIGUSR1');
      assert.equal((await handler.wait(id)).exitCode, 42);
      await rejectsWith(handler.kill(id, 'SIGUSR1'), 'NotRunning');
    });

    it('runs execSync with output and exit code', async () => {
      const id = await running(['sleep', '1000']);
      const result = await handler.execSync(id, ['sh', '-c', 'echo out; echo err >&2; exit 5'], 10);
      assert.equal(result.stdout.toString(), 'out\n');
      assert.equal(result.stderr.toString(), 'err\n');
      assert.equal(result.exitCode, 5);
    });

    it('kills an execSync that outlives its timeout and says so', async () => {
      const id = await running(['sleep', '1000']);
      const began = Date.now();
      await rejectsWith(handler.execSync(id, ['sleep', '30'], 1), 'DeadlineExceeded', /timed out/);
      const elapsed = Date.now() - began;
      assert.ok(elapsed >= 900 && elapsed < 5_000, `took ${elapsed} ms`);
      const left = await handler.execSync(id, ['ps', '-o', 'stat,args'], 10);
      assert.doesNotMatch(left.stdout.toString(), /sleep 30/, 'the timed-out command is gone, reaped');
    });

    it('fails fast on exec of a missing binary', async () => {
      const id = await running(['sleep', '1000']);
      const began = Date.now();
      await rejectsWith(handler.execSync(id, ['/no/such/binary'], 10), 'CommandNotFound', /no\/such\/binary|not found|no such file/);
      assert.ok(Date.now() - began < 5_000);
    });

    it('refuses a command that does not exist, precisely, and leaves the id reusable', async () => {
      const bad = spec(['no-such-command']);
      await rejectsWith(handler.createContainer(bad), 'CommandNotFound', /no-such-command/);
      await rejectsWith(handler.state(bad.id), 'NotFound');
      const { id } = await handler.createContainer({ ...bad, command: ['true'] });
      assert.equal(id, bad.id);
    });

    it('refuses a duplicate id', async () => {
      const first = spec(['sleep', '1000']);
      await handler.createContainer(first);
      await rejectsWith(handler.createContainer(first), 'AlreadyExists');
    });

    it('enforces a read-only rootfs', async () => {
      const id = await running(['sleep', '1000'], { readonlyRootfs: true });
      const result = await handler.execSync(id, ['touch', '/file'], 10);
      assert.notEqual(result.exitCode, 0);
      assert.match(result.stderr.toString(), /read-only/i);
    });

    it('resolves a username through the image’s /etc/passwd and /etc/group', async () => {
      const id = await running(['sleep', '1000'], { user: { username: TEST_USER.name } });
      const result = await handler.execSync(id, ['id'], 10);
      const text = result.stdout.toString();
      assert.match(text, new RegExp(`uid=${TEST_USER.uid}\\b`));
      assert.match(text, new RegExp(`gid=${TEST_USER.gid}\\b`));
      assert.match(text, new RegExp(`groups=.*${TEST_USER.extraGroup}`));
    });

    it('merges image config with the spec (entrypoint, cmd, env, working dir)', async () => {
      const id = await running([], {
        command: undefined,
        image: { entrypoint: ['sh', '-c'], cmd: ['sleep 1000'], env: ['A=image', 'B=image'], workingDir: '/tmp' },
        env: [{ name: 'B', value: 'spec' }],
      });
      const result = await handler.execSync(id, ['sh', '-c', 'echo $A $B; pwd'], 10);
      assert.equal(result.stdout.toString(), 'image spec\n/tmp\n');
    });

    it('reports non-zero stats for a busy container', async () => {
      const id = await running(['sh', '-c', 'while :; do :; done']);
      const stats = await until(() => handler.stats(id), (value) => value.cpu.usageCoreNanoSeconds > 10_000_000n, 'CPU usage');
      assert.ok(stats.memory.usageBytes > 0);
      assert.ok(stats.memory.workingSetBytes > 0);
      assert.ok(stats.pids >= 1);
    });

    it('streams an exec with stdin', async () => {
      const id = await running(['sleep', '1000']);
      const session = await handler.exec(id, ['cat'], { stdin: true });
      const chunks: Buffer[] = [];
      session.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
      session.stdin!.end('ping\n');
      assert.equal(await session.exited, 0);
      assert.equal(Buffer.concat(chunks).toString(), 'ping\n');
    });

    it('attaches to a main process created with stdin: input in, output out, EOF closes its stdin', async () => {
      const id = await running(['sh', '-c', 'read line; echo got:$line; cat; echo eof'], { stdin: true });
      const session = await handler.attach!(id, { stdin: true });
      const chunks: Buffer[] = [];
      session.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
      session.stdin!.write('one\n');
      session.stdin!.end('two\n');
      assert.equal(await session.exited, 0);
      assert.equal(Buffer.concat(chunks).toString(), 'got:one\ntwo\neof\n');
    });

    it('updates resources of a running container', async () => {
      const id = await running(['sleep', '1000'], { resources: { memoryLimitBytes: 64 * 1024 * 1024 } });
      await handler.updateResources(id, { memoryLimitBytes: 128 * 1024 * 1024, cpuShares: 512 });
      assert.equal((await handler.state(id)).status, 'running');
    });

    it('reopens the log of a running container', async () => {
      const id = await running(['sleep', '1000']);
      await handler.reopenLog(id);
    });

    it('answers NotFound for unknown ids', async () => {
      await rejectsWith(handler.state('no-such-container'), 'NotFound');
      await rejectsWith(handler.remove('no-such-container'), 'NotFound');
      await rejectsWith(handler.stop('no-such-container', 1), 'NotFound');
    });

    it('adopts its own containers with their true states', async () => {
      const live = await running(['sleep', '1000']);
      const done = await running(['true']);
      await handler.wait(done);
      const adopted = await handler.adopt();
      const byId = new Map(adopted.map((container) => [container.id, container]));
      assert.equal(byId.get(live)?.state.status, 'running');
      assert.equal(byId.get(done)?.state.status, 'exited');
      assert.equal(byId.get(done)?.state.exitCode, 0);
      assert.equal(byId.get(live)?.sandboxId, sandboxId);
    });
  });
}
