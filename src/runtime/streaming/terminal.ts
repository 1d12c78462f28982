import { execFile } from 'node:child_process';
import { readFile, readlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { TerminalSize } from './protocol.js';

const run = promisify(execFile);
const STTY = 'stty';
/** A resize that comes right after the exec started may find `script` still setting up its terminal. */
const TERMINAL_LOOKUP_ATTEMPTS = 50;
const TERMINAL_LOOKUP_INTERVAL_MS = 20;
const PTS = /^\/dev\/pts\/\d+$/;

/**
 * Resizes the terminal of a tty exec. `runc exec` with a terminal runs in the foreground under
 * `script`, which gives it a pseudo-terminal as stdin; runc copies that terminal's size to the
 * container's console at start and on every SIGWINCH. Setting the size of script's terminal (found
 * as the stdin of script's child) makes the kernel send that SIGWINCH to its foreground process
 * group, runc included. Resizes apply in order; one that cannot (the exec is gone) is dropped.
 */
export function scriptTerminalResizer(scriptPid: number): (size: TerminalSize) => void {
  let applied: Promise<void> = Promise.resolve();
  return (size) => {
    applied = applied.then(() => resizeScriptTerminal(scriptPid, size)).catch(() => undefined);
  };
}

async function resizeScriptTerminal(scriptPid: number, size: TerminalSize): Promise<void> {
  const terminal = await terminalOf(scriptPid);
  if (terminal) await run(STTY, ['-F', terminal, 'rows', String(size.height), 'cols', String(size.width)]);
}

async function terminalOf(scriptPid: number): Promise<string | undefined> {
  for (let attempt = 0; attempt < TERMINAL_LOOKUP_ATTEMPTS; attempt++) {
    const children = await readFile(`/proc/${scriptPid}/task/${scriptPid}/children`, 'utf8').catch(() => undefined);
    if (children === undefined) return undefined;
    for (const child of children.split(' ').filter(Boolean)) {
      const stdin = await readlink(`/proc/${child}/fd/0`).catch(() => '');
      if (PTS.test(stdin)) return stdin;
    }
    await sleep(TERMINAL_LOOKUP_INTERVAL_MS);
  }
  return undefined;
}
