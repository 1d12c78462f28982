/** bench/runv's progress lines: on stderr, so that stdout holds only the tables and the JSON line. */
export function log(line: string): void {
  console.error(`[bench/runv] ${line}`);
}
