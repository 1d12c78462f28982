import { readFile, readdir, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import type { InterfaceResult } from '../agent-protocol.js';
import { run } from './processes.js';
import { AgentError, optionalBoolean, optionalInteger, optionalString, string, stringArray } from './validate.js';

const SYS_NET = '/sys/class/net';
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const INTERFACE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;
/** RFC 1123 labels, as Kubernetes checks a pod's hostname. */
const HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const MAX_HOSTNAME_LENGTH = 64;

function cidr(value: string, field: string): { family: 4 | 6; text: string } {
  const [address = '', prefix, extra] = value.split('/');
  const family = isIP(address);
  const max = family === 6 ? 128 : 32;
  if (family === 0 || prefix === undefined || extra !== undefined || !/^\d+$/.test(prefix) || Number(prefix) > max) {
    throw new AgentError('BadRequest', `'${field}' must be an address with a prefix length (10.0.0.2/24, fd00::2/64), got ${JSON.stringify(value)}`);
  }
  return { family: family as 4 | 6, text: value };
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

/** Adds a route, or replaces the one to the same destination. */
export async function route(args: Record<string, unknown>): Promise<Record<string, never>> {
  const dest = string(args.dest, 'dest');
  const gateway = optionalString(args.gateway, 'gateway');
  const dev = optionalString(args.dev, 'dev');
  const given = optionalInteger(args.family, 'family', 4, 6);
  if (given !== undefined && given !== 4 && given !== 6) throw new AgentError('BadRequest', `'family' must be 4 or 6, got ${given}`);
  if (gateway === undefined && dev === undefined) throw new AgentError('BadRequest', "a route needs 'gateway', 'dev' or both");
  if (gateway !== undefined && isIP(gateway) === 0) throw new AgentError('BadRequest', `'gateway' must be an IP address, got ${JSON.stringify(gateway)}`);
  if (dev !== undefined && !INTERFACE_NAME.test(dev)) throw new AgentError('BadRequest', `'dev' must match ${INTERFACE_NAME}, got ${JSON.stringify(dev)}`);
  const family = dest === 'default' ? (given ?? (gateway !== undefined ? isIP(gateway) : 4)) : cidr(dest, 'dest').family;
  if (gateway !== undefined && isIP(gateway) !== family) throw new AgentError('BadRequest', `'gateway' ${gateway} is not IPv${family} like 'dest' ${dest}`);
  await run(['ip', `-${family}`, 'route', 'replace', dest, ...(gateway !== undefined ? ['via', gateway] : []), ...(dev !== undefined ? ['dev', dev] : [])]);
  return {};
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
