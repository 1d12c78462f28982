import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { defaultTolerationSeconds, TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE } from './default-toleration-seconds.js';
import { pod, podRequest, startTestServer, type TestServer } from './testing.js';

const notReady = (seconds: number) => ({ key: TAINT_NODE_NOT_READY, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: seconds });
const unreachable = (seconds: number) => ({ key: TAINT_NODE_UNREACHABLE, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: seconds });

async function admitted(spec: Record<string, unknown>, seconds?: number) {
  const req = podRequest(pod('p', spec));
  await defaultTolerationSeconds(seconds).admit!(req);
  return (req.object!.spec as { tolerations?: unknown[] }).tolerations;
}

describe('DefaultTolerationSeconds', () => {
  it('adds not-ready and unreachable NoExecute tolerations of 300 s to a pod without them', async () => {
    assert.deepEqual(await admitted({}), [notReady(300), unreachable(300)]);
  });

  it('uses the configured seconds', async () => {
    assert.deepEqual(await admitted({}, 42), [notReady(42), unreachable(42)]);
  });

  it('keeps a toleration the pod already has for one taint and adds the other', async () => {
    const own = { key: TAINT_NODE_NOT_READY, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 5 };
    assert.deepEqual(await admitted({ tolerations: [own] }), [own, unreachable(300)]);
  });

  it('treats an empty key with Exists as tolerating everything, and an empty effect as every effect', async () => {
    assert.deepEqual(await admitted({ tolerations: [{ operator: 'Exists' }] }), [{ operator: 'Exists' }]);
    const anyEffect = { key: TAINT_NODE_UNREACHABLE, operator: 'Exists' };
    assert.deepEqual(await admitted({ tolerations: [anyEffect] }), [anyEffect, notReady(300)]);
  });

  it('does not count a toleration of another effect', async () => {
    const noSchedule = { key: TAINT_NODE_NOT_READY, operator: 'Exists', effect: 'NoSchedule' };
    assert.deepEqual(await admitted({ tolerations: [noSchedule] }), [noSchedule, notReady(300), unreachable(300)]);
  });

  it('leaves updates and other resources alone', async () => {
    const update = podRequest(pod('p'), 'UPDATE');
    await defaultTolerationSeconds().admit!(update);
    assert.equal((update.object!.spec as { tolerations?: unknown }).tolerations, undefined);
    const status = podRequest(pod('p'), 'CREATE', { subresource: 'status' });
    await defaultTolerationSeconds().admit!(status);
    assert.equal((status.object!.spec as { tolerations?: unknown }).tolerations, undefined);
  });

  describe('through the API server', () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer({ defaultTolerationSeconds: 120 });
    });
    after(async () => {
      await t?.close();
    });

    it('adds the tolerations, with the server-wide seconds, to a created pod', async () => {
      const r = await t.api.request('POST', '/api/v1/namespaces/default/pods', { body: pod('tolerant', { tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'x', effect: 'NoSchedule' }] }) });
      assert.equal(r.status, 201, r.body);
      assert.deepEqual(r.json<{ spec: { tolerations: unknown[] } }>().spec.tolerations, [
        { key: 'dedicated', operator: 'Equal', value: 'x', effect: 'NoSchedule' },
        notReady(120),
        unreachable(120),
      ]);
    });
  });
});
