/**
 * Errors of the image service. Each carries a `code` that the CRI layer maps to a gRPC status
 * (NotFound → NOT_FOUND, Unauthenticated → UNAUTHENTICATED, Unavailable → UNAVAILABLE,
 * DataLoss → DATA_LOSS, FailedPrecondition → FAILED_PRECONDITION, InvalidArgument → INVALID_ARGUMENT).
 */
export type ImageErrorCode =
  | 'NotFound'
  | 'Unauthenticated'
  | 'Unavailable'
  | 'DataLoss'
  | 'FailedPrecondition'
  | 'InvalidArgument'
  | 'Unimplemented'
  | 'Internal';

export class ImageError extends Error {
  constructor(
    readonly code: ImageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class InvalidReferenceError extends ImageError {
  constructor(readonly reference: string, reason: string) {
    super('InvalidArgument', `invalid image reference ${JSON.stringify(reference)}: ${reason}`);
  }
}

/** The registry answered, and it has no such repository, tag, manifest or blob. */
export class NotFoundError extends ImageError {
  constructor(message: string) {
    super('NotFound', message);
  }
}

export class UnauthorizedError extends ImageError {
  constructor(readonly host: string, message: string) {
    super('Unauthenticated', message);
  }
}

/** The registry could not be reached at all: refused, reset, timed out, DNS or TLS failure. */
export class UnreachableError extends ImageError {
  constructor(readonly host: string, message: string, cause?: unknown) {
    super('Unavailable', message, { cause });
  }
}

export class DigestMismatchError extends ImageError {
  constructor(
    readonly expected: string,
    readonly actual: string,
    what: string,
  ) {
    super('DataLoss', `digest mismatch for ${what}: expected ${expected}, got ${actual}`);
  }
}

export class ImageInUseError extends ImageError {
  constructor(readonly imageId: string, reference: string) {
    super('FailedPrecondition', `image ${reference} (${imageId}) is in use by a container; remove the container first`);
  }
}

/** A registry or archive answered with something this runtime does not handle (schema1, zstd, ...). */
export class UnsupportedError extends ImageError {
  constructor(message: string) {
    super('Unimplemented', message);
  }
}

/** Content read back from a registry, an archive or the disk that does not have the required shape. */
export class MalformedError extends ImageError {
  constructor(message: string) {
    super('InvalidArgument', message);
  }
}

export interface PullAttempt {
  endpoint: string;
  repository: string;
  error: ImageError;
}

/**
 * A pull that tried several endpoints (mirrors, then the origin) and failed on each. Its code is the
 * last attempt's; its message lists every attempt.
 */
export class PullError extends ImageError {
  constructor(readonly reference: string, readonly attempts: PullAttempt[]) {
    const last = attempts[attempts.length - 1];
    const lines = attempts.map((a) => `  ${a.endpoint} (${a.repository}): ${a.error.message}`);
    super(last?.error.code ?? 'Internal', `pull ${reference} failed on every endpoint:\n${lines.join('\n')}`);
  }
}

/** Wraps anything thrown by lower layers so callers only ever see ImageError. */
export function asImageError(err: unknown): ImageError {
  if (err instanceof ImageError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new ImageError('Internal', message, { cause: err });
}
