// The parts of core/v1 volumes and volume mounts the node's volumes read, in their JSON form.
import type { KubeObject } from '../../api/types.js';
import type { ObjectFieldSelector, PodContainer, ResourceFieldSelector } from '../env.js';

export interface KeyToPath {
  key: string;
  path: string;
  mode?: number;
}

export interface ConfigMapSource {
  name?: string;
  items?: KeyToPath[];
  defaultMode?: number;
  optional?: boolean;
}

export interface SecretSource {
  secretName?: string;
  items?: KeyToPath[];
  defaultMode?: number;
  optional?: boolean;
}

export interface DownwardAPIFile {
  path: string;
  fieldRef?: ObjectFieldSelector;
  resourceFieldRef?: ResourceFieldSelector;
  mode?: number;
}

export interface DownwardAPISource {
  items?: DownwardAPIFile[];
  defaultMode?: number;
}

export interface ServiceAccountTokenProjection {
  audience?: string;
  expirationSeconds?: number;
  path: string;
}

export interface VolumeProjection {
  configMap?: Omit<ConfigMapSource, 'defaultMode'>;
  secret?: { name?: string; items?: KeyToPath[]; optional?: boolean };
  downwardAPI?: { items?: DownwardAPIFile[] };
  serviceAccountToken?: ServiceAccountTokenProjection;
  clusterTrustBundle?: unknown;
}

export interface ProjectedSource {
  sources?: VolumeProjection[];
  defaultMode?: number;
}

export interface EmptyDirSource {
  medium?: string;
  sizeLimit?: string | number;
}

export interface HostPathSource {
  path: string;
  type?: string;
}

export interface Volume {
  name: string;
  emptyDir?: EmptyDirSource;
  hostPath?: HostPathSource;
  configMap?: ConfigMapSource;
  secret?: SecretSource;
  downwardAPI?: DownwardAPISource;
  projected?: ProjectedSource;
  [source: string]: unknown;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPath?: string;
  subPathExpr?: string;
  mountPropagation?: string;
}

export interface PodShape extends KubeObject {
  spec?: {
    volumes?: Volume[];
    containers?: (PodContainer & { volumeMounts?: VolumeMount[] })[];
    initContainers?: (PodContainer & { volumeMounts?: VolumeMount[] })[];
    serviceAccountName?: string;
    securityContext?: { fsGroup?: number };
    overhead?: Record<string, string | number>;
  };
}

/** One file of a configMap, secret, downwardAPI or projected volume. */
export interface FileProjection {
  data: Buffer;
  mode: number;
}

/** A volume's files by their path inside the volume. */
export type Payload = Map<string, FileProjection>;
