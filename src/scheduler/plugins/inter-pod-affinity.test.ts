import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SKIP, type PodInfo } from '../framework.js';
import type { PodAffinityTerm, PodSpec } from '../types.js';
import { labeledPod, runFilter, runScore, testCluster, testNode } from '../testing.js';
import { AFFINITY_RULES_REASON, ANTI_AFFINITY_RULES_REASON, EXISTING_ANTI_AFFINITY_REASON, interPodAffinity } from './inter-pod-affinity.js';

const HOST = 'kubernetes.io/hostname';
const ZONE = 'topology.kubernetes.io/zone';

function node(name: string, zone: string | undefined, pods: PodInfo[] = []) {
  const labels: Record<string, string> = { [HOST]: name };
  if (zone) labels[ZONE] = zone;
  return testNode(name, { labels, pods });
}

function term(app: string, topologyKey: string, extra: Partial<PodAffinityTerm> = {}): PodAffinityTerm {
  return { labelSelector: { matchLabels: { app } }, topologyKey, ...extra };
}

const requiredAffinity = (...terms: PodAffinityTerm[]): PodSpec => ({ affinity: { podAffinity: { requiredDuringSchedulingIgnoredDuringExecution: terms } } });
const requiredAntiAffinity = (...terms: PodAffinityTerm[]): PodSpec => ({ affinity: { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: terms } } });
const app = (name: string, spec: PodSpec = {}, namespace = 'default') => labeledPod({ app: name }, spec, { namespace });

describe('InterPodAffinity filter (required terms)', () => {
  it('keeps a pod off nodes whose domain holds a pod its anti-affinity selects', () => {
    const cluster = testCluster([node('n1', 'a', [app('web')]), node('n2', 'a'), node('n3', 'b')]);
    const byHost = runFilter(interPodAffinity, app('web', requiredAntiAffinity(term('web', HOST))), cluster);
    assert.deepEqual(byHost, { n1: [ANTI_AFFINITY_RULES_REASON], n2: undefined, n3: undefined });
    const byZone = runFilter(interPodAffinity, app('web', requiredAntiAffinity(term('web', ZONE))), cluster);
    assert.deepEqual(byZone, { n1: [ANTI_AFFINITY_RULES_REASON], n2: [ANTI_AFFINITY_RULES_REASON], n3: undefined });
  });

  it("honours existing pods' required anti-affinity against the incoming pod (symmetry)", () => {
    const loner = app('loner', requiredAntiAffinity(term('web', ZONE)));
    const cluster = testCluster([node('n1', 'a', [loner]), node('n2', 'a'), node('n3', 'b')]);
    assert.deepEqual(runFilter(interPodAffinity, app('web'), cluster), { n1: [EXISTING_ANTI_AFFINITY_REASON], n2: [EXISTING_ANTI_AFFINITY_REASON], n3: undefined });
    assert.equal(runFilter(interPodAffinity, app('db'), cluster), SKIP, 'nothing selects a db pod');
  });

  it('requires a matching pod in the domain for every affinity term, and the key on the node', () => {
    const cluster = testCluster([node('n1', 'a', [app('db')]), node('n2', 'a'), node('n3', 'b'), node('bare', undefined)]);
    const result = runFilter(interPodAffinity, app('web', requiredAffinity(term('db', ZONE))), cluster);
    assert.deepEqual(result, { n1: undefined, n2: undefined, n3: [AFFINITY_RULES_REASON], bare: [AFFINITY_RULES_REASON] });
  });

  it('lets the first pod of a group with affinity to itself go anywhere the key is', () => {
    const cluster = testCluster([node('n1', 'a'), node('bare', undefined)]);
    assert.deepEqual(runFilter(interPodAffinity, app('web', requiredAffinity(term('web', ZONE))), cluster), { n1: undefined, bare: [AFFINITY_RULES_REASON] });
    assert.deepEqual(runFilter(interPodAffinity, app('web', requiredAffinity(term('db', ZONE))), cluster), { n1: [AFFINITY_RULES_REASON], bare: [AFFINITY_RULES_REASON] });
  });

  it("reads the pod's own namespace by default, the named ones, or those a namespaceSelector picks", () => {
    const nodes = () => [node('n1', 'a', [app('web', {}, 'team-a')]), node('n2', 'b')];
    const namespaces = [{ metadata: { name: 'team-a', labels: { team: 'a' } } }, { metadata: { name: 'default' } }];
    const cluster = testCluster(nodes(), { namespaces });
    assert.deepEqual(runFilter(interPodAffinity, app('web', requiredAntiAffinity(term('web', HOST))), cluster), { n1: undefined, n2: undefined });
    assert.deepEqual(runFilter(interPodAffinity, app('web', requiredAntiAffinity(term('web', HOST, { namespaces: ['team-a'] }))), cluster), { n1: [ANTI_AFFINITY_RULES_REASON], n2: undefined });
    const bySelector = app('web', requiredAntiAffinity(term('web', HOST, { namespaceSelector: { matchLabels: { team: 'a' } } })));
    assert.deepEqual(runFilter(interPodAffinity, bySelector, cluster), { n1: [ANTI_AFFINITY_RULES_REASON], n2: undefined });
    const everywhere = app('web', requiredAntiAffinity(term('web', HOST, { namespaceSelector: {} })));
    assert.deepEqual(runFilter(interPodAffinity, everywhere, testCluster(nodes())), { n1: [ANTI_AFFINITY_RULES_REASON], n2: undefined }, 'the empty selector needs no namespace objects');
  });

  it('matches an existing pod’s namespaceSelector against the incoming pod’s namespace labels', () => {
    const guard = app('guard', requiredAntiAffinity(term('web', HOST, { namespaceSelector: { matchLabels: { env: 'prod' } } })), 'ops');
    const namespaces = [{ metadata: { name: 'shop', labels: { env: 'prod' } } }, { metadata: { name: 'lab', labels: { env: 'dev' } } }];
    const cluster = testCluster([node('n1', 'a', [guard]), node('n2', 'a')], { namespaces });
    assert.deepEqual(runFilter(interPodAffinity, app('web', {}, 'shop'), cluster), { n1: [EXISTING_ANTI_AFFINITY_REASON], n2: undefined });
    assert.equal(runFilter(interPodAffinity, app('web', {}, 'lab'), cluster), SKIP);
  });

  it('counts assumed pods, and rejects terms whose selector does not parse', () => {
    const cluster = testCluster([node('n1', 'a'), node('n2', 'b')]);
    cluster.assume(app('web'), 'n1');
    assert.deepEqual(runFilter(interPodAffinity, app('web', requiredAntiAffinity(term('web', HOST))), cluster), { n1: [ANTI_AFFINITY_RULES_REASON], n2: undefined });
    const bad = app('web', requiredAntiAffinity({ labelSelector: { matchExpressions: [{ key: 'app', operator: 'Near' }] }, topologyKey: HOST }));
    assert.deepEqual(runFilter(interPodAffinity, bad, cluster), { preFilter: ['"Near" is not a valid label selector operator'] });
  });
});

describe('InterPodAffinity score', () => {
  it("adds the pod's preferred affinity weights and subtracts its anti-affinity ones, per domain", () => {
    const cluster = testCluster([node('a1', 'a', [app('cache')]), node('a2', 'a', [app('web')]), node('b1', 'b')]);
    const pod = app('web', {
      affinity: {
        podAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 10, podAffinityTerm: term('cache', ZONE) }] },
        podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 5, podAffinityTerm: term('web', HOST) }] },
      },
    });
    // Raw: a1 10, a2 10 - 5, b1 0; rescaled from min to max.
    assert.deepEqual(runScore(interPodAffinity, pod, cluster), { a1: 100, a2: 50, b1: 0 });
  });

  it("counts existing pods' preferred terms and required affinity that select the pod", () => {
    const wantsWeb = app('frontend', requiredAffinity(term('web', ZONE)));
    const avoidsWeb = app('batch', { affinity: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 20, podAffinityTerm: term('web', HOST) }] } } });
    const cluster = testCluster([node('a1', 'a', [wantsWeb]), node('a2', 'a'), node('b1', 'b', [avoidsWeb])]);
    // Raw: zone a +1 (hard affinity weight), host b1 -20.
    assert.deepEqual(runScore(interPodAffinity, app('web'), cluster), { a1: 100, a2: 100, b1: 0 });
    assert.equal(runScore(interPodAffinity, app('db'), cluster), SKIP);
  });

  it('skips pods when no pod has affinity terms', () => {
    assert.equal(runScore(interPodAffinity, app('web'), testCluster([node('n1', 'a', [app('web')])])), SKIP);
  });
});
