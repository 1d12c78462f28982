import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ContainerPort } from '../types.js';
import { testNode, testPod } from '../testing.js';
import { NODE_PORTS_REASON, nodePorts } from './node-ports.js';

const withPorts = (...ports: ContainerPort[]) => testPod({}, { containers: [{ name: 'c', ports }] });

describe('NodePorts', () => {
  it('rejects a host port already held on the node, by protocol and IP', () => {
    const node = testNode('n', { pods: [withPorts({ containerPort: 80, hostPort: 8080 }, { containerPort: 53, hostPort: 53, protocol: 'UDP', hostIP: '10.0.0.1' })] });
    assert.deepEqual(nodePorts.filter!(withPorts({ containerPort: 80, hostPort: 8080 }), node), { code: 'Unschedulable', reasons: [NODE_PORTS_REASON] });
    assert.equal(nodePorts.filter!(withPorts({ containerPort: 80, hostPort: 8080, protocol: 'UDP' }), node), undefined);
    assert.equal(nodePorts.filter!(withPorts({ containerPort: 53, hostPort: 53, protocol: 'UDP', hostIP: '10.0.0.2' }), node), undefined);
    assert.notEqual(nodePorts.filter!(withPorts({ containerPort: 53, hostPort: 53, protocol: 'UDP' }), node), undefined, '0.0.0.0 conflicts with every IP');
    assert.equal(nodePorts.filter!(withPorts({ containerPort: 8080 }), node), undefined, 'no hostPort, no conflict');
  });

  it('releases the port when the pod leaves', () => {
    const holder = withPorts({ containerPort: 80, hostPort: 80 });
    const node = testNode('n', { pods: [holder] });
    node.removePod(holder.key);
    assert.equal(nodePorts.filter!(withPorts({ containerPort: 80, hostPort: 80 }), node), undefined);
  });
});
