// The CRI v1 message types and the shape of an implementation that serveCri() puts on the socket.
//
// Every message X has two types, generated from the proto by proto/gen-types.sh:
// - `X__Output` is what arrives: all scalar fields, lists and maps present (zero values when unset),
//   nested messages `| null`, enums as their names, int64 as number.
// - `X` is what may be sent: every field optional, enums as name or number, int64 as number or string.
// A handler therefore receives `XRequest__Output` and returns `XResponse`; the client does the reverse.
import type * as grpc from '@grpc/grpc-js';
import type { MethodDefinition } from '@grpc/proto-loader';
import type { ImageServiceDefinition } from './generated/runtime/v1/ImageService.js';
import type { RuntimeServiceDefinition } from './generated/runtime/v1/RuntimeService.js';

export * from './generated/index.js';

/** What a handler learns about its call besides the request. */
export interface CriCall {
  /** `RuntimeService/Version`, `ImageService/PullImage`, ... */
  readonly method: string;
  /** Aborted when the client cancels or its deadline passes. */
  readonly signal: AbortSignal;
  readonly metadata: grpc.Metadata;
}

/** The server side of a server-streaming call (GetContainerEvents). */
export interface CriEventSink<T> {
  /** Queues one message; returns false when the client is gone (the handler should stop). */
  send(message: T): boolean;
}

/** The generated service definitions minus grpc-js's `[name: string]` index signature. */
type KnownKeys<T> = { [K in keyof T as string extends K ? never : number extends K ? never : K]: T[K] };
type Definitions = KnownKeys<RuntimeServiceDefinition> & KnownKeys<ImageServiceDefinition>;

/** The RPC names of both services, as in the proto. */
export type CriMethod = keyof Definitions;
export type CriStreamingMethod = 'GetContainerEvents';
export type CriUnaryMethod = Exclude<CriMethod, CriStreamingMethod>;

/** A request as the client may send it. */
export type CriRequest<M extends CriMethod> = Definitions[M] extends MethodDefinition<infer Q, infer _R, infer _QO, infer _RO> ? Q : never;
/** A request as a handler receives it. */
export type CriRequestReceived<M extends CriMethod> = Definitions[M] extends MethodDefinition<infer _Q, infer _R, infer QO, infer _RO> ? QO : never;
/** A response as a handler may return it. */
export type CriResponse<M extends CriMethod> = Definitions[M] extends MethodDefinition<infer _Q, infer R, infer _QO, infer _RO> ? R : never;
/** A response as the client receives it. */
export type CriResponseReceived<M extends CriMethod> = Definitions[M] extends MethodDefinition<infer _Q, infer _R, infer _QO, infer RO> ? RO : never;

/**
 * One async function per CRI RPC of both services, named as in the proto. A handler either returns
 * the response or throws: a CriError becomes its gRPC status, anything else INTERNAL.
 * GetContainerEvents instead sends events into the sink until call.signal aborts, then returns.
 */
export type CriImplementation = {
  [M in CriUnaryMethod]: (request: CriRequestReceived<M>, call: CriCall) => Promise<CriResponse<M>> | CriResponse<M>;
} & {
  [M in CriStreamingMethod]: (
    request: CriRequestReceived<M>,
    sink: CriEventSink<CriResponse<M>>,
    call: CriCall,
  ) => Promise<void>;
};
