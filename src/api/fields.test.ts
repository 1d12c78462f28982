import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ApiError } from './errors.js';
import { escapeFieldValue, fieldMatcher, fieldSelectorToString, parseFieldSelector, requiresExactMatch } from './fields.js';
import { BUILTIN_RESOURCES, type ResourceDef } from './resources.js';
import type { KubeObject } from './types.js';

function def(group: string, kind: string): ResourceDef {
  const d = BUILTIN_RESOURCES.find((r) => r.group === group && r.kind === kind);
  assert.ok(d, `${group}/${kind} is built in`);
  return d;
}

function rejects(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ApiError);
    assert.equal(e.code, 400);
    assert.equal(e.message, message);
    return true;
  });
}

const pod = (name: string, nodeName: string | undefined, phase: string): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'default' },
  spec: nodeName ? { nodeName } : {},
  status: { phase },
});

describe('parseFieldSelector', () => {
  it('parses =, == and != terms, sorted as kube sorts them', () => {
    const sel = parseFieldSelector('spec.nodeName=n1,status.phase!=Succeeded,metadata.name==web');
    assert.deepEqual(sel.requirements, [
      { field: 'metadata.name', operator: '==', value: 'web' },
      { field: 'spec.nodeName', operator: '=', value: 'n1' },
      { field: 'status.phase', operator: '!=', value: 'Succeeded' },
    ]);
  });

  it('skips empty terms and allows empty values', () => {
    assert.deepEqual(parseFieldSelector('').requirements, []);
    assert.deepEqual(parseFieldSelector(',spec.nodeName=,').requirements, [{ field: 'spec.nodeName', operator: '=', value: '' }]);
  });

  it('unescapes backslash sequences in values', () => {
    const sel = parseFieldSelector('metadata.name=a\\,b\\=c\\\\d');
    assert.deepEqual(sel.requirements, [{ field: 'metadata.name', operator: '=', value: 'a,b=c\\d' }]);
    assert.equal(fieldSelectorToString(sel), 'metadata.name=a\\,b\\=c\\\\d');
    assert.equal(escapeFieldValue('x,y'), 'x\\,y');
  });

  it('rejects terms without an operator and bad escapes with kube messages', () => {
    rejects(() => parseFieldSelector('spec.nodeName'), "invalid selector: 'spec.nodeName'; can't understand 'spec.nodeName'");
    rejects(() => parseFieldSelector('a=b,c'), "invalid selector: 'a=b,c'; can't understand 'c'");
    rejects(() => parseFieldSelector('a=b\\x'), 'invalid field selector: invalid escape sequence: \\x');
    rejects(() => parseFieldSelector('a=b\\'), 'invalid field selector: invalid escape sequence: \\');
    rejects(() => parseFieldSelector('a=b=c'), 'invalid field selector: unescaped character in value: 61');
  });

  it('has no set operators', () => {
    rejects(() => parseFieldSelector('status.phase in (Running)'), "invalid selector: 'status.phase in (Running)'; can't understand 'status.phase in (Running)'");
  });
});

describe('fieldMatcher', () => {
  it('evaluates the selector kubectl describe node sends', () => {
    const match = fieldMatcher(def('', 'Pod'), parseFieldSelector('spec.nodeName=n1,status.phase!=Succeeded,status.phase!=Failed'));
    assert.ok(match(pod('a', 'n1', 'Running')));
    assert.ok(!match(pod('b', 'n2', 'Running')));
    assert.ok(!match(pod('c', 'n1', 'Succeeded')));
    assert.ok(!match(pod('d', 'n1', 'Failed')));
  });

  it('reads an unset field as empty', () => {
    const match = fieldMatcher(def('', 'Pod'), parseFieldSelector('spec.nodeName='));
    assert.ok(match(pod('pending', undefined, 'Pending')));
    assert.ok(!match(pod('bound', 'n1', 'Pending')));
  });

  it('supports metadata.name and metadata.namespace on every kind', () => {
    const cm = def('', 'ConfigMap');
    const obj: KubeObject = { metadata: { name: 'cfg', namespace: 'kube-system' } };
    assert.ok(fieldMatcher(cm, parseFieldSelector('metadata.name=cfg,metadata.namespace=kube-system'))(obj));
    assert.ok(!fieldMatcher(cm, parseFieldSelector('metadata.namespace!=kube-system'))(obj));
    const node = def('', 'Node');
    assert.ok(fieldMatcher(node, parseFieldSelector('metadata.namespace='))({ metadata: { name: 'n1' } }));
  });

  it('uses the kind-specific fields of the resource', () => {
    const events = def('', 'Event');
    const ev: KubeObject = { metadata: { name: 'e' }, involvedObject: { kind: 'Pod', name: 'web', uid: 'u1' } };
    assert.ok(fieldMatcher(events, parseFieldSelector('involvedObject.name=web,involvedObject.kind=Pod,involvedObject.uid=u1'))(ev));
    assert.ok(!fieldMatcher(events, parseFieldSelector('involvedObject.name=db'))(ev));
  });

  it('rejects unsupported fields up front', () => {
    rejects(() => fieldMatcher(def('', 'ConfigMap'), parseFieldSelector('data.key=x')), 'field label not supported: data.key');
    rejects(() => fieldMatcher(def('', 'Pod'), parseFieldSelector('metadata.name=a,spec.containers=x')), 'field label not supported: spec.containers');
  });

  it('reports the value a selector pins', () => {
    const sel = parseFieldSelector('spec.nodeName=n1,status.phase!=Failed');
    assert.equal(requiresExactMatch(sel, 'spec.nodeName'), 'n1');
    assert.equal(requiresExactMatch(sel, 'status.phase'), undefined);
  });
});
