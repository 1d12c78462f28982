// criClient(): a promise-based CRI v1 client over a unix socket, for tests, the node agent and the bench.
// Methods carry the RPC names of the proto (client.RunPodSandbox(...)); every call has a deadline.
import * as grpc from '@grpc/grpc-js';
import { criPackage } from './proto.js';
import { CRI_MAX_MESSAGE_BYTES, socketPathOf } from './server.js';
import type { CriRequest, CriResponseReceived, CriStreamingMethod, CriUnaryMethod } from './types.js';

/** The kubelet's default --runtime-request-timeout. */
export const CRI_CALL_TIMEOUT_MS = 2 * 60_000;
/** Pulls are long; the kubelet puts no deadline on them, we put a generous one. */
export const CRI_PULL_TIMEOUT_MS = 30 * 60_000;

export interface CriClientOptions {
  /** Deadline for every call unless the call gives its own; default CRI_CALL_TIMEOUT_MS (pulls: CRI_PULL_TIMEOUT_MS). */
  timeoutMs?: number;
}

export interface CriCallOptions {
  /** This call's deadline. ExecSync adds its own request.timeout on top, as the kubelet does. */
  timeoutMs?: number;
  /** Cancels the call; the promise then rejects with CANCELLED. */
  signal?: AbortSignal;
}

export type CriClient = {
  [M in CriUnaryMethod]: (request?: CriRequest<M>, options?: CriCallOptions) => Promise<CriResponseReceived<M>>;
} & {
  /** Container events until `signal` aborts (then the iteration just ends) or the server ends the stream. */
  GetContainerEvents(
    request?: CriRequest<CriStreamingMethod>,
    options?: { signal?: AbortSignal },
  ): AsyncIterable<CriResponseReceived<CriStreamingMethod>>;
  close(): void;
};

type UnaryCall = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (err: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

export function criClient(endpoint: string, options: CriClientOptions = {}): CriClient {
  const target = `unix://${socketPathOf(endpoint)}`;
  const v1 = criPackage().runtime.v1;
  const channelOptions: grpc.ChannelOptions = {
    'grpc.max_receive_message_length': CRI_MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': CRI_MAX_MESSAGE_BYTES,
  };
  const runtime = new v1.RuntimeService(target, grpc.credentials.createInsecure(), channelOptions);
  const image = new v1.ImageService(target, grpc.credentials.createInsecure(), channelOptions);

  const client: Record<string, unknown> = {};
  for (const [stub, service] of [
    [runtime, v1.RuntimeService.service],
    [image, v1.ImageService.service],
  ] as const) {
    for (const [name, definition] of Object.entries(service)) {
      if (definition.responseStream) continue;
      const call = (stub as unknown as Record<string, UnaryCall>)[name]!.bind(stub);
      client[name] = (request: Record<string, unknown> = {}, callOptions: CriCallOptions = {}) =>
        new Promise((resolveCall, rejectCall) => {
          const deadline = new Date(Date.now() + deadlineMs(name, request, options, callOptions));
          const inFlight = call(request, new grpc.Metadata(), { deadline }, (err, response) =>
            err ? rejectCall(err) : resolveCall(response),
          );
          callOptions.signal?.addEventListener('abort', () => inFlight.cancel(), { once: true });
        });
    }
  }

  client.GetContainerEvents = (request: Record<string, unknown> = {}, callOptions: { signal?: AbortSignal } = {}) =>
    events(runtime, request, callOptions.signal);
  client.close = () => {
    runtime.close();
    image.close();
  };
  return client as CriClient;
}

function deadlineMs(
  method: string,
  request: Record<string, unknown>,
  clientOptions: CriClientOptions,
  callOptions: CriCallOptions,
): number {
  const base =
    callOptions.timeoutMs ?? clientOptions.timeoutMs ?? (method === 'PullImage' ? CRI_PULL_TIMEOUT_MS : CRI_CALL_TIMEOUT_MS);
  const execSeconds = method === 'ExecSync' ? Number(request.timeout ?? 0) : 0;
  return base + execSeconds * 1000;
}

async function* events(
  runtime: grpc.Client,
  request: Record<string, unknown>,
  signal: AbortSignal | undefined,
): AsyncGenerator<CriResponseReceived<CriStreamingMethod>> {
  const stream = (runtime as unknown as Record<string, (req: unknown) => grpc.ClientReadableStream<unknown>>)
    .GetContainerEvents!.call(runtime, request);
  const cancel = () => stream.cancel();
  signal?.addEventListener('abort', cancel, { once: true });
  try {
    for await (const event of stream) yield event as CriResponseReceived<CriStreamingMethod>;
  } catch (err) {
    if (!(signal?.aborted && (err as grpc.ServiceError).code === grpc.status.CANCELLED)) throw err;
  } finally {
    signal?.removeEventListener('abort', cancel);
    stream.cancel();
  }
}
