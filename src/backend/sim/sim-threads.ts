import { ConfidentialVm } from '../../coco/confidential-vm.js';
import type { RunConfig } from '../../config/run-config.js';
import { type Environment, Hyperthread } from '../../cpu/hyperthread.js';
import type { Monitor } from '../../invariants/monitor.js';
import type { Machine } from '../../machine.js';
import type { Policy } from '../../policy/policy.js';

/**
 * The hyperthreads of a sim run, built the same way by the scheduler (run-sim.ts) and by the stepped
 * sim the explorer drives (stepped-sim.ts).
 */

/** The threads that run their vCPU (nosmt: only sibling 0 of each core; the others stay offline), in id order. */
export function runningThreads(machine: Machine, policy: Policy): { running: Set<number>; order: number[] } {
  const running = new Set<number>();
  for (const pins of machine.pinning) {
    for (const thread of pins) if (policy.smt || thread % machine.config.smt === 0) running.add(thread);
  }
  return { running, order: [...running].sort((a, b) => a - b) };
}

/** Each VM's confidential-memory model (null for a VM that is not confidential) and the hyperthreads. */
export function simHyperthreads(
  machine: Machine,
  config: RunConfig,
  policy: Policy,
  monitor: Monitor,
  env: Environment,
  { running, order }: { running: Set<number>; order: number[] },
): { confidential: (ConfidentialVm | null)[]; threads: Hyperthread[] } {
  const confidential = machine.config.vms.map((vm, vmId) =>
    vm.confidential
      ? new ConfidentialVm(
          machine,
          vmId,
          machine.rmp,
          { asid: vmId + 1, ...config.workload.confidential },
          (violation) => monitor.record(violation),
        )
      : null,
  );
  const threads = order.map((thread) => {
    const vmId = machine.pinning.findIndex((pins) => pins.includes(thread));
    return new Hyperthread(
      machine,
      thread,
      policy,
      config.costs,
      config.workload,
      monitor,
      env,
      running,
      confidential[vmId],
    );
  });
  return { confidential, threads };
}
