/**
 * Kubernetes protobuf request bodies, decoded into the JSON object shape the rest of the API server
 * handles. kubectl's typed clients (create configmap/namespace/secret/role..., auth can-i, create token,
 * drain) send `application/vnd.kubernetes.protobuf` and do not retry with JSON, so the server has to
 * read it; responses stay JSON, which those clients also accept.
 *
 * A body is `k8s\x00` then a runtime.Unknown {typeMeta, raw, contentEncoding, contentType}; `raw` is
 * the object in go-to-protobuf's encoding, described field by field in schema.ts.
 */
import { errors } from '../errors.js';
import { Decoder, isProtobufMediaType } from './decode.js';

/** Matches kube-apiserver's default limit on a request body. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

export function isProtobufContentType(contentType: string): boolean {
  return isProtobufMediaType(contentType);
}

/**
 * The object a protobuf body holds, with `apiVersion` and `kind` from its envelope. Throws an
 * ApiError: 400 for malformed bytes, an unknown kind or too deep nesting, 413 for an oversized body,
 * 415 for a compressed or non-protobuf envelope.
 */
export function decodeKubernetesProtobuf(body: Buffer): Record<string, unknown> {
  if (body.length > MAX_BODY_BYTES) {
    throw errors.tooLarge(`protobuf body of ${body.length} bytes exceeds the limit of ${MAX_BODY_BYTES}`);
  }
  return new Decoder().object(body);
}
