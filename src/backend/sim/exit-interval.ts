import { assert } from '../../assert.js';
import type { RunConfig } from '../../config/run-config.js';
import type { Workload } from '../../config/workload.js';
import { defaultExitsPerSecond } from '../../cpu/mixes.js';
import type { Machine } from '../../machine.js';
import { none } from '../../policy/none.js';
// A cycle (run-sim.ts resolves the interval with this module): both only call each other in functions.
import { runSim } from './run-sim.js';

/**
 * Exit rates (issue 19, docs/model.md "Exit rates"): a workload says how often a vCPU exits as exits
 * per second per vCPU of modelled time, counting guest, host and idle time alike. The state machine
 * needs the other figure, the mean guest cycles between two exits. The host time an exit costs (the
 * round trip, the handler, the VMM, a halt's idle time until the timer or a peer's wake-up) depends on
 * the mix, the costs and the machine, and idle time interacts with peers' wake-ups: rather than model
 * that in arithmetic beside the model, a short calibration run of the model itself measures it.
 *
 *   period  P = ghz x 10^9 / rate          (cycles of one exit's cycle: guest + host + idle)
 *   guess   G0 = P - (exit round trip)     (a first guess: the bare exit costs that much at least)
 *   measure T(G) = elapsed x vCPUs / exits  (under `none`, `calibrationExits` exits, seed 1)
 *   correct G1 = G0 + (P - T(G0)), G2 = G1 + (P - T(G1))
 *
 * T is close to G plus a host time per exit that does not depend on G, so one correction lands
 * within a few percent and the second absorbs what idle time's dependence on G leaves. The
 * calibration runs `none` (the baseline every overhead is measured against), so every policy of a
 * comparison runs the same guest work between exits, and `none` achieves the target rate; a policy
 * that adds host time per exit achieves less, as it would on a real machine. When the host time alone
 * exceeds the period (a rate too high for this mix), the guest interval bottoms out at
 * `exitIntervalCyclesMin` and the achieved rate, which every result reports, says so.
 */

/** Workload exits per calibration run: ~2% standard error on a mean of exponential gaps. */
export const calibrationExits = 2400;
/** Least guest cycles between exits a calibration may choose (the schema's minimum). */
export const exitIntervalCyclesMin = 100;
/** Calibrations remembered (key: machine, workload and costs); a bounded cache, cleared when full. */
const cacheEntriesMax = 256;
const cache = new Map<string, number>();

/** The exits per second a run of `workload` aims at: the workload's, else its mix's, else the default. */
export function exitsPerSecondOf(workload: Workload): number {
  return workload.exitsPerSecond ?? workload.mix.exitsPerSecond ?? defaultExitsPerSecond;
}

/**
 * `config` with `workload.exitIntervalCycles` resolved: as given, or calibrated from the exit rate.
 * `machine`, when given, is a machine built from `config.machine` that the calibration may run on
 * (it is reset before every run).
 */
export function withExitInterval(config: RunConfig, machine?: Machine): RunConfig {
  if (config.workload.exitIntervalCycles !== undefined) return config;
  const exitIntervalCycles = calibratedExitInterval(config, machine);
  // The rate stays with the resolved workload: results report it beside the rate achieved.
  const exitsPerSecond = exitsPerSecondOf(config.workload);
  return { ...config, workload: { ...config.workload, exitIntervalCycles, exitsPerSecond } };
}

function calibratedExitInterval(config: RunConfig, machine?: Machine): number {
  const { catalogue: _, ...workload } = config.workload;
  const key = JSON.stringify({ machine: config.machine, workload, costs: config.costs });
  const cached = cache.get(key);
  if (cached !== undefined) return cached;
  const periodCycles = (config.machine.ghz * 1e9) / exitsPerSecondOf(config.workload);
  let guess = Math.max(exitIntervalCyclesMin, periodCycles - config.costs.exitRoundTrip);
  for (let round = 0; round < 2; round++) {
    const measured = measuredPeriodCycles(config, guess, machine);
    guess = Math.max(exitIntervalCyclesMin, guess + (periodCycles - measured));
  }
  assert(Number.isFinite(guess), 'a calibrated exit interval is a number of cycles');
  if (cache.size >= cacheEntriesMax) cache.clear();
  cache.set(key, guess);
  return guess;
}

/** Cycles per exit per vCPU of a short `none` run with `guestCycles` between exits. */
function measuredPeriodCycles(config: RunConfig, guestCycles: number, machine?: Machine): number {
  const calibration: RunConfig = {
    ...config,
    workload: { ...config.workload, exitIntervalCycles: guestCycles },
    run: { ...config.run, exits: calibrationExits, seed: 1, maxCycles: 0, stopOnViolation: false },
  };
  const result = runSim(calibration, none, machine === undefined ? {} : { machine });
  const vcpus = result.perThread.length;
  return (result.elapsedCycles * vcpus) / Math.max(1, result.exits);
}
