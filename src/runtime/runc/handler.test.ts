import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cgroupAt, cgroupMode, childCgroups, removeCgroup } from '../cgroups.js';
import type { ContainerSpec } from '../handler.js';
import { waitFor } from '../../../test/support/wait.js';
import { handlerSuite, makeBusyboxRootfs } from '../suite.js';
import { RuncHandler } from './handler.js';

const RUNC = '/usr/sbin/runc';
const work = mkdtempSync(join(tmpdir(), 'atoll-runc-'));
const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
const logDir = join(work, 'logs');
mkdirSync(logDir);
/** A cgroup parent of this test run alone, so the leak check sees only our containers. */
const cgroupParent = `/atoll-test-${process.pid}`;
const roots: string[] = [];
let rootCount = 0;

function freshRoot(): string {
  const root = join(work, `state-${++rootCount}`);
  roots.push(root);
  return root;
}

function runcList(root: string): { id: string; pid: number; status: string }[] {
  if (!existsSync(join(root, 'runc'))) return [];
  const text = execFileSync(RUNC, ['--root', join(root, 'runc'), 'list', '--format', 'json'], { encoding: 'utf8' }).trim();
  return text === '' || text === 'null' ? [] : (JSON.parse(text) as { id: string; pid: number; status: string }[]);
}

/** PIDs of live conmon processes started for `root`. */
function conmonsOf(root: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const state = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.[0];
      if (cmdline[0]?.endsWith('conmon') && cmdline.some((arg) => arg.startsWith(root)) && state !== 'Z') pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

function mountsUnder(path: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((mountPoint) => mountPoint.startsWith(path));
}

// Whatever the cases left, even after failed assertions: containers, conmons, mounts, cgroups, files.
after(() => {
  for (const root of roots) {
    for (const container of runcList(root)) execFileSync(RUNC, ['--root', join(root, 'runc'), 'delete', '--force', container.id]);
    for (const pid of conmonsOf(root)) process.kill(pid, 'SIGKILL');
  }
  for (const mountPoint of mountsUnder(work).reverse()) execFileSync('umount', ['-l', mountPoint]);
  removeCgroup(cgroupAt(cgroupParent));
  rmSync(work, { recursive: true, force: true });
});

handlerSuite('runc', async () => new RuncHandler(freshRoot(), { cgroupParent }), () => ({ rootfs, logDir }));
// What runv's guest uses: start without `runc start`, by reading runc's exec FIFO in-process.
handlerSuite('runc, started in process', async () => new RuncHandler(freshRoot(), { cgroupParent, startInProcess: true }), () => ({ rootfs, logDir }));

describe('RuncHandler', () => {
  let root: string;
  let handler: RuncHandler;
  const made: string[] = [];
  let counter = 0;
  const warnings: string[] = [];

  before(() => {
    root = freshRoot();
    handler = new RuncHandler(root, { cgroupParent, log: (message) => warnings.push(message) });
  });
  after(async () => {
    for (const id of made) {
      await handler.stop(id, 0).catch(() => undefined);
      await handler.remove(id).catch(() => undefined);
    }
    await handler.close();
  });

  function spec(args: string[], extra: Partial<ContainerSpec> = {}): ContainerSpec {
    const id = `runc-${process.pid}-${++counter}`;
    made.push(id);
    return { id, sandboxId: 'sandbox-1', rootfs, readonlyRootfs: true, command: args, logPath: join(logDir, id, '0.log'), ...extra };
  }

  async function running(args: string[], extra: Partial<ContainerSpec> = {}): Promise<ContainerSpec> {
    const containerSpec = spec(args, extra);
    await handler.createContainer(containerSpec);
    await handler.start(containerSpec.id);
    return containerSpec;
  }

  it('writes the CRI log file: full lines as F, a trailing partial line as P, both streams', async () => {
    const container = await running(['sh', '-c', 'echo hello; echo oops >&2; printf partial']);
    assert.equal((await handler.wait(container.id)).exitCode, 0);
    const lines = readFileSync(container.logPath, 'utf8').split('\n').filter(Boolean);
    const timestamp = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}(Z|[+-]\d\d:\d\d)`;
    assert.equal(lines.length, 3, lines.join('\n'));
    const sorted = [...lines].sort((a, b) => a.split(' ').slice(1).join(' ').localeCompare(b.split(' ').slice(1).join(' ')));
    assert.match(sorted.find((line) => line.includes('hello'))!, new RegExp(`^${timestamp} stdout F hello$`));
    assert.match(sorted.find((line) => line.includes('oops'))!, new RegExp(`^${timestamp} stderr F oops$`));
    assert.match(sorted.find((line) => line.includes('partial'))!, new RegExp(`^${timestamp} stdout P partial$`));
  });

  it('keeps writing after the log is rotated and reopened', async () => {
    const container = await running(['sh', '-c', 'i=0; while :; do echo line$i; i=$((i+1)); sleep 0.1; done']);
    await new Promise((resolve) => setTimeout(resolve, 400));
    const rotated = `${container.logPath}.1`;
    execFileSync('mv', [container.logPath, rotated]);
    await handler.reopenLog(container.id);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.match(readFileSync(container.logPath, 'utf8'), /stdout F line\d+/);
  });

  it('reports OOMKilled for a container that exceeds its memory limit', async () => {
    const container = await running(['sh', '-c', 'x=0123456789abcdef; while :; do x=$x$x; done'], {
      resources: { memoryLimitBytes: 16 * 1024 * 1024 },
    });
    const state = await handler.wait(container.id);
    assert.equal(state.reason, 'OOMKilled');
    assert.equal(state.exitCode, 137);
  });

  it('raises a negative OOM score to the runtime’s own and says so once', async () => {
    const own = Number(readFileSync('/proc/self/oom_score_adj', 'utf8').trim());
    const first = await running(['sleep', '1000'], { resources: { oomScoreAdj: own - 500 } });
    await running(['sleep', '1000'], { resources: { oomScoreAdj: own - 400 } });
    const config = JSON.parse(readFileSync(join(root, 'containers', first.id, 'config.json'), 'utf8')) as { process: { oomScoreAdj: number } };
    assert.equal(config.process.oomScoreAdj, own);
    const state = await handler.state(first.id);
    assert.equal(readFileSync(`/proc/${state.pid}/oom_score_adj`, 'utf8').trim(), String(own));
    assert.equal(warnings.filter((line) => /OOM score/.test(line)).length, 1);
  });

  it('applies resource updates to the cgroup through runc update', async () => {
    const container = await running(['sleep', '1000'], { resources: { memoryLimitBytes: 64 * 1024 * 1024, pidsLimit: 50 } });
    await handler.updateResources(container.id, { memoryLimitBytes: 96 * 1024 * 1024, pidsLimit: 60 });
    const path = `${cgroupParent}/${container.id}`;
    const dirs = cgroupAt(path).directories();
    const read = (file: string) => readFileSync(dirs.map((dir) => join(dir, file)).find(existsSync)!, 'utf8').trim();
    if (cgroupMode() === 'v1') assert.equal(read('memory.limit_in_bytes'), String(96 * 1024 * 1024));
    else assert.equal(read('memory.max'), String(96 * 1024 * 1024));
    assert.equal(read('pids.max'), '60');
  });

  it('counts the block I/O a container issues, with cpu and memory', async () => {
    const data = join(work, 'blkio-data');
    mkdirSync(data);
    // Direct I/O bypasses the page cache, so the writes reach the disk from the container's cgroup.
    const script = 'dd if=/dev/zero of=/data/f bs=64k count=16 oflag=direct && dd if=/data/f of=/dev/null bs=64k iflag=direct && touch /data/done; exec sleep 1000';
    const container = await running(['sh', '-c', script], { mounts: [{ source: data, destination: '/data' }] });
    await waitFor('the container to finish its writes', async () => existsSync(join(data, 'done')));
    const stats = await handler.stats(container.id);
    assert.ok(stats.blockIo, 'block I/O is reported');
    assert.ok(stats.blockIo.writeBytes >= 16 * 64 * 1024, JSON.stringify(stats.blockIo));
    assert.ok(stats.blockIo.writeOps >= 1 && stats.blockIo.readBytes >= 16 * 64 * 1024 && stats.blockIo.readOps >= 1, JSON.stringify(stats.blockIo));
    assert.ok(stats.cpu.usageCoreNanoSeconds > 0n && stats.memory.usageBytes > 0);
  });

  it('joins the sandbox’s network, IPC and UTS namespaces by path', async () => {
    const nsDir = join(work, 'ns');
    mkdirSync(nsDir);
    execFileSync('mount', ['--bind', nsDir, nsDir]);
    execFileSync('mount', ['--make-private', nsDir]);
    for (const kind of ['net', 'ipc', 'uts']) writeFileSync(join(nsDir, kind), '');
    execFileSync('unshare', [`--net=${join(nsDir, 'net')}`, `--ipc=${join(nsDir, 'ipc')}`, `--uts=${join(nsDir, 'uts')}`, 'hostname', 'sandbox-host']);
    try {
      const container = await running(['sleep', '1000'], {
        namespaces: { network: join(nsDir, 'net'), ipc: join(nsDir, 'ipc'), uts: join(nsDir, 'uts') },
      });
      const inode = (file: string) => execFileSync('stat', ['-L', '-c', '%i', file], { encoding: 'utf8' }).trim();
      const result = await handler.execSync(container.id, ['sh', '-c', 'hostname; stat -L -c %i /proc/self/ns/net'], 10);
      assert.equal(result.stdout.toString(), `sandbox-host\n${inode(join(nsDir, 'net'))}\n`);
      await handler.stop(container.id, 0);
      await handler.remove(container.id);
    } finally {
      for (const kind of ['net', 'ipc', 'uts']) execFileSync('umount', [join(nsDir, kind)]);
      execFileSync('umount', [nsDir]);
    }
  });

  it('confines a default container with seccomp and masked paths; a privileged one runs unconfined', async () => {
    const confined = await running(['sleep', '1000']);
    const unconfined = await running(['sleep', '1000'], { privileged: true, readonlyRootfs: false, rootfs });
    const status = (id: string) => handler.execSync(id, ['sh', '-c', 'grep Seccomp: /proc/self/status'], 10);
    assert.match((await status(confined.id)).stdout.toString(), /Seccomp:\s+2/);
    assert.match((await status(unconfined.id)).stdout.toString(), /Seccomp:\s+0/);
    const masked = await handler.execSync(confined.id, ['cat', '/proc/kcore'], 10);
    assert.equal(masked.stdout.length, 0);
  });

  it('gives an exec a terminal when asked', async () => {
    const container = await running(['sleep', '1000']);
    const session = await handler.exec(container.id, ['sh', '-c', 'tty; test -t 0 && echo interactive'], { tty: true });
    assert.equal(session.stderr, null);
    const chunks: Buffer[] = [];
    session.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    assert.equal(await session.exited, 0);
    assert.match(Buffer.concat(chunks).toString(), /\/dev\/pts\/\d+\r?\ninteractive/);
  });

  it('keeps containers running when the process that made them is killed, and re-adopts them', async () => {
    const childRoot = freshRoot();
    const script = join(work, 'creator.mjs');
    const handlerUrl = new URL('./handler.js', import.meta.url).href;
    const base = { sandboxId: 'sandbox-2', rootfs, readonlyRootfs: true };
    writeFileSync(
      script,
      `import { RuncHandler } from ${JSON.stringify(handlerUrl)};
const handler = new RuncHandler(${JSON.stringify(childRoot)}, { cgroupParent: ${JSON.stringify(cgroupParent)} });
for (const [id, command] of [['survivor', ['sleep', '1000']], ['quitter', ['sh', '-c', 'sleep 1; exit 7']]]) {
  await handler.createContainer({ ...${JSON.stringify(base)}, id, command, logPath: ${JSON.stringify(logDir)} + '/' + id + '.log' });
  await handler.start(id);
}
process.stdout.write('started\\n');
setInterval(() => {}, 1000);
`,
    );
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('started') && resolve());
        child.on('exit', (code) => reject(new Error(`creator exited with ${code}`)));
      });
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((resolve) => child.once('exit', resolve));
    // The quitter exits while no runtime is running; conmon records it.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const adopter = new RuncHandler(childRoot, { cgroupParent });
    try {
      const adopted = new Map((await adopter.adopt()).map((container) => [container.id, container.state]));
      assert.equal(adopted.get('survivor')?.status, 'running');
      assert.ok(adopted.get('survivor')!.pid > 0);
      assert.equal(adopted.get('quitter')?.status, 'exited');
      assert.equal(adopted.get('quitter')?.exitCode, 7);
      assert.equal(adopted.get('quitter')?.reason, 'Error');
      await adopter.stop('survivor', 1);
      assert.equal((await adopter.state('survivor')).status, 'exited');
      for (const id of ['survivor', 'quitter']) await adopter.remove(id);
    } finally {
      await adopter.close();
    }
  });

  it('leaves nothing behind after removal: runc state, conmon, cgroups, mounts, bundles', async () => {
    const leakRoot = freshRoot();
    const local = new RuncHandler(leakRoot, { cgroupParent });
    try {
      const ids: string[] = [];
      for (const command of [['sleep', '1000'], ['true'], ['no-such-command']]) {
        const containerSpec = { ...spec(command), id: `leak-${ids.length}` };
        try {
          await local.createContainer(containerSpec);
          await local.start(containerSpec.id);
          ids.push(containerSpec.id);
        } catch {
          // the missing command must leave nothing either
        }
      }
      await local.execSync('leak-0', ['true'], 5);
      for (const id of ids) {
        await local.stop(id, 1);
        await local.remove(id);
      }
      assert.deepEqual(runcList(leakRoot), []);
      assert.deepEqual(conmonsOf(leakRoot), []);
      assert.deepEqual(childCgroups(cgroupAt(cgroupParent)).filter((name) => name.startsWith('leak-')), []);
      assert.deepEqual(mountsUnder(leakRoot), []);
      assert.deepEqual(readdirSync(join(leakRoot, 'containers')), []);
      assert.deepEqual(readdirSync(join(leakRoot, 'exits')), []);
      assert.deepEqual(readdirSync(join(leakRoot, 'sockets')), []);
    } finally {
      await local.close();
    }
  });
});

describe('RuncHandler suite cleanup', () => {
  it('leaves no runc containers, conmons or cgroups from the shared suite', () => {
    const suiteRoot = roots[0]!;
    assert.deepEqual(runcList(suiteRoot), []);
    assert.deepEqual(conmonsOf(suiteRoot), []);
    assert.deepEqual(childCgroups(cgroupAt(cgroupParent)).filter((name) => name.startsWith('suite-')), []);
  });
});
