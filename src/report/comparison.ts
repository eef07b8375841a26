import type { RunResult } from '../backend/result.js';
import { runSim } from '../backend/sim/run-sim.js';
import type { RunConfig } from '../config/run-config.js';
import { builtinMix, type ExitMix } from '../cpu/mixes.js';
import { EventLog } from '../invariants/event-log.js';
import { type InvariantId, invariantIds } from '../invariants/violation.js';
import { createMachine } from '../machine.js';
import { none } from '../policy/none.js';
import type { Policy } from '../policy/policy.js';
import { formatTable } from './machine-table.js';

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

/**
 * `compareOnSim` that gives the event loop a turn after every run, so a progress bar (a timer) can
 * draw between runs: the CLI's `bench` on a terminal. `onResult` also says how many runs there are.
 */
export async function compareOnSimAsync(
  config: RunConfig,
  policies: Policy[],
  mixes: ExitMix[],
  onResult?: (result: RunResult, done: number, total: number) => void,
  keepEvents = false,
): Promise<Comparison> {
  const total = policies.length * mixes.length;
  const steps = comparisonSteps(config, policies, mixes, keepEvents);
  for (let done = 1, step = steps.next(); ; done++, step = steps.next()) {
    if (step.done) return step.value;
    onResult?.(step.value, done, total);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The comparison's runs one at a time: yields each result, returns the comparison. */
function* comparisonSteps(
  config: RunConfig,
  policies: Policy[],
  mixes: ExitMix[],
  keepEvents: boolean,
): Generator<RunResult, Comparison, void> {
  const machine = createMachine(config.machine, { concurrent: false });
  const results: RunResult[] = [];
  const logs: (EventLog | null)[] = [];
  const baselines: RunResult[] = [];
  for (const mix of mixes) {
    const mixConfig: RunConfig = { ...config, workload: { ...config.workload, mix } };
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

export function mixesByName(names: string[], field = '--mix'): ExitMix[] {
  return names.map((name) => builtinMix(name, field));
}

const percent = (value: number) => `${(value * 100).toFixed(1)}%`;

/** The invariants a result broke, e.g. `INV-1, INV-2`, or '' when none. */
export function brokenInvariants(result: RunResult): InvariantId[] {
  return invariantIds.filter((id) => result.violations[id] > 0);
}

/** The table a kernel engineer reads at a glance, then one verdict line per policy and mix. */
export function formatComparison(results: RunResult[]): string {
  const rows = results.map((result) => {
    const broken = brokenInvariants(result);
    return [
      result.policy,
      result.mix,
      percent(result.guestShare),
      result.overheadVsNone === null ? '-' : percent(result.overheadVsNone),
      percent(result.guestWork),
      result.achievedExitsPerSecond.toFixed(0),
      percent(result.isolatedExitShare),
      result.switchesToFullPer1kExits.toFixed(0),
      result.kicksPer1kExits.toFixed(0),
      result.flushes,
      broken.length === 0 ? '0' : broken.map((id) => `${id}:${result.violations[id]}`).join(' '),
    ];
  });
  const table = formatTable(
    [
      'policy',
      'mix',
      'guest share',
      'overhead vs none',
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
  const verdicts = results.map((result) => {
    const broken = brokenInvariants(result);
    const label = `${result.policy} on ${result.mix}`.padEnd(32);
    if (broken.length === 0) return `${label} safe: no invariant broken in ${result.exits} exits`;
    const window =
      result.exposure.cycles > 0
        ? `; guest ran beside a sibling holding secrets for ${Math.round(result.exposure.cycles)} cycles (${(result.exposure.shareOfGuest * 100).toFixed(3)}% of guest time, in ${result.exposure.guestSteps} guest intervals)`
        : '';
    return `${label} UNSAFE: breaks ${broken.join(', ')}${window}`;
  });
  return `${table}\n\n${verdicts.join('\n')}`;
}

/** The stable JSON for scripts (issue 3): `{ results: [ { policy, mix, guestShare, ... } ] }`. */
export function comparisonJson(comparison: Comparison, meta: Record<string, unknown>): unknown {
  return {
    ...meta,
    results: comparison.results.map((result) => ({
      policy: result.policy,
      mix: result.mix,
      backend: result.backend,
      seed: result.seed,
      guestShare: result.guestShare,
      guestWork: result.guestWork,
      overheadVsNone: result.overheadVsNone,
      exits: result.exits,
      achievedExitsPerSecond: result.achievedExitsPerSecond,
      exitsPerSecondTarget: result.exitsPerSecondTarget,
      kickExits: result.kickExits,
      isolatedExitShare: result.isolatedExitShare,
      switchesToFullPer1kExits: result.switchesToFullPer1kExits,
      kicksPer1kExits: result.kicksPer1kExits,
      heldCycles: result.heldCycles,
      flushes: result.flushes,
      bufferClears: result.bufferClears,
      faultsByHandler: result.faultsByHandler,
      violations: result.violations,
      exposure: result.exposure,
      elapsedCycles: result.elapsedCycles,
      traceHash: result.traceHash,
      firstViolations: result.violationRecords.slice(0, 3),
    })),
  };
}
