import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { AgentCallError } from './agent-client.js';
import { PROTOCOL_VERSION } from './agent-protocol.js';
import { ensureGuestImages, type GuestImages } from './guest-image.js';
import { ensureGuestKernel, type GuestKernel } from './guest-kernel.js';
import { MicroVm, chooseAccelerator, type Accelerator } from './vm.js';

/**
 * The kernel and images are cached across runs in the checkout's `.cache/runv` (the first run downloads
 * the kernel .deb from Debian's mirror), as the tests' kubectl is; each VM gets its own temp directory,
 * removed by the test.
 */
const CACHE_ROOT = process.env.ATOLL_RUNV_TEST_CACHE ?? fileURLToPath(new URL('../../../../.cache/runv', import.meta.url));

function qemuPids(): number[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('qemu-system');
    } catch {
      return false;
    }
  });
}

describe('runv microVM with the guest agent', () => {
  let kernel: GuestKernel;
  let images: GuestImages;
  let accel: Accelerator;
  let vm: MicroVm | undefined;
  const scratch = mkdtempSync(join(tmpdir(), 'atoll-runv-vm-'));
  const vmDir = join(scratch, 'vm');

  before(async () => {
    kernel = await ensureGuestKernel(CACHE_ROOT, { onProgress: (line) => console.log(line) });
    images = await ensureGuestImages(CACHE_ROOT, kernel, { onProgress: (line) => console.log(line) });
    const choice = await chooseAccelerator(CACHE_ROOT, kernel, images);
    accel = choice.accel;
    console.log(`runv: accelerator ${choice.accel} (${choice.reason})`);
  });
  after(async () => {
    await vm?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('caches the guest kernel: a second call reuses it', async () => {
    const again = await ensureGuestKernel(CACHE_ROOT);
    assert.deepEqual(again, kernel);
    assert.ok(existsSync(kernel.vmlinuz));
    assert.ok(kernel.modules.some((m) => m.endsWith('/virtio_console.ko')));
    assert.deepEqual(await ensureGuestImages(CACHE_ROOT, kernel), images);
  });

  it('boots and the agent answers hello with the protocol version', async () => {
    vm = await MicroVm.boot({ dir: vmDir, kernel, images, accel });
    console.log(`runv: ${accel} cold boot to first agent reply: ${vm.bootMs} ms`);
    assert.equal(vm.hello.version, PROTOCOL_VERSION);
    assert.equal(vm.hello.kernelRelease, kernel.release);
  });

  it("runs 'uname -r' in the guest: the guest kernel, not the host's", async () => {
    const began = Date.now();
    const out = await vm!.agent.exec(['uname', '-r']);
    console.log(`runv: exec round trip ${Date.now() - began} ms`);
    assert.equal(out.exitCode, 0, out.stderr.toString());
    assert.equal(out.stdout.toString().trim(), kernel.release);
    assert.notEqual(out.stdout.toString().trim(), release());
  });

  it('passes env and reports exit codes and stderr', async () => {
    const out = await vm!.agent.exec(['sh', '-c', 'echo "$GREETING" >&2; exit 7'], { env: ['GREETING=hi there'] });
    assert.equal(out.exitCode, 7);
    assert.equal(out.stderr.toString(), 'hi there\n');
  });

  it('fails exec of a missing binary at once with CommandNotFound', async () => {
    await assert.rejects(vm!.agent.exec(['/no/such/binary'], { timeoutMs: 5_000 }), (err: unknown) => {
      assert.ok(err instanceof AgentCallError);
      assert.equal(err.code, 'CommandNotFound');
      assert.match(err.message, /\/no\/such\/binary: executable file not found/);
      return true;
    });
  });

  it('starts, signals and waits for a background process', async () => {
    const pid = await vm!.agent.start(['sleep', '1000']);
    assert.ok(pid > 1);
    await vm!.agent.signal(pid, 'SIGTERM');
    assert.deepEqual(await vm!.agent.wait(pid), { exitCode: 128, signal: 'SIGTERM' });
    await assert.rejects(vm!.agent.wait(pid), (err: unknown) => err instanceof AgentCallError && err.code === 'NoSuchProcess');
  });

  it('fails a boot that misses its deadline with a precise error and leaves nothing behind', async () => {
    const dir = join(scratch, 'too-slow');
    const before = qemuPids();
    await assert.rejects(MicroVm.boot({ dir, kernel, images, accel, bootTimeoutMs: 200 }), /did not boot \((kvm|tcg)\): .*within 200 ms/);
    assert.ok(!existsSync(dir), `${dir} still exists`);
    assert.deepEqual(qemuPids(), before);
  });

  it('stops the VM leaving no qemu process, socket or directory', async () => {
    const pid = vm!.pid;
    assert.ok(qemuPids().includes(pid));
    await vm!.stop();
    vm = undefined;
    assert.ok(!qemuPids().includes(pid), `qemu ${pid} still running`);
    assert.ok(!existsSync(vmDir), `${vmDir} still exists`);
  });
});
