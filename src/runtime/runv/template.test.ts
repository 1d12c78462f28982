import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { createNamespaces, execInNetns, removeNamespaces, unmountNamespaceDirs, type SandboxNamespaces } from '../sandbox/namespaces.js';
import { DEFAULT_DISK_SLOTS } from './disk-slots.js';
import { ensureGuestImages, type GuestImages } from './guest-image.js';
import { ensureGuestKernel, type GuestKernel } from './guest-kernel.js';
import { TEMPLATE_MAC, TemplateCache, TemplateError, type TemplateShape, type VmTemplate } from './template.js';
import { CLOCK_TOLERANCE_MS, CLONE_TB_SIZE_MIB, DEFAULT_MEMORY_MIB, MicroVm, chooseAccelerator, type Accelerator } from './vm.js';

/**
 * Templates are built under a temporary runtime root whose kernel and images are the checkout's
 * cached ones (`.cache/runv`, as in vm.test.ts), linked in, so that `atoll runtime template build
 * --root` finds them too. Clones get their NICs from taps in a network namespace the test creates.
 * Figures are printed, not asserted: this is a shared 2-core machine.
 */
const CACHE_ROOT = process.env.ATOLL_RUNV_TEST_CACHE ?? fileURLToPath(new URL('../../../../.cache/runv', import.meta.url));
const ATOLL = fileURLToPath(new URL('../../../../bin/atoll', import.meta.url));
const SHARE_TAG = 'atoll-share';
/**
 * The clones' TCG code cache sizes to measure, in MiB (ATOLL_RUNV_TB_SIZES=8,16,32,64 compares them);
 * the default is what restore() uses.
 */
const TB_SIZES = (process.env.ATOLL_RUNV_TB_SIZES ?? String(CLONE_TB_SIZE_MIB)).split(',').map(Number);
/** Restores timed for the p50. */
const TIMED_RESTORES = 10;
/** Clones running at once for the memory figure. */
const CLONES_AT_ONCE = 4;
/** How long clones run before their memory is read: their first answers touch what an idle clone keeps. */
const SETTLE_MS = 3_000;
const CLI_TIMEOUT_MS = 10 * 60_000;
const GUEST_NET = { host: '10.199.0.1', guest: '10.199.0.2', prefix: 24 };

interface Pss { pss: number; anon: number; file: number; shmem: number }

/** A process's proportional set size, smem-style, from /proc/<pid>/smaps_rollup, in MiB. */
function pssOf(pid: number): Pss {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text)?.[1] ?? NaN) / 1024;
  return { pss: kib('Pss'), anon: kib('Pss_Anon'), file: kib('Pss_File'), shmem: kib('Pss_Shmem') };
}

const fmt = (mib: number) => `${mib.toFixed(1)} MiB`;
const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))]!;

function atoll(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ATOLL, ...args], { timeout: CLI_TIMEOUT_MS }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('runv VM templates', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'atoll-runv-template-'));
  const root = join(scratch, 'root');
  const runDir = join(scratch, 'run');
  const logs: string[] = [];
  const running = new Set<MicroVm>();
  let kernel: GuestKernel;
  let images: GuestImages;
  let accel: Accelerator;
  let templates: TemplateCache;
  let shape: TemplateShape;
  let template: VmTemplate;
  let ns: SandboxNamespaces | undefined;
  let clones = 0;
  /** Taps in the test netns, one per clone that may run at once. */
  const taps = Array.from({ length: CLONES_AT_ONCE }, (_, i) => `tap${i}`);

  /** A clone's own options: a tap of the test netns, its MAC, an empty share directory. */
  function cloneOptions(tap = taps[0]!): { dir: string; netns: string; nic: { tap: string; mac: string }; share: { dir: string; tag: string } } {
    const n = ++clones;
    const share = join(scratch, `share-${n}`);
    mkdirSync(share, { recursive: true });
    return { dir: join(scratch, `clone-${n}`), netns: ns!.net, nic: { tap, mac: `02:42:0a:c7:00:${(n % 256).toString(16).padStart(2, '0')}` }, share: { dir: share, tag: SHARE_TAG } };
  }

  async function stop(vm: MicroVm): Promise<void> {
    await vm.stop();
    running.delete(vm);
  }

  async function sh(vm: MicroVm, script: string): Promise<string> {
    const out = await vm.agent.exec(['sh', '-c', script]);
    assert.equal(out.exitCode, 0, `${script}: ${out.stderr.toString()}`);
    return out.stdout.toString().trim();
  }

  before(async () => {
    mkdirSync(join(root, 'runv'), { recursive: true });
    symlinkSync(join(CACHE_ROOT, 'runv', 'kernel'), join(root, 'runv', 'kernel'));
    symlinkSync(join(CACHE_ROOT, 'runv', 'images'), join(root, 'runv', 'images'));
    kernel = await ensureGuestKernel(root, { onProgress: (line) => console.log(line) });
    images = await ensureGuestImages(root, kernel, { onProgress: (line) => console.log(line) });
    const choice = await chooseAccelerator(CACHE_ROOT, kernel, images);
    copyFileSync(join(CACHE_ROOT, 'runv', 'accel.json'), join(root, 'runv', 'accel.json'));
    accel = choice.accel;
    console.log(`runv template: accelerator ${accel} (${choice.reason})`);
    templates = new TemplateCache(root, { log: (line) => logs.push(line) });
    shape = { kernel, images, accel, memoryMiB: DEFAULT_MEMORY_MIB, diskSlots: DEFAULT_DISK_SLOTS, nic: true, shareTag: SHARE_TAG };
    ns = await createNamespaces(runDir, `tpl-${randomBytes(4).toString('hex')}`, { hostname: 'tpl' });
    for (const tap of taps) {
      await execInNetns(ns.net, ['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap', 'vnet_hdr']);
      await execInNetns(ns.net, ['ip', 'link', 'set', tap, 'up']);
    }
  });

  after(async () => {
    for (const vm of running) await vm.stop().catch(() => undefined);
    await templates?.close();
    await templates?.removeAll();
    if (ns) await removeNamespaces(runDir, ns.id);
    await unmountNamespaceDirs(runDir).catch(() => undefined);
    const shmDir = templates?.shmDir;
    rmSync(scratch, { recursive: true, force: true });
    assert.ok(!shmDir || !existsSync(shmDir), `${shmDir} is left in /dev/shm`);
  });

  it('builds one template for concurrent callers, atomically, and finds it afterwards', async () => {
    const steps: string[] = [];
    const onProgress = (step: string) => steps.push(step);
    const [a, b] = await Promise.all([templates.ensure(shape, { onProgress }), templates.ensure(shape, { onProgress })]);
    assert.equal(a.template.key, b.template.key);
    assert.equal(steps.filter((s) => s.startsWith('booting the template VM')).length, 1, steps.join('\n'));
    template = a.template;
    console.log(`runv template: ${accel} template ${template.key} built in ${template.buildMs} ms; device state ${template.stateBytes} bytes; steps: ${steps.join(' | ')}`);
    assert.deepEqual(readdirSync(templates.dir), [template.key], 'no build directory is left');
    assert.deepEqual(readdirSync(template.dir).sort(), ['share', 'state.bin', 'template.json']);
    assert.equal(statSync(template.memoryFile).size, DEFAULT_MEMORY_MIB * 1024 * 1024);
    assert.ok(template.memoryFile.startsWith(`${templates.shmDir}/`));
    assert.ok(template.stateBytes < 1024 * 1024, `device state of ${template.stateBytes} bytes: guest RAM leaked into it`);
    assert.equal(template.nicMac, TEMPLATE_MAC);

    const again = await templates.ensure(shape);
    assert.equal(again.built, false);
    assert.deepEqual(again.template, template);
  });

  it('refuses bad memory sizes and clones whose devices differ from the template, leaving nothing', async () => {
    await assert.rejects(templates.ensure({ ...shape, memoryMiB: 64 }), (err: unknown) => err instanceof TemplateError && /whole number of MiB from 128 to 32768, got 64/.test(err.message));
    const { dir, share } = cloneOptions();
    await assert.rejects(MicroVm.restore(template, { dir, share }), /cannot restore into .*: the saved VM has a NIC, so its clone needs one/);
    const noShare = cloneOptions();
    await assert.rejects(MicroVm.restore(template, { dir: noShare.dir, netns: noShare.netns, nic: noShare.nic }), /has a 9p share tagged atoll-share, so its clone needs one with that tag/);
    assert.ok(!existsSync(dir) && !existsSync(noShare.dir));
  });

  it('restores a clone with the host clock, its hostname, MAC and network, and a NIC on the pod tap', async () => {
    const options = cloneOptions();
    const network = {
      name: 'eth0', mtu: 1400, addresses: [`${GUEST_NET.guest}/${GUEST_NET.prefix}`, '10.198.0.2/16'],
      routes: [{ dest: 'default', gateway: GUEST_NET.host }, { dest: '10.252.0.0/16', gateway: '10.198.0.1' }, { dest: '10.251.0.7/32' }],
    };
    const vm = await MicroVm.restore(template, { ...options, hostname: 'clone-one', network });
    running.add(vm);
    // The guest's clock read by the agent (stats' timestamp) lies between the host's before and after.
    const asked = Date.now();
    const { timestamp } = await vm.agent.call('stats', {});
    const answered = Date.now();
    const timings = vm.restoreTimings!;
    console.log(`runv template: clone loaded at ${timings.loadedMs} ms, first answer ${timings.firstAnswerMs} ms, ready ${timings.readyMs} ms; ` +
      `guest clock read ${timestamp - asked} ms after the host asked, ${answered - timestamp} ms before it had the answer`);
    assert.ok(timestamp >= asked - CLOCK_TOLERANCE_MS && timestamp <= answered + CLOCK_TOLERANCE_MS,
      `guest clock ${timestamp} is not within ${CLOCK_TOLERANCE_MS} ms of the host's [${asked}, ${answered}]`);
    assert.equal(vm.bootMs, timings.firstAnswerMs);
    assert.equal(vm.hello.kernelRelease, kernel.release);
    assert.equal(await sh(vm, 'hostname'), 'clone-one');
    assert.equal(await sh(vm, 'cat /sys/class/net/eth0/address'), options.nic.mac);
    assert.deepEqual(vm.attachedDisks(), []);
    const guestNetwork = async () => ({
      addresses: [...(await sh(vm, 'ip -4 addr show dev eth0')).matchAll(/inet (\S+)/g)].map((m) => m[1]),
      routes: (await sh(vm, 'ip -4 route')).split('\n').map((line) => line.trim()).sort(),
      mtu: await sh(vm, 'cat /sys/class/net/eth0/mtu'),
      up: (Number(await sh(vm, 'cat /sys/class/net/eth0/flags')) & 1) === 1,
    });
    const configured = {
      addresses: network.addresses, mtu: '1400', up: true,
      routes: [
        '10.198.0.0/16 dev eth0 scope link  src 10.198.0.2', '10.199.0.0/24 dev eth0 scope link  src 10.199.0.2',
        '10.251.0.7 dev eth0 scope link', '10.252.0.0/16 via 10.198.0.1 dev eth0', 'default via 10.199.0.1 dev eth0',
      ],
    };
    assert.deepEqual(await guestNetwork(), configured);

    // identity checks all of its arguments before it changes anything, and a retried MAC change succeeds.
    const seed = randomBytes(32).toString('base64');
    await assert.rejects(vm.agent.call('identity', { epochMs: Date.now(), seed: randomBytes(16).toString('base64') }), /'seed' must carry at least 32 bytes once decoded, got 16/);
    await assert.rejects(vm.agent.call('identity', { epochMs: Date.now(), seed, mac: { from: 'eth0', to: options.nic.mac } }), /'mac.from' must look like 52:54:00:12:34:56, got "eth0"/);
    await assert.rejects(vm.agent.call('identity', { epochMs: Date.now(), seed, hostname: 'Not_A_Hostname' }), /'hostname' must be lowercase RFC 1123 labels/);
    await assert.rejects(vm.agent.call('identity', { epochMs: Date.now(), seed, mac: { from: '02:00:00:00:00:99', to: '02:00:00:00:00:98' } }), /no guest interface has MAC 02:00:00:00:00:99 \(or already 02:00:00:00:00:98\)/);
    assert.equal(await sh(vm, 'hostname'), 'clone-one');
    await assert.rejects(vm.agent.call('identity', { epochMs: Date.now(), seed, network: { mac: options.nic.mac, addresses: ['10.0.0.1'] } }), /'network.addresses\[0\]' must be an address with a prefix length/);
    await assert.rejects(vm.agent.call('identity', { epochMs: Date.now(), seed, network: { mac: options.nic.mac, addresses: [], up: false, routes: [{ dest: 'default', gateway: '10.0.0.1' }] } }), /'network.routes' need the NIC up/);
    await assert.rejects(vm.agent.call('identity', { epochMs: Date.now(), seed, network: { mac: options.nic.mac, addresses: [], routes: [{ dest: '10.0.0.0/8', gateway: 'fd00::1' }] } }), /'network.routes\[0\].gateway' fd00::1 is not IPv4/);
    assert.equal(await sh(vm, 'hostname'), 'clone-one');
    assert.deepEqual(await guestNetwork(), configured);
    const again = await vm.agent.call('identity', { epochMs: Date.now(), seed, mac: { from: TEMPLATE_MAC, to: options.nic.mac }, network: { ...network, mac: options.nic.mac } });
    assert.ok(Math.abs(again.previousEpochMs - Date.now()) < 10_000, `previousEpochMs ${again.previousEpochMs}`);
    assert.equal(again.interface, 'eth0');
    assert.equal(await sh(vm, 'cat /sys/class/net/eth0/address'), options.nic.mac);
    assert.deepEqual(await guestNetwork(), configured, 'the same identity again changes nothing');
    // Exactly the addresses asked for: all go and the one asked for comes back, so the routes go too
    // (the kernel drops a NIC's routes with its last address) but the one asked for.
    await vm.agent.call('identity', { epochMs: Date.now(), seed, network: { mac: options.nic.mac, addresses: [`${GUEST_NET.guest}/${GUEST_NET.prefix}`], routes: [{ dest: 'default', gateway: GUEST_NET.host }] } });
    assert.deepEqual(await guestNetwork(), {
      addresses: [`${GUEST_NET.guest}/${GUEST_NET.prefix}`], mtu: '1400', up: true,
      routes: ['10.199.0.0/24 dev eth0 scope link  src 10.199.0.2', 'default via 10.199.0.1 dev eth0'],
    });

    // The NIC's backend is now the pod's tap: the guest answers on it.
    await execInNetns(ns!.net, ['ip', 'addr', 'add', `${GUEST_NET.host}/${GUEST_NET.prefix}`, 'dev', options.nic.tap]);
    try {
      await execInNetns(ns!.net, ['/usr/bin/busybox', 'ping', '-c', '1', '-W', '5', GUEST_NET.guest]);
    } finally {
      await execInNetns(ns!.net, ['ip', 'addr', 'flush', 'dev', options.nic.tap]);
    }

    // The share is the clone's own directory.
    await vm.agent.call('mount', { source: SHARE_TAG, fstype: '9p', options: ['trans=virtio', 'version=9p2000.L'], target: '/mnt/share' });
    await sh(vm, 'echo from-the-guest > /mnt/share/marker');
    assert.equal(readFileSync(join(options.share.dir, 'marker'), 'utf8'), 'from-the-guest\n');
    await stop(vm);
    assert.ok(!existsSync(options.dir));
  });

  for (const tbSizeMiB of TB_SIZES) {
    it(`restores ${TIMED_RESTORES} clones one after another, TCG cache ${tbSizeMiB} MiB: restore to first answer p50`, async () => {
      const firstAnswer: number[] = [];
      const ready: number[] = [];
      const firstExec: number[] = [];
      for (let i = 0; i < TIMED_RESTORES; i++) {
        const vm = await MicroVm.restore(template, { ...cloneOptions(), tbSizeMiB });
        running.add(vm);
        firstAnswer.push(vm.restoreTimings!.firstAnswerMs);
        ready.push(vm.restoreTimings!.readyMs);
        const began = Date.now();
        assert.equal((await vm.agent.exec(['true'])).exitCode, 0);
        firstExec.push(Date.now() - began);
        await stop(vm);
      }
      const p = (values: number[]) => `p50 ${percentile(values, 0.5)} ms, p90 ${percentile(values, 0.9)} ms`;
      console.log(`runv template: ${accel}, TCG cache ${tbSizeMiB} MiB: restore to first answer ${p(firstAnswer)} (all: ${firstAnswer.join(' ')}); ` +
        `to ready (clock, RNG, MAC set) ${p(ready)}; then a guest exec ${p(firstExec)}`);
    });

    it(`measures the host memory (PSS) of 1 and ${CLONES_AT_ONCE} clones, TCG cache ${tbSizeMiB} MiB`, async () => {
      const vms: MicroVm[] = [];
      let alone = 0;
      for (let i = 0; i < CLONES_AT_ONCE; i++) {
        const vm = await MicroVm.restore(template, { ...cloneOptions(taps[i]), tbSizeMiB });
        running.add(vm);
        vms.push(vm);
        if (i === 0) {
          await sleep(SETTLE_MS);
          const one = pssOf(vm.pid);
          alone = one.pss;
          console.log(`runv template: TCG cache ${tbSizeMiB} MiB, 1 clone: PSS ${fmt(one.pss)} (anonymous ${fmt(one.anon)}, files ${fmt(one.file)}, template memory ${fmt(one.shmem)})`);
        }
      }
      await sleep(SETTLE_MS);
      const all = vms.map((vm) => pssOf(vm.pid));
      const total = all.reduce((sum, p) => sum + p.pss, 0);
      console.log(`runv template: TCG cache ${tbSizeMiB} MiB, ${CLONES_AT_ONCE} clones: PSS total ${fmt(total)}, per extra clone ${fmt((total - alone) / (CLONES_AT_ONCE - 1))}; ` +
        `per clone ${all.map((p) => fmt(p.pss)).join(', ')}; anonymous ${all.map((p) => fmt(p.anon)).join(', ')}; template memory ${all.map((p) => fmt(p.shmem)).join(', ')}`);
      for (const vm of vms) await stop(vm);
    });
  }

  it('gives each clone its own randomness: two clones read different bytes right after restore', async () => {
    const firstRandom: string[] = [];
    for (let i = 0; i < 2; i++) {
      const vm = await MicroVm.restore(template, cloneOptions());
      running.add(vm);
      firstRandom.push(await sh(vm, 'head -c 16 /dev/urandom | od -An -tx1'));
      await stop(vm);
    }
    assert.notEqual(firstRandom[0], firstRandom[1], `both clones read ${firstRandom[0]} from /dev/urandom after restore`);
  });

  it('startVm restores when a template fits, and cold boots, saying why, when none does', async () => {
    const vm = await templates.startVm({ ...cloneOptions(), kernel, images, accel });
    running.add(vm);
    assert.ok(vm.restoreTimings, 'the VM was not restored from the template');
    await stop(vm);

    logs.length = 0;
    const cold = await templates.startVm({ ...cloneOptions(), kernel, images, accel, memoryMiB: 320 });
    running.add(cold);
    console.log(`runv template: ${accel} cold boot to first answer ${cold.bootMs} ms`);
    assert.equal(cold.restoreTimings, null);
    assert.match(logs.join('\n'), /cold boot of .*: no template for 320 MiB, (tcg|kvm), 8\+2 disk slots, a NIC, share atoll-share/);
    await stop(cold);
    // The miss began a build of that shape in the background: the next such VM is restored.
    const built = await templates.ensure({ ...shape, memoryMiB: 320 });
    const warm = await templates.startVm({ ...cloneOptions(), kernel, images, accel, memoryMiB: 320 });
    running.add(warm);
    assert.ok(warm.restoreTimings, 'the 320 MiB VM was not restored from the template its miss built');
    await stop(warm);
    rmSync(built.template.dir, { recursive: true });
    rmSync(built.template.memoryFile);
  });

  it('cold boots when the agent changed, rebuilds the template in the background and drops the old one', async () => {
    const agentDisk = join(scratch, 'agent-v2.ext4');
    symlinkSync(images.agentDisk, agentDisk);
    const changed = { ...images, agentDisk };
    const old = template;
    logs.length = 0;
    const vm = await templates.startVm({ ...cloneOptions(), kernel, images: changed, accel });
    running.add(vm);
    assert.equal(vm.restoreTimings, null);
    assert.match(logs.join('\n'), /cold boot of .*: the template for 256 MiB, .* is out of date/);
    // Joins the background rebuild that startVm began.
    const rebuilt = await templates.ensure({ ...shape, images: changed });
    await stop(vm);
    assert.notEqual(rebuilt.template.key, old.key);
    assert.ok(!existsSync(old.dir), `${old.dir} was kept`);
    assert.ok(!existsSync(old.memoryFile), `${old.memoryFile} was kept`);
    assert.deepEqual(readdirSync(templates.dir), [rebuilt.template.key]);
    const lookup = await templates.find(shape);
    assert.equal(lookup.template, null);
    assert.equal(lookup.stale, true);

    // A template whose memory file went (a reboot empties /dev/shm) is not used.
    rmSync(rebuilt.template.memoryFile);
    const gone = await templates.find({ ...shape, images: changed });
    assert.equal(gone.template, null);
    assert.match(gone.reason!, /its memory file .* is gone/);
    const options = cloneOptions();
    await assert.rejects(MicroVm.restore(rebuilt.template, options), /cannot restore into .*: the saved VM's memory file .* is gone/);
    assert.ok(!existsSync(options.dir));
  });

  it('atoll runtime template build: checks its flags, builds with progress, then finds the template up to date', async () => {
    const bad = await atoll('runtime', 'template', 'build', '--root', root, '--memory', '100');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--memory 100: give a whole number of MiB from 128 to 32768, such as 256/);
    const file = join(scratch, 'a-file');
    writeFileSync(file, '');
    const badRoot = await atoll('runtime', 'template', 'build', '--root', file);
    assert.equal(badRoot.code, 2);
    assert.match(badRoot.stderr, /--root .*a-file: cannot create .*a-file\/runv \(ENOTDIR\)/);

    const built = await atoll('runtime', 'template', 'build', '--root', root);
    assert.equal(built.code, 0, built.stderr);
    assert.match(built.stdout, /atoll runtime template: booting the template VM \(256 MiB/);
    assert.match(built.stdout, /atoll runtime template: template [0-9a-f]+ \(256 MiB, (tcg|kvm)\) built in [\d.]+ s/);
    const again = await atoll('runtime', 'template', 'build', '--root', root);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /template [0-9a-f]+ \(256 MiB, (tcg|kvm)\) is up to date/);
    assert.equal((await templates.find(shape)).template?.key, /template ([0-9a-f]+)/.exec(again.stdout)![1]);
  });
});
