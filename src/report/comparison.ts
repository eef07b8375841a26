import { assert } from '../assert.js';
import type { RunResult } from '../backend/result.js';
import { createSimMachine, runSim } from '../backend/sim/run-sim.js';
import type { RunConfig } from '../config/run-config.js';
import { workloadWithMix } from '../config/workload.js';
import { builtinMix, type ExitMix, mixClassOf } from '../cpu/mixes.js';
import { type ToolIdentity, toolIdentity } from '../fuzz/version.js';
import { EventLog, type LoggedEvent } from '../invariants/event-log.js';
import { type InvariantId, invariantIds } from '../invariants/violation.js';
import type { Machine } from '../machine.js';
import { kvmDefault } from '../policy/kvm-default.js';
import { none } from '../policy/none.js';
import type { Policy } from '../policy/policy.js';
import { formatTable } from './machine-table.js';
import {
  aggregateRepeats,
  markIndistinguishable,
  type RepeatedResult,
  repeatedFigures,
  repeatSeeds,
} from './repeats.js';

/**
 * A policy comparison on the sim backend: every policy on every mix, same machine, workload and seed,
 * with `overheadVsNone` measured against `none` run on the same mix and seed (run as a baseline even
 * when not asked for).
 */
export interface Comparison {
  results: RunResult[];
  /** Every event of each result's run (same order), when asked for with `keepEvents`. */
  logs: (EventLog | null)[];
  /** The baselines (`none` per mix), also when `none` was not among the policies asked for. */
  baselines: RunResult[];
}

export function compareOnSim(
  config: RunConfig,
  policies: Policy[],
  mixes: ExitMix[],
  onResult?: (result: RunResult) => void,
  keepEvents = false,
): Comparison {
  const steps = comparisonSteps(config, policies, mixes, keepEvents);
  for (let step = steps.next(); ; step = steps.next()) {
    if (step.done) return step.value;
    onResult?.(step.value);
  }
}

/** The comparison's runs one at a time: yields each result, returns the comparison. */
function* comparisonSteps(
  config: RunConfig,
  policies: Policy[],
  mixes: ExitMix[],
  keepEvents: boolean,
): Generator<RunResult, Comparison, void> {
  const machine = createSimMachine(config.machine);
  const results: RunResult[] = [];
  const logs: (EventLog | null)[] = [];
  const baselines: RunResult[] = [];
  for (const mix of mixes) {
    const mixConfig: RunConfig = { ...config, workload: workloadWithMix(config.workload, mix) };
    const baselineLog = keepEvents ? new EventLog(64, true) : null;
    const baseline = runSim(mixConfig, none, { machine, log: baselineLog ?? undefined });
    baselines.push(baseline);
    for (const policy of policies) {
      const log = policy === none ? baselineLog : keepEvents ? new EventLog(64, true) : null;
      const result =
        policy === none ? { ...baseline } : runSim(mixConfig, policy, { machine, log: log ?? undefined });
      logs.push(log);
      // Overhead is guest work lost (progress at SMT speed), not time out of the guest (issue 19).
      result.overheadVsNone = baseline.guestWork > 0 ? 1 - result.guestWork / baseline.guestWork : 0;
      results.push(result);
      yield result;
    }
  }
  machine.dispose();
  return { results, logs, baselines };
}

// ---- repeats: every policy, every mix, every repeat's seed --------------------------------------------

/** A policy in a comparison, by name, and whether it is held to the invariants (policy/index.ts). */
export interface ComparedPolicy {
  name: string;
  meantToBeSafe: boolean;
}

/** The events of one run, for traces and the report's timeline: an EventLog, or events sent back. */
export interface RunEvents {
  events(): readonly LoggedEvent[];
}

/** One run a comparison asks for. */
export interface RunRequest {
  policy: string;
  mix: ExitMix;
  seed: number;
  /** 0-based; events are kept for repeat 0 only. */
  repeat: number;
  keepEvents: boolean;
  /**
   * Told, while the run goes, how many workload exits it has done (of `run.exits`): a long run shows
   * progress within itself. A runner calls it where it can (the sim every 65,536 steps, the workers
   * backend as it polls), or never (a user's module run in a pool worker).
   */
  onProgress?: (exits: number) => void;
}

export interface RunDone {
  result: RunResult;
  events: RunEvents | null;
}

export interface RepeatedComparisonOptions {
  policies: readonly ComparedPolicy[];
  mixes: readonly ExitMix[];
  /** The run seed: repeat 0's seed; the others derive from it (report/repeats.ts `repeatSeeds`). */
  seed: number;
  repeats: number;
  /**
   * `always`: each repeat runs the baselines (`none`, `kvm-default`) even when they are not compared
   * (sim: a run costs a fraction of a second, and a paired overhead needs the baseline's run on the
   * same seed). `if-compared`: an overhead only against a baseline that is compared (workers: a run
   * costs seconds), else null.
   */
  baseline: 'always' | 'if-compared';
  /** Keep the first repeat's events of each run (for --trace and --report). */
  keepEvents: boolean;
  /** Does one run (the backend's, or a pool worker's for a user module). */
  run: (request: RunRequest) => Promise<RunDone>;
  /** A run starts (`done` false) or ends; `label` says which, e.g. "asi on sysbench-cpu, repeat 2/5". */
  onRun?: (label: string, done: boolean) => void;
  /** The run going on has done `exits` workload exits (`RunRequest.onProgress`). */
  onRunProgress?: (exits: number) => void;
}

export interface RepeatedComparison {
  /** One per policy and mix, mix by mix, policies in the order asked for. */
  results: RepeatedResult[];
  /** The first repeat's events of each result (same order), when kept. */
  logs: (RunEvents | null)[];
  /** Each repeat's seed, shared by every policy in that repeat. */
  seeds: number[];
}

/**
 * The policies every overhead is measured against, in the order a repeat runs them: `none` (KVM with
 * no L1TF/MDS mitigation: `overheadVsNone`) and `kvm-default` (KVM as shipped on an affected server:
 * `overheadVsKvmDefault`, issue 19 item 6), both paired per repeat.
 */
export const baselinePolicies = ['none', 'kvm-default'] as const;

/** The built-in policy a baseline name stands for (a baseline runs even when it is not compared). */
const baselineByName: Readonly<Record<(typeof baselinePolicies)[number], Policy>> = {
  none,
  'kvm-default': kvmDefault,
};

/**
 * The baselines a comparison runs in each repeat of `mix`: the compared ones, or all of them when
 * `always`. A user mix (a host process, issue 22 item 4) has no `kvm-default`: KVM's shipped L1TF/MDS
 * mitigations act at VM entry, which a host process never makes; its overhead is against `none` only.
 */
function baselinesRun(
  options: Pick<RepeatedComparisonOptions, 'policies' | 'baseline'>,
  mix: ExitMix,
): string[] {
  return baselinePolicies.filter(
    (name) =>
      (name !== 'kvm-default' || mixClassOf(mix) === 'kvm') &&
      (options.baseline === 'always' || options.policies.some((policy) => policy.name === name)),
  );
}

/** Runs a comparison's runs (`repeatedRunCount` of them). */
export function repeatedRunCount(options: Omit<RepeatedComparisonOptions, 'run'>): number {
  let runs = 0;
  for (const mix of options.mixes) {
    const baselines = baselinesRun(options, mix);
    const others = options.policies.filter((policy) => !baselines.includes(policy.name)).length;
    runs += options.repeats * (baselines.length + others);
  }
  return runs;
}

/** 1 - guestWork / the baseline's guestWork, in the same repeat; null without that baseline. */
function overheadAgainst(result: RunResult, baseline: RunDone | undefined): number | null {
  if (baseline === undefined) return null;
  return baseline.result.guestWork > 0 ? 1 - result.guestWork / baseline.result.guestWork : 0;
}

/**
 * Every policy on every mix, `repeats` times. Repeat r of every policy uses the same seed (common
 * random numbers), and its overhead vs none is measured against `none` in the same repeat, so each
 * repeat gives a paired difference; the results hold the means, 95% CIs and every repeat's values
 * (report/repeats.ts). Runs go one at a time, in a fixed order, so the results do not depend on timing.
 */
export async function compareRepeated(options: RepeatedComparisonOptions): Promise<RepeatedComparison> {
  const seeds = repeatSeeds(options.seed, options.repeats);
  const names = options.policies.map((policy) => policy.name);
  assert(new Set(names).size === names.length, 'a comparison runs each policy once per repeat');
  const results: RepeatedResult[] = [];
  const logs: (RunEvents | null)[] = [];
  for (const mix of options.mixes) {
    const baselineNames = baselinesRun(options, mix);
    const runs = new Map<string, RunResult[]>(names.map((name) => [name, []]));
    const firstEvents = new Map<string, RunEvents | null>();
    for (const [repeat, seed] of seeds.entries()) {
      const keepEvents = options.keepEvents && repeat === 0;
      const runOne = async (policy: string): Promise<RunDone> => {
        const label = `${policy} on ${mix.name}${options.repeats > 1 ? `, repeat ${repeat + 1}/${options.repeats}` : ''}`;
        options.onRun?.(label, false);
        const done = await options.run({
          policy,
          mix,
          seed,
          repeat,
          keepEvents,
          onProgress: options.onRunProgress,
        });
        assert(
          done.result.policy === policy && done.result.seed === seed,
          `the run of ${label} came back as ${done.result.policy}, seed ${done.result.seed}`,
        );
        options.onRun?.(label, true);
        return done;
      };
      const baselines = new Map<string, RunDone>();
      for (const name of baselineNames) baselines.set(name, await runOne(name));
      for (const name of names) {
        const done = baselines.get(name) ?? (await runOne(name));
        const result = { ...done.result };
        // Overhead is guest work lost (progress at SMT speed), not time out of the guest (issue 19).
        result.overheadVsNone = overheadAgainst(result, baselines.get('none'));
        result.overheadVsKvmDefault = overheadAgainst(result, baselines.get('kvm-default'));
        runs.get(name)?.push(result);
        if (repeat === 0) firstEvents.set(name, done.events);
      }
    }
    const mixResults = options.policies.map((policy) =>
      aggregateRepeats(runs.get(policy.name) ?? [], policy.meantToBeSafe),
    );
    markIndistinguishable(mixResults);
    results.push(...mixResults);
    logs.push(...names.map((name) => firstEvents.get(name) ?? null));
  }
  return { results, logs, seeds };
}

/**
 * A `run` for `compareRepeated` that runs built-in (or any in-process) policies on the sim backend
 * in this thread, and `none` for the baseline, on one machine reused across runs (reset between
 * them, as `compareOnSim` does).
 * `dispose` frees the machine.
 */
export function simRunner(
  config: RunConfig,
  policies: ReadonlyMap<string, Policy>,
): { run: (request: RunRequest) => Promise<RunDone>; dispose: () => void } {
  let machine: Machine | null = null;
  return {
    run: async (request) => {
      // The baselines run in each repeat whether or not they are compared.
      const policy =
        policies.get(request.policy) ??
        (Object.hasOwn(baselineByName, request.policy)
          ? baselineByName[request.policy as keyof typeof baselineByName]
          : undefined);
      assert(policy !== undefined, `simRunner: no in-process policy ${request.policy}`);
      machine ??= createSimMachine(config.machine);
      const log = request.keepEvents ? new EventLog(64, true) : undefined;
      const result = runSim(
        {
          ...config,
          workload: workloadWithMix(config.workload, request.mix),
          run: { ...config.run, seed: request.seed },
        },
        policy,
        { machine, log, onProgress: request.onProgress },
      );
      // A turn for the event loop between runs: a progress bar (a timer) draws.
      await new Promise((resolve) => setImmediate(resolve));
      return { result, events: log ?? null };
    },
    dispose: () => {
      machine?.dispose();
      machine = null;
    },
  };
}

export function mixesByName(names: string[], field = '--mix'): ExitMix[] {
  return names.map((name) => builtinMix(name, field));
}

const percent = (value: number) => `${(value * 100).toFixed(1)}%`;
const points = (value: number) => (value * 100).toFixed(1);
/**
 * Overheads to two decimals: at published exit rates a policy costs tenths of a percent, and one
 * decimal would print 0.2% for 0.15% and 0.24% alike.
 */
const overheadPercent = (value: number) => `${(value * 100).toFixed(2)}%`;
const overheadPoints = (value: number) => (value * 100).toFixed(2);

/**
 * A mean and its 95% CI half-width as the table shows it: `9.7% ± 0.8`; the value alone without one
 * (one repeat) or when every repeat gave the same value.
 */
function withCi(text: string, ci95: number | null | undefined, format: (value: number) => string): string {
  // 0 exactly: the same in every repeat (none's overhead, a count no policy run changes): no spread.
  return ci95 === null || ci95 === undefined || ci95 === 0 ? text : `${text} ± ${format(ci95)}`;
}

/**
 * What a safe policy costs beside `kvm-default`, which is unsafe (INV-1): ASI is pitched as the cheaper
 * way to the same safety. Said only for a safe policy with that baseline, and as "cheaper" or "dearer"
 * only when the 95% CI of the paired difference leaves out 0; '' for kvm-default itself.
 */
function againstKvmDefault(result: RunResult): string {
  const overhead = result.overheadVsKvmDefault;
  if (overhead === null || result.policy === 'kvm-default') return '';
  const ci = isRepeated(result) ? result.ci95.overheadVsKvmDefault : null;
  const amount = `${overheadPoints(Math.abs(overhead))}${ci === null ? '' : ` ± ${overheadPoints(ci)}`} points of guest work`;
  // A difference that rounds to 0.00 points is no difference a reader can see: say so, not "dearer by 0.00".
  if (overheadPoints(Math.abs(overhead)) === overheadPoints(0))
    return '; the same guest work as kvm-default (unsafe), to 0.01 point';
  if (ci === null || Math.abs(overhead) <= ci) {
    return `; vs kvm-default (unsafe): ${overhead < 0 ? '-' : '+'}${amount}${ci === null ? '' : ', within its 95% CI of the same'}`;
  }
  return overhead < 0
    ? `; cheaper than kvm-default (unsafe) by ${amount}`
    : `; dearer than kvm-default (unsafe) by ${amount}`;
}

function isRepeated(result: RunResult): result is RepeatedResult {
  return 'perRepeat' in result;
}

/** The invariants a result broke, e.g. `INV-1, INV-2`, or '' when none. */
export function brokenInvariants(result: RunResult): InvariantId[] {
  return invariantIds.filter((id) => result.violations[id] > 0);
}

/**
 * The results of policies meant to be safe that broke an invariant (`bench --fail-on-violation`).
 * Results of one run (not repeated) count as meant to be safe unless they are built-in baselines.
 */
export function safetyFailures(results: readonly RepeatedResult[]): RepeatedResult[] {
  return results.filter((result) => result.meantToBeSafe && brokenInvariants(result).length > 0);
}

/**
 * The table a kernel engineer reads at a glance, then one verdict line per policy and mix, then the
 * pairs of policies the repeats cannot tell apart. Repeated results show each figure's mean with
 * its 95% CI half-width (`9.7% ± 0.8`, in percentage points for shares); violations are totals over
 * the repeats.
 */
export function formatComparison(results: readonly RunResult[]): string {
  const rows = results.map((result) => {
    const broken = brokenInvariants(result);
    const ci = isRepeated(result) ? result.ci95 : null;
    return [
      result.policy,
      result.mix,
      withCi(percent(result.guestShare), ci?.guestShare, points),
      result.overheadVsNone === null
        ? '-'
        : withCi(overheadPercent(result.overheadVsNone), ci?.overheadVsNone, overheadPoints),
      result.overheadVsKvmDefault === null
        ? '-'
        : withCi(
            // No sign on a figure that rounds to 0.00 ("0.00%", not "-0.00%"): it can be either side.
            overheadPercent(
              overheadPoints(Math.abs(result.overheadVsKvmDefault)) === overheadPoints(0)
                ? 0
                : result.overheadVsKvmDefault,
            ),
            ci?.overheadVsKvmDefault,
            overheadPoints,
          ),
      withCi(percent(result.guestWork), ci?.guestWork, points),
      withCi(result.achievedExitsPerSecond.toFixed(0), ci?.achievedExitsPerSecond, (v) => v.toFixed(0)),
      withCi(percent(result.isolatedExitShare), ci?.isolatedExitShare, points),
      withCi(result.switchesToFullPer1kExits.toFixed(0), ci?.switchesToFullPer1kExits, (v) => v.toFixed(0)),
      withCi(result.kicksPer1kExits.toFixed(0), ci?.kicksPer1kExits, (v) => v.toFixed(0)),
      withCi(result.flushes.toFixed(0), ci?.flushes, (v) => v.toFixed(0)),
      broken.length === 0 ? '0' : broken.map((id) => `${id}:${result.violations[id]}`).join(' '),
    ];
  });
  const table = formatTable(
    [
      'policy',
      'mix',
      'guest share',
      'overhead vs none',
      'vs kvm-default',
      'guest work',
      'exits/s/vCPU',
      'exits in isolation',
      'to full /1k exits',
      'kicks /1k exits',
      'L1D flushes',
      'violations',
    ],
    rows,
  );
  // Labels padded to the longest (at least 32), so the verdicts line up whatever the names.
  const labelWidth = Math.max(
    32,
    ...results.map((result) => `${result.policy} on ${result.mix}`.length + 1),
    ...results
      .filter(isRepeated)
      .flatMap((result) =>
        result.notDistinguishableFrom.map(
          (other) => `${result.policy} vs ${other.policy} on ${result.mix}`.length + 1,
        ),
      ),
  );
  const verdicts = results.map((result) => {
    const broken = brokenInvariants(result);
    const label = `${result.policy} on ${result.mix}`.padEnd(labelWidth);
    const repeats = isRepeated(result) && result.repeats > 1 ? result.repeats : 1;
    const exits = isRepeated(result)
      ? result.perRepeat.reduce((sum, repeat) => sum + repeat.exits, 0)
      : result.exits;
    const over = repeats > 1 ? ` over ${repeats} repeats` : '';
    if (broken.length === 0)
      return `${label} safe: no invariant broken in ${exits} exits${over}${againstKvmDefault(result)}`;
    const meant = isRepeated(result) && result.meantToBeSafe ? ' (a policy meant to be safe)' : '';
    const window =
      result.exposure.cycles > 0
        ? `; guest ran beside a sibling holding secrets for ${Math.round(result.exposure.cycles)} cycles (${(result.exposure.shareOfGuest * 100).toFixed(3)}% of guest time, in ${Math.round(result.exposure.guestSteps)} guest intervals)${repeats > 1 ? ' per run' : ''}`
        : '';
    return `${label} UNSAFE${meant}: breaks ${broken.join(', ')}${window}`;
  });
  const pairs = results.filter(isRepeated).flatMap((result, index, all) =>
    result.notDistinguishableFrom
      .filter(
        (other) =>
          all.findIndex((candidate) => candidate.policy === other.policy && candidate.mix === result.mix) >
          index,
      )
      .map((other) => {
        const shown = overheadPoints(Math.abs(other.difference));
        // No sign on a difference that rounds to 0.00 (not "-0.00").
        const sign = shown === overheadPoints(0) ? '' : other.difference >= 0 ? '+' : '-';
        const what = other.figure === 'overheadVsNone' ? 'overhead' : 'guest share';
        return `${`${result.policy} vs ${other.policy} on ${result.mix}`.padEnd(labelWidth)} not distinguishable at ${result.repeats} repeats: ${what} differs by ${sign}${shown} ± ${overheadPoints(other.differenceCi95)} points (the 95% CI holds 0)`;
      }),
  );
  return `${table}\n\n${[...verdicts, ...pairs].join('\n')}`;
}

// ---- the JSON document ----------------------------------------------------------------------------

/**
 * The bench JSON's format and schema version (schema/bench.schema.json describes it). History:
 *   1 - issue 20: `format`, `tool`, `schemaVersion`, `mixes`, `repeatSeeds`; per result `repeats`,
 *       `<figure>Ci95`, `perRepeat`, `meantToBeSafe`, `notDistinguishableFrom`; workers results keep
 *       `wallSeconds`. Every field of the unversioned document before it kept its name and meaning,
 *       a mean where it was one run's value.
 * Bump it whenever a field changes meaning or goes; a new optional field does not need a bump.
 */
export const benchFormat = 'asi-emu-bench';
export const benchSchemaVersion = 1;

/** What a bench document says about its run, besides the results. */
export interface BenchJsonMeta {
  backend: 'sim' | 'workers';
  machine: unknown;
  /** The workload config the runs used (its mix and catalogue are under `mixes`). */
  workload: unknown;
  costs: unknown;
  run: unknown;
  /** Each mix run: name, description, source and the weights used. */
  mixes: readonly ExitMix[];
  /** Users' policy modules compared (path and SHA-256 of the file). */
  policyModules?: readonly { name: string; path: string; sha256: string; safe: boolean }[];
}

export interface BenchJson {
  format: typeof benchFormat;
  schemaVersion: typeof benchSchemaVersion;
  tool: ToolIdentity;
  [key: string]: unknown;
}

/**
 * One result as scripts read it: the issue 3 fields (means), each figure's CI beside it, the repeats.
 * The bench JSON's `results[]` and the sweep JSON's `points[].results[]` alike.
 */
export function resultJson(result: RepeatedResult): Record<string, unknown> {
  const json: Record<string, unknown> = {
    policy: result.policy,
    mix: result.mix,
    backend: result.backend,
    seed: result.seed,
    repeats: result.repeats,
    meantToBeSafe: result.meantToBeSafe,
  };
  const figure = (name: (typeof repeatedFigures)[number]) => {
    json[name] = result[name];
    json[`${name}Ci95`] = result.ci95[name];
  };
  figure('guestShare');
  figure('guestWork');
  figure('overheadVsNone');
  figure('overheadVsKvmDefault');
  figure('exits');
  figure('achievedExitsPerSecond');
  json.exitsPerSecondTarget = result.exitsPerSecondTarget;
  figure('kickExits');
  figure('isolatedExitShare');
  figure('switchesToFullPer1kExits');
  figure('kicksPer1kExits');
  figure('heldCycles');
  figure('flushes');
  figure('bufferClears');
  figure('l1dFlushes');
  figure('ibpbs');
  json.asiExits = result.asiExits;
  Object.assign(json, {
    faultsByHandler: result.faultsByHandler,
    byReason: result.byReason,
    violations: result.violations,
    exposure: result.exposure,
    exposureCi95: result.exposureCi95,
  });
  figure('elapsedCycles');
  json.traceHash = result.traceHash;
  if (result.backend === 'workers') json.wallSeconds = result.wallSeconds;
  json.firstViolations = result.firstViolations;
  json.notDistinguishableFrom = result.notDistinguishableFrom;
  json.perRepeat = result.perRepeat;
  assert(
    repeatedFigures.every((name) => name in json && `${name}Ci95` in json),
    'every repeated figure has its CI in the JSON',
  );
  return json;
}

/**
 * The stable JSON for scripts (issue 3, versioned by issue 20): `{ format, schemaVersion, tool, ...,
 * results: [ { policy, mix, guestShare, guestShareCi95, ..., perRepeat } ] }`.
 */
export function comparisonJson(
  comparison: Pick<RepeatedComparison, 'results' | 'seeds'>,
  meta: BenchJsonMeta,
): BenchJson {
  return {
    format: benchFormat,
    schemaVersion: benchSchemaVersion,
    tool: toolIdentity(),
    ...meta,
    repeatSeeds: comparison.seeds,
    // A user mix's figures count a host process's user-mode work (issue 22 item 4): each result says so.
    results: comparison.results.map((result) => {
      const mix = meta.mixes.find((candidate) => candidate.name === result.mix);
      return {
        ...resultJson(result),
        workOf: mix !== undefined && mixClassOf(mix) === 'user' ? 'user' : 'guest',
      };
    }),
  };
}
