import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject } from '../../api/types.js';
import { CONTAINER_NAME_LABEL, POD_UID_LABEL, RESTART_COUNT_ANNOTATION, TERMINATION_GRACE_ANNOTATION, type NodeFacts } from '../contracts.js';
import { containerConfig, containerResources, cpuQuota, cpuShares, dnsConfig, oomScoreAdj, sandboxConfig } from './cri-config.js';
import { TERMINATION_LOG_FILE_ANNOTATION } from './observed.js';
import type { Container, PodSpec } from './spec.js';

const NODE: NodeFacts = { nodeName: 'n1', hostIP: '192.168.5.2', allocatable: { cpu: '2', memory: '1000Mi' } };

function pod(spec: Partial<PodSpec>, extra: Partial<KubeObject> = {}): KubeObject {
  return { metadata: { name: 'web', namespace: 'shop', uid: 'u-1', labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'img' }], ...spec }, ...extra };
}

describe('sandboxConfig', () => {
  it('names, labels and places the sandbox as the kubelet does', () => {
    const config = sandboxConfig({ pod: pod({ containers: [{ name: 'c', ports: [{ containerPort: 80, hostPort: 8080 }] }] }), node: NODE, logRoot: '/var/log/pods', attempt: 2 });
    assert.deepEqual(config.metadata, { name: 'web', namespace: 'shop', uid: 'u-1', attempt: 2 });
    assert.equal(config.hostname, 'web');
    assert.equal(config.log_directory, '/var/log/pods/shop_web_u-1');
    assert.equal(config.labels?.[POD_UID_LABEL], 'u-1');
    assert.equal(config.labels?.app, 'web');
    assert.deepEqual(config.port_mappings, [{ protocol: 'TCP', container_port: 80, host_port: 8080, host_ip: '' }]);
    assert.deepEqual(config.linux?.security_context?.namespace_options, { network: 'POD', pid: 'CONTAINER', ipc: 'POD' });
    assert.equal(config.dns_config, undefined, 'no cluster DNS: the node resolver');
  });

  it('shares the node network and uses its name for host-network pods', () => {
    const config = sandboxConfig({ pod: pod({ hostNetwork: true, hostPID: true }), node: NODE, logRoot: '/l', attempt: 0 });
    assert.equal(config.linux?.security_context?.namespace_options?.network, 'NODE');
    assert.equal(config.linux?.security_context?.namespace_options?.pid, 'NODE');
    assert.equal(config.hostname, 'n1');
  });

  it('cuts a long pod name to a DNS label for the hostname', () => {
    const long = { ...pod({}), metadata: { name: `${'a'.repeat(62)}-bbbb`, namespace: 'n', uid: 'u' } };
    assert.equal(sandboxConfig({ pod: long, node: NODE, logRoot: '/l', attempt: 0 }).hostname, 'a'.repeat(62));
  });
});

describe('dnsConfig', () => {
  const cluster = { servers: ['10.96.0.10'], searches: [], clusterDomain: 'cluster.local' };
  it('points ClusterFirst pods at cluster DNS with namespace searches and ndots:5', () => {
    assert.deepEqual(dnsConfig(pod({}), cluster), {
      servers: ['10.96.0.10'],
      searches: ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local'],
      options: ['ndots:5'],
    });
  });
  it('gives host-network pods the node resolver unless ClusterFirstWithHostNet', () => {
    assert.equal(dnsConfig(pod({ hostNetwork: true }), cluster), undefined);
    assert.deepEqual(dnsConfig(pod({ hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' }), cluster)?.servers, ['10.96.0.10']);
  });
  it('takes only dnsConfig under None and merges its options', () => {
    const spec = { dnsPolicy: 'None' as const, dnsConfig: { nameservers: ['1.1.1.1'], searches: ['x.example'], options: [{ name: 'ndots', value: '2' }, { name: 'edns0' }] } };
    assert.deepEqual(dnsConfig(pod(spec), cluster), { servers: ['1.1.1.1'], searches: ['x.example'], options: ['ndots:2', 'edns0'] });
    const merged = dnsConfig(pod({ dnsConfig: { options: [{ name: 'ndots', value: '1' }] } }), cluster);
    assert.deepEqual(merged?.options, ['ndots:1']);
  });
});

describe('container resources', () => {
  it('converts cpu as kubelet: shares from requests (min 2), quota over a 100 ms period from limits', () => {
    assert.equal(cpuShares(0), 2);
    assert.equal(cpuShares(1), 2);
    assert.equal(cpuShares(250), 256);
    assert.equal(cpuShares(1000), 1024);
    assert.equal(cpuQuota(500), 50_000);
    assert.equal(cpuQuota(5), 1_000, 'never below the 1 ms minimum');
    assert.equal(cpuQuota(0), 0);
  });

  it('scores OOM by QoS class', () => {
    const burstable = pod({ containers: [{ name: 'c', resources: { requests: { memory: '500Mi' } } }] });
    assert.equal(oomScoreAdj(burstable, podContainer(burstable), NODE), 500);
    const tiny = pod({ containers: [{ name: 'c', resources: { requests: { memory: '1Ki' } } }] });
    assert.equal(oomScoreAdj(tiny, podContainer(tiny), NODE), 999, 'Burstable stays below BestEffort');
    const guaranteed = pod({ containers: [{ name: 'c', resources: { limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '1', memory: '1Gi' } } }] });
    assert.equal(oomScoreAdj(guaranteed, podContainer(guaranteed), NODE), -997);
    assert.equal(oomScoreAdj(pod({}), podContainer(pod({})), NODE), 1000);
  });

  it('fills the CRI resources from requests and limits', () => {
    const p = pod({ containers: [{ name: 'c', resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '500m', memory: '128Mi' } } }] });
    assert.deepEqual(containerResources(p, podContainer(p), NODE), {
      cpu_shares: 102,
      oom_score_adj: 1000 - Math.floor((1000 * 64) / 1000),
      cpu_period: 100_000,
      cpu_quota: 50_000,
      memory_limit_in_bytes: 128 * 1024 * 1024,
    });
  });
});

function podContainer(p: KubeObject): Container {
  return (p.spec as PodSpec).containers[0]!;
}

describe('containerConfig', () => {
  it('carries the label and annotation contract, log path, command, mounts and security', () => {
    const container: Container = {
      name: 'c',
      image: 'img:1',
      command: ['sh'],
      args: ['-c', 'echo'],
      workingDir: '/w',
      tty: true,
      securityContext: { runAsUser: 1000, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { add: ['NET_ADMIN'], drop: ['ALL'] } },
    };
    const p = pod({ containers: [container], terminationGracePeriodSeconds: 7, securityContext: { runAsGroup: 3000, supplementalGroups: [5] } });
    const config = containerConfig({
      pod: p,
      container,
      init: false,
      restartCount: 3,
      imageRef: 'sha256:abc',
      envs: [{ key: 'A', value: '1' }],
      mounts: [{ container_path: '/data', host_path: '/pods/u-1/volumes/data', readonly: true }],
      terminationLogFile: '/pods/u-1/containers/c/3',
      node: NODE,
    });
    assert.deepEqual(config.metadata, { name: 'c', attempt: 3 });
    assert.deepEqual(config.image, { image: 'sha256:abc', user_specified_image: 'img:1' });
    assert.deepEqual(config.command, ['sh']);
    assert.deepEqual(config.args, ['-c', 'echo']);
    assert.equal(config.working_dir, '/w');
    assert.equal(config.log_path, 'c/3.log');
    assert.equal(config.tty, true);
    assert.equal(config.labels?.[CONTAINER_NAME_LABEL], 'c');
    assert.equal(config.annotations?.[RESTART_COUNT_ANNOTATION], '3');
    assert.equal(config.annotations?.[TERMINATION_GRACE_ANNOTATION], '7');
    assert.equal(config.annotations?.[TERMINATION_LOG_FILE_ANNOTATION], '/pods/u-1/containers/c/3');
    assert.deepEqual(
      config.mounts?.map((m) => [m.container_path, m.host_path]),
      [
        ['/data', '/pods/u-1/volumes/data'],
        ['/dev/termination-log', '/pods/u-1/containers/c/3'],
      ],
    );
    const sc = config.linux?.security_context;
    assert.deepEqual(sc?.run_as_user, { value: 1000 });
    assert.deepEqual(sc?.run_as_group, { value: 3000 });
    assert.deepEqual(sc?.supplemental_groups, [5]);
    assert.equal(sc?.readonly_rootfs, true);
    assert.equal(sc?.no_new_privs, true);
    assert.deepEqual(sc?.capabilities, { add_capabilities: ['NET_ADMIN'], drop_capabilities: ['ALL'] });
    assert.deepEqual(sc?.seccomp, { profile_type: 'RuntimeDefault' });
  });
});
