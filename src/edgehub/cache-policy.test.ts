import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CachePolicy } from './cache-policy.js';

describe('CachePolicy', () => {
  it('caches every component\'s reads of what a node runs pods with by default', () => {
    const policy = CachePolicy.from();
    for (const verb of ['get', 'list', 'watch']) assert.equal(policy.caches('kubelet', 'pods', verb), true);
    assert.equal(policy.caches('log-agent', 'configmaps', 'list'), true);
    assert.equal(policy.caches('kubelet', 'deployments', 'list'), false);
    assert.equal(policy.caches('kubelet', 'pods', 'create'), false);
    assert.equal(policy.exclusion('kubelet', 'deployments', 'list'), 'resource "deployments" is not cached');
  });

  it('narrows to the components, resources and verbs given, and names what it leaves out', () => {
    const policy = CachePolicy.from({ components: ['kubelet'], resources: ['pods'], verbs: ['list'] });
    assert.equal(policy.caches('kubelet', 'pods', 'list'), true);
    assert.equal(policy.keeps('kubelet', 'pods'), true);
    assert.equal(policy.caches('kubelet', 'pods', 'watch'), false);
    assert.equal(policy.keeps('kube-proxy', 'pods'), false);
    assert.equal(policy.exclusion('kube-proxy', 'pods', 'list'), 'reads of client component "kube-proxy" are not cached');
    assert.equal(policy.exclusion('kubelet', 'pods', 'watch'), 'watch requests are not cached');
    const all = CachePolicy.from({ resources: ['*'] });
    assert.equal(all.caches('anything', 'widgets', 'get'), true);
  });

  it('refuses options it cannot honour, naming the option and the fix', () => {
    assert.throws(() => CachePolicy.from({ components: [] }), /cache\.components is empty; name at least one, or \* for all/);
    assert.throws(() => CachePolicy.from({ components: ['kubelet/v1'] }), /cache\.components: "kubelet\/v1" is not a client component/);
    assert.throws(() => CachePolicy.from({ resources: ['pods.v1'] }), /cache\.resources: "pods\.v1" is not a plural resource name/);
    assert.throws(() => CachePolicy.from({ verbs: ['patch'] }), /cache\.verbs: "patch" is not a cacheable verb: choose from get, list, watch/);
  });
});
