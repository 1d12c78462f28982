import { RuntimeError, type RuntimeErrorCode } from '../handler.js';
import { AgentCallError } from './agent-client.js';
import { DiskSlotError } from './disk-slots.js';

/** Agent error codes that mean the same to a CRI caller as the runtime's own. */
const SAME_CODE: Partial<Record<string, RuntimeErrorCode>> = {
  NotFound: 'NotFound',
  AlreadyExists: 'AlreadyExists',
  CommandNotFound: 'CommandNotFound',
  ContainerRunning: 'ContainerRunning',
  NotRunning: 'NotRunning',
  DeadlineExceeded: 'DeadlineExceeded',
  BadRequest: 'InvalidArgument',
};

/**
 * A failure inside the runv handler as the RuntimeError CRI callers get, prefixed with what was being
 * done (`what`, naming the container or sandbox). An agent that did not answer in time is
 * 'DeadlineExceeded' and says so; an agent that cannot be reached is 'Internal'.
 */
export function runtimeError(err: unknown, what: string): RuntimeError {
  if (err instanceof RuntimeError) return err;
  if (err instanceof AgentCallError) {
    if (err.code === 'Timeout') return new RuntimeError('DeadlineExceeded', `${what}: the guest agent did not answer in time: ${err.message}`);
    if (err.code === 'Disconnected' || err.code === 'Protocol') return new RuntimeError('Internal', `${what}: the guest agent is unreachable: ${err.message}`);
    return new RuntimeError(SAME_CODE[err.code] ?? 'Internal', `${what}: ${err.message}`);
  }
  if (err instanceof DiskSlotError && err.code === 'NoFreeSlot') {
    return new RuntimeError('Internal', `${what}: the pod's VM has no free disk slot for another container (${err.message})`);
  }
  return new RuntimeError('Internal', `${what}: ${(err as Error).message ?? String(err)}`);
}
