import type { KubeObject, StatusCause } from '../types.js';
import { err, path, FIELD_IMMUTABLE } from './field.js';
import { isRecord, metaOf, str, validateLabels } from './meta.js';
import { invalidEach, nameIsDNSLabel } from './names.js';
import { validateResources, validateTolerations } from './podspec.js';
import type { KindRules } from './registry.js';

/** Kinds whose rules are a few lines each: PersistentVolumeClaim, Lease, RuntimeClass, Events. */

type Rec = Record<string, any>;

function specOf(obj: KubeObject): Rec {
  return isRecord(obj.spec) ? obj.spec : {};
}

const ACCESS_MODES = ['ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOnce', 'ReadWriteOncePod'];

export const pvcRules: KindRules = {
  group: '',
  kind: 'PersistentVolumeClaim',
  defaults(obj) {
    if (!isRecord(obj.spec)) obj.spec = {};
    const spec = obj.spec as Rec;
    if (!spec.volumeMode) spec.volumeMode = 'Filesystem';
    if (!isRecord(obj.status)) obj.status = {};
    const status = obj.status as Rec;
    if (!status.phase) status.phase = 'Pending';
  },
  validate(obj) {
    const spec = specOf(obj);
    const at = path('spec');
    const causes: StatusCause[] = [];
    const modes: unknown[] = Array.isArray(spec.accessModes) ? spec.accessModes : [];
    if (modes.length === 0) causes.push(err.required(at.child('accessModes'), 'at least 1 access mode is required'));
    for (const m of modes) if (!ACCESS_MODES.includes(str(m))) causes.push(err.notSupported(at.child('accessModes'), str(m), ACCESS_MODES));
    const storage = isRecord(spec.resources) && isRecord(spec.resources.requests) ? spec.resources.requests.storage : undefined;
    if (storage === undefined) causes.push(err.required(at.child('resources').key('storage')));
    if (spec.volumeMode && !['Block', 'Filesystem'].includes(spec.volumeMode)) {
      causes.push(err.notSupported(at.child('volumeMode'), str(spec.volumeMode), ['Block', 'Filesystem']));
    }
    return causes;
  },
};

export const leaseRules: KindRules = {
  group: 'coordination.k8s.io',
  kind: 'Lease',
  validate(obj) {
    const spec = specOf(obj);
    const at = path('spec');
    const causes: StatusCause[] = [];
    if (typeof spec.leaseDurationSeconds === 'number' && spec.leaseDurationSeconds <= 0) {
      causes.push(err.invalid(at.child('leaseDurationSeconds'), spec.leaseDurationSeconds, 'must be greater than 0'));
    }
    if (typeof spec.leaseTransitions === 'number' && spec.leaseTransitions < 0) {
      causes.push(err.invalid(at.child('leaseTransitions'), spec.leaseTransitions, 'must be greater than or equal to 0'));
    }
    return causes;
  },
};

export const runtimeClassRules: KindRules = {
  group: 'node.k8s.io',
  kind: 'RuntimeClass',
  validate(obj) {
    const handler = str(obj.handler);
    const causes = invalidEach(path('handler'), handler, nameIsDNSLabel(handler, false));
    if (isRecord(obj.overhead) && isRecord(obj.overhead.podFixed)) {
      causes.push(...validateResources({ limits: obj.overhead.podFixed }, path('overhead', 'podFixed')));
    }
    if (isRecord(obj.scheduling)) {
      causes.push(...validateLabels(obj.scheduling.nodeSelector, path('scheduling', 'nodeSelector')));
      causes.push(...validateTolerations(Array.isArray(obj.scheduling.tolerations) ? obj.scheduling.tolerations : [], path('scheduling', 'tolerations')));
    }
    return causes;
  },
  validateUpdate(obj, old) {
    return str(obj.handler) === str(old.handler) ? [] : [err.invalid(path('handler'), str(obj.handler), FIELD_IMMUTABLE)];
  },
};

function validateCoreEvent(obj: KubeObject): StatusCause[] {
  const involved: Rec = isRecord(obj.involvedObject) ? obj.involvedObject : {};
  const ns = metaOf(obj).namespace ?? '';
  if (involved.namespace && ns && involved.namespace !== ns) {
    return [err.invalid(path('involvedObject', 'namespace'), str(involved.namespace), 'does not match event.namespace')];
  }
  return [];
}

export const coreEventRules: KindRules = { group: '', kind: 'Event', validate: validateCoreEvent };

export const eventsEventRules: KindRules = {
  group: 'events.k8s.io',
  kind: 'Event',
  validate(obj) {
    const causes: StatusCause[] = [];
    if (!obj.eventTime) causes.push(err.required(path('eventTime')));
    if (!obj.reportingController) causes.push(err.required(path('reportingController')));
    if (!obj.reportingInstance) causes.push(err.required(path('reportingInstance')));
    if (obj.type !== 'Normal' && obj.type !== 'Warning') causes.push(err.invalid(path('type'), '', `has invalid value: ${str(obj.type)}`));
    if (!obj.action) causes.push(err.required(path('action')));
    if (!obj.reason) causes.push(err.required(path('reason')));
    return causes;
  },
};
