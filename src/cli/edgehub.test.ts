import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../test/support/wait.js';
import { ensurePki, issueClientCert } from '../apiserver/auth/pki.js';

const ATOLL = fileURLToPath(new URL('../../../bin/atoll', import.meta.url));

function atoll(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ATOLL, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('atoll edgehub flags', () => {
  let dir: string;
  let tls: string[];
  let nodeTls: string[];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-edgehub-cli-'));
    // Flag checks read the files as PEM only; the CA's own pair stands in for a node's.
    const pki = await ensurePki(join(dir, 'pki'), { hosts: ['127.0.0.1'] });
    tls = ['--ca-file', pki.caCertPath, '--cert-file', pki.caCertPath, '--key-file', pki.caKeyPath];
    const node = await issueClientCert(pki, { cn: 'system:node:edge-1', groups: ['system:nodes'] });
    await writeFile(join(dir, 'node.crt'), node.certPem);
    await writeFile(join(dir, 'node.key'), node.keyPem);
    nodeTls = ['--ca-file', pki.caCertPath, '--cert-file', join(dir, 'node.crt'), '--key-file', join(dir, 'node.key')];
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const cases: [string, () => string[], RegExp][] = [
    ['no --server', () => [...tls, '--socket', join(dir, 's.sock')], /--server is required/],
    ['a plain-HTTP --server', () => ['--server', 'https://10.0.0.1:6443', '--server', 'http://10.0.0.2:6443', ...tls, '--socket', join(dir, 's.sock')], /--server http:\/\/10\.0\.0\.2:6443: not an https:\/\/ URL/],
    ['no --ca-file', () => ['--server', 'https://10.0.0.1:6443', '--socket', join(dir, 's.sock')], /--ca-file is required/],
    ['a --key-file that is no key', () => ['--server', 'https://10.0.0.1:6443', ...tls.slice(0, 4), '--key-file', tls[1]!, '--socket', join(dir, 's.sock')], /--key-file .*: not PEM/],
    ['neither --socket nor --listen', () => ['--server', 'https://10.0.0.1:6443', ...tls], /--socket PATH or --listen HOST:PORT is required/],
    ['both --socket and --listen', () => ['--server', 'https://10.0.0.1:6443', ...tls, '--socket', 'x', '--listen', '127.0.0.1:1'], /--socket and --listen: give one of them/],
    ['--listen off loopback', () => ['--server', 'https://10.0.0.1:6443', ...tls, '--listen', '0.0.0.0:10261'], /listens on loopback only/],
    ['--listen without a token', () => ['--server', 'https://10.0.0.1:6443', ...tls, '--listen', '127.0.0.1:10261'], /--listen: needs --token-file/],
    ['--token-file with --socket', () => ['--server', 'https://10.0.0.1:6443', ...tls, '--socket', 'x', '--token-file', 'y'], /--token-file: only with --listen/],
    ['a bad --probe-period', () => ['--server', 'https://10.0.0.1:6443', ...tls, '--socket', 'x', '--probe-period', '0'], /--probe-period 0: want at least 1 second/],
    ['an upper-case --cache-resources', () => ['--server', 'https://10.0.0.1:6443', ...tls, '--socket', 'x', '--cache-resources', 'pods,ConfigMaps'], /--cache-resources: "ConfigMaps" is not a plural resource name: give lowercase names such as pods/],
    ['a blank in --cache-resources', () => ['--server', 'https://10.0.0.1:6443', ...tls, '--socket', 'x', '--cache-resources', 'pods,,secrets'], /--cache-resources pods,,secrets: an empty name/],
    ['* among other --cache-components', () => ['--server', 'https://10.0.0.1:6443', ...tls, '--socket', 'x', '--cache-components', 'kubelet,*'], /--cache-components kubelet,\*: \* already means all/],
    ['a --cache-components with a slash', () => ['--server', 'https://10.0.0.1:6443', ...tls, '--socket', 'x', '--cache-components', 'kubelet/v1.30'], /--cache-components: "kubelet\/v1.30" is not a client component: give the User-Agent up to its first '\/'/],
    ['a write verb in --cache-verbs', () => ['--server', 'https://10.0.0.1:6443', ...tls, '--socket', 'x', '--cache-verbs', 'get,update'], /--cache-verbs: "update" is not a cacheable verb: choose from get, list, watch/],
    ['a bad --node-name', () => ['--server', 'https://10.0.0.1:6443', ...tls, '--socket', 'x', '--node-name', 'Edge_1'], /--node-name Edge_1: not a node name/],
    ['a --node-name other than the certificate\'s', () => ['--server', 'https://10.0.0.1:6443', ...nodeTls, '--socket', 'x', '--node-name', 'edge-2'], /--node-name edge-2: --cert-file belongs to node "edge-1"/],
  ];
  it('serves from its socket (mode 0600) with the cloud unreachable, and removes the socket when stopped', async () => {
    // A loopback port nothing listens on stands in for a cloud that cannot be reached.
    const closed = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as net.AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    const socketPath = join(dir, 'edgehub.sock');
    const child = spawn(process.execPath, [ATOLL, 'edgehub', '--server', `https://127.0.0.1:${closed}`, ...tls, '--socket', socketPath, '--cache', join(dir, 'cache', 'cache.db')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      await waitFor('edgehub to serve', async () => out.includes('serving on'), 15_000);
      assert.match(out, /the cloud is unreachable/);
      assert.equal((await stat(socketPath)).mode & 0o777, 0o600);
      const health = JSON.parse(await get(socketPath, '/healthz')) as { cloud: { healthy: boolean } };
      assert.equal(health.cloud.healthy, false);
    } finally {
      child.kill('SIGTERM');
    }
    assert.equal(await exited, 0);
    await assert.rejects(stat(socketPath));
  });

  for (const [what, args, message] of cases) {
    it(`names the flag and the fix for ${what}`, async () => {
      const r = await atoll('edgehub', ...args());
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
    });
  }
});

function get(socketPath: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
    });
    req.on('error', reject);
    req.end();
  });
}
