import { execFile } from 'node:child_process';

/** How long a host tool (apt, dpkg-deb, mkfs, cpio) may run before it is killed. */
export const HOST_TOOL_TIMEOUT_MS = 10 * 60_000;
const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/**
 * Runs a host tool and returns its stdout. A failure names the command and carries the tool's own
 * stderr, since that is what says how to fix it. The child is always reaped (execFile waits for it).
 */
export function runTool(file: string, args: string[], options: { cwd?: string; signal?: AbortSignal; input?: Buffer } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { cwd: options.cwd, signal: options.signal, timeout: HOST_TOOL_TIMEOUT_MS, maxBuffer: MAX_OUTPUT_BYTES, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? `${file} is not installed (run 'bash scripts/deps')` : stderr.trim() || err.message;
      reject(new Error(`${file} ${args.join(' ')}: ${why}`));
    });
    if (options.input) child.stdin?.end(options.input);
  });
}
