import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApiError } from '../errors.js';
import type { KubeObject, ManagedFieldsEntry } from '../types.js';
import { defaultManager, serverSideApply, trackUpdate, type ApplyOptions } from './index.js';
import { deploymentSchema, resolve } from './fixture.test.js';

const T0 = new Date('2024-05-01T10:00:00.123Z');
const T1 = new Date('2024-05-01T10:05:00Z');
const T2 = new Date('2024-05-01T10:09:00Z');

function opts(manager: string, extra: Partial<ApplyOptions> = {}): ApplyOptions {
  return { manager, force: false, apiVersion: 'apps/v1', now: T1, schema: deploymentSchema, resolve, ...extra };
}

function container(name: string, image: string, extra: Record<string, unknown> = {}) {
  return { name, image, ...extra };
}

function config(spec: Record<string, unknown>, metadata: Record<string, unknown> = {}): KubeObject {
  return { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'default', ...metadata }, spec };
}

/** What the store adds on create. */
function stored(obj: KubeObject, rv = '1'): KubeObject {
  const copy = structuredClone(obj);
  copy.metadata.uid = 'u-1';
  copy.metadata.resourceVersion = rv;
  copy.metadata.creationTimestamp = '2024-05-01T09:00:00Z';
  copy.metadata.generation = 1;
  return copy;
}

function entry(obj: KubeObject, manager: string, operation = 'Apply'): ManagedFieldsEntry | undefined {
  return obj.metadata.managedFields?.find((e) => e.manager === manager && e.operation === operation);
}

function spec(obj: KubeObject): Record<string, any> {
  return obj.spec as Record<string, any>;
}

function expectApiError(fn: () => unknown, code: number, reason: string, message?: string): ApiError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ApiError, `expected ApiError, got ${String(caught)}`);
  assert.equal(caught.code, code);
  assert.equal(caught.reason, reason);
  if (message !== undefined) assert.equal(caught.message, message);
  return caught;
}

const base = () =>
  config(
    {
      replicas: 2,
      selector: { matchLabels: { app: 'web' } },
      template: { metadata: { labels: { app: 'web' } }, spec: { containers: [container('web', 'nginx:1')] } },
    },
    { labels: { app: 'web', tier: 'front' } },
  );

describe('serverSideApply', () => {
  it('creates the object with one Apply entry holding exactly the applied fields', () => {
    const out = serverSideApply(undefined, base(), opts('ci', { now: T0 }));
    assert.deepEqual(out.metadata.managedFields, [
      {
        manager: 'ci',
        operation: 'Apply',
        apiVersion: 'apps/v1',
        time: '2024-05-01T10:00:00Z',
        fieldsType: 'FieldsV1',
        fieldsV1: {
          'f:metadata': { 'f:labels': { 'f:app': {}, 'f:tier': {} } },
          'f:spec': {
            'f:replicas': {},
            'f:selector': {},
            'f:template': {
              'f:metadata': { 'f:labels': { 'f:app': {} } },
              'f:spec': { 'f:containers': { 'k:{"name":"web"}': { '.': {}, 'f:image': {}, 'f:name': {} } } },
            },
          },
        },
      },
    ]);
    assert.equal(spec(out).replicas, 2);
    assert.equal(out.metadata.name, 'web');
  });

  it('does not modify its inputs', () => {
    const live = stored(serverSideApply(undefined, base(), opts('ci')));
    const liveCopy = structuredClone(live);
    const applied = base();
    spec(applied).replicas = 5;
    const appliedCopy = structuredClone(applied);
    serverSideApply(live, applied, opts('ci'));
    assert.deepEqual(live, liveCopy);
    assert.deepEqual(applied, appliedCopy);
  });

  it('removes fields the applier no longer applies', () => {
    const live = stored(serverSideApply(undefined, base(), opts('ci')));
    const next = base();
    delete spec(next).replicas;
    next.metadata.labels = { app: 'web' };
    const out = serverSideApply(live, next, opts('ci', { now: T2 }));
    assert.equal(spec(out).replicas, undefined);
    assert.deepEqual(out.metadata.labels, { app: 'web' });
    const fields = entry(out, 'ci')!.fieldsV1 as Record<string, any>;
    assert.deepEqual(fields['f:metadata'], { 'f:labels': { 'f:app': {} } });
    assert.equal(fields['f:spec']['f:replicas'], undefined);
    assert.equal(entry(out, 'ci')!.time, '2024-05-01T10:09:00Z');
    // server-set metadata survives
    assert.equal(out.metadata.uid, 'u-1');
  });

  it('drops a map emptied by removal', () => {
    const live = stored(serverSideApply(undefined, base(), opts('ci')));
    const next = base();
    delete next.metadata.labels;
    const out = serverSideApply(live, next, opts('ci'));
    assert.equal('labels' in out.metadata, false);
  });

  it('keeps a field two appliers share when one of them drops it', () => {
    const live = stored(serverSideApply(undefined, base(), opts('ci')));
    const other = config({ replicas: 2 });
    const shared = stored(serverSideApply(live, other, opts('autoscaler')), '2');
    assert.ok((entry(shared, 'ci')!.fieldsV1 as any)['f:spec']['f:replicas']);
    assert.ok((entry(shared, 'autoscaler')!.fieldsV1 as any)['f:spec']['f:replicas']);

    const next = base();
    delete spec(next).replicas;
    const out = serverSideApply(shared, next, opts('ci'));
    assert.equal(spec(out).replicas, 2);
    assert.deepEqual(entry(out, 'autoscaler')!.fieldsV1, { 'f:spec': { 'f:replicas': {} } });
  });

  it('refuses to change a value another applier owns, with kube\'s message and causes', () => {
    const live = stored(serverSideApply(undefined, base(), opts('ci')));
    const err = expectApiError(
      () => serverSideApply(live, config({ replicas: 3 }), opts('autoscaler')),
      409,
      'Conflict',
      'Apply failed with 1 conflict: conflict with "ci": .spec.replicas',
    );
    assert.deepEqual(err.details, { causes: [{ reason: 'FieldManagerConflict', message: 'conflict with "ci"', field: '.spec.replicas' }] });
    assert.deepEqual(err.toStatus().details?.causes?.[0].field, '.spec.replicas');
  });

  it('conflicts with an Update manager such as kubectl-client-side-apply after kubectl scale', () => {
    const created = base();
    created.metadata.annotations = { 'kubectl.kubernetes.io/last-applied-configuration': '{"spec":{"replicas":2}}' };
    trackUpdate(undefined, created, { manager: 'kubectl-client-side-apply', apiVersion: 'apps/v1', now: T0, schema: deploymentSchema, resolve });
    const live = stored(created);
    const err = expectApiError(
      () => serverSideApply(live, config({ replicas: 4 }), opts('helm')),
      409,
      'Conflict',
      'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas',
    );
    assert.deepEqual(err.details?.causes, [
      { reason: 'FieldManagerConflict', message: 'conflict with "kubectl-client-side-apply" using apps/v1', field: '.spec.replicas' },
    ]);
  });

  it('lists several conflicts grouped by manager', () => {
    const live = stored(serverSideApply(undefined, base(), opts('ci')));
    const err = expectApiError(
      () => serverSideApply(live, config({ replicas: 3 }, { labels: { tier: 'back' } }), opts('other')),
      409,
      'Conflict',
    );
    assert.equal(err.message, 'Apply failed with 2 conflicts: conflicts with "ci":\n- .metadata.labels.tier\n- .spec.replicas');
    assert.equal(err.details?.causes?.length, 2);
  });

  it('does not conflict when the applied value equals the live one', () => {
    const live = stored(serverSideApply(undefined, base(), opts('ci')));
    const out = serverSideApply(live, config({ replicas: 2 }), opts('other'));
    assert.ok(entry(out, 'ci'));
    assert.ok(entry(out, 'other'));
  });

  it('with force takes ownership away from the other manager', () => {
    const live = stored(serverSideApply(undefined, base(), opts('ci')));
    const out = serverSideApply(live, config({ replicas: 7 }), opts('autoscaler', { force: true }));
    assert.equal(spec(out).replicas, 7);
    assert.deepEqual(entry(out, 'autoscaler')!.fieldsV1, { 'f:spec': { 'f:replicas': {} } });
    assert.equal((entry(out, 'ci')!.fieldsV1 as any)['f:spec']['f:replicas'], undefined);
    // the previous owner, re-applying without replicas, no longer removes it
    const next = base();
    delete spec(next).replicas;
    const again = serverSideApply(stored(out), next, opts('ci'));
    assert.equal(spec(again).replicas, 7);
  });

  it('drops the entry of a manager that loses its last field', () => {
    const live = stored(serverSideApply(undefined, base(), opts('ci')));
    const scaled = stored(serverSideApply(live, config({ replicas: 3 }), opts('autoscaler', { force: true })));
    const out = serverSideApply(scaled, config({ replicas: 4 }), opts('hpa', { force: true }));
    assert.equal(entry(out, 'autoscaler'), undefined);
    assert.ok(entry(out, 'hpa'));
  });

  it('merges keyed lists item by item and keeps items others own', () => {
    const live0 = base();
    trackUpdate(undefined, live0, { manager: 'kubectl-create', apiVersion: 'apps/v1', now: T0, schema: deploymentSchema, resolve });
    spec(live0).template.spec.containers.push(container('sidecar', 'envoy', { ports: [{ containerPort: 9901, protocol: 'TCP' }] }));
    const live = stored(live0);
    const liveManaged = structuredClone(live);
    trackUpdate(live0, liveManaged, { manager: 'injector', apiVersion: 'apps/v1', now: T0, schema: deploymentSchema, resolve });

    const applied = config({
      template: { spec: { containers: [container('web', 'nginx:2', { ports: [{ containerPort: 80 }, { containerPort: 53, protocol: 'UDP' }] })] } },
    });
    const out = serverSideApply(liveManaged, applied, opts('ci', { force: true }));
    const containers = spec(out).template.spec.containers;
    assert.deepEqual(containers.map((c: any) => c.name), ['web', 'sidecar']);
    assert.equal(containers[0].image, 'nginx:2');
    assert.deepEqual(containers[0].ports, [{ containerPort: 80 }, { containerPort: 53, protocol: 'UDP' }]);
    assert.deepEqual(containers[1].ports, [{ containerPort: 9901, protocol: 'TCP' }]);
    assert.deepEqual((entry(out, 'ci')!.fieldsV1 as any)['f:spec']['f:template']['f:spec']['f:containers'], {
      'k:{"name":"web"}': {
        '.': {},
        'f:image': {},
        'f:name': {},
        'f:ports': {
          'k:{"containerPort":53,"protocol":"UDP"}': { '.': {}, 'f:containerPort': {}, 'f:protocol': {} },
          'k:{"containerPort":80,"protocol":"TCP"}': { '.': {}, 'f:containerPort': {} },
        },
      },
    });

    // Dropping the UDP port from the configuration removes it; the item was only ci's.
    const next = config({ template: { spec: { containers: [container('web', 'nginx:2', { ports: [{ containerPort: 80 }] })] } } });
    const pruned = serverSideApply(stored(out, '3'), next, opts('ci'));
    assert.deepEqual(spec(pruned).template.spec.containers[0].ports, [{ containerPort: 80 }]);
    assert.equal(spec(pruned).template.spec.containers[1].name, 'sidecar');
  });

  it('removes a list item it alone applied and keeps set items by value', () => {
    const first = config(
      { template: { spec: { containers: [container('web', 'a'), container('debug', 'busybox')] } } },
      { finalizers: ['example.com/a', 'example.com/b'] },
    );
    const live = stored(serverSideApply(undefined, first, opts('ci')));
    const second = config({ template: { spec: { containers: [container('web', 'a')] } } }, { finalizers: ['example.com/b'] });
    const out = serverSideApply(live, second, opts('ci'));
    assert.deepEqual(spec(out).template.spec.containers.map((c: any) => c.name), ['web']);
    assert.deepEqual(out.metadata.finalizers, ['example.com/b']);
    assert.deepEqual((entry(out, 'ci')!.fieldsV1 as any)['f:metadata'], { 'f:finalizers': { 'v:"example.com/b"': {} } });
  });

  it('replaces atomic values whole', () => {
    const live = stored(serverSideApply(undefined, base(), opts('ci')));
    const next = base();
    spec(next).selector = { matchLabels: { app: 'web2' } };
    spec(next).template.spec.containers[0].args = ['x'];
    const out = serverSideApply(live, next, opts('ci'));
    assert.deepEqual(spec(out).selector, { matchLabels: { app: 'web2' } });
  });

  it('keeps managedFields and the object untouched when re-applying the same configuration', () => {
    const live = stored(serverSideApply(undefined, base(), opts('ci', { now: T0 })));
    const out = serverSideApply(live, base(), opts('ci', { now: T2 }));
    assert.deepEqual(out, live);
  });

  it('attributes untracked fields to before-first-apply', () => {
    const live = stored(base());
    const err = expectApiError(() => serverSideApply(live, config({ replicas: 9 }), opts('ci')), 409, 'Conflict');
    assert.equal(err.message, 'Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas');
  });

  it('lets kubectl take over fields that still match its last-applied annotation', () => {
    const lastApplied = base();
    delete lastApplied.metadata.labels!.tier;
    const created = base();
    created.metadata.annotations = { 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(lastApplied) };
    trackUpdate(undefined, created, { manager: 'kubectl-client-side-apply', apiVersion: 'apps/v1', now: T0, schema: deploymentSchema, resolve });
    const applied = base();
    spec(applied).template.spec.containers[0].image = 'nginx:2';
    applied.metadata.labels!.tier = 'back';
    // image still matches last-applied, so it moves to kubectl; the tier label was never client-side applied
    expectApiError(
      () => serverSideApply(stored(created), applied, opts('kubectl')),
      409,
      'Conflict',
      'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .metadata.labels.tier',
    );
    expectApiError(() => serverSideApply(stored(created), applied, opts('not-kubectl')), 409, 'Conflict');
    applied.metadata.labels!.tier = 'front';
    const out = serverSideApply(stored(created), applied, opts('kubectl'));
    assert.equal(spec(out).template.spec.containers[0].image, 'nginx:2');
    const csa = entry(out, 'kubectl-client-side-apply', 'Update')!.fieldsV1 as any;
    assert.equal(csa['f:spec']['f:template']['f:spec']['f:containers']['k:{"name":"web"}']['f:image'], undefined);
    const annotation = out.metadata.annotations!['kubectl.kubernetes.io/last-applied-configuration'];
    assert.ok(annotation.endsWith('\n'));
    assert.equal(JSON.parse(annotation).spec.template.spec.containers[0].image, 'nginx:2');
    assert.equal(JSON.parse(annotation).metadata.annotations, undefined);
  });

  it('refuses bodies without apiVersion/kind, with managedFields, or with another name', () => {
    const noKind = base();
    delete noKind.kind;
    expectApiError(() => serverSideApply(undefined, noKind, opts('ci')), 400, 'BadRequest', 'invalid object type: apps/v1, Kind=');
    const noVersion = base();
    delete noVersion.apiVersion;
    expectApiError(() => serverSideApply(undefined, noVersion, opts('ci')), 400, 'BadRequest', 'invalid object type: /, Kind=Deployment');
    const wrongKind = base();
    wrongKind.kind = 'StatefulSet';
    expectApiError(() => serverSideApply(undefined, wrongKind, opts('ci')), 400, 'BadRequest', 'invalid object type: apps/v1, Kind=StatefulSet');
    const withManaged = base();
    withManaged.metadata.managedFields = [];
    expectApiError(() => serverSideApply(undefined, withManaged, opts('ci')), 400, 'BadRequest', 'metadata.managedFields must be nil');
    expectApiError(
      () => serverSideApply(undefined, base(), opts('ci', { name: 'api' })),
      400,
      'BadRequest',
      'the name of the object (web) does not match the name on the URL (api)',
    );
  });

  it('reports lists that do not fit the schema', () => {
    const bad = config({ template: { spec: { containers: [container('a', 'x'), container('a', 'y')] } } });
    const err = expectApiError(() => serverSideApply(undefined, bad, opts('ci')), 500, 'InternalError');
    assert.match(err.message, /failed to create typed patch object \(default\/web; apps\/v1, Kind=Deployment\): \.spec\.template\.spec\.containers: duplicate entries for key \[name="a"\]/);
  });
});

describe('trackUpdate', () => {
  const track = (manager: string, now = T1, subresource?: string) => ({ manager, apiVersion: 'apps/v1', now, schema: deploymentSchema, resolve, subresource });

  it('gives every set field to the creator, without server-set metadata', () => {
    const obj = stored(base());
    trackUpdate(undefined, obj, track('kubectl-create', T0));
    assert.equal(obj.metadata.managedFields?.length, 1);
    const e = obj.metadata.managedFields![0];
    assert.equal(e.manager, 'kubectl-create');
    assert.equal(e.operation, 'Update');
    assert.equal(e.apiVersion, 'apps/v1');
    assert.equal(e.time, '2024-05-01T10:00:00Z');
    assert.deepEqual(e.fieldsV1, {
      'f:metadata': { 'f:labels': { '.': {}, 'f:app': {}, 'f:tier': {} } },
      'f:spec': {
        'f:replicas': {},
        'f:selector': {},
        'f:template': {
          'f:metadata': { 'f:labels': { '.': {}, 'f:app': {} } },
          'f:spec': { 'f:containers': { 'k:{"name":"web"}': { '.': {}, 'f:image': {}, 'f:name': {} } } },
        },
      },
    });
  });

  it('moves changed fields from their owner to the updater', () => {
    const live = stored(serverSideApply(undefined, base(), opts('ci', { now: T0 })));
    const updated = structuredClone(live);
    spec(updated).replicas = 5;
    trackUpdate(live, updated, track('kubectl-scale', T2));
    assert.deepEqual(entry(updated, 'kubectl-scale', 'Update')!.fieldsV1, { 'f:spec': { 'f:replicas': {} } });
    assert.equal(entry(updated, 'kubectl-scale', 'Update')!.time, '2024-05-01T10:09:00Z');
    assert.equal((entry(updated, 'ci')!.fieldsV1 as any)['f:spec']['f:replicas'], undefined);
    assert.equal(entry(updated, 'ci')!.time, '2024-05-01T10:00:00Z');
    // Apply entries sort before Update entries
    assert.deepEqual(updated.metadata.managedFields!.map((e) => e.operation), ['Apply', 'Update']);
  });

  it('removes deleted fields from every owner', () => {
    const live = stored(serverSideApply(undefined, base(), opts('ci')));
    const updated = structuredClone(live);
    delete updated.metadata.labels!.tier;
    trackUpdate(live, updated, track('kubectl-label'));
    assert.deepEqual((entry(updated, 'ci')!.fieldsV1 as any)['f:metadata'], { 'f:labels': { 'f:app': {} } });
    assert.equal(entry(updated, 'kubectl-label', 'Update'), undefined);
  });

  it('leaves managedFields as they were when the write changes nothing', () => {
    const live = stored(base());
    trackUpdate(undefined, live, track('kubectl-create', T0));
    const updated = structuredClone(live);
    updated.metadata.resourceVersion = '2';
    trackUpdate(live, updated, track('kubectl-edit', T2));
    assert.deepEqual(updated.metadata.managedFields, live.metadata.managedFields);
  });

  it('keeps one Update entry per manager and apiVersion, refreshing its time', () => {
    const live = stored(base());
    trackUpdate(undefined, live, track('ctl', T0));
    const updated = structuredClone(live);
    spec(updated).paused = true;
    trackUpdate(live, updated, track('ctl', T2));
    assert.equal(updated.metadata.managedFields!.length, 1);
    assert.equal(updated.metadata.managedFields![0].time, '2024-05-01T10:09:00Z');
    assert.ok((updated.metadata.managedFields![0].fieldsV1 as any)['f:spec']['f:paused']);
    assert.ok((updated.metadata.managedFields![0].fieldsV1 as any)['f:spec']['f:replicas']);
  });

  it('keeps stored managedFields when a client omits them, and clears them on [{}]', () => {
    const live = stored(base());
    trackUpdate(undefined, live, track('ctl', T0));
    const omitted = structuredClone(live);
    delete omitted.metadata.managedFields;
    spec(omitted).replicas = 3;
    trackUpdate(live, omitted, track('editor'));
    assert.deepEqual(omitted.metadata.managedFields!.map((e) => e.manager), ['ctl', 'editor']);

    const reset = structuredClone(live);
    reset.metadata.managedFields = [{}];
    trackUpdate(live, reset, track('editor'));
    assert.equal(reset.metadata.managedFields, undefined);
  });

  it('records subresource writes with their subresource and ignores client-sent managedFields', () => {
    const live = stored(base());
    trackUpdate(undefined, live, track('ctl', T0));
    const updated = structuredClone(live);
    updated.status = { replicas: 2 };
    updated.metadata.managedFields = [{ manager: 'forged', operation: 'Update', apiVersion: 'apps/v1', fieldsType: 'FieldsV1', fieldsV1: {} }];
    trackUpdate(live, updated, track('kube-controller-manager', T2, 'status'));
    const e = entry(updated, 'kube-controller-manager', 'Update')!;
    assert.equal(e.subresource, 'status');
    assert.deepEqual(e.fieldsV1, { 'f:status': { 'f:replicas': {} } });
    assert.equal(entry(updated, 'forged', 'Update'), undefined);
  });

  it('folds the oldest of more than ten Update managers into ancient-changes', () => {
    let live = stored(config({ replicas: 0 }));
    trackUpdate(undefined, live, track('m0', new Date(Date.UTC(2024, 0, 1, 0, 0, 0))));
    for (let i = 1; i <= 11; i++) {
      const next = structuredClone(live);
      spec(next).replicas = i;
      next.metadata.labels = { ...(next.metadata.labels ?? {}), [`k${i}`]: 'v' };
      trackUpdate(live, next, track(`m${i}`, new Date(Date.UTC(2024, 0, 1, 0, i, 0))));
      live = next;
    }
    const managers = live.metadata.managedFields!.map((e) => e.manager);
    assert.equal(managers.length, 10);
    assert.ok(managers.includes('ancient-changes'));
  });
});

describe('defaultManager', () => {
  it('takes the User-Agent up to its first slash', () => {
    assert.equal(defaultManager('kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9'), 'kubectl');
    assert.equal(defaultManager('Go-http-client/1.1'), 'Go-http-client');
    assert.equal(defaultManager('kubectl'), 'kubectl');
    assert.equal(defaultManager(undefined), '');
    assert.equal(defaultManager('a\u0001b/1'), 'ab');
    assert.equal(defaultManager('x'.repeat(200)).length, 128);
  });
});
