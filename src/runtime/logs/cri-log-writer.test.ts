import assert from 'node:assert/strict';
import { mkdtemp, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseCriLogLine } from '../../agent/server/cri-log.js';
import { CriLogWriter, MAX_LINE_BYTES, criLogLines } from './cri-log-writer.js';

const lines = (text: string) => text.split('\n').filter((l) => l !== '').map((l) => parseCriLogLine(Buffer.from(l)));

describe('CRI log writer', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('writes whole lines as F and a trailing piece as P, readable by the kubelet-format parser', () => {
    const parsed = lines(criLogLines('stdout', Buffer.from('one\ntwo\nprompt> '), new Date(Date.UTC(2026, 10, 27, 3, 10, 0, 123))).toString());
    assert.deepEqual(parsed.map((l) => [l.stream, l.partial, l.text.toString()]), [
      ['stdout', false, 'one'],
      ['stdout', false, 'two'],
      ['stdout', true, 'prompt> '],
    ]);
    assert.equal(parsed[0]!.timestamp, '2026-11-27T03:10:00.123000000Z');
    assert.equal(parsed[0]!.time, Date.UTC(2026, 10, 27, 3, 10, 0, 123));
  });

  it('keeps empty lines and cuts long lines into partial pieces', () => {
    const long = 'x'.repeat(MAX_LINE_BYTES * 2 + 5);
    const parsed = lines(criLogLines('stderr', Buffer.from(`\n${long}\n`), new Date()).toString());
    assert.deepEqual(parsed.map((l) => [l.partial, l.text.length]), [
      [false, 0],
      [true, MAX_LINE_BYTES],
      [true, MAX_LINE_BYTES],
      [false, 5],
    ]);
  });

  it('appends in order across writes and reopens after a rotation', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'atoll-crilog-'));
    dirs.push(dir);
    const path = join(dir, 'ctr', '0.log');
    const writer = new CriLogWriter(path);
    await Promise.all([writer.write('stdout', Buffer.from('a\n')), writer.write('stderr', Buffer.from('b\n')), writer.write('stdout', Buffer.from('c\n'))]);
    await rename(path, `${path}.1`);
    await writer.reopen();
    await writer.write('stdout', Buffer.from('d\n'));
    await writer.close();
    assert.deepEqual(lines(await readFile(`${path}.1`, 'utf8')).map((l) => `${l.stream}:${l.text}`), ['stdout:a', 'stderr:b', 'stdout:c']);
    assert.deepEqual(lines(await readFile(path, 'utf8')).map((l) => l.text.toString()), ['d']);
    await assert.rejects(writer.write('stdout', Buffer.from('e\n')), /closed/);
  });
});
