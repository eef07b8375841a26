import fc from 'fast-check';
import { assert } from '../assert.js';
import type { Policy } from '../policy/policy.js';
import { fuzzCaseArbitrary } from './arbitraries.js';
import {
  type CaseVerdict,
  type FailureKind,
  type FuzzCase,
  type MachineCache,
  runFuzzCase,
  sameFailure,
} from './fuzz-case.js';
import { type FuzzLimits, fuzzLimits } from './limits.js';
import { type LinuxAsiDraws, linuxAsiDrawsOf } from './linux-asi-draws.js';

/**
 * Drawing a case and shrinking it, both through fast-check: a campaign's case `i` is the first value
 * fast-check generates from the case's seed (shard.ts derives it), so a shrink task regenerates the
 * very same value — with its shrink tree — from that seed alone and lets fast-check shrink it.
 *
 * Unbiased draws: fast-check's first run of a check is heavily biased towards small values, and every
 * case is a first run here; the arbitraries put their own edge cases (rates off, no jitter) in.
 */
const checkParameters = (caseSeed: number) => ({ seed: caseSeed, numRuns: 1, unbiased: true }) as const;

/** `draws`: today's ASI's choices for a linux-asi policy (`linuxAsiDrawsOf(policy)`), or none. */
export function generateCase(
  caseSeed: number,
  limits: FuzzLimits = fuzzLimits,
  draws: LinuxAsiDraws | null = null,
): FuzzCase {
  let drawn: FuzzCase | undefined;
  fc.check(
    fc.property(fuzzCaseArbitrary(limits, draws), (fuzzCase) => {
      drawn = fuzzCase;
      return true;
    }),
    checkParameters(caseSeed),
  );
  assert(drawn !== undefined, 'fast-check drew one case');
  return drawn;
}

export interface ShrinkOptions {
  limits?: FuzzLimits;
  /** Called before every sim run (a pool worker counts them for its watchdog). */
  onRun?: () => void;
  /** Sim runs to spend at most (the first, which reproduces the failure, included). */
  runsMax?: number;
  machines?: MachineCache;
}

export interface ShrinkResult {
  /** The smallest case found that still breaks `target`. */
  fuzzCase: FuzzCase;
  verdict: CaseVerdict;
  /** Sim runs spent. */
  runs: number;
  /** Shrink steps taken (each a smaller case that still failed). */
  steps: number;
  /** Whether the budget ran out before fast-check had nothing smaller left to try. */
  budgetSpent: boolean;
}

/**
 * Shrinks the case drawn at `caseSeed` to a minimal one that still breaks `target` (the invariant the
 * original broke first, or a model error). Greedy, as fast-check shrinks: the first smaller candidate
 * that still fails becomes the new case. Deterministic: the budget counts runs, not time.
 */
export function shrinkCase(
  caseSeed: number,
  policy: Policy,
  target: FailureKind,
  options: ShrinkOptions = {},
): ShrinkResult | null {
  const runsMax = options.runsMax ?? fuzzLimits.shrinkRunsMax;
  assert(runsMax >= 1, 'a shrink runs the case at least once');
  let runs = 0;
  let steps = -1;
  let smallest: { fuzzCase: FuzzCase; verdict: CaseVerdict } | null = null;
  // Once the budget is spent every candidate "passes": fast-check then finds nothing smaller and stops.
  const draws = linuxAsiDrawsOf(policy);
  const property = fc.property(fuzzCaseArbitrary(options.limits ?? fuzzLimits, draws), (fuzzCase) => {
    if (runs >= runsMax) return true;
    runs++;
    options.onRun?.();
    const { verdict } = runFuzzCase(fuzzCase, policy, { machines: options.machines });
    if (!sameFailure(verdict, target)) return true;
    // fast-check moves to the first failing candidate: the latest failure is the smallest so far.
    smallest = { fuzzCase, verdict };
    steps++;
    return false;
  });
  fc.check(property, checkParameters(caseSeed));
  const found = smallest as { fuzzCase: FuzzCase; verdict: CaseVerdict } | null;
  // The sim is deterministic, so a case that failed once fails again, unless the policy is not: a user
  // hook that keeps state across cases (throws only once, say). null then: nothing to shrink.
  if (found === null) return null;
  return { ...found, runs, steps, budgetSpent: runs >= runsMax };
}
