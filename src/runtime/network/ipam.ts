import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileAtomic } from '../../apiserver/auth/atomic-file.js';
import { NetworkError } from './network.js';

/**
 * Host-local IPv4 address management, in the manner of the CNI `host-local` plugin: addresses come from
 * one subnet (the node's pod CIDR), the gateway and the network and broadcast addresses are never handed
 * out, and allocation is round-robin from the last address reserved, so a released address is reused
 * as late as possible (a stale connection to a dead pod does not reach its successor).
 *
 * The allocations live in one JSON file, replaced atomically (write, fsync, rename) on every change, so
 * a crash leaves the state before or after the change. Memory follows the file, never the reverse: a
 * failed write leaves the allocation untouched. One process owns the file; within it, changes are
 * serialised and group-committed.
 */

export interface Ipv4Range {
  /** CIDR, e.g. `10.88.0.0/16`; prefix at most /30. */
  subnet: string;
  /** Defaults to the first address of the subnet. */
  gateway?: string;
  /** First and last address handed out; default to the whole subnet. */
  rangeStart?: string;
  rangeEnd?: string;
}

export interface IpAllocation {
  sandboxId: string;
  address: string;
  prefixLength: number;
  gateway: string;
}

interface IpamState {
  version: 1;
  subnet: string;
  /** Where the round-robin search resumes (the address after this one). */
  lastReserved?: string;
  /** Address → sandbox id. */
  allocations: Record<string, string>;
}

export class IpamExhaustedError extends NetworkError {
  override name = 'IpamExhaustedError';
}

export function parseIpv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255)) {
    throw new NetworkError(`invalid IPv4 address ${JSON.stringify(text)}`);
  }
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

export interface Ipv4Cidr {
  network: number;
  prefixLength: number;
  /** Number of addresses, network and broadcast included. */
  size: number;
}

export function parseCidr(text: string): Ipv4Cidr {
  const match = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text);
  if (!match) throw new NetworkError(`invalid CIDR ${JSON.stringify(text)}: want a.b.c.d/n`);
  const address = parseIpv4(match[1]!);
  const prefixLength = Number(match[2]);
  if (prefixLength > 32) throw new NetworkError(`invalid CIDR ${JSON.stringify(text)}: prefix over 32`);
  const size = 2 ** (32 - prefixLength);
  const network = address - (address % size);
  if (network !== address) {
    throw new NetworkError(`CIDR ${text} has host bits set; did you mean ${formatIpv4(network)}/${prefixLength}?`);
  }
  return { network, prefixLength, size };
}

interface Pool {
  cidr: Ipv4Cidr;
  gateway: number;
  first: number;
  last: number;
}

function poolFor(range: Ipv4Range): Pool {
  const cidr = parseCidr(range.subnet);
  if (cidr.prefixLength > 30) throw new NetworkError(`subnet ${range.subnet} is too small for pods: want /30 or larger`);
  const inside = (value: number): boolean => value > cidr.network && value < cidr.network + cidr.size - 1;
  const address = (text: string | undefined, fallback: number, what: string): number => {
    if (text === undefined) return fallback;
    const value = parseIpv4(text);
    if (!inside(value)) throw new NetworkError(`${what} ${text} is not a host address of ${range.subnet}`);
    return value;
  };
  const gateway = address(range.gateway, cidr.network + 1, 'gateway');
  const first = address(range.rangeStart, cidr.network + 1, 'rangeStart');
  const last = address(range.rangeEnd, cidr.network + cidr.size - 2, 'rangeEnd');
  if (first > last) throw new NetworkError(`rangeStart ${range.rangeStart} is after rangeEnd ${range.rangeEnd}`);
  return { cidr, gateway, first, last };
}

function parseState(text: string, path: string): IpamState {
  const fail = (why: string): never => {
    throw new NetworkError(`IPAM state ${path} is corrupt: ${why}`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return fail((err as Error).message);
  }
  if (typeof raw !== 'object' || raw === null) return fail('not an object');
  const obj = raw as Record<string, unknown>;
  if (obj.version !== 1) return fail(`unsupported version ${JSON.stringify(obj.version)}`);
  if (typeof obj.subnet !== 'string') return fail('subnet missing');
  parseCidr(obj.subnet);
  if (obj.lastReserved !== undefined && typeof obj.lastReserved !== 'string') return fail('lastReserved not a string');
  if (typeof obj.allocations !== 'object' || obj.allocations === null) return fail('allocations missing');
  const allocations: Record<string, string> = {};
  const owners = new Set<string>();
  for (const [address, owner] of Object.entries(obj.allocations as Record<string, unknown>)) {
    parseIpv4(address);
    if (typeof owner !== 'string' || owner === '') return fail(`allocation ${address} has no sandbox id`);
    if (owners.has(owner)) return fail(`sandbox ${owner} holds two addresses`);
    owners.add(owner);
    allocations[address] = owner;
  }
  return { version: 1, subnet: obj.subnet, lastReserved: obj.lastReserved as string | undefined, allocations };
}

interface PendingChange {
  apply: (state: IpamState) => { next: IpamState; result: unknown };
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class HostLocalIpam {
  private pending: PendingChange[] = [];
  private writing = false;

  private constructor(
    readonly statePath: string,
    private readonly pool: Pool,
    private state: IpamState,
  ) {}

  /**
   * Loads the allocations at `statePath` (an absent file means none). A subnet change is accepted only
   * while nothing is allocated, since live pods keep the addresses they have.
   */
  static async open(statePath: string, range: Ipv4Range): Promise<HostLocalIpam> {
    const pool = poolFor(range);
    await mkdir(dirname(statePath), { recursive: true, mode: 0o700 });
    let text: string | undefined;
    try {
      text = await readFile(statePath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const subnet = `${formatIpv4(pool.cidr.network)}/${pool.cidr.prefixLength}`;
    let state: IpamState = { version: 1, subnet, allocations: {} };
    if (text !== undefined) {
      const stored = parseState(text, statePath);
      const held = Object.keys(stored.allocations);
      if (stored.subnet !== subnet && held.length > 0) {
        throw new NetworkError(
          `IPAM state ${statePath} holds ${held.length} addresses in ${stored.subnet}, but the pod subnet is now ${subnet}; ` +
            'remove the pods (or restore the old subnet) before changing it',
        );
      }
      if (stored.subnet === subnet) {
        for (const address of held) {
          const value = parseIpv4(address);
          if (value <= pool.cidr.network || value >= pool.cidr.network + pool.cidr.size - 1) {
            throw new NetworkError(`IPAM state ${statePath} is corrupt: ${address} is not a host address of ${subnet}`);
          }
        }
        state = stored;
      }
    }
    return new HostLocalIpam(statePath, pool, state);
  }

  get prefixLength(): number {
    return this.pool.cidr.prefixLength;
  }

  get gateway(): string {
    return formatIpv4(this.pool.gateway);
  }

  get subnet(): string {
    return this.state.subnet;
  }

  lookup(sandboxId: string): IpAllocation | undefined {
    return this.list().find((a) => a.sandboxId === sandboxId);
  }

  list(): IpAllocation[] {
    return Object.entries(this.state.allocations).map(([address, sandboxId]) => this.allocation(sandboxId, address));
  }

  /** The sandbox's address: the one it already holds, or the next free one. */
  allocate(sandboxId: string): Promise<IpAllocation> {
    return this.change((state) => {
      const held = Object.entries(state.allocations).find(([, owner]) => owner === sandboxId);
      if (held) return { next: state, result: this.allocation(sandboxId, held[0]) };
      const { first, last } = this.pool;
      const count = last - first + 1;
      const resume = state.lastReserved === undefined ? first : parseIpv4(state.lastReserved) + 1;
      const start = resume >= first && resume <= last ? resume : first;
      for (let i = 0; i < count; i++) {
        const candidate = first + ((start - first + i) % count);
        const address = formatIpv4(candidate);
        if (candidate === this.pool.gateway || state.allocations[address] !== undefined) continue;
        const next = { ...state, lastReserved: address, allocations: { ...state.allocations, [address]: sandboxId } };
        return { next, result: this.allocation(sandboxId, address) };
      }
      throw new IpamExhaustedError(
        `no free pod address in ${state.subnet}: ${formatIpv4(first)}-${formatIpv4(last)} are all allocated`,
      );
    });
  }

  /** Frees the sandbox's address; returns what it held, if anything. */
  release(sandboxId: string): Promise<IpAllocation | undefined> {
    return this.change((state) => {
      const held = Object.entries(state.allocations).find(([, owner]) => owner === sandboxId);
      if (!held) return { next: state, result: undefined };
      const allocations = { ...state.allocations };
      delete allocations[held[0]];
      return { next: { ...state, allocations }, result: this.allocation(sandboxId, held[0]) };
    });
  }

  /** Frees every address whose sandbox is not in `liveIds`; returns the sandboxes released. */
  reconcile(liveIds: ReadonlySet<string>): Promise<string[]> {
    return this.change((state) => {
      const allocations: Record<string, string> = {};
      const released: string[] = [];
      for (const [address, owner] of Object.entries(state.allocations)) {
        if (liveIds.has(owner)) allocations[address] = owner;
        else released.push(owner);
      }
      return { next: released.length > 0 ? { ...state, allocations } : state, result: released.sort() };
    });
  }

  private allocation(sandboxId: string, address: string): IpAllocation {
    return { sandboxId, address, prefixLength: this.pool.cidr.prefixLength, gateway: formatIpv4(this.pool.gateway) };
  }

  /**
   * Queues a pure change of the state. Changes queued while a write is in flight are applied together
   * and written once (group commit), so concurrent pod starts share one fsync. A change that throws
   * fails alone; a failed write fails every change of its batch and leaves the state as it was.
   */
  private change<T>(apply: (state: IpamState) => { next: IpamState; result: T }): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ apply, resolve: resolve as (value: unknown) => void, reject });
      if (!this.writing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.writing = true;
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0);
      let state = this.state;
      const applied: { settle: () => void; reject: (err: unknown) => void }[] = [];
      for (const op of batch) {
        try {
          const { next, result } = op.apply(state);
          state = next;
          applied.push({ settle: () => op.resolve(result), reject: op.reject });
        } catch (err) {
          op.reject(err);
        }
      }
      try {
        if (state !== this.state) await writeFileAtomic(this.statePath, `${JSON.stringify(state, null, 1)}\n`, 0o600);
        this.state = state;
        for (const op of applied) op.settle();
      } catch (err) {
        for (const op of applied) op.reject(err);
      }
    }
    this.writing = false;
  }
}
