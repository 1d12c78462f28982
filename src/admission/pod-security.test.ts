import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ApiError } from '../api/errors.js';
import type { KubeObject } from '../api/types.js';
import { namespacePolicy, podSecurity } from './pod-security.js';
import { describeViolations, evaluatePod, type Level } from './pod-security-policy.js';
import type { PodSpec } from './pod-request.js';
import { pod, podRequest, startTestServer, type TestServer } from './testing.js';

const RESTRICTED_CONTAINER = {
  name: 'c',
  image: 'i',
  securityContext: { allowPrivilegeEscalation: false, runAsNonRoot: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } },
};

const detail = (level: Level, spec: Record<string, unknown>, annotations?: Record<string, string>) =>
  describeViolations(evaluatePod(level, { annotations }, { containers: [{ name: 'c' }], ...spec } as PodSpec));

describe('PodSecurity', () => {
  describe('policy checks', () => {
    it('passes a minimal pod at baseline and a hardened one at restricted', () => {
      assert.equal(detail('baseline', {}), '');
      assert.equal(detail('restricted', { containers: [RESTRICTED_CONTAINER] }), '');
      assert.equal(detail('privileged', { hostPID: true }), '');
    });

    it('words each baseline violation as kube does', () => {
      const cases: [Record<string, unknown>, string][] = [
        [{ securityContext: { windowsOptions: { hostProcess: true } } }, 'hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)'],
        [{ hostNetwork: true, hostPID: true, hostIPC: true }, 'host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)'],
        [{ containers: [{ name: 'a', securityContext: { privileged: true } }, { name: 'b', securityContext: { privileged: true } }] }, 'privileged (containers "a", "b" must not set securityContext.privileged=true)'],
        [{ containers: [{ name: 'c', securityContext: { capabilities: { add: ['NET_ADMIN', 'CHOWN', 'SYS_ADMIN'] } } }] }, 'non-default capabilities (container "c" must not include "NET_ADMIN", "SYS_ADMIN" in securityContext.capabilities.add)'],
        [{ volumes: [{ name: 'host', hostPath: { path: '/' } }] }, 'hostPath volumes (volume "host")'],
        [{ containers: [{ name: 'c', ports: [{ containerPort: 80, hostPort: 80 }, { containerPort: 443, hostPort: 8443 }] }] }, 'hostPort (container "c" uses hostPorts 80, 8443)'],
        [{ securityContext: { appArmorProfile: { type: 'Unconfined' } } }, 'forbidden AppArmor profile (pod must not set AppArmor profile type to "Unconfined")'],
        [{ containers: [{ name: 'c', securityContext: { seLinuxOptions: { type: 'spc_t', user: 'root' } } }] }, 'seLinuxOptions (container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set)'],
        [{ containers: [{ name: 'c', securityContext: { procMount: 'Unmasked' } }] }, 'procMount (container "c" must not set securityContext.procMount to "Unmasked")'],
        [{ securityContext: { seccompProfile: { type: 'Unconfined' } } }, 'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'],
        [{ securityContext: { sysctls: [{ name: 'net.ipv4.tcp_syncookies', value: '1' }, { name: 'kernel.msgmax', value: '1' }] } }, 'forbidden sysctls (kernel.msgmax)'],
      ];
      for (const [spec, expected] of cases) assert.equal(detail('baseline', spec), expected);
      assert.equal(
        detail('baseline', {}, { 'container.apparmor.security.beta.kubernetes.io/c': 'unconfined', 'container.apparmor.security.beta.kubernetes.io/d': 'localhost/x' }),
        'forbidden AppArmor profile (annotations must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/c="unconfined"")',
      );
    });

    it('words the restricted violations as kube does, in its order', () => {
      assert.equal(
        detail('restricted', {}),
        'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), ' +
          'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), ' +
          'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), ' +
          'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")',
      );
      const hardened = RESTRICTED_CONTAINER.securityContext;
      assert.equal(
        detail('restricted', {
          securityContext: { runAsUser: 0, runAsNonRoot: false },
          containers: [{ name: 'c', securityContext: { ...hardened, runAsNonRoot: undefined, capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE', 'NET_RAW'] } } }],
          volumes: [{ name: 'data', nfs: { server: 's', path: '/' } }, { name: 'cfg', configMap: { name: 'x' } }],
        }),
        'unrestricted capabilities (container "c" must not include "NET_RAW" in securityContext.capabilities.add), ' +
          'restricted volume types (volume "data" uses restricted volume type "nfs"), ' +
          'runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false), ' +
          'runAsUser=0 (pod must not set runAsUser=0)',
      );
      assert.equal(detail('restricted', { containers: [RESTRICTED_CONTAINER], volumes: [{ name: 'h', hostPath: { path: '/' } }] }), 'restricted volume types (volume "h" uses restricted volume type "hostPath")');
    });

    it('reads namespace labels: levels, versions, the enforce-implied warn level and bad values', () => {
      assert.deepEqual(namespacePolicy(), { enforce: { level: 'privileged', version: 'latest' }, audit: { level: 'privileged', version: 'latest' }, warn: { level: 'privileged', version: 'latest' } });
      const p = namespacePolicy({ 'pod-security.kubernetes.io/enforce': 'baseline', 'pod-security.kubernetes.io/enforce-version': 'v1.29' });
      assert.deepEqual(p.enforce, { level: 'baseline', version: 'v1.29' });
      assert.deepEqual(p.warn, { level: 'baseline', version: 'v1.29' });
      assert.deepEqual(namespacePolicy({ 'pod-security.kubernetes.io/warn': 'strict' }).warn, { level: 'restricted', version: 'latest' });
      assert.deepEqual(namespacePolicy({ 'pod-security.kubernetes.io/enforce': 'baseline', 'pod-security.kubernetes.io/warn': 'privileged' }).warn.level, 'privileged');
    });
  });

  describe('admission plugin', () => {
    const namespaces: Record<string, KubeObject> = {
      default: { metadata: { name: 'default', labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } },
      open: { metadata: { name: 'open' } },
      watched: { metadata: { name: 'watched', labels: { 'pod-security.kubernetes.io/warn': 'baseline' } } },
    };
    const plugin = podSecurity((name) => namespaces[name]);

    it('refuses a violating pod on create and on a significant update', () => {
      assert.throws(() => plugin.validate!(podRequest(pod('p'))), (err: ApiError) => err.code === 403 && err.message.startsWith('pods "p" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false'));
      const old = pod('p', { containers: [RESTRICTED_CONTAINER] });
      const changed = pod('p', { containers: [{ ...RESTRICTED_CONTAINER, image: 'j', securityContext: { privileged: true } }] });
      assert.throws(() => plugin.validate!(podRequest(changed, 'UPDATE', { oldObject: old })), /violates PodSecurity/);
    });

    it('lets through insignificant updates, status writes and pods in unlabelled namespaces', () => {
      const violating = pod('p');
      plugin.validate!(podRequest({ ...violating, metadata: { ...violating.metadata, labels: { a: 'b' } } }, 'UPDATE', { oldObject: violating }));
      plugin.validate!(podRequest(violating, 'UPDATE', { subresource: 'status', oldObject: violating }));
      plugin.validate!(podRequest(pod('p', { hostPID: true }, { namespace: 'open' })));
    });

    it('warns instead of refusing at the warn level', () => {
      const req = podRequest(pod('p', { hostPID: true }, { namespace: 'watched' }));
      plugin.validate!(req);
      assert.deepEqual(req.warnings, ['would violate PodSecurity "baseline:latest": host namespaces (hostPID=true)']);
    });
  });

  describe('through the API server', () => {
    let t: TestServer;
    const ns = (name: string, labels: Record<string, string>) => t.api.request('POST', '/api/v1/namespaces', { body: { metadata: { name, labels } } });
    const waitForAccount = async (namespace: string) => {
      for (let i = 0; i < 200; i++) {
        if ((await t.api.request('GET', `/api/v1/namespaces/${namespace}/serviceaccounts/default`)).status === 200) return;
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.fail(`no default account in ${namespace}`);
    };

    before(async () => {
      t = await startTestServer();
      assert.equal((await ns('base', { 'pod-security.kubernetes.io/enforce': 'baseline' })).status, 201);
      assert.equal((await ns('strict', { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'latest' })).status, 201);
      assert.equal((await ns('warned', { 'pod-security.kubernetes.io/warn': 'restricted' })).status, 201);
      for (const name of ['base', 'strict', 'warned']) await waitForAccount(name);
    });
    after(async () => {
      await t?.close();
    });

    it('refuses baseline violations with 403 and admits compliant pods', async () => {
      const r = await t.api.request('POST', '/api/v1/namespaces/base/pods', { body: pod('root', { hostNetwork: true, containers: [{ name: 'c', image: 'i', securityContext: { privileged: true } }] }) });
      assert.equal(r.status, 403, r.body);
      assert.equal(
        r.json<{ message: string }>().message,
        'pods "root" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), privileged (container "c" must not set securityContext.privileged=true)',
      );
      assert.equal((await t.api.request('POST', '/api/v1/namespaces/base/pods', { body: pod('fine') })).status, 201);
    });

    it('refuses restricted violations, and admits a hardened pod with its token volume', async () => {
      const r = await t.api.request('POST', '/api/v1/namespaces/strict/pods', { body: pod('loose') });
      assert.equal(r.status, 403);
      assert.equal(
        r.json<{ message: string }>().message,
        'pods "loose" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), ' +
          'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), ' +
          'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")',
      );
      const ok = await t.api.request('POST', '/api/v1/namespaces/strict/pods', { body: pod('tight', { containers: [RESTRICTED_CONTAINER] }) });
      assert.equal(ok.status, 201, ok.body);
      assert.ok(ok.json<{ spec: { volumes: { projected?: unknown }[] } }>().spec.volumes[0]!.projected);
    });

    it('answers the warn level with Warning headers for pods and workload templates', async () => {
      const r = await t.api.request('POST', '/api/v1/namespaces/warned/pods', { body: pod('lax') });
      assert.equal(r.status, 201);
      assert.match(String(r.headers['warning']), /^299 - "would violate PodSecurity \\?"restricted:latest\\?": allowPrivilegeEscalation != false/);
      const deployment = {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web' },
        spec: { selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { hostIPC: true, containers: [RESTRICTED_CONTAINER] } } },
      };
      const d = await t.api.request('POST', '/apis/apps/v1/namespaces/warned/deployments', { body: deployment });
      assert.equal(d.status, 201, d.body);
      assert.match(String(d.headers['warning']), /host namespaces \(hostIPC=true\)/);
      const enforced = await t.api.request('POST', '/apis/apps/v1/namespaces/strict/deployments', { body: { ...deployment, metadata: { name: 'web2' } } });
      assert.equal(enforced.status, 201, 'workloads are only warned about');
      assert.match(String(enforced.headers['warning']), /would violate PodSecurity/);
    });
  });
});
