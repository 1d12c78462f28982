import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidReferenceError } from './errors.js';
import { formatReference, parseReference } from './reference.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  it('normalises short names as Docker does', () => {
    assert.equal(formatReference(parseReference('busybox')), 'docker.io/library/busybox:latest');
    assert.equal(formatReference(parseReference('library/busybox:1.36')), 'docker.io/library/busybox:1.36');
    assert.equal(formatReference(parseReference('rancher/pause:3.6')), 'docker.io/rancher/pause:3.6');
    assert.equal(formatReference(parseReference('index.docker.io/busybox')), 'docker.io/library/busybox:latest');
    assert.equal(formatReference(parseReference('docker.io/busybox')), 'docker.io/library/busybox:latest');
  });

  it('keeps explicit registries, ports and localhost', () => {
    assert.deepEqual(parseReference('127.0.0.1:5000/a/b:v1'), { domain: '127.0.0.1:5000', path: 'a/b', tag: 'v1' });
    assert.deepEqual(parseReference('localhost/x'), { domain: 'localhost', path: 'x', tag: 'latest' });
    assert.deepEqual(parseReference('registry.k8s.io/pause:3.9'), { domain: 'registry.k8s.io', path: 'pause', tag: '3.9' });
    assert.deepEqual(parseReference('[::1]:5000/x:1'), { domain: '[::1]:5000', path: 'x', tag: '1' });
  });

  it('takes a digest with or without a tag, and no default tag when a digest is given', () => {
    assert.deepEqual(parseReference(`host:5000/a/b@${DIGEST}`), { domain: 'host:5000', path: 'a/b', digest: DIGEST });
    assert.deepEqual(parseReference(`busybox:1.36@${DIGEST}`), { domain: 'docker.io', path: 'library/busybox', tag: '1.36', digest: DIGEST });
    assert.equal(formatReference(parseReference(`busybox:1.36@${DIGEST}`)), `docker.io/library/busybox:1.36@${DIGEST}`);
  });

  it('rejects bad input with a precise reason', () => {
    const cases: [string, RegExp][] = [
      ['', /empty reference/],
      ['Busybox', /must be lowercase/],
      ['docker.io/Library/busybox', /must be lowercase/],
      ['busybox:', /malformed tag/],
      ['busybox:bad/tag', /malformed/],
      [`busybox@sha256:${'a'.repeat(10)}`, /64 lowercase hex/],
      ['busybox@md5:abcd', /unsupported digest algorithm/],
      ['a'.repeat(64), /image ID/],
      ['host:5000/', /empty path component|missing repository/],
      ['a//b', /empty path component/],
      [' busybox', /whitespace/],
      [`x/${'a'.repeat(300)}`, /longer than 255/],
    ];
    for (const [input, reason] of cases) {
      assert.throws(() => parseReference(input), (err: unknown) => {
        assert.ok(err instanceof InvalidReferenceError, `${input}: ${String(err)}`);
        assert.equal(err.code, 'InvalidArgument');
        assert.match(err.message, reason, input);
        return true;
      });
    }
  });
});
