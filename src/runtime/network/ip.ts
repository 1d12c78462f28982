import { execInNetns } from '../sandbox/namespaces.js';
import { NetworkError, NetworkUnsupportedError } from './network.js';

/**
 * iproute2, run without a shell in a given network namespace (undefined: the runtime's own). Link types
 * the kernel lacks (ipvlan and netem are absent on some edge kernels) surface as
 * `NetworkUnsupportedError` naming the type, rather than iproute2's bare "Unknown device type".
 */

export interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  address?: string;
  master?: string;
  ifalias?: string;
  operstate?: string;
  linkinfo?: { info_kind?: string };
}

export interface IpAddressInfo {
  family: 'inet' | 'inet6';
  local: string;
  prefixlen: number;
}

export interface IpAddressLink extends IpLink {
  addr_info: IpAddressInfo[];
}

const MISSING_DEVICE = /Cannot find device|does not exist/;

export async function ip(args: readonly string[], netns?: string, what = 'link'): Promise<string> {
  try {
    return (await execInNetns(netns, ['ip', ...args])).stdout;
  } catch (err) {
    throw translate(err, what);
  }
}

export async function ipJson<T>(args: readonly string[], netns?: string): Promise<T> {
  const out = await ip(['-j', ...args], netns);
  try {
    return JSON.parse(out === '' ? '[]' : out) as T;
  } catch {
    throw new NetworkError(`ip -j ${args.join(' ')}: unparseable output ${JSON.stringify(out.slice(0, 200))}`);
  }
}

/**
 * Runs several `ip` commands in one process (`ip -batch -`). iproute2 splits batch lines on whitespace,
 * so arguments are checked to hold none.
 */
export async function ipBatch(commands: readonly (readonly string[])[], netns?: string, what = 'link'): Promise<void> {
  for (const arg of commands.flat()) {
    if (!/^[^\s"'\\#]+$/.test(arg)) throw new NetworkError(`ip batch argument ${JSON.stringify(arg)} is not a plain word`);
  }
  const input = commands.map((c) => c.join(' ')).join('\n') + '\n';
  try {
    await execInNetns(netns, ['ip', '-batch', '-'], { input });
  } catch (err) {
    throw translate(err, what);
  }
}

/** The link named `name`, with link-kind details, or undefined if there is none. */
export async function findLink(name: string, netns?: string): Promise<IpLink | undefined> {
  try {
    const [link] = await ipJson<IpLink[]>(['-d', 'link', 'show', 'dev', name], netns);
    return link;
  } catch (err) {
    if (MISSING_DEVICE.test((err as Error).message)) return undefined;
    throw err;
  }
}

/** Deletes link `name`; returns false if it did not exist. */
export async function deleteLink(name: string, netns?: string): Promise<boolean> {
  try {
    await ip(['link', 'del', 'dev', name], netns);
    return true;
  } catch (err) {
    if (MISSING_DEVICE.test((err as Error).message)) return false;
    throw err;
  }
}

function translate(err: unknown, what: string): Error {
  const message = (err as Error).message;
  if (/Unknown device type|Operation not supported|not supported by kernel/i.test(message)) {
    return new NetworkUnsupportedError(`this kernel does not support ${what}: ${message}`);
  }
  return new NetworkError(message);
}
