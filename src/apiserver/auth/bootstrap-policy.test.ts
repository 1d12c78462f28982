import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { UserInfo } from '../../api/types.js';
import { AUTOUPDATE_ANNOTATION, bootstrapPolicy } from './bootstrap-policy.js';
import { MemoryRbacSource } from './memory-rbac-source.js';
import { RbacAuthorizer, type RequestAttributes } from './rbac.js';

const policy = bootstrapPolicy();
const authz = new RbacAuthorizer(new MemoryRbacSource(policy));
const user = (name: string, ...groups: string[]): UserInfo => ({ name, groups: [...groups, 'system:authenticated'] });
const res = (verb: string, resource: string, opts: Partial<RequestAttributes> = {}): RequestAttributes => ({
  verb, apiGroup: '', resource, resourceRequest: true, ...opts,
});
const url = (verb: string, path: string): RequestAttributes => ({ verb, apiGroup: '', resource: '', path, resourceRequest: false });
const allowed = (u: UserInfo, a: RequestAttributes) => authz.authorize(u, a).allowed;

describe('bootstrapPolicy', () => {
  test('objects are well-formed, uniquely named and marked for auto-update', () => {
    const keys = policy.map((o) => `${o.kind}/${o.metadata.name}`);
    assert.equal(new Set(keys).size, keys.length);
    for (const o of policy) {
      assert.equal(o.apiVersion, 'rbac.authorization.k8s.io/v1');
      assert.ok(o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding', o.kind);
      assert.equal(o.metadata.annotations?.[AUTOUPDATE_ANNOTATION], 'true', keys.join());
    }
    const roles = new Set(policy.filter((o) => o.kind === 'ClusterRole').map((o) => o.metadata.name));
    for (const name of ['cluster-admin', 'admin', 'edit', 'view', 'system:discovery', 'system:basic-user', 'system:public-info-viewer', 'system:node', 'system:node-bootstrapper']) {
      assert.ok(roles.has(name), name);
    }
    for (const b of policy.filter((o) => o.kind === 'ClusterRoleBinding')) {
      assert.ok(roles.has((b['roleRef'] as { name: string }).name), `${b.metadata.name} refers to a missing role`);
    }
    assert.notEqual(bootstrapPolicy()[0], policy[0], 'each call returns fresh objects');
  });

  test('system:masters is cluster-admin; ordinary users only get discovery and self-review', () => {
    assert.equal(
      authz.authorize(user('root', 'system:masters'), res('delete', 'nodes', { name: 'n' })).allowed,
      true,
    );
    const bob = user('bob');
    assert.equal(allowed(bob, url('get', '/apis/apps/v1')), true);
    assert.equal(allowed(bob, url('get', '/version')), true);
    assert.equal(allowed(bob, url('get', '/metrics')), false);
    assert.equal(allowed(bob, res('create', 'selfsubjectaccessreviews', { apiGroup: 'authorization.k8s.io' })), true);
    assert.equal(allowed(bob, res('list', 'pods', { namespace: 'default' })), false);
  });

  test('view ⊂ edit ⊂ admin through aggregation', () => {
    const src = new MemoryRbacSource(policy);
    for (const [roleName, who] of [['view', 'viewer'], ['edit', 'editor'], ['admin', 'owner']] as const) {
      src.add({
        apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: who, namespace: 'team' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName }, subjects: [{ kind: 'User', name: who }],
      });
    }
    const a = new RbacAuthorizer(src);
    const can = (who: string, attrs: RequestAttributes) => a.authorize(user(who), attrs).allowed;
    const getPods = res('get', 'pods', { namespace: 'team', name: 'p' });
    const readSecret = res('get', 'secrets', { namespace: 'team', name: 's' });
    const createDeploy = res('create', 'deployments', { apiGroup: 'apps', namespace: 'team' });
    const bindRoles = res('create', 'rolebindings', { apiGroup: 'rbac.authorization.k8s.io', namespace: 'team' });
    assert.deepEqual([can('viewer', getPods), can('viewer', readSecret), can('viewer', createDeploy), can('viewer', bindRoles)], [true, false, false, false]);
    assert.deepEqual([can('editor', getPods), can('editor', readSecret), can('editor', createDeploy), can('editor', bindRoles)], [true, true, true, false]);
    assert.deepEqual([can('owner', getPods), can('owner', readSecret), can('owner', createDeploy), can('owner', bindRoles)], [true, true, true, true]);
    assert.equal(can('owner', res('get', 'pods', { namespace: 'elsewhere', name: 'p' })), false);
  });

  test('nodes and bootstrappers get what a node agent needs, and no more', () => {
    const node = user('system:node:edge-1', 'system:nodes');
    assert.equal(allowed(node, res('create', 'nodes')), true);
    assert.equal(allowed(node, res('patch', 'nodes', { name: 'edge-1', subresource: 'status' })), true);
    assert.equal(allowed(node, res('update', 'leases', { apiGroup: 'coordination.k8s.io', namespace: 'kube-node-lease', name: 'edge-1' })), true);
    assert.equal(allowed(node, res('watch', 'pods')), true);
    assert.equal(allowed(node, res('patch', 'pods', { namespace: 'a', name: 'p', subresource: 'status' })), true);
    assert.equal(allowed(node, res('get', 'secrets', { namespace: 'a', name: 's' })), true);
    assert.equal(allowed(node, res('create', 'events', { namespace: 'a' })), true);
    assert.equal(allowed(node, res('create', 'certificatesigningrequests', { apiGroup: 'certificates.k8s.io' })), true);
    assert.equal(allowed(node, res('delete', 'nodes', { name: 'edge-2' })), false);
    assert.equal(allowed(node, res('create', 'secrets', { namespace: 'a' })), false);
    assert.equal(allowed(node, res('get', 'clusterroles', { apiGroup: 'rbac.authorization.k8s.io', name: 'admin' })), false);

    const boot = user('system:bootstrap:abcdef', 'system:bootstrappers');
    for (const verb of ['create', 'get', 'watch']) {
      assert.equal(allowed(boot, res(verb, 'certificatesigningrequests', { apiGroup: 'certificates.k8s.io', name: verb === 'create' ? undefined : 'csr-1' })), true, verb);
    }
    assert.equal(allowed(boot, res('create', 'certificatesigningrequests', { apiGroup: 'certificates.k8s.io', subresource: 'nodeclient' })), true);
    assert.equal(allowed(boot, res('update', 'certificatesigningrequests', { apiGroup: 'certificates.k8s.io', name: 'csr-1', subresource: 'approval' })), false);
    assert.equal(allowed(boot, res('get', 'nodes', { name: 'edge-1' })), false);
  });
});
