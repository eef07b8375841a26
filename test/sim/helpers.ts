import type { RunResult } from '../../src/backend/result.js';
import { runSim } from '../../src/backend/sim/run-sim.js';
import { parseRunConfig, type RunConfig, type RunConfigInput } from '../../src/config/run-config.js';
import { createMachine, type Machine } from '../../src/machine.js';
import type { Policy } from '../../src/policy/policy.js';

/** A run config for tests: small machine, short run; overrides merge per section. */
export function testConfig(overrides: RunConfigInput = {}): RunConfig {
  return parseRunConfig({
    machine: {
      cores: 1,
      smt: 2,
      memoryMiB: 40,
      vms: [{ vcpus: 2, guestMemoryMiB: 1 }],
      ...(overrides.machine as object),
    },
    workload: { mix: 'sysbench-cpu', ...(overrides.workload as object) },
    costs: overrides.costs ?? {},
    run: { exits: 300, seed: 1, ...(overrides.run as object) },
  });
}

const machines = new Map<string, Machine>();

/** Runs on a machine reused across tests with the same machine config (page tables built once). */
export function simulate(config: RunConfig, policy: Policy, keepEvents = false): RunResult {
  const key = JSON.stringify(config.machine);
  let machine = machines.get(key);
  if (!machine) {
    machine = createMachine(config.machine, { concurrent: false });
    machines.set(key, machine);
  }
  return runSim(config, policy, { machine, keepEvents });
}

export function brokenIds(result: RunResult): string[] {
  return Object.entries(result.violations)
    .filter(([, count]) => count > 0)
    .map(([id]) => id);
}
