export { openChannelSession, channelStatus, channelText, type ChannelSession } from './client.js';
export {
  connectSpdy,
  openSpdyExec,
  openSpdyPortForward,
  readAll,
  type SpdyConnection,
  type SpdyExecOptions,
  type SpdyExecSession,
  type SpdyForwardedConnection,
  type SpdyPortForward,
} from './spdy-client.js';
export { SpdySession, SpdyStream, STREAM_REPLY_TIMEOUT_MS } from './spdy-session.js';
export { SPDY_COMMAND_PROTOCOLS, SPDY_PORTFORWARD_PROTOCOLS } from './spdy-handshake.js';
export { StreamingServer, DEFAULT_STREAMING_ADDRESS, STREAM_CREATION_TIMEOUT_MS, type StreamingServerOptions } from './server.js';
export type { PortDialer, StreamingRuntime, StreamSession, ExecRequest, AttachRequest, PortForwardRequest } from './runtime.js';
export { dialInNetns } from './portforward.js';
export { TOKEN_TTL_MS } from './tokens.js';
export * from './protocol.js';
export { conmonAttach, type ConmonAttachOptions } from './attach.js';
export { scriptTerminalResizer } from './terminal.js';
