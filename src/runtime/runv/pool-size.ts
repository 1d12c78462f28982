/**
 * The most VMs a runv pool (pool.ts) may keep: each idle clone holds tens of MiB of host memory. A file
 * of its own so that the CLI checks `--runv-pool` without loading runv.
 */
export const MAX_POOL_SIZE = 8;
