// The errors of the parts below the CRI service, as gRPC statuses.
import { CriCode, CriError } from '../cri/index.js';
import { RuntimeError, type RuntimeErrorCode } from '../handler.js';
import { ImageError, type ImageErrorCode } from '../images/errors.js';
import { SnapshotError, type SnapshotErrorCode } from '../snapshots/snapshotter.js';
import { DiffIdMismatchError } from '../snapshots/unpack.js';

const RUNTIME: Record<RuntimeErrorCode, CriCode> = {
  NotFound: CriCode.NOT_FOUND,
  AlreadyExists: CriCode.ALREADY_EXISTS,
  InvalidArgument: CriCode.INVALID_ARGUMENT,
  // containerd answers a missing executable with UNKNOWN; a precise code serves callers better.
  CommandNotFound: CriCode.INVALID_ARGUMENT,
  ContainerRunning: CriCode.FAILED_PRECONDITION,
  NotRunning: CriCode.FAILED_PRECONDITION,
  DeadlineExceeded: CriCode.DEADLINE_EXCEEDED,
  Internal: CriCode.INTERNAL,
};

const IMAGE: Record<ImageErrorCode, CriCode> = {
  NotFound: CriCode.NOT_FOUND,
  Unauthenticated: CriCode.UNAUTHENTICATED,
  Unavailable: CriCode.UNAVAILABLE,
  DataLoss: CriCode.DATA_LOSS,
  FailedPrecondition: CriCode.FAILED_PRECONDITION,
  InvalidArgument: CriCode.INVALID_ARGUMENT,
  Unimplemented: CriCode.UNIMPLEMENTED,
  Internal: CriCode.INTERNAL,
};

const SNAPSHOT: Record<SnapshotErrorCode, CriCode> = {
  'not-found': CriCode.NOT_FOUND,
  exists: CriCode.ALREADY_EXISTS,
  'has-children': CriCode.FAILED_PRECONDITION,
  'failed-precondition': CriCode.FAILED_PRECONDITION,
  invalid: CriCode.INVALID_ARGUMENT,
};

/** `err` as a CriError; errors without a known code become INTERNAL with `context` in front. */
export function toCriError(err: unknown, context: string): CriError {
  if (err instanceof CriError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const prefixed = `${context}: ${message}`;
  if (err instanceof RuntimeError) return new CriError(RUNTIME[err.code], prefixed);
  if (err instanceof ImageError) return new CriError(IMAGE[err.code], prefixed);
  if (err instanceof SnapshotError) return new CriError(SNAPSHOT[err.code], prefixed);
  if (err instanceof DiffIdMismatchError) return new CriError(CriCode.DATA_LOSS, prefixed);
  return new CriError(CriCode.INTERNAL, prefixed);
}
