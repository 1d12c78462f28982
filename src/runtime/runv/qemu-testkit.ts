import { readdirSync, readFileSync } from 'node:fs';

/**
 * The running QEMU processes, for tests that check what a VM left behind; with `under`, only those
 * whose command line names a path under it (a VM's directory). A zombie is not running: an adopted
 * QEMU's zombie waits for init, not for the test.
 */
export function runningQemus(under?: string): number[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (!stat.includes('(qemu-system') || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
      return under === undefined || readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(under);
    } catch {
      return false;
    }
  });
}
