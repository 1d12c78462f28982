import { parseBool } from '../../apiserver/request-info.js';
import type { ContainerLogOptions } from './container-logs.js';

export interface LogQuery extends ContainerLogOptions {
  previous: boolean;
}

/**
 * PodLogOptions from a query string (`follow`, `previous`, `timestamps`, `tailLines`,
 * `sinceSeconds`, `sinceTime`, `limitBytes`), validated as kube's ValidatePodLogOptions does.
 * Throws an Error whose message is the answer to a bad request.
 */
export function parseLogQuery(query: URLSearchParams, now = Date.now()): LogQuery {
  const flag = (name: string): boolean => {
    const text = query.get(name);
    if (text === null || text === '') return false;
    const value = parseBool(text);
    if (value === undefined) throw new Error(`invalid value for ${name}: ${JSON.stringify(text)} is not a boolean`);
    return value;
  };
  const integer = (name: string): number | undefined => {
    const text = query.get(name);
    if (text === null || text === '') return undefined;
    if (!/^-?\d+$/.test(text)) throw new Error(`invalid value for ${name}: ${JSON.stringify(text)} is not an integer`);
    return Number(text);
  };
  const out: LogQuery = { follow: flag('follow'), previous: flag('previous'), timestamps: flag('timestamps') };
  const tailLines = integer('tailLines');
  if (tailLines !== undefined) {
    if (tailLines < 0) throw new Error('tailLines: Invalid value: must be greater than or equal to 0');
    out.tailLines = tailLines;
  }
  const limitBytes = integer('limitBytes');
  if (limitBytes !== undefined) {
    if (limitBytes < 1) throw new Error('limitBytes: Invalid value: must be greater than 0');
    out.limitBytes = limitBytes;
  }
  const sinceSeconds = integer('sinceSeconds');
  const sinceTime = query.get('sinceTime');
  if (sinceSeconds !== undefined && sinceTime) throw new Error('at most one of `sinceTime` or `sinceSeconds` may be specified');
  if (sinceSeconds !== undefined) {
    if (sinceSeconds < 1) throw new Error('sinceSeconds: Invalid value: must be greater than 0');
    out.since = now - sinceSeconds * 1000;
  }
  if (sinceTime) {
    const at = Date.parse(sinceTime);
    if (Number.isNaN(at) || !/^\d{4}-\d\d-\d\dT/.test(sinceTime)) throw new Error(`invalid value for sinceTime: ${JSON.stringify(sinceTime)} is not an RFC 3339 time`);
    out.since = at;
  }
  return out;
}
