import type { ResourceDef } from '../api/resources.js';
import type { KubeObject, UserInfo } from '../api/types.js';

/**
 * Admission runs on every write after decoding and defaulting and before storage: mutating plugins
 * first (`admit`, may change `object`), then validating ones (`validate`, may only refuse). A plugin
 * refuses by throwing an ApiError. Plugins are small modules; the server holds them in one ordered
 * chain.
 */
export interface AdmissionRequest {
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  def: ResourceDef;
  subresource: string;
  namespace: string;
  name: string;
  /** The object being written; absent for DELETE. */
  object?: KubeObject;
  /** The stored object for UPDATE and DELETE. */
  oldObject?: KubeObject;
  user: UserInfo;
  dryRun: boolean;
  /** Warnings for the client's `Warning` headers (e.g. PodSecurity's warn mode). */
  warnings?: string[];
}

export interface AdmissionPlugin {
  readonly name: string;
  admit?(request: AdmissionRequest): void | Promise<void>;
  validate?(request: AdmissionRequest): void | Promise<void>;
}

export class AdmissionChain {
  constructor(private readonly plugins: AdmissionPlugin[] = []) {}

  add(plugin: AdmissionPlugin): void {
    this.plugins.push(plugin);
  }

  async run(request: AdmissionRequest): Promise<void> {
    for (const p of this.plugins) if (p.admit) await p.admit(request);
    for (const p of this.plugins) if (p.validate) await p.validate(request);
  }
}
