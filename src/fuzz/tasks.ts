import type { InvariantId } from '../invariants/violation.js';
import { type CaseVerdict, type FuzzCase, MachineCache, runFuzzCase } from './fuzz-case.js';
import type { FuzzLimits } from './limits.js';
import { type PolicySpec, resolvePolicy } from './policy-spec.js';
import { generateCase, type ShrinkResult, shrinkCase } from './shrink.js';

/**
 * The jobs a campaign hands out, as plain data (they cross to pool workers by structured clone), and
 * the one function that does them — in a pool worker (workers/fuzz-case.worker.ts) or in this thread.
 * A task names its case by seed only: the worker draws the case itself.
 */
export interface RunTask {
  kind: 'run';
  policy: PolicySpec;
  /** Several cases per task: a case takes milliseconds, so one message per case would cost too much. */
  caseSeeds: number[];
  limits: FuzzLimits;
}

export interface ShrinkTask {
  kind: 'shrink';
  policy: PolicySpec;
  caseSeed: number;
  target: InvariantId | 'error';
  limits: FuzzLimits;
  runsMax: number;
}

export type FuzzTask = RunTask | ShrinkTask;

export interface CaseRun {
  caseSeed: number;
  verdict: CaseVerdict;
  /** The case, when it failed (the campaign writes it before shrinking it). */
  fuzzCase: FuzzCase | null;
}

export type ShrinkOutcome = ShrinkResult;

/** Machines of this thread, reused across the cases and shrink runs it does. */
const machines = new MachineCache();

export async function runTask(task: RunTask): Promise<CaseRun[]> {
  const policy = await resolvePolicy(task.policy);
  return task.caseSeeds.map((caseSeed) => {
    const fuzzCase = generateCase(caseSeed, task.limits);
    const { verdict } = runFuzzCase(fuzzCase, policy, { machines });
    return { caseSeed, verdict, fuzzCase: verdict.failure === null ? null : fuzzCase };
  });
}

export async function shrinkTask(task: ShrinkTask): Promise<ShrinkOutcome> {
  const policy = await resolvePolicy(task.policy);
  return shrinkCase(task.caseSeed, policy, task.target, {
    limits: task.limits,
    runsMax: task.runsMax,
    machines,
  });
}

/** The pool worker's entry: one task in, its result out. */
export async function doFuzzTask(task: FuzzTask): Promise<CaseRun[] | ShrinkOutcome> {
  return task.kind === 'run' ? runTask(task) : shrinkTask(task);
}
