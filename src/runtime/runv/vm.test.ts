import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { AgentCallError } from './agent-client.js';
import { PROTOCOL_VERSION } from './agent-protocol.js';
import { DEFAULT_DISK_SLOTS, DiskSlotError } from './disk-slots.js';
import { ensureGuestImages, type GuestImages } from './guest-image.js';
import { ensureGuestKernel, type GuestKernel } from './guest-kernel.js';
import { QEMU_CAPABILITIES } from './qemu-privileges.js';
import { createContainerLayer, ensureImageDisk } from './rootfs-image.js';
import { hostTscKhz } from './tsc.js';
import { MicroVm, chooseAccelerator, type Accelerator } from './vm.js';
import { runningQemus } from './qemu-testkit.js';

/**
 * The kernel and images are cached across runs in the checkout's `.cache/runv` (the first run downloads
 * the kernel .deb from Debian's mirror), as the tests' kubectl is; each VM gets its own temp directory,
 * removed by the test.
 */
const CACHE_ROOT = process.env.ATOLL_RUNV_TEST_CACHE ?? fileURLToPath(new URL('../../../../.cache/runv', import.meta.url));

/** How far a guest clock's rate may be from the host's. */
const CLOCK_RATE_TOLERANCE = 0.01;
/** How precisely the rate is measured before it is judged: half the tolerance. */
const CLOCK_RATE_RESOLUTION = 0.005;
/** How often the guest clock is read again while the measured span grows. */
const CLOCK_RATE_STEP_MS = 1_000;
/** The longest span the rate is measured over: enough for the resolution with 400 ms round trips to the agent (a loaded host). */
const CLOCK_RATE_MAX_SPAN_MS = 90_000;

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** An image tree with one known file, for the disk tests. */
function imageTree(dir: string): string {
  mkdirSync(join(dir, 'etc'), { recursive: true });
  writeFileSync(join(dir, 'etc', 'hello'), 'hello from the image\n');
  return dir;
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
    const status = readFileSync(`/proc/${vm.pid}/status`, 'utf8');
    const field = (name: string) => new RegExp(`^${name}:\\s+(\\S+)`, 'm').exec(status)?.[1];
    const kept = Object.values(QEMU_CAPABILITIES).reduce((mask, cap) => mask | (1n << BigInt(cap)), 0n);
    assert.equal(BigInt(`0x${field('CapEff')}`), kept, 'QEMU holds only the 9p share capabilities');
    assert.equal(field('NoNewPrivs'), '1');
    assert.equal(field('Seccomp'), '2', 'QEMU runs under its seccomp filter (-sandbox on)');
    assert.equal(field('THP_enabled'), accel === 'tcg' ? '0' : '1');
  });

  it("runs 'uname -r' in the guest: the guest kernel, not the host's", async () => {
    const began = Date.now();
    const out = await vm!.agent.exec(['uname', '-r']);
    console.log(`runv: exec round trip ${Date.now() - began} ms`);
    assert.equal(out.exitCode, 0, out.stderr.toString());
    assert.equal(out.stdout.toString().trim(), kernel.release);
    assert.notEqual(out.stdout.toString().trim(), release());
  });

  it("keeps the guest's CLOCK_MONOTONIC at the host's rate (TCG: the kernel is told the host's TSC rate)", async () => {
    if (accel === 'tcg') {
      const cmdline = (await vm!.agent.exec(['cat', '/proc/cmdline'])).stdout.toString();
      assert.match(cmdline, new RegExp(`\\btsc_early_khz=${hostTscKhz()}\\b`));
    }
    /** The guest's CLOCK_MONOTONIC in ms, read between the host's `sent` and `received` (performance.now()). */
    const sample = async () => {
      const sent = performance.now();
      const out = await vm!.agent.exec(['head', '-n', '3', '/proc/timer_list']);
      const received = performance.now();
      const ns = /^now at (\d+) nsecs$/m.exec(out.stdout.toString())?.[1];
      assert.ok(ns, `no 'now at' in the guest's /proc/timer_list: ${out.stdout.toString()} ${out.stderr.toString()}`);
      return { guestMs: Number(BigInt(ns) / 1000n) / 1000, hostMs: (sent + received) / 2, errorMs: (received - sent) / 2 };
    };
    // The guest read lies within its round trip, so each reading is uncertain by half of that: the
    // span grows until the rate's uncertainty is well inside the tolerance, on a host loaded or not.
    const first = await sample();
    const deadline = Date.now() + CLOCK_RATE_MAX_SPAN_MS;
    let rate: number;
    let uncertainty: number;
    do {
      await sleep(CLOCK_RATE_STEP_MS);
      const last = await sample();
      const hostSpan = last.hostMs - first.hostMs;
      rate = (last.guestMs - first.guestMs) / hostSpan;
      uncertainty = (first.errorMs + last.errorMs) / hostSpan;
    } while (uncertainty > CLOCK_RATE_RESOLUTION && Date.now() < deadline);
    console.log(`runv: ${accel} guest CLOCK_MONOTONIC rate ${rate.toFixed(4)} x the host's (±${uncertainty.toFixed(4)})`);
    assert.ok(uncertainty <= CLOCK_RATE_RESOLUTION, `guest clock readings too uncertain (±${uncertainty.toFixed(4)}) within ${CLOCK_RATE_MAX_SPAN_MS} ms: round trips to the agent too long`);
    assert.ok(Math.abs(rate - 1) <= CLOCK_RATE_TOLERANCE, `the guest clock runs at ${rate.toFixed(4)} x the host's, more than ${CLOCK_RATE_TOLERANCE * 100}% off`);
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
    const before = runningQemus();
    await assert.rejects(MicroVm.boot({ dir, kernel, images, accel, bootTimeoutMs: 200 }), /did not boot \((kvm|tcg)\): .*within 200 ms/);
    assert.ok(!existsSync(dir), `${dir} still exists`);
    assert.deepEqual(runningQemus(), before);
  });

  it('boots with empty disk slots the guest finds by serial', async () => {
    const out = await vm!.agent.exec(['sh', '-c', 'for f in /sys/block/vd*/serial; do cat "$f"; echo; done']);
    const serials = out.stdout.toString().split('\n').filter((line) => line.startsWith('atoll-disk'));
    assert.equal(serials.length, DEFAULT_DISK_SLOTS.writable + DEFAULT_DISK_SLOTS.readonly);
    assert.deepEqual(vm!.attachedDisks(), []);
  });

  it('attaches a container layer over an image disk: mount, read, write, detach; the image disk is unchanged', async () => {
    const base = await ensureImageDisk(join(scratch, 'root'), `sha256:${'aa'.repeat(32)}`, imageTree(join(scratch, 'tree')));
    const baseDigest = sha256(base);
    const layer = join(scratch, 'c1.qcow2');
    await createContainerLayer(base, layer);
    const sh = async (script: string) => {
      const out = await vm!.agent.exec(['sh', '-c', script]);
      assert.equal(out.exitCode, 0, `${script}: ${out.stderr.toString()}`);
      return out.stdout.toString();
    };

    const began = Date.now();
    const disk = await vm!.attachDisk(layer, { format: 'qcow2' });
    const attachMs = Date.now() - began;
    assert.equal(await sh(`mkdir -p /mnt/c1 && mount -t ext4 ${disk.device} /mnt/c1 && cat /mnt/c1/etc/hello`), 'hello from the image\n');
    console.log(`runv: ${accel} disk attach ${attachMs} ms, attach to mounted and read ${Date.now() - began} ms`);
    assert.equal(disk.serial, `atoll-disk${disk.slot}`);
    assert.equal(await sh(`cat /sys/block/${disk.device.slice(5)}/serial`), disk.serial);
    assert.equal(Number(await sh(`blockdev --getsize64 ${disk.device}`)), disk.sizeBytes);
    assert.deepEqual(vm!.attachedDisks(), [disk]);
    await sh('echo written in the guest > /mnt/c1/etc/new && sync');

    await assert.rejects(vm!.detachDisk(disk.slot), (err: unknown) => err instanceof DiskSlotError && err.code === 'Busy' && /still mounted in the guest/.test(err.message));
    await sh('umount /mnt/c1');
    const detachBegan = Date.now();
    await vm!.detachDisk(disk.slot);
    console.log(`runv: ${accel} disk detach ${Date.now() - detachBegan} ms`);
    assert.deepEqual(vm!.attachedDisks(), []);
    assert.equal(sha256(base), baseDigest);

    // The write lives in the layer: attached again, the guest reads it back.
    const again = await vm!.attachDisk(layer, { format: 'qcow2' });
    assert.equal(await sh(`mount -t ext4 ${again.device} /mnt/c1 && cat /mnt/c1/etc/new && umount /mnt/c1`), 'written in the guest\n');
    await vm!.detachDisk(again.slot);
  });

  it('attaches a disk read-only: the guest reads it and cannot write it', async () => {
    const base = await ensureImageDisk(join(scratch, 'root'), `sha256:${'aa'.repeat(32)}`, join(scratch, 'tree'));
    const baseDigest = sha256(base);
    const disk = await vm!.attachDisk(base, { format: 'raw', readonly: true });
    assert.equal(disk.readonly, true);
    const out = await vm!.agent.exec(['sh', '-c', `mkdir -p /mnt/ro && mount -t ext4 -o ro ${disk.device} /mnt/ro && cat /mnt/ro/etc/hello; umount /mnt/ro; dd if=/dev/zero of=${disk.device} bs=4096 count=1 conv=fsync`]);
    assert.equal(out.stdout.toString(), 'hello from the image\n');
    assert.notEqual(out.exitCode, 0, 'a write to the read-only device succeeded');
    await vm!.detachDisk(disk.slot);
    assert.equal(sha256(base), baseDigest);
  });

  it('refuses bad disks, unknown slots and a full set of slots with precise errors', async () => {
    const isCode = (code: string, pattern: RegExp) => (err: unknown) => err instanceof DiskSlotError && err.code === code && pattern.test(err.message);
    await assert.rejects(vm!.attachDisk('relative.img', { format: 'raw' }), isCode('BadDisk', /must be absolute, got 'relative.img'/));
    await assert.rejects(vm!.attachDisk(join(scratch, 'absent.img'), { format: 'raw' }), isCode('BadDisk', /absent.img is not a regular file/));
    await assert.rejects(vm!.detachDisk(3), isCode('NotAttached', /no disk is attached to slot 3/));
    const raw = (name: string) => {
      const path = join(scratch, name);
      writeFileSync(path, '');
      truncateSync(path, 1024 * 1024);
      return path;
    };
    const disks = [];
    for (let i = 0; i < DEFAULT_DISK_SLOTS.readonly; i++) disks.push(await vm!.attachDisk(raw(`ro${i}.img`), { format: 'raw', readonly: true }));
    await assert.rejects(vm!.attachDisk(disks[0]!.file, { format: 'raw', readonly: true }), isCode('Busy', /already attached/));
    await assert.rejects(vm!.attachDisk(raw('one-too-many.img'), { format: 'raw', readonly: true }), isCode('NoFreeSlot', new RegExp(`no free read-only disk slot: all ${DEFAULT_DISK_SLOTS.readonly} are in use`)));
    for (const disk of disks) await vm!.detachDisk(disk.slot);
    assert.deepEqual(vm!.attachedDisks(), []);
  });

  it('stops the VM leaving no qemu process, socket or directory', async () => {
    const pid = vm!.pid;
    assert.ok(runningQemus().includes(pid));
    await vm!.stop();
    vm = undefined;
    assert.ok(!runningQemus().includes(pid), `qemu ${pid} still running`);
    assert.ok(!existsSync(vmDir), `${vmDir} still exists`);
  });
});

/**
 * A runtime that dies leaves its VMs running; the next one adopts them. The VM here is booted by a
 * child Node process that is then killed with SIGKILL, as a runtime would be.
 */
describe('runv microVM adoption after the runtime is killed', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'atoll-runv-adopt-'));
  const vmDir = join(scratch, 'vm');
  let adopted: MicroVm | undefined;

  after(async () => {
    if (adopted) await adopted.stop();
    else await MicroVm.destroy(vmDir);
    rmSync(scratch, { recursive: true, force: true });
  });

  it('adopts a VM whose runtime was killed: agent, attached disks and stop all work', async () => {
    const kernel = await ensureGuestKernel(CACHE_ROOT);
    const images = await ensureGuestImages(CACHE_ROOT, kernel);
    const { accel } = await chooseAccelerator(CACHE_ROOT, kernel, images);
    const base = await ensureImageDisk(join(scratch, 'root'), `sha256:${'bb'.repeat(32)}`, imageTree(join(scratch, 'tree')));
    const layer = join(scratch, 'c1.qcow2');
    await createContainerLayer(base, layer);

    const vmModule = new URL('./vm.js', import.meta.url).href;
    const runtime = spawn(process.execPath, ['--input-type=module', '-e', `
      const { MicroVm } = await import(${JSON.stringify(vmModule)});
      const input = JSON.parse(process.env.ATOLL_TEST_VM);
      const vm = await MicroVm.boot({ dir: input.dir, kernel: input.kernel, images: input.images, accel: input.accel });
      const disk = await vm.attachDisk(input.layer, { format: 'qcow2' });
      console.log(JSON.stringify({ pid: vm.pid, disk }));
      setInterval(() => undefined, 60_000);
    `], { env: { ...process.env, ATOLL_TEST_VM: JSON.stringify({ dir: vmDir, kernel, images, accel, layer }) }, stdio: ['ignore', 'pipe', 'inherit'] });
    const runtimeExited = new Promise((resolve) => runtime.once('exit', resolve));
    const firstLine = await new Promise<string>((resolve, reject) => {
      createInterface({ input: runtime.stdout! }).once('line', resolve);
      runtime.once('exit', (code) => reject(new Error(`the runtime child exited (${code}) before its VM was up`)));
    });
    const { pid, disk } = JSON.parse(firstLine) as { pid: number; disk: { slot: number; device: string } };
    runtime.kill('SIGKILL');
    await runtimeExited;
    assert.ok(runningQemus().includes(pid), 'the VM died with its runtime');

    adopted = await MicroVm.adopt(vmDir);
    assert.equal(adopted.pid, pid);
    assert.equal(adopted.bootMs, null);
    assert.equal(adopted.hello.kernelRelease, kernel.release);
    assert.deepEqual(adopted.attachedDisks().map((d) => ({ slot: d.slot, device: d.device, file: d.file, format: d.format })), [{ slot: disk.slot, device: disk.device, file: layer, format: 'qcow2' }]);
    const out = await adopted.agent.exec(['sh', '-c', `mkdir -p /mnt/c1 && mount -t ext4 ${disk.device} /mnt/c1 && cat /mnt/c1/etc/hello && umount /mnt/c1`]);
    assert.equal(out.stdout.toString(), 'hello from the image\n', out.stderr.toString());
    await adopted.detachDisk(disk.slot);

    // A released VM keeps running and can be adopted again.
    adopted.release();
    adopted = await MicroVm.adopt(vmDir);
    assert.equal((await adopted.agent.exec(['true'])).exitCode, 0);

    await adopted.stop();
    adopted = undefined;
    assert.ok(!runningQemus().includes(pid), `qemu ${pid} still running`);
    assert.ok(!existsSync(vmDir), `${vmDir} still exists`);
  });

  it('refuses to adopt a directory whose pid file names another process', async () => {
    const dir = join(scratch, 'impostor');
    mkdirSync(dir);
    writeFileSync(join(dir, 'qemu.pid'), `${process.pid}\n`);
    await assert.rejects(MicroVm.adopt(dir), new RegExp(`pid ${process.pid} from .*qemu.pid is not this VM's QEMU`));
    await MicroVm.destroy(dir);
    assert.ok(!existsSync(dir));
    await assert.rejects(MicroVm.adopt(join(scratch, 'absent')), /no running VM in .*absent: cannot read .*qemu.pid: ENOENT/);
  });
});
