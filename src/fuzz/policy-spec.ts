import { probePolicyModule } from '../backend/workers/policy-probe.js';
import { ConfigError } from '../errors.js';
import { policies } from '../policy/index.js';
import { plantedBugs } from '../policy/planted.js';
import type { Policy } from '../policy/policy.js';
import { loadPolicyModule } from '../policy/policy-module.js';

/**
 * Which policy a campaign fuzzes, as data that crosses to pool workers and into replay files: a
 * built-in or planted policy by name, or a user's ES module by absolute path (loaded in each worker).
 */
export interface PolicySpec {
  /** The policy's name (for a module: the name its Policy carries). */
  name: string;
  /** Absolute path of an ES module exporting a Policy (default export or named `policy`). */
  module?: string;
  /**
   * SHA-256 of the module's bytes when the campaign started: a replay whose module differs says so,
   * instead of calling a changed trace a determinism bug. Absent in files written before it existed.
   */
  moduleSha256?: string;
}

/** Every policy `--policy` accepts: the built-ins, then the planted bugs. */
export function fuzzablePolicyNames(): string[] {
  return [...Object.keys(policies), ...plantedBugs.map((bug) => bug.policy.name)];
}

export function namedPolicy(name: string, field = '--policy'): Policy {
  const builtin = policies[name];
  if (builtin) return builtin;
  const planted = plantedBugs.find((bug) => bug.policy.name === name);
  if (planted) return planted.policy;
  throw new ConfigError(field, `one of ${fuzzablePolicyNames().join(', ')}`, name);
}

const loadedModules = new Map<string, Promise<Policy>>();

/**
 * The policy a spec names. A module is imported once per thread, through the one loader
 * (policy/policy-module.ts), and must hold the policy the spec names. Call it only off the CLI's main
 * thread for a module (pool workers do): importing runs the module's code.
 */
export async function resolvePolicy(spec: PolicySpec): Promise<Policy> {
  if (spec.module === undefined) return namedPolicy(spec.name);
  const module = spec.module;
  let loading = loadedModules.get(module);
  if (!loading) {
    loading = loadPolicyModule(module).then(({ policy }) => policy);
    loadedModules.set(module, loading);
    // A failed load is not cached: the next call reports the error again.
    loading.catch(() => loadedModules.delete(module));
  }
  const policy = await loading;
  if (policy.name !== spec.name) {
    throw new ConfigError(
      '--policy-module',
      `a module whose policy is named ${spec.name} (the name the campaign or replay file records)`,
      `${module} (its policy is named ${policy.name})`,
    );
  }
  return policy;
}

/**
 * The spec for a `--policy` / `--policy-module` pair (a module's policy name must match `--policy`).
 * The module is loaded in a worker under a time limit (backend/workers/policy-probe.ts), never here.
 */
export async function policySpecOf(
  name: string | undefined,
  module: string | undefined,
): Promise<PolicySpec> {
  if (module === undefined) {
    if (name === undefined) {
      throw new ConfigError('--policy', `one of ${fuzzablePolicyNames().join(', ')} (or --policy-module)`);
    }
    namedPolicy(name);
    return { name };
  }
  const probed = await probePolicyModule(module);
  if (name !== undefined && name !== probed.name) {
    throw new ConfigError(
      '--policy',
      `the name of the policy in --policy-module (${probed.name}), or nothing`,
      name,
    );
  }
  return { name: probed.name, module: probed.path, moduleSha256: probed.sha256 };
}
