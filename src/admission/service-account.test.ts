import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApiError } from '../api/errors.js';
import type { KubeObject } from '../api/types.js';
import { serviceAccount, tokenVolume, TOKEN_MOUNT_PATH } from './service-account.js';
import { waitFor } from '../../test/support/wait.js';
import { pod, podRequest, startTestServer, type TestServer } from './testing.js';

const accounts: Record<string, KubeObject> = {
  'default/default': { metadata: { name: 'default', namespace: 'default' } },
  'default/quiet': { metadata: { name: 'quiet', namespace: 'default' }, automountServiceAccountToken: false },
  'default/puller': { metadata: { name: 'puller', namespace: 'default' }, imagePullSecrets: [{ name: 'registry' }] },
  'default/strict': { metadata: { name: 'strict', namespace: 'default', annotations: { 'kubernetes.io/enforce-mountable-secrets': 'true' } }, secrets: [{ name: 'allowed' }] },
};
const plugin = serviceAccount((ns, name) => accounts[`${ns}/${name}`], () => 'abcde');

async function admit(p: KubeObject): Promise<Record<string, any>> {
  const req = podRequest(p);
  await plugin.admit!(req);
  await plugin.validate!(req);
  return req.object!.spec as Record<string, any>;
}

async function refusal(p: KubeObject): Promise<string> {
  try {
    await admit(p);
  } catch (err) {
    assert.ok(err instanceof ApiError && err.code === 403, String(err));
    return err.message;
  }
  assert.fail('admitted');
}

const MOUNT = { name: 'kube-api-access-abcde', readOnly: true, mountPath: TOKEN_MOUNT_PATH };

describe('ServiceAccount admission', () => {
  it('names the default account and mounts the projected token into every container', async () => {
    const spec = await admit(pod('p', { serviceAccountName: '', initContainers: [{ name: 'init', image: 'i' }] }));
    assert.equal(spec.serviceAccountName, 'default');
    assert.deepEqual(spec.volumes, [
      {
        name: 'kube-api-access-abcde',
        projected: {
          defaultMode: 420,
          sources: [
            { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
            { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
            { downwardAPI: { items: [{ fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' }, path: 'namespace' }] } },
          ],
        },
      },
    ]);
    assert.deepEqual(spec.containers[0].volumeMounts, [MOUNT]);
    assert.deepEqual(spec.initContainers[0].volumeMounts, [MOUNT]);
  });

  it('refuses a pod whose account does not exist', async () => {
    assert.equal(await refusal(pod('p', { serviceAccountName: 'ghost' })), 'pods "p" is forbidden: error looking up service account default/ghost: serviceaccount "ghost" not found');
  });

  it('waits a little for the default account of a new namespace', async () => {
    let calls = 0;
    const late = serviceAccount((ns, name) => (++calls > 2 ? { metadata: { name, namespace: ns } } : undefined), () => 'abcde');
    const req = podRequest(pod('p'));
    await late.admit!(req);
    assert.equal(calls, 3);
    assert.equal((req.object!.spec as { volumes: unknown[] }).volumes.length, 1);
  });

  it('does not mount when the pod or the account turns automounting off (the pod wins)', async () => {
    assert.equal((await admit(pod('p', { automountServiceAccountToken: false }))).volumes, undefined);
    assert.equal((await admit(pod('p', { serviceAccountName: 'quiet' }))).volumes, undefined);
    assert.equal((await admit(pod('p', { serviceAccountName: 'quiet', automountServiceAccountToken: true }))).volumes.length, 1);
  });

  it('leaves containers that already mount something at the token path alone', async () => {
    const own = { name: 'mine', mountPath: TOKEN_MOUNT_PATH };
    const spec = await admit(pod('p', { containers: [{ name: 'c', image: 'i', volumeMounts: [own] }], volumes: [{ name: 'mine', emptyDir: {} }] }));
    assert.deepEqual(spec.containers[0].volumeMounts, [own]);
    assert.deepEqual(spec.volumes, [{ name: 'mine', emptyDir: {} }]);
  });

  it("copies the account's image pull secrets to a pod that has none", async () => {
    assert.deepEqual((await admit(pod('p', { serviceAccountName: 'puller' }))).imagePullSecrets, [{ name: 'registry' }]);
    assert.deepEqual((await admit(pod('p', { serviceAccountName: 'puller', imagePullSecrets: [{ name: 'own' }] }))).imagePullSecrets, [{ name: 'own' }]);
  });

  it('limits secret references when the account enforces mountable secrets', async () => {
    await admit(pod('p', { serviceAccountName: 'strict', volumes: [{ name: 's', secret: { secretName: 'allowed' } }] }));
    assert.equal(
      await refusal(pod('p', { serviceAccountName: 'strict', volumes: [{ name: 's', secret: { secretName: 'other' } }] })),
      'pods "p" is forbidden: volume with secret.secretName="other" is not allowed because service account strict does not reference that secret',
    );
  });

  it('keeps mirror pods away from accounts and secrets', async () => {
    const mirror = { annotations: { 'kubernetes.io/config.mirror': 'x' } };
    assert.equal((await admit(pod('m', {}, mirror))).volumes, undefined);
    assert.equal(await refusal(pod('m', { serviceAccountName: 'puller' }, mirror)), 'pods "m" is forbidden: a mirror pod may not reference service accounts');
    assert.equal(await refusal(pod('m', { volumes: [{ name: 's', secret: { secretName: 'x' } }] }, mirror)), 'pods "m" is forbidden: a mirror pod may not reference secrets');
  });

  describe('through the API server', () => {
    let t: TestServer;
    before(async () => {
      t = await startTestServer();
    });
    after(async () => {
      await t?.close();
    });

    const get = async (path: string) => {
      const r = await t.api.request('GET', path);
      return r.status === 200 ? r.json<Record<string, any>>() : undefined;
    };

    it('gives every namespace a default account and the kube-root-ca.crt ConfigMap, and restores them', async () => {
      for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
        assert.ok(await get(`/api/v1/namespaces/${ns}/serviceaccounts/default`), ns);
      }
      assert.equal((await t.api.request('POST', '/api/v1/namespaces', { body: { metadata: { name: 'team' } } })).status, 201);
      await waitFor('the default account', () => get('/api/v1/namespaces/team/serviceaccounts/default'));
      const cm = await waitFor('the CA ConfigMap', () => get('/api/v1/namespaces/team/configmaps/kube-root-ca.crt'));
      assert.equal(cm.data['ca.crt'], t.server.admin.caPem);

      assert.equal((await t.api.request('DELETE', '/api/v1/namespaces/team/configmaps/kube-root-ca.crt')).status, 200);
      await waitFor('the recreated ConfigMap', () => get('/api/v1/namespaces/team/configmaps/kube-root-ca.crt'));
      const edited = await t.api.request('PATCH', '/api/v1/namespaces/team/configmaps/kube-root-ca.crt', { body: { data: { 'ca.crt': 'bogus' } }, contentType: 'application/merge-patch+json' });
      assert.equal(edited.status, 200);
      await waitFor('the CA restored', async () => (await get('/api/v1/namespaces/team/configmaps/kube-root-ca.crt'))?.data['ca.crt'] === t.server.admin.caPem);
      assert.equal((await t.api.request('DELETE', '/api/v1/namespaces/team/serviceaccounts/default')).status, 200);
      await waitFor('the recreated account', () => get('/api/v1/namespaces/team/serviceaccounts/default'));
    });

    it('injects the token volume into created pods and refuses unknown accounts', async () => {
      const r = await t.api.request('POST', '/api/v1/namespaces/default/pods', { body: pod('mounted') });
      assert.equal(r.status, 201, r.body);
      const spec = r.json<{ spec: { volumes: { name: string }[]; containers: { volumeMounts: unknown[] }[]; serviceAccountName: string } }>().spec;
      assert.equal(spec.serviceAccountName, 'default');
      assert.match(spec.volumes[0]!.name, /^kube-api-access-[a-z0-9]{5}$/);
      assert.deepEqual(spec.volumes[0], tokenVolume(spec.volumes[0]!.name));
      assert.deepEqual(spec.containers[0]!.volumeMounts, [{ name: spec.volumes[0]!.name, readOnly: true, mountPath: TOKEN_MOUNT_PATH }]);

      const ghost = await t.api.request('POST', '/api/v1/namespaces/default/pods', { body: pod('haunted', { serviceAccountName: 'ghost' }) });
      assert.equal(ghost.status, 403);
      assert.equal(ghost.json<{ message: string }>().message, 'pods "haunted" is forbidden: error looking up service account default/ghost: serviceaccount "ghost" not found');
    });

    it('issues TokenRequest tokens that authenticate as the service account', async () => {
      assert.equal((await t.api.request('POST', '/api/v1/namespaces/default/serviceaccounts', { body: { metadata: { name: 'robot' } } })).status, 201);
      const r = await t.api.request('POST', '/api/v1/namespaces/default/serviceaccounts/robot/token', {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 600 } },
      });
      assert.equal(r.status, 201, r.body);
      const tr = r.json<{ kind: string; spec: { audiences: string[]; expirationSeconds: number }; status: { token: string; expirationTimestamp: string } }>();
      assert.equal(tr.kind, 'TokenRequest');
      assert.deepEqual(tr.spec.audiences, ['https://kubernetes.default.svc.cluster.local']);
      assert.ok(Math.abs(Date.parse(tr.status.expirationTimestamp) - Date.now() - 600_000) < 5000);

      const listed = await t.api.request('GET', '/api/v1/namespaces/default/pods', { token: tr.status.token });
      assert.equal(listed.status, 403, listed.body);
      assert.equal(
        listed.json<{ message: string }>().message,
        'pods is forbidden: User "system:serviceaccount:default:robot" cannot list resource "pods" in API group "" in the namespace "default"',
      );
      const review = await t.api.request('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { token: tr.status.token, body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } });
      assert.equal(review.status, 201, review.body);
      assert.deepEqual(review.json<{ status: { userInfo: { groups: string[] } } }>().status.userInfo.groups, ['system:serviceaccounts', 'system:serviceaccounts:default', 'system:authenticated']);

      assert.equal((await t.api.request('GET', '/api/v1/namespaces/default/pods', { token: tr.status.token + 'x' })).status, 401);
      assert.equal((await t.api.request('DELETE', '/api/v1/namespaces/default/serviceaccounts/robot')).status, 200);
      await waitFor('the token revoked', async () => (await t.api.request('GET', '/api/v1/namespaces/default/pods', { token: tr.status.token })).status === 401);
    });

    it('binds tokens to pods and validates TokenRequests', async () => {
      const created = await t.api.request('POST', '/api/v1/namespaces/default/pods', { body: pod('holder') });
      const uid = created.json<{ metadata: { uid: string } }>().metadata.uid;
      const path = '/api/v1/namespaces/default/serviceaccounts/default/token';
      const bound = await t.api.request('POST', path, { body: { spec: { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'holder', uid } } } });
      assert.equal(bound.status, 201, bound.body);
      const token = bound.json<{ status: { token: string } }>().status.token;
      const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
      assert.deepEqual(claims['kubernetes.io'].pod, { name: 'holder', uid });
      assert.equal(claims.exp - claims.iat, 3600);
      await waitFor('the bound token to authenticate', async () => (await t.api.request('GET', '/api/v1/namespaces/default/pods', { token })).status === 403);
      assert.equal((await t.api.request('DELETE', '/api/v1/namespaces/default/pods/holder')).status, 200);
      await waitFor('the bound token revoked', async () => (await t.api.request('GET', '/api/v1/namespaces/default/pods', { token })).status === 401);

      const short = await t.api.request('POST', path, { body: { spec: { expirationSeconds: 599 } } });
      assert.equal(short.status, 422);
      assert.equal(short.json<{ message: string }>().message, 'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes');
      const wrongUid = await t.api.request('POST', path, { body: { spec: { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: 'mounted', uid: 'nope' } } } });
      assert.equal(wrongUid.status, 409);
      const secret = await t.api.request('POST', path, { body: { spec: { boundObjectRef: { kind: 'ConfigMap', apiVersion: 'v1', name: 'x' } } } });
      assert.equal(secret.status, 400);
      assert.equal((await t.api.request('POST', '/api/v1/namespaces/default/serviceaccounts/ghost/token', { body: {} })).status, 404);
    });
  });
});
