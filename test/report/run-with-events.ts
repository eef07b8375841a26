import type { RunResult } from '../../src/backend/result.js';
import { runSim } from '../../src/backend/sim/run-sim.js';
import { parseRunConfig, type RunConfigInput } from '../../src/config/run-config.js';
import { EventLog, type LoggedEvent } from '../../src/invariants/event-log.js';
import { policyByName } from '../../src/policy/index.js';
import { busyExitIntervalCycles } from '../sim/helpers.js';

/**
 * Runs the sim backend on a small machine (2 cores x 2 threads, one VM of 4 vCPUs) recording every
 * event into a log of our own (`SimOptions.log`), and returns the events with the result.
 */
export function runWithEvents(
  policyName: string,
  overrides: RunConfigInput = {},
): { result: RunResult; events: LoggedEvent[]; threads: number; smt: number } {
  const config = parseRunConfig({
    machine: {
      cores: 2,
      smt: 2,
      memoryMiB: 64,
      vms: [{ vcpus: 4, guestMemoryMiB: 1 }],
      ...(overrides.machine as object),
    },
    // Busy vCPUs (20,000 guest cycles between exits) unless a rate is given: a trace window of a few
    // hundred thousand cycles then holds many exits, kicks and holds to draw.
    workload: {
      mix: 'sysbench-cpu',
      ...((overrides.workload as { exitsPerSecond?: number } | undefined)?.exitsPerSecond === undefined
        ? { exitIntervalCycles: busyExitIntervalCycles }
        : {}),
      ...(overrides.workload as object),
    },
    costs: overrides.costs ?? {},
    run: { exits: 300, seed: 7, ...(overrides.run as object) },
  });
  const log = new EventLog(64, true);
  const result = runSim(config, policyByName(policyName), { log });
  const events = log.events();
  if (events.length === 0) throw new Error('runSim recorded no events into SimOptions.log');
  return { result, events, threads: config.machine.cores * config.machine.smt, smt: config.machine.smt };
}
