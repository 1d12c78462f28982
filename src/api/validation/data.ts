import type { KubeObject, StatusCause } from '../types.js';
import { err, deepEqual, path, FIELD_IMMUTABLE } from './field.js';
import { isRecord, metaOf, str } from './meta.js';
import { isConfigMapKey } from './names.js';
import type { KindRules } from './registry.js';

/**
 * ConfigMap and Secret: key format, the 1 MiB total, and `immutable: true`. Secret and binaryData
 * values travel base64-encoded in JSON; kube rejects bad base64 while decoding, here it is a cause.
 */

type Rec = Record<string, any>;

export const MAX_DATA_SIZE = 1024 * 1024;
const IMMUTABLE_SET = 'field is immutable when `immutable` is set';
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * The decoded length of a base64 string, or where Go's decoder gives up: at the first byte outside
 * the alphabet, else at the end of a string whose padding or length is wrong.
 */
function base64Length(value: string): { length: number } | { badAt: number } {
  const bad = value.search(/[^A-Za-z0-9+/=]/);
  if (bad >= 0) return { badAt: bad };
  if (!BASE64.test(value) || value.length % 4 !== 0) return { badAt: value.length };
  return { length: Buffer.from(value, 'base64').length };
}

function validateData(obj: Rec, bag: 'data' | 'binaryData', base64: boolean, causes: StatusCause[]): number {
  let total = 0;
  const data: Rec = isRecord(obj[bag]) ? obj[bag] : {};
  for (const [key, value] of Object.entries(data)) {
    const at = path(bag).key(key);
    for (const msg of isConfigMapKey(key)) causes.push(err.invalid(at, key, msg));
    if (!base64) {
      total += Buffer.byteLength(str(value));
      continue;
    }
    const decoded = base64Length(str(value));
    if ('badAt' in decoded) causes.push(err.invalid(at, '<secret contents redacted>', `illegal base64 data at input byte ${decoded.badAt}`));
    else total += decoded.length;
  }
  return total;
}

function validateConfigMap(obj: KubeObject): StatusCause[] {
  const causes: StatusCause[] = [];
  let total = validateData(obj, 'data', false, causes);
  const binary: Rec = isRecord(obj.binaryData) ? obj.binaryData : {};
  const data: Rec = isRecord(obj.data) ? obj.data : {};
  for (const key of Object.keys(data)) {
    if (key in binary) causes.push(err.invalid(path('data').key(key), key, 'duplicate of key present in binaryData'));
  }
  total += validateData(obj, 'binaryData', true, causes);
  // kube reports the ConfigMap total against the whole object: an empty field path.
  if (total > MAX_DATA_SIZE) causes.push(err.tooLong(path(), MAX_DATA_SIZE));
  return causes;
}

function immutableData(obj: KubeObject, old: KubeObject, bags: string[]): StatusCause[] {
  if (old.immutable !== true) return [];
  const causes: StatusCause[] = [];
  if (obj.immutable !== true) causes.push(err.forbidden(path('immutable'), IMMUTABLE_SET));
  for (const bag of bags) if (!deepEqual(obj[bag] ?? {}, old[bag] ?? {})) causes.push(err.forbidden(path(bag), IMMUTABLE_SET));
  return causes;
}

const REQUIRED_KEYS: Record<string, string[]> = {
  'kubernetes.io/dockercfg': ['.dockercfg'],
  'kubernetes.io/dockerconfigjson': ['.dockerconfigjson'],
  'kubernetes.io/tls': ['tls.crt', 'tls.key'],
  'kubernetes.io/ssh-auth': ['ssh-privatekey'],
};

function validateSecret(obj: KubeObject): StatusCause[] {
  const causes: StatusCause[] = [];
  const total = validateData(obj, 'data', true, causes);
  if (total > MAX_DATA_SIZE) causes.push(err.tooLong(path('data'), MAX_DATA_SIZE));
  const data: Rec = isRecord(obj.data) ? obj.data : {};
  const type = str(obj.type);
  if (type === 'kubernetes.io/service-account-token' && !metaOf(obj).annotations?.['kubernetes.io/service-account.name']) {
    causes.push(err.required(path('metadata', 'annotations').key('kubernetes.io/service-account.name')));
  }
  if (type === 'kubernetes.io/basic-auth' && !('username' in data) && !('password' in data)) {
    causes.push(err.required(path('data').key('username')), err.required(path('data').key('password')));
  }
  for (const key of REQUIRED_KEYS[type] ?? []) if (!(key in data)) causes.push(err.required(path('data').key(key)));
  return causes;
}

export const configMapRules: KindRules = {
  group: '',
  kind: 'ConfigMap',
  validate: validateConfigMap,
  validateUpdate: (obj, old) => immutableData(obj, old, ['data', 'binaryData']),
};

export const secretRules: KindRules = {
  group: '',
  kind: 'Secret',
  defaults(obj) {
    if (!obj.type) obj.type = 'Opaque';
  },
  validate: validateSecret,
  validateUpdate(obj, old) {
    const causes = str(obj.type) === str(old.type) ? [] : [err.invalid(path('type'), str(obj.type), FIELD_IMMUTABLE)];
    return [...causes, ...immutableData(obj, old, ['data'])];
  },
};
