import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startServer, type ServerProcess } from './harness.js';

const run = promisify(execFile);

/**
 * Debian's python3-kubernetes (installed by scripts/deps) against atoll server. The script does
 * the flows and prints one JSON line; the assertions stay here.
 */
const SCRIPT = String.raw`
import json, sys, threading, time
from kubernetes import client, config, watch

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
apps = client.AppsV1Api()
out = {}
out["namespaces"] = sorted(n.metadata.name for n in v1.list_namespace().items)

v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py", labels={"from": "python"}), data={"a": "1"}))
v1.patch_namespaced_config_map("py", "default", {"data": {"b": "2"}})
cm = v1.read_namespaced_config_map("py", "default")
out["data"] = cm.data
out["selected"] = [c.metadata.name for c in v1.list_namespaced_config_map("default", label_selector="from=python").items]

pod = client.V1Pod(metadata=client.V1ObjectMeta(name="pp"), spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]))
created = v1.create_namespaced_pod("default", pod)
out["pod_phase"] = created.status.phase
out["pods_on_node"] = [p.metadata.name for p in v1.list_namespaced_pod("default", field_selector="spec.nodeName=").items]

rv = v1.list_namespaced_config_map("default").metadata.resource_version
events = []
def mutate():
    time.sleep(0.5)
    v1.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="pw")))
    v1.patch_namespaced_config_map("pw", "default", {"metadata": {"labels": {"x": "y"}}})
    v1.delete_namespaced_config_map("pw", "default")
t = threading.Thread(target=mutate)
t.start()
w = watch.Watch()
for ev in w.stream(v1.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=10):
    if ev["object"].metadata.name == "pw":
        events.append(ev["type"])
    if len(events) == 3:
        w.stop()
t.join()
out["events"] = events

try:
    v1.read_namespaced_config_map("nope", "default")
except client.exceptions.ApiException as e:
    out["missing"] = [e.status, json.loads(e.body)["reason"]]

dep = apps.create_namespaced_deployment("default", {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pyd"},
    "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
             "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
out["replicas"] = dep.spec.replicas
print(json.dumps(out))
`;

describe("Debian's python3-kubernetes against atoll server", () => {
  let server: ServerProcess;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    await server?.stop();
  });

  it('lists, creates, patches, selects and watches', async () => {
    const { stdout } = await run('/usr/bin/python3', ['-c', SCRIPT, server.kubeconfig], { timeout: 60_000 });
    const out = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.ok((out.namespaces as string[]).includes('kube-system'));
    assert.deepEqual(out.data, { a: '1', b: '2' });
    assert.deepEqual(out.selected, ['py']);
    assert.equal(out.pod_phase, 'Pending');
    assert.deepEqual(out.pods_on_node, ['pp']);
    assert.deepEqual(out.events, ['ADDED', 'MODIFIED', 'DELETED']);
    assert.deepEqual(out.missing, [404, 'NotFound']);
    assert.equal(out.replicas, 1);
  });
});
