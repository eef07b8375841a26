import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../../errors.js';
import { policies } from '../../policy/index.js';
import { plantedBugs } from '../../policy/planted.js';
import { definePolicy, type Policy, type PolicyDefinition } from '../../policy/policy.js';
import type { PolicySpec } from './control.js';

/**
 * Policies cross to workers by name, never as objects (functions do not survive structured clone):
 * a built-in or planted-bug policy by its name, a user policy by its module path, which every worker
 * imports itself (so `--policy-module ./my-policy.js` works on both backends).
 */
export type PolicyInput = Policy | { module: string; name?: string };

const namedPolicies = (): Map<string, Policy> => {
  const byName = new Map<string, Policy>(Object.entries(policies));
  for (const bug of plantedBugs) byName.set(bug.policy.name, bug.policy);
  return byName;
};

/** The spec that lets a worker find `policy`. A Policy object must be a built-in or planted one. */
export function policySpecOf(policy: PolicyInput): PolicySpec {
  if ('module' in policy && typeof policy.module === 'string') {
    const path = isAbsolute(policy.module) ? policy.module : resolve(process.cwd(), policy.module);
    return policy.name === undefined ? { kind: 'module', path } : { kind: 'module', path, name: policy.name };
  }
  const named = namedPolicies();
  const name = (policy as Policy).name;
  if (named.get(name) !== policy) {
    throw new ConfigError(
      'policy',
      `a built-in or planted-bug policy (${[...named.keys()].join(', ')}), or { module: path } for your own ` +
        '(the workers backend imports it in every worker)',
      name,
    );
  }
  return { kind: 'named', name };
}

/** Resolves a spec to the policy (in a worker, and on the main side for its name and smt). */
export async function loadPolicy(spec: PolicySpec): Promise<Policy> {
  if (spec.kind === 'named') {
    const policy = namedPolicies().get(spec.name);
    if (!policy)
      throw new ConfigError('policy', `one of ${[...namedPolicies().keys()].join(', ')}`, spec.name);
    return policy;
  }
  const module = (await import(pathToFileURL(spec.path).href)) as Record<string, unknown>;
  const candidates = Object.entries(module).filter(([, value]) => isPolicyLike(value));
  let chosen: unknown;
  if (spec.name !== undefined) {
    chosen = candidates.find(
      ([key, value]) => key === spec.name || (value as { name: string }).name === spec.name,
    )?.[1];
  } else if (isPolicyLike(module.default)) {
    chosen = module.default;
  } else if (candidates.length === 1) {
    chosen = candidates[0][1];
  }
  if (chosen === undefined) {
    throw new ConfigError(
      spec.name === undefined ? 'policy module' : 'policy name',
      `a module whose default export (or only policy export${spec.name === undefined ? '' : `, or export named ${spec.name}`}) ` +
        'is a policy: { name, description, ...hooks } (see definePolicy)',
      spec.path,
    );
  }
  // A module may export a finished Policy or a definition; definePolicy fills the defaults of either.
  return definePolicy(chosen as PolicyDefinition);
}

function isPolicyLike(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { name?: unknown }).name === 'string' &&
    typeof (value as { description?: unknown }).description === 'string'
  );
}
