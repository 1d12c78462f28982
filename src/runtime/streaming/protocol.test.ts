import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PROTOCOL_BASE, PROTOCOL_V4, PROTOCOL_V5, COMMAND_PROTOCOLS, chooseProtocol, exitStatus, frame, offeredProtocols, parseResize, portPrefix } from './protocol.js';

describe('channel protocol', () => {
  it("chooses the client's first supported offer, the base protocol for none, and nothing for unknown offers", () => {
    assert.equal(chooseProtocol([PROTOCOL_V4, PROTOCOL_V5], COMMAND_PROTOCOLS), PROTOCOL_V4);
    assert.equal(chooseProtocol(['base64.channel.k8s.io', PROTOCOL_BASE], COMMAND_PROTOCOLS), PROTOCOL_BASE);
    assert.equal(chooseProtocol([], COMMAND_PROTOCOLS), '');
    assert.equal(chooseProtocol(['v3.channel.k8s.io'], COMMAND_PROTOCOLS), undefined);
    assert.deepEqual(offeredProtocols('v5.channel.k8s.io, v4.channel.k8s.io'), [PROTOCOL_V5, PROTOCOL_V4]);
    assert.deepEqual(offeredProtocols(undefined), []);
  });

  it('frames data behind the channel byte', () => {
    assert.deepEqual(frame(2, 'ab'), Buffer.from([2, 0x61, 0x62]));
    assert.deepEqual(frame(3), Buffer.from([3]));
  });

  it('encodes exit codes as Kubernetes Status', () => {
    assert.equal(exitStatus(0).status, 'Success');
    assert.deepEqual(exitStatus(137), {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'command terminated with non-zero exit code: 137',
      reason: 'NonZeroExitCode',
      details: { causes: [{ reason: 'ExitCode', message: '137' }] },
    });
  });

  it('parses resize messages and rejects malformed ones', () => {
    assert.deepEqual(parseResize(Buffer.from('{"Width":80,"Height":24}')), { width: 80, height: 24 });
    assert.equal(parseResize(Buffer.from('{"Width":-1,"Height":24}')), undefined);
    assert.equal(parseResize(Buffer.from('{"Width":1.5,"Height":24}')), undefined);
    assert.equal(parseResize(Buffer.from('[80,24]')), undefined);
    assert.equal(parseResize(Buffer.from('null')), undefined);
    assert.equal(parseResize(Buffer.from('nope')), undefined);
  });

  it('prefixes port-forward channels with the port, little-endian', () => {
    assert.deepEqual(portPrefix(8080), Buffer.from([0x90, 0x1f]));
  });
});
