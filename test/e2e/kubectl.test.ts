import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensurePki, issueClientCert } from '../../src/apiserver/auth/pki.js';
import { writeKubeconfig } from '../../src/apiserver/auth/kubeconfig.js';
import { eventually, kubectl, startServer, writeTemp, type Kubectl, type ServerProcess } from './harness.js';

const DEPLOYMENT = (image: string) => `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: ${image}
        ports:
        - containerPort: 80
`;

const POD = `
apiVersion: v1
kind: Pod
metadata:
  name: hello
  labels: {app: hello, tier: front}
spec:
  containers:
  - name: main
    image: busybox:1.36
    command: ["sleep", "3600"]
    env:
    - {name: A, value: "1"}
`;

describe('kubectl 1.32 against atoll server', () => {
  let server: ServerProcess;
  let k: Kubectl;
  let dir: string;

  before(async () => {
    server = await startServer();
    k = await kubectl(server.kubeconfig);
    dir = await mkdtemp(join(tmpdir(), 'atoll-kubectl-'));
  });
  after(async () => {
    await k?.cleanup();
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reports the server version and lists API resources', async () => {
    const version = JSON.parse(await k('version', '-o', 'json')) as { serverVersion: { gitVersion: string } };
    assert.equal(version.serverVersion.gitVersion, 'v1.32.0-atoll');
    const resources = await k('api-resources');
    for (const name of ['pods', 'deployments', 'leases', 'runtimeclasses', 'customresourcedefinitions', 'clusterroles']) {
      assert.match(resources, new RegExp(`^${name}\\b`, 'm'), `api-resources lists ${name}`);
    }
    assert.match(resources, /^pods\s+po\s+v1\s+true\s+Pod$/m);
  });

  it('creates with create -f and reads back in every output form', async () => {
    const file = await writeTemp(dir, 'pod.yaml', POD);
    assert.match(await k('create', '-f', file), /pod\/hello created/);
    const table = await k('get', 'pods');
    assert.match(table, /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$/m);
    assert.match(table, /^hello\s+0\/1\s+Pending\s+0\s+\S+$/m);
    assert.match(await k('get', 'pods', '-o', 'wide'), /NOMINATED NODE/);
    const obj = JSON.parse(await k('get', 'pod', 'hello', '-o', 'json')) as { metadata: { uid: string }; spec: { restartPolicy: string } };
    assert.ok(obj.metadata.uid);
    assert.equal(obj.spec.restartPolicy, 'Always');
    assert.match(await k('get', 'pod', 'hello', '-o', 'yaml'), /^kind: Pod$/m);
    assert.match(await k('get', 'pods', '-l', 'tier=front', '-o', 'name'), /^pod\/hello$/m);
    assert.equal((await k('get', 'pods', '-l', 'tier notin (front)', '-o', 'name')).trim(), '');
    assert.match(await k('get', 'pods', '--field-selector', 'metadata.name=hello', '-o', 'name'), /pod\/hello/);
    assert.equal((await k('get', 'pods', '--field-selector', 'status.phase=Running', '-o', 'name')).trim(), '');
    const described = await k('describe', 'pod', 'hello');
    assert.match(described, /^Name:\s+hello$/m);
    assert.match(described, /^Labels:\s+app=hello$/m);
  });

  it('rejects an unknown field under kubectl default strict validation', async () => {
    const file = await writeTemp(dir, 'bad.yaml', POD.replace('name: hello', 'name: bad').replace('image: busybox:1.36', 'image: busybox:1.36\n    imagePullPolcy: Always'));
    const r = await k.result('create', '-f', file);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown field "spec.containers\[0\].imagePullPolcy"/);
    assert.equal((await k.result('get', 'pod', 'bad')).code, 1);
  });

  it('applies twice (create, then a strategic merge patch) and server-side', async () => {
    const file = await writeTemp(dir, 'deploy.yaml', DEPLOYMENT('nginx:1.25'));
    assert.match(await k('apply', '-f', file), /deployment.apps\/web created/);
    await writeTemp(dir, 'deploy.yaml', DEPLOYMENT('nginx:1.26'));
    assert.match(await k('apply', '-f', file), /deployment.apps\/web configured/);
    assert.match(await k('apply', '-f', file), /deployment.apps\/web unchanged/);
    const image = await k('get', 'deploy', 'web', '-o', 'jsonpath={.spec.template.spec.containers[0].image}');
    assert.equal(image, 'nginx:1.26');
    const gen = await k('get', 'deploy', 'web', '-o', 'jsonpath={.metadata.generation}');
    assert.equal(gen, '2');

    const cm = await writeTemp(dir, 'cm.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: "1"\n');
    assert.match(await k('apply', '--server-side', '-f', cm), /configmap\/ssa serverside-applied/);
    const managers = JSON.parse(await k('get', 'cm', 'ssa', '-o', 'json', '--show-managed-fields')) as { metadata: { managedFields: { manager: string; operation: string }[] } };
    assert.ok(managers.metadata.managedFields.some((m) => m.manager === 'kubectl' && m.operation === 'Apply'));
    // Another manager takes a field; re-applying a different value conflicts until forced.
    await k('patch', 'cm', 'ssa', '--type', 'merge', '-p', '{"data":{"a":"2"}}');
    await writeTemp(dir, 'cm.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: "3"\n');
    const conflict = await k.result('apply', '--server-side', '-f', cm);
    assert.notEqual(conflict.code, 0);
    assert.match(conflict.stderr, /conflict/i);
    assert.match(await k('apply', '--server-side', '--force-conflicts', '-f', cm), /serverside-applied/);
    assert.equal(await k('get', 'cm', 'ssa', '-o', 'jsonpath={.data.a}'), '3');
  });

  it('labels, annotates and patches with every patch type', async () => {
    assert.match(await k('label', 'pod', 'hello', 'env=prod'), /pod\/hello labeled/);
    assert.match(await k('annotate', 'pod', 'hello', 'note=hi'), /pod\/hello annotated/);
    assert.match(await k('label', 'pod', 'hello', 'env-'), /pod\/hello unlabeled/);
    const labels = JSON.parse(await k('get', 'pod', 'hello', '-o', 'jsonpath={.metadata.labels}')) as Record<string, string>;
    assert.deepEqual(labels, { app: 'hello', tier: 'front' });

    await k('patch', 'pod', 'hello', '--type', 'json', '-p', '[{"op":"replace","path":"/spec/containers/0/image","value":"busybox:1.37"}]');
    assert.equal(await k('get', 'pod', 'hello', '-o', 'jsonpath={.spec.containers[0].image}'), 'busybox:1.37');
    await k('patch', 'pod', 'hello', '--type', 'merge', '-p', '{"metadata":{"annotations":{"note":null,"m":"1"}}}');
    const ann = JSON.parse(await k('get', 'pod', 'hello', '-o', 'jsonpath={.metadata.annotations}')) as Record<string, string>;
    assert.deepEqual(ann, { m: '1' });
    // Strategic: merge into the container list by name, keeping the container's other fields.
    await k('patch', 'deploy', 'web', '--type', 'strategic', '-p', '{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"X","value":"y"}]}]}}}}');
    const c = JSON.parse(await k('get', 'deploy', 'web', '-o', 'jsonpath={.spec.template.spec.containers[0]}')) as { image: string; env: unknown[] };
    assert.equal(c.image, 'nginx:1.26');
    assert.deepEqual(c.env, [{ name: 'X', value: 'y' }]);
    // A pod spec field that may not change is refused with 422.
    const r = await k.result('patch', 'pod', 'hello', '--type', 'merge', '-p', '{"spec":{"restartPolicy":"Never"}}');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /is invalid/);
  });

  it('watches with get -w and sees ADDED, MODIFIED and DELETED', async () => {
    const watcher = k.spawn('get', 'configmaps', '-w', '--output-watch-events');
    let out = '';
    watcher.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await eventually(async () => out.includes('ssa'), 15_000, 'the initial listing');
      await k('create', 'configmap', 'watched', '--from-literal=a=1');
      await eventually(async () => /ADDED\s+watched\s/.test(out), 15_000, 'ADDED');
      await k('label', 'configmap', 'watched', 'x=y');
      await eventually(async () => /MODIFIED\s+watched\s/.test(out), 15_000, 'MODIFIED');
      await k('delete', 'configmap', 'watched');
      await eventually(async () => /DELETED\s+watched\s/.test(out), 15_000, 'DELETED');
    } finally {
      watcher.kill();
    }
  });

  it('holds a deleted object until its finalizer is removed, and wait --for=delete sees it go', async () => {
    const file = await writeTemp(dir, 'held.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.com/hold]\n');
    await k('create', '-f', file);
    await k('delete', 'configmap', 'held', '--wait=false');
    const ts = await k('get', 'configmap', 'held', '-o', 'jsonpath={.metadata.deletionTimestamp}');
    assert.match(ts, /^\d{4}-\d\d-\d\dT/);
    const waiter = k.result('wait', '--for=delete', 'configmap/held', '--timeout=20s');
    await k('patch', 'configmap', 'held', '--type', 'json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]');
    const r = await waiter;
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await k.result('get', 'configmap', 'held')).code, 1);
  });

  it('explains fields from the served OpenAPI', async () => {
    const out = await k('explain', 'pod.spec.containers');
    assert.match(out, /KIND:\s+Pod/);
    assert.match(out, /List of containers belonging to the pod/);
    assert.match(await k('explain', 'deployment.spec.replicas'), /Number of desired pods/);
  });

  it('answers auth can-i, and RBAC confines a namespace-bound user to that namespace', async () => {
    assert.equal((await k('auth', 'can-i', 'create', 'pods')).trim(), 'yes');
    await k('create', 'namespace', 'team-a');
    await k('create', 'namespace', 'team-b');
    await k('-n', 'team-a', 'create', 'role', 'pod-reader', '--verb=get,list,watch', '--resource=pods');
    await k('-n', 'team-a', 'create', 'rolebinding', 'bob-reads', '--role=pod-reader', '--user=bob');
    await k('-n', 'team-a', 'run', 'p1', '--image=busybox', '--restart=Never');

    const pki = await ensurePki(join(server.dataDir, 'pki'), { hosts: [] });
    const cert = await issueClientCert(pki, { cn: 'bob', groups: ['dev'] });
    const bobConfig = join(dir, 'bob.kubeconfig');
    await writeKubeconfig(bobConfig, { server: server.url, caPem: pki.caCertPem, user: 'bob', certPem: cert.certPem, keyPem: cert.keyPem });
    const bob = await kubectl(bobConfig);
    try {
      assert.match(await bob('-n', 'team-a', 'get', 'pods', '-o', 'name'), /pod\/p1/);
      const refused = await bob.result('-n', 'team-b', 'get', 'pods');
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the namespace "team-b"/);
      assert.equal((await bob.result('auth', 'can-i', 'list', 'pods', '-n', 'team-b')).stdout.trim(), 'no');
      assert.equal((await bob('auth', 'can-i', 'list', 'pods', '-n', 'team-a')).trim(), 'yes');
      assert.notEqual((await bob.result('-n', 'team-a', 'delete', 'pod', 'p1')).code, 0);
    } finally {
      await bob.cleanup();
    }
  });

  it('deletes, and refuses a request with a bad token', async () => {
    assert.match(await k('delete', 'pod', 'hello', '--grace-period=0'), /pod "hello" deleted/);
    assert.equal((await k.result('get', 'pod', 'hello')).code, 1);
    const pki = await ensurePki(join(server.dataDir, 'pki'), { hosts: [] });
    const anon = await writeTemp(
      dir,
      'anon.kubeconfig',
      `apiVersion: v1\nkind: Config\nclusters: [{name: a, cluster: {server: "${server.url}", certificate-authority-data: ${Buffer.from(pki.caCertPem).toString('base64')}}}]\n` +
        'users: [{name: nobody, user: {token: not-a-real-token}}]\ncontexts: [{name: a, context: {cluster: a, user: nobody}}]\ncurrent-context: a\n',
    );
    const nobody = await kubectl(anon);
    try {
      const r = await nobody.result('get', 'pods');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /You must be logged in to the server \(the server has asked for the client to provide credentials\)/);
    } finally {
      await nobody.cleanup();
    }
  });
});
