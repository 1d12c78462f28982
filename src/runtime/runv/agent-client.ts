import { randomInt } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { PassThrough, Writable, type Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ENVELOPE_FIELDS, FrameDecoder, MAX_PAYLOAD_BYTES, PROTOCOL_VERSION, PROTOCOL_VERSIONS, encodeFrame, parseResponse,
  type AgentErrorCode, type HelloResult, type Op, type OpArgs, type OpResults, type ReadOutputResult, type Response,
} from './agent-protocol.js';

/** How long a call waits for its answer unless the caller says otherwise. */
export const AGENT_CALL_TIMEOUT_MS = 10_000;
/** How long one `readOutput` long poll of processStreams waits for output. */
export const OUTPUT_POLL_MS = 10_000;
/** How often connect() retries, unless told otherwise, while QEMU has not yet created the agent socket. */
const CONNECT_RETRY_MS = 20;
/** Bound of a connection's first request id; leaves ids room to grow within Number.MAX_SAFE_INTEGER. */
const FIRST_ID_LIMIT = 2 ** 48;

export type AgentCallErrorCode = AgentErrorCode | 'Timeout' | 'Disconnected' | 'Protocol';

/** A failed agent call: the agent's own error code, or what went wrong on the way to it. */
export class AgentCallError extends Error {
  override name = 'AgentCallError';
  constructor(readonly code: AgentCallErrorCode, message: string) {
    super(message);
  }
}

export interface ExecOutput { exitCode: number; signal: string | null; stdout: Buffer; stderr: Buffer }

interface Pending { op: Op; resolve(result: unknown): void; reject(err: Error): void; timer: NodeJS.Timeout }

/**
 * The host side of the guest agent protocol, over the unix socket QEMU serves for the agent's
 * virtio-serial port. Requests carry increasing ids; each answer is matched by id, so calls may
 * overlap. A call that gets no answer in time fails with code 'Timeout' and its late answer is dropped.
 */
export class AgentClient {
  /**
   * Ids start at a random point: an answer the agent wrote for an earlier connection can still arrive
   * on this one (the port buffers it while no host is connected), and must match no call of this one.
   */
  private nextId = randomInt(1, FIRST_ID_LIMIT);
  private readonly pending = new Map<number, Pending>();
  private readonly decoder = new FrameDecoder();
  private failure: AgentCallError | null = null;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => this.fail(new AgentCallError('Disconnected', `agent socket: ${err.message}`)));
    socket.on('close', () => this.fail(new AgentCallError('Disconnected', 'agent connection closed')));
  }

  /** Connects to `socketPath`, retrying every `retryMs` while the socket does not exist yet, until `timeoutMs` passes. */
  static async connect(socketPath: string, timeoutMs: number, signal?: AbortSignal, retryMs = CONNECT_RETRY_MS): Promise<AgentClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      signal?.throwIfAborted();
      try {
        return new AgentClient(await connectOnce(socketPath));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ECONNREFUSED') {
          throw new AgentCallError('Disconnected', `cannot connect to the agent socket ${socketPath}: ${(err as Error).message}`);
        }
        // Not there yet (QEMU still starting): only the deadline ends the wait.
        if (Date.now() > deadline) {
          throw new AgentCallError('Timeout', `the agent socket ${socketPath} did not accept a connection within ${timeoutMs} ms: ${(err as Error).message}`);
        }
      }
      await sleep(retryMs, undefined, { signal });
    }
  }

  /** Negotiates the protocol version; the first call on a connection. */
  async hello(timeoutMs = AGENT_CALL_TIMEOUT_MS): Promise<HelloResult> {
    const result = await this.call('hello', { versions: [...PROTOCOL_VERSIONS] }, timeoutMs);
    if (!(PROTOCOL_VERSIONS as readonly number[]).includes(result.version)) {
      throw new AgentCallError('UnsupportedVersion', `agent chose protocol version ${result.version}, host speaks ${PROTOCOL_VERSIONS.join(', ')}`);
    }
    return result;
  }

  /** Runs argv in the guest to completion. `timeoutMs` bounds the command; the call waits a little longer. */
  async exec(argv: string[], options: { env?: string[]; cwd?: string; timeoutMs?: number } = {}): Promise<ExecOutput> {
    const callTimeout = options.timeoutMs === undefined ? AGENT_CALL_TIMEOUT_MS : options.timeoutMs + AGENT_CALL_TIMEOUT_MS;
    const result = await this.call('exec', { argv, env: options.env, cwd: options.cwd, timeoutMs: options.timeoutMs }, callTimeout);
    return { exitCode: result.exitCode, signal: result.signal, stdout: Buffer.from(result.stdout, 'base64'), stderr: Buffer.from(result.stderr, 'base64') };
  }

  /** Starts argv in the background and returns its guest pid. */
  async start(argv: string[], options: { env?: string[]; cwd?: string } = {}): Promise<number> {
    return (await this.call('start', { argv, env: options.env, cwd: options.cwd })).pid;
  }

  async signal(pid: number, signal: string | number): Promise<void> {
    await this.call('signal', { pid, signal });
  }

  /** Waits for a started process to exit; the agent forgets it afterwards. */
  async wait(pid: number, timeoutMs = AGENT_CALL_TIMEOUT_MS): Promise<OpResults['wait']> {
    return this.call('wait', { pid }, timeoutMs);
  }

  call<O extends Op>(op: O, args: OpArgs[O], timeoutMs = AGENT_CALL_TIMEOUT_MS): Promise<OpResults[O]> {
    if (this.failure) return Promise.reject(this.failure);
    const clash = ENVELOPE_FIELDS.find((field) => field in args);
    if (clash) return Promise.reject(new AgentCallError('BadRequest', `'${op}' arguments must not use the envelope's field '${clash}'`));
    const id = this.nextId++;
    return new Promise<OpResults[O]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new AgentCallError('Timeout', `agent did not answer '${op}' (request ${id}) within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { op, resolve: resolve as (result: unknown) => void, reject, timer });
      this.socket.write(encodeFrame({ v: PROTOCOL_VERSION, id, op, ...args }));
    });
  }

  close(): void {
    this.fail(new AgentCallError('Disconnected', 'agent client closed'));
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    let responses: Response[];
    try {
      responses = this.decoder.push(chunk).map(parseResponse);
    } catch (err) {
      this.fail(new AgentCallError('Protocol', `malformed message from the agent: ${(err as Error).message}`));
      this.socket.destroy();
      return;
    }
    for (const response of responses) {
      const pending = this.pending.get(response.id);
      if (!pending) continue;
      this.pending.delete(response.id);
      clearTimeout(pending.timer);
      if (response.ok) pending.resolve(response.result);
      else pending.reject(new AgentCallError(response.error.code, `agent '${pending.op}': ${response.error.message}`));
    }
  }

  private fail(err: AgentCallError): void {
    this.failure ??= err;
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(err);
      this.pending.delete(id);
    }
  }
}

function connectOnce(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

export interface ProcessStreamsOptions {
  /** Also give the process's stdin (it must have been started with stdin). */
  stdin?: boolean;
  /** Resume after this seq of `epoch` (what an earlier reader's `cursor` and `epoch` were). */
  after?: number;
  epoch?: string;
  /** Ends the reading; the streams end without error. */
  signal?: AbortSignal;
}

/** A guest process's output and input as Node streams (see processStreams). */
export interface ProcessStreams {
  stdout: Readable;
  stderr: Readable;
  stdin: Writable | null;
  /** Settles once all output was pushed (the agent said eof) or reading stopped; rejects on an agent failure. */
  done: Promise<void>;
  /** The seq of the last chunk pushed and its numbering: where a new reader resumes. */
  readonly cursor: number;
  readonly epoch: string | undefined;
  /** Chunks the agent's bounded buffer dropped before they were read. */
  readonly dropped: number;
}

export interface OutputBatchOptions {
  /** Resume after this seq of `epoch` (where an earlier reader stopped). */
  after?: number;
  epoch?: string;
  /** Ends the reading at once, without waiting for the poll in flight. */
  signal?: AbortSignal;
}

/** One `readOutput` answer; `restarted` says the agent numbered the output anew and this batch starts over at seq 1. */
export type OutputBatch = ReadOutputResult & { restarted: boolean };

/**
 * A guest process's output as the agent hands it out: long-polled `readOutput` answers, each asking
 * for what follows the last chunk of the one before. When the agent restarted and numbered the output
 * anew (`epoch` changed), reading starts again at its beginning. Ends after the answer that says eof,
 * or when `signal` aborts; rejects on an agent failure.
 */
export async function* outputBatches(client: AgentClient, processId: string, options: OutputBatchOptions = {}): AsyncGenerator<OutputBatch> {
  let after = options.after ?? 0;
  let epoch = options.epoch;
  let restarted = false;
  const stopped = new Promise<null>((resolve) => {
    if (options.signal?.aborted) resolve(null);
    options.signal?.addEventListener('abort', () => resolve(null), { once: true });
  });
  for (;;) {
    const poll = client.call('readOutput', { processId, after, timeoutMs: OUTPUT_POLL_MS }, OUTPUT_POLL_MS + AGENT_CALL_TIMEOUT_MS);
    poll.catch(() => undefined);
    const answer = await Promise.race([poll, stopped]);
    if (answer === null) return;
    if (epoch !== undefined && answer.epoch !== epoch && after > 0) {
      epoch = answer.epoch;
      after = 0;
      restarted = true;
      continue;
    }
    epoch = answer.epoch;
    after = answer.chunks.at(-1)?.seq ?? after;
    yield { ...answer, restarted };
    restarted = false;
    if (answer.eof) return;
  }
}

/**
 * Turns a guest process's output buffer (a container's main process, or an exec) into stdout and
 * stderr streams (see outputBatches), and its stdin into a stream through `writeStdin` and
 * `closeStdin`. Output waits in the agent while a consumer is slow (the poll pauses on backpressure),
 * so the agent's bound, not host memory, limits what is held. When the agent restarted and numbered
 * the output anew, what the new agent still has may repeat output already pushed.
 */
export function processStreams(client: AgentClient, processId: string, options: ProcessStreamsOptions = {}): ProcessStreams {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const state = { cursor: options.after ?? 0, epoch: options.epoch, dropped: 0 };
  const stopped = new Promise<void>((resolve) => {
    if (options.signal?.aborted) resolve();
    options.signal?.addEventListener('abort', () => resolve(), { once: true });
  });
  const done = (async () => {
    for await (const answer of outputBatches(client, processId, options)) {
      if (answer.restarted) state.cursor = 0;
      state.epoch = answer.epoch;
      state.dropped += answer.dropped;
      for (const chunk of answer.chunks) {
        const target = chunk.stream === 'stderr' ? stderr : stdout;
        if (!target.write(Buffer.from(chunk.data, 'base64'))) await Promise.race([once(target, 'drain'), once(target, 'close'), stopped]);
        state.cursor = chunk.seq;
      }
    }
  })().finally(() => {
    stdout.end();
    stderr.end();
  });
  done.catch((err: Error) => {
    stdout.destroy(err);
    stderr.destroy(err);
  });
  const stdin = options.stdin
    ? new Writable({
        write(chunk: Buffer, _encoding, callback) {
          void (async () => {
            for (let at = 0; at < chunk.length; at += MAX_PAYLOAD_BYTES) {
              await client.call('writeStdin', { processId, data: chunk.subarray(at, at + MAX_PAYLOAD_BYTES).toString('base64') });
            }
          })().then(() => callback(), callback);
        },
        final(callback) {
          client.call('closeStdin', { processId }).then(() => callback(), callback);
        },
      })
    : null;
  return {
    stdout,
    stderr,
    stdin,
    done,
    get cursor() { return state.cursor; },
    get epoch() { return state.epoch; },
    get dropped() { return state.dropped; },
  };
}
