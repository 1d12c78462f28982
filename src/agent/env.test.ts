import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject } from '../api/types.js';
import { ContainerConfigError, type NodeFacts } from './contracts.js';
import { expand, fieldRefValue, formatMap, mappingFor, resolveEnv, resourceFieldRefValue } from './env.js';
import { MemorySource } from './volumes/testing.js';

const node: NodeFacts = { nodeName: 'edge-1', hostIP: '10.0.0.5', allocatable: { cpu: '4', memory: '8Gi', 'ephemeral-storage': '20Gi' } };

function pod(containers: unknown[], extra: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', namespace: 'shop', uid: 'uid-1', labels: { app: 'web', tier: 'front' }, annotations: { 'example.com/note': 'hi' } },
    spec: { nodeName: 'edge-1', serviceAccountName: 'builder', containers, ...extra },
    status: { podIP: '10.88.0.7', podIPs: [{ ip: '10.88.0.7' }, { ip: 'fd00::7' }] },
  };
}

async function rejectsWith(p: Promise<unknown>, message: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ContainerConfigError, `expected ContainerConfigError, got ${String(err)}`);
    assert.equal(err.message, message);
    return true;
  });
}

describe('expand', () => {
  const mapping = mappingFor(new Map([['A', 'a'], ['EMPTY', '']]));
  const cases: [string, string][] = [
    ['$(A)', 'a'],
    ['x-$(A)-y', 'x-a-y'],
    ['$$(A)', '$(A)'],
    ['$$$(A)', '$a'],
    ['a$$b', 'a$b'],
    ['$(MISSING)', '$(MISSING)'],
    ['$(EMPTY)x', 'x'],
    ['$(A', '$(A'],
    ['$', '$'],
    ['end$', 'end$'],
    ['$x', '$x'],
    ['$()', '$()'],
    ['$(A)$(A)', 'aa'],
    ['no refs', 'no refs'],
  ];
  for (const [input, want] of cases) {
    it(`${JSON.stringify(input)} → ${JSON.stringify(want)}`, () => assert.equal(expand(input, mapping), want));
  }
});

describe('formatMap', () => {
  it('sorts keys, quotes values as Go %q, and has no trailing newline', () => {
    assert.equal(
      formatMap({ b: 'say "hi"', a: 'line\nnext\ttab', c: 'é\u0001\u00a0\\', d: '😀' }),
      'a="line\\nnext\\ttab"\nb="say \\"hi\\""\nc="é\\x01\\u00a0\\\\"\nd="😀"',
    );
    assert.equal(formatMap(undefined), '');
  });
});

describe('fieldRefValue', () => {
  const p = pod([{ name: 'app' }]);
  const cases: [string, string][] = [
    ['metadata.name', 'web'],
    ['metadata.namespace', 'shop'],
    ['metadata.uid', 'uid-1'],
    ["metadata.labels['app']", 'web'],
    ["metadata.labels['absent']", ''],
    ["metadata.annotations['example.com/note']", 'hi'],
    ['metadata.labels', 'app="web"\ntier="front"'],
    ['metadata.annotations', 'example.com/note="hi"'],
    ['spec.nodeName', 'edge-1'],
    ['spec.host', 'edge-1'],
    ['spec.serviceAccountName', 'builder'],
    ['status.hostIP', '10.0.0.5'],
    ['status.hostIPs', '10.0.0.5'],
    ['status.podIP', '10.88.0.7'],
    ['status.podIPs', '10.88.0.7,fd00::7'],
  ];
  for (const [path, want] of cases) it(path, () => assert.equal(fieldRefValue(p, path, node), want));

  it('prefers the sandbox IPs it is given over the status', () => {
    assert.equal(fieldRefValue(p, 'status.podIP', node, ['10.88.0.9']), '10.88.0.9');
    assert.equal(fieldRefValue(pod([]), 'status.podIPs', node, []), '');
  });

  it('refuses what the kubelet refuses, with its messages', () => {
    const refused: [string, string][] = [
      ['spec.restartPolicy', 'unsupported fieldPath: spec.restartPolicy'],
      ['status.phase', 'unsupported fieldPath: status.phase'],
      ['spec.containers', 'field label not supported: spec.containers'],
      ["spec.nodeSelector['a']", "field label does not support subscript: spec.nodeSelector['a']"],
    ];
    for (const [path, message] of refused) assert.throws(() => fieldRefValue(p, path, node), new ContainerConfigError(message));
    assert.throws(() => fieldRefValue(p, "metadata.labels['-bad']", node), (err: Error) => err instanceof ContainerConfigError && err.message.startsWith("invalid key subscript in metadata.labels['-bad']: name part must consist of"));
  });
});

describe('resourceFieldRefValue', () => {
  const p = pod(
    [
      { name: 'app', resources: { limits: { cpu: '250m', memory: '64Mi', 'hugepages-2Mi': '4Mi' }, requests: { cpu: '100m' } } },
      { name: 'side', resources: { limits: { cpu: '0' } } },
    ],
    { initContainers: [{ name: 'init', resources: { requests: { memory: '1Gi' } } }] },
  );
  const value = (resource: string, divisor?: string, container = 'app', containerName?: string) => resourceFieldRefValue(p, container, { resource, divisor, containerName }, node);

  it('divides by the divisor and rounds up', () => {
    assert.equal(value('limits.cpu'), '1');
    assert.equal(value('limits.cpu', '1m'), '250');
    assert.equal(value('limits.cpu', '100m'), '3');
    assert.equal(value('requests.cpu', '1m'), '100');
    assert.equal(value('limits.memory'), String(64 * 1024 * 1024));
    assert.equal(value('limits.memory', '1Mi'), '64');
    assert.equal(value('limits.memory', '1Gi'), '1');
    assert.equal(value('limits.memory', '1M'), '68');
    assert.equal(value('limits.hugepages-2Mi', '1Mi'), '4');
    assert.equal(value('limits.cpu', '0'), '1', 'a zero divisor counts as 1');
  });

  it('takes the node allocatable for a limit left unset or zero, and zero for an unset request', () => {
    assert.equal(value('limits.cpu', '1', 'side'), '4');
    assert.equal(value('limits.memory', '1Gi', 'side'), '8');
    assert.equal(value('limits.ephemeral-storage', '1Gi', 'side'), '20');
    assert.equal(value('requests.memory', '1', 'side'), '0');
  });

  it('reads the container the selector names, init containers included', () => {
    assert.equal(value('requests.memory', '1Mi', 'app', 'init'), '1024');
  });

  it('refuses unknown resources and containers', () => {
    assert.throws(() => value('limits.nvidia.com/gpu'), new ContainerConfigError('Unsupported container resource : limits.nvidia.com/gpu'));
    assert.throws(() => value('cpu'), new ContainerConfigError('Unsupported container resource : cpu'));
    assert.throws(() => value('limits.cpu', '1', 'app', 'ghost'), new ContainerConfigError('container ghost not found'));
  });
});

describe('resolveEnv', () => {
  const source = new MemorySource();
  source.putConfigMap('shop', 'cfg', { MODE: 'prod', HOST: 'db', 'bad=key': 'x' });
  source.putSecret('shop', 'creds', { USER: 'admin', PASS: 'p@ss' });

  it('applies envFrom first, then env in order, with $(VAR) expansion over what came before', async () => {
    const p = pod([
      {
        name: 'app',
        envFrom: [{ configMapRef: { name: 'cfg' } }, { secretRef: { name: 'creds' }, prefix: 'DB_' }],
        env: [
          { name: 'URL', value: 'postgres://$(DB_USER):$(DB_PASS)@$(HOST)/$(LATER)' },
          { name: 'LATER', value: 'x' },
          { name: 'MODE', value: 'debug-$(MODE)' },
          { name: 'LITERAL', value: '$$(HOST)' },
          { name: 'EMPTY', value: '' },
          { name: 'NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
          { name: 'CPU', valueFrom: { resourceFieldRef: { resource: 'limits.cpu', divisor: '1m' } } },
          { name: 'HOST_FROM_KEY', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'HOST' } } },
          { name: 'SECRET_USER', valueFrom: { secretKeyRef: { name: 'creds', key: 'USER' } } },
        ],
        resources: { limits: { cpu: '1500m' } },
      },
    ]);
    const invalid: string[] = [];
    const env = await resolveEnv(p, 'app', source, node, { onInvalidKeys: (m) => invalid.push(m) });
    assert.deepEqual(env, [
      { key: 'MODE', value: 'debug-prod' },
      { key: 'HOST', value: 'db' },
      { key: 'DB_USER', value: 'admin' },
      { key: 'DB_PASS', value: 'p@ss' },
      { key: 'URL', value: 'postgres://admin:p@ss@db/$(LATER)' },
      { key: 'LATER', value: 'x' },
      { key: 'LITERAL', value: '$(HOST)' },
      { key: 'EMPTY', value: '' },
      { key: 'NAME', value: 'web' },
      { key: 'CPU', value: '1500' },
      { key: 'HOST_FROM_KEY', value: 'db' },
      { key: 'SECRET_USER', value: 'admin' },
    ]);
    assert.deepEqual(invalid, ['Keys [bad=key] from the EnvFrom configMap shop/cfg were skipped since they are considered invalid environment variable names.']);
  });

  it('skips optional references whose object or key is missing', async () => {
    const p = pod([
      {
        name: 'app',
        envFrom: [{ configMapRef: { name: 'nope', optional: true } }, { secretRef: { name: 'nope', optional: true } }],
        env: [
          { name: 'A', valueFrom: { configMapKeyRef: { name: 'nope', key: 'k', optional: true } } },
          { name: 'B', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'absent', optional: true } } },
          { name: 'C', valueFrom: { secretKeyRef: { name: 'nope', key: 'k', optional: true } } },
          { name: 'D', valueFrom: { secretKeyRef: { name: 'creds', key: 'absent', optional: true } } },
          { name: 'E', value: 'kept' },
        ],
      },
    ]);
    assert.deepEqual(await resolveEnv(p, 'app', source, node), [{ key: 'E', value: 'kept' }]);
  });

  it('fails on every missing required reference with the kubelet message', async () => {
    const cases: [unknown, string][] = [
      [{ envFrom: [{ configMapRef: { name: 'nope' } }] }, 'configmap "nope" not found'],
      [{ envFrom: [{ secretRef: { name: 'nope' } }] }, 'secret "nope" not found'],
      [{ env: [{ name: 'A', valueFrom: { configMapKeyRef: { name: 'nope', key: 'k' } } }] }, 'configmap "nope" not found'],
      [{ env: [{ name: 'A', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'absent' } } }] }, "couldn't find key absent in ConfigMap shop/cfg"],
      [{ env: [{ name: 'A', valueFrom: { secretKeyRef: { name: 'nope', key: 'k' } } }] }, 'secret "nope" not found'],
      [{ env: [{ name: 'A', valueFrom: { secretKeyRef: { name: 'creds', key: 'absent' } } }] }, "couldn't find key absent in Secret shop/creds"],
      [{ env: [{ name: 'A', valueFrom: { fieldRef: { apiVersion: 'v2', fieldPath: 'metadata.name' } } }] }, 'unsupported pod version: v2'],
      [{ env: [{ name: 'A', valueFrom: { fieldRef: { fieldPath: 'spec.schedulerName' } } }] }, 'unsupported fieldPath: spec.schedulerName'],
      [{ env: [{ name: 'A', valueFrom: { resourceFieldRef: { resource: 'limits.gpu' } } }] }, 'Unsupported container resource : limits.gpu'],
    ];
    for (const [container, message] of cases) {
      await rejectsWith(resolveEnv(pod([{ name: 'app', ...(container as object) }]), 'app', source, node), message);
    }
    await rejectsWith(resolveEnv(pod([{ name: 'app' }]), 'ghost', source, node), 'container "ghost" not found in pod shop/web');
  });

  it('resolves status.podIP from the sandbox IPs it is given', async () => {
    const p = pod([{ name: 'app', env: [{ name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }] }]);
    assert.deepEqual(await resolveEnv(p, 'app', source, node, { podIPs: ['10.88.0.42'] }), [{ key: 'IP', value: '10.88.0.42' }]);
  });
});
