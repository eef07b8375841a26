import { probePolicyModule } from '../backend/workers/policy-probe.js';
import { ConfigError } from '../errors.js';
import {
  namedPolicy,
  namedPolicyNames,
  type PolicySource,
  policyModuleField,
  resolvePolicySource,
} from '../policy/policy-module.js';

/**
 * Which policy a campaign fuzzes, from its flags. The rules (names, module checks, limits, refusals)
 * are the one loader's (policy/policy-module.ts), shared with replay, bench and the workers backend;
 * this file only combines `--policy` and `--policy-module`.
 */

/** A campaign's policy as data (policy/policy-module.ts `PolicySource`): what replay files record. */
export type PolicySpec = PolicySource;

/** Every policy `--policy` accepts: the built-ins, then the planted bugs. */
export const fuzzablePolicyNames = namedPolicyNames;

export { namedPolicy };

/** The policy a spec names (the one loader's `resolvePolicySource`; off the main thread for a module). */
export const resolvePolicy = resolvePolicySource;

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
      throw new ConfigError('--policy', `one of ${namedPolicyNames().join(', ')} (or ${policyModuleField})`);
    }
    namedPolicy(name);
    return { name };
  }
  const probed = await probePolicyModule(module);
  if (name !== undefined && name !== probed.name) {
    throw new ConfigError(
      '--policy',
      `the name of the policy in ${policyModuleField} (${probed.name}), or nothing`,
      name,
    );
  }
  return { name: probed.name, module: probed.path, moduleSha256: probed.sha256 };
}
