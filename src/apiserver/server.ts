import { mkdir, readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { errors, ApiError } from '../api/errors.js';
import { keyPrefix, objectKey, type ResourceDef } from '../api/resources.js';
import type { KubeObject, UserInfo } from '../api/types.js';
import { builtinSchemas, resolver, schemaFor } from '../api/openapi/generate.js';
import { namespaceLifecycle } from '../admission/namespace-lifecycle.js';
import { podAdmissionPlugins } from '../admission/index.js';
import { NamespaceDefaults } from '../admission/namespace-defaults.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/store.js';
import { AdmissionChain } from './admission.js';
import { Authenticator, loadTokenFile, type StaticToken } from './auth/authn.js';
import { bootstrapPolicy } from './auth/bootstrap-policy.js';
import { writeKubeconfig } from './auth/kubeconfig.js';
import { ensurePki, issueClientCert, type Pki } from './auth/pki.js';
import { ServiceAccountTokens, serveTokenRequest } from './auth/service-account-token.js';
import { RbacAuthorizer, forbiddenMessage, type RequestAttributes } from './auth/rbac.js';
import { writeFileAtomic } from './auth/atomic-file.js';
import { AGGREGATED_DISCOVERY_TYPE, aggregatedDiscovery, apiGroup, apiGroupList, apiResourceList, apiVersions } from './discovery.js';
import { parseAccept, readBody, decodeBody, sendError, sendJson, sendRaw } from './http.js';
import { respondOnSocket } from './upgrade-proxy.js';
import { OpenApiService } from './openapi-service.js';
import { ResourceRegistry } from './registry.js';
import { MetricsApi } from './metrics-api.js';
import { METRICS_RESOURCES } from './metrics-resources.js';
import { MetricsScraper } from './metrics-scraper.js';
import { NodeProxy } from './node-proxy.js';
import { requestInfo, type RequestInfo } from './request-info.js';
import { handleResource } from './resource-handler.js';
import { Storage, nowTimestamp, type SchemaSource, type TypeSchema } from './storage.js';
import { WatchCache } from './watch-cache.js';

/** The Kubernetes API level Atoll serves; kubectl picks behaviour from gitVersion. */
export const KUBERNETES_VERSION = { major: '1', minor: '32', gitVersion: 'v1.32.0-atoll' };
export const DEFAULT_PORT = 6443;

export interface ApiServerOptions {
  dataDir: string;
  port?: number;
  /** Address to listen on (default all interfaces). */
  host?: string;
  /** Extra names or addresses for the serving certificate. */
  hosts?: string[];
  /** Use this store instead of SQLite in the data dir. */
  store?: Store;
  /** tolerationSeconds of the not-ready/unreachable tolerations DefaultTolerationSeconds adds (default 300). */
  defaultTolerationSeconds?: number;
}

const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];

/**
 * The control plane's API server: HTTPS, authentication, RBAC, discovery, OpenAPI and the generic
 * storage of every served resource.
 */
export class ApiServer {
  readonly registry = new ResourceRegistry(METRICS_RESOURCES);
  readonly storage: Storage;
  readonly cache: WatchCache;
  readonly admission = new AdmissionChain();
  private readonly abort = new AbortController();
  private server?: https.Server;
  private authn?: Authenticator;
  private authz?: RbacAuthorizer;
  private readonly openapi = new OpenApiService(this.registry);
  private readonly resolve = resolver(builtinSchemas());
  private namespaces = new Map<string, KubeObject>();
  private adminCredentials?: { certPem: string; keyPem: string; token: string };
  pki?: Pki;
  /** Reaches node servers for logs, exec, attach, port-forward and nodes/proxy. */
  private nodeProxy?: NodeProxy;
  /** metrics.k8s.io, from the nodes' /metrics/resource. */
  private metrics?: { api: MetricsApi; scraper: MetricsScraper };
  /** Upgraded connections (exec, attach, port-forward) outlive their request; close() ends them. */
  private readonly upgraded = new Set<Duplex>();
  /** Signs and verifies service-account tokens; serves the serviceaccounts/token subresource. */
  serviceAccountTokens?: ServiceAccountTokens;

  private constructor(
    readonly options: ApiServerOptions,
    readonly store: Store,
  ) {
    this.cache = new WatchCache(store);
    this.storage = new Storage(store, this.schemaSource, this.admission);
  }

  static async start(options: ApiServerOptions): Promise<ApiServer> {
    const serverDir = join(options.dataDir, 'server');
    await mkdir(serverDir, { recursive: true, mode: 0o700 });
    const store = options.store ?? SqliteStore.open(join(serverDir, 'state.db'));
    const server = new ApiServer(options, store);
    try {
      await server.init();
    } catch (err) {
      await server.close();
      throw err;
    }
    return server;
  }

  get url(): string {
    const addr = this.server!.address() as AddressInfo;
    const host = this.options.host && this.options.host !== '0.0.0.0' && this.options.host !== '::' ? this.options.host : '127.0.0.1';
    return `https://${host.includes(':') ? `[${host}]` : host}:${addr.port}`;
  }

  get kubeconfigPath(): string {
    return join(this.options.dataDir, 'kubeconfig');
  }

  /** Admin credentials (client certificate in system:masters, and a static token). */
  get admin(): { certPem: string; keyPem: string; token: string; caPem: string } {
    return { ...this.adminCredentials!, caPem: this.pki!.caCertPem };
  }

  async close(): Promise<void> {
    this.abort.abort();
    this.nodeProxy?.close();
    this.metrics?.scraper.close();
    for (const socket of this.upgraded) socket.destroy();
    if (this.server) {
      await new Promise<void>((resolve) => {
        this.server!.close(() => resolve());
        this.server!.closeAllConnections();
      });
    }
    await this.store.close();
  }

  private readonly schemaSource: SchemaSource = (def: ResourceDef): TypeSchema | undefined => {
    if (def.custom) {
      const schema = this.openapi.customSchema(def);
      return schema ? { schema, resolve: this.resolve } : undefined;
    }
    const schema = schemaFor(def);
    return schema ? { schema, resolve: this.resolve } : undefined;
  };

  private async init(): Promise<void> {
    const { dataDir } = this.options;
    this.pki = await ensurePki(join(dataDir, 'pki'), { hosts: this.options.hosts ?? [] });
    const tokens = await this.adminToken(join(dataDir, 'server', 'tokens.csv'));

    if (this.store instanceof SqliteStore) this.store.compactPeriodically(this.abort.signal);
    await this.cache.start(this.abort.signal);
    const secrets = await this.cache.index(keyPrefix({ group: '', plural: 'secrets' }, 'kube-system'));
    this.namespaces = await this.cache.index(keyPrefix({ group: '', plural: 'namespaces' }));
    const rbac = {
      roles: await this.cache.index('/registry/rbac.authorization.k8s.io/roles/'),
      roleBindings: await this.cache.index('/registry/rbac.authorization.k8s.io/rolebindings/'),
      clusterRoles: await this.cache.index('/registry/rbac.authorization.k8s.io/clusterroles/'),
      clusterRoleBindings: await this.cache.index('/registry/rbac.authorization.k8s.io/clusterrolebindings/'),
    };
    const inNamespace = (map: Map<string, KubeObject>, ns: string) => [...map.values()].filter((o) => o.metadata.namespace === ns);
    this.authz = new RbacAuthorizer({
      roles: (ns) => inNamespace(rbac.roles, ns),
      roleBindings: (ns) => inNamespace(rbac.roleBindings, ns),
      clusterRoles: () => [...rbac.clusterRoles.values()],
      clusterRoleBindings: () => [...rbac.clusterRoleBindings.values()],
      clusterRole: (name) => rbac.clusterRoles.get(`/registry/rbac.authorization.k8s.io/clusterroles/${name}`),
      role: (ns, name) => rbac.roles.get(`/registry/rbac.authorization.k8s.io/roles/${ns}/${name}`),
    });
    this.authn = new Authenticator({
      staticTokens: tokens,
      secrets: { getSecret: (ns, name) => secrets.get(objectKey({ group: '', plural: 'secrets', namespaced: true }, ns, name)) },
    });
    this.admission.add(namespaceLifecycle((name) => this.namespaces.get(`/registry/core/namespaces/${name}`)));

    // Service accounts: pod admission, bound tokens, and each namespace's default account and CA ConfigMap.
    const def = (group: string, version: string, plural: string) => this.def(group, version, plural);
    for (const plugin of await podAdmissionPlugins({ cache: this.cache, storage: this.storage, def, defaultTolerationSeconds: this.options.defaultTolerationSeconds })) {
      this.admission.add(plugin);
    }
    const [serviceAccounts, pods, nodes] = await Promise.all(['serviceaccounts', 'pods', 'nodes'].map((plural) => this.cache.index(keyPrefix({ group: '', plural }))));
    const core = (plural: string, ns: string | undefined, name: string) => objectKey({ group: '', plural, namespaced: ns !== undefined }, ns, name);
    this.serviceAccountTokens = new ServiceAccountTokens({
      privateKeyPem: this.pki.saPrivateKeyPem,
      objects: {
        serviceAccount: (ns, name) => serviceAccounts.get(core('serviceaccounts', ns, name)),
        pod: (ns, name) => pods.get(core('pods', ns, name)),
        node: (name) => nodes.get(core('nodes', undefined, name)),
      },
    });
    const saTokens = this.serviceAccountTokens;
    this.authn.addTokenAuthenticator((token) => saTokens.authenticate(token));

    await this.watchCrds();
    await this.bootstrap();
    const namespaceDefaults = new NamespaceDefaults({
      storage: this.storage,
      cache: this.cache,
      defs: { namespaces: def('', 'v1', 'namespaces'), serviceAccounts: def('', 'v1', 'serviceaccounts'), configMaps: def('', 'v1', 'configmaps') },
      caPem: this.pki.caCertPem,
      onError: (err) => console.error('apiserver: namespace defaults:', err),
    });
    await namespaceDefaults.start(this.abort.signal);

    const kubeletClient = { caPem: this.pki.caCertPem, certPem: this.pki.kubeletClientCertPem, keyPem: this.pki.kubeletClientKeyPem };
    this.nodeProxy = new NodeProxy({ storage: this.storage, pods: def('', 'v1', 'pods'), nodes: def('', 'v1', 'nodes'), tls: kubeletClient });
    const scraper = new MetricsScraper({ tls: kubeletClient, signal: this.abort.signal });
    this.metrics = { scraper, api: new MetricsApi({ storage: this.storage, nodes: def('', 'v1', 'nodes'), pods: def('', 'v1', 'pods'), scraper }) };

    const admin = await issueClientCert(this.pki, { cn: 'kubernetes-admin', groups: ['system:masters'] });
    this.adminCredentials = { ...admin, token: tokens[0]!.token };

    this.server = https.createServer(
      {
        key: this.pki.servingKeyPem,
        cert: this.pki.servingCertPem,
        ca: this.pki.caCertPem,
        requestCert: true,
        rejectUnauthorized: false,
        keepAliveTimeout: 65_000,
      },
      (req, res) => void this.handle(req, res),
    );
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.handleUpgrade(req, socket, head));
    this.server.headersTimeout = 60_000;
    this.server.requestTimeout = 0; // watches and log streams are long-lived
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.options.port ?? DEFAULT_PORT, this.options.host ?? '0.0.0.0', () => resolve());
    });
    await writeKubeconfig(this.kubeconfigPath, { server: this.url, caPem: this.pki.caCertPem, user: 'admin', certPem: admin.certPem, keyPem: admin.keyPem });
  }

  /** The static token file; created with one admin token on first start. */
  private async adminToken(path: string): Promise<StaticToken[]> {
    try {
      await readFile(path);
    } catch {
      const token = randomBytes(24).toString('base64url');
      await writeFileAtomic(path, `${token},admin,admin,"system:masters"\n`, 0o600);
    }
    return loadTokenFile(path);
  }

  /** System namespaces and the default RBAC policy, created when missing. */
  private async bootstrap(): Promise<void> {
    const system: UserInfo = { name: 'system:apiserver', groups: ['system:masters'] };
    const opts = { user: system, fieldManager: 'kube-apiserver', dryRun: false, fieldValidation: 'Ignore' as const, warnings: [] };
    const ensure = async (def: ResourceDef, obj: KubeObject) => {
      const ns = obj.metadata.namespace ?? '';
      try {
        await this.storage.get(def, ns, obj.metadata.name!);
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 404)) throw err;
        await this.storage.create(def, ns, obj, opts);
      }
    };
    const nsDef = this.def('', 'v1', 'namespaces');
    for (const name of SYSTEM_NAMESPACES) await ensure(nsDef, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
    for (const obj of bootstrapPolicy()) {
      const plural = obj.kind === 'ClusterRole' ? 'clusterroles' : 'clusterrolebindings';
      await ensure(this.def('rbac.authorization.k8s.io', 'v1', plural), obj);
    }
  }

  /** Serves each CRD's resources once it is stored, and marks it Established. */
  private async watchCrds(): Promise<void> {
    const prefix = '/registry/apiextensions.k8s.io/customresourcedefinitions/';
    const crds = await this.cache.index(prefix);
    for (const [key, crd] of crds) this.registry.setCrd(crd, key);
    this.cache.onEvent((event) => {
      if (!event.key.startsWith(prefix)) return;
      this.registry.setCrd(event.type === 'DELETED' ? undefined : event.object, event.key);
      if (event.type !== 'DELETED') void this.establish(event.object);
    });
    for (const crd of crds.values()) await this.establish(crd);
  }

  private async establish(crd: KubeObject): Promise<void> {
    const status = (crd.status ?? {}) as { conditions?: { type: string; status: string }[] };
    if (crd.metadata.deletionTimestamp || status.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return;
    const spec = crd.spec as { names: object };
    const now = nowTimestamp();
    const conditions = [
      { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found', lastTransitionTime: now },
      { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted', lastTransitionTime: now },
    ];
    const def = this.def('apiextensions.k8s.io', 'v1', 'customresourcedefinitions');
    try {
      await this.storage.patch(def, '', crd.metadata.name!, 'merge', { status: { conditions, acceptedNames: spec.names, storedVersions: storedVersions(crd) } }, {
        user: { name: 'system:apiserver', groups: ['system:masters'] },
        fieldManager: 'kube-apiserver',
        dryRun: false,
        fieldValidation: 'Ignore',
        warnings: [],
        subresource: 'status',
      });
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 404)) throw err;
    }
  }

  private def(group: string, version: string, plural: string): ResourceDef {
    const def = this.registry.lookup(group, version, plural);
    if (!def) throw new Error(`resource ${plural} is not registered`);
    return def;
  }

  /** Authenticates and authorizes a request, plain or upgrade; throws 401/403 as an ApiError. */
  private admit(req: IncomingMessage): { url: URL; user: UserInfo; info: RequestInfo } {
    const url = new URL(req.url ?? '/', 'https://localhost');
    const user = this.authn!.authenticate(req);
    if (!user) throw errors.unauthorized();
    const info = requestInfo(req.method ?? 'GET', url);
    this.authorize(user, info);
    return { url, user, info };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const { url, user, info } = this.admit(req);
      if (info.resourceRequest) await this.handleResourceRequest(req, res, url, info, user);
      else await this.handleNonResource(req, res, url, info);
    } catch (err) {
      if (!(err instanceof ApiError)) console.error('apiserver: internal error:', err);
      sendError(res, err);
    }
  }

  /** Upgrade requests (WebSocket, SPDY): exec, attach and port-forward to a pod's node, or through nodes/proxy. */
  private async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    this.upgraded.add(socket);
    socket.on('close', () => this.upgraded.delete(socket));
    try {
      const { url, info } = this.admit(req);
      if (!NodeProxy.handles(info) || !this.registry.lookup(info.apiGroup, info.apiVersion, info.resource)) {
        throw errors.badRequest(`the server does not upgrade connections for ${url.pathname}`);
      }
      await this.nodeProxy!.upgrade(req, socket, head, url, info);
    } catch (err) {
      if (!(err instanceof ApiError)) console.error(`apiserver: upgrade ${req.url}: ${err instanceof Error ? err.message : String(err)}`);
      const apiErr = err instanceof ApiError ? err : errors.internal(err instanceof Error ? err.message : String(err));
      respondOnSocket(socket, apiErr.code, JSON.stringify(apiErr.toStatus()));
    }
  }

  private authorize(user: UserInfo, info: RequestInfo): void {
    const attrs: RequestAttributes = info.resourceRequest
      ? { verb: info.verb, apiGroup: info.apiGroup, resource: info.resource, subresource: info.subresource, namespace: info.namespace, name: info.name, resourceRequest: true }
      : { verb: info.verb, apiGroup: '', resource: '', path: info.path, resourceRequest: false };
    const decision = this.authz!.authorize(user, attrs);
    if (!decision.allowed) {
      throw errors.forbidden({ group: info.apiGroup, resource: info.resource, name: info.name || undefined }, forbiddenMessage(user, attrs));
    }
  }

  private async handleResourceRequest(req: IncomingMessage, res: ServerResponse, url: URL, info: RequestInfo, user: UserInfo): Promise<void> {
    const def = this.registry.lookup(info.apiGroup, info.apiVersion, info.resource);
    if (!def) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    if (!info.resource || (info.prefix === 'api') !== (info.apiGroup === '')) throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    if (def.group === 'authorization.k8s.io' || def.group === 'authentication.k8s.io') return this.review(req, res, def, user);
    const ctx = { req, res, url, info, def, user, storage: this.storage, cache: this.cache, registry: this.registry };
    if (def.plural === 'serviceaccounts' && info.subresource === 'token') return serveTokenRequest(ctx, this.serviceAccountTokens!);
    if (NodeProxy.handles(info)) return this.nodeProxy!.serve(req, res, url, info);
    if (MetricsApi.handles(def)) return this.metrics!.api.serve(ctx);
    await handleResource(ctx);
  }

  /** SelfSubjectAccessReview, SubjectAccessReview, SelfSubjectReview and TokenReview: answered, never stored. */
  private async review(req: IncomingMessage, res: ServerResponse, def: ResourceDef, user: UserInfo): Promise<void> {
    if (req.method !== 'POST') throw errors.methodNotAllowed('the server does not allow this method on the requested resource');
    const body = decodeBody(await readBody(req), req.headers['content-type']).value as KubeObject;
    if (!body || typeof body !== 'object') throw errors.badRequest('the request body must be an object');
    const out: KubeObject = { ...body, apiVersion: `${def.group}/${def.version}`, kind: def.kind, metadata: { ...(body.metadata ?? {}), creationTimestamp: null as never } };
    if (def.kind === 'SelfSubjectReview') {
      out.status = { userInfo: { username: user.name, uid: user.uid, groups: user.groups, extra: user.extra } };
      return sendJson(res, 201, out);
    }
    if (def.kind === 'TokenReview') {
      const token = (body.spec as { token?: unknown } | undefined)?.token;
      if (typeof token !== 'string' || token === '') throw errors.badRequest('token is required for TokenReview in authentication');
      const found = this.authn!.authenticateToken(token);
      out.status = found
        ? { authenticated: true, user: { username: found.name, uid: found.uid ?? '', groups: found.groups, ...(found.extra ? { extra: found.extra } : {}) } }
        : { authenticated: false };
      return sendJson(res, 201, out);
    }
    const spec = (body.spec ?? {}) as {
      resourceAttributes?: { namespace?: string; verb?: string; group?: string; resource?: string; subresource?: string; name?: string };
      nonResourceAttributes?: { path?: string; verb?: string };
      user?: string;
      groups?: string[];
    };
    const subject: UserInfo = def.kind === 'SubjectAccessReview' ? { name: spec.user ?? '', groups: spec.groups ?? [] } : user;
    const ra = spec.resourceAttributes;
    const na = spec.nonResourceAttributes;
    if (!ra && !na) {
      throw errors.invalid(def.kind, def.group, '', [{ reason: 'FieldValueRequired', message: 'Required value: exactly one of nonResourceAttributes or resourceAttributes must be specified', field: 'spec.resourceAttributes' }]);
    }
    const attrs: RequestAttributes = ra
      ? { verb: ra.verb ?? '', apiGroup: ra.group ?? '', resource: ra.resource ?? '', subresource: ra.subresource, namespace: ra.namespace, name: ra.name, resourceRequest: true }
      : { verb: na!.verb ?? '', apiGroup: '', resource: '', path: na!.path ?? '', resourceRequest: false };
    const decision = this.authz!.authorize(subject, attrs);
    out.status = decision.allowed ? { allowed: true, reason: decision.reason } : { allowed: false, reason: decision.reason };
    sendJson(res, 201, out);
  }

  private async handleNonResource(req: IncomingMessage, res: ServerResponse, url: URL, info: RequestInfo): Promise<void> {
    if (info.verb !== 'get' && info.verb !== 'list') throw errors.methodNotAllowed('the server does not allow this method on the requested resource');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const accept = parseAccept(req.headers.accept);
    switch (path) {
      case '/version':
        return sendJson(res, 200, { ...KUBERNETES_VERSION, gitCommit: '', gitTreeState: 'clean', buildDate: '', goVersion: '', compiler: 'node', platform: `${process.platform}/${process.arch}` });
      case '/healthz':
      case '/livez':
      case '/readyz':
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
        return void res.end('ok');
      case '/api':
        if (accept.aggregatedDiscovery) return sendRaw(res, 200, AGGREGATED_DISCOVERY_TYPE, JSON.stringify(aggregatedDiscovery(this.registry, true)));
        return sendJson(res, 200, apiVersions(req.headers.host ?? ''));
      case '/apis':
        if (accept.aggregatedDiscovery) return sendRaw(res, 200, AGGREGATED_DISCOVERY_TYPE, JSON.stringify(aggregatedDiscovery(this.registry, false)));
        return sendJson(res, 200, apiGroupList(this.registry));
      case '/openapi/v3':
        return sendJson(res, 200, this.openapi.index());
      case '/openapi/v2':
        throw new ApiError(404, 'NotFound', 'the server serves OpenAPI v3 only: use /openapi/v3');
    }
    if (path.startsWith('/openapi/v3/')) return sendRaw(res, 200, 'application/json', this.openapi.document(path.slice('/openapi/v3/'.length)).body);
    const parts = path.split('/').filter(Boolean);
    if (parts[0] === 'api' && parts.length === 2) {
      const g = this.registry.groups().find((x) => x.group === '');
      const v = g?.versions.find((x) => x.version === parts[1]);
      if (v) return sendJson(res, 200, apiResourceList(v.defs));
    }
    if (parts[0] === 'apis' && parts.length === 2) {
      const g = this.registry.groups().find((x) => x.group === parts[1] && x.group !== '');
      if (g) return sendJson(res, 200, apiGroup(g.group, g.versions.map((v) => v.version)));
    }
    if (parts[0] === 'apis' && parts.length === 3) {
      const g = this.registry.groups().find((x) => x.group === parts[1] && x.group !== '');
      const v = g?.versions.find((x) => x.version === parts[2]);
      if (v) return sendJson(res, 200, apiResourceList(v.defs));
    }
    throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
  }
}

function storedVersions(crd: KubeObject): string[] {
  const versions = ((crd.spec as { versions?: { name: string; storage?: boolean }[] }).versions ?? []).filter((v) => v.storage).map((v) => v.name);
  const previous = ((crd.status as { storedVersions?: string[] } | undefined)?.storedVersions ?? []);
  return [...new Set([...previous, ...versions])];
}
