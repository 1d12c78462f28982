import { isDNS1123Label } from '../api/validation/names.js';

/**
 * Which reads EdgeHub keeps in its cache: by client component (the User-Agent up to its first '/'),
 * by resource (plural name, any API group) and by verb. A read the policy leaves out is still proxied
 * while the cloud is reachable; offline it gets a 503 saying it is not cached. The defaults cache
 * every component's GET, LIST and WATCH of what a node agent reads to run its pods.
 *
 * The same policy decides whether the cloud's answer to the node's own status and Lease writes is
 * kept: an offline write starts from the cached object, so a resource left out cannot be written
 * offline either.
 */

/** Resources cached unless the caller names others: what a node agent reads to run its pods. */
export const DEFAULT_CACHED_RESOURCES: readonly string[] = [
  'pods', 'nodes', 'services', 'endpoints', 'endpointslices', 'configmaps', 'secrets', 'leases',
  'runtimeclasses', 'namespaces', 'serviceaccounts',
];
export const CACHEABLE_VERBS = ['get', 'list', 'watch'] as const;
export type CacheableVerb = (typeof CACHEABLE_VERBS)[number];
/** In `components` or `resources`: every one. */
export const ANY = '*';

export interface CachePolicyOptions {
  /** Client components whose reads are cached, or ['*'] (the default) for all of them. */
  components?: readonly string[];
  /** Plural resource names whose reads are cached, or ['*'] for all; default DEFAULT_CACHED_RESOURCES. */
  resources?: readonly string[];
  /** Default all of CACHEABLE_VERBS. */
  verbs?: readonly string[];
}

/** A User-Agent product token (RFC 9110 tchar), which is what `componentOf` yields; '*' is reserved. */
const COMPONENT = /^[!#$%&'+.^_`|~0-9A-Za-z-]+$/;

/** Why `name` is no component name, or undefined when it is one. */
export function componentProblem(name: string): string | undefined {
  if (name === ANY) return undefined;
  if (!COMPONENT.test(name)) return `"${name}" is not a client component: give the User-Agent up to its first '/', e.g. kubelet, or * for all`;
  return undefined;
}

/** Why `name` is no plural resource name, or undefined when it is one. */
export function resourceProblem(name: string): string | undefined {
  if (name === ANY) return undefined;
  if (isDNS1123Label(name).length > 0) return `"${name}" is not a plural resource name: give lowercase names such as pods or configmaps, or * for all`;
  return undefined;
}

/** Why `verb` cannot be cached, or undefined when it can. */
export function verbProblem(verb: string): string | undefined {
  if ((CACHEABLE_VERBS as readonly string[]).includes(verb)) return undefined;
  return `"${verb}" is not a cacheable verb: choose from ${CACHEABLE_VERBS.join(', ')}`;
}

export class CachePolicy {
  private constructor(
    private readonly components: ReadonlySet<string>,
    private readonly resources: ReadonlySet<string>,
    private readonly verbs: ReadonlySet<string>,
  ) {}

  /** Validates `opts`; throws a RangeError naming the option and the fix. */
  static from(opts: CachePolicyOptions = {}): CachePolicy {
    const check = (option: string, items: readonly string[], problem: (s: string) => string | undefined): Set<string> => {
      if (items.length === 0) throw new RangeError(`edgehub: cache.${option} is empty; name at least one, or * for all`);
      for (const item of items) {
        const why = problem(item);
        if (why) throw new RangeError(`edgehub: cache.${option}: ${why}`);
      }
      return new Set(items);
    };
    return new CachePolicy(
      check('components', opts.components ?? [ANY], componentProblem),
      check('resources', opts.resources ?? DEFAULT_CACHED_RESOURCES, resourceProblem),
      check('verbs', opts.verbs ?? CACHEABLE_VERBS, verbProblem),
    );
  }

  /** Whether `component`'s view of `resource` is kept at all. */
  keeps(component: string, resource: string): boolean {
    return (this.components.has(ANY) || this.components.has(component)) && (this.resources.has(ANY) || this.resources.has(resource));
  }

  /** Whether `component`'s `verb` reads of `resource` are cached. */
  caches(component: string, resource: string, verb: string): boolean {
    return this.keeps(component, resource) && this.verbs.has(verb);
  }

  /** What the policy leaves out of a read it does not cache, for the 503 a client gets offline. */
  exclusion(component: string, resource: string, verb: string): string {
    if (!this.components.has(ANY) && !this.components.has(component)) return `reads of client component "${component}" are not cached`;
    if (!this.resources.has(ANY) && !this.resources.has(resource)) return `resource "${resource}" is not cached`;
    return `${verb} requests are not cached`;
  }
}
