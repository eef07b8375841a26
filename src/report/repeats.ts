import jstat from 'jstat';
import { assert } from '../assert.js';
import type { RunResult } from '../backend/result.js';
import { caseSeedOf } from '../fuzz/shard.js';
import {
  type InvariantId,
  invariantIds,
  type Violation,
  type ViolationCounts,
} from '../invariants/violation.js';

/**
 * Repeats and their confidence intervals (issue 20). A comparison runs every policy `repeats` times,
 * each repeat with its own seed; all policies share the seeds of a repeat (common random numbers), so
 * a policy and `none`, or two policies, differ in a repeat only by what the policies do. Every figure
 * is then the mean over the repeats with the half-width of its 95% confidence interval (Student's t,
 * n-1 degrees of freedom), and "overhead vs none" and the differences between two policies are
 * computed per repeat first (paired), which removes the noise the policies share.
 */

/** Two-sided 95% intervals: the t quantile at 1 - 0.05/2. */
const tProbability = 0.975;

/**
 * The t quantile t(0.975, dof), from jstat's inverse Student t (the ratio of incomplete beta
 * functions, accurate to ~1e-8 against R's qt). Cached per dof: a comparison asks for one or two.
 */
const tQuantiles = new Map<number, number>();
export function tQuantile95(dof: number): number {
  assert(Number.isInteger(dof) && dof >= 1, `t quantile: dof must be a positive integer, got ${dof}`);
  let quantile = tQuantiles.get(dof);
  if (quantile === undefined) {
    quantile = jstat.jStat.studentt.inv(tProbability, dof);
    assert(Number.isFinite(quantile) && quantile > 1.959, `t(0.975, ${dof}) = ${quantile} is at least z`);
    tQuantiles.set(dof, quantile);
  }
  return quantile;
}

/** A figure over the repeats: its mean and the half-width of its 95% CI (null: one repeat, no spread). */
export interface MeanCi {
  mean: number;
  ci95: number | null;
}

/** Mean and 95% CI half-width, t(0.975, n-1) x s / sqrt(n), s the sample standard deviation. */
export function meanCi95(values: readonly number[]): MeanCi {
  assert(values.length >= 1, 'a mean needs at least one value');
  const n = values.length;
  const mean = values.reduce((sum, value) => sum + value, 0) / n;
  if (n === 1) return { mean, ci95: null };
  const variance = values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (n - 1);
  const ci95 = (tQuantile95(n - 1) * Math.sqrt(variance)) / Math.sqrt(n);
  assert(ci95 >= 0, 'a half-width is never negative');
  return { mean, ci95 };
}

/** Whether an interval holds 0: the two things compared are not distinguishable at this many repeats. */
export function containsZero(interval: MeanCi): boolean {
  return interval.ci95 !== null && Math.abs(interval.mean) <= interval.ci95;
}

/**
 * The seeds of `repeats` repeats of a run seeded `seed`. The first is `seed` itself, so one repeat is
 * the run it always was, and any repeat can be run alone again with `--seed S --repeats 1`; the
 * others are the fuzzer's 32-bit splitmix mix of the seed and the repeat's index (fuzz/shard.ts
 * `caseSeedOf`), so neighbouring seeds do not share repeats. A mix that repeats an earlier seed (a
 * 32-bit collision) is skipped: the repeats are always distinct runs.
 */
export function repeatSeeds(seed: number, repeats: number): number[] {
  assert(Number.isSafeInteger(seed) && seed >= 0, `repeat seeds: bad seed ${seed}`);
  assert(Number.isInteger(repeats) && repeats >= 1, `repeat seeds: bad repeats ${repeats}`);
  const seeds = [seed];
  const seen = new Set(seeds);
  // Bounded: each index gives a new 32-bit value but for collisions, which are rare (1 in 4e9 each).
  for (let index = 1; seeds.length < repeats; index++) {
    assert(index < repeats * 4 + 16, 'repeat seeds: too many collisions');
    const candidate = caseSeedOf(seed, index) >>> 0;
    if (seen.has(candidate)) continue;
    seen.add(candidate);
    seeds.push(candidate);
  }
  return seeds;
}

/**
 * The figures of a RunResult that get a mean and a CI: every number a script reads from a result.
 * In the JSON each has its half-width beside it as `<figure>Ci95` (`overheadVsNoneCi95`, ...).
 */
export const repeatedFigures = [
  'guestShare',
  'guestWork',
  'overheadVsNone',
  'overheadVsKvmDefault',
  'exits',
  'achievedExitsPerSecond',
  'kickExits',
  'isolatedExitShare',
  'switchesToFullPer1kExits',
  'kicksPer1kExits',
  'heldCycles',
  'flushes',
  'bufferClears',
  'l1dFlushes',
  'ibpbs',
  'elapsedCycles',
] as const satisfies readonly (keyof RunResult)[];
export type RepeatedFigure = (typeof repeatedFigures)[number];

/** One repeat's own values, as `perRepeat` lists them: its seed, each repeated figure, and the rest. */
export type RepeatValues = Pick<
  RunResult,
  'seed' | RepeatedFigure | 'asiExits' | 'exposure' | 'violations' | 'traceHash'
> & {
  /** Workers runs only: the run's wall time (a sim run's wall time is not part of its result). */
  wallSeconds?: number;
};

/** Another policy on the same mix whose difference from this one has a 95% CI that holds 0. */
export interface Indistinguishable {
  policy: string;
  /** The figure compared per repeat: overhead vs none, or guest share where there is no baseline. */
  figure: 'overheadVsNone' | 'guestShare';
  /** Mean of this policy's value minus the other's, per repeat. */
  difference: number;
  differenceCi95: number;
}

/** Violation records a result keeps across its repeats (the JSON's `firstViolations`). */
const firstViolationsKept = 3;

/**
 * A policy on a mix over every repeat. The RunResult fields hold the means (or, for counts of
 * violations, the totals: a violation in any repeat is one), so a script that read one run's fields
 * reads the same names; the repeats' own values are in `perRepeat`. What is not averaged is the first
 * repeat's (seed `run.seed`): seed, trace hash, violation and fault records, per-thread table and
 * confidential-VM counters, so a trace or report of that run matches them.
 */
export interface RepeatedResult extends RunResult {
  repeats: number;
  /** The first records of any repeat, in repeat order (a later repeat's when the first broke none). */
  firstViolations: Violation[];
  /** Half-width of each figure's 95% CI (null: one repeat, or no baseline for an overhead). */
  ci95: Record<RepeatedFigure, number | null>;
  exposureCi95: { guestSteps: number | null; cycles: number | null; shareOfGuest: number | null };
  perRepeat: RepeatValues[];
  /** Whether the policy is held to the invariants (`bench --fail-on-violation`): policy/index.ts. */
  meantToBeSafe: boolean;
  /** Filled in by `markIndistinguishable`. */
  notDistinguishableFrom: Indistinguishable[];
}

function repeatValues(run: RunResult): RepeatValues {
  const figures = Object.fromEntries(repeatedFigures.map((figure) => [figure, run[figure]]));
  const values = {
    seed: run.seed,
    ...figures,
    asiExits: { ...run.asiExits },
    exposure: { ...run.exposure },
    violations: { ...run.violations },
    traceHash: run.traceHash,
  } as RepeatValues;
  if (run.backend === 'workers') values.wallSeconds = run.wallSeconds;
  return values;
}

/** Mean and CI of a figure that may be null (overhead without a baseline): null when any repeat's is. */
function figureOf(runs: readonly RunResult[], pick: (run: RunResult) => number | null): MeanCi | null {
  const values = runs.map(pick);
  if (values.some((value) => value === null)) return null;
  return meanCi95(values as number[]);
}

/**
 * One policy on one mix over its repeats (`runs` in repeat order, each with its `overheadVsNone`
 * against the baseline of its own repeat). The first repeat gives what is not averaged
 * (`RepeatedResult`).
 */
export function aggregateRepeats(runs: readonly RunResult[], meantToBeSafe: boolean): RepeatedResult {
  assert(runs.length >= 1, 'a repeated result needs a run');
  const [first] = runs;
  assert(
    runs.every(
      (run) => run.policy === first.policy && run.mix === first.mix && run.backend === first.backend,
    ),
    'the repeats of one result are one policy on one mix',
  );
  const ci95 = {} as Record<RepeatedFigure, number | null>;
  const means = {} as Record<RepeatedFigure, number | null>;
  for (const figure of repeatedFigures) {
    const interval = figureOf(runs, (run) => run[figure]);
    means[figure] = interval?.mean ?? null;
    ci95[figure] = interval?.ci95 ?? null;
  }
  const violations = {} as ViolationCounts;
  for (const id of invariantIds) {
    violations[id as InvariantId] = runs.reduce((sum, run) => sum + run.violations[id], 0);
  }
  const faultsByHandler: Record<string, number> = {};
  for (const run of runs) {
    for (const [handler, count] of Object.entries(run.faultsByHandler)) {
      faultsByHandler[handler] = (faultsByHandler[handler] ?? 0) + count / runs.length;
    }
  }
  const guestSteps = meanCi95(runs.map((run) => run.exposure.guestSteps));
  const cycles = meanCi95(runs.map((run) => run.exposure.cycles));
  const shareOfGuest = meanCi95(runs.map((run) => run.exposure.shareOfGuest));
  const mean = (pick: (run: RunResult) => number) =>
    runs.reduce((sum, run) => sum + pick(run), 0) / runs.length;
  return {
    ...first,
    // The means: null only for an overhead without a baseline (figureOf).
    ...(means as Pick<RunResult, RepeatedFigure>),
    faultsByHandler,
    violations,
    asiExits: {
      pageFault: mean((run) => run.asiExits.pageFault),
      interrupt: mean((run) => run.asiExits.interrupt),
      contextSwitch: mean((run) => run.asiExits.contextSwitch),
    },
    exposure: { guestSteps: guestSteps.mean, cycles: cycles.mean, shareOfGuest: shareOfGuest.mean },
    steps: mean((run) => run.steps),
    deadlocked: runs.some((run) => run.deadlocked),
    wallSeconds: mean((run) => run.wallSeconds),
    repeats: runs.length,
    ci95,
    exposureCi95: { guestSteps: guestSteps.ci95, cycles: cycles.ci95, shareOfGuest: shareOfGuest.ci95 },
    perRepeat: runs.map(repeatValues),
    firstViolations: runs.flatMap((run) => run.violationRecords).slice(0, firstViolationsKept),
    meantToBeSafe,
    notDistinguishableFrom: [],
  };
}

/**
 * Marks every pair of policies on one mix (and backend) whose paired difference has a 95% CI that
 * holds 0: "not distinguishable at N repeats". The difference is taken per repeat (the repeats share
 * their seeds), in overhead vs none where both have it, else in guest share. One repeat marks nothing:
 * it has no interval.
 */
export function markIndistinguishable(results: readonly RepeatedResult[]): void {
  for (const result of results) result.notDistinguishableFrom = [];
  for (const [i, a] of results.entries()) {
    for (const b of results.slice(i + 1)) {
      if (a.mix !== b.mix || a.backend !== b.backend || a.repeats !== b.repeats || a.repeats < 2) continue;
      assert(
        a.perRepeat.every((repeat, r) => repeat.seed === b.perRepeat[r].seed),
        'the policies of a comparison share the seeds of each repeat',
      );
      const figure = a.overheadVsNone !== null && b.overheadVsNone !== null ? 'overheadVsNone' : 'guestShare';
      const difference = meanCi95(
        a.perRepeat.map((repeat, r) => {
          const other = b.perRepeat[r];
          return figure === 'overheadVsNone'
            ? (repeat.overheadVsNone as number) - (other.overheadVsNone as number)
            : repeat.guestShare - other.guestShare;
        }),
      );
      if (!containsZero(difference)) continue;
      const ci = difference.ci95 as number;
      a.notDistinguishableFrom.push({
        policy: b.policy,
        figure,
        difference: difference.mean,
        differenceCi95: ci,
      });
      b.notDistinguishableFrom.push({
        policy: a.policy,
        figure,
        difference: -difference.mean,
        differenceCi95: ci,
      });
    }
  }
}
