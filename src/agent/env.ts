// A container's environment as the kubelet builds it (kubelet_pods.go makeEnvironmentVariables), and
// the downward API values that env vars and downwardAPI volumes share.
import type { KubeObject } from '../api/types.js';
import { milliValue, parseQuantity, QuantityError, value, type Quantity } from '../api/quantity.js';
import { isEnvVarName, isQualifiedName } from '../api/validation/names.js';
import { ContainerConfigError, type NodeFacts, type ObjectSource } from './contracts.js';

/** One variable as the CRI takes it. */
export interface EnvEntry {
  key: string;
  value: string;
}

export interface ObjectFieldSelector {
  apiVersion?: string;
  fieldPath: string;
}

export interface ResourceFieldSelector {
  containerName?: string;
  resource: string;
  divisor?: string | number;
}

interface KeySelector {
  name?: string;
  key: string;
  optional?: boolean;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: ObjectFieldSelector;
    resourceFieldRef?: ResourceFieldSelector;
    configMapKeyRef?: KeySelector;
    secretKeyRef?: KeySelector;
  };
}

interface EnvFromSource {
  prefix?: string;
  configMapRef?: { name?: string; optional?: boolean };
  secretRef?: { name?: string; optional?: boolean };
}

/** The parts of a pod's container that env and volume resolution read. */
export interface PodContainer {
  name: string;
  env?: EnvVar[];
  envFrom?: EnvFromSource[];
  resources?: { limits?: Record<string, string | number>; requests?: Record<string, string | number> };
  restartPolicy?: string;
  [field: string]: unknown;
}

interface PodFields {
  spec?: {
    nodeName?: string;
    serviceAccountName?: string;
    containers?: PodContainer[];
    initContainers?: PodContainer[];
    ephemeralContainers?: PodContainer[];
  };
  status?: { podIP?: string; podIPs?: { ip: string }[] };
}

export interface ResolveEnvOptions {
  /** The sandbox's IPs, for `status.podIP(s)`; defaults to the pod's status. */
  podIPs?: string[];
  /**
   * Told when envFrom keys were skipped for not being valid variable names, with the text the
   * kubelet's `InvalidEnvironmentVariableNames` warning event carries.
   */
  onInvalidKeys?: (message: string) => void;
}

/** The container named `name` among the pod's app, init and ephemeral containers. */
export function findContainer(pod: KubeObject, name: string): PodContainer | undefined {
  const spec = (pod as PodFields).spec ?? {};
  for (const list of [spec.containers, spec.initContainers, spec.ephemeralContainers]) {
    const found = list?.find((c) => c.name === name);
    if (found) return found;
  }
  return undefined;
}

/**
 * `$(VAR)` expansion (third_party/forked/golang/expansion): `$$` is a literal `$`, a reference the
 * mapping cannot resolve stays as written, and an unterminated `$(` is kept literally.
 */
export function expand(input: string, mapping: (name: string) => string): string {
  let out = '';
  let checkpoint = 0;
  for (let cursor = 0; cursor < input.length; cursor++) {
    if (input[cursor] !== '$' || cursor + 1 >= input.length) continue;
    out += input.slice(checkpoint, cursor);
    const next = input[cursor + 1]!;
    let advance = 1;
    if (next === '$') {
      out += '$';
    } else if (next === '(') {
      const close = input.indexOf(')', cursor + 2);
      if (close === -1) {
        out += '$(';
      } else {
        out += mapping(input.slice(cursor + 2, close));
        advance = close - cursor;
      }
    } else {
      out += '$' + next;
    }
    cursor += advance;
    checkpoint = cursor + 1;
  }
  return out + input.slice(checkpoint);
}

/** The mapping kube expands env values with: the first map that has the name, else the reference unchanged. */
export function mappingFor(...maps: ReadonlyMap<string, string>[]): (name: string) => string {
  return (name) => {
    for (const m of maps) {
      const v = m.get(name);
      if (v !== undefined) return v;
    }
    return `$(${name})`;
  };
}

/**
 * kube's FormatMap, the content of a downwardAPI `metadata.labels` / `metadata.annotations` file:
 * `key="value"` lines sorted by key, values quoted as Go's %q does, no trailing newline.
 */
export function formatMap(m: Record<string, string> | undefined): string {
  return Object.keys(m ?? {})
    .sort()
    .map((k) => `${k}=${goQuote(m![k]!)}`)
    .join('\n');
}

const GO_ESCAPES: Record<string, string> = { '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v', '"': '\\"', '\\': '\\\\' };
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;

/** strconv.Quote: printable runes as they are, everything else escaped. */
function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    const escape = GO_ESCAPES[ch];
    if (escape) out += escape;
    // A lone surrogate is what Go's JSON decoder turns into U+FFFD, which is printable.
    else if (cp >= 0xd800 && cp <= 0xdfff) out += '\ufffd';
    else if (PRINTABLE.test(ch)) out += ch;
    else if (cp < 0x20 || cp === 0x7f) out += '\\x' + cp.toString(16).padStart(2, '0');
    else if (cp < 0x10000) out += '\\u' + cp.toString(16).padStart(4, '0');
    else out += '\\U' + cp.toString(16).padStart(8, '0');
  }
  return out + '"';
}

/** ConvertDownwardAPIFieldLabel's list: paths the API accepts, even those the kubelet then cannot resolve. */
const KNOWN_FIELD_PATHS = new Set([
  'metadata.annotations',
  'metadata.labels',
  'metadata.name',
  'metadata.namespace',
  'metadata.uid',
  'spec.nodeName',
  'spec.restartPolicy',
  'spec.serviceAccountName',
  'spec.schedulerName',
  'status.phase',
  'status.hostIP',
  'status.hostIPs',
  'status.podIP',
  'status.podIPs',
]);

/** `metadata.labels['k']` → ['metadata.labels', 'k'] (SplitMaybeSubscriptedPath). */
function splitSubscript(fieldPath: string): [string, string] | undefined {
  if (!fieldPath.endsWith("']")) return undefined;
  const open = fieldPath.indexOf("['");
  if (open <= 0) return undefined;
  return [fieldPath.slice(0, open), fieldPath.slice(open + 2, -2)];
}

function podIPsOf(pod: KubeObject, podIPs: string[] | undefined): string[] {
  if (podIPs) return podIPs;
  const status = (pod as PodFields).status;
  if (status?.podIPs?.length) return status.podIPs.map((p) => p.ip);
  return status?.podIP ? [status.podIP] : [];
}

/**
 * The value of a downward API `fieldRef` (podFieldSelectorRuntimeValue + ExtractFieldPathAsString).
 * `podIPs` are the sandbox's addresses, when the pod's status does not carry them yet.
 * Throws ContainerConfigError with the kubelet's message for a path it cannot resolve.
 */
export function fieldRefValue(pod: KubeObject, fieldPath: string, node: NodeFacts, podIPs?: string[]): string {
  const meta = pod.metadata;
  const sub = splitSubscript(fieldPath);
  if (sub) {
    const [path, key] = sub;
    if (path !== 'metadata.labels' && path !== 'metadata.annotations') {
      throw new ContainerConfigError(`field label does not support subscript: ${fieldPath}`);
    }
    const errs = isQualifiedName(path === 'metadata.annotations' ? key.toLowerCase() : key);
    if (errs.length > 0) throw new ContainerConfigError(`invalid key subscript in ${fieldPath}: ${errs.join(';')}`);
    return (path === 'metadata.labels' ? meta.labels : meta.annotations)?.[key] ?? '';
  }
  const spec = (pod as PodFields).spec ?? {};
  const path = fieldPath === 'spec.host' ? 'spec.nodeName' : fieldPath;
  switch (path) {
    case 'metadata.name':
      return meta.name ?? '';
    case 'metadata.namespace':
      return meta.namespace ?? '';
    case 'metadata.uid':
      return meta.uid ?? '';
    case 'metadata.labels':
      return formatMap(meta.labels);
    case 'metadata.annotations':
      return formatMap(meta.annotations);
    case 'spec.nodeName':
      return spec.nodeName ?? '';
    case 'spec.serviceAccountName':
      return spec.serviceAccountName ?? '';
    case 'status.hostIP':
    case 'status.hostIPs':
      return node.hostIP;
    case 'status.podIP':
      return podIPsOf(pod, podIPs)[0] ?? '';
    case 'status.podIPs':
      return podIPsOf(pod, podIPs).join(',');
  }
  if (KNOWN_FIELD_PATHS.has(path)) throw new ContainerConfigError(`unsupported fieldPath: ${path}`);
  throw new ContainerConfigError(`field label not supported: ${fieldPath}`);
}

const HUGEPAGES_PREFIX = 'hugepages-';
/** The resources a selector may name besides hugepages; limits left unset default to the node's allocatable. */
const STANDARD_RESOURCES = ['cpu', 'memory', 'ephemeral-storage'] as const;
type StandardResource = (typeof STANDARD_RESOURCES)[number];

function quantityOf(raw: string | number | undefined, what: string): Quantity | undefined {
  if (raw === undefined) return undefined;
  try {
    return parseQuantity(raw);
  } catch (err) {
    if (err instanceof QuantityError) throw new ContainerConfigError(`invalid quantity ${JSON.stringify(raw)} for ${what}: ${err.message}`);
    throw err;
  }
}

/** Integer ceiling of v/d, as convertResourceToString computes it. */
function ceilDiv(v: bigint, d: bigint): bigint {
  let q = v / d;
  if (v % d !== 0n && v > 0n === d > 0n) q++;
  return q;
}

/**
 * The value of a downward API `resourceFieldRef` for container `containerName` (or the container
 * the selector names): the request or limit divided by `divisor` (default 1) and rounded up, cpu in
 * milli-units and the rest in units. A limit the container leaves unset is the node's allocatable.
 */
export function resourceFieldRefValue(pod: KubeObject, containerName: string, ref: ResourceFieldSelector, node: NodeFacts): string {
  const name = ref.containerName || containerName;
  const container = findContainer(pod, name);
  if (!container) throw new ContainerConfigError(`container ${name} not found`);
  const dot = ref.resource.indexOf('.');
  const kind = ref.resource.slice(0, dot);
  const resourceName = ref.resource.slice(dot + 1);
  const standard = (STANDARD_RESOURCES as readonly string[]).includes(resourceName);
  if ((kind !== 'limits' && kind !== 'requests') || (!standard && !resourceName.startsWith(HUGEPAGES_PREFIX))) {
    throw new ContainerConfigError(`Unsupported container resource : ${ref.resource}`);
  }
  let amount = quantityOf(container.resources?.[kind]?.[resourceName], `${container.name} ${ref.resource}`);
  if (kind === 'limits' && standard && (!amount || amount.nano === 0n)) {
    amount = quantityOf(node.allocatable[resourceName as StandardResource], `the node's allocatable ${resourceName}`);
  }
  let divisor = quantityOf(ref.divisor, `the divisor of ${ref.resource}`);
  if (!divisor || divisor.nano === 0n) divisor = parseQuantity('1');
  // cpu counts in thousandths, everything else in whole units; both round up, as kube's AsScaledInt64.
  const scaled = resourceName === 'cpu' ? milliValue : value;
  return ceilDiv(scaled(amount ?? parseQuantity('0')), scaled(divisor)).toString();
}

function notFound(kind: 'configmap' | 'secret', name: string): ContainerConfigError {
  return new ContainerConfigError(`${kind} "${name}" not found`);
}

function decodeSecretValue(b64: string): string {
  return Buffer.from(b64, 'base64').toString('utf8');
}

/**
 * The environment of container `containerName`, as the kubelet builds it: `envFrom` sources first
 * (configMaps, secrets, with their prefix), then `env` in order, each overriding what came before.
 * A value expands `$(VAR)` references to the variables defined so far. Missing objects and keys
 * throw ContainerConfigError with the kubelet's message unless the reference is optional.
 * Service link variables (enableServiceLinks) are not generated.
 */
export async function resolveEnv(
  pod: KubeObject,
  containerName: string,
  source: ObjectSource,
  node: NodeFacts,
  opts: ResolveEnvOptions = {},
): Promise<EnvEntry[]> {
  const namespace = pod.metadata.namespace ?? '';
  const container = findContainer(pod, containerName);
  if (!container) throw new ContainerConfigError(`container "${containerName}" not found in pod ${namespace}/${pod.metadata.name ?? ''}`);
  const configMaps = new Map<string, KubeObject | undefined>();
  const secrets = new Map<string, KubeObject | undefined>();
  const lookup = async (cache: Map<string, KubeObject | undefined>, name: string, get: () => Promise<KubeObject | undefined>) => {
    if (!cache.has(name)) cache.set(name, await get());
    return cache.get(name);
  };
  const configMap = (name: string) => lookup(configMaps, name, () => source.configMap(namespace, name));
  const secret = (name: string) => lookup(secrets, name, () => source.secret(namespace, name));

  const env = new Map<string, string>();
  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    let data: Record<string, string>;
    let what: string;
    if (from.configMapRef) {
      const name = from.configMapRef.name ?? '';
      const cm = await configMap(name);
      if (!cm) {
        if (from.configMapRef.optional) continue;
        throw notFound('configmap', name);
      }
      data = (cm.data as Record<string, string> | undefined) ?? {};
      what = `configMap ${namespace}/${name}`;
    } else if (from.secretRef) {
      const name = from.secretRef.name ?? '';
      const s = await secret(name);
      if (!s) {
        if (from.secretRef.optional) continue;
        throw notFound('secret', name);
      }
      data = Object.fromEntries(Object.entries((s.data as Record<string, string> | undefined) ?? {}).map(([k, v]) => [k, decodeSecretValue(v)]));
      what = `secret ${namespace}/${name}`;
    } else {
      continue;
    }
    const invalid: string[] = [];
    for (const [key, v] of Object.entries(data)) {
      const name = prefix + key;
      if (isEnvVarName(name).length > 0) invalid.push(name);
      else env.set(name, v);
    }
    if (invalid.length > 0) {
      opts.onInvalidKeys?.(
        `Keys [${invalid.sort().join(', ')}] from the EnvFrom ${what} were skipped since they are considered invalid environment variable names.`,
      );
    }
  }

  const mapping = mappingFor(env);
  for (const v of container.env ?? []) {
    let resolved = v.value ?? '';
    const from = v.valueFrom;
    if (resolved !== '') {
      resolved = expand(resolved, mapping);
    } else if (from?.fieldRef) {
      const apiVersion = from.fieldRef.apiVersion || 'v1';
      if (apiVersion !== 'v1') throw new ContainerConfigError(`unsupported pod version: ${apiVersion}`);
      resolved = fieldRefValue(pod, from.fieldRef.fieldPath, node, opts.podIPs);
    } else if (from?.resourceFieldRef) {
      resolved = resourceFieldRefValue(pod, container.name, from.resourceFieldRef, node);
    } else if (from?.configMapKeyRef) {
      const { name = '', key, optional } = from.configMapKeyRef;
      const cm = await configMap(name);
      if (!cm) {
        if (optional) continue;
        throw notFound('configmap', name);
      }
      const found = (cm.data as Record<string, string> | undefined)?.[key];
      if (found === undefined) {
        if (optional) continue;
        throw new ContainerConfigError(`couldn't find key ${key} in ConfigMap ${namespace}/${name}`);
      }
      resolved = found;
    } else if (from?.secretKeyRef) {
      const { name = '', key, optional } = from.secretKeyRef;
      const s = await secret(name);
      if (!s) {
        if (optional) continue;
        throw notFound('secret', name);
      }
      const found = (s.data as Record<string, string> | undefined)?.[key];
      if (found === undefined) {
        if (optional) continue;
        throw new ContainerConfigError(`couldn't find key ${key} in Secret ${namespace}/${name}`);
      }
      resolved = decodeSecretValue(found);
    }
    env.set(v.name, resolved);
  }
  return [...env].map(([key, v]) => ({ key, value: v }));
}
