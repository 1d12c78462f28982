import { readFile, readdir, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import type { InterfaceResult } from '../agent-protocol.js';
import { run } from './processes.js';
import { AgentError, object, optionalBoolean, optionalInteger, optionalString, string, stringArray } from './validate.js';

const SYS_NET = '/sys/class/net';
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const INTERFACE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;
/** RFC 1123 labels, as Kubernetes checks a pod's hostname. */
const HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const MAX_HOSTNAME_LENGTH = 64;
/**
 * IPv4 addresses `identity` puts on one NIC: the first under the NIC's own label, the others under
 * `<name>:<n>` labels (how the ioctls name secondary addresses), which must fit the 15 bytes of a name.
 */
const MAX_IPV4_ADDRESSES = 16;

/** An address with its prefix length, as `10.0.0.2/24` or `fd00::2/64`. */
export interface Cidr { family: 4 | 6; address: string; prefixLength: number; text: string }

function cidr(value: string, field: string): Cidr {
  const [address = '', prefix, extra] = value.split('/');
  const family = isIP(address);
  const max = family === 6 ? 128 : 32;
  if (family === 0 || prefix === undefined || extra !== undefined || !/^\d+$/.test(prefix) || Number(prefix) > max) {
    throw new AgentError('BadRequest', `'${field}' must be an address with a prefix length (10.0.0.2/24, fd00::2/64), got ${JSON.stringify(value)}`);
  }
  return { family: family as 4 | 6, address, prefixLength: Number(prefix), text: value };
}

/** A MAC address argument, in lowercase. */
export function macAddress(value: unknown, field: string): string {
  const mac = string(value, field).toLowerCase();
  if (!MAC.test(mac)) throw new AgentError('BadRequest', `'${field}' must look like 52:54:00:12:34:56, got ${JSON.stringify(value)}`);
  return mac;
}

/** The guest interface that has `mac`, the one stable name a NIC has from the host's side. */
async function interfaceByMac(mac: string): Promise<string> {
  for (const name of await readdir(SYS_NET)) {
    const address = await readFile(`${SYS_NET}/${name}/address`, 'utf8').catch(() => '');
    if (address.trim().toLowerCase() === mac) return name;
  }
  throw new AgentError('NotFound', `no guest interface has MAC ${mac}`);
}

/**
 * Gives the NIC with `mac` its name, MTU and exactly the given addresses, and brings it up (unless
 * `up` is false). Running it again with the same arguments changes nothing.
 */
export async function configureInterface(args: Record<string, unknown>): Promise<InterfaceResult> {
  const mac = macAddress(args.mac, 'mac');
  const wantedName = optionalString(args.name, 'name');
  if (wantedName !== undefined && !INTERFACE_NAME.test(wantedName)) throw new AgentError('BadRequest', `'name' must match ${INTERFACE_NAME}, got ${JSON.stringify(wantedName)}`);
  const addresses = stringArray(args.addresses, 'addresses').map((address, index) => cidr(address, `addresses[${index}]`));
  const mtu = optionalInteger(args.mtu, 'mtu', 68, 65535);
  const up = optionalBoolean(args.up, 'up') ?? true;

  let name = await interfaceByMac(mac);
  if (wantedName !== undefined && wantedName !== name) {
    await run(['ip', 'link', 'set', 'dev', name, 'down']);
    await run(['ip', 'link', 'set', 'dev', name, 'name', wantedName]);
    name = wantedName;
  }
  if (mtu !== undefined) await run(['ip', 'link', 'set', 'dev', name, 'mtu', String(mtu)]);
  await run(['ip', 'addr', 'flush', 'dev', name]);
  for (const address of addresses) await run(['ip', `-${address.family}`, 'addr', 'add', address.text, 'dev', name]);
  await run(['ip', 'link', 'set', 'dev', name, up ? 'up' : 'down']);
  return { name };
}

/** A route's destination and gateway, checked: `prefix` is the destination's (`default`: 0). */
export interface RouteSpec { family: 4 | 6; dest: string; prefix: { address: string; prefixLength: number }; gateway?: string }

/** `route`'s arguments but `dev`, checked; `at` prefixes the field names in errors (`network.routes[0].`). */
function routeSpec(args: Record<string, unknown>, at = ''): RouteSpec {
  const dest = string(args.dest, `${at}dest`);
  const gateway = optionalString(args.gateway, `${at}gateway`);
  const given = optionalInteger(args.family, `${at}family`, 4, 6);
  if (given !== undefined && given !== 4 && given !== 6) throw new AgentError('BadRequest', `'${at}family' must be 4 or 6, got ${given}`);
  if (gateway !== undefined && isIP(gateway) === 0) throw new AgentError('BadRequest', `'${at}gateway' must be an IP address, got ${JSON.stringify(gateway)}`);
  const prefix = dest === 'default' ? undefined : cidr(dest, `${at}dest`);
  const family = prefix?.family ?? given ?? (gateway !== undefined ? isIP(gateway) as 4 | 6 : 4);
  if (gateway !== undefined && isIP(gateway) !== family) throw new AgentError('BadRequest', `'${at}gateway' ${gateway} is not IPv${family} like '${at}dest' ${dest}`);
  return { family, dest, prefix: prefix ?? { address: family === 4 ? '0.0.0.0' : '::', prefixLength: 0 }, ...(gateway !== undefined ? { gateway } : {}) };
}

function ipRoute(route: RouteSpec, dev: string | undefined): string[] {
  return ['ip', `-${route.family}`, 'route', 'replace', route.dest, ...(route.gateway !== undefined ? ['via', route.gateway] : []), ...(dev !== undefined ? ['dev', dev] : [])];
}

/** Adds a route, or replaces the one to the same destination. */
export async function route(args: Record<string, unknown>): Promise<Record<string, never>> {
  const spec = routeSpec(args);
  const dev = optionalString(args.dev, 'dev');
  if (spec.gateway === undefined && dev === undefined) throw new AgentError('BadRequest', "a route needs 'gateway', 'dev' or both");
  if (dev !== undefined && !INTERFACE_NAME.test(dev)) throw new AgentError('BadRequest', `'dev' must match ${INTERFACE_NAME}, got ${JSON.stringify(dev)}`);
  await run(ipRoute(spec, dev));
  return {};
}

/** `identity`'s `network`, checked: see NicConfig in agent-protocol.ts. */
export interface NicSetting { mac: string; name?: string; mtu?: number; addresses: Cidr[]; routes: RouteSpec[]; up: boolean }

export function nicSetting(value: unknown, field: string): NicSetting {
  const args = object(value, field);
  const mac = macAddress(args.mac, `${field}.mac`);
  const name = optionalString(args.name, `${field}.name`);
  if (name !== undefined && !INTERFACE_NAME.test(name)) throw new AgentError('BadRequest', `'${field}.name' must match ${INTERFACE_NAME}, got ${JSON.stringify(name)}`);
  const mtu = optionalInteger(args.mtu, `${field}.mtu`, 68, 65535);
  const addresses = stringArray(args.addresses, `${field}.addresses`).map((address, index) => cidr(address, `${field}.addresses[${index}]`));
  if (addresses.filter((a) => a.family === 4).length > MAX_IPV4_ADDRESSES) {
    throw new AgentError('BadRequest', `'${field}.addresses' may hold at most ${MAX_IPV4_ADDRESSES} IPv4 addresses`);
  }
  const routes = args.routes === undefined ? [] : arrayOf(args.routes, `${field}.routes`).map((r, index) => routeSpec(object(r, `${field}.routes[${index}]`), `${field}.routes[${index}].`));
  const up = optionalBoolean(args.up, `${field}.up`) ?? true;
  if (!up && routes.length > 0) throw new AgentError('BadRequest', `'${field}.routes' need the NIC up; leave them out with 'up: false'`);
  return { mac, ...(name !== undefined ? { name } : {}), ...(mtu !== undefined ? { mtu } : {}), addresses, routes, up };
}

function arrayOf(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) throw new AgentError('BadRequest', `'${field}' must be an array, got ${JSON.stringify(value)}`);
  return value;
}

/**
 * The IPv6 part of a NicSetting, which the resident perl process leaves out (see syscalls.ts): the
 * NIC's global IPv6 addresses become exactly the given ones and its IPv6 routes are replaced, with
 * `ip`. A pod here rarely has IPv6, and then nothing is spawned.
 */
export async function configureIpv6(nic: NicSetting, name: string): Promise<void> {
  const addresses = nic.addresses.filter((a) => a.family === 6);
  const routes = nic.routes.filter((r) => r.family === 6);
  if (addresses.length === 0 && routes.length === 0) return;
  await run(['ip', '-6', 'addr', 'flush', 'dev', name, 'scope', 'global']);
  for (const address of addresses) await run(['ip', '-6', 'addr', 'add', address.text, 'dev', name]);
  for (const r of routes) await run(ipRoute(r, name));
}

/** A hostname argument: lowercase RFC 1123 labels, as Kubernetes allows for a pod. */
export function hostnameValue(value: unknown, field: string): string {
  const hostname = string(value, field);
  if (hostname.length > MAX_HOSTNAME_LENGTH || !HOSTNAME.test(hostname)) {
    throw new AgentError('BadRequest', `'${field}' must be lowercase RFC 1123 labels of at most ${MAX_HOSTNAME_LENGTH} characters, got ${JSON.stringify(hostname)}`);
  }
  return hostname;
}

export async function setHostname(args: Record<string, unknown>): Promise<Record<string, never>> {
  await writeFile('/proc/sys/kernel/hostname', hostnameValue(args.hostname, 'hostname'));
  return {};
}
