import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PodSandboxConfig__Output } from '../cri/index.js';
import { RecordDir, validateSandboxRecord, type SandboxRecord } from './records.js';

const record: SandboxRecord = {
  id: 'a'.repeat(64),
  config: { metadata: { name: 'web', namespace: 'default', uid: 'u', attempt: 0 } } as unknown as PodSandboxConfig__Output,
  runtimeHandler: 'runc',
  createdAt: '1700000000000000000',
  state: 'ready',
  hostNetwork: false,
  files: { hostname: '/h', hosts: '/hosts', resolvConf: '/r' },
};

describe('RecordDir', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atoll-records-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes, reads back and removes records, skipping malformed files and temporaries', async () => {
    const records = new RecordDir(dir, validateSandboxRecord);
    await records.write(record);
    await writeFile(join(dir, `${'b'.repeat(64)}.json`), '{"id": 3}');
    await writeFile(join(dir, `${'c'.repeat(64)}.json`), JSON.stringify({ ...record }));
    await writeFile(join(dir, 'x.json.1234.tmp'), 'half');
    const warnings: string[] = [];
    assert.deepEqual(await records.readAll((m) => warnings.push(m)), [record]);
    assert.equal(warnings.length, 2, warnings.join('\n'));
    assert.ok(!(await readdir(dir)).some((n) => n.endsWith('.tmp')));
    await records.remove(record.id);
    await records.remove(record.id);
    assert.ok(!(await readdir(dir)).includes(`${record.id}.json`));
  });

  it('rejects records with a bad id, state or timestamp', () => {
    for (const bad of [{ ...record, id: 'x' }, { ...record, state: 'gone' }, { ...record, createdAt: 5 }, { ...record, config: null }]) {
      assert.throws(() => validateSandboxRecord(bad, 'f'), /malformed/);
    }
  });
});
