import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { TerminalSize } from './protocol.js';
import type { StreamSession } from './runtime.js';

/** conmon's control-FIFO event for a terminal resize (config.h WIN_RESIZE_EVENT): "1 <rows> <cols>\n". */
const WIN_RESIZE_EVENT = 1;
/** conmon's STDIO_BUF_SIZE plus the stream byte that starts every message on the attach socket. */
const ATTACH_MESSAGE_BYTES = 8192 + 1;
/** perl is on every Debian host (perl-base is essential) and on runv's guest agent disk. */
const PERL = '/usr/bin/perl';

/**
 * The relay between conmon's attach socket and plain pipes. The socket is SOCK_SEQPACKET, which
 * Node's net module cannot open, so a small perl process holds it: each message's first byte names
 * the stream (2 stdout, 3 stderr); the relay writes stdout to fd 1 and stderr to fd 3. With stdin it
 * sends fd 0 to the socket raw (conmon copies it to the container's stdin) and shuts the socket's
 * write side down at EOF; without, it never writes, since conmon takes EOF as the client leaving.
 * Errors go to fd 2. It uses perl's builtins only (numeric AF_UNIX 1, SOCK_SEQPACKET 5, EINTR 4):
 * runv's guest has the perl binary and no modules, and attaches from there too.
 */
const RELAY = String.raw`
my ($path, $size, $mode) = @ARGV;
socket(my $s, 1, 5, 0) or die "socket: $!\n";
connect($s, pack('S Z*', 1, $path)) or die "connect $path: $!\n";
open(my $err, '>&=', 3) or die "fd 3: $!\n";
sub put { my ($fh, $data) = @_; while (length $data) { my $n = syswrite($fh, $data); defined $n or die "write: $!\n"; substr($data, 0, $n) = ''; } }
my $stdin = $mode eq 'stdin';
while (1) {
  my $rin = '';
  vec($rin, fileno($s), 1) = 1;
  vec($rin, 0, 1) = 1 if $stdin;
  my $ready = select(my $rout = $rin, undef, undef, undef);
  if ($ready < 0) { next if $! == 4; die "select: $!\n"; }
  if (vec($rout, fileno($s), 1)) {
    defined(recv($s, my $msg, $size, 0)) or die "recv: $!\n";
    last if $msg eq '';
    my $stream = ord($msg);
    if (length($msg) > 1) { put(\*STDOUT, substr($msg, 1)) if $stream == 2; put($err, substr($msg, 1)) if $stream == 3; }
  }
  if ($stdin && vec($rout, 0, 1)) {
    my $got = sysread(STDIN, my $data, $size - 1);
    defined $got or die "read stdin: $!\n";
    if ($got) { defined(send($s, $data, 0)) or die "send: $!\n"; } else { $stdin = 0; shutdown($s, 1); }
  }
}
`;

export interface ConmonAttachOptions {
  /** conmon's attach socket: <socket dir>/<cuuid>/attach. */
  socketPath: string;
  /** conmon's control FIFO in the container's persist dir; resizes go here. */
  ctlPath: string;
  stdin: boolean;
  tty: boolean;
  /** The container's exit code once the attached streams ended; 0 (Success) when absent or still running. */
  exitCode?: () => Promise<number | undefined>;
}

/**
 * Attaches to a conmon-run container's main process: its output from now on (conmon keeps no
 * backlog), its stdin when the container was created with stdin open, and tty resizes. Ending the
 * session (`kill`) detaches; the container keeps running.
 */
export function conmonAttach(options: ConmonAttachOptions): Promise<StreamSession> {
  const relay = spawn(PERL, ['-e', RELAY, options.socketPath, String(ATTACH_MESSAGE_BYTES), options.stdin ? 'stdin' : 'no-stdin'], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let errors = '';
    relay.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    relay.on('error', (err) => reject(new Error(`attach relay (${PERL}): ${err.message}`)));
    relay.on('spawn', () => {
      const exited = new Promise<number>((done, fail) => {
        relay.on('close', (code, signal) => {
          if (code !== 0 && signal === null) return fail(new Error(`attach to ${options.socketPath}: ${errors.trim().split('\n').pop() ?? `relay exited with ${code}`}`));
          done((options.exitCode ? options.exitCode() : Promise.resolve(undefined)).then((exit) => exit ?? 0));
        });
      });
      relay.stdin.on('error', () => undefined);
      resolve({
        stdin: options.stdin ? relay.stdin : null,
        stdout: relay.stdout,
        stderr: options.tty ? null : (relay.stdio[3] as Readable),
        exited,
        kill: () => void relay.kill('SIGTERM'),
        resize: options.tty ? (size: TerminalSize) => void resizeTerminal(options.ctlPath, size) : undefined,
      });
    });
  });
}

/** Asks conmon, through its control FIFO, to resize the terminal of the container it runs. */
export async function resizeTerminal(ctlPath: string, size: TerminalSize): Promise<void> {
  const handle = await open(ctlPath, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => undefined);
  if (!handle) return;
  try {
    await handle.write(`${WIN_RESIZE_EVENT} ${size.height} ${size.width}\n`);
  } finally {
    await handle.close();
  }
}

