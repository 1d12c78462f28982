import { isIP } from 'node:net';
import type { KubeObject, StatusCause } from '../types.js';
import { err, path, quote, type FieldPath } from './field.js';
import { isRecord, str, validateLabels, goStringSlice } from './meta.js';
import { invalidEach, isDNS1123Label, isDNS1123Subdomain, isQualifiedName, isValidPortNum, nameIsDNS1035Label } from './names.js';
import { validatePortNumOrName } from './podspec.js';
import type { KindRules } from './registry.js';

/**
 * core/v1 Service: SetDefaults_Service plus the IP-family fields the registry fills on a single-stack
 * IPv4 cluster, and ValidateService(Update). Allocating clusterIP and nodePorts is the server's job.
 */

type Rec = Record<string, any>;

const SERVICE_TYPES = ['ClusterIP', 'ExternalName', 'LoadBalancer', 'NodePort'];
const PROTOCOLS = ['SCTP', 'TCP', 'UDP'];
const DEFAULT_CLIENT_IP_TIMEOUT_SECONDS = 10800;
const MAX_CLIENT_IP_TIMEOUT_SECONDS = 86400;
const IP_ERROR = 'must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)';

function specOf(obj: KubeObject): Rec {
  if (!isRecord(obj.spec)) obj.spec = {};
  return obj.spec as Rec;
}

const isHeadless = (spec: Rec) => spec.clusterIP === 'None' || (Array.isArray(spec.clusterIPs) && spec.clusterIPs[0] === 'None');
const externallyAccessible = (spec: Rec) =>
  spec.type === 'LoadBalancer' || spec.type === 'NodePort' || (spec.type === 'ClusterIP' && Array.isArray(spec.externalIPs) && spec.externalIPs.length > 0);

function defaultService(obj: KubeObject): void {
  const spec = specOf(obj);
  if (!spec.sessionAffinity) spec.sessionAffinity = 'None';
  if (spec.sessionAffinity === 'ClientIP' && !isRecord(spec.sessionAffinityConfig)) {
    spec.sessionAffinityConfig = { clientIP: { timeoutSeconds: DEFAULT_CLIENT_IP_TIMEOUT_SECONDS } };
  }
  if (!spec.type) spec.type = 'ClusterIP';
  for (const p of Array.isArray(spec.ports) ? spec.ports : []) {
    if (!isRecord(p)) continue;
    if (!p.protocol) p.protocol = 'TCP';
    if (p.targetPort === undefined || p.targetPort === null || p.targetPort === 0 || p.targetPort === '') p.targetPort = p.port;
  }
  if (externallyAccessible(spec) && !spec.externalTrafficPolicy) spec.externalTrafficPolicy = 'Cluster';
  if (['ClusterIP', 'NodePort', 'LoadBalancer'].includes(spec.type) && !spec.internalTrafficPolicy) spec.internalTrafficPolicy = 'Cluster';
  if (spec.type === 'LoadBalancer' && spec.allocateLoadBalancerNodePorts === undefined) spec.allocateLoadBalancerNodePorts = true;
  if (spec.clusterIP && !Array.isArray(spec.clusterIPs)) spec.clusterIPs = [spec.clusterIP];
  if (spec.type !== 'ExternalName') {
    if (!spec.ipFamilyPolicy) spec.ipFamilyPolicy = 'SingleStack';
    if (!Array.isArray(spec.ipFamilies) || spec.ipFamilies.length === 0) spec.ipFamilies = ['IPv4'];
  }
}

/** Go's %#v of the core.ServicePort key kube reports for a duplicate (protocol, port). */
function servicePortKey(protocol: string, port: unknown): { rendered: string } {
  return {
    rendered: `core.ServicePort{Name:"", Protocol:${quote(protocol)}, AppProtocol:(*string)(nil), Port:${str(port) || 0}, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:""}, NodePort:0}`,
  };
}

function validatePort(p: Rec, requireName: boolean, names: Set<string>, at: FieldPath): StatusCause[] {
  const causes: StatusCause[] = [];
  const name = str(p.name);
  if (requireName && !name) causes.push(err.required(at.child('name')));
  else if (name) {
    causes.push(...invalidEach(at.child('name'), name, isDNS1123Label(name)));
    if (names.has(name)) causes.push(err.duplicate(at.child('name'), name));
    else names.add(name);
  }
  const port = typeof p.port === 'number' ? p.port : 0;
  causes.push(...isValidPortNum(port).map((m) => err.invalid(at.child('port'), port, m)));
  if (!p.protocol) causes.push(err.required(at.child('protocol')));
  else if (!PROTOCOLS.includes(p.protocol)) causes.push(err.notSupported(at.child('protocol'), str(p.protocol), PROTOCOLS));
  causes.push(...validatePortNumOrName(p.targetPort, at.child('targetPort')));
  if (p.appProtocol !== undefined) causes.push(...invalidEach(at.child('appProtocol'), str(p.appProtocol), isQualifiedName(str(p.appProtocol))));
  return causes;
}

function validateClusterIPs(spec: Rec): StatusCause[] {
  const field = path('spec', 'clusterIPs');
  const ips: string[] = Array.isArray(spec.clusterIPs) ? spec.clusterIPs.map(String) : [];
  const causes: StatusCause[] = [];
  if (spec.clusterIP && ips.length > 0 && ips[0] !== spec.clusterIP) {
    causes.push(err.invalid(field, { rendered: goStringSlice(ips) }, 'first value must match `clusterIP`'));
  }
  ips.forEach((ip, i) => {
    if (i === 0 && ip === 'None') {
      if (ips.length > 1) causes.push(err.invalid(field, { rendered: goStringSlice(ips) }, "'None' must be the first and only value"));
      return;
    }
    if (isIP(ip) === 0) causes.push(err.invalid(field.index(i), ip, IP_ERROR));
  });
  if (spec.ipFamilyPolicy !== undefined && !['SingleStack', 'PreferDualStack', 'RequireDualStack'].includes(spec.ipFamilyPolicy)) {
    causes.push(err.notSupported(path('spec', 'ipFamilyPolicy'), str(spec.ipFamilyPolicy), ['PreferDualStack', 'RequireDualStack', 'SingleStack']));
  }
  (Array.isArray(spec.ipFamilies) ? spec.ipFamilies : []).forEach((f: unknown, i: number) => {
    if (f !== 'IPv4' && f !== 'IPv6') causes.push(err.notSupported(path('spec', 'ipFamilies').index(i), str(f), ['IPv4', 'IPv6']));
  });
  return causes;
}

function validateService(obj: KubeObject): StatusCause[] {
  const spec = specOf(obj);
  const specPath = path('spec');
  const causes: StatusCause[] = [];
  const ports: Rec[] = (Array.isArray(spec.ports) ? spec.ports : []).map((p: unknown) => (isRecord(p) ? p : {}));
  const headless = isHeadless(spec);
  if (ports.length === 0 && !headless && spec.type !== 'ExternalName') causes.push(err.required(specPath.child('ports')));
  const firstIP = Array.isArray(spec.clusterIPs) ? str(spec.clusterIPs[0]) : str(spec.clusterIP);
  if ((spec.type === 'LoadBalancer' || spec.type === 'NodePort') && headless) {
    causes.push(err.invalid(specPath.child('clusterIPs').index(0), firstIP, `may not be set to 'None' for ${spec.type} services`));
  }
  if (spec.type === 'ExternalName') {
    if (Array.isArray(spec.clusterIPs) && spec.clusterIPs.length > 0) causes.push(err.forbidden(specPath.child('clusterIPs'), 'may not be set for ExternalName services'));
    if (Array.isArray(spec.ipFamilies) && spec.ipFamilies.length > 0) causes.push(err.forbidden(specPath.child('ipFamilies'), 'may not be set for ExternalName services'));
    if (spec.ipFamilyPolicy !== undefined) causes.push(err.forbidden(specPath.child('ipFamilyPolicy'), 'may not be set for ExternalName services'));
    const cname = str(spec.externalName).replace(/\.$/, '');
    if (cname) causes.push(...invalidEach(specPath.child('externalName'), cname, isDNS1123Subdomain(cname)));
    else causes.push(err.required(specPath.child('externalName')));
  }
  const names = new Set<string>();
  ports.forEach((p, i) => causes.push(...validatePort(p, ports.length > 1, names, specPath.child('ports').index(i))));
  causes.push(...validateLabels(spec.selector, specPath.child('selector')));
  if (!spec.sessionAffinity) causes.push(err.required(specPath.child('sessionAffinity')));
  else if (!['ClientIP', 'None'].includes(spec.sessionAffinity)) {
    causes.push(err.notSupported(specPath.child('sessionAffinity'), str(spec.sessionAffinity), ['ClientIP', 'None']));
  }
  if (spec.sessionAffinity === 'ClientIP') {
    const timeout = spec.sessionAffinityConfig?.clientIP?.timeoutSeconds;
    const at = specPath.child('sessionAffinityConfig');
    if (!isRecord(spec.sessionAffinityConfig)) causes.push(err.required(at, 'when session affinity type is ClientIP'));
    else if (!isRecord(spec.sessionAffinityConfig.clientIP)) causes.push(err.required(at.child('clientIP'), 'when session affinity type is ClientIP'));
    else if (timeout === undefined) causes.push(err.required(at.child('clientIP', 'timeoutSeconds'), 'when session affinity type is ClientIP'));
    else if (timeout <= 0 || timeout > MAX_CLIENT_IP_TIMEOUT_SECONDS) {
      causes.push(err.invalid(at.child('clientIP', 'timeoutSeconds'), timeout, `must be greater than 0 and less than ${MAX_CLIENT_IP_TIMEOUT_SECONDS}`));
    }
  } else if (spec.sessionAffinity === 'None' && spec.sessionAffinityConfig !== undefined) {
    causes.push(err.forbidden(specPath.child('sessionAffinityConfig'), 'must not be set when session affinity is None'));
  }
  causes.push(...validateClusterIPs(spec));
  (Array.isArray(spec.externalIPs) ? spec.externalIPs : []).forEach((ip: unknown, i: number) => {
    if (isIP(str(ip)) === 0) causes.push(err.invalid(specPath.child('externalIPs').index(i), str(ip), IP_ERROR));
  });
  if (!spec.type) causes.push(err.required(specPath.child('type')));
  else if (!SERVICE_TYPES.includes(spec.type)) causes.push(err.notSupported(specPath.child('type'), str(spec.type), SERVICE_TYPES));
  if (spec.type === 'ClusterIP') {
    ports.forEach((p, i) => {
      if (p.nodePort) causes.push(err.forbidden(specPath.child('ports').index(i).child('nodePort'), "may not be used when `type` is 'ClusterIP'"));
    });
  }
  const nodePorts = new Set<string>();
  ports.forEach((p, i) => {
    if (!p.nodePort) return;
    const key = `${str(p.protocol)}/${p.nodePort}`;
    if (nodePorts.has(key)) causes.push(err.duplicate(specPath.child('ports').index(i).child('nodePort'), p.nodePort));
    nodePorts.add(key);
  });
  const seen = new Set<string>();
  ports.forEach((p, i) => {
    const key = `${str(p.protocol)}/${str(p.port)}`;
    if (seen.has(key)) causes.push(err.duplicate(specPath.child('ports').index(i), servicePortKey(str(p.protocol), p.port)));
    seen.add(key);
  });
  if (spec.allocateLoadBalancerNodePorts !== undefined && spec.type !== 'LoadBalancer') {
    causes.push(err.forbidden(specPath.child('allocateLoadBalancerNodePorts'), "may only be used when `type` is 'LoadBalancer'"));
  }
  if (externallyAccessible(spec)) {
    if (!spec.externalTrafficPolicy) causes.push(err.required(specPath.child('externalTrafficPolicy')));
    else if (!['Cluster', 'Local'].includes(spec.externalTrafficPolicy)) {
      causes.push(err.notSupported(specPath.child('externalTrafficPolicy'), str(spec.externalTrafficPolicy), ['Cluster', 'Local']));
    }
  } else if (spec.externalTrafficPolicy) {
    causes.push(err.invalid(specPath.child('externalTrafficPolicy'), str(spec.externalTrafficPolicy), 'may only be set for externally-accessible services'));
  }
  if (spec.internalTrafficPolicy === undefined || spec.internalTrafficPolicy === null) {
    if (['NodePort', 'LoadBalancer', 'ClusterIP'].includes(spec.type)) causes.push(err.required(specPath.child('internalTrafficPolicy')));
  } else if (!['Cluster', 'Local'].includes(spec.internalTrafficPolicy)) {
    causes.push(err.notSupported(specPath.child('internalTrafficPolicy'), str(spec.internalTrafficPolicy), ['Cluster', 'Local']));
  }
  return causes;
}

/**
 * Allocated cluster IPs may not change. An update that omits them is not an error: the server carries
 * the allocated values over before storing, as kube's registry does.
 */
function validateServiceUpdate(obj: KubeObject, old: KubeObject): StatusCause[] {
  const spec = specOf(obj);
  const prev = specOf(old);
  if (spec.type === 'ExternalName' || prev.type === 'ExternalName') return [];
  if (isHeadless(spec) && isHeadless(prev)) return [];
  const next: string[] = Array.isArray(spec.clusterIPs) ? spec.clusterIPs.map(String) : spec.clusterIP ? [spec.clusterIP] : [];
  const before: string[] = Array.isArray(prev.clusterIPs) ? prev.clusterIPs.map(String) : prev.clusterIP ? [prev.clusterIP] : [];
  if (next.length === 0) return [];
  const field = path('spec', 'clusterIPs');
  const shown = { rendered: goStringSlice(next) };
  const causes: StatusCause[] = [];
  for (let i = 0; i < Math.min(next.length, before.length); i++) {
    if (next[i] !== before[i] && (next.length === before.length || i === 0)) causes.push(err.invalid(field.index(i), shown, 'may not change once set'));
  }
  return causes;
}

export const serviceRules: KindRules = {
  group: '',
  kind: 'Service',
  nameFn: nameIsDNS1035Label,
  defaults: defaultService,
  validate: validateService,
  validateUpdate: validateServiceUpdate,
};
