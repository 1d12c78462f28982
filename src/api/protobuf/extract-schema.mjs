#!/usr/bin/env node
// Regenerates schema.ts, the protobuf field table behind decode.ts.
//
// Where the facts come from: every Kubernetes Go binary embeds, gzipped, the FileDescriptorProto of each
// go-to-protobuf package it links (k8s.io/api/*, k8s.io/apimachinery/*). Those descriptors carry field
// numbers, names and types, and also the gogoproto options go-to-protobuf set, among them
// `nullable=false` on every field whose Go type is not a pointer. The .proto files do not show that, and
// the decoder needs it to tell "absent" from "explicitly zero". kubectl does not link
// apiextensions-apiserver, so that package's table is written below by hand from its Go struct tags.
//
// Usage: node src/api/protobuf/extract-schema.mjs [path/to/kubectl]   (default /usr/bin/kubectl)
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const GZIP_MEMBER = Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0]);
const GZIP_HEADER_BYTES = 10;
const MAX_DESCRIPTOR_BYTES = 1 << 20;
const GOGO_NULLABLE = 65001;

function fields(b) {
  const out = [];
  let p = 0;
  const varint = () => {
    let r = 0n;
    for (let s = 0n; ; s += 7n) { const x = b[p++]; r |= BigInt(x & 0x7f) << s; if (!(x & 0x80)) return r; }
  };
  while (p < b.length) {
    const t = Number(varint());
    const f = t >> 3, wt = t & 7;
    if (wt === 0) out.push([f, varint()]);
    else if (wt === 2) { const l = Number(varint()); out.push([f, b.subarray(p, p + l)]); p += l; }
    else if (wt === 5) { out.push([f, b.readUInt32LE(p)]); p += 4; }
    else if (wt === 1) { out.push([f, b.readBigUInt64LE(p)]); p += 8; }
    else throw new Error(`wire type ${wt} in descriptor`);
  }
  return out;
}

function message(b) {
  const m = { fields: [], nested: [], mapEntry: false };
  for (const [f, v] of fields(b)) {
    if (f === 1) m.name = v.toString();
    if (f === 2) m.fields.push(field(v));
    if (f === 3) m.nested.push(message(v));
    if (f === 7) for (const [g, w] of fields(v)) if (g === 7) m.mapEntry = w !== 0n;
  }
  return m;
}

function field(b) {
  const fl = { nullable: true };
  for (const [f, v] of fields(b)) {
    if (f === 1) fl.name = v.toString();
    if (f === 3) fl.number = Number(v);
    if (f === 4) fl.label = Number(v);
    if (f === 5) fl.type = Number(v);
    if (f === 6) fl.typeName = v.toString().slice(1);
    if (f === 8) for (const [g, w] of fields(v)) if (g === GOGO_NULLABLE && w === 0n) fl.nullable = false;
  }
  return fl;
}

function descriptors(binary) {
  const msgs = new Map();
  for (let i = binary.indexOf(GZIP_MEMBER); i >= 0; i = binary.indexOf(GZIP_MEMBER, i + 1)) {
    let d;
    try { d = zlib.inflateRawSync(binary.subarray(i + GZIP_HEADER_BYTES, i + MAX_DESCRIPTOR_BYTES)); } catch { continue; }
    let name = '', pkg = '';
    const top = [];
    try { for (const [f, v] of fields(d)) { if (f === 1) name = v.toString(); if (f === 2) pkg = v.toString(); if (f === 4) top.push(v); } } catch { continue; }
    if (!name.startsWith('k8s.io/') || !name.endsWith('.proto')) continue;
    const walk = (prefix, m) => { msgs.set(`${prefix}.${m.name}`, m); for (const n of m.nested) walk(`${prefix}.${m.name}`, n); };
    for (const b of top) walk(pkg, message(b));
  }
  return msgs;
}

const short = (full) => full
  .replace(/^k8s\.io\.api\./, '')
  .replace(/^k8s\.io\.apimachinery\.pkg\.apis\.meta\.v1\./, 'meta.v1.')
  .replace(/^k8s\.io\.apimachinery\.pkg\.runtime\./, 'runtime.')
  .replace(/^k8s\.io\.apimachinery\.pkg\.api\.resource\./, 'resource.')
  .replace(/^k8s\.io\.apimachinery\.pkg\.util\.intstr\./, 'intstr.');
const SCALAR = { 1: 'double', 2: 'float', 3: 'int64', 4: 'uint64', 5: 'int32', 8: 'bool', 9: 'string', 12: 'bytes', 13: 'uint32' };
const LABEL_REPEATED = 3;
const TYPE_MESSAGE = 11;

// apiextensions.k8s.io/v1 from the Go struct tags: [number, JSON name, type, flags].
const AX = {
  CustomResourceDefinition: [
    [1, 'metadata', 'message:meta.v1.ObjectMeta'],
    [2, 'spec', 'message:apiextensions.v1.CustomResourceDefinitionSpec'],
    [3, 'status', 'message:apiextensions.v1.CustomResourceDefinitionStatus'],
  ],
  CustomResourceDefinitionList: [
    [1, 'metadata', 'message:meta.v1.ListMeta'],
    [2, 'items', 'message:apiextensions.v1.CustomResourceDefinition', 'r'],
  ],
  CustomResourceDefinitionSpec: [
    [1, 'group', 'string'],
    [3, 'names', 'message:apiextensions.v1.CustomResourceDefinitionNames'],
    [4, 'scope', 'string'],
    [7, 'versions', 'message:apiextensions.v1.CustomResourceDefinitionVersion', 'r'],
    [9, 'conversion', 'message:apiextensions.v1.CustomResourceConversion', 'k'],
    [10, 'preserveUnknownFields', 'bool'],
  ],
  CustomResourceConversion: [
    [1, 'strategy', 'string'],
    [2, 'webhook', 'message:apiextensions.v1.WebhookConversion', 'k'],
  ],
  WebhookConversion: [
    [2, 'clientConfig', 'message:apiextensions.v1.WebhookClientConfig', 'k'],
    [3, 'conversionReviewVersions', 'string', 'r'],
  ],
  WebhookClientConfig: [
    [3, 'url', 'string', 'k'],
    [1, 'service', 'message:apiextensions.v1.ServiceReference', 'k'],
    [2, 'caBundle', 'bytes'],
  ],
  ServiceReference: [
    [1, 'namespace', 'string'],
    [2, 'name', 'string'],
    [3, 'path', 'string', 'k'],
    [4, 'port', 'int32', 'k'],
  ],
  CustomResourceDefinitionVersion: [
    [1, 'name', 'string'],
    [2, 'served', 'bool'],
    [3, 'storage', 'bool'],
    [7, 'deprecated', 'bool'],
    [8, 'deprecationWarning', 'string', 'k'],
    [4, 'schema', 'message:apiextensions.v1.CustomResourceValidation', 'k'],
    [5, 'subresources', 'message:apiextensions.v1.CustomResourceSubresources', 'k'],
    [6, 'additionalPrinterColumns', 'message:apiextensions.v1.CustomResourceColumnDefinition', 'r'],
    [9, 'selectableFields', 'message:apiextensions.v1.SelectableField', 'r'],
  ],
  SelectableField: [
    [1, 'jsonPath', 'string'],
  ],
  CustomResourceColumnDefinition: [
    [1, 'name', 'string'],
    [2, 'type', 'string'],
    [3, 'format', 'string'],
    [4, 'description', 'string'],
    [5, 'priority', 'int32'],
    [6, 'jsonPath', 'string'],
  ],
  CustomResourceDefinitionNames: [
    [1, 'plural', 'string'],
    [2, 'singular', 'string'],
    [3, 'shortNames', 'string', 'r'],
    [4, 'kind', 'string'],
    [5, 'listKind', 'string'],
    [6, 'categories', 'string', 'r'],
  ],
  CustomResourceDefinitionStatus: [
    [1, 'conditions', 'message:apiextensions.v1.CustomResourceDefinitionCondition', 'r'],
    [2, 'acceptedNames', 'message:apiextensions.v1.CustomResourceDefinitionNames'],
    [3, 'storedVersions', 'string', 'r'],
  ],
  CustomResourceDefinitionCondition: [
    [1, 'type', 'string'],
    [2, 'status', 'string'],
    [3, 'lastTransitionTime', 'message:meta.v1.Time'],
    [4, 'reason', 'string'],
    [5, 'message', 'string'],
  ],
  CustomResourceValidation: [
    [1, 'openAPIV3Schema', 'message:apiextensions.v1.JSONSchemaProps', 'k'],
  ],
  CustomResourceSubresources: [
    [1, 'status', 'message:apiextensions.v1.CustomResourceSubresourceStatus', 'k'],
    [2, 'scale', 'message:apiextensions.v1.CustomResourceSubresourceScale', 'k'],
  ],
  CustomResourceSubresourceStatus: [],
  CustomResourceSubresourceScale: [
    [1, 'specReplicasPath', 'string'],
    [2, 'statusReplicasPath', 'string'],
    [3, 'labelSelectorPath', 'string', 'k'],
  ],
  ExternalDocumentation: [
    [1, 'description', 'string'],
    [2, 'url', 'string'],
  ],
  JSON: [
    [1, 'raw', 'bytes'],
  ],
  JSONSchemaProps: [
    [1, 'id', 'string'],
    [2, '$schema', 'string'],
    [3, '$ref', 'string', 'k'],
    [4, 'description', 'string'],
    [5, 'type', 'string'],
    [6, 'format', 'string'],
    [7, 'title', 'string'],
    [8, 'default', 'message:apiextensions.v1.JSON', 'k'],
    [9, 'maximum', 'double', 'k'],
    [10, 'exclusiveMaximum', 'bool'],
    [11, 'minimum', 'double', 'k'],
    [12, 'exclusiveMinimum', 'bool'],
    [13, 'maxLength', 'int64', 'k'],
    [14, 'minLength', 'int64', 'k'],
    [15, 'pattern', 'string'],
    [16, 'maxItems', 'int64', 'k'],
    [17, 'minItems', 'int64', 'k'],
    [18, 'uniqueItems', 'bool'],
    [19, 'multipleOf', 'double', 'k'],
    [20, 'enum', 'message:apiextensions.v1.JSON', 'r'],
    [21, 'maxProperties', 'int64', 'k'],
    [22, 'minProperties', 'int64', 'k'],
    [23, 'required', 'string', 'r'],
    [24, 'items', 'message:apiextensions.v1.JSONSchemaPropsOrArray', 'k'],
    [25, 'allOf', 'message:apiextensions.v1.JSONSchemaProps', 'r'],
    [26, 'oneOf', 'message:apiextensions.v1.JSONSchemaProps', 'r'],
    [27, 'anyOf', 'message:apiextensions.v1.JSONSchemaProps', 'r'],
    [28, 'not', 'message:apiextensions.v1.JSONSchemaProps', 'k'],
    [29, 'properties', 'map<string,message:apiextensions.v1.JSONSchemaProps>'],
    [30, 'additionalProperties', 'message:apiextensions.v1.JSONSchemaPropsOrBool', 'k'],
    [31, 'patternProperties', 'map<string,message:apiextensions.v1.JSONSchemaProps>'],
    [32, 'dependencies', 'map<string,message:apiextensions.v1.JSONSchemaPropsOrStringArray>'],
    [33, 'additionalItems', 'message:apiextensions.v1.JSONSchemaPropsOrBool', 'k'],
    [34, 'definitions', 'map<string,message:apiextensions.v1.JSONSchemaProps>'],
    [35, 'externalDocs', 'message:apiextensions.v1.ExternalDocumentation', 'k'],
    [36, 'example', 'message:apiextensions.v1.JSON', 'k'],
    [37, 'nullable', 'bool'],
    [38, 'x-kubernetes-preserve-unknown-fields', 'bool', 'k'],
    [39, 'x-kubernetes-embedded-resource', 'bool'],
    [40, 'x-kubernetes-int-or-string', 'bool'],
    [41, 'x-kubernetes-list-map-keys', 'string', 'r'],
    [42, 'x-kubernetes-list-type', 'string', 'k'],
    [43, 'x-kubernetes-map-type', 'string', 'k'],
    [44, 'x-kubernetes-validations', 'message:apiextensions.v1.ValidationRule', 'r'],
  ],
  JSONSchemaPropsOrArray: [
    [1, 'schema', 'message:apiextensions.v1.JSONSchemaProps', 'k'],
    [2, 'jSONSchemas', 'message:apiextensions.v1.JSONSchemaProps', 'r'],
  ],
  JSONSchemaPropsOrBool: [
    [1, 'allows', 'bool'],
    [2, 'schema', 'message:apiextensions.v1.JSONSchemaProps', 'k'],
  ],
  JSONSchemaPropsOrStringArray: [
    [1, 'schema', 'message:apiextensions.v1.JSONSchemaProps', 'k'],
    [2, 'property', 'string', 'r'],
  ],
  ValidationRule: [
    [1, 'rule', 'string'],
    [2, 'message', 'string'],
    [3, 'messageExpression', 'string'],
    [4, 'reason', 'string', 'k'],
    [5, 'fieldPath', 'string'],
    [6, 'optionalOldSelf', 'bool', 'k'],
  ],
};

// Proto field names that differ from the Go JSON name.
const RENAME = { 'authentication.v1.BoundObjectReference.uID': 'uid' };
// Non-pointer Go fields whose zero value the API server must still see.
const KEEP_ZERO = new Set(['autoscaling.v1.ScaleSpec.replicas', 'authorization.v1.SubjectAccessReviewStatus.allowed']);
// Fields whose Go struct is embedded without a JSON name, so encoding/json flattens them into the parent.
const INLINE = new Set([
  'core.v1.ConfigMapEnvSource.localObjectReference',
  'core.v1.ConfigMapKeySelector.localObjectReference',
  'core.v1.ConfigMapProjection.localObjectReference',
  'core.v1.ConfigMapVolumeSource.localObjectReference',
  'core.v1.EphemeralContainer.ephemeralContainerCommon',
  'core.v1.PersistentVolumeSpec.persistentVolumeSource',
  'core.v1.Probe.handler',
  'core.v1.SecretEnvSource.localObjectReference',
  'core.v1.SecretKeySelector.localObjectReference',
  'core.v1.SecretProjection.localObjectReference',
  'core.v1.Volume.volumeSource',
]);
// The kinds decoded: every BUILTIN_RESOURCES kind and the subresource bodies kubectl sends.
const ROOT_KINDS = [
  ['', 'v1', 'core.v1', ['Namespace', 'Node', 'Pod', 'ConfigMap', 'Secret', 'Service', 'Endpoints', 'Event', 'ServiceAccount', 'PersistentVolume', 'PersistentVolumeClaim', 'Binding']],
  ['discovery.k8s.io', 'v1', 'discovery.v1', ['EndpointSlice']],
  ['coordination.k8s.io', 'v1', 'coordination.v1', ['Lease']],
  ['node.k8s.io', 'v1', 'node.v1', ['RuntimeClass']],
  ['events.k8s.io', 'v1', 'events.v1', ['Event']],
  ['apps', 'v1', 'apps.v1', ['Deployment', 'ReplicaSet', 'DaemonSet', 'ControllerRevision']],
  ['rbac.authorization.k8s.io', 'v1', 'rbac.v1', ['Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding']],
  ['apiextensions.k8s.io', 'v1', 'apiextensions.v1', ['CustomResourceDefinition']],
  ['certificates.k8s.io', 'v1', 'certificates.v1', ['CertificateSigningRequest']],
  ['authorization.k8s.io', 'v1', 'authorization.v1', ['SelfSubjectAccessReview', 'SubjectAccessReview']],
  ['authentication.k8s.io', 'v1', 'authentication.v1', ['SelfSubjectReview', 'TokenRequest', 'TokenReview']],
  ['policy', 'v1', 'policy.v1', ['Eviction']],
  ['autoscaling', 'v1', 'autoscaling.v1', ['Scale']],
];

const binary = fs.readFileSync(process.argv[2] ?? '/usr/bin/kubectl');
const msgs = descriptors(binary);
const byShort = new Map([...msgs].map(([k, v]) => [short(k), v]));

function fieldsOf(name) {
  if (name.startsWith('apiextensions.v1.')) {
    const f = AX[name.slice('apiextensions.v1.'.length)];
    if (!f) throw new Error(`no table for ${name}`);
    return f;
  }
  const m = byShort.get(name);
  if (!m) throw new Error(`no descriptor for ${name}`);
  return [...m.fields].sort((a, b) => a.number - b.number).map((f) => {
    const id = `${name}.${f.name}`;
    let type;
    const entry = f.type === TYPE_MESSAGE ? msgs.get(f.typeName) : undefined;
    if (entry?.mapEntry) {
      const [k, v] = [1, 2].map((n) => entry.fields.find((x) => x.number === n));
      if (SCALAR[k.type] !== 'string') throw new Error(`map key of ${id} is not a string`);
      type = `map<string,${v.type === TYPE_MESSAGE ? `message:${short(v.typeName)}` : SCALAR[v.type]}>`;
    } else if (f.type === TYPE_MESSAGE) type = `message:${short(f.typeName)}`;
    else type = SCALAR[f.type] ?? (() => { throw new Error(`unsupported type ${f.type} on ${id}`); })();
    let flags = '';
    if (f.label === LABEL_REPEATED && !entry?.mapEntry) flags += 'r';
    if (f.label !== LABEL_REPEATED && type !== 'bytes' && (f.nullable || KEEP_ZERO.has(id))) flags += 'k';
    if (INLINE.has(id)) flags += 'i';
    const json = RENAME[id] ?? f.name;
    return flags ? [f.number, json, type, flags] : [f.number, json, type];
  });
}

const kinds = [];
const queue = ['runtime.Unknown', 'meta.v1.DeleteOptions', 'meta.v1.Status'];
const exists = (n) => (n.startsWith('apiextensions.v1.') ? n.slice(17) in AX : byShort.has(n));
for (const [group, version, pkg, names] of ROOT_KINDS) {
  for (const kind of names.flatMap((k) => [k, `${k}List`])) {
    if (!exists(`${pkg}.${kind}`)) continue;
    kinds.push([`${group ? `${group}/` : ''}${version}/${kind}`, `${pkg}.${kind}`]);
    queue.push(`${pkg}.${kind}`);
  }
}
const schema = new Map();
while (queue.length) {
  const n = queue.shift();
  if (schema.has(n)) continue;
  const f = fieldsOf(n);
  schema.set(n, f);
  for (const [, , t] of f) { const m = /message:([^>]+)/.exec(t); if (m) queue.push(m[1]); }
}

const q = (s) => `'${s}'`;
const lines = [
  '// Generated by extract-schema.mjs from the protobuf descriptors compiled into kubectl (k8s.io/api and',
  '// k8s.io/apimachinery) plus its hand-written apiextensions.k8s.io/v1 table. Regenerate; do not edit.',
  '',
  "import type { FieldDef } from './field.js';",
  '',
  '/** Message name → its fields. Names drop the Go package prefix: `core.v1.Pod`, `meta.v1.ObjectMeta`. */',
  'export const MESSAGES: Readonly<Record<string, readonly FieldDef[]>> = {',
];
for (const [name, fs_] of [...schema].sort(([a], [b]) => a.localeCompare(b))) {
  if (fs_.length === 0) { lines.push(`  ${q(name)}: [],`); continue; }
  lines.push(`  ${q(name)}: [`);
  for (const [n, j, t, fl] of fs_) lines.push(`    [${n}, ${q(j)}, ${q(t)}${fl ? `, ${q(fl)}` : ''}],`);
  lines.push('  ],');
}
lines.push('};', '', '/** `apiVersion/kind` → the message its `raw` bytes hold. */', 'export const KINDS: Readonly<Record<string, string>> = {');
for (const [k, n] of kinds) lines.push(`  ${q(k)}: ${q(n)},`);
lines.push('};', '');
const out = path.join(path.dirname(fileURLToPath(import.meta.url)), 'schema.ts');
fs.writeFileSync(out, lines.join('\n'));
console.error(`${out}: ${schema.size} messages, ${kinds.length} kinds`);
