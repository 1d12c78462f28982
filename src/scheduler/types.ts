import type { LabelSelectorObject } from '../api/labels.js';
import type { KubeObject } from '../api/types.js';

// The parts of core/v1 Pod and Node the scheduler reads. They keep Kubernetes' JSON field names so
// informer objects are used as they arrive, without conversion.

export interface ResourceList {
  [name: string]: string | number;
}

export interface ResourceRequirements {
  requests?: ResourceList;
  limits?: ResourceList;
}

export interface ContainerPort {
  containerPort: number;
  hostPort?: number;
  hostIP?: string;
  protocol?: string;
}

export interface Container {
  name: string;
  resources?: ResourceRequirements;
  ports?: ContainerPort[];
  /** "Always" makes an init container a sidecar that keeps running beside the app containers. */
  restartPolicy?: string;
}

export type { NodeAffinity, NodeSelectorRequirement, NodeSelectorTerm, Taint, TaintEffect, Toleration } from '../api/scheduling.js';
import type { NodeAffinity, Taint, Toleration } from '../api/scheduling.js';

export interface PodAffinityTerm {
  labelSelector?: LabelSelectorObject | null;
  namespaces?: string[];
  namespaceSelector?: LabelSelectorObject | null;
  topologyKey: string;
}

export interface WeightedPodAffinityTerm {
  weight: number;
  podAffinityTerm: PodAffinityTerm;
}

/** podAffinity and podAntiAffinity have the same shape. */
export interface PodAffinity {
  requiredDuringSchedulingIgnoredDuringExecution?: PodAffinityTerm[];
  preferredDuringSchedulingIgnoredDuringExecution?: WeightedPodAffinityTerm[];
}

export interface Affinity {
  nodeAffinity?: NodeAffinity;
  podAffinity?: PodAffinity;
  podAntiAffinity?: PodAffinity;
}

export type NodeInclusionPolicy = 'Honor' | 'Ignore';

export interface TopologySpreadConstraint {
  maxSkew: number;
  topologyKey: string;
  whenUnsatisfiable: 'DoNotSchedule' | 'ScheduleAnyway' | string;
  labelSelector?: LabelSelectorObject | null;
  minDomains?: number;
  nodeAffinityPolicy?: NodeInclusionPolicy;
  nodeTaintsPolicy?: NodeInclusionPolicy;
  matchLabelKeys?: string[];
}

export interface PodSpec {
  nodeName?: string;
  schedulerName?: string;
  nodeSelector?: Record<string, string>;
  affinity?: Affinity;
  topologySpreadConstraints?: TopologySpreadConstraint[];
  tolerations?: Toleration[];
  containers?: Container[];
  initContainers?: Container[];
  overhead?: ResourceList;
  priority?: number;
}

export interface PodCondition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastProbeTime?: string | null;
  lastTransitionTime?: string;
}

export interface Pod extends KubeObject {
  spec?: PodSpec;
  status?: { phase?: string; conditions?: PodCondition[] };
}

export interface Node extends KubeObject {
  spec?: { unschedulable?: boolean; taints?: Taint[] };
  status?: { allocatable?: ResourceList; capacity?: ResourceList };
}

/** The objects besides pods and nodes that plugins read, with only the fields they read. */
export type Namespace = KubeObject;

export interface Service extends KubeObject {
  spec?: { selector?: Record<string, string> | null };
}

export interface ReplicaSet extends KubeObject {
  spec?: { selector?: LabelSelectorObject | null };
}
