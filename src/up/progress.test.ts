import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { Progress } from './progress.js';

function sink(tty: boolean): { out: PassThrough & { isTTY?: boolean; columns?: number }; text: () => string } {
  const out = Object.assign(new PassThrough(), { isTTY: tty, columns: 40 });
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  return { out, text: () => text };
}

describe('Progress', () => {
  it('prints each new step as a plain line when not on a terminal', () => {
    const { out, text } = sink(false);
    const p = new Progress(out);
    p.step('one');
    p.step('one');
    p.line('note');
    p.step('two');
    assert.equal(text(), 'atoll up: one\nnote\natoll up: two\n');
  });

  it('rewrites one live line on a terminal, cut to its width, with lasting lines above it', () => {
    const { out, text } = sink(true);
    const p = new Progress(out);
    p.step('starting');
    p.line('a message');
    p.step('x'.repeat(60));
    p.clear();
    assert.equal(text(), `\r\x1b[2Katoll up: starting\r\x1b[2Ka message\n\r\x1b[2Katoll up: starting\r\x1b[2Katoll up: ${'x'.repeat(29)}\r\x1b[2K`);
  });
});
