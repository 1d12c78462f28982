import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { agentPaths } from '../agent/agent.js';
import { writeFileAtomic } from '../apiserver/auth/atomic-file.js';
import type { NodeLink } from './topology.js';

/**
 * `DIR/up.json`: what `atoll up` made in its data dir, so that a second `up` resumes the same cluster
 * (same token, port, nodes and addresses) and `atoll net` / `atoll images --node` find the nodes of a
 * running one from another shell. Written atomically; mode 0600 because it holds the bootstrap token.
 */

export const STATE_FILE = 'up.json';
const STATE_VERSION = 1;

/** One node of `up`: its link plus where its agent keeps its files. */
export interface UpNode extends NodeLink {
  /** The agent's --data-dir: `DIR/nodes/<name>`. */
  dataDir: string;
  /** The runtime's admin socket, for `atoll images import --node`. */
  adminSocket: string;
  /** The agent's stdout and stderr. */
  logFile: string;
  /** PID of the agent `up` started last: after a crash of `up`, the stale agent to stop. */
  pid?: number;
}

export interface UpState {
  version: typeof STATE_VERSION;
  port: number;
  /** Bootstrap token the agents join with. */
  token: string;
  /** PID of the `atoll up` running over this dir; absent once it stopped cleanly. */
  pid?: number;
  nodes: UpNode[];
}

export class UpStateError extends Error {
  override name = 'UpStateError';
}

/** Where node `name`'s agent keeps its files: `DIR/nodes/<name>`, laid out as the agent lays out its data dir. */
export function nodeFiles(dataDir: string, name: string): Pick<UpNode, 'dataDir' | 'adminSocket' | 'logFile'> {
  const dir = join(dataDir, 'nodes', name);
  return { dataDir: dir, adminSocket: agentPaths(dir).adminSocket, logFile: join(dir, 'agent.log') };
}

export async function readUpState(dataDir: string): Promise<UpState | undefined> {
  const path = join(dataDir, STATE_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let value: Partial<UpState>;
  try {
    value = JSON.parse(text) as Partial<UpState>;
  } catch (err) {
    throw new UpStateError(`${path} is not JSON (${(err as Error).message}); move it away to start a new cluster`);
  }
  const nodeValid = (n: Partial<UpNode>) =>
    ['name', 'netns', 'netnsPath', 'hostLink', 'hostIP', 'nodeIP', 'linkCidr', 'podCidr', 'owner', 'dataDir', 'adminSocket', 'logFile'].every(
      (k) => typeof n[k as keyof UpNode] === 'string',
    ) &&
    typeof n.index === 'number' &&
    (n.pid === undefined || typeof n.pid === 'number');
  const valid =
    value.version === STATE_VERSION &&
    typeof value.port === 'number' &&
    typeof value.token === 'string' &&
    (value.pid === undefined || typeof value.pid === 'number') &&
    Array.isArray(value.nodes) &&
    value.nodes.every(nodeValid);
  if (!valid) throw new UpStateError(`${path} is malformed or from another version of Atoll; move it away to start a new cluster`);
  return value as UpState;
}

/** Serialises the writes of one process, so that the last update is the one on disk. */
export class UpStateFile {
  private chain: Promise<void> = Promise.resolve();

  constructor(
    readonly dataDir: string,
    private state: UpState,
  ) {}

  get current(): UpState {
    return this.state;
  }

  update(change: (state: UpState) => void): Promise<void> {
    change(this.state);
    const text = `${JSON.stringify(this.state, null, 2)}\n`;
    this.chain = this.chain.catch(() => undefined).then(() => writeFileAtomic(join(this.dataDir, STATE_FILE), text, 0o600));
    return this.chain;
  }
}

/** Whether `pid` is a live process (zombies count as gone). */
export async function processAlive(pid: number | undefined): Promise<boolean> {
  if (pid === undefined || !Number.isInteger(pid) || pid <= 0) return false;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!stat) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** The state of an `atoll up` that is running over `dataDir`, or a precise error saying why there is none. */
export async function runningUp(dataDir: string): Promise<UpState> {
  const state = await readUpState(dataDir);
  if (!state) throw new UpStateError(`no atoll up has run with data dir ${dataDir} (no ${STATE_FILE}); start \`atoll up --data-dir ${dataDir}\` or pass the --data-dir it uses`);
  if (!(await processAlive(state.pid))) {
    throw new UpStateError(`the atoll up of ${dataDir} is not running; start it with \`atoll up --data-dir ${dataDir}\``);
  }
  return state;
}

/** Node `name` of `state`, or an error listing the nodes there are. */
export function findNode(state: UpState, name: string, flag = 'NODE'): UpNode {
  const node = state.nodes.find((n) => n.name === name);
  if (!node) throw new UpStateError(`${flag} ${name}: no such node; the nodes are ${state.nodes.map((n) => n.name).join(', ') || 'none'}`);
  return node;
}

/** The nodes `--node NAME` or `--all` pick from the `atoll up` running over `dataDir`. */
export async function selectNodes(dataDir: string, pick: { node?: string; all?: boolean }): Promise<UpNode[]> {
  const state = await runningUp(dataDir);
  return pick.all ? state.nodes : [findNode(state, pick.node ?? '', '--node')];
}
