import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApiError } from '../api/errors.js';
import type { KubeObject } from '../api/types.js';
import { mergeTolerations, runtimeClass } from './runtime-class.js';
import { pod, podRequest, startTestServer, type TestServer } from './testing.js';

const classes: Record<string, KubeObject> = {
  plain: { metadata: { name: 'plain' }, handler: 'runc' },
  kata: { metadata: { name: 'kata' }, handler: 'kata', overhead: { podFixed: { cpu: '250m', memory: '120Mi' } } },
  pinned: {
    metadata: { name: 'pinned' },
    handler: 'runv',
    scheduling: { nodeSelector: { sandbox: 'vm', zone: 'edge' }, tolerations: [{ key: 'sandbox', operator: 'Exists', effect: 'NoSchedule' }] },
  },
};

async function run(spec: Record<string, unknown>, name = 'p') {
  const plugin = runtimeClass((n) => classes[n]);
  const req = podRequest(pod(name, spec));
  await plugin.admit!(req);
  await plugin.validate!(req);
  return req.object!.spec as Record<string, unknown>;
}

async function refusal(spec: Record<string, unknown>, name = 'p'): Promise<ApiError> {
  try {
    await run(spec, name);
  } catch (err) {
    assert.ok(err instanceof ApiError);
    return err;
  }
  assert.fail('the pod was admitted');
}

describe('RuntimeClass admission', () => {
  it('admits pods without a class untouched', async () => {
    const spec = await run({});
    assert.equal(spec.overhead, undefined);
    assert.equal(spec.nodeSelector, undefined);
  });

  it('refuses an unknown class with 403', async () => {
    const err = await refusal({ runtimeClassName: 'nope' }, 'web');
    assert.equal(err.code, 403);
    assert.equal(err.message, 'pods "web" is forbidden: pod rejected: RuntimeClass "nope" not found');
  });

  it("sets spec.overhead from the class's podFixed", async () => {
    assert.deepEqual((await run({ runtimeClassName: 'kata' })).overhead, { cpu: '250m', memory: '120Mi' });
  });

  it('accepts a declared overhead equal in quantity, and refuses a different one', async () => {
    assert.deepEqual((await run({ runtimeClassName: 'kata', overhead: { cpu: '0.25', memory: '120Mi' } })).overhead, { cpu: '250m', memory: '120Mi' });
    const err = await refusal({ runtimeClassName: 'kata', overhead: { cpu: '1' } });
    assert.equal(err.message, `pods "p" is forbidden: pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead`);
  });

  it('refuses an overhead the class does not define', async () => {
    const err = await refusal({ runtimeClassName: 'plain', overhead: { cpu: '1' } });
    assert.equal(err.message, 'pods "p" is forbidden: pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead');
    const classless = await refusal({ overhead: { cpu: '1' } });
    assert.equal(classless.code, 403);
  });

  it('merges the node selector and refuses a conflicting key', async () => {
    assert.deepEqual((await run({ runtimeClassName: 'pinned' })).nodeSelector, { sandbox: 'vm', zone: 'edge' });
    assert.deepEqual((await run({ runtimeClassName: 'pinned', nodeSelector: { disk: 'ssd', zone: 'edge' } })).nodeSelector, { disk: 'ssd', zone: 'edge', sandbox: 'vm' });
    const err = await refusal({ runtimeClassName: 'pinned', nodeSelector: { zone: 'core' } });
    assert.equal(err.code, 403);
    assert.equal(err.message, 'pods "p" is forbidden: conflict: runtimeClass.scheduling.nodeSelector[zone] = edge; pod.spec.nodeSelector[zone] = core');
  });

  it('merges tolerations as a union keyed by key and effect', async () => {
    const own = { key: 'gpu', operator: 'Exists', effect: 'NoSchedule' };
    const same = { key: 'sandbox', operator: 'Exists', effect: 'NoSchedule' };
    assert.deepEqual((await run({ runtimeClassName: 'pinned', tolerations: [own, same] })).tolerations, [same, own]);
    assert.deepEqual(mergeTolerations([{ key: 'a', effect: 'NoExecute' }], [{ key: 'a', effect: 'NoSchedule' }]), [
      { key: 'a', effect: 'NoSchedule' },
      { key: 'a', effect: 'NoExecute' },
    ]);
  });

  it('ignores pod updates', async () => {
    const req = podRequest(pod('p', { runtimeClassName: 'nope' }), 'UPDATE');
    await runtimeClass(() => undefined).admit!(req);
    await runtimeClass(() => undefined).validate!(req);
  });

  describe('through the API server', () => {
    let t: TestServer;
    const PODS = '/api/v1/namespaces/default/pods';
    const message = (r: { json<T>(): T }) => r.json<{ message: string }>().message;

    before(async () => {
      t = await startTestServer();
      for (const rc of Object.values(classes)) {
        const r = await t.api.request('POST', '/apis/node.k8s.io/v1/runtimeclasses', { body: { apiVersion: 'node.k8s.io/v1', kind: 'RuntimeClass', ...rc } });
        assert.equal(r.status, 201, r.body);
      }
    });
    after(async () => {
      await t?.close();
    });

    it('applies every rule of a RuntimeClass to created pods', async () => {
      const kata = await t.api.request('POST', PODS, { body: pod('kata', { runtimeClassName: 'kata' }) });
      assert.equal(kata.status, 201, kata.body);
      assert.deepEqual(kata.json<{ spec: { overhead: unknown } }>().spec.overhead, { cpu: '250m', memory: '120Mi' });

      const pinned = await t.api.request('POST', PODS, { body: pod('pinned', { runtimeClassName: 'pinned', nodeSelector: { disk: 'ssd' } }) });
      assert.equal(pinned.status, 201, pinned.body);
      const spec = pinned.json<{ spec: { nodeSelector: unknown; tolerations: { key: string }[] } }>().spec;
      assert.deepEqual(spec.nodeSelector, { disk: 'ssd', sandbox: 'vm', zone: 'edge' });
      assert.deepEqual(spec.tolerations.map((t) => t.key), ['sandbox', 'node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']);
    });

    it('refuses with 403 and kube messages', async () => {
      const cases: [Record<string, unknown>, string][] = [
        [{ runtimeClassName: 'ghost' }, 'pods "r1" is forbidden: pod rejected: RuntimeClass "ghost" not found'],
        [{ runtimeClassName: 'kata', overhead: { cpu: '1' } }, `pods "r2" is forbidden: pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead`],
        [{ runtimeClassName: 'plain', overhead: { cpu: '1' } }, 'pods "r3" is forbidden: pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead'],
        [{ runtimeClassName: 'pinned', nodeSelector: { sandbox: 'none' } }, 'pods "r4" is forbidden: conflict: runtimeClass.scheduling.nodeSelector[sandbox] = vm; pod.spec.nodeSelector[sandbox] = none'],
      ];
      for (const [i, [spec, expected]] of cases.entries()) {
        const r = await t.api.request('POST', PODS, { body: pod(`r${i + 1}`, spec) });
        assert.equal(r.status, 403, r.body);
        assert.equal(r.json<{ reason: string }>().reason, 'Forbidden');
        assert.equal(message(r), expected);
        assert.equal((await t.api.request('GET', `${PODS}/r${i + 1}`)).status, 404);
      }
    });
  });
});
