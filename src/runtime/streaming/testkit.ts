import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroupAt, removeCgroup } from '../cgroups.js';
import { RuncHandler } from '../runc/handler.js';
import { makeBusyboxRootfs } from '../suite.js';
import { dialInNetns } from './portforward.js';
import type { StreamingRuntime } from './runtime.js';
import { StreamingServer, type StreamingServerOptions } from './server.js';

const RUNC = '/usr/sbin/runc';

export interface TestContainer {
  command: string[];
  stdin?: boolean;
  tty?: boolean;
}

/**
 * What the streaming tests run against: busybox containers under a real RuncHandler (conmon and
 * runc), and a StreamingServer whose runtime is that handler, with each container's network
 * namespace standing in for a pod sandbox's. `stop` ends what the cases made; `cleanup` (for a
 * top-level `after`) removes whatever is left even after failed assertions: containers, conmons,
 * mounts, the cgroup and the work dir.
 */
export class StreamingTestbed {
  readonly work = mkdtempSync(join(tmpdir(), 'atoll-streaming-'));
  readonly root = join(this.work, 'state');
  readonly handler: RuncHandler;
  /** Pod sandbox ids to netns files, for portDialer. */
  readonly sandboxes = new Map<string, string>();
  private readonly rootfs = makeBusyboxRootfs(join(this.work, 'rootfs'));
  private readonly cgroupParent = `/atoll-streaming-test-${process.pid}`;
  private readonly containers: string[] = [];
  private serverInstance: StreamingServer | undefined;

  constructor() {
    mkdirSync(join(this.work, 'logs'));
    this.handler = new RuncHandler(this.root, { cgroupParent: this.cgroupParent });
  }

  get server(): StreamingServer {
    if (!this.serverInstance) throw new Error('testbed server not started');
    return this.serverInstance;
  }

  /** Creates and starts a container; with `sandbox`, its network namespace serves as that pod sandbox's. */
  async run(id: string, container: TestContainer, sandbox?: string): Promise<string> {
    this.containers.push(id);
    await this.handler.createContainer({
      id,
      sandboxId: sandbox ?? 'sandbox-stream',
      rootfs: this.rootfs,
      readonlyRootfs: true,
      command: container.command,
      stdin: container.stdin,
      tty: container.tty,
      logPath: join(this.work, 'logs', `${id}.log`),
    });
    await this.handler.start(id);
    if (sandbox) this.sandboxes.set(sandbox, `/proc/${(await this.handler.state(id)).pid}/ns/net`);
    return id;
  }

  runtime(): StreamingRuntime {
    return {
      exec: (id, cmd, options) => this.handler.exec(id, cmd, options),
      attach: (id, options) => this.handler.attach(id, options),
      portDialer: async (id) => {
        const netns = this.sandboxes.get(id);
        if (!netns) throw new Error(`pod sandbox ${id} not found`);
        return (port) => dialInNetns(netns, port);
      },
    };
  }

  async start(options: StreamingServerOptions = {}): Promise<StreamingServer> {
    this.serverInstance = new StreamingServer(this.runtime(), options);
    await this.serverInstance.start({ address: '127.0.0.1', port: 0 });
    return this.serverInstance;
  }

  async stop(): Promise<void> {
    await this.serverInstance?.close();
    for (const id of this.containers) {
      await this.handler.stop(id, 0).catch(() => undefined);
      await this.handler.remove(id).catch(() => undefined);
    }
    await this.handler.close();
  }

  cleanup(): void {
    const runcRoot = join(this.root, 'runc');
    if (existsSync(runcRoot)) {
      const text = execFileSync(RUNC, ['--root', runcRoot, 'list', '--format', 'json'], { encoding: 'utf8' }).trim();
      const list = text === '' || text === 'null' ? [] : (JSON.parse(text) as { id: string }[]);
      for (const container of list) execFileSync(RUNC, ['--root', runcRoot, 'delete', '--force', container.id]);
    }
    for (const pid of conmonsOf(this.root)) process.kill(pid, 'SIGKILL');
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((line) => line.split(' ')[4] ?? '');
    for (const mountPoint of mounts.filter((m) => m.startsWith(this.work)).reverse()) execFileSync('umount', ['-l', mountPoint]);
    removeCgroup(cgroupAt(this.cgroupParent));
    rmSync(this.work, { recursive: true, force: true });
  }
}

function conmonsOf(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmdline[0]?.endsWith('conmon') && cmdline.some((arg) => arg.startsWith(dir))) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Polls `check` until it holds, at most `attempts` times `intervalMs` apart; false if it never did. */
export async function eventually(check: () => boolean, attempts = 100, intervalMs = 100): Promise<boolean> {
  for (let i = 0; i < attempts; i++) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return check();
}
