// serveCri(): puts a CriImplementation on a unix socket as the CRI v1 RuntimeService and ImageService.
//
// The plumbing every runtime shares: the socket file (parent directory, stale socket, mode 0660),
// request validation (REQUIRED_FIELDS), UNIMPLEMENTED for every RPC the implementation lacks, and
// error mapping: a thrown CriError keeps its code, anything else is INTERNAL and logged.
import { lstat, mkdir, chmod, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { CriError } from './errors.js';
import { criPackage } from './proto.js';
import type { CriCall, CriImplementation, CriMethod } from './types.js';
import { REQUIRED_FIELDS, requireFields } from './validate.js';

export const CRI_SOCKET_PATH = '/run/atoll/cri.sock';
const SOCKET_MODE = 0o660;
const SOCKET_DIR_MODE = 0o755;
/** The kubelet's own limit for CRI messages, in both directions. */
export const CRI_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** How long close() lets in-flight calls finish before cutting them off. */
const SHUTDOWN_GRACE_MS = 5_000;
/** How long to wait for an existing socket to answer before calling it stale. */
const STALE_PROBE_TIMEOUT_MS = 1_000;

export interface CriServer {
  /** The absolute path of the socket file. */
  readonly socketPath: string;
  /** Stops accepting calls, ends event streams, waits up to a grace period, removes the socket. */
  close(): Promise<void>;
}

export interface ServeCriOptions {
  /** Where internal errors are reported; default stderr. */
  log?: (line: string) => void;
}

/** Accepts `/run/atoll/cri.sock` or `unix:///run/atoll/cri.sock`. */
export function socketPathOf(endpoint: string): string {
  return resolve(endpoint.startsWith('unix://') ? endpoint.slice('unix://'.length) : endpoint);
}

export async function serveCri(
  endpoint: string,
  implementation: Partial<CriImplementation>,
  options: ServeCriOptions = {},
): Promise<CriServer> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const socketPath = socketPathOf(endpoint);
  await mkdir(dirname(socketPath), { recursive: true, mode: SOCKET_DIR_MODE });
  await removeStaleSocket(socketPath);

  const streams = new Set<AbortController>();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': CRI_MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': CRI_MAX_MESSAGE_BYTES,
  });
  const v1 = criPackage().runtime.v1;
  for (const [serviceName, service] of [
    ['RuntimeService', v1.RuntimeService.service],
    ['ImageService', v1.ImageService.service],
  ] as const) {
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const [name, definition] of Object.entries(service)) {
      const method = `${serviceName}/${name}`;
      handlers[name] = definition.responseStream
        ? streamingHandler(method, name as CriMethod, implementation, streams, log)
        : unaryHandler(method, name as CriMethod, implementation, log);
    }
    server.addService(service, handlers);
  }

  await new Promise<void>((resolveBind, rejectBind) => {
    server.bindAsync(`unix://${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err ? rejectBind(new Error(`cri: cannot listen on ${socketPath}: ${err.message}`)) : resolveBind(),
    );
  });
  await chmod(socketPath, SOCKET_MODE);

  let closing: Promise<void> | undefined;
  return {
    socketPath,
    close() {
      closing ??= (async () => {
        for (const stream of streams) stream.abort();
        await new Promise<void>((done) => {
          const timer = setTimeout(() => {
            server.forceShutdown();
            done();
          }, SHUTDOWN_GRACE_MS);
          server.tryShutdown(() => {
            clearTimeout(timer);
            done();
          });
        });
        await unlink(socketPath).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
      })();
      return closing;
    },
  };
}

/**
 * A socket file nobody answers on is left over from a runtime that died; it is removed. A socket
 * that answers belongs to a live runtime and is never taken over, and a non-socket is never deleted.
 */
async function removeStaleSocket(socketPath: string): Promise<void> {
  const stat = await lstat(socketPath).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (!stat) return;
  if (!stat.isSocket()) throw new Error(`cri: ${socketPath} exists and is not a socket; move it away or pick another path`);
  if (await socketAnswers(socketPath)) {
    throw new Error(`cri: ${socketPath} is in use by a running process; stop it or pick another path`);
  }
  await unlink(socketPath);
}

function socketAnswers(socketPath: string): Promise<boolean> {
  return new Promise((answer) => {
    const socket = connect(socketPath);
    const finish = (live: boolean) => {
      socket.destroy();
      answer(live);
    };
    socket.setTimeout(STALE_PROBE_TIMEOUT_MS, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

type Handler = (request: unknown, ...rest: unknown[]) => unknown;

function lookup(implementation: Partial<CriImplementation>, name: CriMethod): Handler | undefined {
  const fn = (implementation as Record<string, unknown>)[name];
  return typeof fn === 'function' ? (fn as Handler).bind(implementation) : undefined;
}

function unaryHandler(
  method: string,
  name: CriMethod,
  implementation: Partial<CriImplementation>,
  log: (line: string) => void,
): grpc.handleUnaryCall<unknown, unknown> {
  const fn = lookup(implementation, name);
  return (call, callback) => {
    if (!fn) {
      callback(unimplemented(method));
      return;
    }
    const { context } = callContext(method, call);
    const run = async () => {
      requireFields(method, call.request, REQUIRED_FIELDS[name] ?? []);
      return fn(call.request, context);
    };
    run().then(
      (response) => callback(null, response ?? {}),
      (err: unknown) => callback(toStatus(method, err, log)),
    );
  };
}

function streamingHandler(
  method: string,
  name: CriMethod,
  implementation: Partial<CriImplementation>,
  streams: Set<AbortController>,
  log: (line: string) => void,
): grpc.handleServerStreamingCall<unknown, unknown> {
  const fn = lookup(implementation, name);
  return (call) => {
    if (!fn) {
      call.emit('error', unimplemented(method));
      return;
    }
    const { context, controller } = callContext(method, call);
    streams.add(controller);
    const sink = {
      send(message: unknown): boolean {
        if (controller.signal.aborted || call.cancelled) return false;
        call.write(message);
        return true;
      },
    };
    const run = async () => {
      requireFields(method, call.request, REQUIRED_FIELDS[name] ?? []);
      await fn(call.request, sink, context);
    };
    run().then(
      () => call.end(),
      (err: unknown) => call.emit('error', toStatus(method, err, log)),
    ).finally(() => streams.delete(controller));
  };
}

function callContext(
  method: string,
  call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>,
): { context: CriCall; controller: AbortController } {
  const controller = new AbortController();
  call.on('cancelled', () => controller.abort(new CriError(grpc.status.CANCELLED, `${method}: cancelled by the client`)));
  return { context: { method, signal: controller.signal, metadata: call.metadata }, controller };
}

function unimplemented(method: string): Partial<grpc.StatusObject> {
  return { code: grpc.status.UNIMPLEMENTED, details: `${method} is not implemented by the atoll runtime` };
}

function toStatus(method: string, err: unknown, log: (line: string) => void): Partial<grpc.StatusObject> {
  if (err instanceof CriError) return { code: err.code, details: err.message };
  const message = err instanceof Error ? err.message : String(err);
  log(`cri: ${method}: internal error: ${err instanceof Error ? (err.stack ?? message) : message}`);
  return { code: grpc.status.INTERNAL, details: `${method}: ${message}` };
}
