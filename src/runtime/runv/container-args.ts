import { RuntimeError, type ContainerSpec } from '../handler.js';
import { rootfsUser } from '../runc/rootfs-user.js';
import { mergedEnv, processArgs } from '../runc/spec.js';
import type { ContainerMount, CreateContainerArgs } from './agent-protocol.js';

/**
 * The agent's createContainer arguments for a ContainerSpec: the process by the same CRI rules as a
 * runc container (runc/spec.ts), with guest paths for the rootfs and mounts.
 *
 * What a VM changes:
 *   - the user is resolved here, against the image's /etc/passwd and /etc/group in the rootfs the
 *     host has mounted (the same tree as the guest's disk), and passed as numbers;
 *   - the host namespace files, cgroup parent, masked and read-only paths are not used: every
 *     container shares the VM's network, IPC and UTS namespaces, and the guest's runc applies its
 *     default masked and read-only paths;
 *   - seccomp is the guest runc's RuntimeDefault or Unconfined; a Localhost profile names a host file,
 *     which is refused rather than silently not applied;
 */
export function guestContainerArgs(spec: ContainerSpec, rootfs: string, mounts: ContainerMount[]): CreateContainerArgs {
  if (spec.seccomp?.type === 'Localhost') {
    throw new RuntimeError('InvalidArgument', `container ${spec.id}: runv cannot apply the Localhost seccomp profile ${spec.seccomp.path} inside its VM; use RuntimeDefault or Unconfined`);
  }
  const user = rootfsUser(spec);
  const args: CreateContainerArgs = {
    containerId: spec.id,
    rootfs,
    argv: processArgs(spec),
    env: mergedEnv(spec),
    cwd: spec.workingDir || spec.image?.workingDir || '/',
    user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
    mounts,
    terminal: spec.tty === true,
    stdin: spec.stdin === true,
    readonlyRootfs: spec.readonlyRootfs === true,
    privileged: spec.privileged === true,
    seccomp: spec.seccomp?.type === 'Unconfined' ? 'Unconfined' : 'RuntimeDefault',
  };
  if (spec.capabilities) args.capabilities = spec.capabilities;
  if (spec.noNewPrivileges !== undefined) args.noNewPrivileges = spec.noNewPrivileges;
  if (spec.resources && Object.keys(spec.resources).length > 0) args.resources = spec.resources;
  if (spec.stopSignal) args.stopSignal = spec.stopSignal;
  return args;
}

