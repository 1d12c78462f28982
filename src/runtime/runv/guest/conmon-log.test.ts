import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LogTail, parseLogLine } from './conmon-log.js';
import { OutputBuffer } from './output.js';

const TS = '2024-01-02T03:04:05.123456789+00:00';

describe("conmon's k8s-file log", () => {
  const dir = mkdtempSync(join(tmpdir(), 'atoll-conmon-log-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('parses full and partial lines back into the bytes written', () => {
    assert.deepEqual(parseLogLine(Buffer.from(`${TS} stdout F hello world`)), { time: Date.parse('2024-01-02T03:04:05.123Z'), stream: 'stdout', data: Buffer.from('hello world\n') });
    assert.deepEqual(parseLogLine(Buffer.from(`${TS} stderr P part`))?.data, Buffer.from('part'));
    assert.deepEqual(parseLogLine(Buffer.from(`${TS} stdout F `))?.data, Buffer.from('\n'));
    assert.deepEqual(parseLogLine(Buffer.from(`${TS} stdout F`))?.data, Buffer.from('\n'));
    assert.equal(parseLogLine(Buffer.from('garbage')), null);
    assert.equal(parseLogLine(Buffer.from(`${TS} stdin F x`)), null);
    assert.equal(parseLogLine(Buffer.from(`not-a-time stdout F x`)), null);
  });

  it('follows the file, holds back a line still being written, and reads a replaced file from its start', async () => {
    const path = join(dir, 'c.log');
    const buffer = new OutputBuffer();
    const tail = new LogTail(path, buffer);
    await tail.poke();
    writeFileSync(path, `${TS} stdout F one\n${TS} stderr F two\n${TS} stdout F thr`);
    await tail.poke();
    appendFileSync(path, `ee\n`);
    // conmon's rotation: the last lines go to the old file, then a new file takes its name.
    appendFileSync(path, `${TS} stdout F four\n`);
    renameSync(path, `${path}.old`);
    writeFileSync(path, `${TS} stdout F five\n`);
    await tail.poke();
    await tail.close();
    const read = await buffer.read(0, 0, 1024);
    assert.deepEqual(read.chunks.map((c) => [c.stream, Buffer.from(c.data, 'base64').toString()]), [
      ['stdout', 'one\n'], ['stderr', 'two\n'], ['stdout', 'three\n'], ['stdout', 'four\n'], ['stdout', 'five\n'],
    ]);
  });
});
