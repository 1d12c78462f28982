import { access } from 'node:fs/promises';
import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';
import { execInNetns } from '../sandbox/namespaces.js';
import { deleteLink, findLink, ip, ipBatch, ipJson, type IpAddressInfo, type IpAddressLink } from '../network/ip.js';
import { NetworkError } from '../network/network.js';
import type { GuestNetwork } from './vm.js';

/**
 * A runv pod's NIC, wired the way Kata's "tcfilter" model does it. The pod gets the same netns and
 * veth (`eth0`) as a runc pod, from the same `Network`; inside that netns a tap is added, and two tc
 * filters on ingress qdiscs move every frame across, unchanged:
 *
 *   bridge ── veth ══ eth0 ─(ingress: u32 match-all, mirred egress redirect)─▶ tap_eth0 ─▶ QEMU virtio-net
 *                     eth0 ◀─(mirred egress redirect, u32 match-all: ingress)─ tap_eth0 ◀─ guest
 *
 * Lifecycle of one pod's NIC:
 *
 *   const att = await network.setup(id, ns.net, pod);                       // veth eth0 with the pod IP
 *   const nic = await connectTap(ns.net, { veth: 'eth0' });                 // tap, filters; IP moves off eth0
 *   const vm = await MicroVm.boot({ ..., netns: ns.net, nic: { tap: nic.tap, mac: nic.mac }, network: guestNetwork(nic) });
 *   await vm.stop();
 *   await disconnectTap(ns.net, nic.tap);                                  // idempotent
 *   await network.teardown(id, ns.net);
 *
 * The guest's NIC uses the veth's MAC: the bridge, the neighbours' ARP caches and any MAC-based
 * filtering on the node already expect it, and the frames pass through unchanged.
 *
 * The pod's addresses are taken off the veth (IPv6 is switched off on it, which also drops its
 * link-local address), and its routes go with them. The filters already steal every frame before the
 * netns's IP stack sees it, so that stack could not answer ARP or pings for the guest; but left with the
 * pod IP it would still be a second host with the guest's IP and MAC that can send and never hear an
 * answer: anything run in the netns (a port-forward or probe helper written for runc pods) would get
 * its replies delivered to the guest, which resets them, instead of failing at once with "network
 * unreachable". Kata's tcfilter code keeps the addresses; its bridged and macvtap models clear them.
 *
 * What was taken off is recorded on the tap itself, as its interface alias, so that it lives and dies
 * with the netns: `connectTap` can run again (after a runtime restart, or after the Network repaired the
 * veth) and returns the same answer, and `disconnectTap` puts the addresses and routes back.
 *
 * A VM start need not wait for all of it: `beginConnectTap` returns as soon as the tap exists (QEMU
 * opens it by name) and the guest's configuration is known, and finishes the redirects and the veth in
 * the background (`ready`), while QEMU starts:
 *
 *   const { connection: nic, ready } = await beginConnectTap(ns.net, { veth: 'eth0' });
 *   const [vm] = await Promise.all([MicroVm.restore(template, { ..., nic: ..., network: guestNetwork(nic) }), ready]);
 */

export interface TapAddress {
  family: 4 | 6;
  address: string;
  prefixLength: number;
}

export interface TapRoute {
  family: 4 | 6;
  /** `default` or a CIDR. */
  dst: string;
  /** Absent for a route straight out of the interface. */
  gateway?: string;
}

export interface TapConnection {
  /** The tap QEMU opens inside the pod netns (`VmOptions.nic.tap`). */
  tap: string;
  /** The veth the tap is joined to. */
  veth: string;
  /** The veth's MAC, which the guest NIC must use. */
  mac: string;
  /** The veth's MTU; the tap has it too, and so should the guest NIC. */
  mtu: number;
  /** The pod's addresses, for the guest; no longer on the veth. */
  addresses: TapAddress[];
  /** Routes through the veth other than those the kernel derives from the addresses, for the guest. */
  routes: TapRoute[];
}

export interface ConnectTapOptions {
  /** The pod's interface inside the netns, as the Network named it (`eth0`). */
  veth: string;
}

const IFNAMSIZ = 15;
const INTERFACE_NAME = /^[A-Za-z0-9_-]+$/;
const TAP_PREFIX = 'tap_';
/** The kernel keeps at most this many bytes of an interface alias (IFALIASZ - 1). */
const MAX_ALIAS_BYTES = 255;
/** Marks a tap alias as this module's record. */
const RECORD_MARKER = 'atoll-runv';
/**
 * What `tc qdisc del ... ingress` says when there is none: "Invalid handle" once the device had an
 * ingress qdisc before (the kernel keeps its ingress queue, with a handle-less placeholder qdisc).
 */
const MISSING_QDISC = /Cannot find specified qdisc|Cannot find device|Invalid handle/;

/** What `connectTap` took off the veth, as kept in the tap's alias. */
interface TapRecord {
  veth: string;
  addresses: TapAddress[];
  routes: TapRoute[];
  /** IPv6 was on for the veth, and was switched off. */
  ipv6: boolean;
}

/** The tap joined to `veth`: one per pod interface, named after it. */
export function tapName(veth: string): string {
  validateInterfaceName(veth, 'veth');
  const tap = `${TAP_PREFIX}${veth}`;
  if (tap.length > IFNAMSIZ) {
    throw new NetworkError(`veth name ${JSON.stringify(veth)} is too long for its tap ${tap}: at most ${IFNAMSIZ - TAP_PREFIX.length} characters`);
  }
  return tap;
}

/** A tap that QEMU can open already, while the rest of connectTap goes on (see beginConnectTap). */
export interface TapInProgress {
  connection: TapConnection;
  /**
   * Settles once the redirects are in place and the veth is cleared: the pod's network works only
   * then. When it rejects, the tap has been removed and the veth has its addresses back.
   */
  ready: Promise<void>;
}

/**
 * Adds the tap and the redirects in the netns at `netnsPath` and moves the pod's addresses off `veth`.
 * Running it again for a connected veth changes nothing and returns the same connection. On failure
 * the tap is removed and the veth has its addresses back.
 */
export async function connectTap(netnsPath: string, options: ConnectTapOptions): Promise<TapConnection> {
  const { connection, ready } = await beginConnectTap(netnsPath, options);
  await ready;
  return connection;
}

/**
 * connectTap in two parts: resolves once the veth has been read and the tap exists, which is all QEMU
 * needs to start; the redirects and the veth's addresses follow in `ready`. The caller must wait for
 * `ready` to settle before it disconnects the tap. On a failure before it resolves, a tap it created
 * is removed again and the veth is untouched.
 */
export async function beginConnectTap(netnsPath: string, options: ConnectTapOptions): Promise<TapInProgress> {
  validateNetnsPath(netnsPath);
  const { veth } = options;
  const tap = tapName(veth);
  // Independent reads, and the tap made at once: each is an `ip` process, and a VM start waits for them.
  const [linkRead, routesRead, ipv6Read, createdRead] = await Promise.allSettled([
    ipJson<IpAddressLink[]>(['addr', 'show', 'dev', veth], netnsPath),
    podRoutes(netnsPath, veth),
    ipv6Enabled(netnsPath, veth),
    createTap(netnsPath, tap),
  ]);
  const created = createdRead.status === 'fulfilled' && createdRead.value;
  let record: TapRecord;
  let link: IpAddressLink;
  let alias: string;
  try {
    if (linkRead.status === 'rejected') {
      const err = linkRead.reason as Error;
      throw /does not exist|Cannot find device/.test(err.message) ? new NetworkError(`no interface ${veth} in the netns ${netnsPath}`) : err;
    }
    if (createdRead.status === 'rejected') throw createdRead.reason;
    const [read] = linkRead.value;
    if (!read?.address) throw new NetworkError(`interface ${veth} in the netns ${netnsPath} has no MAC address`);
    link = read;
    const existing = created ? undefined : await findLink(tap, netnsPath);
    if (!created && existing?.linkinfo?.info_kind !== 'tun') {
      throw new NetworkError(`${tap} in the netns ${netnsPath} is a ${existing?.linkinfo?.info_kind ?? 'device that vanished while it was read'}, not a tap`);
    }
    const saved = existing?.ifalias === undefined ? undefined : parseRecord(existing.ifalias, tap);
    const addresses = podAddresses(link);
    if (addresses.length > 0) {
      if (routesRead.status === 'rejected') throw routesRead.reason;
      if (ipv6Read.status === 'rejected') throw ipv6Read.reason;
      record = { veth, addresses, routes: routesRead.value, ipv6: ipv6Read.value };
    } else if (saved?.veth === veth) {
      record = saved;
    } else {
      throw new NetworkError(`interface ${veth} in the netns ${netnsPath} has no address to give the guest`);
    }
    alias = encodeRecord(record);
    if (Buffer.byteLength(alias) > MAX_ALIAS_BYTES) {
      throw new NetworkError(`${veth} has too many addresses and routes to record on ${tap}: ${Buffer.byteLength(alias)} bytes, at most ${MAX_ALIAS_BYTES}`);
    }
  } catch (err) {
    // Nothing but the tap was changed, and a tap without a record is one disconnectTap simply removes.
    if (created) await deleteLink(tap, netnsPath).catch(() => undefined);
    throw err;
  }
  const ready = finishTap(netnsPath, tap, link.mtu, record, alias);
  ready.catch(() => undefined);
  return { connection: { tap, veth, mac: link.address!, mtu: link.mtu, addresses: record.addresses, routes: record.routes }, ready };
}

/** The rest of connectTap once the tap exists: the record, the redirects, the veth's addresses. */
async function finishTap(netnsPath: string, tap: string, mtu: number, record: TapRecord, alias: string): Promise<void> {
  const { veth } = record;
  try {
    // The record goes onto the tap before the veth is touched, so a crash at any later step leaves
    // enough behind for disconnectTap to restore the veth.
    await ip(['link', 'set', 'dev', tap, 'alias', alias, 'mtu', String(mtu), 'up'], netnsPath);
    // A connectTap that ran before left ingress qdiscs, and their filters, behind: they go first.
    const failed = await tcBatch(netnsPath, [
      ['qdisc', 'del', 'dev', veth, 'ingress'],
      ['qdisc', 'del', 'dev', tap, 'ingress'],
      ['qdisc', 'add', 'dev', veth, 'ingress'],
      ['qdisc', 'add', 'dev', tap, 'ingress'],
      redirect(veth, tap),
      redirect(tap, veth),
    ]);
    const errors = [...failed].filter(([line, message]) => line > 2 || !MISSING_QDISC.test(message)).map(([, message]) => message);
    if (errors.length > 0) throw tcError(errors.join('; '));
    // Flushing before switching IPv6 off: a crash in between leaves no pod address on the veth, so a
    // second connectTap goes by the record rather than read a half-cleared veth.
    await ipBatch([['addr', 'flush', 'dev', veth]], netnsPath);
    if (record.ipv6) await setIpv6(netnsPath, veth, false);
  } catch (err) {
    await disconnectTap(netnsPath, tap).catch(() => undefined);
    throw err;
  }
}

/** Adds `tap` (a tap with virtio-net headers, as QEMU wants it); false when a device of that name exists. */
async function createTap(netnsPath: string, tap: string): Promise<boolean> {
  try {
    await ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap', 'vnet_hdr'], netnsPath, 'tap devices');
    return true;
  } catch (err) {
    // TUNSETIFF on a name that is taken: by a tap of an earlier connectTap, or by another device.
    if (/Device or resource busy/.test((err as Error).message)) return false;
    throw err;
  }
}

/**
 * The pod's network as the guest gets it (vm.ts GuestNetwork): the NIC named like the veth, with its
 * MTU, the addresses and the routes that were on the veth.
 */
export function guestNetwork(connection: TapConnection): GuestNetwork {
  return {
    name: connection.veth,
    mtu: connection.mtu,
    addresses: connection.addresses.map((a) => `${a.address}/${a.prefixLength}`),
    routes: connection.routes.map((r) => ({
      // `ip -j` shows a host route without its prefix length.
      dest: r.dst === 'default' || r.dst.includes('/') ? r.dst : `${r.dst}/${r.family === 4 ? 32 : 128}`,
      family: r.family,
      ...(r.gateway ? { gateway: r.gateway } : {}),
    })),
  };
}

/**
 * Removes the tap and the redirects and gives the veth back its addresses and routes. Idempotent: fine
 * for a tap that is already gone and for a netns that no longer exists.
 */
export async function disconnectTap(netnsPath: string, tap: string): Promise<void> {
  validateNetnsPath(netnsPath);
  validateInterfaceName(tap, 'tap');
  if (!(await access(netnsPath).then(() => true, () => false))) return;
  const link = await findLink(tap, netnsPath);
  if (!link) return;
  if (link.linkinfo?.info_kind !== 'tun') {
    throw new NetworkError(`${tap} in the netns ${netnsPath} is a ${link.linkinfo?.info_kind ?? 'device'}, not a tap`);
  }
  // Without a record the tap was created and then connectTap stopped: nothing else was changed yet.
  const record = link.ifalias === undefined ? undefined : parseRecord(link.ifalias, tap);
  if (record && (await findLink(record.veth, netnsPath))) {
    await removeIngress(netnsPath, record.veth);
    if (record.ipv6) await setIpv6(netnsPath, record.veth, true);
    // `replace` makes each step idempotent; routes need their addresses in place first.
    const commands = [
      ...record.addresses.map((a) => ['addr', 'replace', `${a.address}/${a.prefixLength}`, 'dev', record.veth]),
      ...record.routes.map((r) => routeCommand(r, record.veth)),
    ];
    if (commands.length > 0) await ipBatch(commands, netnsPath);
  }
  // The tap goes last: it carries the record.
  await deleteLink(tap, netnsPath);
}

function redirect(from: string, to: string): string[] {
  return ['filter', 'add', 'dev', from, 'parent', 'ffff:', 'protocol', 'all', 'u32', 'match', 'u32', '0', '0',
    'action', 'mirred', 'egress', 'redirect', 'dev', to];
}

function routeCommand(route: TapRoute, veth: string): string[] {
  // `default` alone would mean IPv4 to iproute2.
  const dst = route.dst === 'default' ? (route.family === 4 ? '0.0.0.0/0' : '::/0') : route.dst;
  return ['route', 'replace', dst, ...(route.gateway ? ['via', route.gateway] : []), 'dev', veth];
}

/** The veth's addresses worth giving the guest: link-local ones belong to the interface, not the pod. */
function podAddresses(link: IpAddressLink): TapAddress[] {
  return (link.addr_info as (IpAddressInfo & { scope?: string })[])
    .filter((a) => a.scope !== 'link' && a.scope !== 'host')
    .map((a) => ({ family: a.family === 'inet' ? 4 : 6, address: a.local, prefixLength: a.prefixlen }));
}

interface IpRoute { dst: string; gateway?: string; protocol?: string; type?: string }

/** Routes out of `veth` that someone added: those the kernel derives from addresses or learns from RAs come back by themselves. */
async function podRoutes(netnsPath: string, veth: string): Promise<TapRoute[]> {
  const families = [4, 6] as const;
  const listed = await Promise.all(families.map((family) => ipJson<IpRoute[]>([`-${family}`, 'route', 'show', 'dev', veth], netnsPath)));
  return families.flatMap((family, i) => listed[i]!
    .filter((r) => !(r.protocol === 'kernel' || r.protocol === 'ra' || (r.type !== undefined && r.type !== 'unicast')))
    .map((r): TapRoute => (r.gateway === undefined ? { family, dst: r.dst } : { family, dst: r.dst, gateway: r.gateway })));
}

function ipv6SysctlPath(veth: string): string {
  return `/proc/sys/net/ipv6/conf/${veth}/disable_ipv6`;
}

/** Whether IPv6 is on for `veth`; false also when the kernel has no IPv6 at all. */
async function ipv6Enabled(netnsPath: string, veth: string): Promise<boolean> {
  try {
    return (await execInNetns(netnsPath, ['cat', ipv6SysctlPath(veth)])).stdout.trim() === '0';
  } catch (err) {
    if (/No such file/.test((err as Error).message)) return false;
    throw err;
  }
}

async function setIpv6(netnsPath: string, veth: string, enabled: boolean): Promise<void> {
  // /proc/sys/net shows the netns of the process that opens it, so the write happens inside the netns.
  await execInNetns(netnsPath, ['tee', ipv6SysctlPath(veth)], { input: enabled ? '0\n' : '1\n' });
}

/** Deletes `dev`'s ingress qdisc and with it every filter on it; fine if there is none. */
async function removeIngress(netnsPath: string, dev: string): Promise<void> {
  try {
    await execInNetns(netnsPath, ['tc', 'qdisc', 'del', 'dev', dev, 'ingress']);
  } catch (err) {
    if (!MISSING_QDISC.test((err as Error).message)) throw new NetworkError((err as Error).message);
  }
}

/**
 * Runs several `tc` commands in one process that goes on past a failed one (`tc -force -batch -`); the
 * arguments are plain words. Returns tc's message for each failed command, by line number from 1.
 */
async function tcBatch(netnsPath: string, commands: readonly (readonly string[])[]): Promise<Map<number, string>> {
  const failed = new Map<number, string>();
  try {
    await execInNetns(netnsPath, ['tc', '-force', '-batch', '-'], { input: commands.map((c) => c.join(' ')).join('\n') + '\n' });
  } catch (err) {
    // tc prints each failure's message, then `Command failed -:<line>`.
    const parts = (err as Error).message.split(/Command failed -:(\d+)/);
    for (let i = 1; i < parts.length; i += 2) failed.set(Number(parts[i]), parts[i - 1]!.trim());
    if (failed.size === 0) throw tcError((err as Error).message);
  }
  return failed;
}

function tcError(message: string): NetworkError {
  if (/Unknown (qdisc|filter|action)|Operation not supported|not supported/i.test(message)) {
    return new NetworkError(`this kernel lacks the tc ingress qdisc, u32 filter or mirred action runv needs: ${message}`);
  }
  return new NetworkError(message);
}

/**
 * The record as an alias: space-separated words after a marker, short enough for the kernel's 255
 * bytes with a dual-stack pod, e.g.
 * `atoll-runv veth=eth0 ipv6=1 addr=10.88.0.5/16 route=4,default,10.88.0.1 route=6,fd00:1::/64`.
 */
function encodeRecord(record: TapRecord): string {
  return [
    RECORD_MARKER,
    `veth=${record.veth}`,
    `ipv6=${record.ipv6 ? 1 : 0}`,
    ...record.addresses.map((a) => `addr=${a.address}/${a.prefixLength}`),
    ...record.routes.map((r) => `route=${[r.family, r.dst, ...(r.gateway ? [r.gateway] : [])].join(',')}`),
  ].join(' ');
}

/** Reads back the record `connectTap` left in a tap's alias; anything else there is an error. */
function parseRecord(alias: string, tap: string): TapRecord {
  const bad = (why: string) => new NetworkError(`the alias of ${tap} is not a runv tap record (${why}): ${JSON.stringify(alias)}`);
  const [marker, ...words] = alias.split(' ');
  if (marker !== RECORD_MARKER) throw bad(`it does not start with ${RECORD_MARKER}`);
  const record: Partial<TapRecord> & Pick<TapRecord, 'addresses' | 'routes'> = { addresses: [], routes: [] };
  for (const word of words) {
    const eq = word.indexOf('=');
    const [key, value] = [word.slice(0, eq), word.slice(eq + 1)];
    const address = key === 'addr' ? parseAddress(value) : undefined;
    const route = key === 'route' ? parseRoute(value) : undefined;
    if (key === 'veth' && INTERFACE_NAME.test(value)) record.veth = value;
    else if (key === 'ipv6' && (value === '0' || value === '1')) record.ipv6 = value === '1';
    else if (address) record.addresses.push(address);
    else if (route) record.routes.push(route);
    else throw bad(`unexpected ${JSON.stringify(word)}`);
  }
  if (record.veth === undefined) throw bad('no veth');
  if (record.ipv6 === undefined) throw bad('no ipv6');
  return { veth: record.veth, ipv6: record.ipv6, addresses: record.addresses, routes: record.routes };
}

function parseAddress(text: string): TapAddress | undefined {
  const [address = '', prefix = '', ...rest] = text.split('/');
  const family = isIP(address);
  const prefixLength = Number(prefix);
  if (rest.length > 0 || family === 0 || !/^\d+$/.test(prefix) || prefixLength > (family === 4 ? 32 : 128)) return undefined;
  return { family, address, prefixLength } as TapAddress;
}

function parseRoute(text: string): TapRoute | undefined {
  const [familyText, dst = '', gateway, ...rest] = text.split(',');
  const family = familyText === '4' ? 4 : familyText === '6' ? 6 : undefined;
  if (family === undefined || rest.length > 0) return undefined;
  if (dst !== 'default' && parseAddress(dst)?.family !== family && isIP(dst) !== family) return undefined;
  if (gateway === undefined) return { family, dst };
  return isIP(gateway) === family ? { family, dst, gateway } : undefined;
}

function validateNetnsPath(netnsPath: string): void {
  if (!isAbsolute(netnsPath)) throw new NetworkError(`netns path ${JSON.stringify(netnsPath)} is not absolute`);
}

function validateInterfaceName(name: string, what: string): void {
  if (!INTERFACE_NAME.test(name) || name.length > IFNAMSIZ) {
    throw new NetworkError(`invalid ${what} name ${JSON.stringify(name)}: want at most ${IFNAMSIZ} of [A-Za-z0-9_-]`);
  }
}
