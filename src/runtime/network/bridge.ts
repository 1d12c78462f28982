import { createHash } from 'node:crypto';
import { isAbsolute, join } from 'node:path';
import { execInNetns, validateSandboxId } from '../sandbox/namespaces.js';
import { deleteLink, findLink, ipBatch, ipJson, type IpAddressLink, type IpLink } from './ip.js';
import { HostLocalIpam, parseIpv4, type IpAllocation } from './ipam.js';
import {
  NetworkError,
  type LiveSandbox,
  type Network,
  type NetworkAttachment,
  type PodNetworkMetadata,
  type RestoreReport,
} from './network.js';

export const DEFAULT_BRIDGE = 'atoll0';
export const DEFAULT_POD_SUBNET = '10.88.0.0/16';
export const DEFAULT_MTU = 1500;
/** The pod end of every veth pair. */
export const POD_INTERFACE = 'eth0';

/** Marks veths as ours (`ip link` alias), so a sweep finds leaked ones even without IPAM state. */
const ALIAS_PREFIX = 'atoll-sandbox:';
const IFNAMSIZ = 15;
const MIN_MTU = 68;
const MAX_MTU = 65535;

/** Two sandbox ids hash to the same veth name (1 in 2^32 per pair); the later sandbox fails to start. */
export class VethCollisionError extends NetworkError {
  override name = 'VethCollisionError';
}

export interface BridgeNetworkOptions {
  /** Runtime state root; allocations go to `<stateDir>/ipam-<bridge>.json`. */
  stateDir: string;
  bridge?: string;
  /** The node's pod CIDR. */
  subnet?: string;
  /** The bridge's address and the pods' default gateway; defaults to the subnet's first address. */
  gateway?: string;
  rangeStart?: string;
  rangeEnd?: string;
  mtu?: number;
  /**
   * Network namespace that holds the bridge and the node-side veth ends; default, the runtime's own.
   * Tests set it to a namespace they own, so nothing touches the real host.
   */
  hostNetns?: string;
  /** Turn on net.ipv4.ip_forward in the host namespace, for routing pod traffic off the node. */
  ipForward?: boolean;
}

/** `veth` + 8 hex digits of the sandbox id's SHA-256: stable across restarts, within IFNAMSIZ. */
export function vethName(sandboxId: string): string {
  return `veth${createHash('sha256').update(sandboxId).digest('hex').slice(0, 8)}`;
}

/** A locally administered MAC derived from the pod IP (`0a:58:` + the 4 address bytes), unique as the IP is. */
export function podMac(address: string): string {
  const value = parseIpv4(address);
  const bytes = [24, 16, 8, 0].map((shift) => (Math.floor(value / 2 ** shift) % 256).toString(16).padStart(2, '0'));
  return `0a:58:${bytes.join(':')}`;
}

/**
 * Pods on a Linux bridge, one veth pair each: the node end (`vethName(id)`) is a bridge port, the pod end
 * is moved into the pod's netns as `eth0` with an address from host-local IPAM and a default route via
 * the bridge's address. Pods reach each other through the bridge and the node reaches them through the
 * bridge's address; traffic leaves the node only if the node routes it (`ipForward`, plus whatever
 * masquerading or routes the node is given elsewhere).
 */
export class BridgeNetwork implements Network {
  readonly kind = 'bridge';
  readonly bridge: string;
  private readonly mtu: number;
  private readonly hostNetns: string | undefined;
  readonly nodeNetns: string;
  private ready: Promise<HostLocalIpam> | undefined;

  constructor(private readonly options: BridgeNetworkOptions) {
    this.bridge = options.bridge ?? DEFAULT_BRIDGE;
    if (!/^[A-Za-z0-9_.-]+$/.test(this.bridge) || this.bridge.length > IFNAMSIZ) {
      throw new NetworkError(`invalid bridge name ${JSON.stringify(this.bridge)}: want at most ${IFNAMSIZ} of [A-Za-z0-9_.-]`);
    }
    this.mtu = options.mtu ?? DEFAULT_MTU;
    if (!Number.isInteger(this.mtu) || this.mtu < MIN_MTU || this.mtu > MAX_MTU) {
      throw new NetworkError(`invalid MTU ${this.mtu}: want an integer from ${MIN_MTU} to ${MAX_MTU}`);
    }
    this.hostNetns = options.hostNetns;
    this.nodeNetns = options.hostNetns ?? `/proc/${process.pid}/ns/net`;
  }

  get statePath(): string {
    return join(this.options.stateDir, `ipam-${this.bridge}.json`);
  }

  async restore(live: readonly LiveSandbox[]): Promise<RestoreReport> {
    const ipam = await this.start();
    const { released, ports } = await this.sweep(new Set(live.map((s) => s.id)));
    const restored: string[] = [];
    const unrepaired: string[] = [];
    for (const sandbox of live) {
      const held = ipam.lookup(sandbox.id);
      if (!held) continue;
      if (ports.has(vethName(sandbox.id))) {
        restored.push(sandbox.id);
        continue;
      }
      try {
        await this.attach(held, sandbox.netnsPath);
        restored.push(sandbox.id);
      } catch {
        unrepaired.push(sandbox.id);
      }
    }
    return { restored, released, unrepaired };
  }

  async setup(sandboxId: string, netnsPath: string, _pod: PodNetworkMetadata): Promise<NetworkAttachment> {
    validateSandboxId(sandboxId);
    if (!isAbsolute(netnsPath)) throw new NetworkError(`netns path ${JSON.stringify(netnsPath)} is not absolute`);
    const ipam = await this.start();
    const held = await ipam.allocate(sandboxId);
    try {
      await this.attach(held, netnsPath);
    } catch (err) {
      if (!(err instanceof VethCollisionError)) await deleteLink(vethName(sandboxId), this.hostNetns).catch(() => undefined);
      await ipam.release(sandboxId);
      throw err;
    }
    return this.attachment(held);
  }

  async teardown(sandboxId: string, _netnsPath?: string): Promise<void> {
    validateSandboxId(sandboxId);
    const ipam = await this.start();
    // A veth exists only while its sandbox holds an address (created after allocation, deleted before
    // release), so a sandbox without one owns no link, and a link of that name is another sandbox's.
    if (!ipam.lookup(sandboxId)) return;
    // Deleting either end of a veth pair deletes both; the pod end is already gone with its netns.
    await deleteLink(vethName(sandboxId), this.hostNetns);
    await ipam.release(sandboxId);
  }

  async status(sandboxId: string): Promise<NetworkAttachment | undefined> {
    const held = (await this.start()).lookup(sandboxId);
    return held && this.attachment(held);
  }

  async gc(liveIds: ReadonlySet<string>): Promise<string[]> {
    return (await this.sweep(liveIds)).released;
  }

  /** Releases what sandboxes outside `liveIds` hold; returns them and the bridge's remaining veth ports. */
  private async sweep(liveIds: ReadonlySet<string>): Promise<{ released: string[]; ports: Set<string> }> {
    const ipam = await this.start();
    const released = new Set(await ipam.reconcile(liveIds));
    const ports = new Set<string>();
    for (const link of await ipJson<IpLink[]>(['link', 'show', 'type', 'veth'], this.hostNetns)) {
      if (link.master !== this.bridge) continue;
      const owner = link.ifalias?.startsWith(ALIAS_PREFIX) ? link.ifalias.slice(ALIAS_PREFIX.length) : undefined;
      if (owner === undefined || liveIds.has(owner)) {
        ports.add(link.ifname);
        continue;
      }
      await deleteLink(link.ifname, this.hostNetns);
      released.add(owner);
    }
    return { released: [...released].sort(), ports };
  }

  async destroy(): Promise<void> {
    const ipam = await (this.ready ?? HostLocalIpam.open(this.statePath, this.range()));
    const held = ipam.list();
    if (held.length > 0) {
      throw new NetworkError(`bridge ${this.bridge} still has ${held.length} attached sandboxes: ${held.map((a) => a.sandboxId).join(', ')}`);
    }
    await deleteLink(this.bridge, this.hostNetns);
    this.ready = undefined;
  }

  private range() {
    const { subnet, gateway, rangeStart, rangeEnd } = this.options;
    return { subnet: subnet ?? DEFAULT_POD_SUBNET, gateway, rangeStart, rangeEnd };
  }

  /** Loads IPAM and makes sure the bridge exists, is up and holds the gateway address. Runs once. */
  private start(): Promise<HostLocalIpam> {
    if (!this.ready) {
      this.ready = (async () => {
        const ipam = await HostLocalIpam.open(this.statePath, this.range());
        await this.ensureBridge(ipam);
        if (this.options.ipForward) {
          await execInNetns(this.hostNetns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
        }
        return ipam;
      })();
      this.ready.catch(() => {
        this.ready = undefined;
      });
    }
    return this.ready;
  }

  private async ensureBridge(ipam: HostLocalIpam): Promise<void> {
    const existing = await findLink(this.bridge, this.hostNetns);
    if (existing && existing.linkinfo?.info_kind !== 'bridge') {
      throw new NetworkError(`${this.bridge} exists but is a ${existing.linkinfo?.info_kind ?? 'device'}, not a bridge`);
    }
    const commands: string[][] = [];
    if (!existing) commands.push(['link', 'add', this.bridge, 'type', 'bridge']);
    const [addresses] = existing ? await ipJson<IpAddressLink[]>(['addr', 'show', 'dev', this.bridge], this.hostNetns) : [];
    const hasGateway = addresses?.addr_info.some((a) => a.family === 'inet' && a.local === ipam.gateway && a.prefixlen === ipam.prefixLength);
    if (!hasGateway) commands.push(['addr', 'add', `${ipam.gateway}/${ipam.prefixLength}`, 'dev', this.bridge]);
    if (!existing?.flags.includes('UP')) commands.push(['link', 'set', this.bridge, 'up']);
    if (commands.length > 0) await ipBatch(commands, this.hostNetns, 'bridge links');
  }

  /**
   * Creates the veth pair and configures the pod end, replacing any previous pair of the sandbox. Two
   * `ip` processes, one per namespace; each costs tens of milliseconds on small edge CPUs.
   */
  private async attach(held: IpAllocation, netnsPath: string): Promise<void> {
    const veth = vethName(held.sandboxId);
    const mtu = String(this.mtu);
    const create = [
      ['link', 'add', veth, 'mtu', mtu, 'master', this.bridge, 'up', 'type', 'veth',
        'peer', 'name', POD_INTERFACE, 'address', podMac(held.address), 'mtu', mtu, 'netns', netnsPath],
      ['link', 'set', veth, 'alias', `${ALIAS_PREFIX}${held.sandboxId}`],
    ];
    try {
      await ipBatch(create, this.hostNetns, 'veth links');
    } catch (err) {
      if (!/File exists/.test((err as Error).message)) throw err;
      const owner = (await findLink(veth, this.hostNetns))?.ifalias;
      if (owner !== undefined && owner !== `${ALIAS_PREFIX}${held.sandboxId}`) {
        throw new VethCollisionError(`veth name ${veth} of sandbox ${held.sandboxId} is taken by ${owner}`);
      }
      await deleteLink(veth, this.hostNetns);
      await ipBatch(create, this.hostNetns, 'veth links');
    }
    await ipBatch(
      [
        ['link', 'set', 'lo', 'up'],
        ['link', 'set', POD_INTERFACE, 'up'],
        ['addr', 'add', `${held.address}/${held.prefixLength}`, 'dev', POD_INTERFACE],
        ['route', 'add', 'default', 'via', held.gateway, 'dev', POD_INTERFACE],
      ],
      netnsPath,
    );
  }

  private attachment(held: IpAllocation): NetworkAttachment {
    return {
      sandboxId: held.sandboxId,
      interfaces: [{ name: POD_INTERFACE, hostInterface: vethName(held.sandboxId), mac: podMac(held.address), mtu: this.mtu }],
      ips: [{ address: held.address, prefixLength: held.prefixLength, family: 4, interface: POD_INTERFACE }],
      gateway: held.gateway,
    };
  }
}
