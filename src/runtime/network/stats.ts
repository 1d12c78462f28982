import { ipJson } from './ip.js';
import { NetworkError } from './network.js';

/** Counters of one interface inside a pod, for CRI `NetworkUsage` / `NetworkInterfaceUsage`. */
export interface InterfaceStats {
  name: string;
  rxBytes: number;
  rxPackets: number;
  rxErrors: number;
  rxDropped: number;
  txBytes: number;
  txPackets: number;
  txErrors: number;
  txDropped: number;
}

interface IpStatsLink {
  ifname: string;
  stats64?: {
    rx: { bytes: number; packets: number; errors: number; dropped: number };
    tx: { bytes: number; packets: number; errors: number; dropped: number };
  };
}

/**
 * Reads the counters of `ifname` inside the network namespace at `netnsPath`. Uses netlink (`ip -s -j`)
 * from inside the netns: /sys/class/net would show the namespace of whoever mounted sysfs, not the pod's.
 */
export async function interfaceStats(netnsPath: string, ifname = 'eth0'): Promise<InterfaceStats> {
  const [link] = await ipJson<IpStatsLink[]>(['-s', 'link', 'show', 'dev', ifname], netnsPath);
  if (!link?.stats64) throw new NetworkError(`no counters for ${ifname} in ${netnsPath}`);
  const { rx, tx } = link.stats64;
  return {
    name: link.ifname,
    rxBytes: rx.bytes,
    rxPackets: rx.packets,
    rxErrors: rx.errors,
    rxDropped: rx.dropped,
    txBytes: tx.bytes,
    txPackets: tx.packets,
    txErrors: tx.errors,
    txDropped: tx.dropped,
  };
}
