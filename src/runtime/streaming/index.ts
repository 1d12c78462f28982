export { openChannelSession, channelStatus, channelText, type ChannelSession } from './client.js';
export { StreamingServer, DEFAULT_STREAMING_ADDRESS, type StreamingServerOptions } from './server.js';
export type { StreamingRuntime, StreamSession, ExecRequest, AttachRequest, PortForwardRequest } from './runtime.js';
export { dialInNetns } from './portforward.js';
export { TOKEN_TTL_MS } from './tokens.js';
export * from './protocol.js';
export { conmonAttach, type ConmonAttachOptions } from './attach.js';
