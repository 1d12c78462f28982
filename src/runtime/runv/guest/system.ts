import { readFile, readdir } from 'node:fs/promises';
import type { BlockCounters, IdentityResult, InterfaceCounters, SetTimeResult } from '../agent-protocol.js';
import { configureIpv6, hostnameValue, macAddress, nicSetting } from './network.js';
import { SyscallProcess } from './syscalls.js';
import { AgentError, base64, integer, object } from './validate.js';

/**
 * A seed's bounds: at least a CRNG key's worth (256 bits), since every byte is credited as entropy;
 * at most what one request carries (the kernel's input pool keeps 256 bits, so more adds nothing).
 */
const MIN_SEED_BYTES = 32;
const MAX_SEED_BYTES = 4096;
const SECTOR_BYTES = 512;
/** Interfaces whose counters a pod's network stats come from. */
const POD_INTERFACE = /^eth\d+$/;

const syscalls = new SyscallProcess();

/** Whole milliseconds since `at` (process.hrtime()), rounded down. */
function msSince(at: [number, number]): number {
  const [seconds, nanoseconds] = process.hrtime(at);
  return seconds * 1000 + Math.floor(nanoseconds / 1_000_000);
}

function seedBytes(value: unknown, field: string): Buffer {
  const seed = base64(value, field, MAX_SEED_BYTES);
  if (seed.length < MIN_SEED_BYTES) throw new AgentError('BadRequest', `'${field}' must carry at least ${MIN_SEED_BYTES} bytes once decoded, got ${seed.length}`);
  return seed;
}

/**
 * Steps the guest clock to `epochMs`, counted from when the request reached the agent: the time the
 * agent and the perl process take is added, and what is left is the request's way from the host.
 */
export async function setTime(args: Record<string, unknown>): Promise<SetTimeResult> {
  const at = process.hrtime();
  const epochMs = integer(args.epochMs, 'epochMs', 0);
  const { previousEpochMs } = await syscalls.call({ clock: { epochMs, at } });
  return { previousEpochMs: previousEpochMs!, agentMs: msSince(at) };
}

/**
 * Mixes host randomness into the kernel's input pool, credited, and reseeds the CRNG from it at once
 * (RNDADDENTROPY, RNDRESEEDCRNG): clones of one template share the template's CRNG state, and a mere
 * write to /dev/urandom would leave them sharing its output until the kernel's next scheduled reseed.
 */
export async function reseedRandom(args: Record<string, unknown>): Promise<Record<string, never>> {
  await syscalls.call({ seed: seedBytes(args.bytes, 'bytes') });
  return {};
}

/**
 * What must differ between clones of one template, in one request and one round of system calls:
 * the clock (as setTime), a reseeded CRNG (as reseedRandom), the NIC's MAC, the pod's network on that
 * NIC (as `interface` and `route`, but by ioctls rather than one `ip` process per step) and the
 * hostname. The MAC change finds the NIC by the MAC it has (`mac.from`, the template's); a NIC that
 * already has `mac.to` counts as done, and the network is set to exactly what is asked, so a retried
 * request succeeds. Every argument is checked first, so a bad request changes nothing.
 */
export async function identity(args: Record<string, unknown>): Promise<IdentityResult> {
  const at = process.hrtime();
  const epochMs = integer(args.epochMs, 'epochMs', 0);
  const seed = seedBytes(args.seed, 'seed');
  const hostname = args.hostname === undefined ? undefined : hostnameValue(args.hostname, 'hostname');
  let mac: { from: string; to: string } | undefined;
  if (args.mac !== undefined) {
    const change = object(args.mac, 'mac');
    mac = { from: macAddress(change.from, 'mac.from'), to: macAddress(change.to, 'mac.to') };
  }
  const network = args.network === undefined ? undefined : nicSetting(args.network, 'network');
  const nic = network && {
    mac: network.mac, name: network.name, mtu: network.mtu, up: network.up,
    ipv4: network.addresses.filter((a) => a.family === 4), routes4: network.routes.filter((r) => r.family === 4),
  };
  const result = await syscalls.call({ clock: { epochMs, at }, seed, mac, nic, hostname });
  if (network) await configureIpv6(network, result.nic!);
  return { previousEpochMs: result.previousEpochMs!, agentMs: msSince(at), ...(result.nic !== undefined ? { interface: result.nic } : {}) };
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
