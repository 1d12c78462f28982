import { BUILTIN_RESOURCES, type ResourceDef } from '../resources.js';

/** Shared helpers for this folder's tests. */
export function def(group: string, kind: string): ResourceDef {
  const d = BUILTIN_RESOURCES.find((r) => r.group === group && r.kind === kind);
  if (!d) throw new Error(`no builtin ${group}/${kind}`);
  return d;
}
