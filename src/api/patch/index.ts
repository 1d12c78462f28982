// The three PATCH bodies kube-apiserver accepts besides server-side apply, picked by Content-Type.
import { errors } from '../errors.js';
import type { Schema, SchemaResolver } from '../openapi/schema.js';
import { applyJsonPatch } from './json.js';
import { applyMergePatch, isJsonObject } from './merge.js';
import { applyStrategicMergePatch } from './strategic.js';

export { applyJsonPatch, JSON_PATCH_REJECTED, MAX_JSON_PATCH_OPERATIONS } from './json.js';
export { applyMergePatch } from './merge.js';
export { applyStrategicMergePatch } from './strategic.js';

export type PatchType = 'json' | 'merge' | 'strategic';

const CONTENT_TYPES = new Map<string, PatchType | 'apply'>([
  ['application/json-patch+json', 'json'],
  ['application/merge-patch+json', 'merge'],
  ['application/strategic-merge-patch+json', 'strategic'],
  ['application/apply-patch+yaml', 'apply'],
]);

/**
 * kube-apiserver's 415 for a patch type a resource does not take; custom resources have no Go struct
 * tags, so they refuse strategic merge patch with exactly this message.
 */
export const UNSUPPORTED_PATCH_MESSAGE =
  'the body of the request was in an unknown format - accepted media types include: ' +
  'application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml';

/** Maps a PATCH Content-Type (parameters such as charset ignored) to its patch type. */
export function patchTypeFromContentType(ct: string): PatchType | 'apply' | undefined {
  const mediaType = ct.split(';', 1)[0]!.trim().toLowerCase();
  return CONTENT_TYPES.get(mediaType);
}

/**
 * Applies a patch of the given type and returns the patched object; the inputs are left untouched.
 * Strategic merge patch needs the kind's schema; without one (custom resources) it is refused with 415.
 */
export function applyPatch(
  type: PatchType,
  original: unknown,
  patch: unknown,
  schema?: Schema,
  resolve?: SchemaResolver,
): unknown {
  switch (type) {
    case 'json':
      return applyJsonPatch(original, patch);
    case 'merge':
      if (!isJsonObject(patch)) throw errors.badRequest('merge patch must be a JSON object');
      return applyMergePatch(original, patch);
    case 'strategic':
      if (!schema) throw errors.unsupportedMediaType(UNSUPPORTED_PATCH_MESSAGE);
      return applyStrategicMergePatch(original, patch, schema, resolve ?? ((s) => s));
  }
}
