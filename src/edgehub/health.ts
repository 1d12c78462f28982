import https from 'node:https';

/**
 * Upstream health for EdgeHub: which cloud endpoint, if any, requests should go to.
 *
 * Every endpoint is probed with `GET /readyz` each period, using the node's own credentials. The first
 * round decides each endpoint's initial state outright, so a node that boots offline goes to its cache
 * at once. After that, `failureThreshold` consecutive failures mark an endpoint unhealthy and
 * `successThreshold` consecutive successes mark it healthy again, so one lost probe does not flap the
 * node between cloud and cache. `current()` is the first healthy endpoint in configured order, which
 * is how EdgeHub fails over between several API servers and returns to the preferred one.
 */

/** How often each endpoint is probed unless told otherwise (YurtHub's period). */
export const DEFAULT_PROBE_PERIOD_MS = 10_000;
/** A probe that takes longer than this counts as a failure. */
export const DEFAULT_PROBE_TIMEOUT_MS = 2_000;
export const DEFAULT_FAILURE_THRESHOLD = 3;
export const DEFAULT_SUCCESS_THRESHOLD = 2;
const PROBE_PATH = '/readyz';

export interface TlsCredentials {
  caPem?: string;
  certPem?: string;
  keyPem?: string;
}

export interface HealthOptions {
  periodMs?: number;
  timeoutMs?: number;
  failureThreshold?: number;
  successThreshold?: number;
}

export interface EndpointState {
  url: string;
  healthy: boolean;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  lastError?: string;
}

/** Called whenever the endpoint requests should go to changes; `undefined` means the cloud is unreachable. */
export type HealthListener = (current: string | undefined, previous: string | undefined) => void;

export class UpstreamHealth {
  private readonly states: EndpointState[];
  private readonly listeners = new Set<HealthListener>();
  private readonly periodMs: number;
  private readonly timeoutMs: number;
  private readonly failureThreshold: number;
  private readonly successThreshold: number;
  private timer?: NodeJS.Timeout;
  private probing?: Promise<void>;

  constructor(
    endpoints: readonly string[],
    private readonly agent: https.Agent,
    opts: HealthOptions = {},
  ) {
    if (endpoints.length === 0) throw new Error('edgehub: at least one cloud endpoint is required');
    for (const e of endpoints) {
      const u = new URL(e);
      if (u.protocol !== 'https:') throw new Error(`edgehub: cloud endpoint ${e} must be an https:// URL`);
    }
    this.periodMs = positive('periodMs', opts.periodMs ?? DEFAULT_PROBE_PERIOD_MS);
    this.timeoutMs = positive('timeoutMs', opts.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS);
    this.failureThreshold = positive('failureThreshold', opts.failureThreshold ?? DEFAULT_FAILURE_THRESHOLD);
    this.successThreshold = positive('successThreshold', opts.successThreshold ?? DEFAULT_SUCCESS_THRESHOLD);
    this.states = endpoints.map((url) => ({ url: url.replace(/\/+$/, ''), healthy: false, consecutiveFailures: 0, consecutiveSuccesses: 0 }));
  }

  /** Runs the first probe round (which sets the initial state), then probes every period until `signal` aborts. */
  async start(signal: AbortSignal): Promise<void> {
    await this.probeAll(true);
    const tick = () => {
      if (signal.aborted) return;
      this.probing = this.probeAll(false).finally(() => {
        if (!signal.aborted) this.timer = setTimeout(tick, this.periodMs);
      });
    };
    this.timer = setTimeout(tick, this.periodMs);
    signal.addEventListener('abort', () => clearTimeout(this.timer), { once: true });
  }

  /** Waits for a probe round in flight, so close() leaves no request behind. */
  async settled(): Promise<void> {
    await this.probing;
  }

  /** The endpoint requests should use now, or undefined while every endpoint is unhealthy. */
  current(): string | undefined {
    return this.states.find((s) => s.healthy)?.url;
  }

  get healthy(): boolean {
    return this.current() !== undefined;
  }

  snapshot(): EndpointState[] {
    return this.states.map((s) => ({ ...s }));
  }

  onChange(listener: HealthListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private async probeAll(initial: boolean): Promise<void> {
    const before = this.current();
    const results = await Promise.all(this.states.map((s) => this.probe(s.url)));
    results.forEach((error, i) => this.record(this.states[i]!, error, initial));
    const after = this.current();
    if (after !== before) for (const l of this.listeners) l(after, before);
  }

  private record(s: EndpointState, error: string | undefined, initial: boolean): void {
    if (error === undefined) {
      s.consecutiveSuccesses++;
      s.consecutiveFailures = 0;
      delete s.lastError;
      if (initial || s.consecutiveSuccesses >= this.successThreshold) s.healthy = true;
    } else {
      s.consecutiveFailures++;
      s.consecutiveSuccesses = 0;
      s.lastError = error;
      if (initial || s.consecutiveFailures >= this.failureThreshold) s.healthy = false;
    }
  }

  /** Undefined on success, else why the probe failed. */
  private probe(base: string): Promise<string | undefined> {
    return new Promise((resolve) => {
      const url = new URL(PROBE_PATH, base);
      const req = https.request(url, { method: 'GET', agent: this.agent, timeout: this.timeoutMs, headers: { Accept: 'text/plain' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200 ? undefined : `${PROBE_PATH} answered ${res.statusCode}`));
        res.on('error', (err) => resolve(err.message));
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (err) => resolve(err.message));
      req.end();
    });
  }
}

function positive(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`edgehub: ${name} must be a positive integer, got ${v}`);
  return v;
}
