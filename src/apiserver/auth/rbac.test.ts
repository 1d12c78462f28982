import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { KubeObject, UserInfo } from '../../api/types.js';
import { MemoryRbacSource } from './memory-rbac-source.js';
import { RbacAuthorizer, forbiddenMessage, selectorMatches, type RequestAttributes } from './rbac.js';

type Rule = { apiGroups?: string[]; resources?: string[]; resourceNames?: string[]; nonResourceURLs?: string[]; verbs: string[] };
type Subject = { kind: string; name: string; namespace?: string };

const API = 'rbac.authorization.k8s.io/v1';
const role = (ns: string, name: string, rules: Rule[]): KubeObject => ({ apiVersion: API, kind: 'Role', metadata: { name, namespace: ns }, rules });
const clusterRole = (name: string, rules: Rule[], extra: Partial<KubeObject> = {}, labels?: Record<string, string>): KubeObject => ({
  apiVersion: API, kind: 'ClusterRole', metadata: { name, labels }, rules, ...extra,
});
const roleBinding = (ns: string, name: string, ref: { kind: string; name: string }, subjects: Subject[]): KubeObject => ({
  apiVersion: API, kind: 'RoleBinding', metadata: { name, namespace: ns }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', ...ref }, subjects,
});
const clusterRoleBinding = (name: string, roleName: string, subjects: Subject[]): KubeObject => ({
  apiVersion: API, kind: 'ClusterRoleBinding', metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName }, subjects,
});

const user = (name: string, ...groups: string[]): UserInfo => ({ name, groups: [...groups, 'system:authenticated'] });
const res = (verb: string, resource: string, opts: Partial<RequestAttributes> = {}): RequestAttributes => ({
  verb, apiGroup: '', resource, resourceRequest: true, ...opts,
});
const url = (verb: string, path: string): RequestAttributes => ({ verb, apiGroup: '', resource: '', path, resourceRequest: false });

const bob = user('bob');

describe('RbacAuthorizer', () => {
  test('a Role bound in namespace a allows there and nowhere else', () => {
    const src = new MemoryRbacSource().add(
      role('a', 'pod-reader', [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }]),
      roleBinding('a', 'bob-reads', { kind: 'Role', name: 'pod-reader' }, [{ kind: 'User', name: 'bob' }]),
    );
    const authz = new RbacAuthorizer(src);
    assert.deepEqual(authz.authorize(bob, res('get', 'pods', { namespace: 'a', name: 'p' })), {
      allowed: true,
      reason: 'RBAC: allowed by RoleBinding "bob-reads/a" of Role "pod-reader" to User "bob"',
    });
    assert.equal(authz.authorize(bob, res('get', 'pods', { namespace: 'b', name: 'p' })).allowed, false);
    assert.equal(authz.authorize(bob, res('list', 'pods')).allowed, false, 'no cluster-wide list from a RoleBinding');
    assert.equal(authz.authorize(bob, res('delete', 'pods', { namespace: 'a' })).allowed, false);
    assert.equal(authz.authorize(bob, res('get', 'pods', { namespace: 'a', apiGroup: 'apps' })).allowed, false);
    assert.equal(authz.authorize(user('alice'), res('get', 'pods', { namespace: 'a' })).allowed, false);
  });

  test('a RoleBinding to a ClusterRole grants only in its namespace; a ClusterRoleBinding grants everywhere', () => {
    const src = new MemoryRbacSource().add(
      clusterRole('secret-reader', [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }]),
      roleBinding('a', 'devs-secrets', { kind: 'ClusterRole', name: 'secret-reader' }, [{ kind: 'Group', name: 'dev' }]),
      clusterRoleBinding('ops-secrets', 'secret-reader', [{ kind: 'Group', name: 'ops' }]),
    );
    const authz = new RbacAuthorizer(src);
    assert.equal(authz.authorize(user('d', 'dev'), res('get', 'secrets', { namespace: 'a' })).allowed, true);
    assert.equal(authz.authorize(user('d', 'dev'), res('get', 'secrets', { namespace: 'b' })).allowed, false);
    assert.equal(authz.authorize(user('d', 'dev'), res('get', 'secrets')).allowed, false);
    assert.deepEqual(authz.authorize(user('o', 'ops'), res('get', 'secrets', { namespace: 'b' })), {
      allowed: true,
      reason: 'RBAC: allowed by ClusterRoleBinding "ops-secrets" of ClusterRole "secret-reader" to Group "ops"',
    });
    assert.equal(authz.authorize(user('o', 'ops'), res('get', 'secrets')).allowed, true);
  });

  test('resourceNames restrict to named objects and never match unnamed requests', () => {
    const src = new MemoryRbacSource().add(
      role('a', 'one-cm', [{ apiGroups: [''], resources: ['configmaps'], resourceNames: ['app-config'], verbs: ['get', 'update', 'list'] }]),
      roleBinding('a', 'b', { kind: 'Role', name: 'one-cm' }, [{ kind: 'User', name: 'bob' }]),
    );
    const authz = new RbacAuthorizer(src);
    assert.equal(authz.authorize(bob, res('get', 'configmaps', { namespace: 'a', name: 'app-config' })).allowed, true);
    assert.equal(authz.authorize(bob, res('update', 'configmaps', { namespace: 'a', name: 'app-config' })).allowed, true);
    assert.equal(authz.authorize(bob, res('get', 'configmaps', { namespace: 'a', name: 'other' })).allowed, false);
    assert.equal(authz.authorize(bob, res('list', 'configmaps', { namespace: 'a' })).allowed, false);
  });

  test('subresources need the res/sub form or */sub; the bare resource does not cover them', () => {
    const src = new MemoryRbacSource().add(
      clusterRole('logs', [{ apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get'] }]),
      clusterRole('scaler', [{ apiGroups: ['*'], resources: ['*/scale'], verbs: ['update'] }]),
      clusterRoleBinding('bob-logs', 'logs', [{ kind: 'User', name: 'bob' }]),
      clusterRoleBinding('bob-scale', 'scaler', [{ kind: 'User', name: 'bob' }]),
    );
    const authz = new RbacAuthorizer(src);
    assert.equal(authz.authorize(bob, res('get', 'pods', { namespace: 'a', subresource: 'log' })).allowed, true);
    assert.equal(authz.authorize(bob, res('get', 'pods', { namespace: 'a', subresource: 'exec' })).allowed, false);
    assert.equal(authz.authorize(bob, res('update', 'deployments', { apiGroup: 'apps', namespace: 'a', subresource: 'scale' })).allowed, true);
    assert.equal(authz.authorize(bob, res('update', 'deployments', { apiGroup: 'apps', namespace: 'a' })).allowed, false);
    assert.equal(authz.authorize(bob, res('update', 'deployments', { apiGroup: 'apps', namespace: 'a', subresource: 'status' })).allowed, false);
  });

  test('wildcards in verbs, groups and resources (including subresources)', () => {
    const src = new MemoryRbacSource().add(
      clusterRole('apps-all', [{ apiGroups: ['apps'], resources: ['*'], verbs: ['*'] }]),
      clusterRoleBinding('bob-apps', 'apps-all', [{ kind: 'User', name: 'bob' }]),
    );
    const authz = new RbacAuthorizer(src);
    assert.equal(authz.authorize(bob, res('deletecollection', 'deployments', { apiGroup: 'apps', namespace: 'x' })).allowed, true);
    assert.equal(authz.authorize(bob, res('patch', 'statefulsets', { apiGroup: 'apps', subresource: 'status', namespace: 'x' })).allowed, true);
    assert.equal(authz.authorize(bob, res('get', 'pods', { namespace: 'x' })).allowed, false);
    assert.equal(authz.authorize(bob, url('get', '/healthz')).allowed, false, 'resource rules never grant URLs');
  });

  test('nonResourceURLs match exactly or by trailing-* prefix, and only via ClusterRoleBindings', () => {
    const src = new MemoryRbacSource().add(
      clusterRole('disco', [{ nonResourceURLs: ['/api', '/api/*', '/healthz'], verbs: ['get'] }]),
      clusterRoleBinding('all-disco', 'disco', [{ kind: 'Group', name: 'system:authenticated' }]),
      clusterRole('metrics', [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }]),
      roleBinding('a', 'ns-metrics', { kind: 'ClusterRole', name: 'metrics' }, [{ kind: 'User', name: 'bob' }]),
    );
    const authz = new RbacAuthorizer(src);
    assert.equal(authz.authorize(bob, url('get', '/api')).allowed, true);
    assert.equal(authz.authorize(bob, url('get', '/api/v1')).allowed, true);
    assert.equal(authz.authorize(bob, url('get', '/api/v1/namespaces')).allowed, true);
    assert.equal(authz.authorize(bob, url('get', '/apis')).allowed, false);
    assert.equal(authz.authorize(bob, url('get', '/healthz/etcd')).allowed, false);
    assert.equal(authz.authorize(bob, url('post', '/api')).allowed, false);
    assert.equal(authz.authorize(bob, url('get', '/metrics')).allowed, false);
    assert.equal(authz.authorize(bob, res('get', 'api')).allowed, false, 'URL rules never grant resources');
  });

  test('aggregated ClusterRoles take the union of selected roles, transitively', () => {
    const src = new MemoryRbacSource().add(
      clusterRole('monitoring', [], { aggregationRule: { clusterRoleSelectors: [{ matchLabels: { 'example.com/aggregate-to-monitoring': 'true' } }] } }),
      clusterRole('mon-pods', [{ apiGroups: [''], resources: ['pods'], verbs: ['list'] }], {}, { 'example.com/aggregate-to-monitoring': 'true' }),
      clusterRole('mon-nested', [], { aggregationRule: { clusterRoleSelectors: [{ matchExpressions: [{ key: 'tier', operator: 'In', values: ['mon'] }] }] } }, {
        'example.com/aggregate-to-monitoring': 'true',
      }),
      clusterRole('mon-nodes', [{ apiGroups: [''], resources: ['nodes'], verbs: ['get'] }], {}, { tier: 'mon' }),
      clusterRole('unlabelled', [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }]),
      clusterRoleBinding('bob-mon', 'monitoring', [{ kind: 'User', name: 'bob' }]),
    );
    const authz = new RbacAuthorizer(src);
    assert.equal(authz.authorize(bob, res('list', 'pods')).allowed, true);
    assert.equal(authz.authorize(bob, res('get', 'nodes', { name: 'n1' })).allowed, true);
    assert.equal(authz.authorize(bob, res('get', 'secrets', { namespace: 'a', name: 's' })).allowed, false);
  });

  test('ServiceAccount subjects match system:serviceaccount:<ns>:<name>; namespace defaults to the binding', () => {
    const src = new MemoryRbacSource().add(
      clusterRole('cm-reader', [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get'] }]),
      roleBinding('a', 'sa-default-ns', { kind: 'ClusterRole', name: 'cm-reader' }, [{ kind: 'ServiceAccount', name: 'builder' }]),
      roleBinding('b', 'sa-other-ns', { kind: 'ClusterRole', name: 'cm-reader' }, [{ kind: 'ServiceAccount', name: 'deployer', namespace: 'ci' }]),
      clusterRoleBinding('sa-no-ns', 'cm-reader', [{ kind: 'ServiceAccount', name: 'builder' }]),
      roleBinding('c', 'all-sas-in-ci', { kind: 'ClusterRole', name: 'cm-reader' }, [{ kind: 'Group', name: 'system:serviceaccounts:ci' }]),
    );
    const authz = new RbacAuthorizer(src);
    const saUser = (ns: string, name: string) => user(`system:serviceaccount:${ns}:${name}`, 'system:serviceaccounts', `system:serviceaccounts:${ns}`);
    assert.deepEqual(authz.authorize(saUser('a', 'builder'), res('get', 'configmaps', { namespace: 'a' })), {
      allowed: true,
      reason: 'RBAC: allowed by RoleBinding "sa-default-ns/a" of ClusterRole "cm-reader" to ServiceAccount "builder/a"',
    });
    assert.equal(authz.authorize(saUser('a', 'builder'), res('get', 'configmaps', { namespace: 'z' })).allowed, false, 'CRB subject without namespace matches nobody');
    assert.equal(authz.authorize(saUser('ci', 'deployer'), res('get', 'configmaps', { namespace: 'b' })).allowed, true);
    assert.equal(authz.authorize(saUser('b', 'deployer'), res('get', 'configmaps', { namespace: 'b' })).allowed, false);
    assert.equal(authz.authorize(saUser('ci', 'anyone'), res('get', 'configmaps', { namespace: 'c' })).allowed, true);
    assert.equal(authz.authorize(user('builder'), res('get', 'configmaps', { namespace: 'a' })).allowed, false);
  });

  test('system:masters is allowed everything, even with no bindings', () => {
    const authz = new RbacAuthorizer(new MemoryRbacSource());
    assert.equal(authz.authorize(user('root', 'system:masters'), res('delete', 'nodes', { name: 'n' })).allowed, true);
    assert.equal(authz.authorize(user('root', 'system:masters'), url('get', '/metrics')).allowed, true);
    assert.equal(authz.authorize(user('root'), url('get', '/metrics')).allowed, false);
  });

  test('a binding to a missing role denies with kube\'s RBAC error reason', () => {
    const src = new MemoryRbacSource().add(
      roleBinding('a', 'dangling', { kind: 'Role', name: 'gone' }, [{ kind: 'User', name: 'bob' }]),
      clusterRoleBinding('dangling-c', 'gone-too', [{ kind: 'User', name: 'bob' }]),
    );
    assert.deepEqual(new RbacAuthorizer(src).authorize(bob, res('get', 'pods', { namespace: 'a' })), {
      allowed: false,
      reason: 'RBAC: [clusterrole.rbac.authorization.k8s.io "gone-too" not found role.rbac.authorization.k8s.io "gone" not found]',
    });
  });
});

describe('selectorMatches', () => {
  test('matchLabels and every matchExpressions operator', () => {
    const labels = { a: '1', b: '2' };
    assert.equal(selectorMatches({ matchLabels: { a: '1' } }, labels), true);
    assert.equal(selectorMatches({ matchLabels: { a: '2' } }, labels), false);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'b', operator: 'In', values: ['2', '3'] }] }, labels), true);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'b', operator: 'NotIn', values: ['2'] }] }, labels), false);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'c', operator: 'NotIn', values: ['2'] }] }, labels), true);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'c', operator: 'Exists' }] }, labels), false);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'c', operator: 'DoesNotExist' }] }, labels), true);
    assert.equal(selectorMatches({ matchExpressions: [{ key: 'a', operator: 'Bogus' }] }, labels), false);
  });
});

describe('forbiddenMessage', () => {
  test('namespaced, cluster-scoped, named, subresource, non-core group and non-resource forms', () => {
    assert.equal(
      forbiddenMessage(bob, res('list', 'pods', { namespace: 'other' })),
      'pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "other"',
    );
    assert.equal(
      forbiddenMessage(bob, res('list', 'nodes')),
      'nodes is forbidden: User "bob" cannot list resource "nodes" in API group "" at the cluster scope',
    );
    assert.equal(
      forbiddenMessage(bob, res('get', 'pods', { namespace: 'a', name: 'web-0', subresource: 'log' })),
      'pods "web-0" is forbidden: User "bob" cannot get resource "pods/log" in API group "" in the namespace "a"',
    );
    assert.equal(
      forbiddenMessage(bob, res('create', 'deployments', { apiGroup: 'apps', namespace: 'a' })),
      'deployments.apps is forbidden: User "bob" cannot create resource "deployments" in API group "apps" in the namespace "a"',
    );
    assert.equal(
      forbiddenMessage(bob, res('get', 'clusterroles', { apiGroup: 'rbac.authorization.k8s.io', name: 'admin' })),
      'clusterroles.rbac.authorization.k8s.io "admin" is forbidden: User "bob" cannot get resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope',
    );
    assert.equal(forbiddenMessage(bob, url('get', '/metrics')), 'forbidden: User "bob" cannot get path "/metrics"');
    assert.equal(
      forbiddenMessage(bob, res('get', 'pods', { namespace: 'a' }), 'RBAC: [role.rbac.authorization.k8s.io "gone" not found]'),
      'pods is forbidden: User "bob" cannot get resource "pods" in API group "" in the namespace "a": RBAC: [role.rbac.authorization.k8s.io "gone" not found]',
    );
    assert.equal(forbiddenMessage(user('<b>'), url('get', '/x')), 'forbidden: User "&lt;b&gt;" cannot get path "/x"');
  });
});
