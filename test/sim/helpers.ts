import { acceleratedAccess } from '../../src/accel/accelerated-access.js';
import type { RunResult } from '../../src/backend/result.js';
import { runSim } from '../../src/backend/sim/run-sim.js';
import { parseRunConfig, type RunConfig, type RunConfigInput } from '../../src/config/run-config.js';
import { createMachine, type Machine } from '../../src/machine.js';
import type { Policy } from '../../src/policy/policy.js';

/**
 * A run config for tests: small machine, short run; overrides merge per section. Unless a test gives
 * a rate (`workload.exitsPerSecond`), vCPUs exit every 20,000 guest cycles on average (~150k exits/s):
 * a busy guest, so the races and costs a test looks for show within a few hundred exits, where the
 * published rates (about 1-2k exits/s) would need hundreds of thousands.
 */
export function testConfig(overrides: RunConfigInput = {}): RunConfig {
  const workload = (overrides.workload ?? {}) as Record<string, unknown>;
  const busy = workload.exitsPerSecond === undefined ? { exitIntervalCycles: busyExitIntervalCycles } : {};
  return parseRunConfig({
    machine: {
      cores: 1,
      smt: 2,
      memoryMiB: 40,
      vms: [{ vcpus: 2, guestMemoryMiB: 1 }],
      ...(overrides.machine as object),
    },
    workload: { mix: 'sysbench-cpu', ...busy, ...workload },
    costs: overrides.costs ?? {},
    run: { exits: 300, seed: 1, ...(overrides.run as object) },
  });
}

/** Guest cycles between exits in test runs that give no rate (the model's default before issue 19). */
export const busyExitIntervalCycles = 20_000;

const machines = new Map<string, Machine>();

/** Runs on a machine reused across tests with the same machine config (page tables built once). */
export function simulate(config: RunConfig, policy: Policy, keepEvents = false): RunResult {
  const key = JSON.stringify(config.machine);
  let machine = machines.get(key);
  if (!machine) {
    machine = createMachine(config.machine, { concurrent: false, access: acceleratedAccess });
    machines.set(key, machine);
  }
  return runSim(config, policy, { machine, keepEvents });
}

export function brokenIds(result: RunResult): string[] {
  return Object.entries(result.violations)
    .filter(([, count]) => count > 0)
    .map(([id]) => id);
}
