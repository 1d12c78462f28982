/**
 * The guest agent protocol's wire format, shared by the host-side client and the agent inside the VM.
 * PROTOCOL.md beside this file is the specification; this module holds only Node built-ins so that it
 * runs unchanged in the guest.
 *
 * A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON.
 */

/** The protocol versions this build speaks, newest last. */
export const PROTOCOL_VERSIONS = [1] as const;
export const PROTOCOL_VERSION = 1;
/** Larger frames are refused: a corrupt length prefix must not make either side allocate gigabytes. */
export const MAX_FRAME_BYTES = 16 * 1024 * 1024;
const HEADER_BYTES = 4;
/** The virtio-serial port name the agent listens on (the guest sees it under /sys/class/virtio-ports). */
export const AGENT_PORT_NAME = 'atoll.agent';

export type Op = 'hello' | 'exec' | 'start' | 'signal' | 'wait';
export const OPS: readonly Op[] = ['hello', 'exec', 'start', 'signal', 'wait'];

export interface HelloArgs { versions: number[] }
export interface HelloResult { version: number; agent: string; kernelRelease: string }

/** Runs a command to completion and collects its output (base64, since output is bytes). */
export interface ExecArgs { argv: string[]; env?: string[]; cwd?: string; timeoutMs?: number }
export interface ExecResult { exitCode: number; signal: string | null; stdout: string; stderr: string }

/** Starts a command in the background; its stdio is discarded in version 1. */
export interface StartArgs { argv: string[]; env?: string[]; cwd?: string }
export interface StartResult { pid: number }

export interface SignalArgs { pid: number; signal: string | number }
export interface WaitArgs { pid: number }
export interface WaitResult { exitCode: number; signal: string | null }

export interface OpArgs { hello: HelloArgs; exec: ExecArgs; start: StartArgs; signal: SignalArgs; wait: WaitArgs }
export interface OpResults { hello: HelloResult; exec: ExecResult; start: StartResult; signal: Record<string, never>; wait: WaitResult }

export type Request<O extends Op = Op> = { v: number; id: number; op: O } & OpArgs[O];

/** Error codes an agent answers with. */
export type AgentErrorCode = 'BadRequest' | 'UnsupportedVersion' | 'UnknownOp' | 'CommandNotFound' | 'NoSuchProcess' | 'DeadlineExceeded' | 'Internal';

export type Response =
  | { v: number; id: number; ok: true; result: unknown }
  | { v: number; id: number; ok: false; error: { code: AgentErrorCode; message: string } };

/** A frame or message that breaks the protocol. The connection carrying it can no longer be trusted. */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

export function encodeFrame(message: object): Buffer {
  const body = Buffer.from(JSON.stringify(message), 'utf8');
  if (body.length > MAX_FRAME_BYTES) throw new ProtocolError(`frame of ${body.length} bytes exceeds the ${MAX_FRAME_BYTES}-byte limit`);
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32BE(body.length, 0);
  return Buffer.concat([header, body]);
}

/**
 * Splits a byte stream into JSON messages. `push` returns every message completed by the chunk; it
 * throws ProtocolError on an oversized length or a body that is not a JSON object, after which the
 * decoder refuses further input (the stream's framing is lost).
 */
export class FrameDecoder {
  private buffer: Buffer = Buffer.alloc(0);
  private broken: ProtocolError | null = null;

  push(chunk: Buffer): Record<string, unknown>[] {
    if (this.broken) throw this.broken;
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const messages: Record<string, unknown>[] = [];
    while (this.buffer.length >= HEADER_BYTES) {
      const length = this.buffer.readUInt32BE(0);
      if (length > MAX_FRAME_BYTES) this.fail(`frame length ${length} exceeds the ${MAX_FRAME_BYTES}-byte limit`);
      if (this.buffer.length < HEADER_BYTES + length) break;
      const body = this.buffer.subarray(HEADER_BYTES, HEADER_BYTES + length);
      this.buffer = this.buffer.subarray(HEADER_BYTES + length);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch (err) {
        this.fail(`frame body is not JSON: ${(err as Error).message}`);
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) this.fail('frame body is not a JSON object');
      messages.push(parsed as Record<string, unknown>);
    }
    return messages;
  }

  /** Bytes of an incomplete frame still waiting for the rest. */
  get pending(): number {
    return this.buffer.length;
  }

  private fail(message: string): never {
    this.broken = new ProtocolError(message);
    throw this.broken;
  }
}

function isId(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/** Checks the envelope of a message from the host. Per-op arguments are checked by the agent's handlers. */
export function parseRequest(message: Record<string, unknown>): Request {
  if (!isId(message.id)) throw new ProtocolError(`request 'id' must be a non-negative integer, got ${JSON.stringify(message.id)}`);
  if (!Number.isSafeInteger(message.v)) throw new ProtocolError(`request ${message.id}: 'v' must be an integer, got ${JSON.stringify(message.v)}`);
  if (typeof message.op !== 'string') throw new ProtocolError(`request ${message.id}: 'op' must be a string`);
  return message as unknown as Request;
}

/** Checks a message from the agent. */
export function parseResponse(message: Record<string, unknown>): Response {
  if (!isId(message.id)) throw new ProtocolError(`response 'id' must be a non-negative integer, got ${JSON.stringify(message.id)}`);
  if (!Number.isSafeInteger(message.v)) throw new ProtocolError(`response ${message.id}: 'v' must be an integer`);
  if (message.ok === true) {
    if (!('result' in message)) throw new ProtocolError(`response ${message.id}: 'result' is missing`);
  } else if (message.ok === false) {
    const error = message.error as { code?: unknown; message?: unknown } | undefined;
    if (typeof error !== 'object' || error === null || typeof error.code !== 'string' || typeof error.message !== 'string') {
      throw new ProtocolError(`response ${message.id}: 'error' must be {code, message} strings`);
    }
  } else {
    throw new ProtocolError(`response ${message.id}: 'ok' must be true or false`);
  }
  return message as unknown as Response;
}
