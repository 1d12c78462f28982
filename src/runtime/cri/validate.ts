// Request validation at the CRI boundary: a missing required field is INVALID_ARGUMENT naming it.
// The server checks REQUIRED_FIELDS before a handler runs, so handlers may trust those fields.
// Semantic checks (a log path outside the log root, an unknown handler) stay with the handlers.
import { CriError } from './errors.js';
import type { CriMethod } from './types.js';

/**
 * Dotted field paths each request must set. "Set" means not null, not '' and not an empty list;
 * zero numbers and false are legitimate values in proto3 and are never required.
 */
export const REQUIRED_FIELDS: Partial<Record<CriMethod, readonly string[]>> = {
  RunPodSandbox: ['config', 'config.metadata', 'config.metadata.name', 'config.metadata.uid', 'config.metadata.namespace'],
  StopPodSandbox: ['pod_sandbox_id'],
  RemovePodSandbox: ['pod_sandbox_id'],
  PodSandboxStatus: ['pod_sandbox_id'],
  CreateContainer: ['pod_sandbox_id', 'config', 'config.metadata', 'config.metadata.name', 'config.image', 'config.image.image'],
  StartContainer: ['container_id'],
  StopContainer: ['container_id'],
  RemoveContainer: ['container_id'],
  ContainerStatus: ['container_id'],
  UpdateContainerResources: ['container_id'],
  ReopenContainerLog: ['container_id'],
  ExecSync: ['container_id', 'cmd'],
  Exec: ['container_id', 'cmd'],
  Attach: ['container_id'],
  PortForward: ['pod_sandbox_id'],
  ContainerStats: ['container_id'],
  PodSandboxStats: ['pod_sandbox_id'],
  CheckpointContainer: ['container_id'],
  ImageStatus: ['image', 'image.image'],
  PullImage: ['image', 'image.image'],
  RemoveImage: ['image', 'image.image'],
};

function isUnset(value: unknown): boolean {
  return value === undefined || value === null || value === '' || (Array.isArray(value) && value.length === 0);
}

/** Throws INVALID_ARGUMENT for the first of `paths` that `request` leaves unset. */
export function requireFields(method: string, request: unknown, paths: readonly string[]): void {
  for (const path of paths) {
    let value: unknown = request;
    for (const key of path.split('.')) {
      value = value === null || typeof value !== 'object' ? undefined : (value as Record<string, unknown>)[key];
    }
    if (isUnset(value)) throw CriError.invalidArgument(`${method}: ${path} is required`);
  }
}

/** For handlers: returns `value`, or throws INVALID_ARGUMENT naming `field` when it is unset. */
export function required<T>(value: T | null | undefined, field: string): T {
  if (isUnset(value)) throw CriError.invalidArgument(`${field} is required`);
  return value as T;
}
