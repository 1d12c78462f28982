import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SKIP, type PodInfo } from '../framework.js';
import type { TopologySpreadConstraint } from '../types.js';
import { type TestNodeSpec, labeledPod, runFilter, runScore, testCluster, testNode } from '../testing.js';
import { HOSTNAME_LABEL, SPREAD_CONSTRAINTS_REASON, SPREAD_LABEL_REASON, ZONE_LABEL, podTopologySpread } from './pod-topology-spread.js';

const WEB = { app: 'web' };

/** A node with a hostname label, in `zone` unless it is undefined. */
function node(name: string, zone: string | undefined, pods: PodInfo[] = [], spec: TestNodeSpec = {}) {
  const labels: Record<string, string> = { [HOSTNAME_LABEL]: name, ...spec.labels };
  if (zone) labels[ZONE_LABEL] = zone;
  return testNode(name, { ...spec, labels, pods });
}

const web = () => labeledPod(WEB);

function spread(topologyKey: string, whenUnsatisfiable: string, extra: Partial<TopologySpreadConstraint> = {}): TopologySpreadConstraint {
  return { maxSkew: 1, topologyKey, whenUnsatisfiable, labelSelector: { matchLabels: WEB }, ...extra };
}

const incoming = (constraints: TopologySpreadConstraint[], spec = {}, labels: Record<string, string> = WEB) => labeledPod(labels, { topologySpreadConstraints: constraints, ...spec });

describe('PodTopologySpread filter (DoNotSchedule)', () => {
  it('rejects domains that would exceed maxSkew over the emptiest one, and nodes without the key', () => {
    const cluster = testCluster([node('a1', 'a', [web()]), node('a2', 'a', [web()]), node('b1', 'b'), node('bare', undefined)]);
    const result = runFilter(podTopologySpread, incoming([spread(ZONE_LABEL, 'DoNotSchedule')]), cluster);
    assert.deepEqual(result, { a1: [SPREAD_CONSTRAINTS_REASON], a2: [SPREAD_CONSTRAINTS_REASON], b1: undefined, bare: [SPREAD_LABEL_REASON] });
  });

  it('counts only live matching pods of the namespace, assumed ones included', () => {
    const noise = [labeledPod({ app: 'db' }), labeledPod(WEB, {}, { namespace: 'other' }), labeledPod(WEB, {}, { deletionTimestamp: '2024-01-01T00:00:00Z' })];
    const cluster = testCluster([node('a1', 'a', [web()]), node('b1', 'b', noise)]);
    const pod = incoming([spread(ZONE_LABEL, 'DoNotSchedule')]);
    // Zone b counts 0, so zone a (1 + the pod itself) is 2 over it.
    assert.deepEqual(runFilter(podTopologySpread, pod, cluster), { a1: [SPREAD_CONSTRAINTS_REASON], b1: undefined });
    cluster.assume(web(), 'b1');
    assert.deepEqual(runFilter(podTopologySpread, pod, cluster), { a1: undefined, b1: undefined });
  });

  it('takes the global minimum as 0 while fewer domains than minDomains exist', () => {
    const cluster = testCluster([node('a1', 'a', [web()]), node('b1', 'b', [web()])]);
    assert.deepEqual(runFilter(podTopologySpread, incoming([spread(ZONE_LABEL, 'DoNotSchedule')]), cluster), { a1: undefined, b1: undefined });
    const wide = incoming([spread(ZONE_LABEL, 'DoNotSchedule', { minDomains: 3 })]);
    assert.deepEqual(runFilter(podTopologySpread, wide, cluster), { a1: [SPREAD_CONSTRAINTS_REASON], b1: [SPREAD_CONSTRAINTS_REASON] });
  });

  it("leaves out domains the pod's node affinity excludes, unless nodeAffinityPolicy is Ignore", () => {
    const pool = { labels: { pool: 'main' } };
    const cluster = testCluster([node('a1', 'a', [web()], pool), node('b1', 'b', [web()], pool), node('c1', 'c')]);
    const honored = runFilter(podTopologySpread, incoming([spread(ZONE_LABEL, 'DoNotSchedule')], { nodeSelector: pool.labels }), cluster);
    assert.deepEqual(honored, { a1: undefined, b1: undefined, c1: undefined });
    const ignored = runFilter(podTopologySpread, incoming([spread(ZONE_LABEL, 'DoNotSchedule', { nodeAffinityPolicy: 'Ignore' })], { nodeSelector: pool.labels }), cluster);
    assert.deepEqual(ignored, { a1: [SPREAD_CONSTRAINTS_REASON], b1: [SPREAD_CONSTRAINTS_REASON], c1: undefined });
  });

  it('counts tainted domains unless nodeTaintsPolicy is Honor', () => {
    const cluster = testCluster([node('a1', 'a', [web()]), node('b1', 'b', [web()]), node('c1', 'c', [], { taints: [{ key: 'dedicated', effect: 'NoSchedule' }] })]);
    const ignored = runFilter(podTopologySpread, incoming([spread(ZONE_LABEL, 'DoNotSchedule')]), cluster);
    assert.deepEqual(ignored, { a1: [SPREAD_CONSTRAINTS_REASON], b1: [SPREAD_CONSTRAINTS_REASON], c1: undefined });
    const honored = runFilter(podTopologySpread, incoming([spread(ZONE_LABEL, 'DoNotSchedule', { nodeTaintsPolicy: 'Honor' })]), cluster);
    assert.deepEqual(honored, { a1: undefined, b1: undefined, c1: undefined });
  });

  it("narrows the selector to the pod's own values of matchLabelKeys", () => {
    const cluster = testCluster([node('a1', 'a', [labeledPod({ ...WEB, 'pod-template-hash': 'v1' })]), node('b1', 'b')]);
    const labels = { ...WEB, 'pod-template-hash': 'v2' };
    assert.deepEqual(runFilter(podTopologySpread, incoming([spread(ZONE_LABEL, 'DoNotSchedule')], {}, labels), cluster), { a1: [SPREAD_CONSTRAINTS_REASON], b1: undefined });
    const perRevision = incoming([spread(ZONE_LABEL, 'DoNotSchedule', { matchLabelKeys: ['pod-template-hash'] })], {}, labels);
    assert.deepEqual(runFilter(podTopologySpread, perRevision, cluster), { a1: undefined, b1: undefined });
  });

  it('skips pods without hard constraints, and rejects a selector that does not parse', () => {
    const cluster = testCluster([node('a1', 'a')]);
    assert.equal(runFilter(podTopologySpread, incoming([spread(ZONE_LABEL, 'ScheduleAnyway')]), cluster), SKIP);
    assert.equal(runFilter(podTopologySpread, web(), cluster), SKIP);
    const bad = incoming([spread(ZONE_LABEL, 'DoNotSchedule', { labelSelector: { matchExpressions: [{ key: 'app', operator: 'Near' }] } })]);
    assert.deepEqual(runFilter(podTopologySpread, bad, cluster), { preFilter: ['invalid topology spread constraint: "Near" is not a valid label selector operator'] });
  });
});

describe('PodTopologySpread score (ScheduleAnyway)', () => {
  it("scores nodes by their matching pods, as kube's log-weighted, skew-tolerant formula", () => {
    const cluster = testCluster([node('n1', 'a', [web(), web()]), node('n2', 'a', [web()]), node('n3', 'a')]);
    // ln(3 nodes + 2) = 1.61 per pod: raw 3, 2, 0; then 100 * (max + min - raw) / max.
    assert.deepEqual(runScore(podTopologySpread, incoming([spread(HOSTNAME_LABEL, 'ScheduleAnyway')]), cluster), { n1: 0, n2: 33, n3: 100 });
  });

  it('scores 0 on nodes lacking a key of the pod’s own constraints', () => {
    const cluster = testCluster([node('a1', 'a', [web()]), node('a2', 'a', [web()]), node('b1', 'b'), node('bare', undefined)]);
    assert.deepEqual(runScore(podTopologySpread, incoming([spread(ZONE_LABEL, 'ScheduleAnyway')]), cluster), { a1: 0, a2: 0, b1: 100, bare: 0 });
  });

  it('spreads a ReplicaSet’s pods over hosts and zones by the system defaults', () => {
    const nodes = [node('h1', 'a', [web(), web()]), node('h2', 'a'), node('h3', 'b'), node('h4', undefined)];
    const replicaSets = [{ metadata: { name: 'web-rs', namespace: 'default' }, spec: { selector: { matchLabels: WEB } } }];
    const owned = labeledPod(WEB, {}, { ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-rs', uid: 'rs-uid', controller: true }] });
    // hostname (maxSkew 3) and zone (maxSkew 5) add up; h4 has no zone yet still spreads by host.
    assert.deepEqual(runScore(podTopologySpread, owned, testCluster(nodes, { replicaSets })), { h1: 15, h2: 46, h3: 69, h4: 100 });
  });

  it('takes the default selector from the Services selecting the pod, and skips a pod nothing selects', () => {
    const nodes = () => [node('h1', 'a', [web(), web()]), node('h2', 'a'), node('h3', 'b'), node('h4', undefined)];
    const services = [{ metadata: { name: 'web', namespace: 'default' }, spec: { selector: WEB } }];
    assert.deepEqual(runScore(podTopologySpread, web(), testCluster(nodes(), { services })), { h1: 15, h2: 46, h3: 69, h4: 100 });
    assert.equal(runScore(podTopologySpread, web(), testCluster(nodes())), SKIP);
    const elsewhere = [{ metadata: { name: 'web', namespace: 'other' }, spec: { selector: WEB } }];
    assert.equal(runScore(podTopologySpread, web(), testCluster(nodes(), { services: elsewhere })), SKIP);
  });
});
