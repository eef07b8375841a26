import type { RunResult } from '../backend/result.js';
import { runSim } from '../backend/sim/run-sim.js';
import type { RunConfig } from '../config/run-config.js';
import { EventLog, type LoggedEvent } from '../invariants/event-log.js';
import { PolicyHookError, trackHooks } from '../policy/policy-module.js';
import { ActivityWord, activityLoading, activityProgresses, activityStarts } from './activity.js';
import { type CaseVerdict, type FailureKind, type FuzzCase, MachineCache, runFuzzCase } from './fuzz-case.js';
import type { FuzzLimits } from './limits.js';
import { linuxAsiDrawsOf } from './linux-asi-draws.js';
import { type PolicySpec, resolvePolicy } from './policy-spec.js';
import { generateCase, type ShrinkResult, shrinkCase } from './shrink.js';

/**
 * The jobs a campaign (or a replay) hands out, as plain data (they cross to pool workers by structured
 * clone), and the one function that does them — in a pool worker (workers/fuzz-case.worker.ts) or in
 * this thread. A task names its case by seed only: the worker draws the case itself. A task may carry
 * an activity buffer (fuzz/activity.ts) that the pool's watchdog reads to stop a case that hangs.
 */
interface TaskBase {
  policy: PolicySpec;
  /** fuzz/activity.ts; absent in this thread (no watchdog). */
  activity?: SharedArrayBuffer;
}

export interface RunTask extends TaskBase {
  kind: 'run';
  /** Several cases per task: a case takes milliseconds, so one message per case would cost too much. */
  caseSeeds: number[];
  limits: FuzzLimits;
}

export interface ShrinkTask extends TaskBase {
  kind: 'shrink';
  caseSeed: number;
  target: FailureKind;
  limits: FuzzLimits;
  runsMax: number;
}

/** Rerun one case as a replay file holds it, keeping every event if asked (for a trace). */
export interface ReplayTask extends TaskBase {
  kind: 'replay';
  fuzzCase: FuzzCase;
  keepEvents: boolean;
}

/**
 * One `bench --policy-module` run of a user's policy on the sim: the module loads in the pool worker
 * (never on the CLI's thread), and the run is watched like a case, by its progress (every 65,536
 * steps) rather than a time limit on the whole run, which may be long.
 */
export interface SimRunTask extends TaskBase {
  kind: 'sim-run';
  /** The run config (plain data: the workers backend sends it to its workers the same way). */
  config: RunConfig;
  keepEvents: boolean;
}

/**
 * Draw one case from its seed and return it: the case of a run that hung, for its replay file. The
 * worker that ran it was lost with the case it had drawn, and the campaign's thread draws no case
 * itself (it hands out seeds and collects findings). Loads the policy, whose settings decide what a
 * linux-asi case draws (fuzz/linux-asi-draws.ts): a module's import already passed the probe's time
 * limit and ran in the pool; what hung was a case.
 */
export interface CaseTask extends TaskBase {
  kind: 'case';
  caseSeed: number;
  limits: FuzzLimits;
}

export type FuzzTask = RunTask | ShrinkTask | ReplayTask | SimRunTask | CaseTask;

export interface CaseRun {
  caseSeed: number;
  verdict: CaseVerdict;
  /** The case, when it failed (the campaign writes it before shrinking it). */
  fuzzCase: FuzzCase | null;
}

/** A shrink found a smaller case, or stopped: its case did not fail again, or a run hung. */
export type ShrinkOutcome = ShrinkResult | { stopped: 'not-reproduced' | 'hang'; detail: string };

export interface ReplayRun {
  verdict: CaseVerdict;
  /** null when the run threw. */
  result: RunResult | null;
  events: LoggedEvent[];
}

/** Machines of this thread, reused across the cases and shrink runs it does. */
const machines = new MachineCache();

function activityOf(task: TaskBase): Int32Array | null {
  const activity = task.activity ? new Int32Array(task.activity) : null;
  trackHooks(activity, ActivityWord.hook);
  activityLoading(activity);
  return activity;
}

export async function runTask(task: RunTask): Promise<CaseRun[]> {
  const activity = activityOf(task);
  try {
    const policy = await resolvePolicy(task.policy);
    const draws = linuxAsiDrawsOf(policy);
    return task.caseSeeds.map((caseSeed, ordinal) => {
      activityStarts(activity, ordinal);
      const fuzzCase = generateCase(caseSeed, task.limits, draws);
      const { verdict } = runFuzzCase(fuzzCase, policy, { machines });
      return { caseSeed, verdict, fuzzCase: verdict.failure === null ? null : fuzzCase };
    });
  } finally {
    trackHooks(null);
  }
}

export async function shrinkTask(task: ShrinkTask): Promise<ShrinkOutcome> {
  const activity = activityOf(task);
  try {
    const policy = await resolvePolicy(task.policy);
    const shrunk = shrinkCase(task.caseSeed, policy, task.target, {
      limits: task.limits,
      runsMax: task.runsMax,
      machines,
      onRun: () => activityStarts(activity),
    });
    return (
      shrunk ?? {
        stopped: 'not-reproduced',
        detail: `the case did not break ${task.target} again under ${policy.name} (a policy whose hooks keep state across runs?)`,
      }
    );
  } finally {
    trackHooks(null);
  }
}

export async function replayTask(task: ReplayTask): Promise<ReplayRun> {
  const activity = activityOf(task);
  try {
    const policy = await resolvePolicy(task.policy);
    activityStarts(activity);
    const log = new EventLog(64, task.keepEvents);
    const { verdict, result } = runFuzzCase(task.fuzzCase, policy, { log });
    return { verdict, result, events: log.events() };
  } finally {
    trackHooks(null);
  }
}

export async function caseTask(task: CaseTask): Promise<FuzzCase> {
  const activity = activityOf(task);
  try {
    const policy = await resolvePolicy(task.policy);
    activityStarts(activity);
    return generateCase(task.caseSeed, task.limits, linuxAsiDrawsOf(policy));
  } finally {
    trackHooks(null);
  }
}

/** A sim run of a user's policy: its result, or the policy's error (a hook threw or returned a bad value). */
export type SimRunOutcome =
  | { result: RunResult; events: LoggedEvent[] }
  | { error: string; hook: string | null; errorStack: string | null };

export async function simRunTask(task: SimRunTask): Promise<SimRunOutcome> {
  const activity = activityOf(task);
  try {
    const policy = await resolvePolicy(task.policy);
    activityStarts(activity);
    const log = task.keepEvents ? new EventLog(64, true) : undefined;
    try {
      const result = runSim(task.config, policy, {
        log,
        machine: machines.get(task.config),
        onProgress: () => activityProgresses(activity),
      });
      return { result, events: log?.events() ?? [] };
    } catch (error) {
      machines.forget(task.config);
      // The policy's own bug is its user's to fix: said as data. Anything else is the model's (a bug).
      if (!(error instanceof PolicyHookError)) throw error;
      const cause = error.cause;
      return {
        error: `hook ${error.hook} ${error.problem}`,
        hook: error.hook,
        errorStack: cause instanceof Error ? (cause.stack ?? null) : null,
      };
    }
  } finally {
    trackHooks(null);
  }
}

/** The pool worker's entry: one task in, its result out. */
export async function doFuzzTask(
  task: FuzzTask,
): Promise<CaseRun[] | ShrinkOutcome | ReplayRun | SimRunOutcome | FuzzCase> {
  if (task.kind === 'run') return runTask(task);
  if (task.kind === 'sim-run') return simRunTask(task);
  if (task.kind === 'case') return caseTask(task);
  return task.kind === 'shrink' ? shrinkTask(task) : replayTask(task);
}
