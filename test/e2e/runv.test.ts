import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { POD_UID_LABEL } from '../../src/agent/contracts.js';
import { KVM_LABEL, runtimeHandlerLabel } from '../../src/agent/node-status.js';
import { criClient, type CriClient } from '../../src/runtime/cri/client.js';
import { RUNV_POD_OVERHEAD } from '../../src/up/cluster.js';
import { RUNV_CACHE, eventually, startUp, type Kubectl, type UpProcess } from './harness.js';
import { checkKubectlPortForward } from '../support/kubectl-streams.js';

const run = promisify(execFile);
/** A runv pod cold boots its VM under TCG on a loaded 2-core machine: 7-14 s, more while others boot theirs. */
const READY_TIMEOUT_MS = 180_000;
/** Deleting a pod stops its VM and removes its disks, tap and netns. */
const DELETE_TIMEOUT_MS = 120_000;
const IMAGE = 'atoll.local/busybox:latest';
const NODE = 'edge-1';
const VM_POD = 'vm-web';
const HOST_POD = 'host-web';
/**
 * The host marker process runs this many threads. The kernel counts every thread it runs in
 * /proc/loadavg's 4th field, whatever the reader's PID namespace: a kernel that runs the marker shows at
 * least this many; a VM's guest kernel (its own threads, the guest agent, conmon, runc, the container)
 * has a small fraction of it.
 */
const MARKER_THREADS = 1000;
/** The runv pod's exec readiness probe runs in the guest under TCG: a runc exec there takes seconds. */
const PROBE_TIMEOUT_SECONDS = 20;

type Json = Record<string, any>;

/**
 * Issue 7's acceptance on `atoll up --nodes 1`: a runv pod (a QEMU microVM with its own kernel) and a
 * runc pod on the same node, driven with the real kubectl. Logs, exec with exit codes, an exec
 * readiness probe, stats, pod networking both ways, the isolation checks against the runc pod,
 * adoption of the VM after a kill -9 of the node's agent, and nothing left behind after deletion.
 */
describe('runv on atoll up', { timeout: 1_200_000 }, () => {
  let up: UpProcess;
  let dir: string;
  let k: Kubectl;
  let cri: CriClient | undefined;
  /** The host directory with the marker file, and the marker process, both the test's own. */
  let markerDir: string;
  let markerToken: string;
  let marker: ChildProcess | undefined;
  let nodeDir: string;

  const json = async (...args: string[]): Promise<Json> => JSON.parse(await k(...args, '-o', 'json')) as Json;
  const ready = (obj: Json) => obj.status?.conditions?.some((c: Json) => c.type === 'Ready' && c.status === 'True');
  const sh = (pod: string, script: string) => k('exec', pod, '--', 'sh', '-c', script);
  const runvDir = () => join(nodeDir, 'runtime', 'runv');
  const agentLog = () => readFile(join(nodeDir, 'agent.log'), 'utf8').catch(() => '');
  const servingCount = async () => (await agentLog()).split('\n').filter((l) => l.includes('is serving on')).length;
  const agentPid = async () => {
    const state = JSON.parse(await readFile(join(dir, 'up.json'), 'utf8')) as Json;
    const pid = (state.nodes as Json[]).find((n) => n.name === NODE)?.pid as number | undefined;
    assert.ok(pid, `up.json has no agent pid for ${NODE}`);
    return pid;
  };

  /** The one runv sandbox record on the node, and its VM's QEMU pid from the VM's pid file. */
  async function runvSandbox(): Promise<{ id: string; netns: string; vmDir: string; qemuPid: number }> {
    const files = (await readdir(join(runvDir(), 'sandboxes'))).filter((f) => f.endsWith('.json'));
    assert.equal(files.length, 1, `one runv sandbox record, found ${files.join(', ')}`);
    const record = JSON.parse(await readFile(join(runvDir(), 'sandboxes', files[0]!), 'utf8')) as Json;
    const qemuPid = Number(await readFile(join(record.vmDir, 'qemu.pid'), 'utf8'));
    return { id: record.id, netns: record.netns, vmDir: record.vmDir, qemuPid };
  }

  /** A pod's sandbox and container IDs, as the node's runtime itself lists them over CRI. */
  async function runtimeIds(uid: string): Promise<{ sandboxes: string[]; containers: string[] }> {
    const { items } = await cri!.ListPodSandbox({ filter: { label_selector: { [POD_UID_LABEL]: uid } } });
    const { containers } = await cri!.ListContainers({ filter: { label_selector: { [POD_UID_LABEL]: uid } } });
    return { sandboxes: items.map((s) => s.id), containers: containers.map((c) => c.id) };
  }

  before(async () => {
    markerDir = await mkdtemp(join(tmpdir(), 'atoll-e2e-marker-'));
    markerToken = `atoll-marker-${randomBytes(12).toString('hex')}`;
    await writeFile(join(markerDir, 'secret'), markerToken);
    up = await startUp(1);
    ({ dir, k } = up);
    nodeDir = join(dir, 'nodes', NODE);
    cri = criClient(join(nodeDir, 'run', 'cri.sock'));
  });

  after(async () => {
    cri?.close();
    if (marker?.pid && marker.exitCode === null && marker.signalCode === null) {
      const exited = new Promise((r) => marker!.once('exit', r));
      marker.kill('SIGKILL');
      await exited;
    }
    // Ctrl-C is `up`'s own cleanup path: agents, containers, VMs (in their pods' netns), mounts and links go.
    await up?.cleanup();
    if (markerDir) await rm(markerDir, { recursive: true, force: true });
  });

  it('the node offers runv: it is labelled for it and with its accelerator, and RuntimeClass runv selects it with an overhead', async () => {
    const node = await eventually(async () => {
      const n = await json('get', 'node', NODE);
      return n.metadata.labels?.[runtimeHandlerLabel('runv')] === 'true' ? n : undefined;
    }, READY_TIMEOUT_MS, `${NODE} labelled for runv`);
    const accel = (JSON.parse(await readFile(join(RUNV_CACHE, 'runv', 'accel.json'), 'utf8')) as Json).accel as string;
    assert.equal(node.metadata.labels[KVM_LABEL], String(accel === 'kvm'), 'atoll.dev/kvm follows the accelerator the node probed');
    assert.equal(node.metadata.labels[runtimeHandlerLabel('runc')], 'true');
    const rc = await json('get', 'runtimeclass', 'runv');
    assert.equal(rc.handler, 'runv');
    assert.deepEqual(rc.overhead, { podFixed: RUNV_POD_OVERHEAD });
    assert.deepEqual(rc.scheduling, { nodeSelector: { [runtimeHandlerLabel('runv')]: 'true' } });
  });

  it('a runv pod and a runc pod run side by side on the node, both Ready; the runv pod\'s exec readiness probe passes', async () => {
    await up.apply([
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: VM_POD, labels: { app: VM_POD } },
        spec: {
          runtimeClassName: 'runv',
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'main',
              image: IMAGE,
              command: ['sh', '-c', 'echo "runv says hello from $(uname -r)"; touch /tmp/ready; exec httpd -f -p 8080 -h /etc'],
              ports: [{ containerPort: 8080 }],
              readinessProbe: { exec: { command: ['cat', '/tmp/ready'] }, periodSeconds: 5, timeoutSeconds: PROBE_TIMEOUT_SECONDS },
            },
          ],
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: HOST_POD, labels: { app: HOST_POD } },
        spec: {
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'main',
              image: IMAGE,
              command: ['httpd', '-f', '-p', '8080', '-h', '/etc'],
              ports: [{ containerPort: 8080 }],
              readinessProbe: { httpGet: { path: '/hostname', port: 8080 }, periodSeconds: 2 },
              volumeMounts: [{ name: 'marker', mountPath: '/host-marker', readOnly: true }],
            },
          ],
          volumes: [{ name: 'marker', hostPath: { path: markerDir, type: 'Directory' } }],
        },
      },
    ]);
    for (const name of [VM_POD, HOST_POD]) {
      await eventually(async () => ready(await json('get', 'pod', name)), READY_TIMEOUT_MS, `${name} Ready`);
    }
    const vm = await json('get', 'pod', VM_POD);
    const host = await json('get', 'pod', HOST_POD);
    assert.equal(vm.spec.nodeName, NODE);
    assert.equal(host.spec.nodeName, NODE);
    assert.equal(vm.status.phase, 'Running');
    assert.deepEqual(vm.spec.overhead, RUNV_POD_OVERHEAD, 'RuntimeClass admission set the pod\'s overhead');
    assert.match(vm.status.podIP, /^10\.244\.\d+\.\d+$/);
    assert.notEqual(vm.status.podIP, host.status.podIP);
    // The VM is real: its QEMU runs, with the seccomp sandbox on.
    const { qemuPid } = await runvSandbox();
    const argv = (await readFile(`/proc/${qemuPid}/cmdline`, 'utf8')).split('\0');
    assert.match(argv[0]!, /qemu-system/);
    assert.equal(argv[argv.indexOf('-sandbox') + 1]?.split(',')[0], 'on');
  });

  it('the runv pod\'s logs reach kubectl logs, and kubectl exec runs in it with exit codes', async () => {
    const logs = await eventually(async () => {
      const text = await k('logs', VM_POD).catch(() => '');
      return text.includes('runv says hello') ? text : undefined;
    }, READY_TIMEOUT_MS, 'the runv pod\'s output in kubectl logs');
    assert.match(logs, /^runv says hello from \S+$/m);
    assert.equal((await k('exec', VM_POD, '--', 'echo', 'hi')).trim(), 'hi');
    assert.equal((await k.result('exec', VM_POD, '--', 'sh', '-c', 'exit 3')).code, 3);
    const failed = await k.result('exec', VM_POD, '--', 'sh', '-c', 'echo to-stderr >&2; exit 7');
    assert.equal(failed.code, 7);
    assert.match(failed.stderr, /to-stderr/);
  });

  it('pod networking both ways: the runv pod reaches the runc pod\'s IP, and the runc pod reaches the runv pod\'s IP', async () => {
    const vmIP = (await json('get', 'pod', VM_POD)).status.podIP as string;
    const hostIP = (await json('get', 'pod', HOST_POD)).status.podIP as string;
    assert.equal((await k('exec', VM_POD, '--', 'wget', '-qO-', `http://${hostIP}:8080/hostname`)).trim(), HOST_POD);
    assert.equal((await k('exec', HOST_POD, '--', 'wget', '-qO-', `http://${vmIP}:8080/hostname`)).trim(), VM_POD);
    // The guest's own view: its interface carries the pod's IP.
    assert.match(await sh(VM_POD, 'ip -o -4 addr show'), new RegExp(`inet ${vmIP.replace(/\./g, '\\.')}/`));
  });

  it('kubectl port-forward reaches the runv pod\'s server in its VM', () => checkKubectlPortForward(k, VM_POD, 8080, { path: '/hostname', body: `${VM_POD}\n` }));

  it('the node\'s stats summary reports non-zero CPU, memory and network for the runv pod', async () => {
    const pod = await eventually(async () => {
      const summary = JSON.parse(await k('get', '--raw', `/api/v1/nodes/${NODE}/proxy/stats/summary`)) as Json;
      const entry = (summary.pods as Json[]).find((p) => p.podRef.name === VM_POD);
      const container = entry?.containers?.find((c: Json) => c.name === 'main');
      const moved = (entry?.network?.interfaces ?? []).some((i: Json) => i.rxBytes > 0 && i.txBytes > 0);
      return container?.cpu?.usageCoreNanoSeconds > 0 && container?.memory?.workingSetBytes > 0 && entry?.cpu?.usageCoreNanoSeconds > 0 && entry?.memory?.workingSetBytes > 0 && moved ? entry : undefined;
    }, READY_TIMEOUT_MS, 'non-zero CPU, memory and network of the runv pod in /stats/summary');
    assert.equal(pod.podRef.namespace, 'default');
  });

  it('isolation: the runv pod runs on its own kernel, sees no host process and cannot reach a host file; the runc pod shows the contrast', async () => {
    // Kernel. The runv pod's `uname -r` is the guest kernel's release, the runc pod's the host's. The
    // boot ID is kernel-global (not namespaced): the runc pod shares the host's, the runv pod has its own.
    const releases = await guestKernelReleases();
    const vmRelease = (await k('exec', VM_POD, '--', 'uname', '-r')).trim();
    const hostRelease = (await k('exec', HOST_POD, '--', 'uname', '-r')).trim();
    assert.ok(releases.includes(vmRelease), `the runv pod runs the guest kernel (${vmRelease}; cached guest kernels: ${releases.join(', ')})`);
    assert.notEqual(vmRelease, release(), 'the guest kernel is not the host\'s');
    assert.equal(hostRelease, release(), 'the runc pod runs on the host kernel');
    const bootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
    assert.equal((await k('exec', HOST_POD, '--', 'cat', '/proc/sys/kernel/random/boot_id')).trim(), bootId);
    assert.notEqual((await k('exec', VM_POD, '--', 'cat', '/proc/sys/kernel/random/boot_id')).trim(), bootId);

    // Processes. A marker process on the host, with a unique argv and MARKER_THREADS threads. Neither
    // pod lists it: the runc pod because its PID namespace hides it, the runv pod because its kernel
    // does not run it. The difference shows in the kernel-global thread count (/proc/loadavg's 4th
    // field, which no namespace filters): the runc pod's kernel counts the marker's threads, the runv
    // pod's does not.
    const processToken = `atoll-e2e-process-${randomBytes(8).toString('hex')}`;
    marker = spawn('/usr/bin/python3', ['-c', MARKER_SCRIPT, String(MARKER_THREADS), processToken], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      marker!.once('error', reject);
      marker!.once('exit', (code) => reject(new Error(`the marker process exited (${code})`)));
      marker!.stdout!.once('data', () => resolve());
    });
    assert.match(await readFile(`/proc/${marker.pid}/cmdline`, 'utf8'), new RegExp(processToken), 'the host lists the marker');
    const listsMarker = `cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -c ${processToken.replace('atoll', '[a]toll')} || true`;
    assert.equal((await sh(VM_POD, listsMarker)).trim(), '0', 'the runv pod lists no host process');
    assert.equal((await sh(HOST_POD, listsMarker)).trim(), '0', 'the runc pod\'s PID namespace hides it too');
    const threads = async (pod: string) => Number((await k('exec', pod, '--', 'cat', '/proc/loadavg')).split(' ')[3]!.split('/')[1]);
    const hostThreads = await threads(HOST_POD);
    const vmThreads = await threads(VM_POD);
    assert.ok(hostThreads >= MARKER_THREADS, `the runc pod's kernel runs the host's threads, the marker's ${MARKER_THREADS} among them (it counts ${hostThreads})`);
    assert.ok(vmThreads < MARKER_THREADS, `the runv pod's kernel runs only the VM's own threads (${vmThreads}), not the host's marker`);

    // Files. The marker file lies in a host directory. Given that directory as a hostPath volume, the runc
    // pod reads it, and a scan of every file the pod sees finds it: the scan works. The runv pod has no
    // hostPath, and a scan of everything its container sees finds nothing. On the host, QEMU (the only
    // way from the guest to the host's files) neither names the directory nor holds a file in it.
    assert.equal(await k('exec', HOST_POD, '--', 'cat', '/host-marker/secret'), markerToken);
    const scan = `find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -type f -exec grep -l ${markerToken} {} + 2>/dev/null; true`;
    assert.equal((await sh(HOST_POD, scan)).trim(), '/host-marker/secret');
    assert.equal((await sh(VM_POD, scan)).trim(), '', 'no file the runv pod sees holds the marker');
    const { qemuPid } = await runvSandbox();
    const argv = (await readFile(`/proc/${qemuPid}/cmdline`, 'utf8')).split('\0');
    assert.ok(!argv.some((a) => a.includes(markerDir)), 'QEMU\'s command line names no path in the marker directory');
    const open = await Promise.all((await readdir(`/proc/${qemuPid}/fd`)).map((fd) => readlink(`/proc/${qemuPid}/fd/${fd}`).catch(() => '')));
    assert.ok(!open.some((target) => target.startsWith(markerDir)), `QEMU holds no file in the marker directory (${open.filter((t) => t.startsWith('/')).join(', ')})`);
  });

  it('kill -9 of the node\'s agent leaves the VM running; the restarted agent adopts it: same QEMU, same container, no restart, exec works', async () => {
    const before = await runvSandbox();
    const pod = await json('get', 'pod', VM_POD);
    const containerId = pod.status.containerStatuses[0].containerID as string;
    assert.equal(pod.status.containerStatuses[0].restartCount, 0);
    const served = await servingCount();
    const pid = await agentPid();
    process.kill(pid, 'SIGKILL');
    await eventually(async () => (await agentPid()) !== pid, READY_TIMEOUT_MS, 'the agent restarted by up');
    await eventually(async () => (await servingCount()) > served, READY_TIMEOUT_MS, 'the restarted agent serving');
    await eventually(async () => (await k('exec', VM_POD, '--', 'echo', 'back').catch(() => '')).trim() === 'back', READY_TIMEOUT_MS, 'exec into the runv pod after the agent restart');

    const after = await runvSandbox();
    assert.equal(after.id, before.id);
    assert.equal(after.qemuPid, before.qemuPid, 'the same QEMU runs the VM');
    assert.ok(await qemuRuns(before.qemuPid), 'and it still runs');
    const now = await eventually(async () => {
      const p = await json('get', 'pod', VM_POD);
      return ready(p) ? p : undefined;
    }, READY_TIMEOUT_MS, 'the runv pod Ready after the agent restart');
    assert.equal(now.status.containerStatuses[0].containerID, containerId, 'the same container');
    assert.equal(now.status.containerStatuses[0].restartCount, 0, 'never restarted');
    assert.equal((await k.result('exec', VM_POD, '--', 'sh', '-c', 'exit 4')).code, 4);
    assert.match(await k('logs', VM_POD), /runv says hello/);
  });

  it('deleting both pods stops the VM and leaves no QEMU, tap, netns, disk, layer, mount or record behind', async () => {
    const vm = await runvSandbox();
    const uids = await Promise.all([VM_POD, HOST_POD].map(async (name) => (await json('get', 'pod', name)).metadata.uid as string));
    const ids = await Promise.all(uids.map(runtimeIds));
    const sandboxIds = ids.flatMap((i) => i.sandboxes);
    const containerIds = ids.flatMap((i) => i.containers);
    assert.ok(sandboxIds.includes(vm.id));
    const runvFiles = async () => {
      const left: string[] = [];
      for (const sub of ['vm', 'sandboxes', 'containers', 'layers', 'shares', 'output']) {
        for (const name of await readdir(join(runvDir(), sub)).catch(() => [] as string[])) left.push(join(sub, name));
      }
      return left;
    };
    assert.ok((await runvFiles()).length > 0, 'the runv pod has files under runtime/runv while it runs');
    const netnsInode = (await stat(vm.netns)).ino;

    await k('delete', 'pod', VM_POD, HOST_POD, '--wait=true', `--timeout=${DELETE_TIMEOUT_MS / 1000}s`);
    await eventually(async () => (await runtimeIds(uids[0]!)).sandboxes.length + (await runtimeIds(uids[1]!)).sandboxes.length === 0, DELETE_TIMEOUT_MS, 'both sandboxes removed from the runtime');

    assert.equal(await qemuRuns(vm.qemuPid), false, 'the VM\'s QEMU is gone');
    const qemus = (await run('ps', ['-eo', 'pid=,args='])).stdout.split('\n').filter((l) => /qemu-system/.test(l) && l.includes(nodeDir));
    assert.deepEqual(qemus, [], 'no QEMU of the node runs');
    assert.deepEqual(await runvFiles(), [], 'no VM directory, sandbox or container record, layer, share or output cursor left under runtime/runv');
    for (const id of sandboxIds) {
      assert.ok(!existsSync(join(nodeDir, 'runtime', 'state', 'sandboxes', `${id}.json`)), `the runtime's record of sandbox ${id} is gone`);
      assert.ok(!existsSync(join(nodeDir, 'run', 'netns', id)), `the netns file of sandbox ${id} is gone`);
    }
    // The pod's netns, and the tap in it, end once no mount pins it and no process is in it.
    assert.ok(!existsSync(vm.netns), 'the runv pod\'s netns file is gone');
    assert.deepEqual(await processesInNetns(netnsInode), [], 'no process is left in the runv pod\'s netns');
    // What stays is the image's ext4 disk, cached by chain ID for the next pod of the image, as runc keeps its unpacked layers.
    for (const name of await readdir(join(runvDir(), 'rootfs'))) assert.match(name, /^[0-9a-f]{64}\.v\d+\.ext4$/);
    for (const id of containerIds) assert.ok(!existsSync(join(nodeDir, 'runtime', 'state', 'containers', `${id}.json`)), `the runtime's record of container ${id} is gone`);
    const mounts = await readFile('/proc/self/mountinfo', 'utf8');
    for (const needle of [...sandboxIds, ...containerIds, ...uids]) assert.ok(!mounts.includes(needle), `no mount names ${needle}`);
    const nodeNetns = (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]).find((n) => n?.includes(NODE));
    if (nodeNetns) {
      const links = (await run('ip', ['-n', nodeNetns, '-o', 'link'])).stdout;
      assert.doesNotMatch(links, /tap/, 'no tap in the node\'s netns');
    }
  });
});

/** Every guest kernel release in the shared runv cache (guest-kernel.ts: `runv/kernel/<version>/kernel.json`). */
async function guestKernelReleases(): Promise<string[]> {
  const base = join(RUNV_CACHE, 'runv', 'kernel');
  const releases: string[] = [];
  for (const version of await readdir(base)) {
    const record = await readFile(join(base, version, 'kernel.json'), 'utf8').catch(() => undefined);
    if (record) releases.push((JSON.parse(record) as { release: string }).release);
  }
  return releases;
}

/** PIDs of the host's processes in the network namespace with inode `ino`. */
async function processesInNetns(ino: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    if ((await readlink(`/proc/${entry}/ns/net`).catch(() => '')) === `net:[${ino}]`) pids.push(Number(entry));
  }
  return pids;
}

/** Whether `pid` is a running QEMU (a zombie's command line is empty). */
async function qemuRuns(pid: number): Promise<boolean> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes('qemu-system');
}

/** The host marker: N sleeping threads, a line on stdout once they run; argv[2] is its unique token. */
const MARKER_SCRIPT = [
  'import sys, threading, time',
  'threading.stack_size(65536)',
  'for _ in range(int(sys.argv[1])): threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()',
  'print("ready", flush=True)',
  'time.sleep(3600)',
].join('\n');
