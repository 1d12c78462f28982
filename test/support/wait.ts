/** How often a condition is polled. */
export const POLL_MS = 100;
export const DEFAULT_WAIT_MS = 15_000;

/**
 * Polls `check` until it returns a truthy value, which is returned. A check that throws counts as
 * not yet; on timeout the error names `what` and the last error seen.
 */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false | null>, timeoutMs = DEFAULT_WAIT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
