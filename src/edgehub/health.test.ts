import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensurePki } from '../apiserver/auth/pki.js';
import { waitFor } from '../../test/support/wait.js';
import { UpstreamHealth, type EndpointState } from './health.js';

/** Probe fast; the thresholds stay at their defaults (3 failures, 2 successes). */
const PERIOD_MS = 20;

describe('UpstreamHealth', () => {
  let dir: string;
  let server: https.Server;
  let agent: https.Agent;
  let answer = 200;
  const abort = new AbortController();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-edgehub-health-'));
    const pki = await ensurePki(join(dir, 'pki'), { hosts: [] });
    server = https.createServer({ cert: pki.servingCertPem, key: pki.servingKeyPem }, (req, res) => {
      res.writeHead(req.url === '/readyz' ? answer : 404);
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    agent = new https.Agent({ ca: pki.caCertPem });
  });

  after(async () => {
    abort.abort();
    agent?.destroy();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  it('needs 3 failures to go unhealthy and 2 successes to come back', async () => {
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const health = new UpstreamHealth([url], agent, { periodMs: PERIOD_MS });
    const transitions: { current: string | undefined; state: EndpointState }[] = [];
    await health.start(abort.signal);
    assert.equal(health.current(), url, 'the first round decides the initial state');
    health.onChange((current) => transitions.push({ current, state: health.snapshot()[0]! }));

    answer = 500;
    await waitFor('the endpoint to go unhealthy', async () => transitions.length === 1);
    assert.equal(transitions[0]!.current, undefined);
    assert.equal(transitions[0]!.state.consecutiveFailures, 3);
    assert.match(transitions[0]!.state.lastError ?? '', /answered 500/);

    answer = 200;
    await waitFor('the endpoint to come back', async () => transitions.length === 2);
    assert.equal(transitions[1]!.current, url);
    assert.equal(transitions[1]!.state.consecutiveSuccesses, 2);
    abort.abort();
    await health.settled();
  });

  it('starts unhealthy when the first probe fails, and refuses bad configuration', async () => {
    const local = new AbortController();
    const health = new UpstreamHealth(['https://127.0.0.1:1'], agent, { periodMs: PERIOD_MS });
    await health.start(local.signal);
    assert.equal(health.healthy, false);
    local.abort();
    await health.settled();
    assert.throws(() => new UpstreamHealth([], agent), /at least one cloud endpoint/);
    assert.throws(() => new UpstreamHealth(['http://127.0.0.1:1'], agent), /must be an https:\/\/ URL/);
    assert.throws(() => new UpstreamHealth(['https://127.0.0.1:1'], agent, { periodMs: 0 }), /periodMs must be a positive integer/);
  });
});
