import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KubeObject, OwnerReference } from '../api/types.js';
import { KubeClient, isNotFound, type Resource } from '../client/client.js';
import { resource } from '../client/informer.js';
import { SharedInformers } from './controller.js';
import { startCluster, type Cluster } from './workload-testkit.js';
import { GarbageCollector } from './garbage-collector.js';
import { waitFor } from '../../test/support/wait.js';

/** How long "nothing happens" is watched for. */
const SETTLE_MS = 1500;


describe('garbage collector', () => {
  let cluster: Cluster;
  let client: KubeClient;
  const cms = resource('configmaps');
  const ns = 'default';

  const ref = (owner: KubeObject, extra: Partial<OwnerReference> = {}): OwnerReference => ({
    apiVersion: owner.apiVersion!, kind: owner.kind!, name: owner.metadata.name!, uid: owner.metadata.uid!, ...extra,
  });
  const configMap = (name: string, owners: OwnerReference[] = [], finalizers?: string[]) =>
    client.create(cms, ns, { metadata: { name, ownerReferences: owners.length ? owners : undefined, finalizers } });
  async function find(r: Resource, name: string, namespace: string | undefined = ns): Promise<KubeObject | undefined> {
    try {
      return await client.get(r, namespace, name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }
  const gone = async (name: string) => !(await find(cms, name));

  before(async () => {
    cluster = await startCluster();
    client = cluster.client;
    const informers = new SharedInformers(client);
    const controller = new GarbageCollector(client, informers, { discoveryPeriodSeconds: 1 });
    informers.start(cluster.signal);
    cluster.start(controller);
  });

  after(async () => {
    await cluster?.close();
  });

  it('Background: deletes dependents of a deleted owner, and only unlinks one with another owner', async () => {
    const owner = await configMap('bg-owner');
    const other = await configMap('bg-other');
    await configMap('bg-dep', [ref(owner)]);
    await configMap('bg-shared', [ref(owner), ref(other)]);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    assert.ok(!(await gone('bg-dep')), 'a dependent of a live owner stays');

    await client.delete(cms, ns, 'bg-owner', { propagationPolicy: 'Background' });
    await waitFor('the dependent to be collected', () => gone('bg-dep'));
    const shared = await waitFor('the dangling reference to be removed', async () => {
      const s = await find(cms, 'bg-shared');
      return s?.metadata.ownerReferences?.length === 1 && s;
    });
    assert.equal(shared.metadata.ownerReferences![0]!.uid, other.metadata.uid);
  });

  it('deletes a dependent whose owner never existed', async () => {
    await configMap('ghost-dep', [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'ghost', uid: '00000000-0000-0000-0000-00000000dead' }]);
    await waitFor('the orphaned dependent to be collected', () => gone('ghost-dep'));
  });

  it('keeps a dependent whose owner was replaced by another object of the same name only if the uid matches', async () => {
    const first = await configMap('same-name');
    await client.delete(cms, ns, 'same-name');
    await configMap('same-name');
    await configMap('same-name-dep', [ref(first)]);
    await waitFor('a dependent of the old uid to be collected', () => gone('same-name-dep'));
    assert.ok(await find(cms, 'same-name'), 'the new owner is not touched');
  });

  it('Foreground: deletes blocking dependents first, then the owner', async () => {
    const owner = await configMap('fg-owner');
    await configMap('fg-dep', [ref(owner, { blockOwnerDeletion: true })], ['atoll.test/hold']);
    await client.delete(cms, ns, 'fg-owner', { propagationPolicy: 'Foreground' });

    await waitFor('the dependent to be marked for deletion', async () => !!(await find(cms, 'fg-dep'))?.metadata.deletionTimestamp);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const waiting = await find(cms, 'fg-owner');
    assert.ok(waiting, 'the owner waits for its blocking dependent');
    assert.ok(waiting.metadata.finalizers?.includes('foregroundDeletion'));

    await client.patch(cms, ns, 'fg-dep', 'merge', { metadata: { finalizers: null } });
    await waitFor('the owner to be deleted after its dependent', () => gone('fg-owner'));
    assert.ok(await gone('fg-dep'));
  });

  it('Orphan: removes the references to the owner and keeps the dependents', async () => {
    const owner = await configMap('or-owner');
    const other = await configMap('or-other');
    await configMap('or-dep', [ref(owner)]);
    await configMap('or-dep2', [ref(owner), ref(other)]);
    await client.delete(cms, ns, 'or-owner', { propagationPolicy: 'Orphan' });
    await waitFor('the owner to be deleted', () => gone('or-owner'));
    const dep = await find(cms, 'or-dep');
    assert.ok(dep, 'the dependent is orphaned, not deleted');
    assert.equal(dep.metadata.ownerReferences, undefined);
    assert.deepEqual((await find(cms, 'or-dep2'))?.metadata.ownerReferences?.map((r) => r.uid), [other.metadata.uid]);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    assert.ok(await find(cms, 'or-dep'), 'and stays');
  });

  it('follows ownership across kinds, cluster-scoped owners included', async () => {
    const nodes = resource('nodes');
    const node = await client.create(nodes, undefined, { metadata: { name: 'gc-node' } });
    const secret = await client.create(resource('secrets'), ns, { metadata: { name: 'gc-secret', ownerReferences: [ref(node)] } });
    await configMap('gc-from-secret', [ref(secret)]);
    await client.delete(nodes, undefined, 'gc-node');
    await waitFor('the secret owned by the node to go', async () => !(await find(resource('secrets'), 'gc-secret')));
    await waitFor('the config map owned by the secret to go', () => gone('gc-from-secret'));
  });

  it('collects dependents of custom resources served after it started', async () => {
    const crds = resource('apiextensions.k8s.io/customresourcedefinitions');
    await client.create(crds, undefined, {
      metadata: { name: 'widgets.atoll.test' },
      spec: {
        group: 'atoll.test',
        names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
        scope: 'Namespaced',
        versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
      },
    });
    const widgets: Resource = { group: 'atoll.test', version: 'v1', resource: 'widgets', namespaced: true };
    const widget = await waitFor('the CRD to be served', async () => {
      try {
        return await client.create(widgets, ns, { apiVersion: 'atoll.test/v1', kind: 'Widget', metadata: { name: 'w1' } });
      } catch {
        return undefined;
      }
    });
    await configMap('widget-dep', [ref(widget)]);
    const dependentOfDependent = await find(cms, 'widget-dep');
    await configMap('widget-dep-dep', [ref(dependentOfDependent!)]);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    assert.ok(!(await gone('widget-dep')));
    await client.delete(widgets, ns, 'w1');
    await waitFor('the dependent of the custom resource to go', () => gone('widget-dep'));
    await waitFor('its own dependent to go too', () => gone('widget-dep-dep'));
  });
});
