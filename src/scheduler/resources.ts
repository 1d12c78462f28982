import { milliValue, tryParseQuantity, value } from '../api/quantity.js';
import type { Container, Pod, ResourceList } from './types.js';

/**
 * Resource amounts as plain numbers, the way kube's scheduler keeps them (framework.Resource): CPU in
 * milli-cores, memory and ephemeral storage in bytes, extended resources and hugepages in whole units.
 * Numbers are exact below 2^53, far beyond any node. Quantities are parsed once per pod and per node,
 * so a filter pass over hundreds of nodes compares numbers only.
 */
export interface Resources {
  milliCPU: number;
  memory: number;
  ephemeralStorage: number;
  /** Extended resources (example.com/gpu) and hugepages-*, by name. */
  scalar: Record<string, number>;
}

export const CPU = 'cpu';
export const MEMORY = 'memory';
export const EPHEMERAL_STORAGE = 'ephemeral-storage';
export const PODS = 'pods';

/** What a container that requests nothing is counted as when spreading load (kube's DefaultMilliCPURequest / DefaultMemoryRequest). */
export const DEFAULT_MILLI_CPU_REQUEST = 100;
export const DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024;

export function emptyResources(): Resources {
  return { milliCPU: 0, memory: 0, ephemeralStorage: 0, scalar: {} };
}

function amount(name: string, raw: string | number): number {
  const q = tryParseQuantity(raw);
  if (!q) return 0;
  return Number(name === CPU ? milliValue(q) : value(q));
}

/** Parses a ResourceList; `pods` is left out (see allowedPodCount). */
export function fromResourceList(list: ResourceList | undefined): Resources {
  const r = emptyResources();
  if (!list) return r;
  for (const [name, raw] of Object.entries(list)) {
    const n = amount(name, raw);
    if (name === CPU) r.milliCPU = n;
    else if (name === MEMORY) r.memory = n;
    else if (name === EPHEMERAL_STORAGE) r.ephemeralStorage = n;
    else if (name !== PODS) r.scalar[name] = n;
  }
  return r;
}

export function allowedPodCount(allocatable: ResourceList | undefined): number {
  const raw = allocatable?.[PODS];
  return raw === undefined ? 0 : amount(PODS, raw);
}

export function addTo(target: Resources, r: Resources, sign = 1): void {
  target.milliCPU += sign * r.milliCPU;
  target.memory += sign * r.memory;
  target.ephemeralStorage += sign * r.ephemeralStorage;
  for (const [name, n] of Object.entries(r.scalar)) {
    const next = (target.scalar[name] ?? 0) + sign * n;
    if (next === 0) delete target.scalar[name];
    else target.scalar[name] = next;
  }
}

function maxInto(target: Resources, r: Resources): void {
  target.milliCPU = Math.max(target.milliCPU, r.milliCPU);
  target.memory = Math.max(target.memory, r.memory);
  target.ephemeralStorage = Math.max(target.ephemeralStorage, r.ephemeralStorage);
  for (const [name, n] of Object.entries(r.scalar)) target.scalar[name] = Math.max(target.scalar[name] ?? 0, n);
}

function copy(r: Resources): Resources {
  return { milliCPU: r.milliCPU, memory: r.memory, ephemeralStorage: r.ephemeralStorage, scalar: { ...r.scalar } };
}

/** A container's requests; with `nonZero`, missing cpu/memory requests count as the defaults. */
function containerRequests(c: Container, nonZero: boolean): Resources {
  const requests = c.resources?.requests;
  const r = fromResourceList(requests);
  if (nonZero) {
    if (requests?.[CPU] === undefined) r.milliCPU = DEFAULT_MILLI_CPU_REQUEST;
    if (requests?.[MEMORY] === undefined) r.memory = DEFAULT_MEMORY_REQUEST;
  }
  return r;
}

/**
 * The pod's effective request, as kube's resource helpers compute it (PodRequests): the sum of the
 * app containers and sidecars (init containers with restartPolicy Always), raised to what any
 * one-shot init container needs while it runs beside the sidecars started before it, plus the
 * pod's spec.overhead (set by RuntimeClass admission). `nonZero` gives the variant used for scoring.
 */
export function podRequests(pod: Pod, nonZero = false): Resources {
  const spec = pod.spec ?? {};
  const total = emptyResources();
  for (const c of spec.containers ?? []) addTo(total, containerRequests(c, nonZero));
  const sidecars = emptyResources();
  const initPeak = emptyResources();
  for (const c of spec.initContainers ?? []) {
    const r = containerRequests(c, nonZero);
    let running: Resources;
    if (c.restartPolicy === 'Always') {
      addTo(total, r);
      addTo(sidecars, r);
      running = sidecars;
    } else {
      running = copy(r);
      addTo(running, sidecars);
    }
    maxInto(initPeak, running);
  }
  maxInto(total, initPeak);
  if (spec.overhead) addTo(total, fromResourceList(spec.overhead));
  return total;
}
