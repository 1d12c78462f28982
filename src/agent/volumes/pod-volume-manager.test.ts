import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, open, readdir, readFile, readlink, realpath, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { tokenVolume } from '../../admission/service-account.js';
import type { KubeObject } from '../../api/types.js';
import { ContainerConfigError, type NodeFacts } from '../contracts.js';
import { volumeKind } from './kind.js';
import { PodVolumeManager } from './pod-volume-manager.js';
import { MemorySource } from './testing.js';
import { unmountUnder } from './tmpfs.js';
import type { Volume } from './types.js';

const root = await realpath(await mkdtemp(join(tmpdir(), 'atoll-volumes-')));
const podsDir = join(root, 'pods');
after(async () => {
  await unmountUnder(root);
  await rm(root, { recursive: true, force: true });
});

const node: NodeFacts = { nodeName: 'edge-1', hostIP: '10.0.0.5', allocatable: { cpu: '2', memory: '256Mi' } };
let clock = Date.parse('2030-01-01T00:00:00Z');
const source = new MemorySource(() => clock);
const volumes = new PodVolumeManager(podsDir, source, node, { now: () => clock });

let podCount = 0;
function makePod(vols: unknown[], containers: unknown[] = [{ name: 'app' }], spec: Record<string, unknown> = {}): KubeObject {
  const uid = `uid-${++podCount}`;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `pod-${podCount}`, namespace: 'shop', uid, labels: { app: 'web' }, annotations: { note: 'a "quoted" value' } },
    spec: { nodeName: 'edge-1', serviceAccountName: 'default', volumes: vols, containers, ...spec },
  };
}

/** The directory of the pod's volume `name`, found by its kind in the pod's spec. */
function dirOf(pod: KubeObject, name: string): string {
  const volume = (pod.spec as { volumes: Volume[] }).volumes.find((v) => v.name === name);
  const kind = volume && volumeKind(volume);
  assert.ok(kind && kind !== 'hostPath', `pod has no volume ${name} with a directory`);
  return volumes.volumeDir(pod.metadata.uid!, kind, name);
}

/** The filesystem type and superblock options mounted exactly at `path`, from this process's mountinfo. */
async function mountAt(path: string): Promise<{ fstype: string; options: string } | undefined> {
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    const fields = line.split(' ');
    if (fields[4] !== path) continue;
    const dash = fields.indexOf('-');
    return { fstype: fields[dash + 1]!, options: fields[dash + 3]! };
  }
  return undefined;
}

async function mountsBelow(path: string): Promise<string[]> {
  return (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined && (p === path || p.startsWith(path + '/')));
}

async function setUpFails(pod: KubeObject, message: string): Promise<void> {
  await assert.rejects(volumes.setUp(pod), (err: unknown) => {
    assert.ok(err instanceof ContainerConfigError, String(err));
    assert.equal(err.message, message);
    return true;
  });
}

const tsDirs = async (dir: string) => (await readdir(dir)).filter((e) => /^\.\.\d{4}_/.test(e));

describe('PodVolumeManager', () => {
  describe('configMap', () => {
    source.putConfigMap('shop', 'cfg', { 'app.conf': 'port=80\n', mode: 'prod' }, { 'logo.bin': Buffer.from([0, 1, 2, 255]) });

    it('projects every key, binaryData included, with defaultMode, on disk', async () => {
      const pod = makePod([{ name: 'cfg', configMap: { name: 'cfg', defaultMode: 0o400 } }]);
      await volumes.setUp(pod);
      const dir = dirOf(pod, 'cfg');
      assert.equal(await readFile(join(dir, 'app.conf'), 'utf8'), 'port=80\n');
      assert.deepEqual(await readFile(join(dir, 'logo.bin')), Buffer.from([0, 1, 2, 255]));
      assert.equal((await stat(join(dir, 'mode'))).mode & 0o777, 0o400);
      assert.equal(await readlink(join(dir, 'mode')), '..data/mode');
      assert.equal(await mountAt(dir), undefined, 'configMap volumes stay on disk');
    });

    it('projects only the listed items, at their paths and modes', async () => {
      const pod = makePod([{ name: 'cfg', configMap: { name: 'cfg', items: [{ key: 'app.conf', path: 'etc/app/app.conf', mode: 0o600 }, { key: 'mode', path: 'mode.txt' }] } }]);
      await volumes.setUp(pod);
      const dir = dirOf(pod, 'cfg');
      assert.deepEqual((await readdir(dir)).filter((e) => !e.startsWith('..')).sort(), ['etc', 'mode.txt']);
      assert.equal(await readFile(join(dir, 'etc/app/app.conf'), 'utf8'), 'port=80\n');
      assert.equal((await stat(join(dir, 'etc/app/app.conf'))).mode & 0o777, 0o600);
      assert.equal((await stat(join(dir, 'mode.txt'))).mode & 0o777, 0o644);
    });

    it('sets up an empty volume for a missing optional configMap', async () => {
      const pod = makePod([{ name: 'cfg', configMap: { name: 'absent', optional: true, items: [{ key: 'k', path: 'k' }] } }]);
      await volumes.setUp(pod);
      assert.deepEqual((await readdir(dirOf(pod, 'cfg'))).filter((e) => !/^\.\.\d/.test(e)), ['..data']);
    });

    it('fails on a missing configMap or key with the kubelet messages', async () => {
      await setUpFails(makePod([{ name: 'cfg', configMap: { name: 'absent' } }]), 'MountVolume.SetUp failed for volume "cfg" : configmap "absent" not found');
      await setUpFails(
        makePod([{ name: 'cfg', configMap: { name: 'cfg', items: [{ key: 'nope', path: 'x' }] } }]),
        'MountVolume.SetUp failed for volume "cfg" : configmap references non-existent config key: nope',
      );
    });

    it('updates atomically on refresh, and only when the content changed', async () => {
      source.putConfigMap('shop', 'live', { a: 'one', b: 'bee' });
      const pod = makePod([{ name: 'live', configMap: { name: 'live' } }]);
      await volumes.setUp(pod);
      const dir = dirOf(pod, 'live');
      const first = await readlink(join(dir, '..data'));

      await volumes.refresh(pod);
      assert.equal(await readlink(join(dir, '..data')), first, 'an unchanged configMap is not rewritten');

      source.putConfigMap('shop', 'live', { a: 'two', c: 'sea' });
      await volumes.refresh(pod);
      const second = await readlink(join(dir, '..data'));
      assert.notEqual(second, first);
      assert.deepEqual(await tsDirs(dir), [second], 'the old timestamped dir is gone');
      assert.equal(await readFile(join(dir, 'a'), 'utf8'), 'two');
      assert.equal(await readFile(join(dir, 'c'), 'utf8'), 'sea');
      await assert.rejects(lstat(join(dir, 'b')), { code: 'ENOENT' });
    });

    it('keeps the previous content when an update is bad', async () => {
      source.putConfigMap('shop', 'keyed', { k: 'v1' });
      const pod = makePod([{ name: 'keyed', configMap: { name: 'keyed', items: [{ key: 'k', path: 'k' }] } }]);
      await volumes.setUp(pod);
      const dir = dirOf(pod, 'keyed');
      const before = await readlink(join(dir, '..data'));
      source.putConfigMap('shop', 'keyed', { other: 'x' });
      await assert.rejects(volumes.refresh(pod), new ContainerConfigError('MountVolume.SetUp failed for volume "keyed" : configmap references non-existent config key: k'));
      source.deleteConfigMap('shop', 'keyed');
      await assert.rejects(volumes.refresh(pod), /configmap "keyed" not found/);
      assert.equal(await readlink(join(dir, '..data')), before);
      assert.deepEqual(await tsDirs(dir), [before]);
      assert.equal(await readFile(join(dir, 'k'), 'utf8'), 'v1');
    });

    it('does not create volumes on refresh before setUp', async () => {
      const pod = makePod([{ name: 'cfg', configMap: { name: 'cfg' } }]);
      await volumes.refresh(pod);
      await assert.rejects(stat(join(podsDir, pod.metadata.uid!)), { code: 'ENOENT' });
    });
  });

  describe('secret', () => {
    source.putSecret('shop', 'creds', { user: 'admin', key: Buffer.from([0xde, 0xad, 0xbe, 0xef]) });

    it('decodes the data onto a tmpfs sized to the pod’s memory limit', async () => {
      const pod = makePod([{ name: 'creds', secret: { secretName: 'creds', items: [{ key: 'key', path: 'tls/key', mode: 0o400 }] } }], [
        { name: 'app', resources: { limits: { memory: '64Mi' } } },
      ]);
      await volumes.setUp(pod);
      const dir = dirOf(pod, 'creds');
      assert.deepEqual(await readFile(join(dir, 'tls/key')), Buffer.from([0xde, 0xad, 0xbe, 0xef]));
      assert.equal((await stat(join(dir, 'tls/key'))).mode & 0o777, 0o400);
      const mount = await mountAt(dir);
      assert.equal(mount?.fstype, 'tmpfs');
      assert.match(mount!.options, /(^|,)size=65536k(,|$)/);
    });

    it('caps the tmpfs at node allocatable when a container has no memory limit', async () => {
      const pod = makePod([{ name: 'creds', secret: { secretName: 'creds' } }]);
      await volumes.setUp(pod);
      assert.match((await mountAt(dirOf(pod, 'creds')))!.options, /(^|,)size=262144k(,|$)/);
      await volumes.setUp(pod);
      assert.equal((await mountsBelow(dirOf(pod, 'creds'))).length, 1, 'a second setUp does not stack another tmpfs');
    });

    it('fails on a missing secret or key, unless optional', async () => {
      await setUpFails(makePod([{ name: 's', secret: { secretName: 'absent' } }]), 'MountVolume.SetUp failed for volume "s" : secret "absent" not found');
      await setUpFails(
        makePod([{ name: 's', secret: { secretName: 'creds', items: [{ key: 'nope', path: 'x' }] } }]),
        'MountVolume.SetUp failed for volume "s" : references non-existent secret key: nope',
      );
      await volumes.setUp(makePod([{ name: 's', secret: { secretName: 'creds', optional: true, items: [{ key: 'nope', path: 'x' }] } }]));
    });
  });

  describe('downwardAPI', () => {
    it('writes fields and resources, maps quoted as the kubelet does', async () => {
      const pod = makePod(
        [
          {
            name: 'info',
            downwardAPI: {
              defaultMode: 0o444,
              items: [
                { path: 'name', fieldRef: { fieldPath: 'metadata.name' } },
                { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
                { path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } },
                { path: 'cpu_limit', resourceFieldRef: { containerName: 'app', resource: 'limits.cpu', divisor: '1m' } },
                { path: 'mem_limit', resourceFieldRef: { containerName: 'app', resource: 'limits.memory', divisor: '1Mi' }, mode: 0o400 },
              ],
            },
          },
        ],
        [{ name: 'app', resources: { limits: { cpu: '500m' } } }],
      );
      await volumes.setUp(pod);
      const dir = dirOf(pod, 'info');
      const read = (f: string) => readFile(join(dir, f), 'utf8');
      assert.equal(await read('name'), pod.metadata.name);
      assert.equal(await read('labels'), 'app="web"');
      assert.equal(await read('annotations'), 'note="a \\"quoted\\" value"');
      assert.equal(await read('cpu_limit'), '500');
      assert.equal(await read('mem_limit'), '256', 'an unset limit is the node allocatable');
      assert.equal((await stat(join(dir, 'name'))).mode & 0o777, 0o444);
      assert.equal((await stat(join(dir, 'mem_limit'))).mode & 0o777, 0o400);
    });

    it('reports every item it cannot resolve', async () => {
      const pod = makePod([
        {
          name: 'info',
          downwardAPI: { items: [{ path: 'a', fieldRef: { fieldPath: 'spec.nodeName2' } }, { path: 'b', resourceFieldRef: { containerName: 'ghost', resource: 'limits.cpu' } }] },
        },
      ]);
      await setUpFails(pod, 'MountVolume.SetUp failed for volume "info" : [field label not supported: spec.nodeName2, container ghost not found]');
    });
  });

  describe('projected', () => {
    source.putConfigMap('shop', 'kube-root-ca.crt', { 'ca.crt': '-----BEGIN CERTIFICATE-----\n' });

    it('sets up the service-account volume admission adds, and refreshes its token at 80% of its life', async () => {
      const pod = makePod([tokenVolume('kube-api-access-abcde')]);
      const issuedBefore = source.issued.length;
      await volumes.setUp(pod);
      const dir = dirOf(pod, 'kube-api-access-abcde');
      assert.equal((await mountAt(dir))?.fstype, 'tmpfs');
      assert.equal(await readFile(join(dir, 'token'), 'utf8'), source.issued.at(-1)!.token);
      assert.equal(await readFile(join(dir, 'ca.crt'), 'utf8'), '-----BEGIN CERTIFICATE-----\n');
      assert.equal(await readFile(join(dir, 'namespace'), 'utf8'), 'shop');
      assert.equal((await stat(join(dir, 'token'))).mode & 0o777, 0o644);
      assert.deepEqual(source.issued.slice(issuedBefore), [{ pod: pod.metadata.uid, serviceAccount: 'default', audiences: [], expirationSeconds: 3607, token: source.issued.at(-1)!.token }]);
      const firstToken = source.issued.at(-1)!.token;
      const firstData = await readlink(join(dir, '..data'));

      clock += 3607 * 1000 * 0.5;
      await volumes.refresh(pod);
      assert.equal(source.issued.length, issuedBefore + 1, 'a token at half its life is kept');
      assert.equal(await readlink(join(dir, '..data')), firstData);

      clock += 3607 * 1000 * 0.31;
      await volumes.refresh(pod);
      assert.equal(source.issued.length, issuedBefore + 2);
      const secondToken = source.issued.at(-1)!.token;
      assert.notEqual(secondToken, firstToken);
      assert.equal(await readFile(join(dir, 'token'), 'utf8'), secondToken);
      assert.deepEqual(await tsDirs(dir), [await readlink(join(dir, '..data'))]);
    });

    it('asks for the audience and lifetime the projection names, for the pod’s account', async () => {
      const pod = makePod(
        [{ name: 'vault', projected: { sources: [{ serviceAccountToken: { audience: 'vault', expirationSeconds: 600, path: 'vault-token' } }, { secret: { name: 'creds', items: [{ key: 'user', path: 'user' }] } }] } }],
        undefined,
        { serviceAccountName: 'builder', securityContext: { fsGroup: 4321 } },
      );
      await volumes.setUp(pod);
      assert.deepEqual(source.issued.at(-1), { pod: pod.metadata.uid, serviceAccount: 'builder', audiences: ['vault'], expirationSeconds: 600, token: source.issued.at(-1)!.token });
      const dir = dirOf(pod, 'vault');
      const token = await stat(join(dir, 'vault-token'));
      assert.equal(token.gid, 4321);
      assert.equal(token.mode & 0o777, 0o640, 'a token with an fsGroup is 0600 plus group read');
      assert.equal(await readFile(join(dir, 'user'), 'utf8'), 'admin');
    });

    it('reports every source that fails', async () => {
      const pod = makePod([{ name: 'p', projected: { sources: [{ configMap: { name: 'absent' } }, { secret: { name: 'absent' } }, { clusterTrustBundle: { name: 'x', path: 'b' } }] } }]);
      await setUpFails(pod, 'MountVolume.SetUp failed for volume "p" : [configmap "absent" not found, secret "absent" not found, clusterTrustBundle projections are not supported by this node]');
    });
  });

  describe('emptyDir and hostPath', () => {
    it('makes a world-writable directory, or a tmpfs of sizeLimit for medium Memory', async () => {
      const pod = makePod([{ name: 'scratch', emptyDir: {} }, { name: 'ram', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }]);
      await volumes.setUp(pod);
      const scratch = await stat(dirOf(pod, 'scratch'));
      assert.ok(scratch.isDirectory());
      assert.equal(scratch.mode & 0o777, 0o777);
      assert.equal(await mountAt(dirOf(pod, 'scratch')), undefined);
      const ram = await mountAt(dirOf(pod, 'ram'));
      assert.equal(ram?.fstype, 'tmpfs');
      assert.match(ram!.options, /(^|,)size=1024k(,|$)/);
    });

    it('gives an emptyDir to the pod’s fsGroup', async () => {
      const pod = makePod([{ name: 'scratch', emptyDir: {} }, { name: 'cfg', configMap: { name: 'cfg', defaultMode: 0o400 } }], undefined, { securityContext: { fsGroup: 4321 } });
      await volumes.setUp(pod);
      const scratch = await stat(dirOf(pod, 'scratch'));
      assert.equal(scratch.gid, 4321);
      assert.equal(scratch.mode & 0o2000, 0o2000, 'setgid, so new files join the group');
      const conf = await stat(join(dirOf(pod, 'cfg'), 'mode'));
      assert.equal(conf.gid, 4321);
      assert.equal(conf.mode & 0o777, 0o440);
    });

    it('sets up the good volumes and reports the bad ones', async () => {
      const file = join(root, 'a-file');
      await (await open(file, 'w')).close();
      const pod = makePod([
        { name: 'host', hostPath: { path: file, type: 'Directory' } },
        { name: 'claim', persistentVolumeClaim: { claimName: 'data' } },
        { name: 'scratch', emptyDir: {} },
        { name: 'huge', emptyDir: { medium: 'HugePages' } },
      ]);
      await setUpFails(
        pod,
        `MountVolume.SetUp failed for volume "host" : hostPath type check failed: ${file} is not a directory, it's a File; ` +
          'MountVolume.SetUp failed for volume "claim" : volume source persistentVolumeClaim is not supported by this node; ' +
          'MountVolume.SetUp failed for volume "huge" : emptyDir medium "HugePages" is not supported by this node',
      );
      assert.ok((await stat(dirOf(pod, 'scratch'))).isDirectory());
    });
  });

  describe('mountsFor', () => {
    const hostDir = join(root, 'host-logs');
    const pod = makePod(
      [
        { name: 'cfg', configMap: { name: 'cfg' } },
        { name: 'scratch', emptyDir: {} },
        { name: 'host', hostPath: { path: hostDir, type: 'DirectoryOrCreate' } },
      ],
      [
        {
          name: 'app',
          volumeMounts: [
            { name: 'cfg', mountPath: '/etc/app' },
            { name: 'scratch', mountPath: '/var/log/app', subPath: 'logs/app' },
            { name: 'host', mountPath: 'host', mountPropagation: 'HostToContainer', readOnly: true },
            { name: 'host', mountPath: '/shared', mountPropagation: 'Bidirectional' },
            { name: 'scratch', mountPath: '/per-pod', subPathExpr: 'pods/$(POD_NAME)' },
            { name: 'cfg', mountPath: '/etc/mode', subPath: 'mode' },
          ],
        },
      ],
    );
    const env = [{ key: 'POD_NAME', value: 'pod-x' }];

    it('maps volumeMounts to CRI mounts, creating subPaths inside the volume', async () => {
      await volumes.setUp(pod);
      const mounts = volumes.mountsFor(pod, 'app', env);
      const cfgDir = dirOf(pod, 'cfg');
      assert.deepEqual(mounts, [
        { container_path: '/etc/app', host_path: cfgDir, readonly: true, propagation: 0 },
        { container_path: '/var/log/app', host_path: join(dirOf(pod, 'scratch'), 'logs/app'), readonly: false, propagation: 0 },
        { container_path: '/host', host_path: hostDir, readonly: true, propagation: 1 },
        { container_path: '/shared', host_path: hostDir, readonly: false, propagation: 2 },
        { container_path: '/per-pod', host_path: join(dirOf(pod, 'scratch'), 'pods/pod-x'), readonly: false, propagation: 0 },
        { container_path: '/etc/mode', host_path: join(cfgDir, await readlink(join(cfgDir, '..data')), 'mode'), readonly: true, propagation: 0 },
      ]);
      assert.ok((await stat(join(dirOf(pod, 'scratch'), 'logs/app'))).isDirectory());
      assert.equal((await stat(join(dirOf(pod, 'scratch'), 'pods/pod-x'))).mode & 0o777, 0o777, 'created with the volume root’s mode');
    });

    it('refuses subPaths that leave the volume and bad mounts, with the kubelet messages', async () => {
      await symlink('/etc', join(dirOf(pod, 'scratch'), 'escape'));
      const refused = (mount: Record<string, unknown>, message: string, withEnv = env) => {
        const p = structuredClone(pod);
        (p.spec as { containers: { volumeMounts: unknown[] }[] }).containers[0]!.volumeMounts = [{ name: 'scratch', mountPath: '/x', ...mount }];
        assert.throws(() => volumes.mountsFor(p, 'app', withEnv), new ContainerConfigError(message));
      };
      refused({ subPath: '../../etc' }, "unable to provision SubPath `../../etc`: must not contain '..'");
      refused({ subPath: 'a/../../b' }, "unable to provision SubPath `a/../../b`: must not contain '..'");
      refused({ subPath: '/etc' }, 'error SubPath `/etc` must not be an absolute path');
      refused({ subPathExpr: '$(POD_NAME)/../..' }, "unable to provision SubPath `pod-x/../..`: must not contain '..'");
      refused({ subPath: 'escape' }, 'failed to prepare subPath for volumeMount "scratch" of container "app"');
      refused({ subPath: 'escape/passwd' }, 'failed to prepare subPath for volumeMount "scratch" of container "app"');
      refused({ subPathExpr: '$(NOPE)-$(ALSO)' }, 'missing value for ALSO, NOPE');
      refused({ subPathExpr: '$(POD_NAME)' }, 'missing value for POD_NAME', [{ key: 'POD_NAME', value: '' }]);
      refused({ name: 'ghost' }, 'cannot find volume "ghost" to mount into container "app"');
      refused({ mountPropagation: 'Sideways' }, 'invalid MountPropagation mode: "Sideways"');
      assert.throws(() => volumes.mountsFor(pod, 'nobody'), new ContainerConfigError(`container "nobody" not found in pod shop/${pod.metadata.name}`));
    });
  });

  describe('layout', () => {
    it('puts each volume under its plugin directory, as the kubelet does; hostPath gets none', async () => {
      const pod = makePod([
        { name: 'scratch', emptyDir: {} },
        { name: 'cfg', configMap: { name: 'cfg' } },
        { name: 'creds', secret: { secretName: 'creds' } },
        { name: 'info', downwardAPI: { items: [{ path: 'name', fieldRef: { fieldPath: 'metadata.name' } }] } },
        { name: 'token', projected: { sources: [{ configMap: { name: 'cfg' } }] } },
        { name: 'host', hostPath: { path: root, type: 'Directory' } },
      ]);
      await volumes.setUp(pod);
      const volumesDir = join(podsDir, pod.metadata.uid!, 'volumes');
      const tree: Record<string, string[]> = {};
      for (const plugin of await readdir(volumesDir)) tree[plugin] = await readdir(join(volumesDir, plugin));
      assert.deepEqual(tree, {
        'kubernetes.io~empty-dir': ['scratch'],
        'kubernetes.io~configmap': ['cfg'],
        'kubernetes.io~secret': ['creds'],
        'kubernetes.io~downward-api': ['info'],
        'kubernetes.io~projected': ['token'],
      });
      assert.equal(dirOf(pod, 'scratch'), join(volumesDir, 'kubernetes.io~empty-dir', 'scratch'));
      await volumes.tearDown(pod.metadata.uid!);
    });
  });

  describe('tearDown and list', () => {
    it('unmounts everything (lazily when busy), removes the pod’s directory, and is idempotent', async () => {
      const pod = makePod([
        { name: 'creds', secret: { secretName: 'creds' } },
        { name: 'ram', emptyDir: { medium: 'Memory' } },
        { name: 'cfg', configMap: { name: 'cfg' } },
      ]);
      const uid = pod.metadata.uid!;
      await volumes.setUp(pod);
      const podDir = join(podsDir, uid);
      assert.equal((await mountsBelow(podDir)).length, 2);
      assert.ok((await volumes.list()).includes(uid));

      // An open file keeps the tmpfs busy, as a container still inside it would.
      const busy = await open(join(dirOf(pod, 'ram'), 'held'), 'w');
      try {
        await volumes.tearDown(uid);
      } finally {
        await busy.close();
      }
      assert.deepEqual(await mountsBelow(podDir), []);
      await assert.rejects(stat(podDir), { code: 'ENOENT' });
      assert.ok(!(await volumes.list()).includes(uid));
      await volumes.tearDown(uid);
    });

    it('keeps the pod directory when other parts of the agent still use it', async () => {
      const pod = makePod([{ name: 'scratch', emptyDir: {} }]);
      await volumes.setUp(pod);
      await mkdir(join(podsDir, pod.metadata.uid!, 'containers'));
      await volumes.tearDown(pod.metadata.uid!);
      assert.deepEqual(await readdir(join(podsDir, pod.metadata.uid!)), ['containers']);
      assert.ok(!(await volumes.list()).includes(pod.metadata.uid!));
    });

    it('lists nothing when the pods directory does not exist, and refuses uids that are not one path segment', async () => {
      assert.deepEqual(await new PodVolumeManager(join(root, 'none'), source, node).list(), []);
      await assert.rejects(volumes.tearDown('../etc'), /cannot name a directory/);
      await assert.rejects(volumes.setUp({ metadata: { uid: '..' } }), ContainerConfigError);
    });
  });
});
