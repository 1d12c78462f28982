import assert from 'node:assert/strict';
import http from 'node:http';
import type { Kubectl } from '../e2e/harness.js';
import { waitFor } from './wait.js';

/**
 * The checks of kubectl's streaming commands that every path to a pod (API server -> node server, or
 * through EdgeHub) must pass alike.
 */

/** `kubectl exec`: output, a non-zero exit code, and stdin with `-i`. */
export async function checkKubectlExec(k: Kubectl, pod: string, container: string): Promise<void> {
  assert.equal(await k('exec', pod, '-c', container, '--', 'sh', '-c', 'echo hi; echo there >&2'), 'hi\n');
  const failed = await k.result('exec', pod, '-c', container, '--', 'sh', '-c', 'exit 3');
  assert.equal(failed.code, 3, failed.stderr);
  const cat = k.spawn('exec', '-i', pod, '-c', container, '--', 'cat');
  let out = '';
  cat.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  cat.stdin!.end('through stdin\n');
  const code = await new Promise<number | null>((resolve) => cat.on('close', resolve));
  assert.equal(code, 0);
  assert.equal(out, 'through stdin\n');
}

/** `kubectl port-forward` to `port` in the pod, then an HTTP GET of `path` through it, which must answer `body`. */
export async function checkKubectlPortForward(k: Kubectl, pod: string, port: number, { path = '/index.html', body: expected = 'served\n' } = {}): Promise<void> {
  const forward = k.spawn('port-forward', `pod/${pod}`, `:${port}`);
  let out = '';
  forward.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  forward.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const local = Number(
      await waitFor('kubectl to listen', async () => /Forwarding from 127\.0\.0\.1:(\d+)/.exec(out)?.[1]).catch((err: Error) => {
        throw new Error(`${err.message}; kubectl said: ${out}`);
      }),
    );
    const body = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: local, path }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve(text));
      }).on('error', reject);
    });
    assert.equal(body, expected, out);
  } finally {
    forward.kill();
    await new Promise((resolve) => (forward.exitCode !== null ? resolve(undefined) : forward.once('close', resolve)));
  }
}
