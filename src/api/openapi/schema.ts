import type { GroupVersionKind } from '../types.js';

/**
 * An OpenAPI v3 schema as Kubernetes publishes it under /openapi/v3, Kubernetes extensions included.
 * The same objects drive validation, patching, server-side apply and `kubectl explain`.
 */
export interface Schema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  format?: string;
  description?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  default?: unknown;
  nullable?: boolean;
  allOf?: Schema[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  $ref?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  'x-kubernetes-patch-merge-key'?: string;
  /** "merge", "replace", "retainKeys" or "merge,retainKeys" */
  'x-kubernetes-patch-strategy'?: string;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-group-version-kind'?: GroupVersionKind[];
  [extension: `x-${string}`]: unknown;
}

/**
 * Follows `$ref` (and the `allOf: [{$ref}]` wrapper Kubernetes uses for described references) to the
 * schema it names. Returns the input unchanged when there is nothing to follow.
 */
export type SchemaResolver = (schema: Schema) => Schema;
