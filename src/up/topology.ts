import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { deleteLink, findLink, ip, ipBatch, ipJson } from '../runtime/network/ip.js';
import { formatIpv4, parseCidr } from '../runtime/network/ipam.js';
import { execInNetns, mountPoints, runCommand } from '../runtime/sandbox/namespaces.js';

/**
 * The network `atoll up` builds on one machine: each edge node lives in its own network namespace,
 * joined to the host (the "cloud") by a veth pair, its cloud link. Pod traffic between nodes is
 * routed over those links, host-gw style, without NAT:
 *
 *   pod 10.244.1.5 ─ bridge (node edge-1's runtime) ─ edge-1 netns: default via 172.31.1.1
 *     ─ eth0 172.31.1.2 ══ atl-edge-1 172.31.1.1 ─ host: 10.244.2.0/24 via 172.31.2.2 ─ atl-edge-2 ══ …
 *
 * Lifecycle of one node's link:
 *
 *   const link = planNodeLink('edge-1', 1, { owner: dataDir });
 *   await setupNodeLink(link);      // creates what is missing, repairs the rest, heals a cut
 *   await partitionNodeLink(link);  // the link drops every packet silently, both ways
 *   await healNodeLink(link);
 *   await teardownNodeLink(link);   // veth, routes and netns gone; idempotent
 *
 * Forwarding is enabled per interface on the host (`net.ipv4.conf.<veth>.forwarding`), never with the
 * global switch: IPv4 forwards a packet when the interface it *arrived on* forwards, so the host routes
 * between node links and nothing else. Inside each node netns, its own `ip_forward` is on.
 *
 * The host side of each link carries an alias naming the data dir that owns it, so a second `atoll up`
 * over another data dir refuses to take over links that are not its own.
 */

/** The node's end of its cloud link, inside its netns. */
export const NODE_INTERFACE = 'eth0';
/** Linux's IFNAMSIZ less the terminating NUL. */
const MAX_INTERFACE_NAME = 15;
/** Each node gets a /30 out of the link network: the host end is .1, the node end .2. */
const LINK_PREFIX_LENGTH = 30;
/** Each node gets a /24 of pod addresses out of the pod network. */
const POD_PREFIX_LENGTH = 24;
/** Node indexes take the third octet of the /16 networks. */
export const MAX_NODE_INDEX = 255;
/**
 * A partition pins each end's neighbour entry for the other to this address, which neither veth
 * owns: frames still leave, and the peer discards them as addressed to another host. The link stays
 * up and the routes stay, so the node sees a silent cut (timeouts), as when a WAN link dies upstream,
 * not "network unreachable". tc's drop action and netem are missing from the kernels Atoll targets.
 */
export const PARTITION_MAC = '02:de:ad:00:00:00';
const NETNS_DIR = '/run/netns';

export interface TopologyOptions {
  /** The data dir of the `atoll up` that owns the links; recorded on each host link. */
  owner: string;
  /** Prefix of the node netns names; default `atoll-`. */
  netnsPrefix?: string;
  /** Prefix of the host-side link names; default `atl-`. The name must fit in 15 characters. */
  linkPrefix?: string;
  /** A /16 carved into one /30 per node; default 172.31.0.0/16. */
  linkNetwork?: string;
  /** A /16 carved into one /24 of pod addresses per node; default 10.244.0.0/16. */
  podNetwork?: string;
}

export const DEFAULT_LINK_NETWORK = '172.31.0.0/16';
export const DEFAULT_POD_NETWORK = '10.244.0.0/16';

/** One node's place in the topology; everything here follows from the node's name and index. */
export interface NodeLink {
  name: string;
  /** 1-based; picks the node's link subnet and pod CIDR. */
  index: number;
  owner: string;
  netns: string;
  netnsPath: string;
  hostLink: string;
  hostIP: string;
  nodeIP: string;
  linkCidr: string;
  podCidr: string;
}

export class TopologyError extends Error {
  override name = 'TopologyError';
}

/** Node `index` takes the `index`-th /24 of a /16 (its third octet), for its link /30 and its pod /24 alike. */
function subnet(base: string, index: number, what: string): number {
  const cidr = parseCidr(base);
  if (cidr.prefixLength !== 16) throw new TopologyError(`${what} ${base}: want a /16`);
  if (!Number.isInteger(index) || index < 1 || index > MAX_NODE_INDEX) throw new TopologyError(`node index ${index} does not fit in ${what} ${base}: want 1 to ${MAX_NODE_INDEX}`);
  return cidr.network + index * 256;
}

export function planNodeLink(name: string, index: number, options: TopologyOptions): NodeLink {
  const netns = `${options.netnsPrefix ?? 'atoll-'}${name}`;
  const hostLink = `${options.linkPrefix ?? 'atl-'}${name}`;
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(name)) throw new TopologyError(`node name ${JSON.stringify(name)}: want lower-case letters, digits and inner dashes`);
  if (hostLink.length > MAX_INTERFACE_NAME) {
    throw new TopologyError(`node name ${JSON.stringify(name)} is too long: its link ${hostLink} must fit in ${MAX_INTERFACE_NAME} characters`);
  }
  const link = subnet(options.linkNetwork ?? DEFAULT_LINK_NETWORK, index, 'link network');
  const pods = subnet(options.podNetwork ?? DEFAULT_POD_NETWORK, index, 'pod network');
  return {
    name,
    index,
    owner: options.owner,
    netns,
    netnsPath: `${NETNS_DIR}/${netns}`,
    hostLink,
    hostIP: formatIpv4(link + 1),
    nodeIP: formatIpv4(link + 2),
    linkCidr: `${formatIpv4(link)}/${LINK_PREFIX_LENGTH}`,
    podCidr: `${formatIpv4(pods)}/${POD_PREFIX_LENGTH}`,
  };
}

/** What the host link's alias says: which data dir's `atoll up` made it. */
function ownerAlias(owner: string): string {
  return `atoll up ${owner}`;
}

async function hostLinkOf(link: NodeLink): Promise<{ exists: boolean; ours: boolean }> {
  const found = await findLink(link.hostLink);
  return { exists: found !== undefined, ours: found?.ifalias === ownerAlias(link.owner) };
}

async function netnsMounted(link: NodeLink): Promise<boolean> {
  return (await mountPoints()).has(link.netnsPath);
}

/** Fails if a route for `cidr` exists through a device other than the node's host link. */
async function checkRouteFree(link: NodeLink, cidr: string, what: string): Promise<void> {
  const routes = await ipJson<{ dst: string; dev?: string }[]>(['route', 'show', 'exact', cidr]);
  const other = routes.find((r) => r.dev !== link.hostLink);
  if (other) {
    throw new TopologyError(`the host already routes ${cidr} (${what} of node ${link.name}) through ${other.dev ?? 'another route'}; remove that route or stop what added it`);
  }
}

/**
 * Brings node `link` to the planned state, creating what is missing and repairing the rest: the netns,
 * the veth pair, addresses, routes and forwarding. A partition left from before is healed.
 */
export async function setupNodeLink(link: NodeLink): Promise<void> {
  const host = await hostLinkOf(link);
  if (host.exists && !host.ours) {
    throw new TopologyError(`link ${link.hostLink} exists but belongs to something else (its alias is not "${ownerAlias(link.owner)}"); stop the other atoll up or delete the link`);
  }
  await checkRouteFree(link, link.linkCidr, 'cloud link subnet');
  await checkRouteFree(link, link.podCidr, 'pod CIDR');

  if (!(await netnsMounted(link))) {
    // A file without its mount is what a crash between `ip netns add`'s two steps leaves.
    await rm(link.netnsPath, { force: true });
    await runCommand(['ip', 'netns', 'add', link.netns]);
  }
  const peer = await findLink(NODE_INTERFACE, link.netnsPath);
  if (!host.exists || !peer) {
    if (host.exists) await deleteLink(link.hostLink);
    if (peer) await deleteLink(NODE_INTERFACE, link.netnsPath);
    await ip(['link', 'add', link.hostLink, 'type', 'veth', 'peer', 'name', NODE_INTERFACE, 'netns', link.netnsPath], undefined, 'veth');
    await ip(['link', 'set', 'dev', link.hostLink, 'alias', ownerAlias(link.owner)]);
  }
  await ip(['addr', 'replace', `${link.hostIP}/${LINK_PREFIX_LENGTH}`, 'dev', link.hostLink]);
  await ip(['link', 'set', 'dev', link.hostLink, 'up']);
  await writeFile(`/proc/sys/net/ipv4/conf/${link.hostLink}/forwarding`, '1');
  await ipBatch(
    [
      ['link', 'set', 'dev', 'lo', 'up'],
      ['addr', 'replace', `${link.nodeIP}/${LINK_PREFIX_LENGTH}`, 'dev', NODE_INTERFACE],
      ['link', 'set', 'dev', NODE_INTERFACE, 'up'],
      ['route', 'replace', 'default', 'via', link.hostIP, 'dev', NODE_INTERFACE],
    ],
    link.netnsPath,
  );
  // /proc/sys/net shows the namespace of the process that opens it, so this sets the node's own switch.
  await execInNetns(link.netnsPath, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  await ip(['route', 'replace', link.podCidr, 'via', link.nodeIP, 'dev', link.hostLink]);
  await healNodeLink(link);
}

/** Removes the node's veth (its routes and neighbour entries go with it) and its netns. Idempotent. */
export async function teardownNodeLink(link: NodeLink): Promise<void> {
  const host = await hostLinkOf(link);
  if (host.exists && !host.ours) return;
  if (host.exists) await deleteLink(link.hostLink);
  if (await netnsMounted(link)) await runCommand(['ip', 'netns', 'del', link.netns]);
  else if (existsSync(link.netnsPath)) await rm(link.netnsPath, { force: true });
}

export interface NodeLinkState {
  netns: boolean;
  /** The host end exists and is this owner's. */
  link: boolean;
  partitioned: boolean;
}

export async function nodeLinkState(link: NodeLink): Promise<NodeLinkState> {
  const host = await hostLinkOf(link);
  const netns = await netnsMounted(link);
  if (!host.ours) return { netns, link: false, partitioned: false };
  const entries = await ipJson<{ dst: string; lladdr?: string; state?: string[] }[]>(['neigh', 'show', 'dev', link.hostLink, 'to', link.nodeIP]);
  const partitioned = entries.some((e) => e.lladdr === PARTITION_MAC && (e.state ?? []).includes('PERMANENT'));
  return { netns, link: true, partitioned };
}

function requireLink(state: NodeLinkState, link: NodeLink): void {
  if (!state.netns || !state.link) throw new TopologyError(`node ${link.name} has no cloud link (netns ${link.netns}, link ${link.hostLink}); is its atoll up running?`);
}

/** Cuts the node's cloud link both ways; packets are dropped silently. Idempotent. */
export async function partitionNodeLink(link: NodeLink): Promise<void> {
  requireLink(await nodeLinkState(link), link);
  await ip(['neigh', 'replace', link.nodeIP, 'lladdr', PARTITION_MAC, 'dev', link.hostLink, 'nud', 'permanent']);
  await ip(['neigh', 'replace', link.hostIP, 'lladdr', PARTITION_MAC, 'dev', NODE_INTERFACE, 'nud', 'permanent'], link.netnsPath);
}

/** Restores a cut link: the pinned neighbour entries go and ARP resolves the real peers again. Idempotent. */
export async function healNodeLink(link: NodeLink): Promise<void> {
  requireLink(await nodeLinkState(link), link);
  await deleteNeighbour(link.nodeIP, link.hostLink);
  await deleteNeighbour(link.hostIP, NODE_INTERFACE, link.netnsPath);
}

async function deleteNeighbour(address: string, dev: string, netns?: string): Promise<void> {
  const entries = await ipJson<{ lladdr?: string }[]>(['neigh', 'show', 'dev', dev, 'to', address], netns);
  if (entries.some((e) => e.lladdr === PARTITION_MAC)) await ip(['neigh', 'del', address, 'dev', dev], netns);
}
