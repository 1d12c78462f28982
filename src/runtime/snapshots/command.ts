import { execFile } from 'node:child_process';

/** Long enough for mount(8) on a slow disk; a command still running after this is killed. */
const COMMAND_TIMEOUT_MS = 60_000;

export interface CommandOptions {
  /** Working directory of the child (mount(8) resolves relative overlay lowerdirs against it). */
  cwd?: string;
}

/** A tool exited non-zero or could not start; `stderr` is what it said. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly args: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    cause?: unknown,
  ) {
    const said = stderr.trim() || (cause instanceof Error ? cause.message : 'no output');
    super(`${command} ${args.join(' ')}: ${said}`, { cause });
    this.name = 'CommandError';
  }
}

/** Runs a tool without a shell and resolves with its stdout. The child is reaped before this settles. */
export function run(command: string, args: readonly string[], options: CommandOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd: options.cwd, timeout: COMMAND_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const code = typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null;
        reject(new CommandError(command, args, code, stderr, err));
      },
    );
  });
}
