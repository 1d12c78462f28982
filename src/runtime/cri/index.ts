// The CRI v1 wire contract and its gRPC plumbing: serveCri() for runtimes, criClient() for callers.
export { criClient, CRI_CALL_TIMEOUT_MS, CRI_PULL_TIMEOUT_MS } from './client.js';
export type { CriCallOptions, CriClient, CriClientOptions } from './client.js';
export { CriCode, CriError, isGrpcError } from './errors.js';
export { criPackage, criProtoPath, CRI_LOADER_OPTIONS } from './proto.js';
export { CRI_MAX_MESSAGE_BYTES, CRI_SOCKET_PATH, serveCri, socketPathOf } from './server.js';
export type { CriServer, ServeCriOptions } from './server.js';
export * from './types.js';
export { REQUIRED_FIELDS, required, requireFields } from './validate.js';
