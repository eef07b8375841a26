import { expect } from 'vitest';
import { acceleratedAccess } from '../../src/accel/accelerated-access.js';
import type { Hyperthread } from '../../src/cpu/hyperthread.js';
import type { LinuxAsiCpu } from '../../src/cpu/linux-asi-cpu.js';
import { modeOf, siblingFieldsMask } from '../../src/cpu/modes.js';
import { EventLog } from '../../src/invariants/event-log.js';
import { Monitor } from '../../src/invariants/monitor.js';
import { type InvariantId, invariantIds, type Violation } from '../../src/invariants/violation.js';
import { Mailboxes, Vector } from '../../src/kick/ipi.js';
import { createMachine, type Machine } from '../../src/machine.js';
import { ThreadField, threadFieldIndex } from '../../src/memory/layout.js';

/**
 * The invariant monitor driven directly, one instant at a time, with no scheduler in between: the
 * detector tests (test/invariants/detectors.test.ts) and the monitor's own mutation tests
 * (test/mutation/monitor.test.ts) build their scenarios from these.
 */

// A monitor driven directly --------------------------------------------------------------------------

export interface DrivenThreadSpec {
  core: number;
  sibling: number;
  vmId: number;
  /** Every sibling's mode, by sibling index (this thread's own included). */
  modes: number[];
  clockCycles: number;
  steps: number;
  /** Today's Linux ASI on this thread (a linux-asi policy), or none. */
  linuxAsi?: LinuxAsiCpu;
}

/** What a Hyperthread shows the monitor, with the core word fixed: the checker sees one instant. */
export function drivenThread(machine: Machine, spec: DrivenThreadSpec): Hyperthread {
  const { smt } = machine.config;
  expect(spec.modes).toHaveLength(smt);
  const word = spec.modes.reduce((built, mode, sibling) => built | (mode << (4 * sibling)), 0);
  for (let sibling = 0; sibling < smt; sibling++) expect(modeOf(word, sibling)).toBe(spec.modes[sibling]);
  return {
    thread: spec.core * smt + spec.sibling,
    core: spec.core,
    sibling: spec.sibling,
    vmId: spec.vmId,
    mode: spec.modes[spec.sibling],
    clockCycles: spec.clockCycles,
    steps: spec.steps,
    phaseName: 'driven',
    coreWord: () => word,
    siblingFields: siblingFieldsMask(spec.sibling, smt),
    foreignLines: () =>
      machine.l1d[spec.core].foreignLines(spec.vmId) + machine.fillBuffers[spec.core].foreignLines(spec.vmId),
    workload: { guestQuantumCycles: 1000 },
    linuxAsi: spec.linuxAsi ?? null,
  } as unknown as Hyperthread;
}

export function drivenMonitor(
  machineConfig: Record<string, unknown>,
  recordsPerInvariant?: number,
): { machine: Machine; monitor: Monitor } {
  const machine = createMachine(
    { memoryMiB: 48, vms: [{ vcpus: 2, guestMemoryMiB: 1 }], ...machineConfig },
    { concurrent: false, access: acceleratedAccess },
  );
  const monitor = new Monitor(machine, new EventLog(), undefined, recordsPerInvariant);
  return { machine, monitor };
}

/** The VM a hyperthread runs, as the state machine stores it when it starts (the monitor reads it). */
export function setVmOfThread(machine: Machine, thread: number, vmId: number): void {
  machine.i32[threadFieldIndex(machine.layout, thread, ThreadField.vmId)] = vmId;
}

export function sendKick(machine: Machine, target: number): void {
  new Mailboxes(machine.i32, machine.f64, machine.layout, false).send(target, Vector.kick, 0, {
    notify: () => {},
  });
}

/** The counts other than `ids`, which must all be 0. */
export function othersThan(counts: Record<InvariantId, number>, ids: InvariantId[]): Record<string, number> {
  return Object.fromEntries(
    invariantIds.filter((id) => !ids.includes(id) && counts[id] !== 0).map((id) => [id, counts[id]]),
  );
}

export function recordsOf(records: readonly Violation[], id: InvariantId): Violation[] {
  return records.filter((violation) => violation.id === id);
}

/** Records without the events before them (which depend on the log), for exact comparison. */
export function bare(records: readonly Violation[]): Violation[] {
  return records.map(({ recentEvents: _, ...record }) => record);
}
