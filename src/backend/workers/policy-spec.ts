import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../../errors.js';
import { policies } from '../../policy/index.js';
import { plantedBugs } from '../../policy/planted.js';
import { definePolicy, type Policy } from '../../policy/policy.js';
import { loadPolicyModule } from '../../policy/policy-module.js';
import type { PolicySpec } from './control.js';

/**
 * Policies cross to workers by name, never as objects (functions do not survive structured clone):
 * a built-in or planted-bug policy by its name, a user policy by its module path, which every worker
 * imports itself (so `--policy-module ./my-policy.js` works on both backends).
 */
export type PolicyInput = Policy | ModulePolicyInput;

export interface ModulePolicyInput {
  module: string;
  name?: string;
  /**
   * What a probe worker read of the module (policy-probe.ts `probePolicyModule`). With it the main
   * side never imports the module itself (a CLI rule: a user's module runs only off its thread); it
   * needs only the policy's name and `smt`. Without it the main side loads the module too (library use).
   */
  probed?: { name: string; description: string; smt: boolean };
}

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
        "(the workers backend imports it in every worker: an inline policy's functions cannot cross to a " +
        'worker; runSim takes one)',
      name,
    );
  }
  return { kind: 'named', name };
}

/**
 * The policy as the main side of a run knows it: a probed module's name and `smt` (its hooks run only
 * in the workers, which load the module themselves), else the loaded policy.
 */
export async function mainSidePolicy(input: PolicyInput, spec: PolicySpec): Promise<Policy> {
  if ('module' in input && typeof input.module === 'string' && input.probed !== undefined) {
    const { name, description, smt } = input.probed;
    return definePolicy({ name, description, smt });
  }
  return loadPolicy(spec);
}

/** Resolves a spec to the policy (in a worker, and on the main side for its name and smt). */
export async function loadPolicy(spec: PolicySpec): Promise<Policy> {
  if (spec.kind === 'named') {
    const policy = namedPolicies().get(spec.name);
    if (!policy)
      throw new ConfigError('policy', `one of ${[...namedPolicies().keys()].join(', ')}`, spec.name);
    return policy;
  }
  // The one loader of every command (policy/policy-module.ts): the same checks and defaults as fuzz
  // and replay, so one module behaves the same on both backends.
  const { policy } = await loadPolicyModule(spec.path, { field: 'policy module', name: spec.name });
  return policy;
}
