import type { Status, StatusCause, StatusDetails } from './types.js';

/**
 * An error that maps to a Kubernetes `Status`. Every API-facing failure is one of these; anything else
 * that escapes a handler becomes a 500 InternalError.
 */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toStatus(): Status {
    const status: Status = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      code: this.code,
    };
    if (this.details) status.details = this.details;
    return status;
  }
}

export interface ResourceRef {
  group: string;
  /** plural resource name, e.g. "pods" */
  resource: string;
  name?: string;
}

function qualified(ref: ResourceRef): string {
  return ref.group ? `${ref.resource}.${ref.group}` : ref.resource;
}

function details(ref: ResourceRef, extra?: StatusDetails): StatusDetails {
  const d: StatusDetails = { group: ref.group || undefined, kind: ref.resource, ...extra };
  if (ref.name !== undefined) d.name = ref.name;
  if (d.group === undefined) delete d.group;
  return d;
}

export const errors = {
  notFound(ref: ResourceRef): ApiError {
    return new ApiError(404, 'NotFound', `${qualified(ref)} "${ref.name ?? ''}" not found`, details(ref));
  },
  alreadyExists(ref: ResourceRef): ApiError {
    return new ApiError(409, 'AlreadyExists', `${qualified(ref)} "${ref.name ?? ''}" already exists`, details(ref));
  },
  conflict(ref: ResourceRef, why: string): ApiError {
    return new ApiError(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${qualified(ref)} "${ref.name ?? ''}": ${why}`,
      details(ref),
    );
  },
  /** 422 with one cause per invalid field. `kind` is the object's kind, e.g. "Pod". */
  invalid(kind: string, group: string, name: string, causes: StatusCause[]): ApiError {
    const list = causes.map((c) => (c.field ? `${c.field}: ${c.message ?? ''}` : (c.message ?? ''))).join(', ');
    const summary = causes.length > 1 ? `[${list}]` : list;
    const d: StatusDetails = { name, kind, causes };
    if (group) d.group = group;
    return new ApiError(422, 'Invalid', `${kind}${group ? '.' + group : ''} "${name}" is invalid: ${summary}`, d);
  },
  badRequest(message: string, causes?: StatusCause[]): ApiError {
    return new ApiError(400, 'BadRequest', message, causes ? { causes } : undefined);
  },
  unauthorized(message = 'Unauthorized'): ApiError {
    return new ApiError(401, 'Unauthorized', message);
  },
  forbidden(ref: ResourceRef, message: string): ApiError {
    return new ApiError(403, 'Forbidden', message, details(ref));
  },
  methodNotAllowed(message: string): ApiError {
    return new ApiError(405, 'MethodNotAllowed', message);
  },
  notAcceptable(message: string): ApiError {
    return new ApiError(406, 'NotAcceptable', message);
  },
  /** 410: the requested resourceVersion has been compacted away. */
  expired(message: string): ApiError {
    return new ApiError(410, 'Expired', message);
  },
  gone(message: string): ApiError {
    return new ApiError(410, 'Gone', message);
  },
  tooLarge(message: string): ApiError {
    return new ApiError(413, 'RequestEntityTooLarge', message);
  },
  unsupportedMediaType(message: string): ApiError {
    return new ApiError(415, 'UnsupportedMediaType', message);
  },
  tooManyRequests(message: string, retryAfterSeconds = 1): ApiError {
    return new ApiError(429, 'TooManyRequests', message, { retryAfterSeconds });
  },
  internal(message: string): ApiError {
    return new ApiError(500, 'InternalError', `Internal error occurred: ${message}`);
  },
  timeout(message: string): ApiError {
    return new ApiError(504, 'Timeout', message);
  },
};

export function successStatus(details?: StatusDetails): Status {
  const s: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 200 };
  if (details) s.details = details;
  return s;
}
