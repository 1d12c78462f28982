import { CriCode, isGrpcError } from '../../runtime/cri/index.js';

/**
 * Why a container could not be started on this sync. `reason` becomes its waiting reason
 * (ErrImagePull, CreateContainerConfigError, CrashLoopBackOff, ...) until a later sync starts it.
 */
export class StartError extends Error {
  override readonly name = 'StartError';
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

const GO_CODE_NAMES: Record<number, string> = {
  [CriCode.CANCELLED]: 'Canceled',
  [CriCode.UNKNOWN]: 'Unknown',
  [CriCode.INVALID_ARGUMENT]: 'InvalidArgument',
  [CriCode.DEADLINE_EXCEEDED]: 'DeadlineExceeded',
  [CriCode.NOT_FOUND]: 'NotFound',
  [CriCode.ALREADY_EXISTS]: 'AlreadyExists',
  [CriCode.PERMISSION_DENIED]: 'PermissionDenied',
  [CriCode.RESOURCE_EXHAUSTED]: 'ResourceExhausted',
  [CriCode.FAILED_PRECONDITION]: 'FailedPrecondition',
  [CriCode.ABORTED]: 'Aborted',
  [CriCode.OUT_OF_RANGE]: 'OutOfRange',
  [CriCode.UNIMPLEMENTED]: 'Unimplemented',
  [CriCode.INTERNAL]: 'Internal',
  [CriCode.UNAVAILABLE]: 'Unavailable',
  [CriCode.DATA_LOSS]: 'DataLoss',
  [CriCode.UNAUTHENTICATED]: 'Unauthenticated',
};

/** A failure's message as the kubelet shows a CRI error: `rpc error: code = NotFound desc = ...`. */
export function errorMessage(err: unknown): string {
  if (isGrpcError(err)) return `rpc error: code = ${GO_CODE_NAMES[err.code] ?? err.code} desc = ${err.details}`;
  return err instanceof Error ? err.message : String(err);
}

export function isNotFoundError(err: unknown): boolean {
  return isGrpcError(err) && err.code === CriCode.NOT_FOUND;
}
