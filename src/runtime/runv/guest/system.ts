import { readFile, readdir, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BlockCounters, InterfaceCounters, SetTimeResult } from '../agent-protocol.js';
import { run } from './processes.js';
import { base64, integer } from './validate.js';

/** The most random bytes one `reseedRandom` mixes in (the kernel's input pool is 512 bytes). */
const MAX_SEED_BYTES = 4096;
const SECTOR_BYTES = 512;
/** Interfaces whose counters a pod's network stats come from. */
const POD_INTERFACE = /^eth\d+$/;

/**
 * Steps the guest clock to `epochMs` (a template clone wakes with the template's time). Node cannot
 * call settimeofday, and `date -s` takes whole seconds, so the step is made at the next second
 * boundary of the wanted clock; what is left is the time `date` takes to start.
 */
export async function setTime(args: Record<string, unknown>): Promise<SetTimeResult> {
  const epochMs = integer(args.epochMs, 'epochMs', 0);
  const received = performance.now();
  const previousEpochMs = Date.now();
  const toBoundary = (1000 - (epochMs % 1000)) % 1000;
  await sleep(toBoundary);
  const second = Math.round((epochMs + performance.now() - received) / 1000);
  await run(['date', '-u', '-s', `@${second}`]);
  return { previousEpochMs };
}

/**
 * Mixes host-supplied random bytes into the kernel's input pool, so clones of one template stop
 * sharing a random state. Writing to /dev/urandom mixes without crediting entropy (crediting, and an
 * immediate reseed, need the RNDADDENTROPY/RNDRESEEDCRNG ioctls, which Node cannot issue); the
 * virtio-rng device keeps feeding fresh host entropy, with credit, from there on.
 */
export async function reseedRandom(args: Record<string, unknown>): Promise<Record<string, never>> {
  await writeFile('/dev/urandom', base64(args.bytes, 'bytes', MAX_SEED_BYTES));
  return {};
}

/** Counters of the pod's interfaces (eth*), from /proc/net/dev. */
export async function networkCounters(): Promise<InterfaceCounters[]> {
  const lines = (await readFile('/proc/net/dev', 'utf8')).split('\n').slice(2);
  const counters: InterfaceCounters[] = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (!POD_INTERFACE.test(name)) continue;
    const f = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    counters.push({
      name,
      rxBytes: f[0]!, rxPackets: f[1]!, rxErrors: f[2]!, rxDropped: f[3]!,
      txBytes: f[8]!, txPackets: f[9]!, txErrors: f[10]!, txDropped: f[11]!,
    });
  }
  return counters;
}

/** I/O counters of the guest's virtio disks, from /sys/block/<disk>/stat. */
export async function blockCounters(): Promise<BlockCounters[]> {
  const counters: BlockCounters[] = [];
  for (const name of (await readdir('/sys/block')).filter((entry) => entry.startsWith('vd')).sort()) {
    const f = (await readFile(`/sys/block/${name}/stat`, 'utf8')).trim().split(/\s+/).map(Number);
    const serial = (await readFile(`/sys/block/${name}/serial`, 'utf8').catch(() => '')).trim();
    counters.push({ name, serial: serial || null, readIos: f[0]!, readBytes: f[2]! * SECTOR_BYTES, writeIos: f[4]!, writeBytes: f[6]! * SECTOR_BYTES });
  }
  return counters;
}

export async function memoryCounters(): Promise<{ totalBytes: number; availableBytes: number }> {
  const text = await readFile('/proc/meminfo', 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { totalBytes: kib('MemTotal'), availableBytes: kib('MemAvailable') };
}
