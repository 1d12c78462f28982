/**
 * What QEMU may do on the host, set between the netns entry (nsenter needs CAP_SYS_ADMIN) and QEMU's
 * exec by a short perl program (Node has no prctl; perl is on every Debian host and needs no module
 * here): QEMU keeps only the capabilities its 9p share needs to act for the guest's root on the pod's
 * volumes, and no process it could exec may gain privileges. It does not need CAP_NET_ADMIN: the tap
 * exists already, and the kernel lets any process attach to a tap that has no owner (tun.c
 * tun_not_capable). Guest RAM, disks and sockets are root's files, which root reaches as their owner.
 *
 * QEMU still runs as uid 0, not as an unprivileged uid: a 9p passthrough share served by another uid
 * could not write the root-owned hostPath and emptyDir directories a pod is given, nor set the
 * owners the guest asks for. Together with `-sandbox on` (seccomp: no exec, no set*uid, no obsolete
 * calls), a compromised QEMU holds the six file capabilities below and nothing else: no mount, no
 * network configuration, no ptrace, no module loading, no raw I/O.
 */

/** The capabilities QEMU keeps, by number (linux/capability.h). */
export const QEMU_CAPABILITIES: Readonly<Record<string, number>> = {
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_FOWNER: 3,
  CAP_FSETID: 4,
  CAP_MKNOD: 27,
};

// prctl is syscall 157 on x86-64 (the only host runv supports). PR_SET_THP_DISABLE 41,
// PR_CAPBSET_DROP 24 (EINVAL, 22, past the kernel's last capability), PR_SET_NO_NEW_PRIVS 38.
const SCRIPT = String.raw`
my ($huge, $keep) = (shift @ARGV, shift @ARGV);
if ($huge eq 'no-huge-pages') { syscall(157, 41, 1, 0, 0, 0) == 0 or die "prctl PR_SET_THP_DISABLE: $!\n"; }
my %keep = map { $_ => 1 } split /,/, $keep;
for (my $cap = 0; ; $cap++) {
  next if $keep{$cap};
  next if syscall(157, 24, $cap, 0, 0, 0) == 0;
  last if $! == 22;
  die "prctl PR_CAPBSET_DROP $cap: $!\n";
}
syscall(157, 38, 1, 0, 0, 0) == 0 or die "prctl PR_SET_NO_NEW_PRIVS: $!\n";
exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\n";
`;

export interface QemuPrivilegeOptions {
  /**
   * Transparent huge pages for QEMU's memory (PR_SET_THP_DISABLE when false). Off under TCG: QEMU asks
   * for huge pages for TCG's code cache, and each 2 MiB of it then becomes resident as soon as any of it
   * is written: a clone soon paid for its whole cache (vm.ts CLONE_TB_SIZE_MIB) though it had filled
   * 20-29 MiB after a restore and a few execs, and a small ROM took a whole 2 MiB page. With 4 KiB pages
   * a VM pays for the part of the cache it has filled; the fewer host TLB misses of huge pages measured
   * within the noise of a guest exec.
   */
  hugePages: boolean;
}

/** The argv prefix that runs the command after it with QEMU's privileges (PR_SET_THP_DISABLE and the rest survive exec). */
export function withQemuPrivileges(options: QemuPrivilegeOptions): string[] {
  return ['perl', '-e', SCRIPT, '--', options.hugePages ? 'huge-pages' : 'no-huge-pages', Object.values(QEMU_CAPABILITIES).join(',')];
}
