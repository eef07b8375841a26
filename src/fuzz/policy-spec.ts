import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../errors.js';
import { policies } from '../policy/index.js';
import { plantedBugs } from '../policy/planted.js';
import type { Policy } from '../policy/policy.js';

/**
 * Which policy a campaign fuzzes, as data that crosses to pool workers and into replay files: a
 * built-in or planted policy by name, or a user's ES module by absolute path (loaded in each worker).
 */
export interface PolicySpec {
  /** The policy's name (for a module: the name its Policy carries). */
  name: string;
  /** Absolute path of an ES module exporting a Policy (default export or named `policy`). */
  module?: string;
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

const hooks = [
  'kickOnExit',
  'kickBeforeFull',
  'waitForSiblingsOut',
  'kickAfterFull',
  'kickTargets',
  'siblingsOut',
  'flushBeforeEntry',
  'mayEnter',
  'exitOnKick',
] as const;

/** Whether `value` has the shape `definePolicy` gives (a name, every hook a function). */
export function isPolicy(value: unknown): value is Policy {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Record<string, unknown>;
  return (
    typeof candidate.name === 'string' &&
    candidate.name.length > 0 &&
    hooks.every((hook) => typeof candidate[hook] === 'function')
  );
}

const moduleAccepted =
  'an ES module (.js or .mjs) exporting a Policy built with definePolicy, as its default export or as `policy`';

/** Loads a user policy module by path (relative paths from the current directory). */
export async function loadPolicyModule(path: string, field = '--policy-module'): Promise<Policy> {
  const absolute = resolve(path);
  if (!existsSync(absolute)) throw new ConfigError(field, moduleAccepted, `${path} (no such file)`);
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
  } catch (error) {
    throw new ConfigError(field, moduleAccepted, `${path} (${(error as Error).message})`);
  }
  const policy = isPolicy(loaded.default) ? loaded.default : loaded.policy;
  if (!isPolicy(policy)) throw new ConfigError(field, moduleAccepted, `${path} (no Policy exported)`);
  return policy;
}

const loadedModules = new Map<string, Promise<Policy>>();

/** The policy a spec names; a module is imported once per thread. */
export async function resolvePolicy(spec: PolicySpec): Promise<Policy> {
  if (spec.module === undefined) return namedPolicy(spec.name);
  let loading = loadedModules.get(spec.module);
  if (!loading) {
    loading = loadPolicyModule(spec.module);
    loadedModules.set(spec.module, loading);
    // A failed load is not cached: the next call reports the error again.
    loading.catch(() => loadedModules.delete(spec.module as string));
  }
  return loading;
}

/** The spec for a `--policy` / `--policy-module` pair (a module's policy name must match `--policy`). */
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
  const policy = await loadPolicyModule(module);
  if (name !== undefined && name !== policy.name) {
    throw new ConfigError(
      '--policy',
      `the name of the policy in --policy-module (${policy.name}), or nothing`,
      name,
    );
  }
  return { name: policy.name, module: resolve(module) };
}
