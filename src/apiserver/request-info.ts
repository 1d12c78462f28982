import { errors } from '../api/errors.js';

/**
 * What a request asks for, read from its method and path the way kube-apiserver's RequestInfoFactory
 * does. Authorization and routing both work from this.
 *
 *   GET /api/v1/namespaces/ns/pods?watch=1        -> watch pods in ns
 *   POST /apis/apps/v1/namespaces/ns/deployments  -> create deployments in ns
 *   PUT /api/v1/namespaces/ns/pods/a/status       -> update pods/status "a" in ns
 *   GET /version                                  -> non-resource get
 */
export interface RequestInfo {
  resourceRequest: boolean;
  path: string;
  verb: string;
  /** "api" or "apis" for resource requests */
  prefix?: string;
  apiGroup: string;
  apiVersion: string;
  namespace: string;
  resource: string;
  subresource: string;
  name: string;
  /** Path segments after the subresource (e.g. for proxy). */
  rest: string[];
}

const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);
const WATCH_VALUES = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);

/** Go's strconv.ParseBool, which the Python client relies on when it sends `watch=True`. */
export function parseBool(value: string | null | undefined): boolean | undefined {
  if (value === null || value === undefined) return undefined;
  if (WATCH_VALUES.has(value)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(value)) return false;
  return undefined;
}

export function requestInfo(method: string, url: URL): RequestInfo {
  const path = url.pathname;
  let parts: string[];
  try {
    parts = path.split('/').filter((p) => p !== '').map(decodeURIComponent);
  } catch {
    throw errors.badRequest(`the request path is not valid percent-encoding: ${path}`);
  }
  const info: RequestInfo = {
    resourceRequest: false,
    path,
    verb: method.toLowerCase(),
    apiGroup: '',
    apiVersion: '',
    namespace: '',
    resource: '',
    subresource: '',
    name: '',
    rest: [],
  };
  const prefix = parts[0];
  if (prefix !== 'api' && prefix !== 'apis') return info;
  let i = 1;
  if (prefix === 'apis') {
    if (parts.length < 3) return info; // /apis, /apis/<group>
    info.apiGroup = parts[i++]!;
  }
  if (parts.length <= i) return info; // /api
  info.apiVersion = parts[i++]!;
  if (parts.length <= i) return info; // /api/v1, /apis/g/v
  info.prefix = prefix;
  info.resourceRequest = true;

  const segs = parts.slice(i);
  // Namespaced paths: namespaces/<ns>/<resource>...; "namespaces/<ns>" alone (and its
  // subresources like /status and /finalize) is the namespace object itself.
  if (segs[0] === 'namespaces' && segs.length >= 3 && !(segs.length === 3 && NAMESPACE_SUBRESOURCES.has(segs[2]!))) {
    info.namespace = segs[1]!;
    segs.splice(0, 2);
  }
  info.resource = segs[0] ?? '';
  info.name = segs[1] ?? '';
  info.subresource = segs[2] ?? '';
  info.rest = segs.slice(3);
  if (info.resource === 'namespaces' && info.name) info.namespace = info.name;

  switch (info.verb) {
    case 'post':
      info.verb = 'create';
      break;
    case 'get':
    case 'head':
      if (parseBool(url.searchParams.get('watch'))) info.verb = 'watch';
      else info.verb = info.name ? 'get' : 'list';
      break;
    case 'put':
      info.verb = 'update';
      break;
    case 'patch':
      info.verb = 'patch';
      break;
    case 'delete':
      info.verb = info.name ? 'delete' : 'deletecollection';
      break;
  }
  // exec/attach/portforward are "create" in RBAC even when they arrive as GET upgrades.
  if (['exec', 'attach', 'portforward', 'proxy'].includes(info.subresource) && info.verb === 'get') {
    info.verb = info.subresource === 'proxy' ? 'get' : 'create';
  }
  return info;
}
