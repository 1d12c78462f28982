// The node server (kubelet port 10250): logs, exec, attach, port-forward, pods, stats and Prometheus metrics.
export { startNodeServer, DEFAULT_NODE_SERVER_PORT, type NodeServer, type NodeServerOptions } from './server.js';
export { NodeAuthorizer, requestAttributes, type NodeRequestAttributes } from './auth.js';
export { streamContainerLog, type ContainerLogOptions, type ContainerLogSource } from './container-logs.js';
export { parseCriLogLine, LogFormatter, tailOffset, type CriLogLine } from './cri-log.js';
export { parseLogQuery, type LogQuery } from './log-options.js';
