// CriError: how a handler answers with a precise gRPC status instead of INTERNAL.
import { status } from '@grpc/grpc-js';

export { status as CriCode };

export class CriError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = 'CriError';
  }

  static invalidArgument(message: string): CriError {
    return new CriError(status.INVALID_ARGUMENT, message);
  }

  static notFound(message: string): CriError {
    return new CriError(status.NOT_FOUND, message);
  }

  static alreadyExists(message: string): CriError {
    return new CriError(status.ALREADY_EXISTS, message);
  }

  static failedPrecondition(message: string): CriError {
    return new CriError(status.FAILED_PRECONDITION, message);
  }

  static unavailable(message: string): CriError {
    return new CriError(status.UNAVAILABLE, message);
  }

  static deadlineExceeded(message: string): CriError {
    return new CriError(status.DEADLINE_EXCEEDED, message);
  }

  static unimplemented(message: string): CriError {
    return new CriError(status.UNIMPLEMENTED, message);
  }
}

/** True for errors a gRPC client call rejects with: they carry the status code and its details. */
export function isGrpcError(err: unknown): err is Error & { code: status; details: string } {
  return err instanceof Error && typeof (err as { code?: unknown }).code === 'number' && 'details' in err;
}
