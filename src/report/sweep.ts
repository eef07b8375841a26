import { assert } from '../assert.js';
import type { RunConfig } from '../config/run-config.js';
import type { ExitMix } from '../cpu/mixes.js';
import { type ToolIdentity, toolIdentity } from '../fuzz/version.js';
import {
  type ComparedPolicy,
  compareRepeated,
  type RepeatedComparison,
  type RunDone,
  type RunRequest,
  repeatedRunCount,
  resultJson,
} from './comparison.js';
import { formatTable } from './machine-table.js';
import type { RepeatedResult } from './repeats.js';
import type { AxisScale, SweepSeries } from './sweep-chart.js';

/**
 * A sweep (issue 20, `asi-emu sweep`): the same repeated comparison (`compareRepeated`: paired seeds,
 * 95% CIs) at every value of one config field, by default the exit rate. Every point uses the same
 * seeds, so two points differ only by the field (and by what it changes in the runs' draws).
 */

/** A sweep's varied field and its points, each with its whole config (the field set, checked). */
export interface SweepPlan {
  /** The config field, dotted (`workload.exitsPerSecond`, `costs.ipiDelivery`). */
  path: string;
  values: readonly number[];
  /** One config per value, same order. */
  configs: readonly RunConfig[];
  policies: readonly ComparedPolicy[];
  mixes: readonly ExitMix[];
  seed: number;
  repeats: number;
}

export interface SweepRunner {
  run: (request: RunRequest) => Promise<RunDone>;
  close: () => Promise<void>;
}

export interface SweepHooks {
  /** A run starts or ends; the label names the point too ("..., workload.exitsPerSecond=3000"). */
  onRun?: (label: string, done: boolean) => void;
  onRunProgress?: (exits: number) => void;
}

export interface SweepPoint {
  value: number;
  comparison: RepeatedComparison;
}

export interface Sweep {
  path: string;
  points: SweepPoint[];
}

/** Runs of a whole sweep: its points times the runs of one comparison. */
export function sweepRunCount(plan: SweepPlan): number {
  return (
    plan.values.length *
    repeatedRunCount({
      policies: plan.policies,
      mixes: plan.mixes,
      seed: plan.seed,
      repeats: plan.repeats,
      baseline: 'always',
      keepEvents: false,
    })
  );
}

/**
 * Every point's repeated comparison, one point after the other, each on a runner made for its config
 * (`makeRunner`; closed after the point, also when a run fails). On the sim, always against `none`
 * in the same repeat: overhead vs none is the sweep's figure.
 */
export async function runSweep(
  plan: SweepPlan,
  makeRunner: (config: RunConfig) => SweepRunner,
  hooks: SweepHooks = {},
): Promise<Sweep> {
  assert(plan.values.length === plan.configs.length, 'one config per swept value');
  assert(new Set(plan.values).size === plan.values.length, 'swept values are distinct');
  const points: SweepPoint[] = [];
  for (const [index, value] of plan.values.entries()) {
    const config = plan.configs[index];
    assert(config.run.repeats === plan.repeats && config.run.seed === plan.seed, 'points share the repeats');
    const runner = makeRunner(config);
    const comparison = await compareRepeated({
      policies: plan.policies,
      mixes: plan.mixes,
      seed: plan.seed,
      repeats: plan.repeats,
      baseline: 'always',
      keepEvents: false,
      run: runner.run,
      onRun: (label, done) => hooks.onRun?.(`${label}, ${plan.path}=${value}`, done),
      onRunProgress: hooks.onRunProgress,
    }).finally(() => runner.close());
    points.push({ value, comparison });
  }
  return { path: plan.path, points };
}

/** The result of a policy on a mix at a point. */
function resultAt(point: SweepPoint, policy: string, mix: string): RepeatedResult | undefined {
  return point.comparison.results.find((result) => result.policy === policy && result.mix === mix);
}

/** The chart's lines of one mix: overhead vs none and its CI at every point, per policy. */
export function sweepSeries(sweep: Sweep, mix: string, policies: readonly string[]): SweepSeries[] {
  return policies.map((policy) => ({
    policy,
    points: sweep.points.map((point) => {
      const result = resultAt(point, policy, mix);
      return {
        x: point.value,
        mean: result?.overheadVsNone ?? null,
        ci95: result?.ci95.overheadVsNone ?? null,
      };
    }),
  }));
}

/**
 * The x scale a sweep's chart uses: log for exit rates (they span decades, and what a rate changes
 * goes as its logarithm), and for any field whose values are all positive and span a factor of 10 or
 * more; else linear. `--x-scale` overrides it.
 */
export function defaultScale(path: string, values: readonly number[]): AxisScale {
  if (path === 'workload.exitsPerSecond') return 'log';
  const positive = values.every((value) => value > 0);
  return positive && Math.max(...values) / Math.min(...values) >= 10 ? 'log' : 'linear';
}

/** The terminal's view: per mix, a table of overhead vs none, policies by rows and values by columns. */
export function formatSweep(sweep: Sweep, mixes: readonly string[], policies: readonly string[]): string {
  return mixes
    .map((mix) => {
      const rows = policies.map((policy) => [
        policy,
        ...sweep.points.map((point) => {
          const result = resultAt(point, policy, mix);
          if (result === undefined || result.overheadVsNone === null) return '-';
          const ci = result.ci95.overheadVsNone;
          const mean = `${(result.overheadVsNone * 100).toFixed(1)}%`;
          return ci === null || ci === 0 ? mean : `${mean} ± ${(ci * 100).toFixed(1)}`;
        }),
      ]);
      // The field's last name heads each column (`exitsPerSecond=3000`); the header line names it whole.
      const field = sweep.path.split('.').at(-1);
      const header = [`${mix}: overhead vs none`, ...sweep.points.map((point) => `${field}=${point.value}`)];
      return formatTable(header, rows);
    })
    .join('\n\n');
}

/**
 * The sweep JSON's format and schema version. History:
 *   1 - issue 20: `vary` (path, values, scale), and per point the bench JSON's results (every field,
 *       `<figure>Ci95` and `perRepeat` included).
 * Bump it whenever a field changes meaning or goes; a new optional field does not need a bump.
 */
export const sweepFormat = 'asi-emu-sweep';
export const sweepSchemaVersion = 1;

export interface SweepJsonMeta {
  scale: AxisScale;
  machine: unknown;
  workload: unknown;
  costs: unknown;
  run: unknown;
  mixes: readonly ExitMix[];
}

export interface SweepJson {
  format: typeof sweepFormat;
  schemaVersion: typeof sweepSchemaVersion;
  tool: ToolIdentity;
  [key: string]: unknown;
}

/**
 * The stable JSON for scripts: `{ format, schemaVersion, tool, backend, vary: { path, values, scale },
 * machine, workload, costs, run (the config before the varied field is set), mixes, policies,
 * repeatSeeds, points: [ { value, results: [ { policy, mix, overheadVsNone, overheadVsNoneCi95,
 * guestWork, guestWorkCi95, achievedExitsPerSecond, ..., perRepeat } ] } ] }`.
 */
export function sweepJson(sweep: Sweep, meta: SweepJsonMeta, policies: readonly string[]): SweepJson {
  assert(sweep.points.length > 0, 'a sweep has points');
  const { scale, ...rest } = meta;
  return {
    format: sweepFormat,
    schemaVersion: sweepSchemaVersion,
    tool: toolIdentity(),
    backend: 'sim',
    vary: { path: sweep.path, values: sweep.points.map((point) => point.value), scale },
    ...rest,
    policies,
    repeatSeeds: sweep.points[0].comparison.seeds,
    points: sweep.points.map((point) => ({
      value: point.value,
      results: point.comparison.results.map(resultJson),
    })),
  };
}
