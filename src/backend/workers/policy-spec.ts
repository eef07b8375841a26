import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../../errors.js';
import { definePolicy, type Policy } from '../../policy/policy.js';
import {
  loadPolicyModule,
  namedPolicies,
  type PolicySource,
  resolvePolicySource,
} from '../../policy/policy-module.js';

/**
 * Policies cross to workers as data (policy/policy-module.ts `PolicySource`), never as objects
 * (functions do not survive structured clone): a built-in or planted-bug policy by its name, a user
 * policy by its module path, which every worker imports itself through the one loader (so
 * `--policy-module ./my-policy.js` behaves the same on both backends and in fuzz and replay).
 */
export type PolicyInput = Policy | ModulePolicyInput;

export interface ModulePolicyInput {
  module: string;
  /** The export to take (its key, or its policy's name) in a module with several. */
  name?: string;
  /**
   * What a probe worker read of the module (policy-probe.ts `probePolicyModule`). With it the main
   * side never imports the module itself (a CLI rule: a user's module runs only off its thread); it
   * needs only the policy's name and `smt`. Without it the main side loads the module too (library use).
   */
  probed?: { name: string; description: string; smt: boolean };
}

function isModuleInput(input: PolicyInput): input is ModulePolicyInput {
  return 'module' in input && typeof input.module === 'string';
}

/**
 * The policy as the main side of a run knows it, and the source that lets each worker find it: a
 * probed module's name and `smt` (its hooks run only in the workers), else the loaded module, else a
 * built-in or planted-bug Policy object (an inline one is refused: see the ConfigError).
 */
export async function mainSidePolicy(input: PolicyInput): Promise<{ policy: Policy; source: PolicySource }> {
  if (isModuleInput(input)) {
    const module = isAbsolute(input.module) ? input.module : resolve(process.cwd(), input.module);
    if (input.probed !== undefined) {
      const { name, description, smt } = input.probed;
      return { policy: definePolicy({ name, description, smt }), source: { name, module } };
    }
    const { policy } = await loadPolicyModule(module, { name: input.name });
    return { policy, source: { name: policy.name, module } };
  }
  const named = namedPolicies();
  const name = input.name;
  if (named.get(name) !== input) {
    throw new ConfigError(
      'policy',
      `a built-in or planted-bug policy (${[...named.keys()].join(', ')}), or { module: path } for your own ` +
        "(the workers backend imports it in every worker: an inline policy's functions cannot cross to a " +
        'worker; runSim takes one)',
      name,
    );
  }
  return { policy: input, source: { name } };
}

/** The policy a source names, in a hyperthread worker (the one loader's `resolvePolicySource`). */
export const loadPolicy = resolvePolicySource;
