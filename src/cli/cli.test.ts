import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ATOLL = fileURLToPath(new URL('../../../bin/atoll', import.meta.url));

function atoll(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [ATOLL, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('atoll CLI', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-cli-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('describes every flag of server in --help', async () => {
    const r = await atoll('server', '--help');
    assert.equal(r.code, 0);
    for (const flag of ['--data-dir', '--port', '--host', '--tls-san', '--config']) assert.match(r.stdout, new RegExp(flag));
  });

  it('names the flag and the fix for a bad port, and writes nothing', async () => {
    const data = join(dir, 'never');
    const r = await atoll('server', '--port', '99999', '--data-dir', data);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--port 99999: not a port; give a number from 0 \(any free port\) to 65535/);
    await assert.rejects(import('node:fs/promises').then((fs) => fs.stat(data)));
  });

  it('refuses unknown keys and unreadable files in --config', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'bogus: 1\n');
    const r = await atoll('server', '--config', bad);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown key "bogus"; valid keys are the flag names: data-dir, port, host, tls-san/);
    const missing = await atoll('server', '--config', join(dir, 'missing.yaml'));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--config .*missing.yaml: cannot read the file/);
  });

  it('names --runv-pool and its range for a bad pool size on runtime, agent and up, and starts nothing', async () => {
    const data = join(dir, 'pool-never');
    for (const [command, ...rest] of [['runtime', '--runv', '--root', data], ['agent', '--server', 'https://127.0.0.1:1', '--data-dir', data], ['up', '--data-dir', data]] as const) {
      for (const bad of ['9', '-1', 'two', '1.5']) {
        const r = await atoll(command, ...rest, `--runv-pool=${bad}`);
        assert.equal(r.code, 2, `${command} --runv-pool=${bad}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(`--runv-pool ${bad.replace('.', '\\.')}: give a whole number of idle VMs from 0 \\(none\\) to 8`));
      }
    }
    const noRunv = await atoll('runtime', '--root', data, '--runv-pool', '1');
    assert.equal(noRunv.code, 2);
    assert.match(noRunv.stderr, /--runv-pool is for the runv handler; add --runv to serve it/);
    const agentNoRunv = await atoll('agent', '--server', 'https://127.0.0.1:1', '--data-dir', data, '--no-runv', '--runv-pool', '2');
    assert.equal(agentNoRunv.code, 2);
    assert.match(agentNoRunv.stderr, /--runv-pool is for the runv handler; drop --no-runv to serve it/);
    await assert.rejects(import('node:fs/promises').then((fs) => fs.stat(data)));
  });

  it('reports a port in use by its flag', async () => {
    const { createServer } = await import('node:net');
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (blocker.address() as { port: number }).port;
      const r = await atoll('server', '--port', String(port), '--host', '127.0.0.1', '--data-dir', join(dir, 'busy'));
      assert.equal(r.code, 2);
      assert.match(r.stderr, new RegExp(`--port ${port}: the port is in use`));
    } finally {
      blocker.close();
    }
  });
});
