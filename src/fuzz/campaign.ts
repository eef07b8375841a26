import { join, relative } from 'node:path';
import { assert } from '../assert.js';
import { safeFileNamePart } from '../report/file-names.js';
import type { FuzzExecutor } from './executor.js';
import { caseSize, type FailureKind, type FuzzCase } from './fuzz-case.js';
import { type FuzzLimits, fuzzLimits } from './limits.js';
import type { PolicySpec } from './policy-spec.js';
import { replayDocumentOf } from './replay.js';
import { writeReplayFile } from './replay-format.js';
import {
  caseSeedOf,
  formatShard,
  type Shard,
  shardCaseCount,
  shardCaseIndices,
  wholeCampaign,
} from './shard.js';
import type { ShrinkResult } from './shrink.js';
import { type FailureRecord, type FuzzSummary, summaryOf, writeSummary } from './summary.js';
import type { CaseRun } from './tasks.js';

/**
 * A fuzz campaign (issue 5): hands out the case seeds of one campaign seed (of one shard) to an
 * executor (a piscina pool, or this thread), whose jobs draw each case from its seed and run it; this
 * thread only collects what they found, and for every failing case
 *   1. writes its replay file at once, unshrunk (a campaign killed now keeps the case),
 *   2. shrinks it (a task like any other, so shrinks run in parallel with cases; a time-boxed
 *      campaign stops drawing cases when its time is up and then finishes the shrinks of what it found,
 *      each within its shrink budget; an interrupted one drops the shrinks it has not started),
 *   3. overwrites the replay file with the shrunk case.
 * Every file is written atomically (write, then rename): a campaign killed at any instant leaves
 * whole files only. The summary is rewritten at the first failure, then at most once a second (or
 * every 64 failures without a clock), and at the end.
 *
 * Wall time is the caller's (`clock`): src/ keeps no clock of its own (STYLE.md habit 5).
 */
export interface CampaignOptions {
  policy: PolicySpec;
  seed: number;
  /** The whole campaign's case count (before sharding); or `timeLimitMs`. */
  cases?: number;
  timeLimitMs?: number;
  /** Milliseconds, monotonic (`performance.now`): needed for `timeLimitMs` and rates. */
  clock?: () => number;
  shard?: Shard;
  /** Replay files go here. */
  outDir: string;
  /** Default: outDir/summary.json, or outDir/summary-shard-I-of-N.json for a shard. */
  summaryPath?: string;
  executor: FuzzExecutor;
  limits?: FuzzLimits;
  shrinkRunsMax?: number;
  /** Cases per run task (default 4: a case takes a few ms, a message round trip ~0.1 ms). */
  casesPerTask?: number;
  /**
   * Keep at most this many failures: no new case is drawn once they are found, and failures of cases
   * already in flight past the bound are counted as run but not kept (no replay file, not shrunk).
   */
  maxFailures?: number;
  /** Stop drawing new cases (SIGINT); what is in flight finishes, the summary is written. */
  signal?: AbortSignal;
  onProgress?: (progress: CampaignProgress) => void;
  /** 'repeat': a later case failed as this one did (counted in `repeats`, not filed). */
  onFailure?: (failure: FailureRecord, stage: 'found' | 'shrunk' | 'shrink-stopped' | 'repeat') => void;
}

export interface CampaignProgress {
  casesRun: number;
  /** Failing cases so far. */
  violations: number;
  elapsedMs: number;
}

export interface CampaignResult {
  summary: FuzzSummary;
  summaryPath: string;
}

export function defaultSummaryPath(outDir: string, shard: Shard): string {
  return join(
    outDir,
    shard.count === 1 ? 'summary.json' : `summary-shard-${shard.index}-of-${shard.count}.json`,
  );
}

/** A replay file's name; the policy's name is data (a user's module names it), made safe first. */
export function replayFileName(policy: string, seed: number, caseIndex: number): string {
  return `${safeFileNamePart(policy)}-seed${seed}-case${caseIndex}.replay.json`;
}

function failureDetail(failure: FailureKind, run: { verdict: CaseRun['verdict'] }): string {
  if (failure === 'error') return `the run threw: ${run.verdict.error ?? 'unknown error'}`;
  if (failure === 'hang') return run.verdict.error ?? 'hang';
  return run.verdict.violation?.detail ?? failure;
}

/**
 * Errors and hangs are filed once per hook and message: a hook that always throws (or loops) breaks
 * every case the same way, and a replay file per case says nothing more. Invariant failures are all
 * filed (each is its own interleaving). null: file it.
 */
function repeatKey(verdict: CaseRun['verdict']): string | null {
  if (verdict.failure !== 'error' && verdict.failure !== 'hang') return null;
  const message = verdict.failure === 'hang' ? '' : (verdict.error ?? '').split('\n')[0];
  return `${verdict.failure}:${verdict.hook ?? ''}:${message}`;
}

/** The summary follows every failure at once up to this many; past it, within the rewrite interval. */
const summaryEveryFailureMax = 256;

export async function runCampaign(options: CampaignOptions): Promise<CampaignResult> {
  const shard = options.shard ?? wholeCampaign;
  const limits = options.limits ?? fuzzLimits;
  const clock = options.clock ?? (() => 0);
  const casesPerTask = options.casesPerTask ?? 4;
  const shrinkRunsMax = options.shrinkRunsMax ?? limits.shrinkRunsMax;
  assert((options.cases === undefined) !== (options.timeLimitMs === undefined), 'cases or a time limit');
  assert(options.timeLimitMs === undefined || options.clock !== undefined, 'a time limit needs a clock');
  assert(casesPerTask >= 1 && shrinkRunsMax >= 1, 'positive batch and shrink budget');
  const summaryPath = options.summaryPath ?? defaultSummaryPath(options.outDir, shard);
  const summaryDirectory = join(summaryPath, '..');
  const { executor, policy, seed } = options;
  // The shrink budget is part of what a campaign finds (shrunk cases differ with it): merged shards
  // must agree on it like on every other limit.
  const identity = {
    policy,
    seed,
    cases: options.cases ?? null,
    shardCount: shard.count,
    limits: { ...limits, shrinkRunsMax },
  };

  const startMs = clock();
  const failures = new Map<number, FailureRecord>();
  /** The case index first filed for each repeat key (`repeatKey`). */
  const firstOfRepeat = new Map<string, number>();
  const indices = shardCaseIndices(shard, options.cases);
  let issued = 0;
  let exhausted = false;
  /** Cases done, as ordinals in the shard; `prefix` counts those done without a gap from the first. */
  const doneBeyondPrefix = new Set<number>();
  let prefix = 0;
  let casesRun = 0;

  const shardRun = () => ({
    shard: formatShard(shard),
    casesRun: prefix,
    complete: options.cases !== undefined && prefix === shardCaseCount(shard, options.cases),
  });
  let summarySavedMs = Number.NEGATIVE_INFINITY;
  let failuresSinceSummary = 0;
  const saveSummary = (): FuzzSummary => {
    const summary = summaryOf(identity, [shardRun()], [...failures.values()], {
      wallSeconds: (clock() - startMs) / 1000,
      jobs: executor.jobs,
    });
    writeSummary(summaryPath, summary, options.summaryPath ? '--json' : '--out');
    summarySavedMs = clock();
    failuresSinceSummary = 0;
    return summary;
  };
  // The summary holds every failure: rewriting it after each one would cost O(failures^2) on a badly
  // broken policy. The replay files are written at once; the summary follows within a bound.
  const saveSummarySoon = () => {
    failuresSinceSummary++;
    if (
      failures.size <= summaryEveryFailureMax ||
      clock() - summarySavedMs >= limits.summaryRewriteIntervalMs ||
      failuresSinceSummary >= limits.summaryRewriteFailuresMax
    ) {
      saveSummary();
    }
  };

  const record = (caseIndex: number, caseSeed: number, original: FuzzCase, found: CaseRun | ShrinkResult) => {
    const failure = found.verdict.failure;
    assert(failure !== null, 'a failure record is of a failing case');
    const shrink = 'runs' in found ? found : null;
    const fuzzCase = 'runs' in found ? found.fuzzCase : original;
    const replayPath = join(options.outDir, replayFileName(policy.name, seed, caseIndex));
    writeReplayFile(
      replayPath,
      replayDocumentOf(
        policy,
        { campaignSeed: seed, caseIndex, caseSeed },
        original,
        { fuzzCase, verdict: found.verdict },
        shrink,
      ),
    );
    const entry: FailureRecord = {
      caseIndex,
      caseSeed,
      failure,
      hook: found.verdict.hook,
      ...(found.verdict.errorStack === null ? {} : { hookStack: found.verdict.errorStack }),
      repeats: failures.get(caseIndex)?.repeats ?? 0,
      detail: failureDetail(failure, found),
      replay: relative(summaryDirectory, replayPath),
      shrunk: shrink !== null,
      traceHash: found.verdict.traceHash,
      size: caseSize(fuzzCase),
      originalSize: caseSize(original),
    };
    failures.set(caseIndex, entry);
    saveSummarySoon();
    options.onFailure?.(entry, shrink ? 'shrunk' : 'found');
  };

  // A task that fails (a worker died, a write failed) stops the campaign: nothing new is issued, what
  // is in flight finishes (its files are written), then the first error is thrown.
  let taskError: { error: unknown } | null = null;
  const inFlight = new Set<Promise<void>>();
  const track = (work: Promise<void>) => {
    const tracked: Promise<void> = work
      .catch((error: unknown) => {
        // A task aborted by an interrupt is dropped (its cases are not counted as run), not an error.
        if (options.signal?.aborted) return;
        taskError ??= { error };
      })
      .finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };
  let runsInFlight = 0;

  // Shrinks wait in a queue of their own, at most one per job in flight, so cases keep flowing. Every
  // failure is shrunk: a time-boxed campaign's time bounds the search, not the shrinks of what it found
  // (each shrink is bounded by its budget). An interrupted campaign (or one whose task failed) drops
  // the shrinks not yet started: their cases keep the unshrunk replay files already written, and
  // `shrunk: false` in the summary.
  const shrinkQueue: (() => Promise<void>)[] = [];
  let shrinksInFlight = 0;
  const pumpShrinks = () => {
    while (shrinksInFlight < executor.jobs && shrinkQueue.length > 0 && !stopped()) {
      const start = shrinkQueue.shift() as () => Promise<void>;
      shrinksInFlight++;
      track(start().finally(() => shrinksInFlight--));
    }
  };

  const finishRun = (ordinals: number[], caseIndices: number[], caseSeeds: number[], runs: CaseRun[]) => {
    runsInFlight--;
    // A task may come back with some of its cases only (a hang at the end of a time-boxed campaign
    // leaves the rest unrun): a run finds its place by its seed.
    runs.forEach((run) => {
      const i = caseSeeds.indexOf(run.caseSeed);
      assert(i >= 0, 'a run of a case of the task');
      const ordinal = ordinals[i];
      doneBeyondPrefix.add(ordinal);
      while (doneBeyondPrefix.delete(prefix)) prefix++;
      casesRun++;
      if (run.verdict.failure === null) return;
      const key = repeatKey(run.verdict);
      const first = key === null ? undefined : failures.get(firstOfRepeat.get(key) ?? -1);
      if (first !== undefined) {
        first.repeats = (first.repeats ?? 0) + 1;
        options.onFailure?.(first, 'repeat');
        return;
      }
      if (options.maxFailures !== undefined && failures.size >= options.maxFailures) return;
      assert(run.fuzzCase !== null, 'a failing run returns its case');
      const original = run.fuzzCase;
      const caseIndex = caseIndices[i];
      if (key !== null) firstOfRepeat.set(key, caseIndex);
      record(caseIndex, run.caseSeed, original, run);
      const target = run.verdict.failure;
      // A hang is not shrunk: every smaller candidate that still hangs costs a whole time limit.
      if (target === 'hang') return;
      shrinkQueue.push(() =>
        executor
          .shrink(
            { kind: 'shrink', policy, caseSeed: run.caseSeed, target, limits, runsMax: shrinkRunsMax },
            { signal: options.signal },
          )
          .then((shrunk) => {
            if ('stopped' in shrunk) {
              const entry = failures.get(caseIndex);
              if (entry === undefined) return;
              entry.shrinkNote = `shrink stopped (${shrunk.stopped}): ${shrunk.detail}`;
              saveSummary();
              options.onFailure?.(entry, 'shrink-stopped');
              return;
            }
            record(caseIndex, run.caseSeed, original, shrunk);
          }),
      );
    });
    options.onProgress?.({ casesRun, violations: failures.size, elapsedMs: clock() - startMs });
  };

  /** Interrupted, or a task failed: nothing new starts, not even a shrink. */
  function stopped(): boolean {
    return taskError !== null || options.signal?.aborted === true;
  }
  function timeUp(): boolean {
    return stopped() || (options.timeLimitMs !== undefined && clock() - startMs >= options.timeLimitMs);
  }
  const mayIssue = () =>
    !exhausted && !timeUp() && (options.maxFailures === undefined || failures.size < options.maxFailures);

  for (;;) {
    while (runsInFlight < executor.slots && mayIssue()) {
      const ordinals: number[] = [];
      const caseIndices: number[] = [];
      while (caseIndices.length < casesPerTask) {
        const next = indices.next();
        if (next.done) {
          exhausted = true;
          break;
        }
        ordinals.push(issued++);
        caseIndices.push(next.value);
      }
      if (caseIndices.length === 0) break;
      runsInFlight++;
      const caseSeeds = caseIndices.map((index) => caseSeedOf(seed, index));
      track(
        executor
          .run(
            { kind: 'run', policy, caseSeeds, limits },
            { signal: options.signal, mayContinue: () => !timeUp() },
          )
          .then((runs) => finishRun(ordinals, caseIndices, caseSeeds, runs)),
      );
    }
    pumpShrinks();
    if (inFlight.size === 0) break;
    await Promise.race(inFlight);
  }
  const summary = saveSummary();
  if (taskError !== null) throw (taskError as { error: unknown }).error;
  return { summary, summaryPath };
}
