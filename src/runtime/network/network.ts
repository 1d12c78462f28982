/**
 * A `Network` connects pod sandboxes to the node. The runtime owns the sandbox's network namespace (a
 * bind-mounted file, see `sandbox/namespaces.ts`); the network owns everything it puts into it and
 * around it: links, addresses, routes, IP allocations, and node-level infrastructure such as a bridge.
 *
 * Lifecycle of one pod's network:
 *
 *   const ns = await createNamespaces(runDir, id, { hostname });          // runtime: RunPodSandbox
 *   const att = await network.setup(id, ns.net, { name, namespace, uid }); // → interfaces, ips, gateway
 *   att.ips[0].address                                                     // PodSandboxStatus.network.ip
 *   await network.status(id);                                              // same attachment, or undefined
 *   await network.teardown(id, ns.net);                                    // StopPodSandbox; idempotent
 *   await removeNamespaces(runDir, id);                                    // RemovePodSandbox
 *
 * Rules every implementation keeps (the shared suite in `suite.ts` checks them):
 * - `setup` brings the pod's `lo` up along with its own interfaces.
 * - `setup` is called once per sandbox, before any container starts. If it fails, it leaves nothing
 *   behind (no link, no allocated IP) so that the runtime can simply fail RunPodSandbox. Calling it
 *   again for a sandbox that is already attached replaces the attachment and keeps its IP.
 * - `teardown` is idempotent: it succeeds for a sandbox that was never set up, was already torn down,
 *   or whose netns is already gone, and it always releases the sandbox's IP.
 * - No two attached sandboxes ever share an IP, and an IP that is still allocated is never handed out.
 * - State survives a restart of the runtime. A new instance over the same state directory is started with
 *   `restore(live)`, where `live` lists the sandboxes the runtime re-adopted. Their attachments are kept
 *   (and repaired if a link went missing while the netns still exists); attachments of sandboxes not in
 *   `live` are leaks from a crash and are released.
 * - `gc(liveIds)` releases leaked attachments at any time (a periodic sweep); it never touches a live one.
 * - `destroy()` removes node-level infrastructure (uninstall, tests) once no sandbox is attached.
 *
 * Implementations: `BridgeNetwork` (a Linux bridge and a veth pair per pod, host-local IPAM). Macvlan
 * (pods as macvlan children of a node uplink) and passthrough (a host interface moved into one pod)
 * fit the same shape: they report their own interfaces and may leave `gateway` or `hostInterface` unset.
 */
export interface Network {
  /** Short name of the implementation, e.g. `bridge`. */
  readonly kind: string;

  /** Path of the node's network namespace, which host-network pods share. */
  readonly nodeNetns: string;

  /**
   * Prepares node-level infrastructure and loads persisted state, re-adopting `live` sandboxes and
   * releasing every attachment whose sandbox is not listed. Call once, before the first `setup`.
   */
  restore(live: readonly LiveSandbox[]): Promise<RestoreReport>;

  /** Attaches the sandbox whose network namespace is bind-mounted at `netnsPath`. */
  setup(sandboxId: string, netnsPath: string, pod: PodNetworkMetadata): Promise<NetworkAttachment>;

  /** Detaches the sandbox and releases its IPs. `netnsPath` may already be gone. */
  teardown(sandboxId: string, netnsPath?: string): Promise<void>;

  /** The sandbox's attachment, or undefined if it is not attached. */
  status(sandboxId: string): Promise<NetworkAttachment | undefined>;

  /** Releases attachments of sandboxes not in `liveIds`; returns the released sandbox ids. */
  gc(liveIds: ReadonlySet<string>): Promise<string[]>;

  /** Removes node-level infrastructure. Fails while any sandbox is attached. */
  destroy(): Promise<void>;
}

/** From the CRI `PodSandboxMetadata`, for implementations that label links or allocations with it. */
export interface PodNetworkMetadata {
  name: string;
  namespace: string;
  uid: string;
}

export interface LiveSandbox {
  id: string;
  netnsPath: string;
}

export interface PodInterface {
  /** Name inside the pod's netns, e.g. `eth0`. */
  name: string;
  /** The node-side peer (a veth end), when there is one. */
  hostInterface?: string;
  mac: string;
  mtu: number;
}

export interface PodIP {
  address: string;
  prefixLength: number;
  family: 4 | 6;
  /** Which `interfaces` entry holds this address. */
  interface: string;
}

export interface NetworkAttachment {
  sandboxId: string;
  interfaces: PodInterface[];
  /** The first is the pod IP reported in PodSandboxStatus; the rest are `additional_ips`. */
  ips: PodIP[];
  /** The pod's default gateway, if the network installs a default route. */
  gateway?: string;
}

export interface RestoreReport {
  /** Live sandboxes whose attachment was found intact or repaired. */
  restored: string[];
  /** Sandboxes whose attachment was released because they are not live. */
  released: string[];
  /** Live sandboxes whose attachment was broken and could not be repaired (e.g. their netns is gone). */
  unrepaired: string[];
}

export class NetworkError extends Error {
  override name = 'NetworkError';
}

/** The kernel lacks a link type or feature the network needs (e.g. ipvlan on this platform). */
export class NetworkUnsupportedError extends NetworkError {
  override name = 'NetworkUnsupportedError';
}
