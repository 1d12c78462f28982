export * from './network.js';
export { BridgeNetwork, DEFAULT_BRIDGE, DEFAULT_MTU, DEFAULT_POD_SUBNET, POD_INTERFACE, podMac, VethCollisionError, vethName } from './bridge.js';
export type { BridgeNetworkOptions } from './bridge.js';
export { HostLocalIpam, IpamExhaustedError } from './ipam.js';
export type { IpAllocation, Ipv4Range } from './ipam.js';
export { interfaceStats } from './stats.js';
export type { InterfaceStats } from './stats.js';
