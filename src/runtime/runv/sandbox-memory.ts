import type { Resources } from '../handler.js';
import { DEFAULT_MEMORY_MIB } from './vm.js';

/**
 * How much memory a pod's VM gets.
 *
 *   pod with a memory limit L (CRI LinuxPodSandboxConfig.resources):  L + GUEST_OVERHEAD_MIB, rounded up to MEMORY_STEP_MIB
 *   pod without one:                                                    DEFAULT_MEMORY_MIB (vm.ts: 256 MiB)
 *
 * The overhead is measured, under TCG on the build machine (guest kernel 6.1, a 256 MiB VM, the agent
 * idle, no container): the kernel keeps 50 MiB for itself (MemTotal 206 MiB), and the agent (Node),
 * /init and the page cache of the agent disk use about 57 MiB more, leaving 149 MiB available. Each
 * container adds its conmon and the guest runc's short-lived processes, a few MiB. 128 MiB covers the
 * 107 MiB with room for a few containers' conmons, so a pod limited to L has at least L for its
 * containers. A pod without a limit gets the default VM, about 150 MiB for its containers.
 *
 * The step keeps the number of distinct sizes small, since a VM template serves one memory size. Guest
 * memory the guest never touches costs the host nothing.
 */
export const GUEST_OVERHEAD_MIB = 128;
export const MEMORY_STEP_MIB = 64;
const MIB = 1024 * 1024;

export function sandboxMemoryMiB(resources?: Resources): number {
  const limit = resources?.memoryLimitBytes;
  if (limit === undefined || limit <= 0) return DEFAULT_MEMORY_MIB;
  return Math.ceil((Math.ceil(limit / MIB) + GUEST_OVERHEAD_MIB) / MEMORY_STEP_MIB) * MEMORY_STEP_MIB;
}
