import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackHost, parseRegistriesConfig, planEndpoints } from './config.js';
import { parseReference } from './reference.js';

describe('registries.yaml', () => {
  const yaml = `
mirrors:
  docker.io:
    endpoint:
      - "http://127.0.0.1:5001"
      - "mirror.example:5000"
    rewrite:
      "^library/(.*)": "mirrored/$1"
  "*":
    endpoint: ["https://all.example/prefix"]
configs:
  "mirror.example:5000":
    auth: {username: u, password: p}
    tls: {ca_file: /etc/ca.pem, insecure_skip_verify: false}
`;

  it('plans mirrors in order with rewrites, then the origin without rewrite', () => {
    const config = parseRegistriesConfig(yaml, 'registries.yaml');
    const plan = planEndpoints(config, parseReference('busybox'));
    assert.deepEqual(
      plan.map((p) => [p.apiRoot, p.repository, p.mirror]),
      [
        ['http://127.0.0.1:5001/v2', 'mirrored/busybox', true],
        ['https://mirror.example:5000/v2', 'mirrored/busybox', true],
        ['https://registry-1.docker.io/v2', 'library/busybox', false],
      ],
    );
    assert.deepEqual(plan[1]!.auth, { username: 'u', password: 'p' });
    assert.deepEqual(plan[1]!.tls, { caFile: '/etc/ca.pem', insecureSkipVerify: false });
  });

  it('applies the * mirror to other registries and keeps endpoint paths', () => {
    const config = parseRegistriesConfig(yaml, 'registries.yaml');
    const plan = planEndpoints(config, parseReference('quay.io/a/b:1'));
    assert.deepEqual(plan.map((p) => p.apiRoot), ['https://all.example/prefix/v2', 'https://quay.io/v2']);
  });

  it('can leave the origin out', () => {
    const config = parseRegistriesConfig(yaml, 'registries.yaml');
    const plan = planEndpoints(config, parseReference('busybox'), { disableDefaultEndpoint: true });
    assert.equal(plan.length, 2);
    assert.ok(plan.every((p) => p.mirror));
  });

  it('uses plain http only for loopback origins', () => {
    const empty = parseRegistriesConfig('', 'x');
    assert.equal(planEndpoints(empty, parseReference('127.0.0.1:5000/a'))[0]!.apiRoot, 'http://127.0.0.1:5000/v2');
    assert.equal(planEndpoints(empty, parseReference('localhost:5000/a'))[0]!.apiRoot, 'http://localhost:5000/v2');
    assert.equal(planEndpoints(empty, parseReference('10.0.0.1:5000/a'))[0]!.apiRoot, 'https://10.0.0.1:5000/v2');
    assert.ok(isLoopbackHost('127.3.2.1:80') && isLoopbackHost('[::1]:5000') && isLoopbackHost('localhost'));
    assert.ok(!isLoopbackHost('128.0.0.1') && !isLoopbackHost('example.com:5000'));
  });

  it('rejects malformed files with the key that is wrong', () => {
    const bad: [string, RegExp][] = [
      ['mirrors: [1]', /mirrors must be a mapping/],
      ['mirrors: {docker.io: {endpoint: "x"}}', /endpoint must be a list/],
      ['mirrors: {docker.io: {endpoint: ["ftp://x"]}}', /must be http or https/],
      ['mirrors: {docker.io: {endpoint: [], rewrite: {"(": "x"}}}', /bad regular expression/],
      ['configs: {h: {tls: {insecure_skip_verify: "yes"}}}', /insecure_skip_verify must be true or false/],
      ['mirrorz: {}', /unknown key "mirrorz"/],
      ['mirrors: {a: 1', /not valid YAML/],
    ];
    for (const [text, reason] of bad) {
      assert.throws(() => parseRegistriesConfig(text, 'registries.yaml'), (err: Error) => {
        assert.match(err.message, reason, text);
        assert.match(err.message, /^registries\.yaml/);
        return true;
      });
    }
  });
});
