// RFC 6902 JSON patch, the body of `application/json-patch+json`. Status codes follow kube-apiserver:
// a body that does not decode as a list of operations is 400 BadRequest, a list longer than the server
// limit is 413, and an operation that cannot be applied (unknown op, unresolvable path, failed `test`)
// is 422 Invalid with the apiserver's fixed message.
import jsonpatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { ApiError, errors } from '../errors.js';
import { cloneJson, isJsonObject } from './merge.js';

/** kube-apiserver's cap on operations in one JSON patch. */
export const MAX_JSON_PATCH_OPERATIONS = 10000;

const OPERATIONS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

/** The message kube-apiserver sends with every 422 from JSON patch application. */
export const JSON_PATCH_REJECTED = 'the server rejected our request due to an error in our request';

function rejected(detail: string): ApiError {
  return new ApiError(422, 'Invalid', JSON_PATCH_REJECTED, { causes: [{ message: detail }] });
}

function decodeOperations(ops: unknown): Operation[] {
  if (!Array.isArray(ops)) {
    throw errors.badRequest('json patch must be a JSON array of operations');
  }
  ops.forEach((op, i) => {
    if (!isJsonObject(op)) throw errors.badRequest(`json patch operation ${i} is not a JSON object`);
  });
  if (ops.length > MAX_JSON_PATCH_OPERATIONS) {
    throw errors.tooLarge(
      `Request entity too large: The allowed maximum operations in a JSON patch is ${MAX_JSON_PATCH_OPERATIONS}, got ${ops.length}`,
    );
  }
  ops.forEach((op: Record<string, unknown>, i) => {
    if (typeof op.op !== 'string' || !OPERATIONS.has(op.op)) {
      throw rejected(`operation ${i}: unexpected op ${JSON.stringify(op.op ?? null)}`);
    }
    if (typeof op.path !== 'string') throw rejected(`operation ${i} (${op.op}): missing path`);
    if ((op.op === 'move' || op.op === 'copy') && typeof op.from !== 'string') {
      throw rejected(`operation ${i} (${op.op}): missing from`);
    }
    if ((op.op === 'add' || op.op === 'replace' || op.op === 'test') && !Object.hasOwn(op, 'value')) {
      throw rejected(`operation ${i} (${op.op}): missing value`);
    }
  });
  // fast-json-patch inserts operation values by reference; cloning keeps the result independent of the input.
  return cloneJson(ops) as Operation[];
}

/** Applies a JSON patch to `target` and returns the result. Neither input is modified. */
export function applyJsonPatch(target: unknown, ops: unknown): unknown {
  const operations = decodeOperations(ops);
  try {
    return jsonpatch.applyPatch(target, operations, true, false).newDocument;
  } catch (err) {
    // fast-json-patch appends the operation and the whole document to its message; keep only the reason.
    const reason = (err instanceof Error ? err.message : String(err)).split('\n', 1)[0]!;
    if (err instanceof jsonpatch.JsonPatchError && err.index !== undefined) {
      const op = operations[err.index]!;
      throw rejected(`operation ${err.index} (${op.op} ${op.path}): ${reason}`);
    }
    throw rejected(reason);
  }
}
