import { ApiError } from '../api/errors.js';
import { byGroupVersion, customResourceSchemas, openapiIndex, renderGroupVersion, type RenderedDocument } from '../api/openapi/documents.js';
import type { Schema } from '../api/openapi/schema.js';
import type { ResourceDef } from '../api/resources.js';
import { METRICS_SCHEMAS } from './metrics-resources.js';
import type { ResourceRegistry } from './registry.js';

/** /openapi/v3 and its per-group-version documents, for the resources served right now. */
export class OpenApiService {
  constructor(private readonly registry: ResourceRegistry) {}

  index(): object {
    return openapiIndex(this.registry.all(), this.customComponents());
  }

  /** `path` is an index key such as "api/v1" or "apis/apps/v1". */
  document(path: string): RenderedDocument {
    const defs = byGroupVersion(this.registry.all()).get(path);
    if (!defs) throw new ApiError(404, 'NotFound', `no OpenAPI document for ${path}`);
    return renderGroupVersion(defs, this.customComponents());
  }

  /** The component schema of a custom resource, as validation and patching use it. */
  customSchema(def: ResourceDef): Schema | undefined {
    return customResourceSchemas(def, this.registry.customSchema(def))[def.schemaName];
  }

  private customComponents(): Record<string, Schema> {
    const extra: Record<string, Schema> = { ...METRICS_SCHEMAS };
    for (const def of this.registry.all()) if (def.custom) Object.assign(extra, customResourceSchemas(def, this.registry.customSchema(def)));
    return extra;
  }
}
