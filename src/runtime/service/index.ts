// The CRI v1 services of `atoll runtime`: RuntimeService ties sandboxes, networks, images, snapshots and handlers together.
export { CRI_API_VERSION, RUNTIME_NAME, RUNTIME_VERSION, RuntimeService } from './service.js';
export type { RuntimeServiceOptions } from './service.js';
export { containerLogPath, containerSpec } from './spec.js';
export { toCriError } from './errors.js';
