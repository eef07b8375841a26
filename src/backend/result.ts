import type { ConfidentialVm, ConversionStats } from '../coco/confidential-vm.js';
import type { RunConfig } from '../config/run-config.js';
import { type ExitReasonRow, exitBreakdown } from '../cpu/exit-breakdown.js';
import type { Hyperthread } from '../cpu/hyperthread.js';
import { Mode } from '../cpu/modes.js';
import type { EventLog } from '../invariants/event-log.js';
import type { FaultReport, Monitor } from '../invariants/monitor.js';
import type { Violation, ViolationCounts } from '../invariants/violation.js';
import type { Machine } from '../machine.js';
import { ThreadStat } from '../memory/layout.js';
import type { Policy } from '../policy/policy.js';

/**
 * The result of one run, the same shape from both backends. The field names of the JSON
 * (`policy`, `mix`, `guestShare`, `overheadVsNone`, `exits`, `isolatedExitShare`,
 * `switchesToFullPer1kExits`, `kicksPer1kExits`, `heldCycles`, `flushes`, `faultsByHandler`,
 * `violations`) are stable: scripts read them. Shares are fractions 0..1.
 */
export interface RunResult {
  backend: 'sim' | 'workers';
  policy: string;
  mix: string;
  seed: number;
  /**
   * Useful guest cycles (guest quanta, not cache-miss stalls) over the capacity of every hyperthread
   * that has a vCPU pinned (offline ones count: nosmt loses them).
   */
  guestShare: number;
  /**
   * Guest work done over the same capacity: guest progress weighted by SMT speed (while k of a core's
   * threads are busy each runs at workload.smtSpeedup / k of a lone thread's speed), in lone-thread
   * cycles. What overhead is measured in: a no-SMT run loses about 1 - 1/smtSpeedup against an SMT one.
   */
  guestWork: number;
  /** 1 - guestWork / guestWork(none), filled in by a comparison; null for a lone run. */
  overheadVsNone: number | null;
  /**
   * 1 - guestWork / guestWork(kvm-default), against KVM's shipped mitigations (cond L1D flush, VERW
   * on entry, SMT on) run with the same seed: negative where a policy does more guest work than it.
   * Filled in by a repeated comparison (`compareRepeated`); null for a lone run or without that baseline.
   */
  overheadVsKvmDefault: number | null;
  /** Workload exits (drawn from the mix, or injected interrupts); kick exits are counted apart. */
  exits: number;
  /**
   * Workload exits per second per running vCPU over the run's modelled time (`elapsedCycles` at
   * `machine.ghz`): the rate the run achieved. Under `none` it matches `exitsPerSecondTarget` within a
   * few percent (backend/sim/exit-interval.ts); a policy that adds host time per exit achieves less.
   */
  achievedExitsPerSecond: number;
  /** The rate the workload asked for (workload, mix or default); null when it gave exitIntervalCycles. */
  exitsPerSecondTarget: number | null;
  kickExits: number;
  isolatedExitShare: number;
  switchesToFullPer1kExits: number;
  kicksPer1kExits: number;
  heldCycles: number;
  flushes: number;
  bufferClears: number;
  /**
   * L1D flushes: the same count as `flushes`, under the name issue 22 gives it (every policy's: KVM's
   * entry flush, the 2019 policies' flushIfForeign, today's ASI's taint-decided flush).
   */
  l1dFlushes: number;
  /** IBPBs executed (today's ASI's control-taint flush, each with an RSB fill); 0 for other policies. */
  ibpbs: number;
  /**
   * Today's ASI's asi_exit()s by reason (linux-asi; zeros for other policies): a page fault on an address
   * the restricted space does not map, one inside an interrupt handler, a context switch. Explicit
   * asi_exit calls are not counted here.
   */
  asiExits: { pageFault: number; interrupt: number; contextSwitch: number };
  faultsByHandler: Record<string, number>;
  /**
   * Per exit reason and handler variant, as `perf kvm stat report` shows it (cpu/exit-breakdown.ts):
   * sorted by total time from exit to entry, most first.
   */
  byReason: ExitReasonRow[];
  violations: ViolationCounts;
  violationRecords: Violation[];
  faultReports: FaultReport[];
  /**
   * The window an unsafe policy leaves: `cycles`, the overlap in virtual cycles of each thread's guest
   * intervals with a sibling's secret-holding ones (full, vmm), and its share of all guest cycles;
   * `guestSteps`, how many guest intervals had such an overlap. (The workers backend, with no global
   * order of time, counts guest quanta that began beside a sibling holding secrets instead.)
   */
  exposure: { guestSteps: number; cycles: number; shareOfGuest: number };
  elapsedCycles: number;
  steps: number;
  deadlocked: boolean;
  /** Hash of the whole event trace (sim: identical for the same config and seed). */
  traceHash: string;
  wallSeconds: number;
  perThread: ThreadResult[];
  /** Confidential VMs: conversions, accepts, remaps, and the host's shared-range trackers. */
  confidential: ConfidentialResult[];
}

/** A confidential VM's counters (coco/confidential-vm.ts `ConversionStats`, the one list of them), with its trackers. */
export interface ConfidentialResult extends ConversionStats {
  vmId: number;
  trackers: { kind: string; overflowed: boolean; memoryBytes: number; entryCount: number }[];
}

export interface ThreadResult {
  thread: number;
  vmId: number;
  vcpu: number;
  clockCycles: number;
  guestCycles: number;
  /** Guest quanta only: guest cycles minus the stalls of its cache misses (what guestShare counts). */
  guestUsefulCycles: number;
  /** Guest progress at SMT speed, in lone-thread cycles (what guestWork counts). */
  guestWorkCycles: number;
  isolatedCycles: number;
  fullCycles: number;
  heldCycles: number;
  idleCycles: number;
  vmmCycles: number;
  exits: number;
  kicksSent: number;
  kicksReceived: number;
  switchesToFull: number;
  steps: number;
}

export interface CollectInput {
  backend: 'sim' | 'workers';
  machine: Machine;
  policy: Policy;
  config: RunConfig;
  threads: Hyperthread[];
  monitor: Monitor;
  log: EventLog | null;
  steps: number;
  deadlocked: boolean;
  wallSeconds: number;
  confidential?: (ConfidentialVm | null)[];
  /**
   * Every running thread's exit-stats array (Hyperthread.exitStats), where `threads` does not hold the
   * hyperthreads (the workers backend: each worker sends its copy at stop). Default: `threads`'.
   */
  exitStats?: readonly ArrayLike<number>[];
  /** Hyperthreads that ran a vCPU (nosmt leaves some offline); default: `threads.length`. */
  runningVcpus?: number;
}

export function threadResult(machine: Machine, thread: number): ThreadResult {
  const base = machine.layout.sections.threadStats.offsetI32 / 2 + thread * ThreadStat.count;
  const stat = (index: number) => machine.f64[base + index];
  const mode = (code: number) => stat(ThreadStat.modeCyclesBase + code);
  const pinned = machine.pinning.findIndex((pins) => pins.includes(thread));
  return {
    thread,
    vmId: pinned,
    vcpu: pinned >= 0 ? machine.pinning[pinned].indexOf(thread) : -1,
    clockCycles: stat(ThreadStat.clockCycles),
    guestCycles: mode(Mode.guest),
    guestUsefulCycles: stat(ThreadStat.guestUsefulCycles),
    guestWorkCycles: stat(ThreadStat.guestWorkCycles),
    isolatedCycles: mode(Mode.isolated),
    fullCycles: mode(Mode.full),
    heldCycles: mode(Mode.held),
    idleCycles: mode(Mode.idle),
    vmmCycles: mode(Mode.vmm),
    exits: stat(ThreadStat.exits),
    kicksSent: stat(ThreadStat.kicksSent),
    kicksReceived: stat(ThreadStat.kicksReceived),
    switchesToFull: stat(ThreadStat.switchesToFull),
    steps: stat(ThreadStat.steps),
  };
}

/**
 * Exits handled entirely in isolation over exits handled (those still in flight at the end excluded).
 * An exit whose handler switched to full, or that went to the VMM (userspace holds secrets), left it.
 */
function isolatedShare(isolatedOnly: number, leftIsolation: number): number {
  const handled = isolatedOnly + leftIsolation;
  return handled > 0 ? isolatedOnly / handled : 0;
}

export function collectResult(input: CollectInput): RunResult {
  const { machine, monitor } = input;
  const vcpuThreads = machine.pinning.flat();
  const perThread = vcpuThreads.map((thread) => threadResult(machine, thread));
  const sum = (pick: (stats: ThreadResult) => number) =>
    perThread.reduce((total, stats) => total + pick(stats), 0);
  const statSum = (index: number) => {
    let total = 0;
    for (const thread of vcpuThreads)
      total +=
        machine.f64[machine.layout.sections.threadStats.offsetI32 / 2 + thread * ThreadStat.count + index];
    return total;
  };
  const elapsed = Math.max(...perThread.map((stats) => stats.clockCycles), 1);
  const guestModeCycles = sum((stats) => stats.guestCycles);
  const kickExits = sum((stats) => stats.kicksReceived);
  const exits = sum((stats) => stats.exits) - kickExits;
  const perExit = (value: number) => (exits > 0 ? (value * 1000) / exits : 0);
  const faultsByHandler: Record<string, number> = {};
  // The run's catalogue: a user handler's new reason has a fault counter too (after the built-in ones).
  input.config.workload.catalogue.forEach((spec, reason) => {
    const faults = statSum(ThreadStat.faultsByReasonBase + reason);
    if (faults > 0) faultsByHandler[spec.name] = faults;
  });
  return {
    backend: input.backend,
    policy: input.policy.name,
    mix: input.config.workload.mix.name,
    seed: input.config.run.seed,
    guestShare: sum((stats) => stats.guestUsefulCycles) / (vcpuThreads.length * elapsed),
    guestWork: sum((stats) => stats.guestWorkCycles) / (vcpuThreads.length * elapsed),
    overheadVsNone: null,
    overheadVsKvmDefault: null,
    exits,
    achievedExitsPerSecond:
      (exits * input.config.machine.ghz * 1e9) /
      (Math.max(1, input.runningVcpus ?? input.threads.length) * elapsed),
    exitsPerSecondTarget: input.config.workload.exitsPerSecond ?? null,
    kickExits,
    isolatedExitShare: isolatedShare(
      statSum(ThreadStat.exitsIsolatedOnly),
      statSum(ThreadStat.exitsLeftIsolation),
    ),
    switchesToFullPer1kExits: perExit(sum((stats) => stats.switchesToFull)),
    kicksPer1kExits: perExit(sum((stats) => stats.kicksSent)),
    heldCycles: sum((stats) => stats.heldCycles),
    flushes: statSum(ThreadStat.l1dFlushes),
    bufferClears: statSum(ThreadStat.bufferClears),
    l1dFlushes: statSum(ThreadStat.l1dFlushes),
    ibpbs: statSum(ThreadStat.ibpbs),
    asiExits: {
      pageFault: statSum(ThreadStat.asiExitsPageFault),
      interrupt: statSum(ThreadStat.asiExitsInterrupt),
      contextSwitch: statSum(ThreadStat.asiExitsContextSwitch),
    },
    faultsByHandler,
    byReason: exitBreakdown(
      input.config.workload.catalogue,
      input.exitStats ?? input.threads.map((thread) => thread.exitStats),
    ),
    violations: { ...monitor.counts },
    violationRecords: monitor.records,
    faultReports: monitor.faults,
    exposure: {
      guestSteps: monitor.exposureGuestSteps,
      cycles: monitor.exposureCycles,
      shareOfGuest: guestModeCycles > 0 ? monitor.exposureCycles / guestModeCycles : 0,
    },
    elapsedCycles: elapsed,
    steps: input.steps,
    deadlocked: input.deadlocked,
    traceHash: input.log?.hash() ?? '',
    wallSeconds: input.wallSeconds,
    perThread,
    confidential: (input.confidential ?? [])
      .filter((vm): vm is ConfidentialVm => vm !== null)
      .map((vm) => ({
        vmId: vm.vmId,
        ...vm.stats,
        trackers: vm.trackers.map((tracker) => ({
          kind: tracker.kind,
          overflowed: tracker.overflowed,
          memoryBytes: tracker.memoryBytes(),
          entryCount: tracker.entryCount,
        })),
      })),
  };
}
