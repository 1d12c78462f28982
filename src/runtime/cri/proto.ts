// Loads the CRI v1 proto (proto/runtime/v1/api.proto at the package root) for @grpc/grpc-js.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from './generated/api.js';

const PROTO_RELATIVE_PATH = join('proto', 'runtime', 'v1', 'api.proto');

/**
 * How messages become JS objects. The generated types in ./generated were produced with the same
 * settings (proto/gen-types.sh); change both together.
 * - keepCase: field names stay snake_case, exactly as on the wire contract.
 * - longs: Number. int64 nanosecond timestamps lose precision below ~256 ns; every other 64-bit value
 *   the CRI carries (bytes, quotas, counters) stays below 2^53.
 * - enums: String, so a state reads 'CONTAINER_RUNNING'. Numbers are accepted on the way out too.
 * - defaults: every absent scalar, list and map arrives as its zero value; absent messages as null.
 */
export const CRI_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: false,
};

/** The proto file, found by walking up from this module: works from src/ (tsx) and from dist/. */
export function criProtoPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, PROTO_RELATIVE_PATH);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cri: ${PROTO_RELATIVE_PATH} not found above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

let cached: ProtoGrpcType | undefined;

/** The `runtime.v1` package: service definitions and message types, loaded once per process. */
export function criPackage(): ProtoGrpcType {
  if (!cached) {
    const definition = protoLoader.loadSync(criProtoPath(), CRI_LOADER_OPTIONS);
    cached = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
  }
  return cached;
}
