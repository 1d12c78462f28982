import type { StatusCause } from '../types.js';
import { err, FieldPath, IS_NEGATIVE } from './field.js';
import { validateAnnotations, validateLabels, isRecord, str } from './meta.js';
import {
  inclusiveRangeError, invalidEach, isConfigMapKey, isDNS1123Label, isEnvVarName, isHTTPHeaderName, isLabelValue,
  isQualifiedName, isValidPortName, isValidPortNum, nameIsDNSSubdomain,
} from './names.js';
import { QUANTITY_FORMAT_ERROR, quantityString, quantityValue } from './quantity.js';
import { VOLUME_SOURCES, arr } from './podspec-defaults.js';

/**
 * PodSpec validation after kube's ValidatePodSpec (pkg/apis/core/validation). It expects a defaulted
 * spec, as the API server always validates after defaulting.
 */

type Rec = Record<string, any>;

export interface PodSpecOptions {
  /** The spec belongs to a Pod, not a template embedded in a workload. */
  resourceIsPod: boolean;
}

const SUPPORTED_PROTOCOLS = ['SCTP', 'TCP', 'UDP'];
const FILE_MODE_ERROR = 'must be a number between 0 and 0777 (octal), both inclusive';
const MAX_INT32 = 2147483647;

function nonNegative(value: unknown, field: FieldPath): StatusCause[] {
  return typeof value === 'number' && value < 0 ? [err.invalid(field, value, IS_NEGATIVE)] : [];
}

export function validatePortNumOrName(port: unknown, field: FieldPath): StatusCause[] {
  if (typeof port === 'number') return isValidPortNum(port).map((m) => err.invalid(field, port, m));
  if (typeof port === 'string') return isValidPortName(port).map((m) => err.invalid(field, port, m));
  return [err.invalid(field, null, 'must be a port number or name')];
}

function validateVolumeSource(v: Rec, field: FieldPath): StatusCause[] {
  const causes: StatusCause[] = [];
  let count = 0;
  for (const key of VOLUME_SOURCES) {
    const src = v[key];
    if (src === undefined || src === null) continue;
    if (count > 0) {
      causes.push(err.forbidden(field.child(forbiddenPathName(key)), 'may not specify more than 1 volume type'));
      continue;
    }
    count++;
    const at = field.child(key);
    const s: Rec = isRecord(src) ? src : {};
    switch (key) {
      case 'hostPath':
        if (!s.path) causes.push(err.required(at.child('path')));
        break;
      case 'secret':
        if (!s.secretName) causes.push(err.required(at.child('secretName')));
        causes.push(...fileMode(s.defaultMode, at.child('defaultMode')));
        break;
      case 'configMap':
        if (!s.name) causes.push(err.required(at.child('name')));
        causes.push(...fileMode(s.defaultMode, at.child('defaultMode')));
        break;
      case 'persistentVolumeClaim':
        if (!s.claimName) causes.push(err.required(at.child('claimName')));
        break;
      case 'nfs':
        if (!s.server) causes.push(err.required(at.child('server')));
        if (!s.path) causes.push(err.required(at.child('path')));
        break;
      case 'emptyDir': {
        const limit = s.sizeLimit === undefined ? 0 : quantityValue(s.sizeLimit);
        if (limit === undefined || limit < 0) causes.push(err.forbidden(at.child('sizeLimit'), 'SizeLimit field must be a valid resource quantity'));
        break;
      }
      case 'csi':
        if (!s.driver) causes.push(err.required(at.child('driver')));
        break;
    }
  }
  if (count === 0) causes.push(err.required(field, 'must specify a volume type'));
  return causes;
}

// kube names two paths differently from the JSON keys in its "more than 1 volume type" errors.
function forbiddenPathName(key: string): string {
  if (key === 'cephfs') return 'cephFS';
  if (key === 'downwardAPI') return 'downwarAPI';
  return key;
}

function fileMode(mode: unknown, field: FieldPath): StatusCause[] {
  return typeof mode === 'number' && (mode > 0o777 || mode < 0) ? [err.invalid(field, mode, FILE_MODE_ERROR)] : [];
}

function validateVolumes(volumes: unknown[], field: FieldPath): { names: Set<string>; causes: StatusCause[] } {
  const names = new Set<string>();
  const causes: StatusCause[] = [];
  volumes.forEach((raw, i) => {
    const v: Rec = isRecord(raw) ? raw : {};
    const at = field.index(i);
    const name = str(v.name);
    const own = validateVolumeSource(v, at);
    if (!name) own.push(err.required(at.child('name')));
    else own.push(...invalidEach(at.child('name'), name, isDNS1123Label(name)));
    if (names.has(name)) own.push(err.duplicate(at.child('name'), name));
    if (own.length === 0) names.add(name);
    causes.push(...own);
  });
  return { names, causes };
}

function validatePorts(ports: unknown[], field: FieldPath): StatusCause[] {
  const causes: StatusCause[] = [];
  const names = new Set<string>();
  ports.forEach((raw, i) => {
    const p: Rec = isRecord(raw) ? raw : {};
    const at = field.index(i);
    const name = str(p.name);
    if (name) {
      const msgs = isValidPortName(name);
      if (msgs.length) causes.push(...invalidEach(at.child('name'), name, msgs));
      else if (names.has(name)) causes.push(err.duplicate(at.child('name'), name));
      else names.add(name);
    }
    if (!p.containerPort) causes.push(err.required(at.child('containerPort')));
    else causes.push(...isValidPortNum(p.containerPort).map((m) => err.invalid(at.child('containerPort'), p.containerPort, m)));
    if (p.hostPort) causes.push(...isValidPortNum(p.hostPort).map((m) => err.invalid(at.child('hostPort'), p.hostPort, m)));
    if (!p.protocol) causes.push(err.required(at.child('protocol')));
    else if (!SUPPORTED_PROTOCOLS.includes(p.protocol)) causes.push(err.notSupported(at.child('protocol'), str(p.protocol), SUPPORTED_PROTOCOLS));
  });
  return causes;
}

const ENV_FIELD_PATHS = [
  'metadata.name', 'metadata.namespace', 'metadata.uid', 'spec.nodeName', 'spec.serviceAccountName',
  'status.hostIP', 'status.hostIPs', 'status.podIP', 'status.podIPs',
].sort();
const RESOURCE_FIELD_PATHS = ['limits.cpu', 'limits.ephemeral-storage', 'limits.memory', 'requests.cpu', 'requests.ephemeral-storage', 'requests.memory'];

function validateKeySelector(s: Rec, field: FieldPath): StatusCause[] {
  const causes = invalidEach(field.child('name'), str(s.name), nameIsDNSSubdomain(str(s.name), false));
  if (!s.key) causes.push(err.required(field.child('key')));
  else causes.push(...invalidEach(field.child('key'), str(s.key), isConfigMapKey(str(s.key))));
  return causes;
}

function validateEnv(env: unknown[], field: FieldPath): StatusCause[] {
  const causes: StatusCause[] = [];
  env.forEach((raw, i) => {
    const e: Rec = isRecord(raw) ? raw : {};
    const at = field.index(i);
    const name = str(e.name);
    if (!name) causes.push(err.required(at.child('name')));
    else causes.push(...invalidEach(at.child('name'), name, isEnvVarName(name)));
    if (!isRecord(e.valueFrom)) return;
    const from = at.child('valueFrom');
    const vf = e.valueFrom;
    let sources = 0;
    if (isRecord(vf.fieldRef)) {
      sources++;
      const fr = vf.fieldRef;
      if (!fr.apiVersion) causes.push(err.required(from.child('fieldRef', 'apiVersion')));
      else if (!fr.fieldPath) causes.push(err.required(from.child('fieldRef', 'fieldPath')));
      else {
        const m = /^(metadata\.(?:labels|annotations))\['(.*)'\]$/.exec(fr.fieldPath);
        if (m) causes.push(...invalidEach(from.child('fieldRef'), m[2]!, isQualifiedName(m[1] === 'metadata.annotations' ? m[2]!.toLowerCase() : m[2]!)));
        else if (!ENV_FIELD_PATHS.includes(fr.fieldPath)) causes.push(err.notSupported(from.child('fieldRef', 'fieldPath'), str(fr.fieldPath), ENV_FIELD_PATHS));
      }
    }
    if (isRecord(vf.resourceFieldRef)) {
      sources++;
      const r = str(vf.resourceFieldRef.resource);
      if (!r) causes.push(err.required(from.child('resourceFieldRef', 'resource')));
      else if (!RESOURCE_FIELD_PATHS.includes(r) && !/^(requests|limits)\.hugepages-/.test(r)) {
        causes.push(err.notSupported(from.child('resourceFieldRef', 'resource'), r, RESOURCE_FIELD_PATHS));
      }
    }
    if (isRecord(vf.configMapKeyRef)) {
      sources++;
      causes.push(...validateKeySelector(vf.configMapKeyRef, from.child('configMapKeyRef')));
    }
    if (isRecord(vf.secretKeyRef)) {
      sources++;
      causes.push(...validateKeySelector(vf.secretKeyRef, from.child('secretKeyRef')));
    }
    if (sources === 0) causes.push(err.invalid(from, '', 'must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`'));
    else if (str(e.value) !== '') causes.push(err.invalid(from, '', 'may not be specified when `value` is not empty'));
    else if (sources > 1) causes.push(err.invalid(from, '', 'may not have more than one field specified at a time'));
  });
  return causes;
}

function validateEnvFrom(envFrom: unknown[], field: FieldPath): StatusCause[] {
  const causes: StatusCause[] = [];
  envFrom.forEach((raw, i) => {
    const e: Rec = isRecord(raw) ? raw : {};
    const at = field.index(i);
    if (e.prefix) causes.push(...invalidEach(at.child('prefix'), str(e.prefix), isEnvVarName(str(e.prefix))));
    let sources = 0;
    for (const key of ['configMapRef', 'secretRef']) {
      if (!isRecord(e[key])) continue;
      sources++;
      const name = str(e[key].name);
      if (!name) causes.push(err.required(at.child(key, 'name')));
      else causes.push(...invalidEach(at.child(key, 'name'), name, nameIsDNSSubdomain(name, true)));
    }
    if (sources === 0) causes.push(err.invalid(field, '', 'must specify one of: `configMapRef` or `secretRef`'));
    else if (sources > 1) causes.push(err.invalid(field, '', 'may not have more than one field specified at a time'));
  });
  return causes;
}

function validateVolumeMounts(mounts: unknown[], volumes: Set<string>, field: FieldPath): StatusCause[] {
  const causes: StatusCause[] = [];
  const paths = new Set<string>();
  mounts.forEach((raw, i) => {
    const m: Rec = isRecord(raw) ? raw : {};
    const at = field.index(i);
    const name = str(m.name);
    if (!name) causes.push(err.required(at.child('name')));
    if (!volumes.has(name)) causes.push(err.notFound(at.child('name'), name));
    const mountPath = str(m.mountPath);
    if (!mountPath) causes.push(err.required(at.child('mountPath')));
    if (paths.has(mountPath)) causes.push(err.invalid(at.child('mountPath'), mountPath, 'must be unique'));
    paths.add(mountPath);
  });
  return causes;
}

const STANDARD_RESOURCES = new Set([
  'cpu', 'memory', 'ephemeral-storage', 'storage', 'pods', 'services', 'replicationcontrollers', 'resourcequotas', 'secrets',
  'configmaps', 'persistentvolumeclaims', 'services.nodeports', 'services.loadbalancers',
]);
const CONTAINER_RESOURCES = new Set(['cpu', 'memory', 'ephemeral-storage']);

const isHugePages = (name: string) => name.startsWith('hugepages-');
const isNative = (name: string) => !name.includes('/') || name.includes('kubernetes.io/');
const overcommitAllowed = (name: string) => isNative(name) && !isHugePages(name);

function validateContainerResourceName(name: string, field: FieldPath): StatusCause[] {
  const qualified = invalidEach(field, name, isQualifiedName(name));
  if (qualified.length) return qualified;
  const causes: StatusCause[] = [];
  if (!name.includes('/')) {
    const standard = STANDARD_RESOURCES.has(name) || isHugePages(name) || /^(requests|limits)\./.test(name);
    if (!standard) causes.push(err.invalid(field, name, 'must be a standard resource type or fully qualified'));
    if (!CONTAINER_RESOURCES.has(name) && !isHugePages(name)) causes.push(err.invalid(field, name, 'must be a standard resource for containers'));
  }
  return causes;
}

function validateQuantity(name: string, q: unknown, field: FieldPath): { value?: number; causes: StatusCause[] } {
  const value = quantityValue(q);
  if (value === undefined) return { causes: [err.invalid(field, quantityString(q), QUANTITY_FORMAT_ERROR)] };
  const causes: StatusCause[] = [];
  if (value < 0) causes.push(err.invalid(field, quantityString(q), IS_NEGATIVE));
  if (!isNative(name) && !Number.isInteger(value)) causes.push(err.invalid(field, quantityString(q), 'must be an integer'));
  return { value, causes };
}

/** ResourceRequirements, as kube's validateResourceRequirements for containers. */
export function validateResources(resources: unknown, field: FieldPath): StatusCause[] {
  const r: Rec = isRecord(resources) ? resources : {};
  const limits: Rec = isRecord(r.limits) ? r.limits : {};
  const requests: Rec = isRecord(r.requests) ? r.requests : {};
  const limPath = field.child('limits');
  const reqPath = field.child('requests');
  const causes: StatusCause[] = [];
  const limitValues = new Map<string, number>();
  for (const [name, q] of Object.entries(limits)) {
    causes.push(...validateContainerResourceName(name, limPath.key(name)));
    const { value, causes: qc } = validateQuantity(name, q, limPath.key(name));
    causes.push(...qc);
    if (value !== undefined) limitValues.set(name, value);
  }
  for (const [name, q] of Object.entries(requests)) {
    causes.push(...validateContainerResourceName(name, reqPath.key(name)));
    const { value, causes: qc } = validateQuantity(name, q, reqPath.key(name));
    causes.push(...qc);
    const limit = limitValues.get(name);
    if (name in limits) {
      if (value === undefined || limit === undefined) continue;
      const limitText = quantityString(limits[name]);
      if (value !== limit && !overcommitAllowed(name)) {
        causes.push(err.invalid(reqPath, quantityString(q), `must be equal to ${name} limit of ${limitText}`));
      } else if (value > limit) {
        causes.push(err.invalid(reqPath, quantityString(q), `must be less than or equal to ${name} limit of ${limitText}`));
      }
    } else if (!overcommitAllowed(name)) {
      causes.push(err.required(limPath, 'Limit must be set for non overcommitable resources'));
    }
  }
  return causes;
}

function validateHandler(h: Rec, field: FieldPath, kinds: readonly string[]): StatusCause[] {
  const causes: StatusCause[] = [];
  let count = 0;
  for (const kind of kinds) {
    const action = h[kind];
    if (action === undefined || action === null) continue;
    if (count > 0) {
      causes.push(err.forbidden(field.child(kind), 'may not specify more than 1 handler type'));
      continue;
    }
    count++;
    const a: Rec = isRecord(action) ? action : {};
    const at = field.child(kind);
    if (kind === 'exec' && arr(a.command).length === 0) causes.push(err.required(at.child('command')));
    if (kind === 'httpGet') {
      if (!a.path) causes.push(err.required(at.child('path')));
      causes.push(...validatePortNumOrName(a.port, at.child('port')));
      if (a.scheme !== 'HTTP' && a.scheme !== 'HTTPS') causes.push(err.notSupported(at.child('scheme'), str(a.scheme), ['HTTP', 'HTTPS']));
      for (const header of arr(a.httpHeaders)) {
        const name = str(isRecord(header) ? header.name : '');
        causes.push(...invalidEach(at.child('httpHeaders'), name, isHTTPHeaderName(name)));
      }
    }
    if (kind === 'tcpSocket' || kind === 'grpc') causes.push(...validatePortNumOrName(a.port, at.child('port')));
  }
  if (count === 0) causes.push(err.required(field, 'must specify a handler type'));
  return causes;
}

function validateProbe(probe: unknown, field: FieldPath, kind: 'liveness' | 'readiness' | 'startup'): StatusCause[] {
  if (!isRecord(probe)) return [];
  const causes = validateHandler(probe, field, ['exec', 'httpGet', 'tcpSocket', 'grpc']);
  for (const k of ['initialDelaySeconds', 'timeoutSeconds', 'periodSeconds', 'successThreshold', 'failureThreshold']) {
    causes.push(...nonNegative(probe[k], field.child(k)));
  }
  if (typeof probe.terminationGracePeriodSeconds === 'number' && probe.terminationGracePeriodSeconds <= 0) {
    causes.push(err.invalid(field.child('terminationGracePeriodSeconds'), probe.terminationGracePeriodSeconds, 'must be greater than 0'));
  }
  if (kind !== 'readiness' && probe.successThreshold !== 1) {
    causes.push(err.invalid(field.child('successThreshold'), probe.successThreshold ?? 0, 'must be 1'));
  }
  if (kind === 'readiness' && probe.terminationGracePeriodSeconds !== undefined) {
    causes.push(err.invalid(field.child('terminationGracePeriodSeconds'), probe.terminationGracePeriodSeconds, 'must not be set for readinessProbes'));
  }
  return causes;
}

function validateContainerCommon(c: Rec, volumes: Set<string>, at: FieldPath): StatusCause[] {
  const causes: StatusCause[] = [];
  const name = str(c.name);
  if (!name) causes.push(err.required(at.child('name')));
  else causes.push(...invalidEach(at.child('name'), name, isDNS1123Label(name)));
  if (!c.image) causes.push(err.required(at.child('image')));
  const tmp = str(c.terminationMessagePolicy);
  if (!tmp) causes.push(err.required(at.child('terminationMessagePolicy')));
  else if (tmp !== 'File' && tmp !== 'FallbackToLogsOnError') {
    causes.push(err.notSupported(at.child('terminationMessagePolicy'), tmp, ['File', 'FallbackToLogsOnError']));
  }
  causes.push(...validatePorts(arr(c.ports), at.child('ports')));
  causes.push(...validateEnv(arr(c.env), at.child('env')));
  causes.push(...validateEnvFrom(arr(c.envFrom), at.child('envFrom')));
  causes.push(...validateVolumeMounts(arr(c.volumeMounts), volumes, at.child('volumeMounts')));
  const pull = str(c.imagePullPolicy);
  if (!pull) causes.push(err.required(at.child('imagePullPolicy')));
  else if (!['Always', 'IfNotPresent', 'Never'].includes(pull)) {
    causes.push(err.notSupported(at.child('imagePullPolicy'), pull, ['Always', 'IfNotPresent', 'Never']));
  }
  causes.push(...validateResources(c.resources, at.child('resources')));
  if (isRecord(c.securityContext)) {
    for (const k of ['runAsUser', 'runAsGroup']) {
      const id = c.securityContext[k];
      if (typeof id === 'number' && (id < 0 || id > 0xffffffff)) {
        causes.push(err.invalid(at.child('securityContext', k), id, inclusiveRangeError(0, 0xffffffff)));
      }
    }
  }
  return causes;
}

function hostPortConflicts(containers: unknown[], field: FieldPath): StatusCause[] {
  const seen = new Set<string>();
  const causes: StatusCause[] = [];
  containers.forEach((raw, ci) => {
    arr(isRecord(raw) ? raw.ports : undefined).forEach((rp, pi) => {
      const p: Rec = isRecord(rp) ? rp : {};
      if (!p.hostPort) return;
      const key = `${str(p.protocol)}/${str(p.hostIP)}/${p.hostPort}`;
      if (seen.has(key)) causes.push(err.duplicate(field.index(ci).child('ports').index(pi).child('hostPort'), key));
      else seen.add(key);
    });
  });
  return causes;
}

function validateContainers(containers: unknown[], volumes: Set<string>, field: FieldPath): StatusCause[] {
  if (containers.length === 0) return [err.required(field)];
  const causes: StatusCause[] = [];
  const names = new Set<string>();
  containers.forEach((raw, i) => {
    const c: Rec = isRecord(raw) ? raw : {};
    const at = field.index(i);
    causes.push(...validateContainerCommon(c, volumes, at));
    if (names.has(str(c.name))) causes.push(err.duplicate(at.child('name'), str(c.name)));
    else names.add(str(c.name));
    if (isRecord(c.lifecycle)) {
      for (const h of ['postStart', 'preStop']) {
        if (isRecord(c.lifecycle[h])) causes.push(...validateHandler(c.lifecycle[h], at.child('lifecycle', h), ['exec', 'httpGet', 'tcpSocket', 'sleep']));
      }
    }
    causes.push(...validateProbe(c.livenessProbe, at.child('livenessProbe'), 'liveness'));
    causes.push(...validateProbe(c.readinessProbe, at.child('readinessProbe'), 'readiness'));
    causes.push(...validateProbe(c.startupProbe, at.child('startupProbe'), 'startup'));
    if (c.restartPolicy !== undefined) causes.push(err.forbidden(at.child('restartPolicy'), 'may not be set for non-init containers'));
  });
  causes.push(...hostPortConflicts(containers, field));
  return causes;
}

function validateInitContainers(inits: unknown[], regular: unknown[], volumes: Set<string>, field: FieldPath): StatusCause[] {
  const causes: StatusCause[] = [];
  const names = new Set(regular.map((c) => str(isRecord(c) ? c.name : '')));
  inits.forEach((raw, i) => {
    const c: Rec = isRecord(raw) ? raw : {};
    const at = field.index(i);
    causes.push(...validateContainerCommon(c, volumes, at));
    const sidecar = c.restartPolicy === 'Always';
    if (c.restartPolicy !== undefined && !sidecar) causes.push(err.notSupported(at.child('restartPolicy'), str(c.restartPolicy), ['Always']));
    if (names.has(str(c.name))) causes.push(err.duplicate(at.child('name'), str(c.name)));
    else if (c.name) names.add(str(c.name));
    causes.push(...hostPortConflicts([c], field));
    for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe'] as const) {
      if (c[probe] === undefined) continue;
      if (sidecar) causes.push(...validateProbe(c[probe], at.child(probe), probe.replace('Probe', '') as 'liveness'));
      else causes.push(err.forbidden(at.child(probe), 'may not be set for init containers without restartPolicy=Always'));
    }
    if (c.lifecycle !== undefined && !sidecar) causes.push(err.forbidden(at.child('lifecycle'), 'may not be set for init containers without restartPolicy=Always'));
  });
  return causes;
}

export function validateTolerations(tolerations: unknown[], field: FieldPath): StatusCause[] {
  const causes: StatusCause[] = [];
  tolerations.forEach((raw, i) => {
    const t: Rec = isRecord(raw) ? raw : {};
    const at = field.index(i);
    const key = str(t.key);
    const operator = str(t.operator);
    const effect = str(t.effect);
    if (key) causes.push(...invalidEach(at.child('key'), key, isQualifiedName(key)));
    if (!key && operator !== 'Exists') {
      causes.push(err.invalid(at.child('operator'), operator, 'operator must be Exists when `key` is empty, which means "match all values and all keys"'));
    }
    if (t.tolerationSeconds !== undefined && t.tolerationSeconds !== null && effect !== 'NoExecute') {
      causes.push(err.invalid(at.child('effect'), effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"));
    }
    if (operator === 'Equal' || operator === '') {
      const msgs = isLabelValue(str(t.value));
      if (msgs.length) causes.push(err.invalid(at.child('operator'), str(t.value), msgs.join(';')));
    } else if (operator === 'Exists') {
      if (str(t.value)) causes.push(err.invalid(at.child('operator'), str(t.value), "value must be empty when `operator` is 'Exists'"));
    } else {
      causes.push(err.notSupported(at.child('operator'), operator, ['Equal', 'Exists']));
    }
    if (effect) causes.push(...validateTaintEffect(effect, at.child('effect')));
  });
  return causes;
}

export const TAINT_EFFECTS = ['NoSchedule', 'PreferNoSchedule', 'NoExecute'];

export function validateTaintEffect(effect: string, field: FieldPath): StatusCause[] {
  return TAINT_EFFECTS.includes(effect) ? [] : [err.notSupported(field, effect, TAINT_EFFECTS)];
}

function enumField(value: unknown, field: FieldPath, allowed: string[]): StatusCause[] {
  const v = str(value);
  if (!v) return [err.required(field)];
  return allowed.includes(v) ? [] : [err.notSupported(field, v, allowed)];
}

export function validatePodSpec(spec: Rec, field: FieldPath, opts: PodSpecOptions): StatusCause[] {
  const causes: StatusCause[] = [];
  if (spec.terminationGracePeriodSeconds === undefined || spec.terminationGracePeriodSeconds === null) {
    causes.push(err.required(field.child('terminationGracePeriodSeconds')));
  }
  const { names: volumes, causes: volumeCauses } = validateVolumes(arr(spec.volumes), field.child('volumes'));
  causes.push(...volumeCauses);
  causes.push(...validateContainers(arr(spec.containers), volumes, field.child('containers')));
  causes.push(...validateInitContainers(arr(spec.initContainers), arr(spec.containers), volumes, field.child('initContainers')));
  if (spec.hostNetwork === true) {
    arr(spec.containers).forEach((c, ci) => {
      arr(isRecord(c) ? c.ports : undefined).forEach((rp, pi) => {
        const p: Rec = isRecord(rp) ? rp : {};
        const hp = p.hostPort ?? 0;
        if ((opts.resourceIsPod || hp !== 0) && hp !== p.containerPort) {
          const at = field.child('containers').index(ci).child('ports').index(pi).child('hostPort');
          causes.push(err.invalid(at, hp, 'must match `containerPort` when `hostNetwork` is true'));
        }
      });
    });
  }
  causes.push(...enumField(spec.restartPolicy, field.child('restartPolicy'), ['Always', 'OnFailure', 'Never']));
  causes.push(...enumField(spec.dnsPolicy, field.child('dnsPolicy'), ['ClusterFirstWithHostNet', 'ClusterFirst', 'Default', 'None']));
  causes.push(...validateLabels(spec.nodeSelector, field.child('nodeSelector')));
  if (spec.dnsPolicy === 'None') {
    if (!isRecord(spec.dnsConfig)) causes.push(err.required(field.child('dnsConfig'), 'must provide `dnsConfig` when `dnsPolicy` is None'));
    else if (arr(spec.dnsConfig.nameservers).length === 0) {
      causes.push(err.required(field.child('dnsConfig', 'nameservers'), 'must provide at least one DNS nameserver when `dnsPolicy` is None'));
    }
  }
  if (spec.serviceAccountName) {
    causes.push(...invalidEach(field.child('serviceAccountName'), str(spec.serviceAccountName), nameIsDNSSubdomain(str(spec.serviceAccountName), false)));
  }
  if (spec.nodeName) causes.push(...invalidEach(field.child('nodeName'), str(spec.nodeName), nameIsDNSSubdomain(str(spec.nodeName), false)));
  if (spec.activeDeadlineSeconds !== undefined && spec.activeDeadlineSeconds !== null) {
    const v = spec.activeDeadlineSeconds;
    if (typeof v !== 'number' || v < 1 || v > MAX_INT32) causes.push(err.invalid(field.child('activeDeadlineSeconds'), v, inclusiveRangeError(1, MAX_INT32)));
  }
  if (spec.hostname) causes.push(...invalidEach(field.child('hostname'), str(spec.hostname), isDNS1123Label(str(spec.hostname))));
  if (spec.subdomain) causes.push(...invalidEach(field.child('subdomain'), str(spec.subdomain), isDNS1123Label(str(spec.subdomain))));
  causes.push(...validateTolerations(arr(spec.tolerations), field.child('tolerations')));
  if (spec.priorityClassName) {
    causes.push(...invalidEach(field.child('priorityClassName'), str(spec.priorityClassName), nameIsDNSSubdomain(str(spec.priorityClassName), false)));
  }
  if (spec.runtimeClassName !== undefined && spec.runtimeClassName !== null) {
    causes.push(...invalidEach(field.child('runtimeClassName'), str(spec.runtimeClassName), nameIsDNSSubdomain(str(spec.runtimeClassName), false)));
  }
  if (spec.preemptionPolicy !== undefined) {
    causes.push(...enumField(spec.preemptionPolicy, field.child('preemptionPolicy'), ['PreemptLowerPriority', 'Never']));
  }
  // kube validates overhead by wrapping it as the limits of a ResourceRequirements at spec.overhead.
  if (isRecord(spec.overhead)) causes.push(...validateResources({ limits: spec.overhead }, field.child('overhead')));
  return causes;
}

/** A workload's pod template (ValidatePodTemplateSpec); labels are reported at `<template>.labels`. */
export function validatePodTemplateSpec(template: Rec, field: FieldPath): StatusCause[] {
  const meta: Rec = isRecord(template.metadata) ? template.metadata : {};
  const spec: Rec = isRecord(template.spec) ? template.spec : {};
  const causes = [...validateLabels(meta.labels, field.child('labels')), ...validateAnnotations(meta.annotations, field.child('annotations'))];
  causes.push(...validatePodSpec(spec, field.child('spec'), { resourceIsPod: false }));
  if (arr(spec.ephemeralContainers).length > 0) {
    causes.push(err.forbidden(field.child('spec', 'ephemeralContainers'), 'ephemeral containers not allowed in pod template'));
  }
  return causes;
}

