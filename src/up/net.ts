import { findNode, runningUp, UpStateError } from './state.js';
import { healNodeLink, nodeLinkState, partitionNodeLink } from './topology.js';

/**
 * `atoll net partition|heal NODE`: cuts or restores one node's cloud link of the `atoll up` running
 * over `dataDir`, from any shell. Returns the line to print.
 */
export async function setPartition(dataDir: string, nodeName: string, cut: boolean): Promise<string> {
  if (process.getuid?.() !== 0) throw new UpStateError('atoll net changes the host\'s links and neighbour tables; run it as root');
  const node = findNode(await runningUp(dataDir), nodeName);
  const before = await nodeLinkState(node);
  if (cut) {
    await partitionNodeLink(node);
    return before.partitioned
      ? `${node.name}: the cloud link was already cut`
      : `${node.name}: cloud link cut; packets between ${node.hostIP} (cloud) and ${node.nodeIP} (${node.name}) are dropped silently until \`atoll net heal ${node.name}\``;
  }
  await healNodeLink(node);
  return before.partitioned ? `${node.name}: cloud link restored` : `${node.name}: the cloud link was not cut`;
}
