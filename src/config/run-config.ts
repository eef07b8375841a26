import { z } from 'zod';
import { type CostModel, parseCostModel } from '../cpu/costs.js';
import { ConfigError } from '../errors.js';
import { planRegions } from '../memory/regions.js';
import { type MachineConfig, parseMachineConfig } from './machine-config.js';
import { configErrorFromZod } from './schema-error.js';
import { checkHandlersFit, parseWorkload, type Workload } from './workload.js';

/** `run.repeats` by default (the sim backend; see the field). */
export const repeatsDefault = 5;
/**
 * Most repeats: 1,000 repeats of the default comparison (8 policies, 20,000 exits) take ~8 minutes of
 * sim at ~0.5 s a repeat (docs/measurement.md); more is a typo. Intervals shrink as 1/sqrt(repeats):
 * past a few hundred, longer runs help more.
 */
export const repeatsMax = 1000;

/**
 * A run: how long, which seed, and the watchdog's bound. With `machine`, `workload` and `costs`, this
 * is the whole config file (`asi-emu config init` writes a commented example).
 */
export const runSchema = z
  .object({
    /** Stop when the vCPUs have taken this many workload exits (kick exits not counted). */
    exits: z.number().int().min(1, 'run.exits must be at least 1').max(100_000_000).default(20000),
    seed: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(1),
    /** Stop at this virtual time whatever the exits (0: no limit). */
    maxCycles: z.number().min(0).default(0),
    /** INV-9: a wait longer than this many virtual cycles is a liveness violation. */
    waitBoundCycles: z.number().min(1000).default(10_000_000),
    /** Random extra cycles after each step (0..jitter), so interleavings differ by seed. */
    jitterCycles: z.number().int().min(0).max(1_000_000).default(16),
    /** Stop at the first violation (the fuzzer does). */
    stopOnViolation: z.boolean().default(false),
    /**
     * How many times `bench` runs each policy on each mix, each repeat with its own seed (derived from
     * `seed`; all policies share a repeat's seed), for means with 95% confidence intervals. 5 runs the
     * default sim comparison in ~4 s of CPU with overhead intervals of ±0.3–2.2 points at 20,000 exits
     * (docs/measurement.md has the measurements). The workers backend runs one unless asked for
     * more (`--repeats` or this field): a workers run takes seconds, not a fraction of one.
     */
    repeats: z
      .number()
      .int()
      .min(1, `run.repeats must be 1..${repeatsMax}`)
      .max(repeatsMax, `run.repeats must be 1..${repeatsMax}`)
      .default(repeatsDefault),
  })
  .strict();

export type RunSettings = z.output<typeof runSchema>;

/**
 * Most guest cycles between two exits a config may ask for (workload.exitIntervalCycles): 10^10 cycles
 * is 3.3 s of a 3 GHz guest per exit, below any rate a mix cites (exitsPerSecondMin is 1/s). Past it a
 * vCPU almost never exits, and the workers backend, which steps the guest in pieces, makes no progress.
 */
export const exitIntervalCyclesMax = 1e10;

export interface RunConfig {
  machine: MachineConfig;
  workload: Workload;
  costs: CostModel;
  run: RunSettings;
}

export interface RunConfigInput {
  machine?: unknown;
  workload?: unknown;
  costs?: unknown;
  run?: unknown;
  /** Policies to compare (`asi-emu bench` without --policies); checked by the command that uses them. */
  policies?: unknown;
  $comment?: unknown;
}

/** The top-level fields of a config file. `$comment` holds the explanations `config init` writes. */
export const configFileFields = ['machine', 'workload', 'costs', 'run', 'policies', '$comment'] as const;

/**
 * The machine part of what `createMachine` was given: a machine config as it is, or a run config (a
 * config file's shape: `{ machine, workload, costs, run }`, as `parseRunConfig` takes or returns it)
 * reduced to its `machine` (absent: the default machine). A mix of both is refused, naming the keys
 * of each, so a run config's sections are never taken for unknown machine fields.
 */
export function machineInputOf(input: unknown): unknown {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return input;
  const keys = Object.keys(input);
  const runKeys = keys.filter((key) => (configFileFields as readonly string[]).includes(key));
  if (runKeys.length === 0) return input;
  if (runKeys.length < keys.length) {
    const machineKeys = keys.filter((key) => !runKeys.includes(key));
    throw new ConfigError(
      'createMachine',
      `a machine config (cores, smt, vms, ...) or a run config (${configFileFields.join(', ')}), not both: ` +
        `move ${machineKeys.join(', ')} into machine`,
      keys.join(', '),
    );
  }
  return (input as RunConfigInput).machine ?? {};
}

export function parseRunSettings(input: unknown): RunSettings {
  const parsed = runSchema.safeParse(input ?? {});
  if (!parsed.success) throw configErrorFromZod(parsed.error, 'run');
  return parsed.data;
}

/** Validates a whole config (each part names its own fields in errors). */
export interface ParseRunOptions {
  /**
   * The caller ends the run by time, not by exits (the kick benchmark's guest never exits on its own):
   * the exit interval is not held to exitIntervalCyclesMax. Never set for a user's config.
   */
  endsByTime?: boolean;
}

export function parseRunConfig(input: RunConfigInput = {}, options: ParseRunOptions = {}): RunConfig {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError(
      'config',
      `a JSON object with optional fields ${configFileFields.join(', ')}`,
      input,
    );
  }
  // A misspelt section would otherwise be ignored, and the run would use the defaults without a word.
  for (const key of Object.keys(input)) {
    if (!(configFileFields as readonly string[]).includes(key)) {
      throw new ConfigError(key, `not a config field; the fields are ${configFileFields.join(', ')}`);
    }
  }
  const machine = parseMachineConfig(input.machine ?? {});
  const workload = parseWorkload(input.workload ?? {}, machine.cores * machine.smt);
  const interval = workload.exitIntervalCycles;
  if (interval !== undefined && interval > exitIntervalCyclesMax && options.endsByTime !== true) {
    throw new ConfigError(
      'workload.exitIntervalCycles',
      `at most ${exitIntervalCyclesMax} (or leave it out and give workload.exitsPerSecond): a vCPU that almost never exits makes no progress`,
      interval,
    );
  }
  if (workload.handlers.length > 0) checkHandlersFit(workload.handlers, planRegions(machine));
  return {
    machine,
    workload,
    costs: parseCostModel(input.costs ?? {}),
    run: parseRunSettings(input.run ?? {}),
  };
}
