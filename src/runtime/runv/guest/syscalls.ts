import { spawn, type ChildProcess } from 'node:child_process';
import type { Cidr, RouteSpec } from './network.js';
import { AgentError } from './validate.js';

/**
 * The system calls the agent needs and Node has no API for (clock_settime, the RNDADDENTROPY and
 * RNDRESEEDCRNG ioctls, sethostname, and the network ioctls that name, address and route a NIC): one
 * resident perl process makes them. perl-base is on the agent disk, and its builtin `syscall` and
 * `ioctl` reach any call without a compiled module.
 *
 * It is started on first use, which a template's warm-up makes, so it is already running in every
 * clone. A clone restored under TCG starts with an empty translation cache and pays again for every
 * piece of guest code it runs: measured on the loaded 2-core build machine, a perl process started
 * in a fresh clone took 0.26 to 0.71 s, a request to this one 0.11 to 0.49 s, and each busybox `ip`
 * about 0.39 s. So the NIC is looked up by its MAC and configured here too, with the ioctls
 * ifconfig and route use, and one request does all of a clone's identity, network included.
 *
 * It reads one request per line, space-separated fields made in the order given, and answers each
 * line with `ok` plus any results, or `error <code> <message>` at the first field that fails:
 *
 *   clock=<sec>,<nsec>,<monoSec>,<monoNsec>  sets CLOCK_REALTIME to sec.nsec as of the CLOCK_MONOTONIC
 *                                            instant monoSec.monoNsec, counting the time since; answers
 *                                            clock=<sec>,<nsec>, the time it replaced
 *   seed=<hex>                               mixes the bytes into the input pool crediting 8 bits each,
 *                                            then reseeds the CRNG from it at once
 *   mac=<from>,<to>                          (12 hex digits each) gives the interface with MAC `from`
 *                                            the MAC `to`; an interface that has `to` already counts as
 *                                            done; NotFound when neither is there
 *   nic=<mac>,<name>,<mtu>                   finds the interface with MAC `mac` (12 hex digits; NotFound
 *                                            when none has it), renames it to `name` (taken down first,
 *                                            as the kernel requires) and sets its MTU; an empty name or
 *                                            MTU 0 leaves that as it is. The fields below act on this
 *                                            interface. Answers nic=<its name>
 *   addr4=<ip>/<len>,...                     makes the interface's IPv4 addresses exactly these (the first
 *                                            under its own label, the others under <name>:<n>); with
 *                                            other addresses there, all go first. Empty: none
 *   up=<1|0>                                 brings the interface up or down
 *   route4=<dst>/<len>/<gateway>             replaces the routes to dst/len (0.0.0.0/0: the default) with
 *                                            one out of the interface, through `gateway` unless empty
 *   hostname=<name>                          sets the hostname
 *
 * The process ends when its stdin does, so it goes with the agent.
 */
const PERL = '/usr/bin/perl';
/** How long one request may take before the process is killed (the next request starts a new one). */
export const SYSCALL_TIMEOUT_MS = 10_000;
/** Bytes of the process's stderr kept to explain its exit. */
const STDERR_TAIL_BYTES = 2048;

// The syscall and ioctl numbers are x86_64 Linux's, as is the guest. Perl passes a numeric
// argument as an integer and a string one as a pointer to its bytes, hence the `+ 0`.
const SCRIPT = String.raw`
$| = 1;
open(my $urandom, '<', '/dev/urandom') or die "open /dev/urandom: $!\n";
socket(my $sock, 2, 2, 0) or die "socket: $!\n";
sub clock_now {
  my $ts = "\0" x 16;
  syscall(228, $_[0] + 0, $ts) == 0 or die "Internal clock_gettime: $!\n";
  return unpack('q<q<', $ts);
}
sub colons { return join(':', unpack('(A2)*', $_[0])); }
# struct ifreq: a name, then a 24-byte union. A name the kernel would cut short must not reach it.
sub ifreq {
  length($_[0]) <= 15 or die "Internal interface name '$_[0]' is longer than 15 bytes\n";
  return pack('a16 a24', $_[0], $_[1] // '');
}
sub flags_of {
  my $req = ifreq($_[0]);
  ioctl($sock, 0x8913, $req) or die "Internal ioctl SIOCGIFFLAGS $_[0]: $!\n";
  return unpack('x16 s', $req);
}
sub set_flags { ioctl($sock, 0x8914, ifreq($_[0], pack('s', $_[1]))) or die "Internal ioctl SIOCSIFFLAGS $_[0]: $!\n"; }
sub sin4 { return pack('S n C4 x8', 2, 0, split(/\./, $_[0])); }
sub mask4 { return join('.', unpack('C4', pack('N', (0xffffffff << (32 - $_[0])) & 0xffffffff))); }
# The IPv4 addresses of interface $_[0], as label => "ip/len", from SIOCGIFCONF and SIOCGIFNETMASK.
sub ipv4_of {
  my ($dev) = @_;
  my $buf = "\0" x (40 * 256);
  my $conf = pack('i x4 p', length($buf), $buf);
  ioctl($sock, 0x8912, $conf) or die "Internal ioctl SIOCGIFCONF: $!\n";
  my %have;
  for (my $at = 0; $at < unpack('i', $conf); $at += 40) {
    my ($label, $address) = unpack("x$at Z16 x4 a4", $buf);
    next unless $label eq $dev || index($label, "$dev:") == 0;
    my $req = ifreq($label);
    ioctl($sock, 0x891b, $req) or die "Internal ioctl SIOCGIFNETMASK $label: $!\n";
    my $mask = unpack('x20 N', $req);
    my $len = 0;
    $len++ while $len < 32 && ($mask << $len) & 0x80000000;
    $have{$label} = join('.', unpack('C4', $address)) . "/$len";
  }
  return %have;
}
sub set_ipv4 {
  my ($label, $address, $len) = @_;
  ioctl($sock, 0x8916, ifreq($label, sin4($address))) or die "Internal ioctl SIOCSIFADDR $label $address: $!\n";
  ioctl($sock, 0x891c, ifreq($label, sin4(mask4($len)))) or die "Internal ioctl SIOCSIFNETMASK $label /$len: $!\n";
}
# SIOCADDRT or SIOCDELRT with a struct rtentry: RTF_UP, RTF_GATEWAY with a gateway, RTF_HOST for a /32;
# rt_dev points at the name (or is NULL: any interface).
sub rtentry_call {
  my ($request, $dst, $len, $gateway, $dev) = @_;
  my $flags = 1 | ($gateway ne '' ? 2 : 0) | ($len == 32 ? 4 : 0);
  my $rt = pack('x8 a16 a16 a16 S x6 x16 s x6 p x24', sin4($dst), sin4($gateway ne '' ? $gateway : '0.0.0.0'), sin4(mask4($len)), $flags, 0, $dev);
  return ioctl($sock, $request, $rt);
}
sub interfaces_by_mac {
  my %by_mac;
  opendir(my $dir, '/sys/class/net') or die "Internal opendir /sys/class/net: $!\n";
  for my $name (readdir $dir) {
    next if $name =~ /^\./;
    open(my $file, '<', "/sys/class/net/$name/address") or next;
    my $address = <$file>;
    next unless defined $address;
    $address =~ s/[:\n]//g;
    $by_mac{lc $address} //= $name;
  }
  return %by_mac;
}
my $nic;
sub nic_name { return $nic // die "Internal '$_[0]' needs a 'nic' field before it\n"; }
while (my $line = <STDIN>) {
  chomp $line;
  my @reply = ('ok');
  undef $nic;
  eval {
    for my $field (split / /, $line) {
      my ($key, $value) = split /=/, $field, 2;
      my @v = split /,/, $value;
      if ($key eq 'clock') {
        my ($was_sec, $was_nsec) = clock_now(0);
        my ($mono_sec, $mono_nsec) = clock_now(1);
        my $sec = $v[0] + $mono_sec - $v[2];
        my $nsec = $v[1] + $mono_nsec - $v[3];
        while ($nsec < 0) { $nsec += 1000000000; $sec--; }
        while ($nsec >= 1000000000) { $nsec -= 1000000000; $sec++; }
        syscall(227, 0, pack('q<q<', $sec, $nsec)) == 0 or die "Internal clock_settime: $!\n";
        push @reply, "clock=$was_sec,$was_nsec";
      } elsif ($key eq 'seed') {
        my $bytes = pack('H*', $value);
        my $info = pack('ii', 8 * length($bytes), length($bytes)) . $bytes;
        ioctl($urandom, 0x40085203, $info) or die "Internal ioctl RNDADDENTROPY: $!\n";
        ioctl($urandom, 0x5207, 0) or die "Internal ioctl RNDRESEEDCRNG: $!\n";
      } elsif ($key eq 'mac') {
        my %by_mac = interfaces_by_mac();
        my $name = $by_mac{$v[0]};
        if (defined $name) {
          my $ifreq = pack('a16 S a6 x16', $name, 1, pack('H12', $v[1]));
          ioctl($sock, 0x8924, $ifreq) or die "Internal ioctl SIOCSIFHWADDR $name: $!\n";
        } elsif (!defined $by_mac{$v[1]}) {
          die 'NotFound no guest interface has MAC ' . colons($v[0]) . ' (or already ' . colons($v[1]) . ")\n";
        }
      } elsif ($key eq 'nic') {
        my ($mac, $name, $mtu) = @v;
        my %by_mac = interfaces_by_mac();
        $nic = $by_mac{$mac} // die 'NotFound no guest interface has MAC ' . colons($mac) . "\n";
        if ($name ne '' && $name ne $nic) {
          set_flags($nic, flags_of($nic) & ~1);
          ioctl($sock, 0x8923, ifreq($nic, $name)) or die "Internal ioctl SIOCSIFNAME $nic to $name: $!\n";
          $nic = $name;
        }
        if ($mtu) { ioctl($sock, 0x8922, ifreq($nic, pack('i', $mtu))) or die "Internal ioctl SIOCSIFMTU $nic $mtu: $!\n"; }
        push @reply, "nic=$nic";
      } elsif ($key eq 'addr4') {
        my $dev = nic_name($key);
        my @labels = map { $_ == 0 ? $dev : "$dev:$_" } 0 .. $#v;
        my %have = ipv4_of($dev);
        my $same = keys(%have) == @v && !grep { ($have{$labels[$_]} // '') ne $v[$_] } 0 .. $#v;
        if (!$same) {
          # A secondary label goes when it is set down; the first address when it is set to 0.0.0.0.
          for my $label (grep { $_ ne $dev } keys %have) { set_flags($label, 0); }
          if (exists $have{$dev}) { ioctl($sock, 0x8916, ifreq($dev, sin4('0.0.0.0'))) or die "Internal ioctl SIOCSIFADDR $dev 0.0.0.0: $!\n"; }
          set_ipv4($labels[$_], split(m{/}, $v[$_])) for 0 .. $#v;
        }
      } elsif ($key eq 'up') {
        my $dev = nic_name($key);
        set_flags($dev, $value ? flags_of($dev) | 1 : flags_of($dev) & ~1);
      } elsif ($key eq 'route4') {
        my $dev = nic_name($key);
        my ($dst, $len, $gateway) = split m{/}, $value, 3;
        # Every route to dst/len goes first, until ESRCH (3) says none is left: at most 64, so that a
        # kernel answering otherwise cannot keep this looping.
        my $deleted = 0;
        $deleted++ while $deleted < 64 && rtentry_call(0x890C, $dst, $len, '', undef);
        $! + 0 == 3 or die "Internal ioctl SIOCDELRT $dst/$len: $!\n";
        rtentry_call(0x890B, $dst, $len, $gateway, $dev) or die "Internal ioctl SIOCADDRT $dst/$len via '$gateway' dev $dev: $!\n";
      } elsif ($key eq 'hostname') {
        syscall(170, $value, length($value)) == 0 or die "Internal sethostname: $!\n";
      } else {
        die "Internal unknown field '$key'\n";
      }
    }
  };
  if ($@) { chomp(my $err = $@); print "error $err\n"; } else { print join(' ', @reply), "\n"; }
}
`;

/** CLOCK_REALTIME to set, as of a CLOCK_MONOTONIC instant (process.hrtime()'s clock): the time since is added. */
export interface ClockSetting { epochMs: number; at: [seconds: number, nanoseconds: number] }

/** What one request does, in this order. The caller has validated every value (see system.ts). */
export interface SyscallRequest {
  clock?: ClockSetting;
  /** Host randomness, credited in full: the caller vouches for it. */
  seed?: Buffer;
  /** MACs in lowercase with colons. */
  mac?: { from: string; to: string };
  /** The NIC with `mac` (after the change above): its name, MTU, IPv4 addresses, up, then IPv4 routes. */
  nic?: { mac: string; name?: string; mtu?: number; ipv4: Cidr[]; up: boolean; routes4: RouteSpec[] };
  hostname?: string;
}

export interface SyscallResult {
  /** The realtime clock just before it was set, when the request set it. */
  previousEpochMs?: number;
  /** The NIC's name, when the request configured one. */
  nic?: string;
}

interface Waiting { resolve(line: string): void; reject(err: Error): void; timer: NodeJS.Timeout }

/** The resident perl process (see the comment above); requests wait their turn. */
export class SyscallProcess {
  private child: ChildProcess | null = null;
  private readonly waiting: Waiting[] = [];
  private stdout = '';
  private stderr = '';

  async call(request: SyscallRequest): Promise<SyscallResult> {
    const fields: string[] = [];
    if (request.clock) {
      const { epochMs, at } = request.clock;
      fields.push(`clock=${Math.floor(epochMs / 1000)},${(epochMs % 1000) * 1_000_000},${at[0]},${at[1]}`);
    }
    if (request.seed) fields.push(`seed=${request.seed.toString('hex')}`);
    if (request.mac) fields.push(`mac=${request.mac.from.replaceAll(':', '')},${request.mac.to.replaceAll(':', '')}`);
    if (request.nic) {
      const { mac, name, mtu, ipv4, up, routes4 } = request.nic;
      fields.push(`nic=${mac.replaceAll(':', '')},${name ?? ''},${mtu ?? 0}`);
      fields.push(`addr4=${ipv4.map((a) => `${a.address}/${a.prefixLength}`).join(',')}`);
      fields.push(`up=${up ? 1 : 0}`);
      for (const r of routes4) fields.push(`route4=${r.prefix.address}/${r.prefix.prefixLength}/${r.gateway ?? ''}`);
    }
    if (request.hostname !== undefined) fields.push(`hostname=${request.hostname}`);
    const answer = await this.send(fields.join(' '));
    const error = /^error (NotFound|Internal) (.*)$/.exec(answer);
    if (error) throw new AgentError(error[1] as 'NotFound' | 'Internal', error[2]!);
    const [status, ...results] = answer.split(' ');
    if (status !== 'ok') throw new AgentError('Internal', `${PERL} answered '${answer}'`);
    const result: SyscallResult = {};
    for (const field of results) {
      const clock = /^clock=(-?\d+),(\d+)$/.exec(field);
      if (clock) result.previousEpochMs = Number(clock[1]) * 1000 + Math.floor(Number(clock[2]) / 1_000_000);
      const nic = /^nic=(.+)$/.exec(field);
      if (nic) result.nic = nic[1];
    }
    return result;
  }

  private send(line: string): Promise<string> {
    const child = this.child ?? this.start();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new AgentError('Internal', `${PERL} did not answer within ${SYSCALL_TIMEOUT_MS} ms; it is killed and restarted`));
        child.kill('SIGKILL');
      }, SYSCALL_TIMEOUT_MS);
      this.waiting.push({ resolve, reject, timer });
      child.stdin!.write(`${line}\n`);
    });
  }

  private start(): ChildProcess {
    const child = spawn(PERL, ['-e', SCRIPT], { env: {}, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.stdout = '';
    this.stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      for (let end = this.stdout.indexOf('\n'); end >= 0; end = this.stdout.indexOf('\n')) {
        const answer = this.stdout.slice(0, end);
        this.stdout = this.stdout.slice(end + 1);
        const waiting = this.waiting.shift();
        if (waiting) {
          clearTimeout(waiting.timer);
          waiting.resolve(answer);
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr = (this.stderr + chunk).slice(-STDERR_TAIL_BYTES);
    });
    // A write to a process that died fails with EPIPE; the exit below answers its caller.
    child.stdin!.on('error', () => undefined);
    child.once('error', (err) => this.ended(child, err.message));
    child.once('exit', (code, signal) => this.ended(child, signal ? `killed by ${signal}` : `exited with ${code}`));
    return child;
  }

  /** Fails every request still waiting: a new process takes the next one. */
  private ended(child: ChildProcess, how: string): void {
    if (this.child !== child) return;
    this.child = null;
    const why = new AgentError('Internal', `${PERL} ${how}${this.stderr.trim() ? `: ${this.stderr.trim()}` : ''}`);
    for (const waiting of this.waiting.splice(0)) {
      clearTimeout(waiting.timer);
      waiting.reject(why);
    }
  }
}
