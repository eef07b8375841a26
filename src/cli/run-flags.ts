import { type Command, Option } from 'commander';
import { configFileFields, type RunConfigInput, repeatsMax } from '../config/run-config.js';
import { builtinMixes, type ExitMix } from '../cpu/mixes.js';
import { ConfigError } from '../errors.js';
import { policies, policyByName } from '../policy/index.js';
import type { Policy } from '../policy/policy.js';
import { checkPolicyRunsMix } from '../policy/user-class.js';
import { mixesByName } from '../report/comparison.js';
import { configObject, readJsonFile } from './config-file.js';
import { applySettings, type ConfigSetting, integerFlag, listFlag, setFlag } from './flags.js';

/**
 * The flags of a policy comparison that `bench` and `sweep` share (--policies, --mix, --exits,
 * --seed, --repeats, --config, --set), and how they make one config: the config file, its fields
 * `--set`, then the flags over them. One place, so the two commands read them alike.
 */
export interface RunFlags {
  policies: string[];
  mix: string[];
  exits?: number;
  seed?: number;
  repeats?: number;
  config?: string;
  set?: ConfigSetting[];
}

/**
 * Policies compared by default (`npm start`): the two baselines (`none`; `kvm-default`, what KVM ships
 * on an L1TF/MDS-affected server, issue 19 item 6), then the rest but l1d-flush-cond (kvm-default
 * flushes on the same trigger), with today's Linux ASI beside the 2019 RFC's (`linux-asi`; not its
 * upstream form without a sibling protocol, which `--policies` can add).
 */
export const defaultPolicies = [
  'none',
  'kvm-default',
  'nosmt',
  'l1d-flush',
  'coschedule',
  'coschedule-nohlt',
  'asi',
  'asi-ipi-only',
  'asi-stun',
  'linux-asi',
];

export function policiesOption(defaults: readonly string[] = defaultPolicies): Option {
  return new Option('--policies <list>', 'comma-separated policies')
    .argParser(listFlag('--policies', Object.keys(policies)))
    .default([...defaults]);
}

export function mixOption(): Option {
  return new Option('--mix <list>', 'comma-separated exit mixes')
    .argParser(
      listFlag(
        '--mix',
        builtinMixes.map((mix) => mix.name),
      ),
    )
    .default(['sysbench-cpu']);
}

export function exitsOption(): Option {
  return new Option('--exits <n>', 'workload exits per run').argParser(
    integerFlag('--exits', 1, 100_000_000),
  );
}

export function seedOption(): Option {
  return new Option(
    '--seed <n>',
    "seed of every random choice (each repeat's seed derives from it)",
  ).argParser(integerFlag('--seed', 0, Number.MAX_SAFE_INTEGER));
}

export function repeatsOption(description: string): Option {
  return new Option('--repeats <n>', description).argParser(integerFlag('--repeats', 1, repeatsMax));
}

export const configOptionDescription =
  'JSON config (machine, workload, costs, run, policies); its workload.mix and policies apply unless --mix or --policies is given';

export function setOption(): Option {
  return new Option(
    '--set <path=value>',
    'any config field, as in a config file (repeatable): machine.cores=4, costs.ipiDelivery=2000',
  ).argParser(setFlag(configFileFields.filter((field) => field !== '$comment')));
}

/** The config file (`--config`) with its `--set` fields applied, not yet checked by the schema. */
export function configInputOf(options: Pick<RunFlags, 'config' | 'set'>): RunConfigInput {
  const fromFile = options.config ? configObject(readJsonFile(options.config, '--config')) : {};
  return applySettings(fromFile, options.set ?? []) as RunConfigInput;
}

/**
 * The config input with --exits, --seed and --repeats over its `run` section (`repeatsDefault`: the
 * command's own default where neither flag nor file gives one; undefined: the schema's).
 */
export function withRunFlags(
  input: RunConfigInput,
  options: Pick<RunFlags, 'exits' | 'seed' | 'repeats'>,
  repeatsDefault?: number,
): RunConfigInput {
  const run = { ...((input.run as object) ?? {}) } as Record<string, unknown>;
  if (options.exits !== undefined) run.exits = options.exits;
  if (options.seed !== undefined) run.seed = options.seed;
  if (options.repeats !== undefined) run.repeats = options.repeats;
  else if (run.repeats === undefined && repeatsDefault !== undefined) run.repeats = repeatsDefault;
  return { ...input, run };
}

/** The config file's `policies`: a list of policy names. */
export function configPolicies(value: unknown): Policy[] {
  const accepted = `a list of policy names (${Object.keys(policies).join(', ')})`;
  if (!Array.isArray(value) || value.length === 0) throw new ConfigError('policies', accepted, value);
  return value.map((name, index) => {
    if (typeof name !== 'string' || !Object.hasOwn(policies, name))
      throw new ConfigError(`policies[${index}]`, accepted, name);
    if (value.indexOf(name) !== index)
      throw new ConfigError(`policies[${index}]`, 'a list without repeats (each policy runs once)', name);
    return policyByName(name);
  });
}

/**
 * The mixes and policies to compare. Flags win; without them the config file's mix (built-in or
 * user-defined: `configMix`, the parsed one) and policies apply.
 */
export function comparedRuns(
  options: Pick<RunFlags, 'policies' | 'mix'>,
  command: Command,
  input: RunConfigInput,
  configMix: ExitMix,
): { mixes: ExitMix[]; policies: Policy[] } {
  const fromFlags = (flag: string) => command.getOptionValueSource(flag) === 'cli';
  const useConfigMix =
    !fromFlags('mix') && (input.workload as { mix?: unknown } | undefined)?.mix !== undefined;
  const runs = {
    mixes: useConfigMix ? [configMix] : mixesByName(options.mix),
    policies:
      !fromFlags('policies') && input.policies !== undefined
        ? configPolicies(input.policies)
        : options.policies.map((name) => policyByName(name)),
  };
  // A host process (a user mix) runs only under policies with a userspace class: refused before any run.
  for (const mix of runs.mixes) for (const policy of runs.policies) checkPolicyRunsMix(policy, mix);
  return runs;
}
