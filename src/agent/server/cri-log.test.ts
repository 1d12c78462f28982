import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CriLogError, LogFormatter, parseCriLogLine, tailOffset, type LogFormatOptions } from './cri-log.js';

const T1 = '2024-05-01T10:00:00.000000001Z';
const T2 = '2024-05-01T10:00:01.5Z';
const T3 = '2024-05-01T10:00:02.123456789+00:00';

function format(lines: string[], options: LogFormatOptions = { timestamps: false }): string {
  const f = new LogFormatter(options);
  const out: Buffer[] = [];
  for (const l of lines) {
    const chunk = f.push(parseCriLogLine(Buffer.from(l)));
    if (chunk) out.push(chunk);
  }
  const rest = f.flush();
  if (rest) out.push(rest);
  return Buffer.concat(out).toString();
}

/** tailOffset over an in-memory file, read in chunks no bigger than `chunk` bytes at a time. */
async function tail(text: string, lines: number): Promise<string> {
  const file = Buffer.from(text);
  const offset = await tailOffset(async (buffer, at) => file.copy(buffer, 0, at, Math.min(file.length, at + buffer.length)), file.length, lines);
  return file.subarray(offset).toString();
}

describe('parseCriLogLine', () => {
  it('reads timestamp, stream, tag and text', () => {
    const line = parseCriLogLine(Buffer.from(`${T1} stderr F hello  world `));
    assert.equal(line.timestamp, T1);
    assert.equal(line.time, Date.parse('2024-05-01T10:00:00Z'));
    assert.equal(line.stream, 'stderr');
    assert.equal(line.partial, false);
    assert.equal(line.text.toString(), 'hello  world ');
  });

  it('reads only the first of several tags, and an empty text with or without its space', () => {
    assert.equal(parseCriLogLine(Buffer.from(`${T1} stdout P:x:y abc`)).partial, true);
    assert.equal(parseCriLogLine(Buffer.from(`${T1} stdout F `)).text.length, 0);
    assert.equal(parseCriLogLine(Buffer.from(`${T1} stdout F`)).text.length, 0);
    assert.equal(parseCriLogLine(Buffer.from(`${T3} stdout F x`)).time, Date.parse('2024-05-01T10:00:02.123Z'));
  });

  it('rejects malformed lines with the reason', () => {
    assert.throws(() => parseCriLogLine(Buffer.from('garbage')), CriLogError);
    assert.throws(() => parseCriLogLine(Buffer.from(`yesterday stdout F x`)), /invalid timestamp "yesterday"/);
    assert.throws(() => parseCriLogLine(Buffer.from(`${T1} stdin F x`)), /unknown stream "stdin"/);
    assert.throws(() => parseCriLogLine(Buffer.from(`${T1} stdout Q x`)), /unknown tag "Q"/);
    assert.throws(() => parseCriLogLine(Buffer.from(`${T1} stdout`)), /no tag/);
  });
});

describe('LogFormatter', () => {
  it('joins partial lines per stream and keeps the first timestamp', () => {
    const lines = [`${T1} stdout P hel`, `${T1} stderr F err`, `${T2} stdout P lo `, `${T3} stdout F world`, `${T3} stdout F !`];
    assert.equal(format(lines), 'err\nhello world\n!\n');
    assert.equal(format(lines, { timestamps: true }), `${T1} err\n${T1} hello world\n${T3} !\n`);
  });

  it('emits an unfinished partial line when the stream ends', () => {
    assert.equal(format([`${T1} stdout F a`, `${T1} stdout P no newline`]), 'a\nno newline');
  });

  it('filters by since and cuts at limitBytes', () => {
    const lines = [`${T1} stdout F one`, `${T2} stdout F two`, `${T3} stdout F three`];
    assert.equal(format(lines, { timestamps: false, since: Date.parse(T2) }), 'two\nthree\n');
    assert.equal(format(lines, { timestamps: false, limitBytes: 6 }), 'one\ntw');
    const f = new LogFormatter({ timestamps: false, limitBytes: 4 });
    f.push(parseCriLogLine(Buffer.from(`${T1} stdout F one`)));
    assert.equal(f.done, true);
  });
});

describe('tailOffset', () => {
  const file = [`${T1} stdout F one`, `${T1} stdout P tw`, `${T1} stdout F o`, `${T2} stderr F three`, ''].join('\n');

  it('counts logical lines, a partial run being one', async () => {
    assert.equal(await tail(file, 1), `${T2} stderr F three\n`);
    assert.equal(await tail(file, 2), `${T1} stdout P tw\n${T1} stdout F o\n${T2} stderr F three\n`);
    assert.equal(await tail(file, 3), file);
    assert.equal(await tail(file, 10), file);
    assert.equal(await tail(file, 0), '');
  });

  it('leaves an unterminated last line to the reader and counts a trailing partial run as a line', async () => {
    assert.equal(await tail(`${file}${T3} stdout F in progr`, 1), `${T2} stderr F three\n${T3} stdout F in progr`);
    const partialEnd = `${file}${T3} stdout P still going\n`;
    assert.equal(await tail(partialEnd, 1), `${T3} stdout P still going\n`);
    assert.equal(await tail(partialEnd, 2), `${T2} stderr F three\n${T3} stdout P still going\n`);
    assert.equal(await tail('', 3), '');
  });

  it('reads backwards across chunk boundaries', async () => {
    const many = Array.from({ length: 5000 }, (_, i) => `${T1} stdout F line ${i}`).join('\n') + '\n';
    const got = (await tail(many, 1500)).trimEnd().split('\n');
    assert.equal(got.length, 1500);
    assert.equal(got[0], `${T1} stdout F line 3500`);
  });
});
