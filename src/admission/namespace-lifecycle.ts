import { errors } from '../api/errors.js';
import type { KubeObject } from '../api/types.js';
import type { AdmissionPlugin, AdmissionRequest } from '../apiserver/admission.js';

/** Namespaces that exist from the start and may never be deleted. */
export const IMMORTAL_NAMESPACES = ['default', 'kube-system', 'kube-public'];

/**
 * NamespaceLifecycle: nothing is created in a namespace that does not exist or is being deleted,
 * and the system namespaces cannot be deleted.
 */
export function namespaceLifecycle(lookup: (name: string) => KubeObject | undefined): AdmissionPlugin {
  return {
    name: 'NamespaceLifecycle',
    validate(req: AdmissionRequest) {
      const { def } = req;
      if (def.group === '' && def.kind === 'Namespace') {
        if (req.operation === 'DELETE' && IMMORTAL_NAMESPACES.includes(req.name)) {
          throw errors.forbidden({ group: '', resource: 'namespaces', name: req.name }, `namespaces "${req.name}" is forbidden: this namespace may not be deleted`);
        }
        return;
      }
      if (req.operation !== 'CREATE' || !def.namespaced || req.subresource) return;
      const ns = lookup(req.namespace);
      if (!ns) throw errors.notFound({ group: '', resource: 'namespaces', name: req.namespace });
      if (ns.metadata.deletionTimestamp || (ns.status as { phase?: string } | undefined)?.phase === 'Terminating') {
        throw errors.forbidden(
          { group: def.group, resource: def.plural, name: req.name },
          `${def.plural}${def.group ? '.' + def.group : ''} "${req.name}" is forbidden: unable to create new content in namespace ${req.namespace} because it is being terminated`,
        );
      }
    },
  };
}
