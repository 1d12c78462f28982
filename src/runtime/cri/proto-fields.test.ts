// The fact record of the CRI v1 wire contract. Every message, field, number and type below was
// transcribed by hand from upstream k8s.io/cri-api pkg/apis/runtime/v1/api.proto as of Kubernetes 1.32
// (kubernetes/kubernetes staging/src/k8s.io/cri-api). The test checks proto/runtime/v1/api.proto
// against it in both directions: nothing missing, nothing extra, nothing renumbered or retyped.
// Fields added upstream after 1.32 (stop_signal, image_sub_path, PSI stats, the Stream* RPCs,
// UpdatePodSandboxResources, audit_request_id, ImageSpec.image_ref) are deliberately absent.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import protobuf from 'protobufjs';
import { criProtoPath } from './proto.js';

type FieldRow = readonly [name: string, number: number, type: string];

const SS = 'map<string,string>';

const FIELDS: Record<string, readonly FieldRow[]> = {
  VersionRequest: [['version', 1, 'string']],
  VersionResponse: [
    ['version', 1, 'string'],
    ['runtime_name', 2, 'string'],
    ['runtime_version', 3, 'string'],
    ['runtime_api_version', 4, 'string'],
  ],
  DNSConfig: [
    ['servers', 1, 'repeated string'],
    ['searches', 2, 'repeated string'],
    ['options', 3, 'repeated string'],
  ],
  PortMapping: [
    ['protocol', 1, 'Protocol'],
    ['container_port', 2, 'int32'],
    ['host_port', 3, 'int32'],
    ['host_ip', 4, 'string'],
  ],
  Mount: [
    ['container_path', 1, 'string'],
    ['host_path', 2, 'string'],
    ['readonly', 3, 'bool'],
    ['selinux_relabel', 4, 'bool'],
    ['propagation', 5, 'MountPropagation'],
    ['uidMappings', 6, 'repeated IDMapping'],
    ['gidMappings', 7, 'repeated IDMapping'],
    ['recursive_read_only', 8, 'bool'],
    ['image', 9, 'ImageSpec'],
  ],
  IDMapping: [
    ['host_id', 1, 'uint32'],
    ['container_id', 2, 'uint32'],
    ['length', 3, 'uint32'],
  ],
  UserNamespace: [
    ['mode', 1, 'NamespaceMode'],
    ['uids', 2, 'repeated IDMapping'],
    ['gids', 3, 'repeated IDMapping'],
  ],
  NamespaceOption: [
    ['network', 1, 'NamespaceMode'],
    ['pid', 2, 'NamespaceMode'],
    ['ipc', 3, 'NamespaceMode'],
    ['target_id', 4, 'string'],
    ['userns_options', 5, 'UserNamespace'],
  ],
  Int64Value: [['value', 1, 'int64']],
  LinuxSandboxSecurityContext: [
    ['namespace_options', 1, 'NamespaceOption'],
    ['selinux_options', 2, 'SELinuxOption'],
    ['run_as_user', 3, 'Int64Value'],
    ['run_as_group', 8, 'Int64Value'],
    ['readonly_rootfs', 4, 'bool'],
    ['supplemental_groups', 5, 'repeated int64'],
    ['supplemental_groups_policy', 11, 'SupplementalGroupsPolicy'],
    ['privileged', 6, 'bool'],
    ['seccomp', 9, 'SecurityProfile'],
    ['apparmor', 10, 'SecurityProfile'],
    ['seccomp_profile_path', 7, 'string'],
  ],
  SecurityProfile: [
    ['profile_type', 1, 'SecurityProfile.ProfileType'],
    ['localhost_ref', 2, 'string'],
  ],
  LinuxPodSandboxConfig: [
    ['cgroup_parent', 1, 'string'],
    ['security_context', 2, 'LinuxSandboxSecurityContext'],
    ['sysctls', 3, SS],
    ['overhead', 4, 'LinuxContainerResources'],
    ['resources', 5, 'LinuxContainerResources'],
  ],
  PodSandboxMetadata: [
    ['name', 1, 'string'],
    ['uid', 2, 'string'],
    ['namespace', 3, 'string'],
    ['attempt', 4, 'uint32'],
  ],
  PodSandboxConfig: [
    ['metadata', 1, 'PodSandboxMetadata'],
    ['hostname', 2, 'string'],
    ['log_directory', 3, 'string'],
    ['dns_config', 4, 'DNSConfig'],
    ['port_mappings', 5, 'repeated PortMapping'],
    ['labels', 6, SS],
    ['annotations', 7, SS],
    ['linux', 8, 'LinuxPodSandboxConfig'],
    ['windows', 9, 'WindowsPodSandboxConfig'],
  ],
  RunPodSandboxRequest: [
    ['config', 1, 'PodSandboxConfig'],
    ['runtime_handler', 2, 'string'],
  ],
  RunPodSandboxResponse: [['pod_sandbox_id', 1, 'string']],
  StopPodSandboxRequest: [['pod_sandbox_id', 1, 'string']],
  StopPodSandboxResponse: [],
  RemovePodSandboxRequest: [['pod_sandbox_id', 1, 'string']],
  RemovePodSandboxResponse: [],
  PodSandboxStatusRequest: [
    ['pod_sandbox_id', 1, 'string'],
    ['verbose', 2, 'bool'],
  ],
  PodIP: [['ip', 1, 'string']],
  PodSandboxNetworkStatus: [
    ['ip', 1, 'string'],
    ['additional_ips', 2, 'repeated PodIP'],
  ],
  Namespace: [['options', 2, 'NamespaceOption']],
  LinuxPodSandboxStatus: [['namespaces', 1, 'Namespace']],
  PodSandboxStatus: [
    ['id', 1, 'string'],
    ['metadata', 2, 'PodSandboxMetadata'],
    ['state', 3, 'PodSandboxState'],
    ['created_at', 4, 'int64'],
    ['network', 5, 'PodSandboxNetworkStatus'],
    ['linux', 6, 'LinuxPodSandboxStatus'],
    ['labels', 7, SS],
    ['annotations', 8, SS],
    ['runtime_handler', 9, 'string'],
  ],
  PodSandboxStatusResponse: [
    ['status', 1, 'PodSandboxStatus'],
    ['info', 2, SS],
    ['containers_statuses', 3, 'repeated ContainerStatus'],
    ['timestamp', 4, 'int64'],
  ],
  PodSandboxStateValue: [['state', 1, 'PodSandboxState']],
  PodSandboxFilter: [
    ['id', 1, 'string'],
    ['state', 2, 'PodSandboxStateValue'],
    ['label_selector', 3, SS],
  ],
  ListPodSandboxRequest: [['filter', 1, 'PodSandboxFilter']],
  PodSandbox: [
    ['id', 1, 'string'],
    ['metadata', 2, 'PodSandboxMetadata'],
    ['state', 3, 'PodSandboxState'],
    ['created_at', 4, 'int64'],
    ['labels', 5, SS],
    ['annotations', 6, SS],
    ['runtime_handler', 7, 'string'],
  ],
  ListPodSandboxResponse: [['items', 1, 'repeated PodSandbox']],
  PodSandboxStatsRequest: [['pod_sandbox_id', 1, 'string']],
  PodSandboxStatsResponse: [['stats', 1, 'PodSandboxStats']],
  PodSandboxStatsFilter: [
    ['id', 1, 'string'],
    ['label_selector', 2, SS],
  ],
  ListPodSandboxStatsRequest: [['filter', 1, 'PodSandboxStatsFilter']],
  ListPodSandboxStatsResponse: [['stats', 1, 'repeated PodSandboxStats']],
  PodSandboxAttributes: [
    ['id', 1, 'string'],
    ['metadata', 2, 'PodSandboxMetadata'],
    ['labels', 3, SS],
    ['annotations', 4, SS],
  ],
  PodSandboxStats: [
    ['attributes', 1, 'PodSandboxAttributes'],
    ['linux', 2, 'LinuxPodSandboxStats'],
    ['windows', 3, 'WindowsPodSandboxStats'],
  ],
  LinuxPodSandboxStats: [
    ['cpu', 1, 'CpuUsage'],
    ['memory', 2, 'MemoryUsage'],
    ['network', 3, 'NetworkUsage'],
    ['process', 4, 'ProcessUsage'],
    ['containers', 5, 'repeated ContainerStats'],
  ],
  WindowsPodSandboxStats: [
    ['cpu', 1, 'WindowsCpuUsage'],
    ['memory', 2, 'WindowsMemoryUsage'],
    ['network', 3, 'WindowsNetworkUsage'],
    ['process', 4, 'WindowsProcessUsage'],
    ['containers', 5, 'repeated WindowsContainerStats'],
  ],
  NetworkUsage: [
    ['timestamp', 1, 'int64'],
    ['default_interface', 2, 'NetworkInterfaceUsage'],
    ['interfaces', 3, 'repeated NetworkInterfaceUsage'],
  ],
  WindowsNetworkUsage: [
    ['timestamp', 1, 'int64'],
    ['default_interface', 2, 'WindowsNetworkInterfaceUsage'],
    ['interfaces', 3, 'repeated WindowsNetworkInterfaceUsage'],
  ],
  NetworkInterfaceUsage: [
    ['name', 1, 'string'],
    ['rx_bytes', 2, 'UInt64Value'],
    ['rx_errors', 3, 'UInt64Value'],
    ['tx_bytes', 4, 'UInt64Value'],
    ['tx_errors', 5, 'UInt64Value'],
  ],
  WindowsNetworkInterfaceUsage: [
    ['name', 1, 'string'],
    ['rx_bytes', 2, 'UInt64Value'],
    ['rx_packets_dropped', 3, 'UInt64Value'],
    ['tx_bytes', 4, 'UInt64Value'],
    ['tx_packets_dropped', 5, 'UInt64Value'],
  ],
  ProcessUsage: [
    ['timestamp', 1, 'int64'],
    ['process_count', 2, 'UInt64Value'],
  ],
  WindowsProcessUsage: [
    ['timestamp', 1, 'int64'],
    ['process_count', 2, 'UInt64Value'],
  ],
  ImageSpec: [
    ['image', 1, 'string'],
    ['annotations', 2, SS],
    ['user_specified_image', 18, 'string'],
    ['runtime_handler', 19, 'string'],
  ],
  KeyValue: [
    ['key', 1, 'string'],
    ['value', 2, 'string'],
  ],
  LinuxContainerResources: [
    ['cpu_period', 1, 'int64'],
    ['cpu_quota', 2, 'int64'],
    ['cpu_shares', 3, 'int64'],
    ['memory_limit_in_bytes', 4, 'int64'],
    ['oom_score_adj', 5, 'int64'],
    ['cpuset_cpus', 6, 'string'],
    ['cpuset_mems', 7, 'string'],
    ['hugepage_limits', 8, 'repeated HugepageLimit'],
    ['unified', 9, SS],
    ['memory_swap_limit_in_bytes', 10, 'int64'],
  ],
  HugepageLimit: [
    ['page_size', 1, 'string'],
    ['limit', 2, 'uint64'],
  ],
  SELinuxOption: [
    ['user', 1, 'string'],
    ['role', 2, 'string'],
    ['type', 3, 'string'],
    ['level', 4, 'string'],
  ],
  Capability: [
    ['add_capabilities', 1, 'repeated string'],
    ['drop_capabilities', 2, 'repeated string'],
    ['add_ambient_capabilities', 3, 'repeated string'],
  ],
  LinuxContainerSecurityContext: [
    ['capabilities', 1, 'Capability'],
    ['privileged', 2, 'bool'],
    ['namespace_options', 3, 'NamespaceOption'],
    ['selinux_options', 4, 'SELinuxOption'],
    ['run_as_user', 5, 'Int64Value'],
    ['run_as_group', 12, 'Int64Value'],
    ['run_as_username', 6, 'string'],
    ['readonly_rootfs', 7, 'bool'],
    ['supplemental_groups', 8, 'repeated int64'],
    ['supplemental_groups_policy', 17, 'SupplementalGroupsPolicy'],
    ['no_new_privs', 11, 'bool'],
    ['masked_paths', 13, 'repeated string'],
    ['readonly_paths', 14, 'repeated string'],
    ['seccomp', 15, 'SecurityProfile'],
    ['apparmor', 16, 'SecurityProfile'],
    ['apparmor_profile', 9, 'string'],
    ['seccomp_profile_path', 10, 'string'],
  ],
  LinuxContainerConfig: [
    ['resources', 1, 'LinuxContainerResources'],
    ['security_context', 2, 'LinuxContainerSecurityContext'],
  ],
  LinuxContainerUser: [
    ['uid', 1, 'int64'],
    ['gid', 2, 'int64'],
    ['supplemental_groups', 3, 'repeated int64'],
  ],
  WindowsNamespaceOption: [['network', 1, 'NamespaceMode']],
  WindowsSandboxSecurityContext: [
    ['run_as_username', 1, 'string'],
    ['credential_spec', 2, 'string'],
    ['host_process', 3, 'bool'],
    ['namespace_options', 4, 'WindowsNamespaceOption'],
  ],
  WindowsPodSandboxConfig: [['security_context', 1, 'WindowsSandboxSecurityContext']],
  WindowsContainerSecurityContext: [
    ['run_as_username', 1, 'string'],
    ['credential_spec', 2, 'string'],
    ['host_process', 3, 'bool'],
  ],
  WindowsContainerConfig: [
    ['resources', 1, 'WindowsContainerResources'],
    ['security_context', 2, 'WindowsContainerSecurityContext'],
  ],
  WindowsContainerResources: [
    ['cpu_shares', 1, 'int64'],
    ['cpu_count', 2, 'int64'],
    ['cpu_maximum', 3, 'int64'],
    ['memory_limit_in_bytes', 4, 'int64'],
    ['rootfs_size_in_bytes', 5, 'int64'],
    ['affinity_cpus', 6, 'repeated WindowsCpuGroupAffinity'],
  ],
  WindowsCpuGroupAffinity: [
    ['cpu_mask', 1, 'uint64'],
    ['cpu_group', 2, 'uint32'],
  ],
  ContainerMetadata: [
    ['name', 1, 'string'],
    ['attempt', 2, 'uint32'],
  ],
  Device: [
    ['container_path', 1, 'string'],
    ['host_path', 2, 'string'],
    ['permissions', 3, 'string'],
  ],
  CDIDevice: [['name', 1, 'string']],
  ContainerConfig: [
    ['metadata', 1, 'ContainerMetadata'],
    ['image', 2, 'ImageSpec'],
    ['command', 3, 'repeated string'],
    ['args', 4, 'repeated string'],
    ['working_dir', 5, 'string'],
    ['envs', 6, 'repeated KeyValue'],
    ['mounts', 7, 'repeated Mount'],
    ['devices', 8, 'repeated Device'],
    ['labels', 9, SS],
    ['annotations', 10, SS],
    ['log_path', 11, 'string'],
    ['stdin', 12, 'bool'],
    ['stdin_once', 13, 'bool'],
    ['tty', 14, 'bool'],
    ['linux', 15, 'LinuxContainerConfig'],
    ['windows', 16, 'WindowsContainerConfig'],
    ['CDI_devices', 17, 'repeated CDIDevice'],
  ],
  CreateContainerRequest: [
    ['pod_sandbox_id', 1, 'string'],
    ['config', 2, 'ContainerConfig'],
    ['sandbox_config', 3, 'PodSandboxConfig'],
  ],
  CreateContainerResponse: [['container_id', 1, 'string']],
  StartContainerRequest: [['container_id', 1, 'string']],
  StartContainerResponse: [],
  StopContainerRequest: [
    ['container_id', 1, 'string'],
    ['timeout', 2, 'int64'],
  ],
  StopContainerResponse: [],
  RemoveContainerRequest: [['container_id', 1, 'string']],
  RemoveContainerResponse: [],
  ContainerStateValue: [['state', 1, 'ContainerState']],
  ContainerFilter: [
    ['id', 1, 'string'],
    ['state', 2, 'ContainerStateValue'],
    ['pod_sandbox_id', 3, 'string'],
    ['label_selector', 4, SS],
  ],
  ListContainersRequest: [['filter', 1, 'ContainerFilter']],
  Container: [
    ['id', 1, 'string'],
    ['pod_sandbox_id', 2, 'string'],
    ['metadata', 3, 'ContainerMetadata'],
    ['image', 4, 'ImageSpec'],
    ['image_ref', 5, 'string'],
    ['state', 6, 'ContainerState'],
    ['created_at', 7, 'int64'],
    ['labels', 8, SS],
    ['annotations', 9, SS],
    ['image_id', 10, 'string'],
  ],
  ListContainersResponse: [['containers', 1, 'repeated Container']],
  ContainerStatusRequest: [
    ['container_id', 1, 'string'],
    ['verbose', 2, 'bool'],
  ],
  ContainerStatus: [
    ['id', 1, 'string'],
    ['metadata', 2, 'ContainerMetadata'],
    ['state', 3, 'ContainerState'],
    ['created_at', 4, 'int64'],
    ['started_at', 5, 'int64'],
    ['finished_at', 6, 'int64'],
    ['exit_code', 7, 'int32'],
    ['image', 8, 'ImageSpec'],
    ['image_ref', 9, 'string'],
    ['reason', 10, 'string'],
    ['message', 11, 'string'],
    ['labels', 12, SS],
    ['annotations', 13, SS],
    ['mounts', 14, 'repeated Mount'],
    ['log_path', 15, 'string'],
    ['resources', 16, 'ContainerResources'],
    ['image_id', 17, 'string'],
    ['user', 18, 'ContainerUser'],
  ],
  ContainerStatusResponse: [
    ['status', 1, 'ContainerStatus'],
    ['info', 2, SS],
  ],
  ContainerResources: [
    ['linux', 1, 'LinuxContainerResources'],
    ['windows', 2, 'WindowsContainerResources'],
  ],
  ContainerUser: [['linux', 1, 'LinuxContainerUser']],
  UpdateContainerResourcesRequest: [
    ['container_id', 1, 'string'],
    ['linux', 2, 'LinuxContainerResources'],
    ['windows', 3, 'WindowsContainerResources'],
    ['annotations', 4, SS],
  ],
  UpdateContainerResourcesResponse: [],
  ExecSyncRequest: [
    ['container_id', 1, 'string'],
    ['cmd', 2, 'repeated string'],
    ['timeout', 3, 'int64'],
  ],
  ExecSyncResponse: [
    ['stdout', 1, 'bytes'],
    ['stderr', 2, 'bytes'],
    ['exit_code', 3, 'int32'],
  ],
  ExecRequest: [
    ['container_id', 1, 'string'],
    ['cmd', 2, 'repeated string'],
    ['tty', 3, 'bool'],
    ['stdin', 4, 'bool'],
    ['stdout', 5, 'bool'],
    ['stderr', 6, 'bool'],
  ],
  ExecResponse: [['url', 1, 'string']],
  AttachRequest: [
    ['container_id', 1, 'string'],
    ['stdin', 2, 'bool'],
    ['tty', 3, 'bool'],
    ['stdout', 4, 'bool'],
    ['stderr', 5, 'bool'],
  ],
  AttachResponse: [['url', 1, 'string']],
  PortForwardRequest: [
    ['pod_sandbox_id', 1, 'string'],
    ['port', 2, 'repeated int32'],
  ],
  PortForwardResponse: [['url', 1, 'string']],
  ImageFilter: [['image', 1, 'ImageSpec']],
  ListImagesRequest: [['filter', 1, 'ImageFilter']],
  Image: [
    ['id', 1, 'string'],
    ['repo_tags', 2, 'repeated string'],
    ['repo_digests', 3, 'repeated string'],
    ['size', 4, 'uint64'],
    ['uid', 5, 'Int64Value'],
    ['username', 6, 'string'],
    ['spec', 7, 'ImageSpec'],
    ['pinned', 8, 'bool'],
  ],
  ListImagesResponse: [['images', 1, 'repeated Image']],
  ImageStatusRequest: [
    ['image', 1, 'ImageSpec'],
    ['verbose', 2, 'bool'],
  ],
  ImageStatusResponse: [
    ['image', 1, 'Image'],
    ['info', 2, SS],
  ],
  AuthConfig: [
    ['username', 1, 'string'],
    ['password', 2, 'string'],
    ['auth', 3, 'string'],
    ['server_address', 4, 'string'],
    ['identity_token', 5, 'string'],
    ['registry_token', 6, 'string'],
  ],
  PullImageRequest: [
    ['image', 1, 'ImageSpec'],
    ['auth', 2, 'AuthConfig'],
    ['sandbox_config', 3, 'PodSandboxConfig'],
  ],
  PullImageResponse: [['image_ref', 1, 'string']],
  RemoveImageRequest: [['image', 1, 'ImageSpec']],
  RemoveImageResponse: [],
  NetworkConfig: [['pod_cidr', 1, 'string']],
  RuntimeConfig: [['network_config', 1, 'NetworkConfig']],
  UpdateRuntimeConfigRequest: [['runtime_config', 1, 'RuntimeConfig']],
  UpdateRuntimeConfigResponse: [],
  RuntimeCondition: [
    ['type', 1, 'string'],
    ['status', 2, 'bool'],
    ['reason', 3, 'string'],
    ['message', 4, 'string'],
  ],
  RuntimeStatus: [['conditions', 1, 'repeated RuntimeCondition']],
  StatusRequest: [['verbose', 1, 'bool']],
  RuntimeHandlerFeatures: [
    ['recursive_read_only_mounts', 1, 'bool'],
    ['user_namespaces', 2, 'bool'],
  ],
  RuntimeHandler: [
    ['name', 1, 'string'],
    ['features', 2, 'RuntimeHandlerFeatures'],
  ],
  RuntimeFeatures: [['supplemental_groups_policy', 1, 'bool']],
  StatusResponse: [
    ['status', 1, 'RuntimeStatus'],
    ['info', 2, SS],
    ['runtime_handlers', 3, 'repeated RuntimeHandler'],
    ['features', 4, 'RuntimeFeatures'],
  ],
  ImageFsInfoRequest: [],
  UInt64Value: [['value', 1, 'uint64']],
  FilesystemIdentifier: [['mountpoint', 1, 'string']],
  FilesystemUsage: [
    ['timestamp', 1, 'int64'],
    ['fs_id', 2, 'FilesystemIdentifier'],
    ['used_bytes', 3, 'UInt64Value'],
    ['inodes_used', 4, 'UInt64Value'],
  ],
  WindowsFilesystemUsage: [
    ['timestamp', 1, 'int64'],
    ['fs_id', 2, 'FilesystemIdentifier'],
    ['used_bytes', 3, 'UInt64Value'],
  ],
  ImageFsInfoResponse: [
    ['image_filesystems', 1, 'repeated FilesystemUsage'],
    ['container_filesystems', 2, 'repeated FilesystemUsage'],
  ],
  ContainerStatsRequest: [['container_id', 1, 'string']],
  ContainerStatsResponse: [['stats', 1, 'ContainerStats']],
  ListContainerStatsRequest: [['filter', 1, 'ContainerStatsFilter']],
  ContainerStatsFilter: [
    ['id', 1, 'string'],
    ['pod_sandbox_id', 2, 'string'],
    ['label_selector', 3, SS],
  ],
  ListContainerStatsResponse: [['stats', 1, 'repeated ContainerStats']],
  ContainerAttributes: [
    ['id', 1, 'string'],
    ['metadata', 2, 'ContainerMetadata'],
    ['labels', 3, SS],
    ['annotations', 4, SS],
  ],
  ContainerStats: [
    ['attributes', 1, 'ContainerAttributes'],
    ['cpu', 2, 'CpuUsage'],
    ['memory', 3, 'MemoryUsage'],
    ['writable_layer', 4, 'FilesystemUsage'],
    ['swap', 5, 'SwapUsage'],
  ],
  WindowsContainerStats: [
    ['attributes', 1, 'ContainerAttributes'],
    ['cpu', 2, 'WindowsCpuUsage'],
    ['memory', 3, 'WindowsMemoryUsage'],
    ['writable_layer', 4, 'WindowsFilesystemUsage'],
  ],
  CpuUsage: [
    ['timestamp', 1, 'int64'],
    ['usage_core_nano_seconds', 2, 'UInt64Value'],
    ['usage_nano_cores', 3, 'UInt64Value'],
  ],
  WindowsCpuUsage: [
    ['timestamp', 1, 'int64'],
    ['usage_core_nano_seconds', 2, 'UInt64Value'],
    ['usage_nano_cores', 3, 'UInt64Value'],
  ],
  MemoryUsage: [
    ['timestamp', 1, 'int64'],
    ['working_set_bytes', 2, 'UInt64Value'],
    ['available_bytes', 3, 'UInt64Value'],
    ['usage_bytes', 4, 'UInt64Value'],
    ['rss_bytes', 5, 'UInt64Value'],
    ['page_faults', 6, 'UInt64Value'],
    ['major_page_faults', 7, 'UInt64Value'],
  ],
  SwapUsage: [
    ['timestamp', 1, 'int64'],
    ['swap_available_bytes', 2, 'UInt64Value'],
    ['swap_usage_bytes', 3, 'UInt64Value'],
  ],
  WindowsMemoryUsage: [
    ['timestamp', 1, 'int64'],
    ['working_set_bytes', 2, 'UInt64Value'],
    ['available_bytes', 3, 'UInt64Value'],
    ['page_faults', 4, 'UInt64Value'],
    ['commit_memory_bytes', 5, 'UInt64Value'],
  ],
  ReopenContainerLogRequest: [['container_id', 1, 'string']],
  ReopenContainerLogResponse: [],
  CheckpointContainerRequest: [
    ['container_id', 1, 'string'],
    ['location', 2, 'string'],
    ['timeout', 3, 'int64'],
  ],
  CheckpointContainerResponse: [],
  GetEventsRequest: [],
  ContainerEventResponse: [
    ['container_id', 1, 'string'],
    ['container_event_type', 2, 'ContainerEventType'],
    ['created_at', 3, 'int64'],
    ['pod_sandbox_status', 4, 'PodSandboxStatus'],
    ['containers_statuses', 5, 'repeated ContainerStatus'],
  ],
  ListMetricDescriptorsRequest: [],
  ListMetricDescriptorsResponse: [['descriptors', 1, 'repeated MetricDescriptor']],
  MetricDescriptor: [
    ['name', 1, 'string'],
    ['help', 2, 'string'],
    ['label_keys', 3, 'repeated string'],
  ],
  ListPodSandboxMetricsRequest: [],
  ListPodSandboxMetricsResponse: [['pod_metrics', 1, 'repeated PodSandboxMetrics']],
  PodSandboxMetrics: [
    ['pod_sandbox_id', 1, 'string'],
    ['metrics', 2, 'repeated Metric'],
    ['container_metrics', 3, 'repeated ContainerMetrics'],
  ],
  ContainerMetrics: [
    ['container_id', 1, 'string'],
    ['metrics', 2, 'repeated Metric'],
  ],
  Metric: [
    ['name', 1, 'string'],
    ['timestamp', 2, 'int64'],
    ['metric_type', 3, 'MetricType'],
    ['label_values', 4, 'repeated string'],
    ['value', 5, 'UInt64Value'],
  ],
  RuntimeConfigRequest: [],
  RuntimeConfigResponse: [['linux', 1, 'LinuxRuntimeConfiguration']],
  LinuxRuntimeConfiguration: [['cgroup_driver', 1, 'CgroupDriver']],
};

const ENUMS: Record<string, Record<string, number>> = {
  Protocol: { TCP: 0, UDP: 1, SCTP: 2 },
  MountPropagation: { PROPAGATION_PRIVATE: 0, PROPAGATION_HOST_TO_CONTAINER: 1, PROPAGATION_BIDIRECTIONAL: 2 },
  NamespaceMode: { POD: 0, CONTAINER: 1, NODE: 2, TARGET: 3 },
  SupplementalGroupsPolicy: { Merge: 0, Strict: 1 },
  'SecurityProfile.ProfileType': { RuntimeDefault: 0, Unconfined: 1, Localhost: 2 },
  PodSandboxState: { SANDBOX_READY: 0, SANDBOX_NOTREADY: 1 },
  ContainerState: { CONTAINER_CREATED: 0, CONTAINER_RUNNING: 1, CONTAINER_EXITED: 2, CONTAINER_UNKNOWN: 3 },
  ContainerEventType: {
    CONTAINER_CREATED_EVENT: 0,
    CONTAINER_STARTED_EVENT: 1,
    CONTAINER_STOPPED_EVENT: 2,
    CONTAINER_DELETED_EVENT: 3,
  },
  MetricType: { COUNTER: 0, GAUGE: 1 },
  CgroupDriver: { SYSTEMD: 0, CGROUPFS: 1 },
};

// method: [request, response, server-streaming]
const SERVICES: Record<string, Record<string, readonly [string, string, boolean]>> = {
  RuntimeService: {
    Version: ['VersionRequest', 'VersionResponse', false],
    RunPodSandbox: ['RunPodSandboxRequest', 'RunPodSandboxResponse', false],
    StopPodSandbox: ['StopPodSandboxRequest', 'StopPodSandboxResponse', false],
    RemovePodSandbox: ['RemovePodSandboxRequest', 'RemovePodSandboxResponse', false],
    PodSandboxStatus: ['PodSandboxStatusRequest', 'PodSandboxStatusResponse', false],
    ListPodSandbox: ['ListPodSandboxRequest', 'ListPodSandboxResponse', false],
    CreateContainer: ['CreateContainerRequest', 'CreateContainerResponse', false],
    StartContainer: ['StartContainerRequest', 'StartContainerResponse', false],
    StopContainer: ['StopContainerRequest', 'StopContainerResponse', false],
    RemoveContainer: ['RemoveContainerRequest', 'RemoveContainerResponse', false],
    ListContainers: ['ListContainersRequest', 'ListContainersResponse', false],
    ContainerStatus: ['ContainerStatusRequest', 'ContainerStatusResponse', false],
    UpdateContainerResources: ['UpdateContainerResourcesRequest', 'UpdateContainerResourcesResponse', false],
    ReopenContainerLog: ['ReopenContainerLogRequest', 'ReopenContainerLogResponse', false],
    ExecSync: ['ExecSyncRequest', 'ExecSyncResponse', false],
    Exec: ['ExecRequest', 'ExecResponse', false],
    Attach: ['AttachRequest', 'AttachResponse', false],
    PortForward: ['PortForwardRequest', 'PortForwardResponse', false],
    ContainerStats: ['ContainerStatsRequest', 'ContainerStatsResponse', false],
    ListContainerStats: ['ListContainerStatsRequest', 'ListContainerStatsResponse', false],
    PodSandboxStats: ['PodSandboxStatsRequest', 'PodSandboxStatsResponse', false],
    ListPodSandboxStats: ['ListPodSandboxStatsRequest', 'ListPodSandboxStatsResponse', false],
    UpdateRuntimeConfig: ['UpdateRuntimeConfigRequest', 'UpdateRuntimeConfigResponse', false],
    Status: ['StatusRequest', 'StatusResponse', false],
    CheckpointContainer: ['CheckpointContainerRequest', 'CheckpointContainerResponse', false],
    GetContainerEvents: ['GetEventsRequest', 'ContainerEventResponse', true],
    ListMetricDescriptors: ['ListMetricDescriptorsRequest', 'ListMetricDescriptorsResponse', false],
    ListPodSandboxMetrics: ['ListPodSandboxMetricsRequest', 'ListPodSandboxMetricsResponse', false],
    RuntimeConfig: ['RuntimeConfigRequest', 'RuntimeConfigResponse', false],
  },
  ImageService: {
    ListImages: ['ListImagesRequest', 'ListImagesResponse', false],
    ImageStatus: ['ImageStatusRequest', 'ImageStatusResponse', false],
    PullImage: ['PullImageRequest', 'PullImageResponse', false],
    RemoveImage: ['RemoveImageRequest', 'RemoveImageResponse', false],
    ImageFsInfo: ['ImageFsInfoRequest', 'ImageFsInfoResponse', false],
  },
};

const root = new protobuf.Root().loadSync(criProtoPath(), { keepCase: true }).resolveAll();
const pkg = root.lookup('runtime.v1') as protobuf.Namespace;
const PREFIX = '.runtime.v1.';

function shortName(reflection: protobuf.ReflectionObject): string {
  return reflection.fullName.startsWith(PREFIX) ? reflection.fullName.slice(PREFIX.length) : reflection.fullName;
}

function typeOf(field: protobuf.Field): string {
  if (field instanceof protobuf.MapField) return `map<${field.keyType},${field.type}>`;
  const base = field.resolvedType ? shortName(field.resolvedType) : field.type;
  return field.repeated ? `repeated ${base}` : base;
}

/** Every message and enum in the package, including nested ones, by short name. */
function collect(ns: protobuf.NamespaceBase, types: Map<string, protobuf.Type>, enums: Map<string, protobuf.Enum>): void {
  for (const nested of ns.nestedArray) {
    if (nested instanceof protobuf.Type) {
      if (!nested.options?.map_entry) types.set(shortName(nested), nested);
      collect(nested, types, enums);
    } else if (nested instanceof protobuf.Enum) {
      enums.set(shortName(nested), nested);
    }
  }
}

const types = new Map<string, protobuf.Type>();
const enums = new Map<string, protobuf.Enum>();
collect(pkg, types, enums);

test('the proto declares exactly the messages of the upstream 1.32 table', () => {
  assert.deepEqual([...types.keys()].sort(), Object.keys(FIELDS).sort());
});

test('every field has the upstream name, number and type, and no field is extra', () => {
  for (const [message, rows] of Object.entries(FIELDS)) {
    const type = types.get(message);
    assert.ok(type, `message ${message} is missing`);
    const actual = type.fieldsArray.map((f) => [f.name, f.id, typeOf(f)] as const).sort((a, b) => a[1] - b[1]);
    const expected = [...rows].sort((a, b) => a[1] - b[1]);
    assert.deepEqual(actual, expected, `fields of ${message}`);
  }
});

test('the table itself has no duplicate field numbers or names within a message', () => {
  for (const [message, rows] of Object.entries(FIELDS)) {
    assert.equal(new Set(rows.map((r) => r[1])).size, rows.length, `${message}: duplicate number`);
    assert.equal(new Set(rows.map((r) => r[0])).size, rows.length, `${message}: duplicate name`);
  }
});

test('every enum has the upstream values', () => {
  assert.deepEqual([...enums.keys()].sort(), Object.keys(ENUMS).sort());
  for (const [name, values] of Object.entries(ENUMS)) assert.deepEqual({ ...enums.get(name)!.values }, values, `enum ${name}`);
});

test('both services have the upstream methods, messages and streaming', () => {
  for (const [serviceName, methods] of Object.entries(SERVICES)) {
    const service = pkg.lookupService(serviceName);
    const actual = Object.fromEntries(
      service.methodsArray.map((m) => [
        m.name,
        [shortName(m.resolvedRequestType!), shortName(m.resolvedResponseType!), Boolean(m.responseStream)] as const,
      ]),
    );
    assert.deepEqual(actual, methods, `service ${serviceName}`);
    assert.ok(service.methodsArray.every((m) => !m.requestStream), `${serviceName}: no client streaming in CRI`);
  }
  assert.deepEqual(pkg.nestedArray.filter((n) => n instanceof protobuf.Service).map((s) => s.name).sort(), [
    'ImageService',
    'RuntimeService',
  ]);
});
