import type { KubeObject } from '../../api/types.js';
import type { RbacSource } from './rbac.js';

/** An RbacSource over a plain list of Role/RoleBinding/ClusterRole/ClusterRoleBinding objects. */
export class MemoryRbacSource implements RbacSource {
  private readonly objects: KubeObject[] = [];

  constructor(objects: KubeObject[] = []) {
    this.objects.push(...objects);
  }

  add(...objects: KubeObject[]): this {
    this.objects.push(...objects);
    return this;
  }

  private of(kind: string, namespace?: string): KubeObject[] {
    return this.objects.filter((o) => o.kind === kind && (namespace === undefined || o.metadata.namespace === namespace));
  }

  roles(namespace: string): KubeObject[] {
    return this.of('Role', namespace);
  }
  roleBindings(namespace: string): KubeObject[] {
    return this.of('RoleBinding', namespace);
  }
  clusterRoles(): KubeObject[] {
    return this.of('ClusterRole');
  }
  clusterRoleBindings(): KubeObject[] {
    return this.of('ClusterRoleBinding');
  }
  clusterRole(name: string): KubeObject | undefined {
    return this.of('ClusterRole').find((o) => o.metadata.name === name);
  }
  role(namespace: string, name: string): KubeObject | undefined {
    return this.of('Role', namespace).find((o) => o.metadata.name === name);
  }
}
