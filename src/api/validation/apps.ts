import type { KubeObject, StatusCause } from '../types.js';
import { err, goStringMap, path, FieldPath, IS_NEGATIVE, deepEqual, FIELD_IMMUTABLE, quote, type RenderedValue } from './field.js';
import { isRecord, str } from './meta.js';
import { isValidPercent } from './names.js';
import { defaultPodSpec } from './podspec-defaults.js';
import { validatePodTemplateSpec } from './podspec.js';
import type { KindRules } from './registry.js';
import { isValidOperatorSet, renderSelector, selectorIsEmpty, selectorMatches, validateLabelSelector } from './selector.js';

/** apps/v1 workloads: SetDefaults_Deployment/_ReplicaSet/_DaemonSet and pkg/apis/apps/validation. */

type Rec = Record<string, any>;

export const DEFAULT_REVISION_HISTORY_LIMIT = 10;
export const DEFAULT_PROGRESS_DEADLINE_SECONDS = 600;

function specOf(obj: KubeObject): Rec {
  if (!isRecord(obj.spec)) obj.spec = {};
  return obj.spec as Rec;
}

function defaultTemplate(spec: Rec): void {
  if (!isRecord(spec.template)) spec.template = {};
  if (!isRecord(spec.template.spec)) spec.template.spec = {};
  defaultPodSpec(spec.template.spec);
}

const absent = (v: unknown) => v === undefined || v === null;

function defaultDeployment(obj: KubeObject): void {
  const spec = specOf(obj);
  if (absent(spec.replicas)) spec.replicas = 1;
  if (!isRecord(spec.strategy)) spec.strategy = {};
  if (!spec.strategy.type) spec.strategy.type = 'RollingUpdate';
  if (spec.strategy.type === 'RollingUpdate') {
    if (!isRecord(spec.strategy.rollingUpdate)) spec.strategy.rollingUpdate = {};
    if (absent(spec.strategy.rollingUpdate.maxUnavailable)) spec.strategy.rollingUpdate.maxUnavailable = '25%';
    if (absent(spec.strategy.rollingUpdate.maxSurge)) spec.strategy.rollingUpdate.maxSurge = '25%';
  }
  if (absent(spec.revisionHistoryLimit)) spec.revisionHistoryLimit = DEFAULT_REVISION_HISTORY_LIMIT;
  if (absent(spec.progressDeadlineSeconds)) spec.progressDeadlineSeconds = DEFAULT_PROGRESS_DEADLINE_SECONDS;
  defaultTemplate(spec);
}

function defaultReplicaSet(obj: KubeObject): void {
  const spec = specOf(obj);
  if (absent(spec.replicas)) spec.replicas = 1;
  defaultTemplate(spec);
}

function defaultDaemonSet(obj: KubeObject): void {
  const spec = specOf(obj);
  if (!isRecord(spec.updateStrategy)) spec.updateStrategy = {};
  if (!spec.updateStrategy.type) spec.updateStrategy.type = 'RollingUpdate';
  if (spec.updateStrategy.type === 'RollingUpdate') {
    if (!isRecord(spec.updateStrategy.rollingUpdate)) spec.updateStrategy.rollingUpdate = {};
    if (absent(spec.updateStrategy.rollingUpdate.maxUnavailable)) spec.updateStrategy.rollingUpdate.maxUnavailable = 1;
    if (absent(spec.updateStrategy.rollingUpdate.maxSurge)) spec.updateStrategy.rollingUpdate.maxSurge = 0;
  }
  if (absent(spec.revisionHistoryLimit)) spec.revisionHistoryLimit = DEFAULT_REVISION_HISTORY_LIMIT;
  defaultTemplate(spec);
}

function nonNegative(value: unknown, field: FieldPath): StatusCause[] {
  return typeof value === 'number' && value < 0 ? [err.invalid(field, value, IS_NEGATIVE)] : [];
}

/** IntOrString's String(): the bare number or the bare string. */
const intOrString = (v: unknown): RenderedValue => ({ rendered: str(v) });

function positiveIntOrPercent(v: unknown, field: FieldPath): StatusCause[] {
  if (typeof v === 'string') return isValidPercent(v).map((m) => err.invalid(field, intOrString(v), m));
  if (typeof v === 'number') return nonNegative(v, field);
  return [];
}

function intOrPercentValue(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && isValidPercent(v).length === 0) return Number(v.slice(0, -1));
  return 0;
}

function notMoreThan100Percent(v: unknown, field: FieldPath): StatusCause[] {
  return typeof v === 'string' && isValidPercent(v).length === 0 && intOrPercentValue(v) > 100
    ? [err.invalid(field, intOrString(v), 'must not be greater than 100%')]
    : [];
}

/**
 * The selector and pod template of a workload (ValidatePodTemplateSpecForReplicaSet and friends).
 * `what` is the word kube uses in its empty-selector message.
 */
function validateSelectorAndTemplate(spec: Rec, what: string, owner: string): StatusCause[] {
  const specPath = path('spec');
  const causes: StatusCause[] = [];
  const selector = spec.selector;
  if (!isRecord(selector)) {
    causes.push(err.required(specPath.child('selector')));
  } else {
    causes.push(...validateLabelSelector(selector, specPath.child('selector')));
    if (selectorIsEmpty(selector)) causes.push(err.invalid(specPath.child('selector'), renderSelector(selector), `empty selector is invalid for ${what}`));
  }
  if (isRecord(selector) && !isValidOperatorSet(selector)) {
    causes.push(err.invalid(specPath.child('selector'), renderSelector(selector), 'invalid label selector'));
    return causes;
  }
  const templatePath = specPath.child('template');
  if (!isRecord(spec.template)) return [...causes, err.required(templatePath)];
  const template: Rec = spec.template;
  const labels: Record<string, string> = isRecord(template.metadata) && isRecord(template.metadata.labels) ? template.metadata.labels : {};
  if (isRecord(selector) && !selectorIsEmpty(selector) && !selectorMatches(selector, labels)) {
    const shown = isRecord(template.metadata) && isRecord(template.metadata.labels) ? labels : undefined;
    causes.push(err.invalid(templatePath.child('metadata', 'labels'), goStringMap(shown), '`selector` does not match template `labels`'));
  }
  causes.push(...validatePodTemplateSpec(template, templatePath));
  const podSpec: Rec = isRecord(template.spec) ? template.spec : {};
  if (podSpec.restartPolicy !== 'Always') {
    causes.push(err.notSupported(templatePath.child('spec', 'restartPolicy'), str(podSpec.restartPolicy), ['Always']));
  }
  if (!absent(podSpec.activeDeadlineSeconds)) {
    causes.push(err.forbidden(templatePath.child('spec', 'activeDeadlineSeconds'), `activeDeadlineSeconds in ${owner} is not Supported`));
  }
  return causes;
}

function validateDeploymentStrategy(strategy: Rec, field: FieldPath): StatusCause[] {
  switch (strategy.type) {
    case 'Recreate':
      return isRecord(strategy.rollingUpdate) ? [err.forbidden(field.child('rollingUpdate'), "may not be specified when strategy `type` is 'Recreate'")] : [];
    case 'RollingUpdate': {
      if (!isRecord(strategy.rollingUpdate)) return [err.required(field.child('rollingUpdate'), 'this should be defaulted and never be nil')];
      const ru = strategy.rollingUpdate;
      const at = field.child('rollingUpdate');
      const causes = [...positiveIntOrPercent(ru.maxUnavailable, at.child('maxUnavailable')), ...positiveIntOrPercent(ru.maxSurge, at.child('maxSurge'))];
      if (intOrPercentValue(ru.maxUnavailable) === 0 && intOrPercentValue(ru.maxSurge) === 0) {
        causes.push(err.invalid(at.child('maxUnavailable'), intOrString(ru.maxUnavailable), 'may not be 0 when `maxSurge` is 0'));
      }
      causes.push(...notMoreThan100Percent(ru.maxUnavailable, at.child('maxUnavailable')));
      return causes;
    }
    default: {
      const ru = isRecord(strategy.rollingUpdate) ? '&apps.RollingUpdateDeployment{...}' : '(*apps.RollingUpdateDeployment)(nil)';
      const shown = { rendered: `apps.DeploymentStrategy{Type:${quote(str(strategy.type))}, RollingUpdate:${ru}}` };
      return [err.notSupported(field, shown, ['Recreate', 'RollingUpdate'])];
    }
  }
}

function validateDeployment(obj: KubeObject): StatusCause[] {
  const spec = specOf(obj);
  const specPath = path('spec');
  const causes = nonNegative(spec.replicas, specPath.child('replicas'));
  causes.push(...validateSelectorAndTemplate(spec, 'deployment', 'ReplicaSet'));
  causes.push(...validateDeploymentStrategy(isRecord(spec.strategy) ? spec.strategy : {}, specPath.child('strategy')));
  causes.push(...nonNegative(spec.minReadySeconds, specPath.child('minReadySeconds')));
  causes.push(...nonNegative(spec.revisionHistoryLimit, specPath.child('revisionHistoryLimit')));
  if (typeof spec.progressDeadlineSeconds === 'number') {
    causes.push(...nonNegative(spec.progressDeadlineSeconds, specPath.child('progressDeadlineSeconds')));
    if (spec.progressDeadlineSeconds <= (spec.minReadySeconds ?? 0)) {
      causes.push(err.invalid(specPath.child('progressDeadlineSeconds'), spec.progressDeadlineSeconds, 'must be greater than minReadySeconds'));
    }
  }
  return causes;
}

function validateReplicaSet(obj: KubeObject): StatusCause[] {
  const spec = specOf(obj);
  const specPath = path('spec');
  const causes = nonNegative(spec.replicas, specPath.child('replicas'));
  causes.push(...nonNegative(spec.minReadySeconds, specPath.child('minReadySeconds')));
  // kube reuses the Deployment wording for an empty ReplicaSet selector.
  causes.push(...validateSelectorAndTemplate(spec, 'deployment', 'ReplicaSet'));
  return causes;
}

function validateDaemonSetStrategy(strategy: Rec, field: FieldPath): StatusCause[] {
  switch (strategy.type) {
    case 'OnDelete':
      return [];
    case 'RollingUpdate': {
      if (!isRecord(strategy.rollingUpdate)) return [err.required(field.child('rollingUpdate'))];
      const ru = strategy.rollingUpdate;
      const at = field.child('rollingUpdate');
      const causes = [
        ...positiveIntOrPercent(ru.maxUnavailable, at.child('maxUnavailable')),
        ...positiveIntOrPercent(ru.maxSurge, at.child('maxSurge')),
        ...notMoreThan100Percent(ru.maxUnavailable, at.child('maxUnavailable')),
        ...notMoreThan100Percent(ru.maxSurge, at.child('maxSurge')),
      ];
      const hasUnavailable = intOrPercentValue(ru.maxUnavailable) !== 0;
      const hasSurge = intOrPercentValue(ru.maxSurge) !== 0;
      if (hasUnavailable && hasSurge) causes.push(err.invalid(at.child('maxSurge'), intOrString(ru.maxSurge), 'may not be set when maxUnavailable is non-zero'));
      if (!hasUnavailable && !hasSurge) causes.push(err.required(at.child('maxUnavailable'), 'cannot be 0 when maxSurge is 0'));
      return causes;
    }
    default: {
      const ru = isRecord(strategy.rollingUpdate) ? '&apps.RollingUpdateDaemonSet{...}' : '(*apps.RollingUpdateDaemonSet)(nil)';
      const shown = { rendered: `apps.DaemonSetUpdateStrategy{Type:${quote(str(strategy.type))}, RollingUpdate:${ru}}` };
      return [err.notSupported(field, shown, ['RollingUpdate', 'OnDelete'])];
    }
  }
}

function validateDaemonSet(obj: KubeObject): StatusCause[] {
  const spec = specOf(obj);
  const specPath = path('spec');
  const causes = validateSelectorAndTemplate(spec, 'daemonset', 'DaemonSet');
  causes.push(...nonNegative(spec.minReadySeconds, specPath.child('minReadySeconds')));
  causes.push(...nonNegative(spec.templateGeneration, specPath.child('templateGeneration')));
  causes.push(...validateDaemonSetStrategy(isRecord(spec.updateStrategy) ? spec.updateStrategy : {}, specPath.child('updateStrategy')));
  causes.push(...nonNegative(spec.revisionHistoryLimit, specPath.child('revisionHistoryLimit')));
  return causes;
}

/** apps/v1 forbids changing a workload's selector. */
function selectorImmutable(obj: KubeObject, old: KubeObject): StatusCause[] {
  const next = specOf(obj).selector;
  const prev = specOf(old).selector;
  return deepEqual(next, prev) ? [] : [err.invalid(path('spec', 'selector'), renderSelector(next), FIELD_IMMUTABLE)];
}

export const deploymentRules: KindRules = {
  group: 'apps',
  kind: 'Deployment',
  defaults: defaultDeployment,
  validate: validateDeployment,
  validateUpdate: selectorImmutable,
};

export const replicaSetRules: KindRules = {
  group: 'apps',
  kind: 'ReplicaSet',
  defaults: defaultReplicaSet,
  validate: validateReplicaSet,
  validateUpdate: selectorImmutable,
};

export const daemonSetRules: KindRules = {
  group: 'apps',
  kind: 'DaemonSet',
  defaults: defaultDaemonSet,
  validate: validateDaemonSet,
  validateUpdate: selectorImmutable,
};
